//! Environments in another process: the leafe env protocol, version 1.
//!
//! JSON Lines over a child process's stdin/stdout: one request object per
//! line, one response per request echoing its `id`; logs go to stderr. The
//! verbs mirror gymnasium / OpenEnv:
//!
//! | request | response (besides `"id"` and `"ok": true`) |
//! | --- | --- |
//! | `{"verb": "hello"}` | `"protocol": 1, "name", "version", "description"?, "system_prompt"?, "snapshot": bool, "actions": {"type": "choice", "names": [...], "semantics"?}` or `{"type": "free_text", "semantics"?}` |
//! | `{"verb": "reset", "task_id", "seed"}` | `"observation": {"text", "state"?: [bytes]}, "legal_actions", "info"?` |
//! | `{"verb": "step", "action"}` | `"observation", "reward", "terminated", "truncated", "success", "feedback", "flags"?, "mistakes"?, "legal_actions", "info"?` |
//! | `{"verb": "snapshot"}` (if `snapshot`) | `"snapshot": any JSON` |
//! | `{"verb": "restore", "snapshot"}` (if `snapshot`) | — |
//! | `{"verb": "close"}` | — (the process may exit) |
//!
//! A failed request answers `{"id", "ok": false, "error": "…"}`. Status:
//! `terminated` with `success` is solved, `terminated` without it is lost,
//! `truncated` is the step limit. `docs/protocol.md` has the page and a
//! Python example.
//!
//! A process that exits or closes its pipes between requests (a write to it
//! fails, its output ends) fails the request like any other
//! [`EnvError::Failed`], with its exit status and last log lines. Each
//! process runs in a process group of its own, and the group is killed on a
//! timeout, on drop and by [`kill_all`] (the command line's Ctrl-C
//! handler), so nothing it started outlives it.
//!
//! [`ProcessEnv`] is the client: an [`Env`] whose task is a task id. Without
//! native snapshots rollback replays the action prefix (the explorer checks
//! each replayed observation). A process that crashes, hangs past the
//! timeout, or answers garbage (bad JSON, wrong id, a missing field) is an
//! [`EnvError::Failed`] naming the command and the task; the process is not
//! reused. [`ProcessPool`] keeps live processes for reuse: an environment
//! handed back by drop goes to the pool, so a job spawns as many processes
//! as it runs episodes at once. [`serve`] is the server side for any
//! in-process environment (`leafe env serve`).

use std::io::{BufRead, Write};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::{ActionSpace, Env, EnvError, Observation, Result, Status, Transition};

/// The protocol version this client and [`serve`] speak.
pub const PROTOCOL_VERSION: u64 = 1;

/// How to start and talk to an environment process.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessConfig {
    /// The program and its arguments.
    pub command: Vec<String>,
    /// How long one request may take before the process counts as hung.
    pub timeout_ms: u64,
    /// Steps after which leafe truncates an episode the process has not
    /// ended (0: only the process ends episodes).
    pub max_steps: usize,
}

impl ProcessConfig {
    /// A config for `command`, split as a shell splits words (no quoting
    /// beyond plain words), with a 30 s timeout and no leafe-side limit.
    pub fn from_command_line(command: &str) -> ProcessConfig {
        ProcessConfig {
            command: command.split_whitespace().map(str::to_string).collect(),
            timeout_ms: 30_000,
            max_steps: 0,
        }
    }

    fn label(&self) -> String {
        format!("cmd:{}", self.command.join(" "))
    }
}

mod conn;
mod description;
use conn::Conn;
pub use description::Description;

/// Kills the process groups of every live environment process of this
/// program (the Ctrl-C handler's last act; a drop does it for one process).
pub fn kill_all() {
    groups::kill_all();
}

mod groups;

mod pool;
pub use pool::ProcessPool;

/// An environment in another process (see the module docs).
#[derive(Debug)]
pub struct ProcessEnv {
    config: ProcessConfig,
    label: String,
    actions: ActionSpace,
    conn: Option<Conn>,
    /// Whether `conn` came from the pool and has not answered since: a
    /// reset it fails is tried once more on a fresh process (it may have
    /// exited while idle).
    reused: bool,
    pool: Option<Arc<ProcessPool>>,
    task: Option<String>,
    status: Status,
    steps: usize,
    observation: Observation,
    legal: Vec<String>,
}

impl ProcessEnv {
    /// A process of its own (no pool).
    ///
    /// # Errors
    /// As [`ProcessPool::make`].
    pub fn spawn(config: ProcessConfig) -> Result<ProcessEnv> {
        let mut env = ProcessPool::new(config).make()?;
        env.pool = None;
        Ok(env)
    }

    /// Sends one protocol request as it is, past the client's own checks
    /// (which refuse, say, a step after the episode ended before the
    /// process sees it): what `leafe env check` uses to see what the
    /// process itself answers. Any failure, a refusal included, drops the
    /// process, as every failed request does.
    ///
    /// # Errors
    /// [`EnvError::Failed`]: the process refused (`the environment
    /// refused: …`), died, hung or garbled.
    pub fn request(&mut self, verb: &str, fields: Value) -> Result<Value> {
        self.call(verb, fields)
    }

    /// Whether the process offers native snapshots (`hello`'s `snapshot`).
    pub fn offers_snapshots(&self) -> bool {
        self.conn.as_ref().is_some_and(|c| c.hello.snapshot)
    }

    /// How the process described itself in `hello` (the command's label as
    /// the name once the process is gone).
    pub fn description(&self) -> Description {
        self.conn
            .as_ref()
            .map(|c| c.hello.description.clone())
            .unwrap_or_else(|| Description {
                name: self.label.clone(),
                ..Description::default()
            })
    }

    fn call(&mut self, verb: &str, fields: Value) -> Result<Value> {
        let id = self.send(verb, fields)?;
        self.receive(verb, id)
    }

    /// The error of a request to a process that failed earlier.
    fn dropped(&self, verb: &str) -> EnvError {
        EnvError::Failed {
            env: self.label.clone(),
            message: format!(
                "task {}: {verb}: the process failed earlier and was dropped",
                self.task.as_deref().unwrap_or("?")
            ),
        }
    }

    fn send(&mut self, verb: &str, fields: Value) -> Result<u64> {
        let task = self.task.clone();
        let Some(conn) = self.conn.as_mut() else {
            return Err(self.dropped(verb));
        };
        let out = conn.send(&self.config, verb, fields, task.as_deref());
        if out.is_err() {
            // A process that failed once is not trusted again.
            self.conn = None;
        }
        out
    }

    fn receive(&mut self, verb: &str, id: u64) -> Result<Value> {
        let task = self.task.clone();
        let Some(conn) = self.conn.as_mut() else {
            return Err(self.dropped(verb));
        };
        let out = conn.receive(&self.config, id, verb, task.as_deref());
        if out.is_err() {
            self.conn = None;
        }
        out
    }

    /// A step's answer, read into the state and a transition.
    fn read_step(&mut self, v: &Value) -> Result<Transition> {
        let (observation, legal) = self.read_observation(v, "step")?;
        let reward = v["reward"].as_f64().unwrap_or(0.0) as f32;
        let terminated = v["terminated"].as_bool().unwrap_or(false);
        let truncated = v["truncated"].as_bool().unwrap_or(false);
        let success = v["success"].as_bool().unwrap_or(false);
        self.steps += 1;
        let limit = self.config.max_steps;
        self.status = if terminated && success {
            Status::Solved
        } else if terminated {
            Status::Unsolvable
        } else if truncated || (limit > 0 && self.steps >= limit) {
            Status::StepLimit
        } else {
            Status::Running
        };
        let mistakes = names(&v["mistakes"]);
        let mut flags = names(&v["flags"]);
        for m in &mistakes {
            if !flags.contains(m) {
                flags.push(m.clone());
            }
        }
        self.observation = observation;
        self.legal = legal;
        Ok(Transition {
            reward,
            status: self.status,
            feedback: v["feedback"].as_str().unwrap_or_default().to_string(),
            flags,
            mistakes,
            info: match &v["info"] {
                Value::Null => None,
                info => Some(info.to_string()),
            },
        })
    }

    /// The first half of [`Env::step`]: the request is written, the answer
    /// not read ([`ProcessEnv::step_receive`] reads it), so that several
    /// processes work at once.
    pub(crate) fn step_send(&mut self, action: &str) -> Result<u64> {
        if self.status.is_terminal() {
            return Err(EnvError::EpisodeOver {
                status: self.status,
            });
        }
        self.send("step", json!({ "action": action }))
    }

    /// The second half of [`Env::step`].
    pub(crate) fn step_receive(&mut self, id: u64) -> Result<Transition> {
        let v = self.receive("step", id)?;
        self.read_step(&v)
    }

    /// The first half of [`Env::reset`]: the request is written, the
    /// answer not read ([`ProcessEnv::reset_receive`] reads it), so that
    /// several processes start their episodes at once.
    pub(crate) fn reset_send(&mut self, task: &str, seed: u64) -> Result<u64> {
        self.task = Some(task.to_string());
        self.send("reset", json!({ "task_id": task, "seed": seed }))
    }

    /// The second half of [`Env::reset`], given what
    /// [`ProcessEnv::reset_send`] returned. A pooled process that fails
    /// its first reset is replaced by a fresh one, which is asked again.
    pub(crate) fn reset_receive(
        &mut self,
        task: &str,
        seed: u64,
        sent: Result<u64>,
    ) -> Result<Observation> {
        let v = match sent.and_then(|id| self.receive("reset", id)) {
            Ok(v) => v,
            Err(e) if self.reused => {
                tracing::debug!(target: "leafe::env::process", "a pooled process failed a reset ({e}); trying a fresh one");
                self.reused = false;
                self.conn = Some(Conn::spawn(&self.config)?);
                self.call("reset", json!({ "task_id": task, "seed": seed }))?
            }
            Err(e) => return Err(e),
        };
        self.reused = false;
        let (observation, legal) = self.read_observation(&v, "reset")?;
        self.status = Status::Running;
        self.steps = 0;
        self.observation = observation.clone();
        self.legal = legal;
        Ok(observation)
    }

    fn read_observation(&self, v: &Value, context: &str) -> Result<(Observation, Vec<String>)> {
        let bad = |what: &str| EnvError::Failed {
            env: self.label.clone(),
            message: format!(
                "task {}: {context}: {what}",
                self.task.as_deref().unwrap_or("?")
            ),
        };
        let text = v["observation"]["text"]
            .as_str()
            .ok_or_else(|| bad("no `observation.text`"))?
            .to_string();
        let state = match &v["observation"]["state"] {
            Value::Null => None,
            Value::Array(a) => Some(
                a.iter()
                    .map(|b| b.as_u64().filter(|&x| x < 256).map(|x| x as u8))
                    .collect::<Option<Vec<u8>>>()
                    .ok_or_else(|| bad("`observation.state` must be a list of bytes"))?,
            ),
            _ => return Err(bad("`observation.state` must be a list of bytes")),
        };
        let legal = match &v["legal_actions"] {
            Value::Null => self.actions.names().to_vec(),
            Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
            _ => return Err(bad("`legal_actions` must be a list of strings")),
        };
        Ok((Observation { text, state }, legal))
    }
}

impl Drop for ProcessEnv {
    fn drop(&mut self) {
        if let (Some(conn), Some(pool)) = (self.conn.take(), self.pool.as_ref())
            && let Ok(mut idle) = pool.idle.lock()
        {
            idle.push(conn);
        }
    }
}

fn names(v: &Value) -> Vec<std::borrow::Cow<'static, str>> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(|s| std::borrow::Cow::Owned(s.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

impl Env for ProcessEnv {
    type Task = String;
    type Snapshot = Value;

    fn name(&self) -> &str {
        self.conn
            .as_ref()
            .map_or(self.label.as_str(), |c| c.hello.name.as_str())
    }

    fn describe(&self) -> Option<Value> {
        serde_json::to_value(self.description()).ok()
    }

    fn task_id(&self, task: &String) -> String {
        task.clone()
    }

    fn action_space(&self) -> &ActionSpace {
        &self.actions
    }

    fn reset(&mut self, task: &String, seed: u64) -> Result<Observation> {
        let sent = self.reset_send(task, seed);
        self.reset_receive(task, seed, sent)
    }

    fn observe(&self) -> Observation {
        self.observation.clone()
    }

    fn legal_actions(&self) -> Vec<String> {
        if self.status.is_terminal() {
            Vec::new()
        } else {
            self.legal.clone()
        }
    }

    fn step(&mut self, action: &str) -> Result<Transition> {
        let id = self.step_send(action)?;
        self.step_receive(id)
    }

    fn switching_tasks_is_costly() -> bool {
        true
    }

    fn step_all(envs: &mut [&mut Self], actions: &[&str]) -> Vec<Result<Transition>> {
        super::overlapped(
            envs,
            |e, i| Some(e.step_send(actions[i])),
            |e, i, sent| match sent {
                Some(id) => id.and_then(|id| e.step_receive(id)),
                None => e.step(actions[i]),
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
            |e, i| Some(e.reset_send(tasks[i], seeds[i])),
            |e, i, sent| match sent {
                Some(sent) => e.reset_receive(tasks[i], seeds[i], sent),
                None => e.reset(tasks[i], seeds[i]),
            },
        )
    }

    fn snapshot(&mut self) -> Result<Option<Value>> {
        if !self.conn.as_ref().is_some_and(|c| c.hello.snapshot) {
            return Ok(None);
        }
        let v = self.call("snapshot", json!({}))?;
        Ok(Some(v["snapshot"].clone()))
    }

    fn restore(&mut self, snapshot: &Value) -> Result<()> {
        self.call("restore", json!({ "snapshot": snapshot }))?;
        // Snapshots are taken of running states (before a step); the
        // process knows the rest.
        self.status = Status::Running;
        Ok(())
    }

    fn status(&self) -> Status {
        self.status
    }

    fn steps(&self) -> usize {
        self.steps
    }

    fn demo(&mut self, task: &String) -> Result<Option<Vec<String>>> {
        self.demo_actions(task)
    }
}

// `demo`: demonstrations through the protocol (an optional verb a process
// announces with `"demo": true` in `hello`).
impl ProcessEnv {
    /// The demonstration the process gives for `task` (`demo {task_id}` →
    /// `{"actions": [...] | null}`); `None` where the process announces no
    /// demonstrations or has none for this task. The process may reset
    /// itself to answer: reset before stepping again.
    ///
    /// # Errors
    /// As every request: a process that fails or answers garbage.
    pub fn demo_actions(&mut self, task: &str) -> Result<Option<Vec<String>>> {
        if !self.conn.as_ref().is_some_and(|c| c.hello.demo) {
            return Ok(None);
        }
        self.task = Some(task.to_string());
        let v = self.call("demo", json!({ "task_id": task }))?;
        self.status = Status::Running;
        self.steps = 0;
        match &v["actions"] {
            Value::Null => Ok(None),
            Value::Array(a) => a
                .iter()
                .map(|x| x.as_str().map(str::to_string))
                .collect::<Option<Vec<String>>>()
                .map(Some)
                .ok_or_else(|| EnvError::Failed {
                    env: self.label.clone(),
                    message: format!("task {task}: demo: `actions` must be a list of strings"),
                }),
            _ => Err(EnvError::Failed {
                env: self.label.clone(),
                message: format!("task {task}: demo: `actions` must be a list of strings or null"),
            }),
        }
    }
}

mod serve;
pub use serve::{serve, serve_described};

#[cfg(test)]
mod tests;
