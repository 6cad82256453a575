//! The HTTP side: a worker thread with a runtime of its own sends the
//! requests of a batch, all in flight, retrying transport failures with
//! exponential backoff; [`LlmPolicy::send`] answers from the replay first.

use std::sync::mpsc::{Sender, channel};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::log::request_key;
use super::{LlmConfig, LlmPolicy};
use crate::policy::{PolicyError, Result};

/// A reply and how it came.
#[derive(Debug, Clone)]
pub(super) struct Reply {
    pub(super) body: Value,
    pub(super) latency_ms: f64,
    pub(super) retries: i32,
    pub(super) cached: bool,
}

/// What became of one request: its key and its reply, or why none came.
pub(super) type Sent = (String, std::result::Result<Reply, String>);

/// One request for the worker thread.
pub(super) type Job = (Vec<Value>, Sender<Vec<std::result::Result<Reply, String>>>);

/// Starts the worker thread for `config`'s endpoint; requests go through
/// the returned sender.
pub(super) fn start(config: &LlmConfig) -> Result<Sender<Job>> {
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
    Ok(tx)
}

impl LlmPolicy {
    pub(super) fn endpoint(&self) -> String {
        format!(
            "{}/chat/completions",
            self.config.base_url.trim_end_matches('/')
        )
    }
    /// Sends the requests (all in flight), answering from the log's replay
    /// where it may; returns each request's key and reply in order.
    pub(super) fn send(&self, bodies: &[Value]) -> Result<Vec<Sent>> {
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

/// Tokens a reply cost: `usage.total_tokens`, else prompt + completion
/// tokens (servers that omit the total), else 0.
pub(super) fn tokens(reply: &Value) -> u64 {
    let usage = &reply["usage"];
    usage["total_tokens"].as_u64().unwrap_or_else(|| {
        usage["prompt_tokens"].as_u64().unwrap_or(0)
            + usage["completion_tokens"].as_u64().unwrap_or(0)
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn tokens_fall_back_on_prompt_plus_completion() {
        let total =
            json!({ "usage": { "total_tokens": 30, "prompt_tokens": 1, "completion_tokens": 2 } });
        assert_eq!(super::tokens(&total), 30);
        let parts = json!({ "usage": { "prompt_tokens": 21, "completion_tokens": 4 } });
        assert_eq!(super::tokens(&parts), 25);
        assert_eq!(super::tokens(&json!({})), 0);
    }
}
