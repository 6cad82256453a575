//! The environments `--env` names by scheme beyond the built-in worlds:
//! `openenv:URL` (an OpenEnv server, spoken to natively: [`super::openenv`]),
//! `gym:ENV_ID[?key=value&…]` and `scienceworld:[OPTIONS]` (adapters
//! compiled into the binary that speak the env protocol, run by
//! `$LEAFE_PYTHON` or `python3`).
//!
//! [`resolve`] turns such a spec into the command or URL and a system prompt;
//! [`EnvSource`] makes [`TextEnv`]s of either kind (a process of a pool, an
//! episode on an OpenEnv server), so the commands that run environments
//! from outside treat both the same way.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::openenv::{OpenEnvConfig, OpenEnvEnv, OpenEnvPool};
use super::process::{ProcessConfig, ProcessEnv, ProcessPool};
use super::{ActionSpace, Env, EnvError, Observation, Result, Status, Transition};

/// The gymnasium adapter (`--env gym:`), compiled in.
pub const GYM_ADAPTER: &str = include_str!("../../examples/gym_env.py");
/// The ScienceWorld adapter (`--env scienceworld:`), compiled in.
pub const SCIENCEWORLD_ADAPTER: &str = include_str!("../../examples/scienceworld_env.py");

/// The system prompt of a gymnasium environment.
const GYM_SYSTEM_PROMPT: &str = "You act in a small grid or card game shown as text. \
     Each turn, choose one of the legal actions to reach the goal the observation describes.";
/// The system prompt of ScienceWorld.
const SCIENCEWORLD_SYSTEM_PROMPT: &str = "You are an agent in ScienceWorld, a text simulation of a \
     house with a kitchen, a greenhouse, a workshop and more. The task is stated at the start; each turn, \
     write one command (the legal actions list valid ones) that brings the task closer. Focus only on the \
     object the task names: focusing on the wrong one fails the task.";
/// The system prompt of an OpenEnv server.
const OPENENV_SYSTEM_PROMPT: &str =
    "You are an agent acting in an environment. Choose the next action.";

/// The command (or, for `openenv:`, the spec itself) and the system prompt
/// of an `--env` spec this module knows; `None` for any other spec.
///
/// # Errors
/// [`EnvError::InvalidConfig`] for a malformed spec, [`EnvError::Io`] when
/// the adapter cannot be written to the cache directory.
pub fn resolve(env: &str) -> Result<Option<(String, &'static str)>> {
    resolve_with(env, &python())
}

/// [`resolve`], the adapters run by `python` (instead of `$LEAFE_PYTHON`).
///
/// # Errors
/// As [`resolve`].
pub fn resolve_with(env: &str, python: &str) -> Result<Option<(String, &'static str)>> {
    if let Some(spec) = env.strip_prefix("openenv:") {
        // Checked now, connected when the first environment is made.
        OpenEnvConfig::parse(spec, 30_000, 0)?;
        return Ok(Some((env.to_string(), OPENENV_SYSTEM_PROMPT)));
    }
    if let Some(spec) = env.strip_prefix("gym:") {
        let (id, query) = spec.trim().split_once('?').unwrap_or((spec.trim(), ""));
        if id.is_empty() || id.contains(char::is_whitespace) {
            return Err(EnvError::InvalidConfig {
                field: "--env gym:",
                message: format!(
                    "{env:?}: write gym:ENV_ID[?key=value&…] (gym:FrozenLake-v1?is_slippery=false)"
                ),
            });
        }
        let kwargs = gym_kwargs(query)?;
        let script = adapter_script("gym_env", GYM_ADAPTER)?;
        return Ok(Some((
            format!(
                "{} {} --env-id {} --kwargs {}",
                quote(python),
                quote(&script.to_string_lossy()),
                quote(id),
                quote(&kwargs.to_string())
            ),
            GYM_SYSTEM_PROMPT,
        )));
    }
    if let Some(spec) = env.strip_prefix("scienceworld:") {
        let script = adapter_script("scienceworld_env", SCIENCEWORLD_ADAPTER)?;
        let options: Vec<String> = spec.split_whitespace().map(quote).collect();
        return Ok(Some((
            format!(
                "{} {} {}",
                quote(python),
                quote(&script.to_string_lossy()),
                options.join(" ")
            ),
            SCIENCEWORLD_SYSTEM_PROMPT,
        )));
    }
    Ok(None)
}

/// `key=value&…` as gymnasium.make keyword arguments: a value that parses
/// as JSON (`false`, `8`, `"8x8"`, `[…]`) is that, any other is a string.
fn gym_kwargs(query: &str) -> Result<Value> {
    let mut kwargs = serde_json::Map::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let Some((k, v)) = pair.split_once('=') else {
            return Err(EnvError::InvalidConfig {
                field: "--env gym:",
                message: format!("{pair:?}: keyword arguments are key=value"),
            });
        };
        let value = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string()));
        kwargs.insert(k.to_string(), value);
    }
    Ok(Value::Object(kwargs))
}

fn python() -> String {
    std::env::var("LEAFE_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// A compiled-in adapter written once under the cache directory, named by
/// its content.
fn adapter_script(name: &str, source: &str) -> Result<PathBuf> {
    use std::hash::{Hash, Hasher};
    // The name only has to change with the text (a new binary may rewrite it).
    let mut h = std::collections::hash_map::DefaultHasher::new();
    source.hash(&mut h);
    let hash = format!("{:016x}", h.finish());
    let dir = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("leafe");
    let script = dir.join(format!("{name}-{}.py", &hash[..12]));
    if !script.exists() {
        let io = |path: &PathBuf, error| EnvError::Io {
            path: path.clone(),
            error,
        };
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        let tmp = dir.join(format!(".{name}-{}.py", std::process::id()));
        std::fs::write(&tmp, source).map_err(|e| io(&tmp, e))?;
        std::fs::rename(&tmp, &script).map_err(|e| io(&script, e))?;
    }
    Ok(script)
}

/// Where environments from outside come from: processes of one command, or
/// episodes on one OpenEnv server (connected on first use).
#[derive(Debug)]
pub enum EnvSource {
    /// Processes speaking the env protocol.
    Process(Arc<ProcessPool>),
    /// An OpenEnv server.
    OpenEnv {
        config: OpenEnvConfig,
        pool: Mutex<Option<Arc<OpenEnvPool>>>,
    },
}

impl EnvSource {
    /// A source for `cmd` — the command of an environment process (run by
    /// `sh -c`), or an `openenv:` spec from [`resolve`] — with a timeout per
    /// request and a step limit.
    ///
    /// # Errors
    /// [`EnvError::InvalidConfig`] for a malformed `openenv:` spec.
    pub fn new(cmd: &str, timeout_ms: u64, max_steps: usize) -> Result<Arc<EnvSource>> {
        Ok(Arc::new(match cmd.strip_prefix("openenv:") {
            Some(spec) => EnvSource::OpenEnv {
                config: OpenEnvConfig::parse(spec, timeout_ms, max_steps)?,
                pool: Mutex::new(None),
            },
            None => EnvSource::Process(ProcessPool::new(ProcessConfig {
                command: vec!["sh".into(), "-c".into(), cmd.to_string()],
                timeout_ms,
                max_steps,
            })),
        }))
    }

    /// An environment.
    ///
    /// # Errors
    /// A process that cannot start, a server that cannot be reached or does
    /// not speak OpenEnv: [`EnvError::Failed`] naming the command or URL.
    pub fn make(&self) -> Result<TextEnv> {
        match self {
            EnvSource::Process(p) => p.make().map(TextEnv::Process),
            EnvSource::OpenEnv { config, pool } => {
                let mut pool = pool.lock().expect("openenv pool");
                let p = match pool.as_ref() {
                    Some(p) => p.clone(),
                    None => {
                        let p = OpenEnvPool::connect(config.clone())?;
                        *pool = Some(p.clone());
                        p
                    }
                };
                p.make().map(TextEnv::OpenEnv)
            }
        }
    }

    /// How the environment describes itself (a process's `hello`; an
    /// OpenEnv server says nothing leafe uses as a prompt, so the caller's
    /// default serves).
    ///
    /// # Errors
    /// A process that cannot start or answer `hello`.
    pub fn describe(&self) -> Result<crate::env::process::Description> {
        match self {
            EnvSource::Process(p) => p.describe(),
            EnvSource::OpenEnv { .. } => Ok(crate::env::process::Description::default()),
        }
    }

    /// Steps replayed to re-synchronise shared OpenEnv sessions (0 for
    /// processes).
    pub fn resync_steps(&self) -> u64 {
        match self {
            EnvSource::Process(_) => 0,
            EnvSource::OpenEnv { pool, .. } => pool
                .lock()
                .expect("openenv pool")
                .as_ref()
                .map_or(0, |p| p.resync_steps()),
        }
    }
}

/// An environment from outside: a process or an OpenEnv episode. The task
/// is a task id.
#[derive(Debug)]
pub enum TextEnv {
    /// A process speaking the env protocol.
    Process(ProcessEnv),
    /// An episode on an OpenEnv server.
    OpenEnv(OpenEnvEnv),
}

macro_rules! each {
    ($self:expr, $e:ident => $body:expr) => {
        match $self {
            TextEnv::Process($e) => $body,
            TextEnv::OpenEnv($e) => $body,
        }
    };
}

impl Env for TextEnv {
    type Task = String;
    /// A process's snapshot (OpenEnv has none).
    type Snapshot = Value;

    fn name(&self) -> &str {
        each!(self, e => e.name())
    }

    fn describe(&self) -> Option<Value> {
        each!(self, e => e.describe())
    }

    fn task_id(&self, task: &String) -> String {
        task.clone()
    }

    fn action_space(&self) -> &ActionSpace {
        each!(self, e => e.action_space())
    }

    fn reset(&mut self, task: &String, seed: u64) -> Result<Observation> {
        each!(self, e => e.reset(task, seed))
    }

    fn observe(&self) -> Observation {
        each!(self, e => e.observe())
    }

    fn legal_actions(&self) -> Vec<String> {
        each!(self, e => e.legal_actions())
    }

    fn step(&mut self, action: &str) -> Result<Transition> {
        each!(self, e => e.step(action))
    }

    fn parallel_episodes() -> usize {
        // Enough processes to keep two cores busy while each waits for its
        // answer; more only cost start-up time and memory.
        16
    }

    fn switching_tasks_is_costly() -> bool {
        true
    }

    fn step_all(envs: &mut [&mut Self], actions: &[&str]) -> Vec<Result<Transition>> {
        // A process's request is split from its answer; a session on an
        // OpenEnv server steps whole.
        super::overlapped(
            envs,
            |e, i| match e {
                TextEnv::Process(p) => Some(p.step_send(actions[i])),
                TextEnv::OpenEnv(_) => None,
            },
            |e, i, sent| match (e, sent) {
                (TextEnv::Process(p), Some(id)) => id.and_then(|id| p.step_receive(id)),
                (e, _) => e.step(actions[i]),
            },
        )
    }

    fn reset_all(
        envs: &mut [&mut Self],
        tasks: &[&String],
        seeds: &[u64],
    ) -> Vec<Result<Observation>> {
        super::overlapped(
            envs,
            |e, i| match e {
                TextEnv::Process(p) => Some(p.reset_send(tasks[i], seeds[i])),
                TextEnv::OpenEnv(_) => None,
            },
            |e, i, sent| match (e, sent) {
                (TextEnv::Process(p), Some(sent)) => p.reset_receive(tasks[i], seeds[i], sent),
                (e, _) => e.reset(tasks[i], seeds[i]),
            },
        )
    }

    fn snapshot(&mut self) -> Result<Option<Value>> {
        match self {
            TextEnv::Process(e) => e.snapshot(),
            TextEnv::OpenEnv(_) => Ok(None),
        }
    }

    fn restore(&mut self, snapshot: &Value) -> Result<()> {
        match self {
            TextEnv::Process(e) => e.restore(snapshot),
            TextEnv::OpenEnv(e) => e.restore(&()),
        }
    }

    fn status(&self) -> Status {
        each!(self, e => e.status())
    }

    fn steps(&self) -> usize {
        each!(self, e => e.steps())
    }

    fn demo(&mut self, task: &String) -> Result<Option<Vec<String>>> {
        each!(self, e => e.demo(task))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_resolve_to_adapter_commands_and_bad_ones_are_named() {
        let (cmd, _) = resolve("gym:FrozenLake-v1?is_slippery=false&map_name=4x4")
            .unwrap()
            .unwrap();
        assert!(cmd.contains("--env-id 'FrozenLake-v1'"), "{cmd}");
        assert!(
            cmd.contains(r#"--kwargs '{"is_slippery":false,"map_name":"4x4"}'"#),
            "{cmd}"
        );
        let (cmd, _) = resolve("scienceworld:--simplifications easy")
            .unwrap()
            .unwrap();
        assert!(cmd.ends_with("'--simplifications' 'easy'"), "{cmd}");
        let (spec, _) = resolve("openenv:ws://127.0.0.1:9").unwrap().unwrap();
        assert_eq!(spec, "openenv:ws://127.0.0.1:9");
        assert!(resolve("sokoban").unwrap().is_none());
        for bad in ["gym:", "gym:Taxi-v4?oops", "openenv:ftp://x"] {
            let e = resolve(bad).unwrap_err().to_string();
            assert!(e.contains("--env"), "{bad}: {e}");
        }
    }
}
