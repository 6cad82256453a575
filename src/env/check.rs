//! `leafe env check`: an environment process against the protocol's laws.
//!
//! Each law is tried on the process itself and reported as passed, failed
//! (with what was seen) or skipped (with why it could not be tried):
//!
//! | law | what is tried |
//! | --- | --- |
//! | `hello` | the process starts and says hello in protocol 1 with a valid action space |
//! | `reset` | every task resets to an observation, with legal actions among the action names |
//! | `legal actions` | each legal action at the start is accepted; an action outside a choice space is refused (`ok: false`), not taken |
//! | `replay` | reset with the same task and seed, then the same actions, gives the same observations, rewards, ends and legal actions |
//! | `snapshot` | (if offered) restore of a snapshot, in this process and in a fresh one, continues exactly as the first time |
//! | `terminal` | once an episode ended (terminated or truncated), a step is refused |
//!
//! Actions are drawn from the legal actions by a seeded random walk, so a
//! check is reproducible. A free-text environment that lists no legal
//! actions cannot be walked: the laws that need a walk are skipped.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use super::process::{ProcessConfig, ProcessEnv};
use super::{ActionSpace, Env, EnvError, Observation, Status};

/// The outcome of one law.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The law held; what was tried.
    Passed(String),
    /// The law was broken; how.
    Failed(String),
    /// The law could not be tried; why.
    Skipped(String),
}

impl Verdict {
    /// `passed`, `failed` or `skipped`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Passed(_) => "passed",
            Verdict::Failed(_) => "failed",
            Verdict::Skipped(_) => "skipped",
        }
    }

    /// What was tried, seen or missing.
    pub fn detail(&self) -> &str {
        match self {
            Verdict::Passed(d) | Verdict::Failed(d) | Verdict::Skipped(d) => d,
        }
    }
}

/// One law and its verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LawCheck {
    /// The law's name (the table of the module docs).
    pub law: &'static str,
    /// What became of it.
    pub verdict: Verdict,
}

/// What to check with.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Task ids to reset to (the first few are walked).
    pub tasks: Vec<String>,
    /// Reset seed and seed of the random walks.
    pub seed: u64,
    /// Steps of a random walk for replay and snapshot.
    pub walk_steps: usize,
    /// Steps a random walk may take to reach an episode's end.
    pub max_steps: usize,
    /// Tasks walked for replay (the first ones).
    pub walked_tasks: usize,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            tasks: Vec::new(),
            seed: 0,
            walk_steps: 12,
            max_steps: 500,
            walked_tasks: 3,
        }
    }
}

/// What one step of a walk showed.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    action: String,
    observation: Observation,
    reward: f32,
    status: Status,
    legal: Vec<String>,
}

/// Checks the process `config` starts against every law. The process's own
/// step limit is used (leafe's `max_steps` is set aside).
pub fn check(config: &ProcessConfig, opts: &CheckOptions) -> Vec<LawCheck> {
    let config = ProcessConfig {
        max_steps: 0,
        ..config.clone()
    };
    let mut out = Vec::new();
    let spawn = || ProcessEnv::spawn(config.clone());
    let hello = match spawn() {
        Ok(env) => env,
        Err(e) => {
            out.push(law("hello", Verdict::Failed(e.to_string())));
            for name in ["reset", "legal actions", "replay", "snapshot", "terminal"] {
                out.push(law(
                    name,
                    Verdict::Skipped("the process did not say hello".into()),
                ));
            }
            return out;
        }
    };
    let space = hello.action_space().clone();
    let snapshots = hello.offers_snapshots();
    let d = hello.description();
    out.push(law(
        "hello",
        Verdict::Passed(format!(
            "`{}`{}: {}, {}",
            d.name,
            d.version.map(|v| format!(" {v}")).unwrap_or_default(),
            match &space {
                ActionSpace::Choice(n) => format!("{} actions", n.len()),
                ActionSpace::FreeText => "free-text actions".into(),
            },
            if snapshots {
                "snapshots"
            } else {
                "no snapshots (rollback replays)"
            }
        )),
    ));
    drop(hello);
    if opts.tasks.is_empty() {
        for name in ["reset", "legal actions", "replay", "snapshot", "terminal"] {
            out.push(law(
                name,
                Verdict::Skipped("no task ids to reset to".into()),
            ));
        }
        return out;
    }
    out.push(law("reset", reset_law(&spawn, &space, opts)));
    let task = &opts.tasks[0];
    out.push(law("legal actions", legal_law(&spawn, &space, task, opts)));
    out.push(law("replay", replay_law(&spawn, opts)));
    out.push(law(
        "snapshot",
        if snapshots {
            snapshot_law(&spawn, task, opts)
        } else {
            Verdict::Skipped("hello says `snapshot: false`: rollback replays instead".into())
        },
    ));
    out.push(law("terminal", terminal_law(&spawn, opts)));
    out
}

fn law(law: &'static str, verdict: Verdict) -> LawCheck {
    LawCheck { law, verdict }
}

type Spawn<'a> = dyn Fn() -> super::Result<ProcessEnv> + 'a;

fn reset_law(spawn: &Spawn<'_>, space: &ActionSpace, opts: &CheckOptions) -> Verdict {
    let mut env = match spawn() {
        Ok(e) => e,
        Err(e) => return Verdict::Failed(e.to_string()),
    };
    for task in &opts.tasks {
        if let Err(e) = env.reset(task, opts.seed) {
            return Verdict::Failed(format!("task {task}: {e}"));
        }
        let legal = env.legal_actions();
        if let ActionSpace::Choice(names) = space {
            if legal.is_empty() {
                return Verdict::Failed(format!("task {task}: no legal action at the start"));
            }
            if let Some(bad) = legal.iter().find(|a| !names.contains(a)) {
                return Verdict::Failed(format!(
                    "task {task}: legal action {bad:?} is not among the action names of hello"
                ));
            }
        }
    }
    Verdict::Passed(format!("{} task(s) reset", opts.tasks.len()))
}

fn legal_law(spawn: &Spawn<'_>, space: &ActionSpace, task: &str, opts: &CheckOptions) -> Verdict {
    let task = task.to_string();
    let mut env = match spawn() {
        Ok(e) => e,
        Err(e) => return Verdict::Failed(e.to_string()),
    };
    let legal = match env.reset(&task, opts.seed) {
        Ok(_) => env.legal_actions(),
        Err(e) => return Verdict::Failed(format!("task {task}: {e}")),
    };
    let tried: Vec<String> = legal.iter().take(16).cloned().collect();
    for action in &tried {
        if let Err(e) = env.reset(&task, opts.seed).and_then(|_| env.step(action)) {
            return Verdict::Failed(format!(
                "task {task}: legal action {action:?} at the start was not accepted: {e}"
            ));
        }
    }
    let refusal = match space {
        ActionSpace::FreeText => "free text: no action is outside the space".to_string(),
        ActionSpace::Choice(_) => {
            let bogus = "__leafe_check_not_an_action__";
            let answer = env
                .reset(&task, opts.seed)
                .and_then(|_| env.request("step", json!({ "action": bogus })));
            match answer {
                Ok(_) => {
                    return Verdict::Failed(format!(
                        "task {task}: the action {bogus:?}, which is not one of hello's names, was taken instead of refused"
                    ));
                }
                Err(e) if refused(&e) => format!("{bogus:?} refused"),
                Err(e) => {
                    return Verdict::Failed(format!(
                        "task {task}: an action outside the space should be refused with `ok: false`: {e}"
                    ));
                }
            }
        }
    };
    Verdict::Passed(format!(
        "task {task}: {} legal action(s) at the start accepted; {refusal}",
        tried.len()
    ))
}

/// Whether `e` is the process answering `ok: false` (not crashing).
fn refused(e: &EnvError) -> bool {
    matches!(e, EnvError::Failed { message, .. } if message.contains("the environment refused"))
}

/// A seeded random walk of at most `steps` steps from a reset (`actions`
/// given: those instead).
fn walk(
    env: &mut ProcessEnv,
    task: &str,
    seed: u64,
    steps: usize,
    actions: Option<&[String]>,
) -> super::Result<(Observation, Vec<Seen>)> {
    let task = task.to_string();
    let start = env.reset(&task, seed)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xC4EC);
    let mut seen = Vec::new();
    for i in 0..steps {
        let action = match actions {
            Some(a) => match a.get(i) {
                Some(a) => a.clone(),
                None => break,
            },
            None => {
                let legal = env.legal_actions();
                if legal.is_empty() || env.status().is_terminal() {
                    break;
                }
                legal[rng.random_range(0..legal.len())].clone()
            }
        };
        seen.push(step_seen(env, &action)?);
        if env.status().is_terminal() {
            break;
        }
    }
    Ok((start, seen))
}

fn step_seen(env: &mut ProcessEnv, action: &str) -> super::Result<Seen> {
    let t = env.step(action)?;
    Ok(Seen {
        action: action.to_string(),
        observation: env.observe(),
        reward: t.reward,
        status: t.status,
        legal: env.legal_actions(),
    })
}

/// The first difference between two walks, if any.
fn differ(a: &[Seen], b: &[Seen]) -> Option<String> {
    if a.len() != b.len() {
        return Some(format!(
            "the first walk took {} step(s), the second {}",
            a.len(),
            b.len()
        ));
    }
    for (t, (x, y)) in a.iter().zip(b).enumerate() {
        let what = if x.observation.text != y.observation.text {
            format!(
                "observation {:?} then {:?}",
                short(&x.observation.text),
                short(&y.observation.text)
            )
        } else if x.observation.state != y.observation.state {
            "the same text but another state".into()
        } else if x.reward != y.reward {
            format!("reward {} then {}", x.reward, y.reward)
        } else if x.status != y.status {
            format!("status {} then {}", x.status, y.status)
        } else if x.legal != y.legal {
            format!("legal actions {:?} then {:?}", x.legal, y.legal)
        } else {
            continue;
        };
        return Some(format!("after step {t} ({:?}): {what}", x.action));
    }
    None
}

fn short(text: &str) -> String {
    let s: String = text.chars().take(60).collect();
    if s.len() < text.len() {
        format!("{s}…")
    } else {
        s
    }
}

fn replay_law(spawn: &Spawn<'_>, opts: &CheckOptions) -> Verdict {
    let mut env = match spawn() {
        Ok(e) => e,
        Err(e) => return Verdict::Failed(e.to_string()),
    };
    let mut walked = 0;
    let mut steps = 0;
    for task in opts.tasks.iter().take(opts.walked_tasks.max(1)) {
        let first = walk(&mut env, task, opts.seed, opts.walk_steps, None);
        let (start, first) = match first {
            Ok(w) => w,
            Err(e) => return Verdict::Failed(format!("task {task}: {e}")),
        };
        if first.is_empty() {
            continue;
        }
        let actions: Vec<String> = first.iter().map(|s| s.action.clone()).collect();
        let (again, second) = match walk(&mut env, task, opts.seed, actions.len(), Some(&actions)) {
            Ok(w) => w,
            Err(e) => return Verdict::Failed(format!("task {task}: replaying: {e}")),
        };
        if start != again {
            return Verdict::Failed(format!(
                "task {task}: reset with seed {} gave {:?}, then {:?}",
                opts.seed,
                short(&start.text),
                short(&again.text)
            ));
        }
        if let Some(d) = differ(&first, &second) {
            return Verdict::Failed(format!(
                "task {task}: the same reset and actions went another way: {d}"
            ));
        }
        walked += 1;
        steps += first.len();
    }
    if walked == 0 {
        return Verdict::Skipped("no legal actions to walk with".into());
    }
    Verdict::Passed(format!(
        "{walked} task(s), {steps} step(s) replayed identically"
    ))
}

fn snapshot_law(spawn: &Spawn<'_>, task: &str, opts: &CheckOptions) -> Verdict {
    let run = || -> super::Result<Verdict> {
        let mut env = spawn()?;
        // Walk half-way (not to the end), snapshot, walk on, restore, walk
        // the same actions again: the same continuation.
        let (_, mut prefix) = walk(&mut env, task, opts.seed, opts.walk_steps / 2, None)?;
        if env.status().is_terminal() {
            // The walk ended the episode: snapshot the start instead.
            prefix = walk(&mut env, task, opts.seed, 0, None)?.1;
        }
        let Some(snapshot) = env.snapshot()? else {
            return Ok(Verdict::Failed(
                "hello says `snapshot: true` but no snapshot came".into(),
            ));
        };
        let legal = env.legal_actions();
        if legal.is_empty() {
            return Ok(Verdict::Skipped("no legal actions to walk with".into()));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(opts.seed ^ 0x5A5A);
        let mut then = Vec::new();
        for _ in 0..opts.walk_steps.max(1) {
            let legal = env.legal_actions();
            if legal.is_empty() || env.status().is_terminal() {
                break;
            }
            let a = legal[rng.random_range(0..legal.len())].clone();
            then.push(step_seen(&mut env, &a)?);
        }
        let actions: Vec<String> = then.iter().map(|s| s.action.clone()).collect();
        let replay = |env: &mut ProcessEnv| -> super::Result<Vec<Seen>> {
            env.restore(&snapshot)?;
            actions.iter().map(|a| step_seen(env, a)).collect()
        };
        let here = match replay(&mut env) {
            Ok(h) => h,
            Err(e) => {
                return Ok(Verdict::Failed(format!(
                    "task {task}: after restoring the snapshot in the same process: {e}"
                )));
            }
        };
        if let Some(d) = differ(&then, &here) {
            return Ok(Verdict::Failed(format!(
                "task {task}: restoring the snapshot in the same process went another way: {d}"
            )));
        }
        let mut other = spawn()?;
        other.reset(&task.to_string(), opts.seed)?;
        let there = match replay(&mut other) {
            Ok(t) => t,
            Err(e) => {
                return Ok(Verdict::Failed(format!(
                    "task {task}: after restoring the snapshot in a fresh process: {e}"
                )));
            }
        };
        if let Some(d) = differ(&then, &there) {
            return Ok(Verdict::Failed(format!(
                "task {task}: restoring the snapshot in a fresh process went another way: {d}"
            )));
        }
        Ok(Verdict::Passed(format!(
            "task {task}: restored after {} step(s), {} step(s) continued identically here and in a fresh process",
            prefix.len(),
            then.len()
        )))
    };
    run().unwrap_or_else(|e| Verdict::Failed(e.to_string()))
}

fn terminal_law(spawn: &Spawn<'_>, opts: &CheckOptions) -> Verdict {
    let mut env = match spawn() {
        Ok(e) => e,
        Err(e) => return Verdict::Failed(e.to_string()),
    };
    for task in opts.tasks.iter().take(opts.walked_tasks.max(1)) {
        let (_, seen) = match walk(&mut env, task, opts.seed, opts.max_steps, None) {
            Ok(w) => w,
            Err(e) => return Verdict::Failed(format!("task {task}: {e}")),
        };
        let Some(last) = seen.last() else { continue };
        if !last.status.is_terminal() {
            continue;
        }
        // The client refuses on its own; ask the process itself.
        let action = seen[0].action.clone();
        return match env.request("step", json!({ "action": action })) {
            Ok(_) => Verdict::Failed(format!(
                "task {task}: after the episode ended ({} at step {}), a step was answered instead of refused",
                last.status,
                seen.len() - 1
            )),
            Err(e) if refused(&e) => Verdict::Passed(format!(
                "task {task}: ended ({}) after {} step(s); the next step was refused",
                last.status,
                seen.len()
            )),
            Err(e) => Verdict::Failed(format!(
                "task {task}: a step after the end should be refused with `ok: false`: {e}"
            )),
        };
    }
    Verdict::Skipped(format!(
        "no episode ended within {} random steps",
        opts.max_steps
    ))
}
