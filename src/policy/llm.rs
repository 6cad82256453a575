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

use std::sync::Mutex;
use std::sync::mpsc::{Sender, channel};
use std::time::Duration;

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
}

/// One request for the worker thread.
type Job = (Vec<Value>, Sender<Vec<std::result::Result<Value, String>>>);

/// An LLM policy (see the module docs).
#[derive(Debug)]
pub struct LlmPolicy {
    name: String,
    config: LlmConfig,
    jobs: Mutex<Sender<Job>>,
    stats: Mutex<LlmStats>,
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
        })
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

    fn send(&self, bodies: Vec<Value>) -> Result<Vec<std::result::Result<Value, String>>> {
        let (tx, rx) = channel();
        let failed = |m: &str| PolicyError::Llm {
            endpoint: self.endpoint(),
            message: m.into(),
        };
        self.jobs
            .lock()
            .expect("jobs")
            .send((bodies, tx))
            .map_err(|_| failed("the client thread is gone"))?;
        rx.recv().map_err(|_| failed("the client thread is gone"))
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
) -> Vec<std::result::Result<Value, String>> {
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

/// One request with retries; `Ok` carries the reply and `_retries` how many
/// transport retries it took.
async fn send_one(
    client: &reqwest::Client,
    endpoint: &str,
    key: Option<&str>,
    config: &LlmConfig,
    body: Value,
) -> std::result::Result<Value, String> {
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
            Ok(mut v) => {
                v["_retries"] = json!(attempt);
                return Ok(v);
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
        let bodies = turns
            .iter()
            .zip(&seeds)
            .map(|(t, &s)| self.body(t, s, None))
            .collect();
        let mut replies = self.send(bodies)?;
        let mut stats = LlmStats::default();
        let mut out: Vec<Option<Decision>> = vec![None; turns.len()];
        let mut again = Vec::new();
        for (i, r) in replies.drain(..).enumerate() {
            let reply = r.map_err(|m| PolicyError::Llm {
                endpoint: self.endpoint(),
                message: m,
            })?;
            stats.requests += 1;
            stats.retried += reply["_retries"].as_u64().unwrap_or(0);
            stats.tokens += reply["usage"]["total_tokens"].as_u64().unwrap_or(0);
            match parse(&reply, turns[i].legal) {
                Ok((action, log_prob)) => out[i] = Some(decision(action, log_prob)),
                Err(why) => again.push((i, why)),
            }
        }
        if !again.is_empty() {
            stats.reasked += again.len() as u64;
            let bodies = again
                .iter()
                .map(|(i, why)| {
                    let correction = format!("Your reply was not valid: {why}. Reply with JSON: {{\"action\": \"<one legal action>\"}}");
                    self.body(&turns[*i], seeds[*i].wrapping_add(1), Some(&correction))
                })
                .collect();
            let replies = self.send(bodies)?;
            for ((i, why), r) in again.iter().zip(replies) {
                let parsed = r.ok().map(|reply| {
                    stats.requests += 1;
                    stats.tokens += reply["usage"]["total_tokens"].as_u64().unwrap_or(0);
                    parse(&reply, turns[*i].legal)
                });
                out[*i] = match parsed {
                    Some(Ok((action, log_prob))) => Some(decision(action, log_prob)),
                    _ => {
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
                        Some(decision(pick, 0.0))
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
        Ok(out
            .into_iter()
            .map(|d| d.expect("every turn decided"))
            .collect())
    }
}

/// A decision by name: the index in the environment's action space is the
/// explorer's to fill in (the policy sees only the legal actions).
fn decision(action: String, log_prob: f32) -> Decision {
    Decision {
        index: None,
        action,
        log_prob,
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
        critical_action: v["critical_action"].as_str().map(str::to_string),
        category: text("category")?,
        irreversible: v["irreversible"].as_bool().unwrap_or(false),
        diagnosis: text("diagnosis")?,
        fix: text("fix")?,
        suggested_actions: Vec::new(),
        written_by: None,
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
        for attempt in 0..2 {
            let correction = (attempt > 0).then(|| {
                format!("Your reply was not valid: {why}. Reply with the JSON object only.")
            });
            let body = self.body(steps, now, status, min_tau, correction.as_deref());
            let reply = match self.llm.send(vec![body]) {
                Ok(mut r) => r.pop().unwrap_or_else(|| Err("no reply".into())),
                Err(e) => Err(e.to_string()),
            };
            let mut stats = self.llm.stats.lock().expect("stats");
            match reply {
                Err(e) => {
                    // Not the model's answer but the endpoint's failure:
                    // say which endpoint and why.
                    why = format!("endpoint {} failed: {e}", self.llm.endpoint());
                    break;
                }
                Ok(reply) => {
                    stats.requests += 1;
                    stats.tokens += reply["usage"]["total_tokens"].as_u64().unwrap_or(0);
                    match parse_reflection(&reply, steps, min_tau) {
                        Ok(e) => return Some(e),
                        Err(w) => {
                            stats.reasked += u64::from(attempt == 0);
                            why = w;
                        }
                    }
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
