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

/// How the server's observations and actions map to leafe's.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    /// Observation field of the text; `None`: the observation as JSON.
    pub text: Option<String>,
    /// Action field that takes the action string.
    pub action: String,
    /// Whether that field is an integer (the string is sent as a number).
    pub action_is_integer: bool,
    /// The action space: the field's enum (or integer range) as a choice,
    /// else free text.
    pub actions: ActionSpace,
    /// Observation field of the legal actions.
    pub legal: Option<String>,
    /// Observation field of success.
    pub success: Option<String>,
    /// Observation field of feedback.
    pub feedback: Option<String>,
}

/// Observation fields tried, in order, as the text.
const TEXT_FIELDS: &[&str] = &[
    "text",
    "prompt",
    "observation",
    "message",
    "content",
    "board",
    "echoed_message",
];
/// Observation fields tried, in order, as the legal actions.
const LEGAL_FIELDS: &[&str] = &[
    "legal_actions",
    "valid_actions",
    "available_actions",
    "admissible_commands",
    "legal_moves",
];
/// Observation fields tried, in order, as success.
const SUCCESS_FIELDS: &[&str] = &["success", "won", "solved", "is_success"];
/// Observation fields tried, in order, as feedback.
const FEEDBACK_FIELDS: &[&str] = &["feedback", "last_action_error", "error"];
/// Fields every OpenEnv model carries that are not the environment's own.
const BASE_FIELDS: &[&str] = &["metadata", "done", "reward"];

/// The type named by a JSON-schema property (`anyOf` with null unwrapped).
fn json_type(prop: &Value) -> Option<&str> {
    if let Some(t) = prop["type"].as_str() {
        return Some(t);
    }
    prop["anyOf"]
        .as_array()?
        .iter()
        .filter_map(|p| p["type"].as_str())
        .find(|t| *t != "null")
}

impl Mapping {
    /// Reads the mapping from `/schema`'s answer, with `config`'s choices
    /// first. `label` names the server in errors.
    ///
    /// # Errors
    /// A schema without `action`/`observation` objects, a configured field
    /// the schema lacks, or an action model whose text field cannot be told.
    pub fn from_schema(schema: &Value, config: &OpenEnvConfig, label: &str) -> Result<Mapping> {
        let failed = |message: String| EnvError::Failed {
            env: label.to_string(),
            message,
        };
        let props = |which: &str| -> Result<serde_json::Map<String, Value>> {
            schema[which]["properties"]
                .as_object()
                .cloned()
                .ok_or_else(|| {
                    failed(format!(
                        "GET /schema: no `{which}.properties` (is this an OpenEnv server?)"
                    ))
                })
        };
        let action_props = props("action")?;
        let obs_props = props("observation")?;
        let own = |p: &serde_json::Map<String, Value>| -> Vec<String> {
            p.keys()
                .filter(|k| !BASE_FIELDS.contains(&k.as_str()))
                .cloned()
                .collect()
        };
        let action = match &config.action_field {
            Some(f) if action_props.contains_key(f) => f.clone(),
            Some(f) => {
                return Err(failed(format!(
                    "action field {f:?} is not in the server's action schema (fields: {})",
                    own(&action_props).join(", ")
                )));
            }
            None => {
                let required: Vec<String> = schema["action"]["required"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                let fields = own(&action_props);
                let candidates = if required.len() == 1 {
                    required
                } else {
                    fields.clone()
                };
                match candidates.as_slice() {
                    [one] => one.clone(),
                    _ => {
                        return Err(failed(format!(
                            "cannot tell which action field takes the action text; add ?action=FIELD to the URL (fields: {})",
                            fields.join(", ")
                        )));
                    }
                }
            }
        };
        let prop = &action_props[&action];
        let kind = json_type(prop).unwrap_or("string");
        let (actions, action_is_integer) = match kind {
            "integer" => {
                let (lo, hi) = (prop["minimum"].as_i64(), prop["maximum"].as_i64());
                match (lo, hi) {
                    (Some(lo), Some(hi)) if hi >= lo && hi - lo < 4096 => (
                        ActionSpace::Choice((lo..=hi).map(|i| i.to_string()).collect()),
                        true,
                    ),
                    _ => (ActionSpace::FreeText, true),
                }
            }
            "string" => match prop["enum"].as_array() {
                Some(names) => (
                    ActionSpace::Choice(
                        names
                            .iter()
                            .filter_map(|n| n.as_str().map(str::to_string))
                            .collect(),
                    ),
                    false,
                ),
                None => (ActionSpace::FreeText, false),
            },
            other => {
                return Err(failed(format!(
                    "action field {action:?} is of type {other:?}; leafe writes actions as strings or integers (choose another with ?action=FIELD)"
                )));
            }
        };
        let pick = |configured: &Option<String>,
                    defaults: &[&str],
                    want: &str,
                    what: &str|
         -> Result<Option<String>> {
            match configured {
                Some(f) if obs_props.contains_key(f) => Ok(Some(f.clone())),
                Some(f) => Err(failed(format!(
                    "{what} field {f:?} is not in the server's observation schema (fields: {})",
                    own(&obs_props).join(", ")
                ))),
                None => Ok(defaults
                    .iter()
                    .find(|f| obs_props.get(**f).and_then(json_type) == Some(want))
                    .map(|f| f.to_string())),
            }
        };
        let mut text = pick(&config.text_field, TEXT_FIELDS, "string", "text")?;
        if text.is_none() {
            // The only string field, if there is exactly one.
            let strings: Vec<&String> = obs_props
                .iter()
                .filter(|(k, p)| {
                    !BASE_FIELDS.contains(&k.as_str()) && json_type(p) == Some("string")
                })
                .map(|(k, _)| k)
                .collect();
            if let [one] = strings.as_slice() {
                text = Some((*one).clone());
            }
        }
        Ok(Mapping {
            text,
            action,
            action_is_integer,
            actions,
            legal: pick(&config.legal_field, LEGAL_FIELDS, "array", "legal")?,
            success: pick(&config.success_field, SUCCESS_FIELDS, "boolean", "success")?,
            feedback: pick(
                &config.feedback_field,
                FEEDBACK_FIELDS,
                "string",
                "feedback",
            )?,
        })
    }

    /// The observation text of an observation object.
    fn text_of(&self, obs: &Value) -> String {
        match &self.text {
            Some(f) => match &obs[f] {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                v => v.to_string(),
            },
            None => {
                let mut o = obs.clone();
                if let Some(m) = o.as_object_mut() {
                    for f in BASE_FIELDS {
                        m.remove(*f);
                    }
                }
                o.to_string()
            }
        }
    }
}

/// One request to the network thread.
enum Op {
    Get(&'static str),
    Post(&'static str, Value),
    /// A message on WebSocket session `slot`.
    Ws(usize, Value),
}

type Reply = std::result::Result<Value, Failure>;

/// A failed request: its one-line reason, and whether the action was refused
/// (HTTP 422, `VALIDATION_ERROR`) rather than the server failing.
#[derive(Debug)]
struct Failure {
    message: String,
    refused: bool,
}

impl Failure {
    fn new(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            refused: false,
        }
    }
}

/// The network thread: owns the HTTP client and the WebSocket sessions.
async fn network(config: OpenEnvConfig, jobs: std::sync::mpsc::Receiver<(Op, Sender<Reply>)>) {
    type Ws = tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >;
    let timeout = Duration::from_millis(config.timeout_ms);
    let client = reqwest::Client::builder().timeout(timeout).build();
    let base = config.http_base();
    let mut sockets: HashMap<usize, Ws> = HashMap::new();
    // Blocking receive is fine: this thread does nothing else between jobs.
    while let Ok((op, reply)) = jobs.recv() {
        let out = match op {
            Op::Get(path) | Op::Post(path, _) if client.is_err() => Err(Failure::new(format!(
                "{path}: cannot build the HTTP client: {}",
                client
                    .as_ref()
                    .err()
                    .map(|e| e.to_string())
                    .unwrap_or_default()
            ))),
            Op::Get(path) => {
                let c = client.as_ref().expect("checked");
                http(
                    c.get(format!("{base}{path}")),
                    "GET",
                    path,
                    config.timeout_ms,
                )
                .await
            }
            Op::Post(path, body) => {
                let c = client.as_ref().expect("checked");
                http(
                    c.post(format!("{base}{path}"))
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .body(body.to_string()),
                    "POST",
                    path,
                    config.timeout_ms,
                )
                .await
            }
            Op::Ws(slot, message) => {
                let kind = message["type"].as_str().unwrap_or("?").to_string();
                let exchange = async {
                    if !sockets.contains_key(&slot) {
                        let url = format!("{}/ws", config.url);
                        let (ws, _) = tokio_tungstenite::connect_async(url.as_str())
                            .await
                            .map_err(|e| Failure::new(format!("cannot open {url}: {e}")))?;
                        sockets.insert(slot, ws);
                    }
                    let ws = sockets.get_mut(&slot).expect("inserted");
                    ws.send(tokio_tungstenite::tungstenite::Message::text(
                        message.to_string(),
                    ))
                    .await
                    .map_err(|e| Failure::new(format!("{kind}: sending: {e}")))?;
                    loop {
                        match ws.next().await {
                            None => {
                                return Err(Failure::new(format!(
                                    "{kind}: the server closed the WebSocket"
                                )));
                            }
                            Some(Err(e)) => {
                                return Err(Failure::new(format!("{kind}: receiving: {e}")));
                            }
                            Some(Ok(m)) if m.is_text() || m.is_binary() => {
                                let text = m.into_text().unwrap_or_default();
                                return ws_answer(&kind, text.as_str());
                            }
                            Some(Ok(m)) if m.is_close() => {
                                return Err(Failure::new(format!(
                                    "{kind}: the server closed the WebSocket ({m})"
                                )));
                            }
                            Some(Ok(_)) => continue,
                        }
                    }
                };
                match tokio::time::timeout(timeout, exchange).await {
                    Ok(Ok(v)) => Ok(v),
                    Ok(Err(f)) => {
                        if !f.refused {
                            sockets.remove(&slot);
                        }
                        Err(f)
                    }
                    Err(_) => {
                        sockets.remove(&slot);
                        Err(Failure::new(format!(
                            "{kind}: no answer within {} ms (the session was dropped)",
                            config.timeout_ms
                        )))
                    }
                }
            }
        };
        let _ = reply.send(out);
    }
    for (_, mut ws) in sockets {
        let _ = tokio::time::timeout(
            Duration::from_millis(500),
            ws.send(tokio_tungstenite::tungstenite::Message::text(
                json!({"type": "close"}).to_string(),
            )),
        )
        .await;
        let _ = tokio::time::timeout(Duration::from_millis(500), ws.close(None)).await;
    }
}

/// An HTTP request's JSON answer, or its one-line failure.
async fn http(
    request: reqwest::RequestBuilder,
    method: &str,
    path: &str,
    timeout_ms: u64,
) -> Reply {
    let what = format!("{method} {path}");
    let response = request.send().await.map_err(|e| {
        Failure::new(if e.is_timeout() {
            format!("{what}: no answer within {timeout_ms} ms")
        } else if e.is_connect() {
            format!("{what}: cannot connect (is the server running?)")
        } else {
            format!("{what}: {e}")
        })
    })?;
    let status = response.status();
    let body = response.text().await.map_err(|e| {
        Failure::new(if e.is_timeout() {
            format!("{what}: no answer within {timeout_ms} ms")
        } else {
            format!("{what}: reading the answer: {e}")
        })
    })?;
    let short = || one_line(&body, 200);
    if status.as_u16() == 422 {
        return Err(Failure {
            message: format!("{what}: the server refused the request (422): {}", short()),
            refused: true,
        });
    }
    if status.as_u16() == 404 || status.as_u16() == 405 {
        return Err(Failure::new(format!(
            "{what}: answered {status}: not an OpenEnv server, or one in production mode without /reset and /step"
        )));
    }
    if !status.is_success() {
        return Err(Failure::new(format!(
            "{what}: server error {status}: {}",
            short()
        )));
    }
    serde_json::from_str(&body).map_err(|_| {
        Failure::new(format!(
            "{what}: the answer is not JSON (is this an OpenEnv server?): {}",
            short()
        ))
    })
}

/// A WebSocket answer: the `data` of an `observation`/`state` message.
fn ws_answer(kind: &str, text: &str) -> Reply {
    let v: Value = serde_json::from_str(text).map_err(|_| {
        Failure::new(format!(
            "{kind}: the answer is not JSON (is this an OpenEnv server?): {}",
            one_line(text, 200)
        ))
    })?;
    match v["type"].as_str() {
        Some("observation") | Some("state") => Ok(v["data"].clone()),
        Some("error") => {
            let code = v["data"]["code"].as_str().unwrap_or("?");
            Err(Failure {
                message: format!(
                    "{kind}: the server answered {code}: {}",
                    one_line(
                        &match &v["data"]["errors"] {
                            Value::Null => v["data"]["message"].as_str().unwrap_or("").to_string(),
                            e => format!("{} {e}", v["data"]["message"].as_str().unwrap_or("")),
                        },
                        200
                    )
                ),
                refused: code == "VALIDATION_ERROR",
            })
            .map_err(|mut f: Failure| {
                if code == "CAPACITY_REACHED" {
                    f.message.push_str(
                        " (the server allows fewer WebSocket sessions: lower ?sessions=, or raise its max_concurrent_envs)",
                    );
                }
                f
            })
        }
        _ => Err(Failure::new(format!(
            "{kind}: unexpected answer (not OpenEnv's {{type, data}}): {}",
            one_line(text, 200)
        ))),
    }
}

fn one_line(s: &str, max: usize) -> String {
    let s: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.chars().count() > max {
        format!("{}…", s.chars().take(max).collect::<String>())
    } else {
        s
    }
}

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
mod tests {
    use super::*;

    fn config(spec: &str) -> OpenEnvConfig {
        OpenEnvConfig::parse(spec, 1000, 0).unwrap()
    }

    #[test]
    fn specs_parse_with_options_and_refuse_what_cannot_work() {
        let c = config("ws://127.0.0.1:8000/?action=command&sessions=4&text=prompt");
        assert_eq!(c.url, "ws://127.0.0.1:8000");
        assert_eq!(c.action_field.as_deref(), Some("command"));
        assert_eq!(c.text_field.as_deref(), Some("prompt"));
        assert_eq!(c.sessions, 4);
        assert_eq!(c.http_base(), "http://127.0.0.1:8000");
        // HTTP has one session whatever is asked.
        assert_eq!(config("http://h:1?sessions=4").sessions, 1);
        for bad in [
            "ftp://h:1",
            "wss://h:1",
            "http://h:1?colour=red",
            "ws://h:1?sessions=x",
            "nonsense",
        ] {
            let e = OpenEnvConfig::parse(bad, 1000, 0).unwrap_err().to_string();
            assert!(e.contains("--env openenv:"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_mapping_is_read_from_the_schema_with_defaults_and_options() {
        let schema = json!({
            "action": {"properties": {"metadata": {}, "command": {"type": "string"}}, "required": ["command"]},
            "observation": {"properties": {
                "done": {"type": "boolean"}, "reward": {}, "metadata": {},
                "text": {"type": "string"}, "legal_actions": {"type": "array"}, "success": {"type": "boolean"}
            }},
            "state": {}
        });
        let m = Mapping::from_schema(&schema, &config("http://h:1"), "x").unwrap();
        assert_eq!(m.action, "command");
        assert_eq!(m.text.as_deref(), Some("text"));
        assert_eq!(m.legal.as_deref(), Some("legal_actions"));
        assert_eq!(m.success.as_deref(), Some("success"));
        assert_eq!(m.actions, ActionSpace::FreeText);
        // An integer action with bounds is a choice; two action fields need ?action=.
        let schema = json!({
            "action": {"properties": {"metadata": {}, "a": {"type": "integer", "minimum": 0, "maximum": 3}, "b": {"type": "string"}}},
            "observation": {"properties": {"grid": {"type": "string"}}},
        });
        let e = Mapping::from_schema(&schema, &config("http://h:1"), "x").unwrap_err();
        assert!(e.to_string().contains("?action=FIELD"), "{e}");
        let m = Mapping::from_schema(&schema, &config("http://h:1?action=a"), "x").unwrap();
        assert_eq!(m.actions, ActionSpace::choice(&["0", "1", "2", "3"]));
        assert!(m.action_is_integer);
        assert_eq!(m.text.as_deref(), Some("grid"), "the only string field");
        let e = Mapping::from_schema(&schema, &config("http://h:1?action=a&legal=moves"), "x")
            .unwrap_err();
        assert!(e.to_string().contains("\"moves\""), "{e}");
        let e = Mapping::from_schema(&json!({"detail": "Not Found"}), &config("http://h:1"), "x")
            .unwrap_err();
        assert!(e.to_string().contains("OpenEnv"), "{e}");
    }
}
