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
//! | `trl-messages` | `{"messages": [{"role", "content"}, …]}` |
//! | `trl-prompt-completion` | `{"prompt": [...], "completion": [...]}`: only the completion carries loss |
//! | `sharegpt` | `{"conversations": [{"from": "human"\|"gpt", "value"}], "system"}` (LLaMA-Factory) |
//! | `verl-parquet` | Parquet: `data_source`, `prompt` (list of role/content), `ability`, `reward_model {style, ground_truth}`, `extra_info {split, index, …}` |
//! | `dpo` | `{"prompt", "chosen", "rejected"}` (conversational, TRL) |
//!
//! The experience (the reflection's diagnosis and fix) is never part of a
//! prompt: counterfactual data teaches the corrected action without it. With
//! `include_experience` it is added as a separate top-level field for
//! analysis. A written file appears whole or not at all.

use std::collections::{BTreeMap, HashSet};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Fields, Schema};
use futures::StreamExt;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::query::{QuerySession, QueryText, load_query};
use crate::store::Store;
use crate::train::distill::like_exact;

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
    /// The system prompt.
    pub system_prompt: String,
    /// Examples read per query: a run is exported in id windows of about
    /// this many examples, which bounds what DataFusion sorts at once.
    pub window: usize,
}

/// The default system prompt.
pub const SYSTEM_PROMPT: &str = "You are playing Sokoban. Push every box ($) onto a target (.) by moving the player (@). \
Symbols: # wall, space floor, $ box, * box on target, . target, @ player, + player on target. \
Boxes can be pushed but not pulled; a box pushed into a corner that is not a target can never be moved out. \
Reply with one move: up, down, left or right.";

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

/// One step of an example.
#[derive(Debug, Clone)]
struct Turn {
    t: i32,
    observation: String,
    action: String,
}

/// One example being assembled.
#[derive(Debug, Clone, Default)]
struct Example {
    run_id: String,
    task_id: String,
    example_id: i64,
    tau: i32,
    experience: Option<String>,
    category: Option<String>,
    chosen: Option<String>,
    chosen_source: Option<String>,
    rejected: Option<String>,
    turns: Vec<Turn>,
}

fn required_columns(dataset: Dataset) -> &'static [&'static str] {
    match dataset {
        Dataset::Counterfactual | Dataset::Rehearsal => &[
            "run_id",
            "task_id",
            "example_id",
            "tau",
            "experience",
            "t",
            "observation",
            "action_text",
        ],
        Dataset::Critical | Dataset::Preference => &[
            "run_id",
            "task_id",
            "example_id",
            "tau",
            "chosen",
            "rejected",
            "experience",
            "t",
            "observation",
            "action_text",
        ],
    }
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

fn params(opts: &ExportOptions, run: &str) -> BTreeMap<String, String> {
    let mut p = BTreeMap::from([("run".to_string(), run.to_string())]);
    match opts.dataset {
        Dataset::Counterfactual => {
            p.insert("min_depth".into(), "1".into());
        }
        Dataset::Rehearsal => {
            p.insert("min_depth".into(), "0".into());
        }
        Dataset::Critical => {
            p.insert("require_fix".into(), "false".into());
        }
        Dataset::Preference => {
            p.insert("require_fix".into(), "true".into());
        }
    }
    p
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
    let runs_q = load_query(opts.queries_dir.as_deref(), "export_runs")
        .map_err(anyhow::Error::from)?
        .bind(&BTreeMap::from([("run".to_string(), opts.runs.clone())]))
        .map_err(anyhow::Error::from)?;
    let mut runs = Vec::new();
    for b in session
        .collect(&runs_q)
        .await
        .map_err(anyhow::Error::from)?
    {
        let col = b.column(0).as_string::<i32>();
        runs.extend((0..b.num_rows()).map(|i| col.value(i).to_string()));
    }
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
    let windowed = ["from_example", "to_example"]
        .iter()
        .all(|n| query.params.iter().any(|p| p.name == *n));
    let mut work = Vec::new();
    for run in &runs {
        if windowed {
            for (from, to) in windows(
                &session,
                opts.queries_dir.as_deref(),
                opts.dataset,
                run,
                opts.window,
            )
            .await?
            {
                let mut p = params(opts, &like_exact(run));
                p.insert("from_example".into(), from.to_string());
                p.insert("to_example".into(), to.to_string());
                work.push(p);
            }
        } else {
            work.push(params(opts, &like_exact(run)));
        }
    }
    for p in &work {
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

/// Default examples read per query (see [`ExportOptions::window`]).
pub const WINDOW_EXAMPLES: usize = 8192;

/// Id ranges [from, to) of a run's candidate examples (leaf episodes or
/// reflections), each holding about `window` of them. Ids are
/// spread over tasks (task index in the high bits), so equal-width ranges
/// hold similar counts.
async fn windows(
    session: &QuerySession,
    queries: Option<&std::path::Path>,
    dataset: Dataset,
    run: &str,
    window: usize,
) -> Result<Vec<(i64, i64)>, ExportError> {
    let name = match dataset {
        Dataset::Counterfactual | Dataset::Rehearsal => "export_episode_ids",
        Dataset::Critical | Dataset::Preference => "export_reflection_ids",
    };
    let q = load_query(queries, name)
        .map_err(anyhow::Error::from)?
        .bind(&BTreeMap::from([("run".to_string(), run.to_string())]))
        .map_err(anyhow::Error::from)?;
    let b = session.collect(&q).await.map_err(anyhow::Error::from)?;
    let Some(b) = b
        .first()
        .filter(|b| b.num_rows() == 1 && !b.column(0).is_null(0))
    else {
        return Ok(Vec::new());
    };
    let v = |i: usize| {
        arrow::compute::cast(b.column(i), &DataType::Int64)
            .map(|c| c.as_primitive::<arrow::datatypes::Int64Type>().value(0))
            .map_err(|e| ExportError::Other(e.into()))
    };
    let (lo, hi, n) = (v(0)?, v(1)?, v(2)?);
    let window = window.max(1) as i64;
    let parts = ((n + window - 1) / window).max(1);
    let width = ((hi - lo) / parts + 1).max(1);
    let mut out = Vec::new();
    let mut from = lo;
    while from <= hi {
        let to = from.saturating_add(width);
        out.push((from, to));
        from = to;
    }
    Ok(out)
}

fn split_output(out: &str) -> Result<(String, String), ExportError> {
    let out = out.trim();
    let (dir, file) = match out.rsplit_once('/') {
        Some((d, f)) if !f.is_empty() => (d.to_string(), f.to_string()),
        Some(_) => {
            return Err(ExportError::Invalid(format!(
                "--out {out} names a directory; give a file name"
            )));
        }
        None => (".".to_string(), out.to_string()),
    };
    if dir.is_empty() {
        return Ok(("/".into(), file));
    }
    if dir == "s3:/" || dir.ends_with(":/") {
        return Err(ExportError::Invalid(format!(
            "--out {out}: give s3://bucket/key, a key inside a bucket"
        )));
    }
    Ok((dir, file))
}

type Row = (Example, Turn);

fn rows_of(b: &RecordBatch, dataset: Dataset) -> Result<Vec<Row>, ExportError> {
    let text = |name: &str| -> Result<Vec<Option<String>>, ExportError> {
        let c = b
            .column_by_name(name)
            .ok_or_else(|| ExportError::Invalid(format!("no column {name}")))?;
        let c = arrow::compute::cast(c, &DataType::Utf8)
            .map_err(|e| ExportError::Invalid(format!("column {name}: {e}")))?;
        let c = c.as_string::<i32>();
        Ok((0..c.len())
            .map(|i| (!c.is_null(i)).then(|| c.value(i).to_string()))
            .collect())
    };
    let int = |name: &str| -> Result<Vec<i64>, ExportError> {
        let c = b
            .column_by_name(name)
            .ok_or_else(|| ExportError::Invalid(format!("no column {name}")))?;
        let c = arrow::compute::cast(c, &DataType::Int64)
            .map_err(|e| ExportError::Invalid(format!("column {name}: {e}")))?;
        let c = c.as_primitive::<arrow::datatypes::Int64Type>();
        Ok((0..c.len()).map(|i| c.value(i)).collect())
    };
    let run = text("run_id")?;
    let task = text("task_id")?;
    let ex = int("example_id")?;
    let tau = int("tau")?;
    let exp = text("experience")?;
    let cat = if b.column_by_name("category").is_some() {
        text("category")?
    } else {
        vec![None; b.num_rows()]
    };
    let t = int("t")?;
    let obs = text("observation")?;
    let act = text("action_text")?;
    let none = || vec![None; b.num_rows()];
    let (chosen, rejected) = match dataset {
        Dataset::Critical | Dataset::Preference => (text("chosen")?, text("rejected")?),
        _ => (none(), none()),
    };
    let chosen_source = if b.column_by_name("chosen_source").is_some() {
        text("chosen_source")?
    } else {
        none()
    };
    Ok((0..b.num_rows())
        .map(|i| {
            (
                Example {
                    run_id: run[i].clone().unwrap_or_default(),
                    task_id: task[i].clone().unwrap_or_default(),
                    example_id: ex[i],
                    tau: tau[i] as i32,
                    experience: exp[i].clone(),
                    category: cat[i].clone(),
                    chosen: chosen[i].clone(),
                    chosen_source: chosen_source[i].clone(),
                    rejected: rejected[i].clone(),
                    turns: Vec::new(),
                },
                Turn {
                    t: t[i] as i32,
                    observation: obs[i].clone().unwrap_or_default(),
                    action: act[i].clone().unwrap_or_default(),
                },
            )
        })
        .collect())
}

fn msg(role: &str, content: &str) -> Value {
    json!({ "role": role, "content": content })
}

/// The prompt (system + history as user/assistant turns + the observation
/// where the completion starts) and the completion turns of an example.
fn split(ex: &Example, dataset: Dataset, system: &str) -> (Vec<Value>, Vec<Value>) {
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

fn prompt_hash(prompt: &[Value]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_string(prompt)
        .expect("json serializes")
        .hash(&mut h);
    h.finish()
}

async fn emit(
    ex: Example,
    opts: &ExportOptions,
    sink: &mut Sink,
    summary: &mut ExportSummary,
    seen: &mut HashSet<u64>,
    index: &mut u64,
) -> Result<(), ExportError> {
    let (prompt, completion) = split(&ex, opts.dataset, &opts.system_prompt);
    if completion.is_empty() || (opts.format == Format::Dpo && ex.rejected.is_none()) {
        summary.skipped += 1;
        return Ok(());
    }
    if opts.dedup && !seen.insert(prompt_hash(&prompt)) {
        summary.duplicates += 1;
        return Ok(());
    }
    let meta = json!({
        "run_id": ex.run_id, "task_id": ex.task_id, "example_id": ex.example_id,
        "tau": ex.tau, "category": ex.category, "chosen_source": ex.chosen_source,
    });
    let mut record = match opts.format {
        Format::TrlMessages => {
            let mut messages = prompt;
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
            json!({ "conversations": conversations, "system": opts.system_prompt })
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
                "data_source": "leafe/sokoban",
                "prompt": prompt,
                "ability": "sokoban",
                "reward_model": { "style": "rule", "ground_truth": ground_truth.join(" ") },
                "extra_info": {
                    "split": "train", "index": *index, "run_id": ex.run_id,
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
    sink.write(record).await?;
    *index += 1;
    summary.examples += 1;
    Ok(())
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

enum Sink {
    Jsonl {
        out: Box<object_store::buffered::BufWriter>,
        buf: Vec<u8>,
    },
    Parquet {
        writer: Box<parquet::arrow::AsyncArrowWriter<object_store::buffered::BufWriter>>,
        pending: Vec<Value>,
        schema: std::sync::Arc<Schema>,
    },
}

impl Sink {
    fn new(store: &Store, file: &str, format: Format) -> Sink {
        let out = store.object_writer(file);
        match format {
            Format::VerlParquet => {
                let schema = std::sync::Arc::new(verl_schema());
                let props = parquet::file::properties::WriterProperties::builder()
                    .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
                    .build();
                Sink::Parquet {
                    writer: Box::new(
                        parquet::arrow::AsyncArrowWriter::try_new(out, schema.clone(), Some(props))
                            .expect("static verl schema"),
                    ),
                    pending: Vec::new(),
                    schema,
                }
            }
            _ => Sink::Jsonl {
                out: Box::new(out),
                buf: Vec::new(),
            },
        }
    }

    async fn write(&mut self, record: Value) -> Result<(), ExportError> {
        match self {
            Sink::Jsonl { out, buf } => {
                serde_json::to_writer(&mut *buf, &record).expect("json serializes");
                buf.push(b'\n');
                if buf.len() >= 1 << 20 {
                    out.write_all(buf).await.map_err(io_err)?;
                    buf.clear();
                }
            }
            Sink::Parquet {
                writer,
                pending,
                schema,
            } => {
                pending.push(record);
                if pending.len() >= 8192 {
                    let batch = to_batch(schema, pending)?;
                    pending.clear();
                    writer.write(&batch).await.map_err(parquet_err)?;
                }
            }
        }
        Ok(())
    }

    async fn finish(self) -> Result<(), ExportError> {
        match self {
            Sink::Jsonl { mut out, buf } => {
                out.write_all(&buf).await.map_err(io_err)?;
                out.shutdown().await.map_err(io_err)?;
            }
            Sink::Parquet {
                writer,
                pending,
                schema,
            } => {
                let mut writer = *writer;
                if !pending.is_empty() {
                    let batch = to_batch(&schema, &pending)?;
                    writer.write(&batch).await.map_err(parquet_err)?;
                }
                writer.close().await.map_err(parquet_err)?;
            }
        }
        Ok(())
    }

    async fn abort(self) {
        match self {
            Sink::Jsonl { mut out, .. } => {
                let _ = out.abort().await;
            }
            Sink::Parquet { writer, .. } => {
                let mut inner = (*writer).into_inner();
                let _ = inner.abort().await;
            }
        }
    }
}

fn to_batch(schema: &std::sync::Arc<Schema>, rows: &[Value]) -> Result<RecordBatch, ExportError> {
    let mut decoder = arrow::json::ReaderBuilder::new(schema.clone())
        .build_decoder()
        .map_err(|e| ExportError::Other(e.into()))?;
    decoder
        .serialize(rows)
        .map_err(|e| ExportError::Other(e.into()))?;
    Ok(decoder
        .flush()
        .map_err(|e| ExportError::Other(e.into()))?
        .expect("rows were given"))
}

fn io_err(e: std::io::Error) -> ExportError {
    ExportError::Other(anyhow::anyhow!("writing the export: {e}"))
}

fn parquet_err(e: parquet::errors::ParquetError) -> ExportError {
    ExportError::Other(anyhow::anyhow!("writing the export: {e}"))
}
