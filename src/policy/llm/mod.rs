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
//!
//! The code is split by concern: [`client`] (the HTTP worker and its
//! retries), [`prompt`] (the messages sent and how replies are read),
//! [`policy`] ([`LlmPolicy`]), [`reflector`] ([`LlmReflector`]) and
//! [`log`] ([`CallLog`], what `llm_calls` stores, and the replay).

mod client;
mod log;
mod policy;
mod prompt;
mod reflector;

pub use log::{CallLog, LlmCall, Replay, request_key};
pub use policy::LlmPolicy;
pub use prompt::without_experience;
pub use reflector::LlmReflector;

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
