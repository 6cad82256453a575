//! [`LlmReflector`]: the model names the critical step of a failed
//! trajectory; a malformed answer is asked again once, then the rules answer.

use std::sync::Arc;

use super::log::request_key;
use super::prompt::parse_reflection;
use super::{CallLog, LlmConfig, LlmPolicy, LlmStats};
use crate::policy::Result;

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
    pub(super) name: String,
    pub(super) llm: LlmPolicy,
    pub(super) fallback: Box<dyn crate::reflect::Reflector>,
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
                stats.tokens += super::client::tokens(&reply.body);
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
