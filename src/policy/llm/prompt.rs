//! The prompts: the messages of a turn and of a reflection, and how a reply
//! is read back (an action, a reflection).

use serde_json::{Value, json};

use super::{LlmPolicy, LlmReflector};
use crate::policy::Turn;

/// How the experience block of a turn's user message starts.
const EXPERIENCE_HEADER: &str = "Experience from an earlier attempt at this task:\n";

/// A turn's user message without its experience block: the message the
/// policy sends in the same state with no experience in context (`leafe
/// export` trains on these, never on the experience).
pub fn without_experience(user: &str) -> String {
    let Some(rest) = user.strip_prefix(EXPERIENCE_HEADER) else {
        return user.to_string();
    };
    // The block ends where the turn's own parts begin.
    let end = ["\n\nRecent steps:\n", "\n\nCurrent observation (step "]
        .iter()
        .filter_map(|m| rest.find(m).map(|i| i + 2))
        .min();
    match end {
        Some(i) => rest[i..].to_string(),
        None => user.to_string(),
    }
}

impl LlmPolicy {
    /// The request body for a turn (`correction`: what was wrong with the
    /// previous reply, when asking again).
    pub(super) fn body(&self, turn: &Turn<'_>, seed: u64, correction: Option<&str>) -> Value {
        let mut user = String::new();
        if let Some(e) = turn.experience {
            user.push_str(EXPERIENCE_HEADER);
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
}

/// The action a reply names, if it names a legal one (any non-empty text
/// for a free-text space), and its log-probability when returned.
pub(super) fn parse(reply: &Value, legal: &[String]) -> std::result::Result<(String, f32), String> {
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

impl LlmReflector {
    pub(super) fn body(
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
pub(super) fn parse_reflection(
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

#[cfg(test)]
mod tests {
    use super::without_experience;

    #[test]
    fn the_experience_block_is_cut_and_nothing_else() {
        let plain = "Recent steps:\nstep 0:\nx\naction: up\nfeedback: ok\n\nCurrent observation (step 1):\ny\n\n";
        assert_eq!(without_experience(plain), plain);
        let with = format!(
            "{}tau 3: went left; go right\n\n{plain}",
            super::EXPERIENCE_HEADER
        );
        assert_eq!(without_experience(&with), plain);
        let first = "Current observation (step 0):\ny\n\nLegal actions: a, b\n";
        let with = format!("{}went left\n\n{first}", super::EXPERIENCE_HEADER);
        assert_eq!(without_experience(&with), first);
    }
}
