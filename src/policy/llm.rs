//! An LLM as the policy, over any OpenAI-compatible chat-completions server
//! (vLLM, SGLang, llama.cpp's `llama-server`, Ollama, OpenAI).
//!
//! One request per turn, all turns of a batch in flight at once (up to
//! `max_in_flight`). The prompt: the system prompt (the environment's rules),
//! then one user message with the experience summary while a branch is
//! sampled, the last `history` steps (observation, action, feedback), the
//! current observation and the legal actions. With a choice action space the
//! reply is constrained by `response_format` (a JSON schema whose `action`
//! is an enum of the legal actions) where the server supports it; every
//! reply is parsed (`{"action": …}` or a bare action) and checked. An
//! invalid reply is asked again once, with what was wrong; still invalid, a
//! legal action is drawn from the episode's own stream instead and counted
//! ([`LlmStats::invalid`]). Transport failures (connection, timeout, 429,
//! 5xx) are retried with exponential backoff; other HTTP errors fail the
//! call with the server's message. A `seed` drawn from the episode's stream
//! goes with every request, so a server that honours seeds answers the same
//! run the same way. Log-probabilities are kept when the server returns them.
//!
//! The HTTP client runs on a runtime of its own, on a thread of its own, so
//! the policy works from synchronous code and from inside an async job.
//!
//! Every request, its reply and what was read from it go to a [`CallLog`]
//! when one is attached ([`LlmPolicy::with_log`]): the jobs write it to the
//! store's `llm_calls` table, and `steps.llm_call_id` /
//! `reflections.llm_call_id` point at the call that chose the action or
//! wrote the reflection. The same log can answer requests from calls a
//! store recorded ([`Replay`]), so a re-run is the same run without a server.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::{Value, json};

use super::{Decision, Policy, PolicyError, Result, Turn};

/// Settings of [`LlmPolicy`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LlmConfig {
    /// The server's OpenAI-compatible base URL, e.g. `http://127.0.0.1:8080/v1`.
    pub base_url: String,
    /// The model name sent with every request.
    pub model: String,
    /// The environment variable holding the API key (sent as a bearer
    /// token when set; local servers need none).
    pub api_key_env: String,
    /// The system prompt: the environment's rules and how to answer.
    pub system_prompt: String,
    /// Steps of history in the prompt (the most recent ones).
    pub history: usize,
    /// Timeout of one request.
    pub timeout_ms: u64,
    /// Retries of a request that failed in transport (connection, timeout,
    /// 429, 5xx).
    pub retries: usize,
    /// First backoff between retries; doubled each time.
    pub backoff_ms: u64,
    /// Requests in flight at once.
    pub max_in_flight: usize,
    /// Constrain replies with `response_format` (a JSON schema with an enum
    /// of the legal actions) for choice action spaces.
    pub json_schema: bool,
    /// Ask for log-probabilities of the reply's tokens.
    pub logprobs: bool,
    /// Sampling temperature sent to the server (the `act` temperature is
    /// not used: servers sample).
    pub temperature: f32,
    /// Tokens a reply may take.
    pub max_tokens: u32,
}

impl Default for LlmConfig {
    fn default() -> Self {
        LlmConfig {
            base_url: "http://127.0.0.1:8080/v1".into(),
            model: "default".into(),
            api_key_env: "OPENAI_API_KEY".into(),
            system_prompt: "You are an agent acting in an environment. Choose the next action."
                .into(),
            history: 8,
            timeout_ms: 60_000,
            retries: 3,
            backoff_ms: 500,
            max_in_flight: 64,
            json_schema: true,
            logprobs: false,
            temperature: 1.0,
            max_tokens: 64,
        }
    }
}

/// What the policy did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct LlmStats {
    /// Requests answered.
    pub requests: u64,
    /// Requests retried after a transport failure.
    pub retried: u64,
    /// Replies asked again because they were not a legal action.
    pub reasked: u64,
    /// Turns where no valid reply came and a legal action was drawn.
    pub invalid: u64,
    /// Tokens the server reported (prompt + completion).
    pub tokens: u64,
    /// Requests answered from recorded replies (`--llm-replay`), among
    /// `requests`.
    pub replayed: u64,
}

/// Whether recorded replies answer requests instead of the server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Replay {
    /// Every request goes to the server.
    #[default]
    Off,
    /// A request recorded before is answered from the record; others go to
    /// the server.
    Cache,
    /// Every request must have been recorded; one that was not is an error
    /// (a re-run without a server).
    Only,
}

/// One request to the model, as the `llm_calls` table stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmCall {
    /// Id, unique within the log (and so within a run).
    pub call_id: i64,
    /// `act` or `reflect`.
    pub kind: &'static str,
    /// 0, or 1 when the model was asked again.
    pub attempt: i32,
    /// Model name sent.
    pub model: String,
    /// [`request_key`] of the body.
    pub request_key: String,
    /// Seed sent, if any.
    pub seed: Option<i64>,
    /// The messages sent, as JSON.
    pub messages: String,
    /// The reply's text, if a reply came.
    pub completion: Option<String>,
    /// What was read from it: the action, or the reflection's tau.
    pub parsed: Option<String>,
    /// Whether it was accepted.
    pub valid: bool,
    /// Why not, when not.
    pub error: Option<String>,
    /// `usage.prompt_tokens`.
    pub prompt_tokens: Option<i64>,
    /// `usage.completion_tokens`.
    pub completion_tokens: Option<i64>,
    /// Sum of the returned token log-probabilities.
    pub log_prob: Option<f32>,
    /// Wall time, retries included.
    pub latency_ms: f64,
    /// Transport retries.
    pub retries: i32,
    /// Answered from the replay cache.
    pub cached: bool,
    /// The server's reply body.
    pub response: Option<String>,
    /// When it was made.
    pub created_at_us: i64,
}

/// The calls a policy and a reflector made, waiting to be written, and the
/// recorded replies that may answer requests ([`Replay`]). Share one log
/// between an [`LlmPolicy`] and an [`LlmReflector`] so their call ids do not
/// collide.
#[derive(Debug, Default)]
pub struct CallLog {
    next_id: AtomicI64,
    calls: Mutex<Vec<LlmCall>>,
    replay: Replay,
    recorded: HashMap<String, String>,
}

impl CallLog {
    /// A log that records and never replays.
    pub fn new() -> CallLog {
        CallLog::default()
    }

    /// A log that answers by `replay` from `recorded` (request key, reply
    /// body) pairs — the `request_key` and `response` columns of a store's
    /// `llm_calls`. The first reply of a key wins.
    pub fn with_replay(
        replay: Replay,
        recorded: impl IntoIterator<Item = (String, String)>,
    ) -> CallLog {
        let mut map = HashMap::new();
        for (k, v) in recorded {
            map.entry(k).or_insert(v);
        }
        CallLog {
            replay,
            recorded: map,
            ..CallLog::default()
        }
    }

    /// Recorded replies available to the replay.
    pub fn recorded(&self) -> usize {
        self.recorded.len()
    }

    /// Takes the calls logged so far (in the order they were made).
    pub fn take(&self) -> Vec<LlmCall> {
        std::mem::take(&mut *self.calls.lock().expect("call log"))
    }

    /// Logs a call; returns its id.
    fn push(&self, mut call: LlmCall) -> i64 {
        call.call_id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let id = call.call_id;
        self.calls.lock().expect("call log").push(call);
        id
    }

    /// The recorded reply to a request, per the replay mode: `Ok(None)` to
    /// ask the server.
    fn lookup(&self, key: &str) -> std::result::Result<Option<Value>, String> {
        if self.replay == Replay::Off {
            return Ok(None);
        }
        match self.recorded.get(key) {
            Some(body) => serde_json::from_str(body)
                .map(Some)
                .map_err(|e| format!("the recorded reply of request {key} is not JSON ({e})")),
            None if self.replay == Replay::Only => Err(format!(
                "no recorded reply for request {key} (--llm-replay only answers only what a run recorded)"
            )),
            None => Ok(None),
        }
    }
}

/// A stable key of a request body: two 64-bit FNV-1a hashes of its JSON
/// text, in hex. Equal bodies give equal keys on every machine and build.
pub fn request_key(body: &Value) -> String {
    let text = body.to_string();
    let fnv = |basis: u64| {
        text.bytes().fold(basis, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    };
    format!(
        "{:016x}{:016x}",
        fnv(0xcbf2_9ce4_8422_2325),
        fnv(0x6c62_272e_07bb_0142)
    )
}

/// A reply and how it came.
#[derive(Debug, Clone)]
struct Reply {
    body: Value,
    latency_ms: f64,
    retries: i32,
    cached: bool,
}

/// What became of one request: its key and its reply, or why none came.
type Sent = (String, std::result::Result<Reply, String>);

/// One request for the worker thread.
type Job = (Vec<Value>, Sender<Vec<std::result::Result<Reply, String>>>);

/// An LLM policy (see the module docs).
#[derive(Debug)]
pub struct LlmPolicy {
    name: String,
    config: LlmConfig,
    jobs: Mutex<Sender<Job>>,
    stats: Mutex<LlmStats>,
    log: Option<Arc<CallLog>>,
}

impl LlmPolicy {
    /// A policy named `name` (recorded as `episodes.policy`).
    ///
    /// # Errors
    /// [`PolicyError::Llm`] when the HTTP client or its runtime cannot start.
    pub fn new(name: impl Into<String>, config: LlmConfig) -> Result<LlmPolicy> {
        let endpoint = format!("{}/chat/completions", config.base_url.trim_end_matches('/'));
        let fail = |message: String| PolicyError::Llm {
            endpoint: endpoint.clone(),
            message,
        };
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.timeout_ms))
            .build()
            .map_err(|e| fail(e.to_string()))?;
        let key = std::env::var(&config.api_key_env)
            .ok()
            .filter(|k| !k.is_empty());
        let (tx, rx) = channel::<Job>();
        let worker = config.clone();
        let url = endpoint.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| fail(e.to_string()))?;
        std::thread::Builder::new()
            .name("leafe-llm".into())
            .spawn(move || {
                while let Ok((bodies, reply)) = rx.recv() {
                    let out =
                        runtime.block_on(send_all(&client, &url, key.as_deref(), &worker, bodies));
                    let _ = reply.send(out);
                }
            })
            .map_err(|e| fail(e.to_string()))?;
        Ok(LlmPolicy {
            name: name.into(),
            config,
            jobs: Mutex::new(tx),
            stats: Mutex::new(LlmStats::default()),
            log: None,
        })
    }

    /// Logs every call to `log` (and answers from it, per its [`Replay`]).
    pub fn with_log(mut self, log: Arc<CallLog>) -> LlmPolicy {
        self.log = Some(log);
        self
    }

    /// Logs one call (nothing without a log); returns its id.
    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        kind: &'static str,
        attempt: i32,
        body: &Value,
        sent: &Sent,
        parsed: Option<String>,
        error: Option<String>,
    ) -> Option<i64> {
        let log = self.log.as_ref()?;
        let (key, reply) = sent;
        let reply = reply.as_ref().ok();
        let r = reply.map(|r| &r.body);
        let usage = |k: &str| r.and_then(|r| r["usage"][k].as_i64());
        Some(
            log.push(LlmCall {
                call_id: 0,
                kind,
                attempt,
                model: self.config.model.clone(),
                request_key: key.clone(),
                seed: body["seed"].as_i64(),
                messages: body["messages"].to_string(),
                completion: r.and_then(|r| {
                    r["choices"][0]["message"]["content"]
                        .as_str()
                        .map(str::to_string)
                }),
                valid: error.is_none(),
                parsed,
                error,
                prompt_tokens: usage("prompt_tokens"),
                completion_tokens: usage("completion_tokens"),
                log_prob: r
                    .and_then(|r| r["choices"][0]["logprobs"]["content"].as_array())
                    .map(|t| t.iter().filter_map(|x| x["logprob"].as_f64()).sum::<f64>() as f32),
                latency_ms: reply.map_or(0.0, |r| r.latency_ms),
                retries: reply.map_or(0, |r| r.retries),
                cached: reply.is_some_and(|r| r.cached),
                response: r.map(Value::to_string),
                created_at_us: crate::store::now_us(),
            }),
        )
    }

    /// What the policy did so far.
    pub fn stats(&self) -> LlmStats {
        *self.stats.lock().expect("stats")
    }

    fn endpoint(&self) -> String {
        format!(
            "{}/chat/completions",
            self.config.base_url.trim_end_matches('/')
        )
    }

    /// The request body for a turn (`correction`: what was wrong with the
    /// previous reply, when asking again).
    fn body(&self, turn: &Turn<'_>, seed: u64, correction: Option<&str>) -> Value {
        let mut user = String::new();
        if let Some(e) = turn.experience {
            user.push_str("Experience from an earlier attempt at this task:\n");
            user.push_str(&e.summary());
            user.push_str("\n\n");
        }
        let recent = &turn.history[turn.history.len().saturating_sub(self.config.history)..];
        if !recent.is_empty() {
            user.push_str("Recent steps:\n");
            for s in recent {
                user.push_str(&format!(
                    "step {}:\n{}\naction: {}\nfeedback: {}\n",
                    s.t, s.observation.text, s.action, s.transition.feedback
                ));
            }
            user.push('\n');
        }
        user.push_str(&format!(
            "Current observation (step {}):\n{}\n\n",
            turn.t(),
            turn.observation.text
        ));
        if !turn.legal.is_empty() {
            user.push_str(&format!("Legal actions: {}\n", turn.legal.join(", ")));
        }
        user.push_str("Reply with JSON: {\"action\": \"<your action>\"}");
        let mut messages = vec![
            json!({ "role": "system", "content": self.config.system_prompt }),
            json!({ "role": "user", "content": user }),
        ];
        if let Some(c) = correction {
            messages.push(json!({ "role": "user", "content": c }));
        }
        let mut body = json!({
            "model": self.config.model,
            "messages": messages,
            "temperature": self.config.temperature,
            "max_tokens": self.config.max_tokens,
            "seed": seed,
        });
        if self.config.logprobs {
            body["logprobs"] = json!(true);
        }
        if self.config.json_schema && !turn.legal.is_empty() {
            body["response_format"] = json!({
                "type": "json_schema",
                "json_schema": {
                    "name": "action",
                    "strict": true,
                    "schema": {
                        "type": "object",
                        "properties": { "action": { "type": "string", "enum": turn.legal } },
                        "required": ["action"],
                        "additionalProperties": false,
                    },
                },
            });
        }
        body
    }

    /// Sends the requests (all in flight), answering from the log's replay
    /// where it may; returns each request's key and reply in order.
    fn send(&self, bodies: &[Value]) -> Result<Vec<Sent>> {
        let failed = |m: &str| PolicyError::Llm {
            endpoint: self.endpoint(),
            message: m.into(),
        };
        let mut out: Vec<Sent> = Vec::with_capacity(bodies.len());
        let mut ask = Vec::new();
        for (i, body) in bodies.iter().enumerate() {
            let key = request_key(body);
            let answer = match &self.log {
                Some(log) => log.lookup(&key),
                None => Ok(None),
            };
            let reply = match answer {
                Ok(Some(body)) => Ok(Reply {
                    body,
                    latency_ms: 0.0,
                    retries: 0,
                    cached: true,
                }),
                Ok(None) => {
                    ask.push(i);
                    Err(String::new())
                }
                Err(why) => Err(why),
            };
            out.push((key, reply));
        }
        if ask.is_empty() {
            return Ok(out);
        }
        let (tx, rx) = channel();
        self.jobs
            .lock()
            .expect("jobs")
            .send((ask.iter().map(|&i| bodies[i].clone()).collect(), tx))
            .map_err(|_| failed("the client thread is gone"))?;
        let replies = rx.recv().map_err(|_| failed("the client thread is gone"))?;
        for (i, r) in ask.into_iter().zip(replies) {
            out[i].1 = r;
        }
        Ok(out)
    }
}

/// The action a reply names, if it names a legal one (any non-empty text
/// for a free-text space), and its log-probability when returned.
fn parse(reply: &Value, legal: &[String]) -> std::result::Result<(String, f32), String> {
    let content = reply["choices"][0]["message"]["content"]
        .as_str()
        .ok_or("the reply has no choices[0].message.content")?
        .trim();
    let action = match serde_json::from_str::<Value>(content) {
        Ok(v) if v["action"].is_string() => {
            v["action"].as_str().unwrap_or_default().trim().to_string()
        }
        _ => content
            .trim_matches(|c: char| c == '"' || c == '`' || c == '.' || c.is_whitespace())
            .to_string(),
    };
    if action.is_empty() {
        return Err("the reply names no action".into());
    }
    if !legal.is_empty() && !legal.contains(&action) {
        return Err(format!(
            "`{action}` is not one of the legal actions ({})",
            legal.join(", ")
        ));
    }
    let log_prob = reply["choices"][0]["logprobs"]["content"]
        .as_array()
        .map(|t| t.iter().filter_map(|x| x["logprob"].as_f64()).sum::<f64>() as f32)
        .unwrap_or(0.0);
    Ok((action, log_prob))
}

async fn send_all(
    client: &reqwest::Client,
    endpoint: &str,
    key: Option<&str>,
    config: &LlmConfig,
    bodies: Vec<Value>,
) -> Vec<std::result::Result<Reply, String>> {
    use futures::StreamExt;
    futures::stream::iter(
        bodies
            .into_iter()
            .map(|b| send_one(client, endpoint, key, config, b)),
    )
    .buffered(config.max_in_flight.max(1))
    .collect()
    .await
}

/// One request with retries.
async fn send_one(
    client: &reqwest::Client,
    endpoint: &str,
    key: Option<&str>,
    config: &LlmConfig,
    body: Value,
) -> std::result::Result<Reply, String> {
    let started = Instant::now();
    let mut attempt = 0;
    loop {
        let mut request = client
            .post(endpoint)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
        if let Some(k) = key {
            request = request.bearer_auth(k);
        }
        let outcome = match request.send().await {
            Err(e) => Err((true, format!("request failed: {e}"))),
            Ok(r) => {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                if status.is_success() {
                    serde_json::from_str::<Value>(&text)
                        .map_err(|e| (false, format!("the reply is not JSON ({e})")))
                } else {
                    let retry = status.as_u16() == 429 || status.is_server_error();
                    Err((
                        retry,
                        format!(
                            "HTTP {status}: {}",
                            text.chars().take(200).collect::<String>()
                        ),
                    ))
                }
            }
        };
        match outcome {
            Ok(v) => {
                return Ok(Reply {
                    body: v,
                    latency_ms: started.elapsed().as_secs_f64() * 1e3,
                    retries: attempt as i32,
                    cached: false,
                });
            }
            Err((true, m)) if attempt < config.retries => {
                tracing::debug!("retrying a chat completion: {m}");
                tokio::time::sleep(Duration::from_millis(config.backoff_ms << attempt.min(10)))
                    .await;
                attempt += 1;
            }
            Err((_, m)) => return Err(m),
        }
    }
}

impl Policy for LlmPolicy {
    fn name(&self) -> &str {
        &self.name
    }

    fn act(&self, turns: &mut [Turn<'_>], _temperature: f32) -> Result<Vec<Decision>> {
        let seeds: Vec<u64> = turns.iter_mut().map(|t| t.rng.random()).collect();
        let bodies: Vec<Value> = turns
            .iter()
            .zip(&seeds)
            .map(|(t, &s)| self.body(t, s, None))
            .collect();
        let replies = self.send(&bodies)?;
        let mut stats = LlmStats::default();
        let mut out: Vec<Option<Decision>> = vec![None; turns.len()];
        let mut again = Vec::new();
        for (i, sent) in replies.iter().enumerate() {
            let reply = match &sent.1 {
                Ok(r) => r,
                Err(m) => {
                    self.record("act", 0, &bodies[i], sent, None, Some(m.clone()));
                    return Err(PolicyError::Llm {
                        endpoint: self.endpoint(),
                        message: m.clone(),
                    });
                }
            };
            stats.requests += 1;
            stats.replayed += u64::from(reply.cached);
            stats.retried += reply.retries as u64;
            stats.tokens += reply.body["usage"]["total_tokens"].as_u64().unwrap_or(0);
            match parse(&reply.body, turns[i].legal) {
                Ok((action, log_prob)) => {
                    let call = self.record("act", 0, &bodies[i], sent, Some(action.clone()), None);
                    out[i] = Some(decision(action, log_prob, call));
                }
                Err(why) => {
                    let call = self.record("act", 0, &bodies[i], sent, None, Some(why.clone()));
                    again.push((i, why, call));
                }
            }
        }
        if !again.is_empty() {
            stats.reasked += again.len() as u64;
            let bodies: Vec<Value> = again
                .iter()
                .map(|(i, why, _)| {
                    let correction = format!("Your reply was not valid: {why}. Reply with JSON: {{\"action\": \"<one legal action>\"}}");
                    self.body(&turns[*i], seeds[*i].wrapping_add(1), Some(&correction))
                })
                .collect();
            let replies = self.send(&bodies)?;
            for (((i, why, first), sent), body) in again.iter().zip(&replies).zip(&bodies) {
                let parsed = sent.1.as_ref().map(|reply| {
                    stats.requests += 1;
                    stats.replayed += u64::from(reply.cached);
                    stats.tokens += reply.body["usage"]["total_tokens"].as_u64().unwrap_or(0);
                    parse(&reply.body, turns[*i].legal)
                });
                out[*i] = match parsed {
                    Ok(Ok((action, log_prob))) => {
                        let call = self.record("act", 1, body, sent, Some(action.clone()), None);
                        Some(decision(action, log_prob, call))
                    }
                    other => {
                        let error = match other {
                            Ok(Err(e)) => e,
                            Err(e) => e.clone(),
                            Ok(Ok(_)) => unreachable!("handled above"),
                        };
                        let call = self
                            .record("act", 1, body, sent, None, Some(error))
                            .or(*first);
                        // Still not a legal action: draw one, and count it.
                        stats.invalid += 1;
                        tracing::warn!(
                            "no valid action from the model ({why}); drawing a legal one"
                        );
                        let legal = turns[*i].legal;
                        if legal.is_empty() {
                            return Err(PolicyError::Llm {
                                endpoint: self.endpoint(),
                                message: format!("no valid free-text action: {why}"),
                            });
                        }
                        let pick = legal[turns[*i].rng.random_range(0..legal.len())].clone();
                        Some(decision(pick, 0.0, call))
                    }
                };
            }
        }
        let mut s = self.stats.lock().expect("stats");
        s.requests += stats.requests;
        s.retried += stats.retried;
        s.reasked += stats.reasked;
        s.invalid += stats.invalid;
        s.tokens += stats.tokens;
        s.replayed += stats.replayed;
        Ok(out
            .into_iter()
            .map(|d| d.expect("every turn decided"))
            .collect())
    }
}

/// A decision by name: the index in the environment's action space is the
/// explorer's to fill in (the policy sees only the legal actions).
fn decision(action: String, log_prob: f32, call: Option<i64>) -> Decision {
    Decision {
        index: None,
        action,
        log_prob,
        call,
    }
}

/// The model as the reflector: it reads the failed trajectory with the
/// environment's feedback and answers, as JSON checked against the
/// trajectory, tau, the critical action, a category, a diagnosis and a fix.
/// A malformed answer is asked again once; then the `fallback` reflector
/// (rules from the feedback) answers, and the reflection records that it
/// did (`reflections.reflector` = `"<fallback> (fallback of <name>)"`).
/// While an episode runs it is asked only when the environment flagged a
/// mistake in the owned steps (a request per periodic check would cost more
/// than the episode).
pub struct LlmReflector {
    name: String,
    llm: LlmPolicy,
    fallback: Box<dyn crate::reflect::Reflector>,
}

impl std::fmt::Debug for LlmReflector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmReflector")
            .field("name", &self.name)
            .finish()
    }
}

impl LlmReflector {
    /// A reflector named `name` on `config`'s endpoint (its `system_prompt`
    /// describes the environment), falling back on `fallback`.
    ///
    /// # Errors
    /// As [`LlmPolicy::new`].
    pub fn new(
        name: impl Into<String>,
        config: LlmConfig,
        fallback: Box<dyn crate::reflect::Reflector>,
    ) -> Result<LlmReflector> {
        let name = name.into();
        Ok(LlmReflector {
            llm: LlmPolicy::new(name.clone(), config)?,
            name,
            fallback,
        })
    }

    /// Logs every call to `log` (share the policy's), and answers from it
    /// per its [`Replay`].
    pub fn with_log(mut self, log: Arc<CallLog>) -> LlmReflector {
        self.llm.log = Some(log);
        self
    }

    /// Requests and fallbacks so far (`invalid` counts fallbacks).
    pub fn stats(&self) -> LlmStats {
        self.llm.stats()
    }

    fn body(
        &self,
        steps: &[crate::env::Step],
        now: &crate::env::Observation,
        status: crate::env::Status,
        min_tau: usize,
        correction: Option<&str>,
    ) -> Value {
        let n = steps.len();
        let mut user = format!(
            "About the environment: {}\n\nAn agent's attempt ended {status}. Its steps (observation before the action, action, feedback):\n",
            self.llm.config.system_prompt
        );
        for s in steps {
            let mistakes = if s.transition.mistakes.is_empty() {
                String::new()
            } else {
                format!(" [mistake flagged: {}]", s.transition.mistakes.join(", "))
            };
            user.push_str(&format!(
                "step {}:\n{}\naction: {}\nfeedback: {}{mistakes}\n",
                s.t, s.observation.text, s.action, s.transition.feedback
            ));
        }
        user.push_str(&format!("final observation:\n{}\n\n", now.text));
        user.push_str(&format!(
            "Name the step where the attempt went wrong: tau between {min_tau} and {} (steps before {min_tau} were reviewed already). \
             Reply with JSON: {{\"tau\": <step>, \"critical_action\": <the action at tau, or null>, \"category\": <a short snake_case name of the mistake>, \
             \"irreversible\": <whether the task was lost at tau>, \"diagnosis\": <what went wrong>, \"fix\": <what to do instead from tau>}}",
            n - 1
        ));
        let mut messages = vec![
            json!({ "role": "system", "content": "You review failed attempts of an agent and find the critical mistake." }),
            json!({ "role": "user", "content": user }),
        ];
        if let Some(c) = correction {
            messages.push(json!({ "role": "user", "content": c }));
        }
        let mut body = json!({
            "model": self.llm.config.model,
            "messages": messages,
            "temperature": 0.0,
            "max_tokens": self.llm.config.max_tokens.max(256),
            "seed": 0,
        });
        if self.llm.config.json_schema {
            body["response_format"] = json!({
                "type": "json_schema",
                "json_schema": { "name": "reflection", "strict": true, "schema": {
                    "type": "object",
                    "properties": {
                        "tau": { "type": "integer", "minimum": min_tau, "maximum": n - 1 },
                        "critical_action": { "type": ["string", "null"] },
                        "category": { "type": "string" },
                        "irreversible": { "type": "boolean" },
                        "diagnosis": { "type": "string" },
                        "fix": { "type": "string" },
                    },
                    "required": ["tau", "critical_action", "category", "irreversible", "diagnosis", "fix"],
                    "additionalProperties": false,
                }},
            });
        }
        body
    }
}

/// The experience a reply describes, checked against the trajectory.
fn parse_reflection(
    reply: &Value,
    steps: &[crate::env::Step],
    min_tau: usize,
) -> std::result::Result<crate::reflect::Experience, String> {
    let content = reply["choices"][0]["message"]["content"]
        .as_str()
        .ok_or("the reply has no choices[0].message.content")?;
    let v: Value =
        serde_json::from_str(content.trim().trim_matches('`').trim_start_matches("json"))
            .map_err(|e| format!("the reply is not a JSON object ({e})"))?;
    let n = steps.len();
    let tau = v["tau"].as_u64().ok_or("`tau` must be a step number")? as usize;
    if tau < min_tau || tau >= n {
        return Err(format!("`tau` = {tau} is outside {min_tau}..={}", n - 1));
    }
    let text = |k: &str| {
        v[k].as_str()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .ok_or(format!("`{k}` must be a non-empty string"))
    };
    Ok(crate::reflect::Experience {
        trigger_step: n,
        tau,
        // The action taken at tau, whatever the model calls it.
        critical_action: Some(steps[tau].action.clone()),
        category: text("category")?,
        irreversible: v["irreversible"].as_bool().unwrap_or(false),
        diagnosis: text("diagnosis")?,
        fix: text("fix")?,
        suggested_actions: Vec::new(),
        written_by: None,
        call: None,
    })
}

impl crate::reflect::Reflector for LlmReflector {
    fn name(&self) -> &str {
        &self.name
    }

    fn reflect(
        &self,
        steps: &[crate::env::Step],
        now: &crate::env::Observation,
        status: crate::env::Status,
        min_tau: usize,
    ) -> Option<crate::reflect::Experience> {
        use crate::env::Status;
        if status == Status::Solved || min_tau >= steps.len() {
            return None;
        }
        if status == Status::Running
            && !steps[min_tau..]
                .iter()
                .any(|s| !s.transition.mistakes.is_empty())
        {
            return None;
        }
        let mut why = String::new();
        for attempt in 0..2i32 {
            let correction = (attempt > 0).then(|| {
                format!("Your reply was not valid: {why}. Reply with the JSON object only.")
            });
            let body = self.body(steps, now, status, min_tau, correction.as_deref());
            let sent = match self.llm.send(std::slice::from_ref(&body)) {
                Ok(mut r) => r
                    .pop()
                    .unwrap_or_else(|| (request_key(&body), Err("no reply".into()))),
                Err(e) => (request_key(&body), Err(e.to_string())),
            };
            let reply = match &sent.1 {
                Err(e) => {
                    // Not the model's answer but the endpoint's failure:
                    // say which endpoint and why.
                    why = format!("endpoint {} failed: {e}", self.llm.endpoint());
                    self.llm
                        .record("reflect", attempt, &body, &sent, None, Some(why.clone()));
                    break;
                }
                Ok(reply) => reply,
            };
            {
                let mut stats = self.llm.stats.lock().expect("stats");
                stats.requests += 1;
                stats.replayed += u64::from(reply.cached);
                stats.tokens += reply.body["usage"]["total_tokens"].as_u64().unwrap_or(0);
            }
            match parse_reflection(&reply.body, steps, min_tau) {
                Ok(mut e) => {
                    e.call = self.llm.record(
                        "reflect",
                        attempt,
                        &body,
                        &sent,
                        Some(e.tau.to_string()),
                        None,
                    );
                    return Some(e);
                }
                Err(w) => {
                    self.llm.stats.lock().expect("stats").reasked += u64::from(attempt == 0);
                    self.llm
                        .record("reflect", attempt, &body, &sent, None, Some(w.clone()));
                    why = w;
                }
            }
        }
        self.llm.stats.lock().expect("stats").invalid += 1;
        tracing::warn!(reflector = %self.name, "no valid reflection from the model ({why}); falling back on {}", self.fallback.name());
        let mut e = self.fallback.reflect(steps, now, status, min_tau)?;
        e.written_by = Some(format!(
            "{} (fallback of {})",
            self.fallback.name(),
            self.name
        ));
        Some(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_keys_are_stable_and_tell_bodies_apart() {
        let a =
            json!({ "model": "m", "messages": [{ "role": "user", "content": "hi" }], "seed": 1 });
        // Fixed across builds and machines: stores keep these keys.
        assert_eq!(request_key(&a), request_key(&a.clone()));
        assert_eq!(request_key(&a).len(), 32);
        assert_eq!(request_key(&json!({})), "08f44b07b5901a2538f9a7b0117a6312");
        let mut b = a.clone();
        b["seed"] = json!(2);
        assert_ne!(request_key(&a), request_key(&b));
    }

    #[test]
    fn the_replay_answers_per_its_mode() {
        let reply = r#"{"choices":[{"message":{"content":"{\"action\":\"up\"}"}}]}"#;
        let recorded = || vec![("k1".to_string(), reply.to_string())];
        let off = CallLog::with_replay(Replay::Off, recorded());
        assert_eq!(off.lookup("k1"), Ok(None));
        let cache = CallLog::with_replay(Replay::Cache, recorded());
        assert!(cache.lookup("k1").unwrap().is_some());
        assert_eq!(cache.lookup("k2"), Ok(None));
        let only = CallLog::with_replay(Replay::Only, recorded());
        assert!(only.lookup("k1").unwrap().is_some());
        assert!(only.lookup("k2").unwrap_err().contains("no recorded reply"));
    }
}
