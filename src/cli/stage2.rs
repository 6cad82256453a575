//! `leafe train` (Stage 2 from SQL) and `leafe eval` (Pass@k).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;

use super::stage1::bar;
use super::{StoreArgs, command_line};
use crate::explore::World;
use crate::query::OutputFormat;
use crate::store::now_us;
use crate::train::distill::Method;
use crate::train::incremental::Increment;
use crate::train::job::{
    Overrides, TrainOutcome, TrainProgress, TrainRequest, run_job, run_text_job,
};
use crate::train::load_policy;
use crate::with_world;

/// Arguments of `leafe train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// leafe: counterfactual pairs + beta × rehearsal; rft: rehearsal only;
    /// grpo: outcome RL sampling its own rollouts (needs --levels).
    #[arg(long, value_enum)]
    pub method: Method,
    /// Model to start from.
    #[arg(long)]
    pub init: String,
    /// Environment: sokoban or gridworld [default: the --init model's]; for
    /// a text model and --method grpo, the text environment it samples in
    /// (`textworld:DIR`, `cmd:COMMAND`, …).
    #[arg(long)]
    pub env: Option<String>,
    /// Runs to learn from, as a SQL LIKE pattern on run_id (e.g. `e1.%`); for
    /// grpo, the runs whose environment steps set its interaction budget.
    #[arg(long)]
    pub runs: String,
    /// grpo: the levels it samples from.
    #[arg(long)]
    pub levels: Option<PathBuf>,
    /// grpo: interaction budget in environment steps (default: the steps the
    /// --runs spent, so all methods get the same budget).
    #[arg(long)]
    pub budget: Option<u64>,
    /// Name of the trained model.
    #[arg(long)]
    pub out_model: String,
    /// grpo with a text model: milliseconds the `--env` process may take
    /// for one request before it counts as hung (killed, the episode an
    /// env_error).
    /// [default: 30000; 120000 for textworld:]
    #[arg(long)]
    pub env_timeout_ms: Option<u64>,
    /// TOML file with DistillConfig fields (beta, fit), or with `--method grpo` GrpoConfig fields (group_size, learning_rate, kl_coef, reward, loss_norm, …); flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Directory of the training queries (counterfactual_pairs.sql,
    /// rehearsal.sql); the embedded copies are used for files it lacks.
    #[arg(long, default_value = "queries")]
    pub queries: PathBuf,
    /// Rehearsal weight relative to counterfactual pairs [default: 0.5].
    #[arg(long)]
    pub beta: Option<f32>,
    /// Passes over the data [default: 3].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Seed of shuffling [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Training rows held in memory at most [default: 131072]: data that
    /// fits is shuffled whole each epoch; larger data streams from SQL each
    /// epoch through a shuffle buffer of this many rows (bounded memory).
    #[arg(long)]
    pub shuffle_buffer: Option<usize>,
    /// Scheduled training: --out-model names a model line; train only on the
    /// runs matching --runs committed since the line's last training (its
    /// watermark in the store), starting from its latest version (or --init
    /// the first time), and save the next version `<out-model>.vNNNN`. With
    /// nothing new it does nothing and says so. `--model <out-model>`
    /// elsewhere loads the latest version.
    #[arg(long)]
    pub incremental: bool,
}

/// Arguments of `leafe eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Model to evaluate: a model of the store for `--policy burn`, the
    /// server's model name for `--policy openai`; with `--policy random` it
    /// only names the run (default `random`).
    #[arg(
        long,
        required = false,
        required_if_eq_any([("policy", "burn"), ("policy", "openai")]),
        default_value_if("policy", "random", "random")
    )]
    pub model: String,
    /// Environment: sokoban, gridworld, `cmd:COMMAND` (a process that
    /// speaks the env protocol; task ids one per line in --levels), or
    /// `textworld:GAMES_DIR [--max-steps N …]` (TextWorld through the
    /// built-in adapter; `textworld` in `$LEAFE_PYTHON`, default python3)
    /// [default: the model's].
    #[arg(long)]
    pub env: Option<String>,
    #[command(flatten)]
    pub agent: super::stage1::AgentArgs,
    /// Held-out tasks (Boxoban levels for sokoban, a grid file for gridworld).
    #[arg(long)]
    pub levels: PathBuf,
    /// Split name recorded and reported.
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Samples per task (n of the Pass@k estimator).
    #[arg(long, default_value_t = 128)]
    pub samples: usize,
    /// k values, comma-separated; default 1, 2, 4, … up to --samples.
    #[arg(long, value_delimiter = ',')]
    pub k: Vec<u64>,
    /// Sampling temperature.
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f32,
    /// Step limit of an episode.
    #[arg(long, default_value_t = 60)]
    pub max_steps: u16,
    /// Seed of sampling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Run id of the eval episodes written to the store; default eval-<model>-<split>-s<seed>-<time>.
    #[arg(long)]
    pub run_id: Option<String>,
    /// Do not write eval episodes to the store.
    #[arg(long)]
    pub no_write: bool,
    /// Output format on stdout.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

/// `leafe train`: resolve the request, run it, print what it did.
pub async fn train_cmd(a: TrainArgs, quiet: bool) -> anyhow::Result<u8> {
    let store = a.store.open()?;
    let env_timeout_ms = a.env_timeout_ms;
    let request = TrainRequest {
        method: a.method,
        init: a.init,
        env: a.env,
        runs: a.runs,
        levels: a.levels,
        budget: a.budget,
        out_model: a.out_model,
        config: a.config,
        queries: a.queries,
        overrides: Overrides {
            beta: a.beta,
            epochs: a.epochs,
            seed: a.seed,
            shuffle_buffer: a.shuffle_buffer,
        },
        incremental: a.incremental,
    };
    let job = crate::setup::train_job(&store, request).await?;
    let pb = bar(0, quiet);
    let started = Instant::now();
    let outcome = if job.text {
        let grpo_env = crate::setup::text_grpo_env(&job, env_timeout_ms)?;
        let grpo_env = grpo_env.as_ref().map(|(t, s)| (t.as_slice(), s));
        run_text_job(&store, &job, grpo_env, &command_line(), |p| {
            show_progress(&pb, p)
        })
        .await?
    } else {
        with_world!(job.world.as_str(), |w| {
            run_job(&store, w, &job, &command_line(), |p| show_progress(&pb, p)).await
        })
        .map_err(anyhow::Error::msg)??
    };
    pb.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    let r = &job.request;
    match outcome {
        TrainOutcome::Distilled { run_id, report } => println!(
            "saved model {} ({:?} from {} on runs `{}`: {} counterfactual pairs, {} rehearsal rows, loss {:.3} → {:.3}, {secs:.1}s); run {run_id}",
            r.out_model,
            r.method,
            r.init,
            r.runs,
            report.pairs,
            report.rehearsal,
            report.epoch_losses.first().copied().unwrap_or(f32::NAN),
            report.epoch_losses.last().copied().unwrap_or(f32::NAN),
        ),
        TrainOutcome::Grpo {
            run_id,
            report,
            budget,
        } => println!(
            "saved model {} (grpo from {}: {} iterations, {} of {budget} env steps, sample success {:.3} → {:.3}, {secs:.1}s); run {run_id}",
            r.out_model,
            r.init,
            report.iterations,
            report.env_steps,
            report.success_rates.first().copied().unwrap_or(0.0),
            report.success_rates.last().copied().unwrap_or(0.0),
        ),
        TrainOutcome::Increment(Increment::NothingNew { latest }) => println!(
            "nothing new: no runs matching `{}` committed since {} was trained; {} is current",
            r.runs,
            r.out_model,
            latest.as_deref().unwrap_or("(no version yet)")
        ),
        TrainOutcome::Increment(Increment::Trained {
            name,
            init,
            runs,
            report,
        }) => println!(
            "saved model {name} ({:?} from {init} on {} new run(s): {} counterfactual pairs, {} rehearsal rows, {secs:.1}s); `--model {}` now loads it",
            r.method,
            runs.len(),
            report.pairs,
            report.rehearsal,
            r.out_model
        ),
    }
    Ok(0)
}

/// Drives `pb` from a job's progress.
fn show_progress(pb: &indicatif::ProgressBar, p: TrainProgress<'_>) {
    match p {
        TrainProgress::Fit { step, total, loss } => {
            pb.set_length(total as u64);
            pb.set_position(step as u64);
            pb.set_message(format!("loss {loss:.3}"));
        }
        TrainProgress::Grpo { report, budget } => {
            pb.set_length(budget);
            pb.set_position(report.env_steps.min(budget));
            pb.set_message(format!(
                "iteration {}, success {:.3}",
                report.iterations,
                report.success_rates.last().copied().unwrap_or(0.0)
            ));
        }
    }
}

/// `leafe eval`.
pub async fn eval_cmd(a: EvalArgs) -> anyhow::Result<u8> {
    use super::stage1::PolicyKind;
    let store = a.store.open()?;
    if let Some(p) = crate::setup::process_env(a.env.as_deref())? {
        let tasks = crate::setup::read_task_ids(&a.levels)?;
        let pool = a.agent.pool(&p, a.max_steps as usize)?;
        if a.agent.policy == PolicyKind::Random {
            let policy = crate::policy::random::RandomPolicy;
            return eval_run(&store, &a, &policy, &|| pool.make(), tasks, None).await;
        }
        if a.agent.policy == PolicyKind::Burn {
            let policy = crate::train::text::load_text_policy(&store, &a.model).await?;
            return eval_run(&store, &a, &policy, &|| pool.make(), tasks, None).await;
        }
        let prompt = a.agent.process_prompt(&pool, p.system_prompt);
        let (policy, log) = llm_policy(&a, &prompt, &store).await?;
        return eval_run(&store, &a, &policy, &|| pool.make(), tasks, Some(&log)).await;
    }
    let env = match a.agent.policy {
        PolicyKind::Burn => {
            crate::setup::world_for_model(&store, a.env.as_deref(), &a.model).await?
        }
        PolicyKind::Openai | PolicyKind::Random => {
            a.env.clone().unwrap_or_else(|| "sokoban".into())
        }
    };
    with_world!(env.as_str(), |w| eval_in(w, a).await).map_err(anyhow::Error::msg)?
}

/// The LLM policy of `eval --policy openai`, and the log of its calls.
async fn llm_policy(
    a: &EvalArgs,
    system_prompt: &str,
    store: &crate::store::Store,
) -> anyhow::Result<(
    crate::policy::llm::LlmPolicy,
    std::sync::Arc<crate::policy::llm::CallLog>,
)> {
    use crate::policy::llm::{LlmConfig, LlmPolicy};
    let config = LlmConfig {
        temperature: a.temperature,
        ..a.agent.llm_config(&a.model, system_prompt)
    };
    let log = a.agent.call_log(store, &a.model).await?;
    Ok((
        LlmPolicy::new(a.model.clone(), config)?.with_log(log.clone()),
        log,
    ))
}

async fn eval_in<W: World>(world: W, a: EvalArgs) -> anyhow::Result<u8> {
    let store = a.store.open()?;
    let levels = world
        .read_tasks(&a.levels)
        .context("reading the evaluation levels")?;
    let max_steps = a.max_steps as usize;
    match a.agent.policy {
        super::stage1::PolicyKind::Burn => {
            let policy = load_policy(&store, &a.model, world.encoder()).await?;
            eval_run(
                &store,
                &a,
                &policy,
                &|| world.make_env(max_steps),
                levels,
                None,
            )
            .await
        }
        super::stage1::PolicyKind::Random => {
            let policy = crate::policy::random::RandomPolicy;
            eval_run(
                &store,
                &a,
                &policy,
                &|| world.make_env(max_steps),
                levels,
                None,
            )
            .await
        }
        super::stage1::PolicyKind::Openai => {
            let (policy, log) = llm_policy(&a, world.system_prompt(), &store).await?;
            eval_run(
                &store,
                &a,
                &policy,
                &|| world.make_env(max_steps),
                levels,
                Some(&log),
            )
            .await
        }
    }
}

/// Samples, computes Pass@k, writes the eval run, prints the row.
async fn eval_run<E, P>(
    store: &crate::store::Store,
    a: &EvalArgs,
    policy: &P,
    make_env: &(dyn Fn() -> crate::env::Result<E> + Sync),
    levels: Vec<E::Task>,
    calls: Option<&crate::policy::llm::CallLog>,
) -> anyhow::Result<u8>
where
    E: crate::env::Env,
    P: crate::policy::Policy + ?Sized,
{
    use crate::eval::{EvalSpec, default_ks, evaluate};
    if a.samples == 0 {
        bail!("--samples must be at least 1");
    }
    let ks: Vec<u64> = if a.k.is_empty() {
        default_ks(a.samples)
    } else {
        a.k.clone()
    };
    if let Some(bad) = ks.iter().find(|&&k| k == 0 || k > a.samples as u64) {
        bail!(
            "--k {bad} is outside 1..={} (k cannot exceed --samples)",
            a.samples
        );
    }
    let run_id = (!a.no_write).then(|| {
        a.run_id.clone().unwrap_or_else(|| {
            format!(
                "eval-{}-{}-s{}-{}",
                a.model,
                a.split,
                a.seed,
                now_us() / 1_000_000
            )
        })
    });
    let levels_source = a.levels.display().to_string();
    let command_line = command_line();
    let r = evaluate(
        store,
        policy,
        make_env,
        &EvalSpec {
            model: &a.model,
            levels: &levels,
            levels_source: &levels_source,
            split: &a.split,
            samples: a.samples,
            ks: &ks,
            temperature: a.temperature,
            max_steps: a.max_steps,
            seed: a.seed,
            run_id: run_id.as_deref(),
            command_line: &command_line,
            calls,
        },
    )
    .await?;
    if let Some(run_id) = &run_id {
        eprintln!(
            "wrote {} eval episodes as run {run_id} ({:.1}s of rollouts, {:.0} rollouts/s)",
            r.rollouts,
            r.seconds,
            r.rollouts as f64 / r.seconds.max(1e-9)
        );
    }
    let batch = crate::eval::summary_batch(
        &a.model,
        &a.split,
        levels.len(),
        a.samples,
        &r.pass_at_k,
        a.format == OutputFormat::Json,
    )?;
    crate::query::write_batches(&mut std::io::stdout().lock(), &[batch], a.format)?;
    Ok(0)
}
