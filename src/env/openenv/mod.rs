//! OpenEnv servers, spoken to natively: `--env openenv:http://HOST:PORT` or
//! `openenv:ws://HOST:PORT`.
//!
//! [OpenEnv](https://github.com/meta-pytorch/OpenEnv) (`openenv-core` on
//! PyPI) serves an environment over HTTP — `POST /reset {seed, episode_id,
//! …}`, `POST /step {action}` → `{observation, reward, done}`, `GET /state`,
//! `GET /schema`, `GET /health` — and over a WebSocket `/ws` carrying
//! `{"type": "reset"|"step"|"state"|"close", "data": …}` and answering
//! `{"type": "observation"|"state"|"error", "data": …}`. It has no snapshot,
//! so rollback is always reset with the same seed and a verified replay.
//!
//! What leafe needs and OpenEnv leaves to each environment is read from
//! `GET /schema` ([`Mapping`]): which observation field is the text, which
//! action field takes leafe's action string (and whether it is a choice),
//! where the legal actions and success come from. Each can be set in the
//! spec's query string (`?text=FIELD&action=FIELD&legal=FIELD&success=FIELD`).
//!
//! Sessions. A WebSocket connection is one session with its own environment
//! (OpenEnv serves up to its `max_concurrent_envs`, 1 by default). HTTP
//! requests carry no session: `openenv-core`'s own server builds a fresh
//! environment for every request, so HTTP works only with a server that keeps
//! one environment between requests (checked after the first step: a server
//! whose `/state` still counts 0 steps is refused with a line saying to use
//! `ws://`). leafe runs several episodes at once (parallel tasks, branches);
//! they share `sessions` sessions (1 for HTTP). An episode that finds its
//! session used by another one since its last request first re-synchronises
//! it: reset with its seed and replay of its actions, each observation
//! checked. Those steps are transport, not agent interaction: they are
//! counted apart ([`OpenEnvPool::resync_steps`]) and cost time, not budget.
//!
//! The network runs on one thread of its own with a current-thread tokio
//! runtime (reqwest for HTTP, tokio-tungstenite for WebSocket); the
//! environment's calls block on it with the configured timeout. Every
//! failure is an [`EnvError::Failed`] of one line naming the URL.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};

use super::{ActionSpace, Env, EnvError, Observation, Result, Status, Transition};

/// How to reach and read an OpenEnv server.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenEnvConfig {
    /// The server's base URL: `http(s)://HOST:PORT` (HTTP endpoints) or
    /// `ws://HOST:PORT` (the `/ws` session endpoint).
    pub url: String,
    /// How long one request may take.
    pub timeout_ms: u64,
    /// Steps after which leafe truncates an episode the server has not
    /// ended (0: only the server ends episodes).
    pub max_steps: usize,
    /// WebSocket sessions opened at most (HTTP: always 1).
    pub sessions: usize,
    /// Observation field read as the text (default: from `/schema`).
    pub text_field: Option<String>,
    /// Action field that takes leafe's action string (default: from `/schema`).
    pub action_field: Option<String>,
    /// Observation field listing the legal actions (default: from `/schema`).
    pub legal_field: Option<String>,
    /// Observation field that says an ended episode succeeded (default: from
    /// `/schema`; without one, an episode that ends with a positive reward).
    pub success_field: Option<String>,
    /// Observation field read as the step's feedback line.
    pub feedback_field: Option<String>,
    /// The reset field that carries leafe's task id (`task_id`; the server
    /// passes it on only where its `reset` takes it).
    pub task_field: String,
}

impl OpenEnvConfig {
    /// Parses `URL[?key=value&…]`: keys `text`, `action`, `legal`,
    /// `success`, `feedback`, `task`, `sessions`, `timeout_ms`.
    ///
    /// # Errors
    /// [`EnvError::InvalidConfig`] for a URL that is not `http`, `https` or
    /// `ws`, an unknown key, or a bad number.
    pub fn parse(spec: &str, timeout_ms: u64, max_steps: usize) -> Result<OpenEnvConfig> {
        let bad = |message: String| EnvError::InvalidConfig {
            field: "--env openenv:",
            message,
        };
        let (base, query) = spec.trim().split_once('?').unwrap_or((spec.trim(), ""));
        let parsed = url::Url::parse(base).map_err(|e| bad(format!("{base:?}: {e}")))?;
        match parsed.scheme() {
            "http" | "https" | "ws" => {}
            "wss" => {
                return Err(bad(format!(
                    "{base}: wss:// is not supported; use ws:// on a trusted network, or the server's https:// HTTP endpoints"
                )));
            }
            s => {
                return Err(bad(format!(
                    "{base}: scheme {s:?}; an OpenEnv server is http://HOST:PORT or ws://HOST:PORT"
                )));
            }
        }
        let mut config = OpenEnvConfig {
            url: base.trim_end_matches('/').to_string(),
            timeout_ms,
            max_steps,
            sessions: 1,
            text_field: None,
            action_field: None,
            legal_field: None,
            success_field: None,
            feedback_field: None,
            task_field: "task_id".into(),
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = v.to_string();
            let number = |v: &str| {
                v.parse::<u64>()
                    .map_err(|_| bad(format!("{k}={v:?} is not a number")))
            };
            match k {
                "text" => config.text_field = Some(v),
                "action" => config.action_field = Some(v),
                "legal" => config.legal_field = Some(v),
                "success" => config.success_field = Some(v),
                "feedback" => config.feedback_field = Some(v),
                "task" => config.task_field = v,
                "sessions" => config.sessions = number(&v)?.max(1) as usize,
                "timeout_ms" => config.timeout_ms = number(&v)?.max(1),
                other => {
                    return Err(bad(format!(
                        "unknown option {other:?} (text, action, legal, success, feedback, task, sessions, timeout_ms)"
                    )));
                }
            }
        }
        if !config.is_ws() {
            config.sessions = 1;
        }
        Ok(config)
    }

    fn is_ws(&self) -> bool {
        self.url.starts_with("ws://")
    }

    /// The HTTP base URL (`ws://` read as `http://`, for `/schema`, `/health`).
    fn http_base(&self) -> String {
        match self.url.strip_prefix("ws://") {
            Some(rest) => format!("http://{rest}"),
            None => self.url.clone(),
        }
    }

    fn label(&self) -> String {
        format!("openenv:{}", self.url)
    }
}

mod mapping;
mod transport;
pub use mapping::Mapping;
use transport::*;

/// A session's owner: the episode that used it last.
#[derive(Debug, Default)]
struct Session {
    owner: u64,
}

/// One server: its mapping, the network thread, the sessions shared by the
/// environments [`OpenEnvPool::make`] hands out.
#[derive(Debug)]
pub struct OpenEnvPool {
    config: OpenEnvConfig,
    label: String,
    mapping: Mapping,
    jobs: Mutex<Sender<(Op, Sender<Reply>)>>,
    sessions: Vec<Mutex<Session>>,
    next_env: AtomicU64,
    /// Whether the HTTP server was seen to keep its episode between requests.
    checked_state: AtomicBool,
    resync_steps: AtomicU64,
}

impl std::fmt::Debug for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Op")
    }
}

impl OpenEnvPool {
    /// Connects: starts the network thread, checks `GET /health` and reads
    /// `GET /schema`.
    ///
    /// # Errors
    /// [`EnvError::Failed`] naming the URL when the server cannot be
    /// reached, does not answer in time, or does not speak OpenEnv.
    pub fn connect(config: OpenEnvConfig) -> Result<Arc<OpenEnvPool>> {
        let label = config.label();
        let (tx, rx) = channel::<(Op, Sender<Reply>)>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| EnvError::Failed {
                env: label.clone(),
                message: format!("cannot start the network runtime: {e}"),
            })?;
        let worker = config.clone();
        std::thread::Builder::new()
            .name("leafe-openenv".into())
            .spawn(move || runtime.block_on(network(worker, rx)))
            .map_err(|e| EnvError::Failed {
                env: label.clone(),
                message: format!("cannot start the network thread: {e}"),
            })?;
        let mut pool = OpenEnvPool {
            sessions: (0..config.sessions).map(|_| Mutex::default()).collect(),
            label: label.clone(),
            mapping: Mapping {
                text: None,
                action: String::new(),
                action_is_integer: false,
                actions: ActionSpace::FreeText,
                legal: None,
                success: None,
                feedback: None,
            },
            jobs: Mutex::new(tx),
            next_env: AtomicU64::new(1),
            checked_state: AtomicBool::new(false),
            resync_steps: AtomicU64::new(0),
            config,
        };
        let health = pool.request(Op::Get("/health"))?;
        if health.get("status").is_none() {
            return Err(pool.failed(format!(
                "GET /health: no `status` in {} (is this an OpenEnv server?)",
                one_line(&health.to_string(), 120)
            )));
        }
        let schema = pool.request(Op::Get("/schema"))?;
        pool.mapping = Mapping::from_schema(&schema, &pool.config, &label)?;
        tracing::info!(
            env = %label,
            mapping = ?pool.mapping,
            "OpenEnv server connected"
        );
        Ok(Arc::new(pool))
    }

    /// The mapping read from `/schema`.
    pub fn mapping(&self) -> &Mapping {
        &self.mapping
    }

    /// Steps replayed to re-synchronise shared sessions (transport cost,
    /// not agent interaction).
    pub fn resync_steps(&self) -> u64 {
        self.resync_steps.load(Ordering::Relaxed)
    }

    /// An environment on this server.
    ///
    /// # Errors
    /// None today; a `Result` as for every environment maker.
    pub fn make(self: &Arc<Self>) -> Result<OpenEnvEnv> {
        let id = self.next_env.fetch_add(1, Ordering::Relaxed);
        Ok(OpenEnvEnv {
            pool: self.clone(),
            id,
            slot: (id as usize) % self.sessions.len(),
            task: None,
            seed: 0,
            start: Observation::default(),
            done: Vec::new(),
            status: Status::Running,
            observation: Observation::default(),
            legal: Vec::new(),
            dead: false,
        })
    }

    fn failed(&self, message: String) -> EnvError {
        EnvError::Failed {
            env: self.label.clone(),
            message,
        }
    }

    fn request(&self, op: Op) -> Result<Value> {
        self.request_raw(op).map_err(|f| self.failed(f.message))
    }

    fn request_raw(&self, op: Op) -> std::result::Result<Value, Failure> {
        let (tx, rx) = channel();
        self.jobs
            .lock()
            .expect("jobs")
            .send((op, tx))
            .map_err(|_| Failure::new("the network thread is gone"))?;
        // The network thread enforces the timeout; this margin only guards
        // against the thread itself hanging.
        rx.recv_timeout(Duration::from_millis(self.config.timeout_ms * 2 + 1000))
            .map_err(|_| Failure::new("the network thread did not answer"))?
    }

    /// `reset` on session `slot`: the answer's `{observation, reward, done}`.
    fn reset_on(&self, slot: usize, task: &str, seed: u64, episode: &str) -> Result<Value> {
        let mut data = json!({ "seed": seed, "episode_id": episode });
        if !task.is_empty() && !self.config.task_field.is_empty() {
            data[&self.config.task_field] = json!(task);
        }
        let op = if self.config.is_ws() {
            Op::Ws(slot, json!({ "type": "reset", "data": data }))
        } else {
            Op::Post("/reset", data)
        };
        self.request(op)
            .map_err(|e| self.context(e, &format!("task {task}: reset")))
    }

    /// `step` on session `slot`.
    fn step_on(&self, slot: usize, task: &str, action: &str) -> Result<Value> {
        let value = if self.mapping.action_is_integer {
            match action.trim().parse::<i64>() {
                Ok(i) => json!(i),
                Err(_) => {
                    return Err(EnvError::InvalidAction {
                        env: self.label.clone(),
                        action: action.to_string(),
                        message: format!("action field {:?} takes an integer", self.mapping.action),
                    });
                }
            }
        } else {
            json!(action)
        };
        let data = json!({ &self.mapping.action: value });
        let op = if self.config.is_ws() {
            Op::Ws(slot, json!({ "type": "step", "data": data }))
        } else {
            Op::Post("/step", json!({ "action": data }))
        };
        match self.request_raw(op) {
            Ok(v) => Ok(v),
            Err(f) if f.refused => Err(EnvError::InvalidAction {
                env: self.label.clone(),
                action: action.to_string(),
                message: f.message,
            }),
            Err(f) => Err(self.failed(format!("task {task}: step: {}", f.message))),
        }
    }

    fn context(&self, e: EnvError, context: &str) -> EnvError {
        match e {
            EnvError::Failed { env, message } => EnvError::Failed {
                env,
                message: format!("{context}: {message}"),
            },
            e => e,
        }
    }

    /// Reads an answer `{observation, reward, done}` into leafe's terms.
    fn read(&self, answer: &Value, context: &str) -> Result<Answer> {
        let obs = &answer["observation"];
        if !obs.is_object() {
            return Err(self.failed(format!(
                "{context}: no `observation` object in the answer: {}",
                one_line(&answer.to_string(), 160)
            )));
        }
        let m = &self.mapping;
        let legal = match m.legal.as_ref().map(|f| &obs[f]) {
            Some(Value::Array(a)) => a
                .iter()
                .map(|x| match x {
                    Value::String(s) => s.clone(),
                    v => v.to_string(),
                })
                .collect(),
            _ => m.actions.names().to_vec(),
        };
        let done = answer["done"].as_bool().unwrap_or(false);
        let reward = answer["reward"].as_f64().unwrap_or(0.0) as f32;
        let success = match m.success.as_ref().map(|f| &obs[f]) {
            Some(Value::Bool(b)) => *b,
            _ => done && reward > 0.0,
        };
        Ok(Answer {
            observation: Observation::text(m.text_of(obs)),
            legal,
            done,
            reward,
            success,
            feedback: m
                .feedback
                .as_ref()
                .and_then(|f| obs[f].as_str())
                .map(|s| one_line(s, 400))
                .unwrap_or_default(),
        })
    }
}

impl Drop for OpenEnvPool {
    fn drop(&mut self) {
        let n = self.resync_steps();
        if n > 0 {
            tracing::info!(env = %self.label, steps = n, "steps replayed to re-synchronise shared sessions");
        }
    }
}

struct Answer {
    observation: Observation,
    legal: Vec<String>,
    done: bool,
    reward: f32,
    success: bool,
    feedback: String,
}

/// An episode on an OpenEnv server (see the module docs). The task is the
/// task id sent in `reset` (`task_id`, or the field `?task=` names).
#[derive(Debug)]
pub struct OpenEnvEnv {
    pool: Arc<OpenEnvPool>,
    id: u64,
    slot: usize,
    task: Option<String>,
    seed: u64,
    /// The observation after the reset, to verify a re-synchronisation.
    start: Observation,
    /// Actions taken since the reset and the observation after each.
    done: Vec<(String, Observation)>,
    status: Status,
    observation: Observation,
    legal: Vec<String>,
    /// A failed request left the session in an unknown state.
    dead: bool,
}

impl OpenEnvEnv {
    fn episode_id(&self) -> String {
        format!("leafe-{}-{}", self.id, self.seed)
    }

    /// Takes the session for this episode, re-synchronising it when another
    /// episode used it since.
    fn claim(&mut self) -> Result<()> {
        let pool = self.pool.clone();
        let mut session = pool.sessions[self.slot].lock().expect("session");
        if session.owner == self.id && !self.dead {
            return Ok(());
        }
        session.owner = self.id;
        let Some(task) = self.task.clone() else {
            return Ok(());
        };
        let again = pool.reset_on(self.slot, &task, self.seed, &self.episode_id())?;
        let diverged = |t: usize| EnvError::NonDeterministic {
            env: pool.label.clone(),
            task_id: task.clone(),
            t,
        };
        if pool.read(&again, "reset")?.observation != self.start {
            return Err(diverged(0));
        }
        for (t, (action, after)) in self.done.iter().enumerate() {
            pool.resync_steps.fetch_add(1, Ordering::Relaxed);
            let v = pool.step_on(self.slot, &task, action)?;
            if pool.read(&v, "step")?.observation != *after {
                return Err(diverged(t + 1));
            }
        }
        self.dead = false;
        Ok(())
    }

    fn guard<T>(&mut self, r: Result<T>) -> Result<T> {
        if let Err(e) = &r
            && !matches!(e, EnvError::InvalidAction { .. })
        {
            self.dead = true;
        }
        r
    }

    /// Over HTTP, once per server: a server whose `/state` counts no step
    /// after one keeps no episode between requests.
    fn check_http_state(&self) -> Result<()> {
        let pool = &self.pool;
        if pool.config.is_ws() || pool.checked_state.swap(true, Ordering::Relaxed) {
            return Ok(());
        }
        let state = pool.request(Op::Get("/state"))?;
        if state["step_count"].as_u64() == Some(0) {
            return Err(pool.failed(
                "the server's HTTP endpoints keep no episode between requests (GET /state counts 0 steps after a step: \
                 openenv-core builds a fresh environment per HTTP request); use ws://HOST:PORT"
                    .into(),
            ));
        }
        Ok(())
    }
}

impl Env for OpenEnvEnv {
    type Task = String;
    type Snapshot = ();

    fn name(&self) -> &str {
        &self.pool.label
    }

    fn task_id(&self, task: &String) -> String {
        task.clone()
    }

    fn action_space(&self) -> &ActionSpace {
        &self.pool.mapping.actions
    }

    fn reset(&mut self, task: &String, seed: u64) -> Result<Observation> {
        self.task = None;
        self.seed = seed;
        let pool = self.pool.clone();
        let r = self.claim().and_then(|_| {
            let episode = format!("leafe-{}-{seed}", self.id);
            let v = pool.reset_on(self.slot, task, seed, &episode)?;
            pool.read(&v, &format!("task {task}: reset"))
        });
        let a = self.guard(r)?;
        self.task = Some(task.clone());
        self.start = a.observation.clone();
        self.done.clear();
        self.status = Status::Running;
        self.observation = a.observation.clone();
        self.legal = a.legal;
        self.dead = false;
        Ok(a.observation)
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
        if self.status.is_terminal() {
            return Err(EnvError::EpisodeOver {
                status: self.status,
            });
        }
        let task = self.task.clone().unwrap_or_default();
        let pool = self.pool.clone();
        let r = self.claim().and_then(|_| {
            let v = pool.step_on(self.slot, &task, action)?;
            pool.read(&v, &format!("task {task}: step"))
        });
        let a = self.guard(r)?;
        if self.done.is_empty() {
            let r = self.check_http_state();
            self.guard(r)?;
        }
        self.done.push((action.to_string(), a.observation.clone()));
        let limit = pool.config.max_steps;
        self.status = if a.done && a.success {
            Status::Solved
        } else if a.done {
            Status::Unsolvable
        } else if limit > 0 && self.done.len() >= limit {
            Status::StepLimit
        } else {
            Status::Running
        };
        self.observation = a.observation;
        self.legal = a.legal;
        Ok(Transition {
            reward: a.reward,
            status: self.status,
            feedback: a.feedback,
            flags: Vec::new(),
            mistakes: Vec::new(),
            info: None,
        })
    }

    fn snapshot(&mut self) -> Result<Option<()>> {
        Ok(None)
    }

    fn restore(&mut self, _: &()) -> Result<()> {
        Err(self.pool.failed("OpenEnv has no snapshots".into()))
    }

    fn status(&self) -> Status {
        self.status
    }

    fn steps(&self) -> usize {
        self.done.len()
    }
}

#[cfg(test)]
mod tests;
