//! Paging: which query runs with which parameters. An export reads one
//! committed run at a time and, when the query takes `from_example` and
//! `to_example`, each run in windows of example ids, so that what DataFusion
//! holds and sorts at once is bounded by a window, not by the store.
//!
//! The runs come from `queries/export_runs.sql`, the id ranges from
//! `queries/export_episode_ids.sql` or `queries/export_reflection_ids.sql`.

use std::collections::BTreeMap;

use arrow::array::{Array, AsArray};
use arrow::datatypes::DataType;

use super::{Dataset, ExportError, ExportOptions};
use crate::query::{QuerySession, QueryText, like_exact, load_query};

/// The runs matching `opts.runs` that hold episodes, ordered by run id.
pub(super) async fn matching_runs(
    session: &QuerySession,
    opts: &ExportOptions,
) -> Result<Vec<String>, ExportError> {
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
    Ok(runs)
}

/// The parameters of the export query for each page of `runs`, in order,
/// each with the run it reads.
pub(super) async fn pages(
    session: &QuerySession,
    opts: &ExportOptions,
    query: &QueryText,
    runs: &[String],
) -> Result<Vec<(String, BTreeMap<String, String>)>, ExportError> {
    let windowed = ["from_example", "to_example"]
        .iter()
        .all(|n| query.params.iter().any(|p| p.name == *n));
    let mut work = Vec::new();
    for run in runs {
        if windowed {
            for (from, to) in windows(
                session,
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
                work.push((run.clone(), p));
            }
        } else {
            work.push((run.clone(), params(opts, &like_exact(run))));
        }
    }
    Ok(work)
}

/// The query's parameters for the examples of the runs matching `run`.
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
