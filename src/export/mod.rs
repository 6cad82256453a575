//! `leafe export`: curated datasets for other trainers.
//!
//! Examples come from SQL (`queries/export_trajectories.sql` for the
//! counterfactual and rehearsal sets, `queries/export_preferences.sql` for
//! the critical and preference sets), one query per committed run so memory
//! is bounded by the largest run, not by the store. Rows arrive ordered by
//! (run, example, t) and are grouped into examples as they stream. Each
//! example is a chat: a system prompt that explains the task, the
//! observations as user turns and the actions as assistant turns. Formats:
//!
//! | format | record |
//! |---|---|
//! | `trl-messages` | `{"messages": [system, user, assistant]}`: the history folded into the user turn, the one assistant turn the action (TRL: `assistant_only_loss=True`) |
//! | `trl-prompt-completion` | `{"prompt": [...], "completion": [assistant]}`: multi-turn prompt, the action as the completion (TRL's default completion-only loss) |
//! | `sharegpt` | `{"conversations": [{"from": "human"\|"gpt", "value"}], "system"}`, ending on the action (LLaMA-Factory: `mask_history: true`) |
//! | `verl-parquet` | Parquet: `data_source`, `prompt` (list of role/content), `ability`, `reward_model {style, ground_truth}`, `extra_info {split, index, …}` |
//! | `dpo` | `{"prompt", "chosen", "rejected"}` (conversational, TRL) |
//!
//! The supervised formats write one record per trained step — every step of
//! a rehearsal trajectory, every step from tau of a corrected branch — whose
//! completion is that one action: the loss falls on the agent's actions and
//! never on text the environment wrote. `dpo` and `verl-parquet` keep one
//! record per example.
//!
//! The experience (the reflection's diagnosis and fix) is never part of a
//! prompt: counterfactual data teaches the corrected action without it. With
//! `include_experience` it is added as a separate top-level field for
//! analysis. A written file appears whole or not at all.
//!
//! | file | owns |
//! |---|---|
//! | `mod.rs` | the options, and the driver: pages → rows → examples → records → sink |
//! | `paging.rs` | the runs and id windows each query reads (bounded memory) |
//! | `examples.rs` | the columns a query must return, decoding rows into examples |
//! | `formats.rs` | prompt/completion of an example, the record of each format |
//! | `sink.rs` | the output file (JSONL or Parquet), whole or not at all |

mod examples;
mod formats;
mod paging;
mod sink;

use std::collections::{HashMap, HashSet};

use futures::StreamExt;
use serde::Serialize;
use serde_json::Value;

use crate::query::{QuerySession, QueryText, load_query};
use crate::store::Store;
use examples::{Example, required_columns, rows_of};
pub use formats::verl_schema;
pub use paging::WINDOW_EXAMPLES;
use sink::{Sink, split_output};

/// What to export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dataset {
    /// Successful branches: history up to tau (prompt), corrected continuation (completion).
    Counterfactual,
    /// Successful trajectories (roots and full branch paths), every action a target.
    Rehearsal,
    /// Every reflection's critical step: history up to tau, the fix if one worked.
    Critical,
    /// Reflections with a successful branch: corrected action (chosen) vs critical action (rejected).
    Preference,
}

impl Dataset {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Dataset::Counterfactual => "counterfactual",
            Dataset::Rehearsal => "rehearsal",
            Dataset::Critical => "critical",
            Dataset::Preference => "preference",
        }
    }
}

/// How to write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// TRL conversational JSONL: {"messages": [...]}.
    TrlMessages,
    /// TRL prompt-completion JSONL: {"prompt": [...], "completion": [...]}.
    TrlPromptCompletion,
    /// LLaMA-Factory ShareGPT JSONL: {"conversations": [...], "system"}.
    Sharegpt,
    /// verl RL Parquet: data_source, prompt, ability, reward_model, extra_info.
    VerlParquet,
    /// TRL DPO JSONL: {"prompt", "chosen", "rejected"}.
    Dpo,
}

/// Settings of an export.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// The dataset.
    pub dataset: Dataset,
    /// The format.
    pub format: Format,
    /// Runs to export from, as a SQL LIKE pattern on run_id.
    pub runs: String,
    /// A SQL condition on the query's columns (rows failing it are dropped;
    /// conditions on example-level columns — task_id, category, depth,
    /// origin, run_id — keep examples whole).
    pub filter: Option<String>,
    /// A query file replacing the default one (same columns, same order).
    pub query: Option<QueryText>,
    /// Directory of the default export queries (`export_trajectories.sql`,
    /// `export_preferences.sql`); the embedded copies serve for files it lacks.
    pub queries_dir: Option<std::path::PathBuf>,
    /// Add the experience text as a separate field (never in the prompt).
    pub include_experience: bool,
    /// Drop examples whose prompt equals an earlier example's prompt.
    pub dedup: bool,
    /// The system prompt (the environment's own describes its rules and
    /// symbols: `World::system_prompt`).
    pub system_prompt: String,
    /// The environment's name, for formats that record where data came
    /// from (verl's `data_source` = `leafe/<env>`, `ability` = `<env>`).
    pub env: String,
    /// Examples read per query: a run is exported in id windows of about
    /// this many examples, which bounds what DataFusion sorts at once.
    pub window: usize,
    /// Whose prompts the chat formats carry.
    pub prompts: Prompts,
}

/// Whose prompts an export's chat formats carry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Prompts {
    /// The LLM policy's own requests where every trained step has one (runs
    /// of an LLM policy), else rebuilt.
    #[default]
    Auto,
    /// The LLM policy's own requests, from `llm_calls`: the messages it sent
    /// (the experience left out), the target `{"action": …}` as it replies;
    /// examples without them are skipped. For the supervised chat formats
    /// of the counterfactual and rehearsal datasets.
    Recorded,
    /// Rebuilt from the steps: the history as user/assistant turns, the
    /// action as the target (what a model trained from scratch on leafe
    /// data is served).
    Rebuilt,
}

/// What an export wrote.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ExportSummary {
    /// Examples written.
    pub examples: u64,
    /// Examples dropped as duplicate prompts.
    pub duplicates: u64,
    /// Examples skipped because the format needs what they lack (e.g. DPO
    /// without a chosen action).
    pub skipped: u64,
    /// Runs read.
    pub runs: usize,
}

/// Errors of an export.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Bad request: unsupported combination, missing columns, existing output.
    #[error("{0}")]
    Invalid(String),
    /// Nothing matched.
    #[error("{0}")]
    Empty(String),
    /// The store or the query failed.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

fn check_combination(dataset: Dataset, format: Format) -> Result<(), ExportError> {
    if format == Format::Dpo && matches!(dataset, Dataset::Counterfactual | Dataset::Rehearsal) {
        return Err(ExportError::Invalid(format!(
            "--format dpo needs a rejected action: use --dataset preference (or critical), not {}",
            dataset.name()
        )));
    }
    Ok(())
}

fn base_query(opts: &ExportOptions) -> Result<QueryText, ExportError> {
    if let Some(q) = &opts.query {
        return Ok(q.clone());
    }
    let name = match opts.dataset {
        Dataset::Counterfactual | Dataset::Rehearsal => "export_trajectories",
        Dataset::Critical | Dataset::Preference => "export_preferences",
    };
    load_query(opts.queries_dir.as_deref(), name).map_err(|e| ExportError::Other(e.into()))
}

/// Exports to `out` (a path or URL: a plain path, `file://` or `s3://bucket/key`).
pub async fn export(
    store: &Store,
    opts: &ExportOptions,
    out: &str,
    overwrite: bool,
    mut progress: impl FnMut(&ExportSummary),
) -> Result<ExportSummary, ExportError> {
    check_combination(opts.dataset, opts.format)?;
    let (dir, file) = split_output(out)?;
    let target = Store::open(&dir).map_err(|e| ExportError::Other(e.into()))?;
    if !overwrite && target.exists(&file).await.map_err(anyhow::Error::from)? {
        return Err(ExportError::Invalid(format!(
            "{out} exists; pass --overwrite to replace it"
        )));
    }
    let session = QuerySession::open(store)
        .await
        .map_err(anyhow::Error::from)?;
    let query = base_query(opts)?;
    // The runs to read, one at a time (bounded memory).
    let runs = paging::matching_runs(&session, opts).await?;
    if runs.is_empty() {
        return Err(ExportError::Empty(format!(
            "no runs match `{}` in {}",
            opts.runs,
            store.url()
        )));
    }

    let mut sink = Sink::new(&target, &file, opts.format);
    let mut summary = ExportSummary {
        runs: runs.len(),
        ..ExportSummary::default()
    };
    let mut seen_prompts: HashSet<u64> = HashSet::new();
    let mut index = 0u64;
    let work = paging::pages(&session, opts, &query, &runs).await?;
    let mut calls: (String, HashMap<i64, String>) = (String::new(), HashMap::new());
    for (run, p) in &work {
        if opts.prompts != Prompts::Rebuilt && calls.0 != *run {
            calls = (run.clone(), recorded_messages(&session, run).await?);
        }
        let calls = &calls.1;
        let bound = query.bind(p).map_err(anyhow::Error::from)?;
        // The filter is a condition the user writes on the query's columns,
        // not a query: it wraps whichever query runs, so it stays here
        // rather than in a file of `queries/`.
        let sql = match &opts.filter {
            None => bound.sql.clone(),
            Some(cond) => format!(
                "SELECT * FROM ({}) AS q WHERE {cond} ORDER BY run_id, example_id, t",
                bound.sql
            ),
        };
        let df = session
            .context()
            .sql(&sql)
            .await
            .map_err(|e| ExportError::Invalid(format!("export query: {e}")))?;
        let schema = df.schema().as_arrow().clone();
        let missing: Vec<&str> = required_columns(opts.dataset)
            .iter()
            .copied()
            .filter(|c| schema.field_with_name(c).is_err())
            .collect();
        if !missing.is_empty() {
            return Err(ExportError::Invalid(format!(
                "the export query returns no column(s) {} (needed for --dataset {})",
                missing.join(", "),
                opts.dataset.name()
            )));
        }
        let mut stream = df
            .execute_stream()
            .await
            .map_err(|e| ExportError::Invalid(format!("export query: {e}")))?;
        let mut current: Option<Example> = None;
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(|e| ExportError::Other(e.into()))?;
            for row in rows_of(&batch, opts.dataset)? {
                let (head, turn) = row;
                match &mut current {
                    Some(ex) if ex.run_id == head.run_id && ex.example_id == head.example_id => {
                        ex.turns.push(turn)
                    }
                    _ => {
                        if let Some(done) = current.take() {
                            emit(
                                done,
                                calls,
                                opts,
                                &mut sink,
                                &mut summary,
                                &mut seen_prompts,
                                &mut index,
                            )
                            .await?;
                            progress(&summary);
                        }
                        let mut ex = head;
                        ex.turns.push(turn);
                        current = Some(ex);
                    }
                }
            }
        }
        if let Some(done) = current.take() {
            emit(
                done,
                calls,
                opts,
                &mut sink,
                &mut summary,
                &mut seen_prompts,
                &mut index,
            )
            .await?;
            progress(&summary);
        }
    }
    if summary.examples == 0 {
        sink.abort().await;
        return Err(ExportError::Empty(format!(
            "nothing to export: no {} examples in runs matching `{}`{} ({} skipped, {} duplicates); no file written",
            opts.dataset.name(),
            opts.runs,
            opts.filter
                .as_ref()
                .map(|f| format!(" where {f}"))
                .unwrap_or_default(),
            summary.skipped,
            summary.duplicates
        )));
    }
    sink.finish().await?;
    Ok(summary)
}

/// The messages of the LLM policy's requests in `run` (`llm_calls` of kind
/// `act`), by call id: what [`Prompts::Recorded`] reproduces. Empty for a
/// run without an LLM policy.
async fn recorded_messages(
    session: &QuerySession,
    run: &str,
) -> Result<HashMap<i64, String>, ExportError> {
    use arrow::array::{Array, AsArray};
    // A lookup by key, not a selection of data: it stays beside its one
    // user rather than in `queries/`.
    let sql = format!(
        "SELECT call_id, messages FROM llm_calls WHERE run_id = '{}' AND kind = 'act'",
        run.replace('\'', "''")
    );
    let mut out = HashMap::new();
    let Ok(df) = session.context().sql(&sql).await else {
        // A store whose runs never called a model may have no llm_calls.
        return Ok(out);
    };
    let batches = df
        .collect()
        .await
        .map_err(|e| ExportError::Other(e.into()))?;
    for b in batches {
        let ids = arrow::compute::cast(b.column(0), &arrow::datatypes::DataType::Int64)
            .map_err(|e| ExportError::Other(e.into()))?;
        let ids = ids.as_primitive::<arrow::datatypes::Int64Type>();
        let messages = arrow::compute::cast(b.column(1), &arrow::datatypes::DataType::Utf8)
            .map_err(|e| ExportError::Other(e.into()))?;
        let messages = messages.as_string::<i32>();
        for i in 0..b.num_rows() {
            if !ids.is_null(i) && !messages.is_null(i) {
                out.insert(ids.value(i), messages.value(i).to_string());
            }
        }
    }
    Ok(out)
}

/// The system prompt the runs matching `runs` recorded for their
/// environment: what an environment process said of itself in `hello`
/// (`runs.config_json.env_description`), the first run's that has one.
/// `None` when no run recorded one (runs of a built-in environment).
///
/// # Errors
/// The store's and the query's.
pub async fn recorded_env_description(
    store: &Store,
    runs: &str,
) -> Result<Option<crate::env::process::Description>, ExportError> {
    use arrow::array::{Array, AsArray};
    let session = QuerySession::open(store)
        .await
        .map_err(anyhow::Error::from)?;
    let sql = format!(
        "SELECT config_json FROM runs WHERE run_id LIKE '{}' ORDER BY run_id",
        runs.replace('\'', "''")
    );
    let Ok(df) = session.context().sql(&sql).await else {
        return Ok(None);
    };
    let batches = df
        .collect()
        .await
        .map_err(|e| ExportError::Other(e.into()))?;
    for b in batches {
        let col = arrow::compute::cast(b.column(0), &arrow::datatypes::DataType::Utf8)
            .map_err(|e| ExportError::Other(e.into()))?;
        let col = col.as_string::<i32>();
        for i in 0..b.num_rows() {
            if col.is_null(i) {
                continue;
            }
            let Ok(config) = serde_json::from_str::<Value>(col.value(i)) else {
                continue;
            };
            if let Ok(d) = serde_json::from_value::<crate::env::process::Description>(
                config["env_description"].clone(),
            ) && !d.name.is_empty()
            {
                return Ok(Some(d));
            }
        }
    }
    Ok(None)
}

fn prompt_hash(prompt: &[Value]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_string(prompt)
        .expect("json serializes")
        .hash(&mut h);
    h.finish()
}

/// Writes one assembled example, or counts why not: no completion, DPO
/// without a rejected action, or a prompt seen before (with `dedup`).
#[allow(clippy::too_many_arguments)]
async fn emit(
    ex: Example,
    calls: &HashMap<i64, String>,
    opts: &ExportOptions,
    sink: &mut Sink,
    summary: &mut ExportSummary,
    seen: &mut HashSet<u64>,
    index: &mut u64,
) -> Result<(), ExportError> {
    // Chat formats for supervised training get one record per trained
    // step; DPO and verl keep one record per example.
    let splits = match opts.format {
        Format::TrlMessages | Format::TrlPromptCompletion | Format::Sharegpt => {
            let recorded = match opts.prompts {
                Prompts::Rebuilt => None,
                _ => formats::recorded_step_splits(&ex, opts.dataset, calls),
            };
            if recorded.is_none() && opts.prompts == Prompts::Recorded {
                summary.skipped += 1;
                return Ok(());
            }
            recorded
                .unwrap_or_else(|| formats::step_splits(&ex, opts.dataset, &opts.system_prompt))
                .into_iter()
                .map(|(t, p, c)| (Some(t), p, c))
                .collect()
        }
        Format::Dpo | Format::VerlParquet => {
            let (p, c) = formats::split(&ex, opts.dataset, &opts.system_prompt);
            vec![(None, p, c)]
        }
    };
    if splits.iter().all(|(_, _, c)| c.is_empty())
        || (opts.format == Format::Dpo && ex.rejected.is_none())
    {
        summary.skipped += 1;
        return Ok(());
    }
    for (t, prompt, completion) in splits {
        if completion.is_empty() {
            continue;
        }
        if opts.dedup && !seen.insert(prompt_hash(&prompt)) {
            summary.duplicates += 1;
            continue;
        }
        let record = formats::record(&ex, opts, prompt, completion, *index, t);
        sink.write(record).await?;
        *index += 1;
        summary.examples += 1;
    }
    Ok(())
}
