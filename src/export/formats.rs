//! The chat and record formats: how an example becomes the prompt and
//! completion of a chat, and that chat a record of TRL (messages,
//! prompt-completion, DPO), LLaMA-Factory (ShareGPT) or verl (Parquet rows
//! of [`verl_schema`]).
//!
//! The experience (the reflection's diagnosis and fix) never enters a prompt
//! or a completion; with `include_experience` it is a separate top-level
//! field. Every format but verl's also carries the example's provenance
//! (run, task, example id, tau, …) under `leafe`.

use arrow::datatypes::{DataType, Field, Fields, Schema};
use serde_json::{Value, json};

use super::examples::Example;
use super::{Dataset, ExportOptions, Format};

/// One chat message.
pub(super) fn msg(role: &str, content: &str) -> Value {
    json!({ "role": role, "content": content })
}

/// The prompt (system + history as user/assistant turns + the observation
/// where the completion starts) and the completion turns of an example.
pub(super) fn split(ex: &Example, dataset: Dataset, system: &str) -> (Vec<Value>, Vec<Value>) {
    let start = match dataset {
        Dataset::Rehearsal => 0,
        _ => ex.tau,
    };
    let mut prompt = vec![msg("system", system)];
    let mut completion = Vec::new();
    let mut in_completion = false;
    for turn in &ex.turns {
        if turn.t < start {
            prompt.push(msg("user", &turn.observation));
            prompt.push(msg("assistant", &turn.action));
            continue;
        }
        if !in_completion {
            // The observation that opens the completion belongs to the prompt.
            prompt.push(msg("user", &turn.observation));
            in_completion = true;
        } else {
            completion.push(msg("user", &turn.observation));
        }
        match dataset {
            Dataset::Critical | Dataset::Preference => {
                // t = tau: the target is the corrected action, not the one taken.
                if let Some(c) = &ex.chosen {
                    completion.push(msg("assistant", c));
                }
                break;
            }
            _ => completion.push(msg("assistant", &turn.action)),
        }
    }
    (prompt, completion)
}

/// The trained steps of an example, each its own (t, prompt, completion):
/// the completion is exactly one agent action, so a trainer never computes
/// loss on text the environment wrote. Rehearsal trains every step,
/// counterfactual every step from tau (the corrected branch; the prefix is
/// only context), critical and preference the one step at tau (its
/// corrected action). The prompt is the system prompt, the history before
/// `t` as user (observation) / assistant (action) turns, and the
/// observation at `t`.
pub(super) fn step_splits(
    ex: &Example,
    dataset: Dataset,
    system: &str,
) -> Vec<(i32, Vec<Value>, Vec<Value>)> {
    if matches!(dataset, Dataset::Critical | Dataset::Preference) {
        let (prompt, completion) = split(ex, dataset, system);
        return vec![(ex.tau, prompt, completion)];
    }
    let start = if dataset == Dataset::Rehearsal {
        0
    } else {
        ex.tau
    };
    let mut out = Vec::new();
    let mut history = vec![msg("system", system)];
    for turn in &ex.turns {
        if turn.t >= start {
            let mut prompt = history.clone();
            prompt.push(msg("user", &turn.observation));
            out.push((turn.t, prompt, vec![msg("assistant", &turn.action)]));
        }
        history.push(msg("user", &turn.observation));
        history.push(msg("assistant", &turn.action));
    }
    out
}

/// The trained steps of an example with the prompts the LLM policy itself
/// sent (`calls`: `llm_calls.messages` by call id, of the example's run):
/// for each trained turn, the system message and the first user message of
/// the request that chose its action, without the experience a branch was
/// sampled under (the prompt the policy sends when no experience is in
/// context), and the action as the policy emits it, `{"action": "…"}`.
/// `None` when a trained turn has no recorded request.
pub(super) fn recorded_step_splits(
    ex: &Example,
    dataset: Dataset,
    calls: &std::collections::HashMap<i64, String>,
) -> Option<Vec<(i32, Vec<Value>, Vec<Value>)>> {
    let start = match dataset {
        Dataset::Rehearsal => 0,
        Dataset::Counterfactual => ex.tau,
        // Their target is another action than the one the request chose.
        Dataset::Critical | Dataset::Preference => return None,
    };
    let mut out = Vec::new();
    for turn in ex.turns.iter().filter(|t| t.t >= start) {
        let messages: Vec<Value> = serde_json::from_str(calls.get(&turn.call?)?).ok()?;
        let mut prompt: Vec<Value> = messages
            .into_iter()
            .take_while(|m| m["role"] != "assistant")
            .take(2)
            .collect();
        if let Some(user) = prompt.iter_mut().find(|m| m["role"] == "user") {
            let text = crate::policy::llm::without_experience(user["content"].as_str()?);
            user["content"] = json!(text);
        }
        let action = json!({ "action": turn.action }).to_string();
        out.push((turn.t, prompt, vec![msg("assistant", &action)]));
    }
    (!out.is_empty()).then_some(out)
}

/// A multi-turn prompt folded into one user message (the history as text,
/// then the observation), so that the only assistant turn of a
/// `trl-messages` record is the trained action.
fn fold(prompt: Vec<Value>) -> Vec<Value> {
    if prompt.len() <= 2 {
        return prompt;
    }
    let mut text = String::from("History:\n");
    let last = prompt.len() - 1;
    for (i, m) in prompt.iter().enumerate().skip(1) {
        let content = m["content"].as_str().unwrap_or_default();
        if i == last {
            text.push_str("\nNow:\n");
            text.push_str(content);
        } else if m["role"] == "user" {
            text.push_str(content);
            text.push('\n');
        } else {
            text.push_str(&format!("-> {content}\n"));
        }
    }
    vec![prompt[0].clone(), msg("user", &text)]
}

/// The record of an example in `opts.format`, from its prompt and
/// completion (see [`split`], [`step_splits`]); `index` is its position in
/// the output, `t` the trained step (per-step formats).
pub(super) fn record(
    ex: &Example,
    opts: &ExportOptions,
    prompt: Vec<Value>,
    completion: Vec<Value>,
    index: u64,
    t: Option<i32>,
) -> Value {
    let mut meta = json!({
        "run_id": ex.run_id, "task_id": ex.task_id, "example_id": ex.example_id,
        "tau": ex.tau, "category": ex.category, "chosen_source": ex.chosen_source,
    });
    if let Some(t) = t {
        meta["t"] = json!(t);
    }
    let mut record = match opts.format {
        Format::TrlMessages => {
            let mut messages = fold(prompt);
            messages.extend(completion);
            json!({ "messages": messages })
        }
        Format::TrlPromptCompletion => json!({ "prompt": prompt, "completion": completion }),
        Format::Sharegpt => {
            let conversations: Vec<Value> = prompt
                .iter()
                .skip(1)
                .chain(completion.iter())
                .map(|m| {
                    json!({
                        "from": if m["role"] == "user" { "human" } else { "gpt" },
                        "value": m["content"],
                    })
                })
                .collect();
            let system = prompt
                .first()
                .filter(|m| m["role"] == "system")
                .and_then(|m| m["content"].as_str())
                .unwrap_or(&opts.system_prompt);
            json!({ "conversations": conversations, "system": system })
        }
        Format::Dpo => json!({
            "prompt": prompt,
            "chosen": [msg("assistant", ex.chosen.as_deref().unwrap_or_default())],
            "rejected": [msg("assistant", ex.rejected.as_deref().unwrap_or_default())],
        }),
        Format::VerlParquet => {
            let ground_truth: Vec<&str> = completion
                .iter()
                .filter(|m| m["role"] == "assistant")
                .filter_map(|m| m["content"].as_str())
                .collect();
            json!({
                "data_source": format!("leafe/{}", opts.env),
                "prompt": prompt,
                "ability": opts.env,
                "reward_model": { "style": "rule", "ground_truth": ground_truth.join(" ") },
                "extra_info": {
                    "split": "train", "index": index, "run_id": ex.run_id,
                    "task_id": ex.task_id, "example_id": ex.example_id, "tau": ex.tau,
                },
            })
        }
    };
    if opts.format != Format::VerlParquet {
        record["leafe"] = meta;
    }
    if opts.include_experience {
        record["experience"] = json!(ex.experience);
    }
    record
}

/// verl's Parquet schema.
pub fn verl_schema() -> Schema {
    let message = DataType::Struct(Fields::from(vec![
        Field::new("role", DataType::Utf8, false),
        Field::new("content", DataType::Utf8, false),
    ]));
    Schema::new(vec![
        Field::new("data_source", DataType::Utf8, false),
        Field::new(
            "prompt",
            DataType::List(std::sync::Arc::new(Field::new("item", message, false))),
            false,
        ),
        Field::new("ability", DataType::Utf8, false),
        Field::new(
            "reward_model",
            DataType::Struct(Fields::from(vec![
                Field::new("style", DataType::Utf8, false),
                Field::new("ground_truth", DataType::Utf8, false),
            ])),
            false,
        ),
        Field::new(
            "extra_info",
            DataType::Struct(Fields::from(vec![
                Field::new("split", DataType::Utf8, false),
                Field::new("index", DataType::Int64, false),
                Field::new("run_id", DataType::Utf8, false),
                Field::new("task_id", DataType::Utf8, false),
                Field::new("example_id", DataType::Int64, false),
                Field::new("tau", DataType::Int32, false),
            ])),
            false,
        ),
    ])
}
