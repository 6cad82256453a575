//! How an OpenEnv server's observations and actions map to leafe's: read
//! from `/schema`, with defaults and the spec's options.

use super::*;

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
pub(super) const TEXT_FIELDS: &[&str] = &[
    "text",
    "prompt",
    "observation",
    "message",
    "content",
    "board",
    "echoed_message",
];
/// Observation fields tried, in order, as the legal actions.
pub(super) const LEGAL_FIELDS: &[&str] = &[
    "legal_actions",
    "valid_actions",
    "available_actions",
    "admissible_commands",
    "legal_moves",
];
/// Observation fields tried, in order, as success.
pub(super) const SUCCESS_FIELDS: &[&str] = &["success", "won", "solved", "is_success"];
/// Observation fields tried, in order, as feedback.
pub(super) const FEEDBACK_FIELDS: &[&str] = &["feedback", "last_action_error", "error"];
/// Fields every OpenEnv model carries that are not the environment's own.
pub(super) const BASE_FIELDS: &[&str] = &["metadata", "done", "reward"];

/// The type named by a JSON-schema property (`anyOf` with null unwrapped).
pub(super) fn json_type(prop: &Value) -> Option<&str> {
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
    pub(super) fn text_of(&self, obs: &Value) -> String {
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
