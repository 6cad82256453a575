//! [`LlmPolicy`]: one request per turn, an invalid reply asked again once,
//! then a legal action drawn and counted.

use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use rand::Rng;
use serde_json::Value;

use super::client::Job;
use super::prompt::parse;
use super::{CallLog, LlmConfig, LlmStats};
use crate::policy::{Decision, Policy, PolicyError, Result, Turn};

/// An LLM policy (see the module docs).
#[derive(Debug)]
pub struct LlmPolicy {
    pub(super) name: String,
    pub(super) config: LlmConfig,
    pub(super) jobs: Mutex<Sender<Job>>,
    pub(super) stats: Mutex<LlmStats>,
    pub(super) log: Option<Arc<CallLog>>,
}
impl LlmPolicy {
    /// A policy named `name` (recorded as `episodes.policy`).
    ///
    /// # Errors
    /// [`PolicyError::Llm`] when the HTTP client or its runtime cannot start.
    pub fn new(name: impl Into<String>, config: LlmConfig) -> Result<LlmPolicy> {
        let tx = super::client::start(&config)?;
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

    /// What the policy did so far.
    pub fn stats(&self) -> LlmStats {
        *self.stats.lock().expect("stats")
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
            stats.tokens += super::client::tokens(&reply.body);
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
                    stats.tokens += super::client::tokens(&reply.body);
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
