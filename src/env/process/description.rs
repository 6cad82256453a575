//! What an environment process says of itself in `hello`.

/// How an environment process describes itself in `hello`: recorded with
/// every run it takes part in (`runs.config.env_description`), and the
/// default system prompt of the LLM policy, the LLM reflector and `leafe
/// export`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Description {
    /// Its `name`.
    pub name: String,
    /// Its `version`, if it says one.
    pub version: Option<String>,
    /// What the environment is: the task, the rules, what observations show.
    pub description: Option<String>,
    /// The system prompt for an agent acting in it, when it has its own
    /// (else [`Description::prompt`] builds one from the description).
    pub system_prompt: Option<String>,
    /// What the actions mean and how to write them (`actions.semantics`).
    pub action_semantics: Option<String>,
}

impl Description {
    /// The system prompt it implies: its own `system_prompt`, else its
    /// description; with what its actions mean after it. `None` when it
    /// says neither (then leafe's generic prompt serves).
    pub fn prompt(&self) -> Option<String> {
        let base = self
            .system_prompt
            .as_deref()
            .or(self.description.as_deref())?
            .trim();
        Some(match self.action_semantics.as_deref().map(str::trim) {
            Some(actions) if !actions.is_empty() && !base.contains(actions) => {
                format!("{base}\n\nActions: {actions}")
            }
            _ => base.to_string(),
        })
    }
}
