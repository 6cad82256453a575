//! The call log: every request, its reply and what was read from it, as the
//! `llm_calls` table stores them, and the recorded replies that answer
//! requests in a replay.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

use serde_json::Value;

use super::LlmPolicy;
use super::client::Sent;

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
    pub(super) fn push(&self, mut call: LlmCall) -> i64 {
        call.call_id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let id = call.call_id;
        self.calls.lock().expect("call log").push(call);
        id
    }

    /// The recorded reply to a request, per the replay mode: `Ok(None)` to
    /// ask the server.
    pub(super) fn lookup(&self, key: &str) -> std::result::Result<Option<Value>, String> {
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

impl LlmPolicy {
    /// Logs one call (nothing without a log); returns its id.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn record(
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
