//! `leafe explore`, and the agent arguments it shares with `leafe eval`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{StoreArgs, command_line};
use crate::explore::{ExploreConfig, World};
use crate::pipeline::{ExploreJob, ExploreSummary, Progress, Shard};
use crate::with_world;

/// Arguments of `leafe explore`.
#[derive(Debug, Args)]
pub struct ExploreArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Model that acts: a model of the store (saved by `leafe pretrain` or
    /// `leafe train`) for `--policy burn`, the server's model name for
    /// `--policy openai`; with `--policy random` it only names the run
    /// (default `random`).
    #[arg(
        long,
        required = false,
        required_if_eq_any([("policy", "burn"), ("policy", "openai")]),
        default_value_if("policy", "random", "random")
    )]
    pub model: String,
    /// Environment: sokoban, gridworld, `cmd:COMMAND` — a process that
    /// speaks the env protocol (docs/protocol.md), run with `sh -c` — or
    /// `textworld:GAMES_DIR [--max-steps N …]`, TextWorld through the
    /// built-in adapter (needs `textworld` in `$LEAFE_PYTHON`, default
    /// python3); `openenv:http://HOST:PORT` or `openenv:ws://HOST:PORT`, an
    /// OpenEnv server; `gym:ENV_ID[?key=value&…]`, a gymnasium environment;
    /// `scienceworld:[OPTIONS]`, ScienceWorld [default: the model's].
    #[arg(long)]
    pub env: Option<String>,
    /// Tasks to explore (Boxoban levels for sokoban, a grid file for
    /// gridworld, one task id per line for a cmd: environment); task index =
    /// position in the file.
    #[arg(long)]
    pub levels: PathBuf,
    #[command(flatten)]
    pub agent: AgentArgs,
    /// Who reflects: the environment's rules, or the LLM (falling back on
    /// the rules when its answer is malformed).
    #[arg(long, value_enum, default_value_t = ReflectorKind::Rules)]
    pub reflector: ReflectorKind,
    /// TOML file of exploration settings; flags override it. Fields: seed,
    /// max_steps, temperature, reflect_every, interrupt_on_loops, branches,
    /// max_depth, budget, target_successes, parallel_tasks, use_experience,
    /// rollback, root_samples, [reflector], [guidance] (docs: ExploreConfig).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// leafe's own step limit of an episode, prefix included: it truncates
    /// an episode the environment has not ended (status step_limit) [default: 60].
    #[arg(long)]
    pub max_steps: Option<u16>,
    /// This worker's share of the tasks, i/n (tasks with index ≡ i mod n).
    #[arg(long, value_parser = Shard::parse, default_value = "0/1")]
    pub shard: Shard,
    /// Run id of the job; the same id resumes it. Default: explore-<model>-<levels>-s<seed>.
    #[arg(long)]
    pub run_id: Option<String>,
    /// Split recorded on the episodes (train, test, …).
    #[arg(long, default_value = "train")]
    pub split: String,
    /// Tasks per committed chunk (the unit of resumption).
    #[arg(long, default_value_t = 64)]
    pub chunk_tasks: usize,
    /// Seed of all sampling [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Environment steps per task, roots and branches [default: 1200].
    #[arg(long)]
    pub budget: Option<usize>,
    /// Branches per rollback point [default: 4].
    #[arg(long)]
    pub branches: Option<usize>,
    /// Deepest branch level [default: 2].
    #[arg(long)]
    pub max_depth: Option<usize>,
    /// Reflect every N steps of a running episode, 0: only at a failed end [default: 10].
    #[arg(long)]
    pub reflect_every: Option<usize>,
    /// Branch from tau without the experience's guidance (ablation).
    #[arg(long)]
    pub no_experience: bool,
    /// Start branches from the task's start with the experience, instead of
    /// rolling back to tau (ablation).
    #[arg(long)]
    pub no_rollback: bool,
}

pub(crate) fn bar(len: u64, quiet: bool) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    pb.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
            .expect("static template"),
    );
    pb.enable_steady_tick(Duration::from_millis(200));
    pb
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| {
            s.to_string_lossy()
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect()
        })
        .unwrap_or_else(|| "levels".into())
}

struct BarProgress {
    pb: ProgressBar,
    started: Instant,
}

impl Progress for BarProgress {
    fn update(&self, s: &ExploreSummary, total: usize) {
        self.pb.set_length(total as u64);
        self.pb.set_position(s.tasks as u64);
        let secs = self.started.elapsed().as_secs_f64().max(1e-9);
        self.pb.set_message(format!(
            "solved {}/{} (root {}), {} episodes, {} reflections, {:.0} env steps/s",
            s.solved_tasks,
            s.tasks,
            s.root_solved,
            s.episodes,
            s.reflections,
            s.env_steps as f64 / secs
        ));
    }
}

/// Who acts, and where, in `leafe explore` and `leafe eval`.
#[derive(Debug, Clone, Args)]
pub struct AgentArgs {
    /// Who acts: the burn network `--model` of the store, an LLM over an
    /// OpenAI-compatible endpoint (`--base-url`; the key from
    /// OPENAI_API_KEY), or random legal actions (no model: smoke-tests an
    /// environment).
    #[arg(long, value_enum, default_value_t = PolicyKind::Burn)]
    pub policy: PolicyKind,
    /// The OpenAI-compatible endpoint of `--policy openai` / `--reflector llm`.
    #[arg(long, default_value = "http://127.0.0.1:8080/v1")]
    pub base_url: String,
    /// The LLM's model name on the server [default: --model].
    #[arg(long)]
    pub llm_model: Option<String>,
    /// The LLM's system prompt [default: the environment's rules; for a
    /// cmd: environment what its `hello` says (description, system prompt,
    /// action semantics), else a generic one].
    #[arg(long)]
    pub system_prompt: Option<String>,
    /// Milliseconds an environment process may take to answer a request
    /// [default: 30000; 120000 for textworld:, which generates a game on
    /// its first use]
    #[arg(long)]
    pub env_timeout_ms: Option<u64>,
    /// Answer the LLM's requests from the replies the store recorded
    /// (`llm_calls`; a request is the same when its whole body is: model,
    /// messages, settings, seed): `cache` asks the server only what was
    /// never asked; `only` never asks it (a re-run without a server, the
    /// same run when the settings are the same).
    #[arg(long, value_enum, default_value_t = ReplayKind::Off)]
    pub llm_replay: ReplayKind,
}

/// How `--llm-replay` answers requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReplayKind {
    /// Every request goes to the server.
    Off,
    /// Recorded replies first, the server for the rest.
    Cache,
    /// Recorded replies only; a request never recorded is an error.
    Only,
}

impl AgentArgs {
    /// The LLM's settings for `model` (`--llm-model` wins), with
    /// `system_prompt` unless `--system-prompt` says otherwise.
    pub(crate) fn llm_config(
        &self,
        model: &str,
        system_prompt: &str,
    ) -> crate::policy::llm::LlmConfig {
        crate::policy::llm::LlmConfig {
            base_url: self.base_url.clone(),
            model: self.llm_model.clone().unwrap_or_else(|| model.to_string()),
            system_prompt: self
                .system_prompt
                .clone()
                .unwrap_or_else(|| system_prompt.to_string()),
            ..crate::policy::llm::LlmConfig::default()
        }
    }

    /// The log the LLM agents write their calls to, loaded with the store's
    /// recorded replies of the server's model (`--llm-model`, else `model`)
    /// when `--llm-replay` asks for them.
    pub(crate) async fn call_log(
        &self,
        store: &crate::store::Store,
        model: &str,
    ) -> anyhow::Result<std::sync::Arc<crate::policy::llm::CallLog>> {
        use crate::policy::llm::Replay;
        let model = self.llm_model.as_deref().unwrap_or(model);
        let replay = match self.llm_replay {
            ReplayKind::Off => Replay::Off,
            ReplayKind::Cache => Replay::Cache,
            ReplayKind::Only => Replay::Only,
        };
        let log = crate::setup::call_log(store, model, replay).await?;
        if replay != Replay::Off {
            eprintln!(
                "--llm-replay: {} recorded replies of model `{model}` in the store",
                log.recorded()
            );
        }
        Ok(log)
    }

    /// Environments truncating at `max_steps`: `sh -c cmd` processes, or
    /// episodes on the OpenEnv server of an `openenv:` spec.
    pub(crate) fn pool(
        &self,
        env: &crate::setup::ProcessSpec,
        max_steps: usize,
    ) -> anyhow::Result<std::sync::Arc<crate::env::schemes::EnvSource>> {
        Ok(crate::setup::process_pool(
            &env.command,
            env.timeout(self.env_timeout_ms),
            max_steps,
        )?)
    }

    /// The system prompt for an environment process: `--system-prompt`,
    /// else what the process says of itself in `hello`, else `fallback`.
    /// A process that cannot start says nothing (the job records why).
    pub(crate) fn process_prompt(
        &self,
        pool: &std::sync::Arc<crate::env::schemes::EnvSource>,
        fallback: &str,
    ) -> String {
        if let Some(p) = &self.system_prompt {
            return p.clone();
        }
        match pool.describe() {
            Ok(d) => d.prompt().unwrap_or_else(|| fallback.to_string()),
            Err(_) => fallback.to_string(),
        }
    }
}

/// Who acts in `leafe explore`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PolicyKind {
    /// The burn network `--model` of the store: the MLP in a built-in
    /// world, the text policy (`leafe pretrain --env …`) in a text environment.
    Burn,
    /// An LLM over an OpenAI-compatible chat-completions endpoint.
    Openai,
    /// Uniform over the legal actions: smoke-tests an environment without
    /// a model (`--model` only names the run).
    Random,
}

/// Who reflects in `leafe explore`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReflectorKind {
    /// The environment's rule-based reflector (from its feedback).
    Rules,
    /// The LLM of `--base-url`, falling back on the rules.
    Llm,
}

/// `leafe explore`.
pub async fn explore_cmd(a: ExploreArgs, quiet: bool) -> anyhow::Result<u8> {
    let store = a.store.open()?;
    if let Some(p) = crate::setup::process_env(a.env.as_deref())? {
        return explore_process(&p, a, quiet).await;
    }
    let env = match a.agent.policy {
        PolicyKind::Burn => {
            crate::setup::world_for_model(&store, a.env.as_deref(), &a.model).await?
        }
        PolicyKind::Openai | PolicyKind::Random => {
            a.env.clone().unwrap_or_else(|| "sokoban".into())
        }
    };
    with_world!(env.as_str(), |w| explore_in(w, a, quiet).await).map_err(anyhow::Error::msg)?
}

/// The LLM agents of `--policy openai` / `--reflector llm`.
fn llm_agents(
    a: &ExploreArgs,
    system_prompt: &str,
    rules: Box<dyn crate::reflect::Reflector>,
    log: &std::sync::Arc<crate::policy::llm::CallLog>,
) -> anyhow::Result<(
    Option<crate::policy::llm::LlmPolicy>,
    Box<dyn crate::reflect::Reflector>,
)> {
    use crate::policy::llm::{LlmPolicy, LlmReflector};
    let config = a.agent.llm_config(&a.model, system_prompt);
    let policy = match a.agent.policy {
        PolicyKind::Openai => {
            Some(LlmPolicy::new(a.model.clone(), config.clone())?.with_log(log.clone()))
        }
        PolicyKind::Burn | PolicyKind::Random => None,
    };
    let reflector: Box<dyn crate::reflect::Reflector> = match a.reflector {
        ReflectorKind::Rules => rules,
        ReflectorKind::Llm => Box::new(
            LlmReflector::new(format!("llm:{}", a.model), config.clone(), rules)?
                .with_log(log.clone()),
        ),
    };
    Ok((policy, reflector))
}

/// `leafe explore --env cmd:…|textworld:…`: an LLM, the store's text
/// policy or a random agent in an environment process.
async fn explore_process(
    env: &crate::setup::ProcessSpec,
    a: ExploreArgs,
    quiet: bool,
) -> anyhow::Result<u8> {
    let store = a.store.open()?;
    let cfg = explore_config(&a)?;
    let tasks = crate::setup::read_task_ids(&a.levels)?;
    let pool = a.agent.pool(env, cfg.max_steps as usize)?;
    let log = a.agent.call_log(&store, &a.model).await?;
    let system_prompt = a.agent.process_prompt(&pool, env.system_prompt);
    let (llm, reflector) = llm_agents(
        &a,
        &system_prompt,
        Box::new(crate::reflect::FeedbackReflector),
        &log,
    )?;
    // The store's text policy, the experience acting on its distribution.
    let text = match a.agent.policy {
        PolicyKind::Burn => Some(
            crate::train::text::load_text_policy(&store, &a.model)
                .await?
                .with_guide(std::sync::Arc::new(crate::policy::ExperienceGuide {
                    config: cfg.guidance.clone(),
                })),
        ),
        PolicyKind::Openai | PolicyKind::Random => None,
    };
    let random = crate::policy::random::RandomPolicy;
    let policy: &dyn crate::policy::Policy = match (&llm, &text) {
        (Some(p), _) => p,
        (None, Some(t)) => t,
        (None, None) => &random,
    };
    let job = explore_job(&a, cfg, tasks);
    let progress = BarProgress {
        pb: bar(0, quiet),
        started: Instant::now(),
    };
    let started = Instant::now();
    let s = job
        .run_with(
            &store,
            a.env.as_deref().unwrap_or("cmd"),
            &|| pool.make(),
            policy,
            reflector.as_ref(),
            Some(&log),
            &progress,
        )
        .await
        .with_context(|| format!("explore job `{}`", job.run_id))?;
    progress.pb.finish_and_clear();
    print_explore(&job.run_id, &s, started.elapsed().as_secs_f64());
    if pool.resync_steps() > 0 {
        eprintln!(
            "{} steps replayed to re-synchronise shared OpenEnv sessions (transport, not budget)",
            pool.resync_steps()
        );
    }
    if let Some(llm) = &llm {
        let st = llm.stats();
        eprintln!(
            "LLM: {} requests ({} from recorded replies), {} retried, {} re-asked, {} invalid (a legal action drawn), {} tokens; calls in llm_calls",
            st.requests, st.replayed, st.retried, st.reasked, st.invalid, st.tokens
        );
    }
    Ok(explore_exit_code(&s))
}

/// 1 when every task this invocation explored failed by the environment
/// (the run worked, nothing in it did): a script notices an environment
/// that never works. Unsolved tasks are results, not failures: 0.
fn explore_exit_code(s: &ExploreSummary) -> u8 {
    u8::from(s.tasks > 0 && s.env_errors == s.tasks)
}

fn explore_config(a: &ExploreArgs) -> anyhow::Result<ExploreConfig> {
    let mut cfg: ExploreConfig = crate::setup::read_config(a.config.as_deref())?;
    if let Some(v) = a.seed {
        cfg.seed = v;
    }
    if let Some(v) = a.budget {
        cfg.budget = v;
    }
    if let Some(v) = a.max_steps {
        cfg.max_steps = v;
    }
    if let Some(v) = a.branches {
        cfg.branches = v;
    }
    if let Some(v) = a.max_depth {
        cfg.max_depth = v;
    }
    if let Some(v) = a.reflect_every {
        cfg.reflect_every = v;
    }
    if a.no_experience {
        cfg.use_experience = false;
    }
    if a.no_rollback {
        cfg.rollback = false;
    }
    Ok(cfg)
}

fn explore_job<T>(a: &ExploreArgs, cfg: ExploreConfig, levels: Vec<T>) -> ExploreJob<T> {
    let run_id = a
        .run_id
        .clone()
        .unwrap_or_else(|| format!("explore-{}-{}-s{}", a.model, stem(&a.levels), cfg.seed));
    ExploreJob {
        run_id,
        model: a.model.clone(),
        levels_source: a.levels.display().to_string(),
        levels,
        split: Some(a.split.clone()),
        shard: a.shard,
        chunk_tasks: a.chunk_tasks,
        config: cfg,
        command_line: command_line(),
    }
}

async fn explore_in<W: World>(world: W, a: ExploreArgs, quiet: bool) -> anyhow::Result<u8>
where
    <W::Env as crate::env::Env>::Task: Clone + Send + Sync,
{
    let store = a.store.open()?;
    let cfg = explore_config(&a)?;
    let levels = world.read_tasks(&a.levels).context("reading the levels")?;
    let max_steps = cfg.max_steps as usize;
    let rules = world.reflector(&cfg.reflector);
    let job = explore_job(&a, cfg, levels);
    let progress = BarProgress {
        pb: bar(0, quiet),
        started: Instant::now(),
    };
    let started = Instant::now();
    let s = match (a.agent.policy, a.reflector) {
        (PolicyKind::Burn, ReflectorKind::Rules) => job.run(&world, &store, &progress).await,
        _ => {
            let log = a.agent.call_log(&store, &a.model).await?;
            let (llm, reflector) = llm_agents(&a, world.system_prompt(), rules, &log)?;
            let make_env = || world.make_env(max_steps);
            let random = crate::policy::random::RandomPolicy;
            let burn;
            let policy: &dyn crate::policy::Policy = match (&llm, a.agent.policy) {
                (Some(p), _) => p,
                (None, PolicyKind::Random) => &random,
                (None, _) => {
                    burn = crate::train::load_policy(&store, &a.model, world.encoder())
                        .await?
                        .with_guide(world.guide(&job.config.guidance));
                    &burn
                }
            };
            job.run_with(
                &store,
                world.name(),
                &make_env,
                policy,
                reflector.as_ref(),
                Some(&log),
                &progress,
            )
            .await
        }
    }
    .with_context(|| format!("explore job `{}`", job.run_id))?;
    progress.pb.finish_and_clear();
    print_explore(&job.run_id, &s, started.elapsed().as_secs_f64());
    Ok(explore_exit_code(&s))
}

fn print_explore(run_id: &str, s: &ExploreSummary, secs: f64) {
    if s.tasks == 0 {
        println!(
            "explore {run_id}: nothing to do ({} tasks already committed)",
            s.skipped
        );
        return;
    }
    if s.env_errors > 0 {
        eprintln!(
            "explore {run_id}: {} task(s) failed by the environment{}; each is an episode with status env_error and its reason: \
             leafe sql \"SELECT task_id, error FROM episodes WHERE status = 'env_error' AND run_id LIKE '{run_id}.%'\"",
            s.env_errors,
            s.first_env_error
                .as_deref()
                .map(|e| format!(" (the first: {e})"))
                .unwrap_or_default()
        );
    }
    println!(
        "explore {run_id}: {} tasks in {} chunk(s) ({} skipped as already committed), solved {} (root {}), \
         {} episodes, {} reflections, {} env steps, rollbacks {} by snapshot / {} by replay, {:.1}s ({:.0} tasks/min, {:.0} env steps/s)",
        s.tasks,
        s.chunks,
        s.skipped,
        s.solved_tasks,
        s.root_solved,
        s.episodes,
        s.reflections,
        s.env_steps,
        s.rollbacks_snapshot,
        s.rollbacks_replay,
        secs,
        s.tasks as f64 / secs * 60.0,
        s.env_steps as f64 / secs
    );
}
