//! Examples from query rows: the columns an export query must return, and
//! the decoding of its record batches into (example, turn) rows.
//!
//! A query returns one row per step, ordered by (run, example, t); the
//! driver groups consecutive rows of one (run, example) into an
//! [`Example`]. Text columns are read through a cast to Utf8 and integer
//! columns through Int64, so a user's query may return any type that casts.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::DataType;

use super::{Dataset, ExportError};

/// One step of an example.
#[derive(Debug, Clone)]
pub(super) struct Turn {
    pub(super) t: i32,
    pub(super) observation: String,
    pub(super) action: String,
    /// The model request that chose the action (`steps.llm_call_id`), when
    /// the query returns it.
    pub(super) call: Option<i64>,
}

/// One example being assembled.
#[derive(Debug, Clone, Default)]
pub(super) struct Example {
    pub(super) run_id: String,
    pub(super) task_id: String,
    pub(super) example_id: i64,
    pub(super) tau: i32,
    pub(super) experience: Option<String>,
    pub(super) category: Option<String>,
    pub(super) chosen: Option<String>,
    pub(super) chosen_source: Option<String>,
    pub(super) rejected: Option<String>,
    pub(super) turns: Vec<Turn>,
}

/// The columns a query must return for `dataset`.
pub(super) fn required_columns(dataset: Dataset) -> &'static [&'static str] {
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

/// One step of a query's result: its example (without turns) and the turn.
pub(super) type Row = (Example, Turn);

/// Decodes a batch of an export query's rows.
pub(super) fn rows_of(b: &RecordBatch, dataset: Dataset) -> Result<Vec<Row>, ExportError> {
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
    let call: Vec<Option<i64>> = match b.column_by_name("llm_call_id") {
        Some(c) => {
            let c = arrow::compute::cast(c, &DataType::Int64)
                .map_err(|e| ExportError::Invalid(format!("column llm_call_id: {e}")))?;
            let c = c.as_primitive::<arrow::datatypes::Int64Type>();
            (0..c.len())
                .map(|i| (!c.is_null(i)).then(|| c.value(i)))
                .collect()
        }
        None => vec![None; b.num_rows()],
    };
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
                    call: call[i],
                },
            )
        })
        .collect())
}
