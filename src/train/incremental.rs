//! Scheduled training: a model line trained on what is new since its
//! watermark (`leafe train --incremental`).
//!
//! A line `L` is a sequence of models `L.v0001`, `L.v0002`, … and a watermark
//! `_leafe/watermarks/L.json` in the store: the versions saved and every run
//! trained on. An increment trains on the committed runs matching a pattern
//! that the line has not seen, from its latest version, saves the next
//! version, then moves the watermark. A crash between the two retrains the
//! same runs into a new version: nothing is skipped. Two schedulers racing on
//! one line cannot both save a version (model names are put-if-absent).

use std::collections::{BTreeMap, HashSet};

use arrow::array::AsArray;
use serde::{Deserialize, Serialize};

use super::distill::{DistillConfig, DistillReport, Method};
use super::{Network, Result, TrainError, distill_and_save};
use crate::query::{QuerySession, like_exact, load_query};
use crate::store::{Store, now_us};

/// The state of a model line, kept in the store.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Watermark {
    /// Versions saved so far.
    pub version: u32,
    /// Name of the latest version.
    pub latest: Option<String>,
    /// Every run trained on, in order.
    pub trained_runs: Vec<String>,
    /// When the watermark last moved (µs since the epoch).
    pub updated_at_us: i64,
}

/// What an increment did.
#[derive(Debug, Clone)]
pub enum Increment {
    /// No unseen runs: the latest version (if any) is current.
    NothingNew {
        /// The line's latest version.
        latest: Option<String>,
    },
    /// A new version was trained and saved.
    Trained {
        /// Its name.
        name: String,
        /// The model it started from.
        init: String,
        /// The runs it was trained on.
        runs: Vec<String>,
        /// The distillation's report.
        report: DistillReport,
    },
}

fn invalid(e: impl std::fmt::Display) -> TrainError {
    TrainError::Invalid(e.to_string())
}

/// Trains line `line` one increment on the unseen runs matching `runs` (a
/// SQL LIKE pattern), from its latest version or `init` the first time;
/// `network` is what the line's models are.
#[allow(clippy::too_many_arguments)]
pub async fn train_increment(
    store: &Store,
    line: &str,
    init: &str,
    network: &Network,
    method: Method,
    runs: &str,
    queries: Option<&std::path::Path>,
    config: &DistillConfig,
    command_line: &str,
    progress: impl FnMut(usize, usize, f32),
) -> Result<Increment> {
    if method == Method::Grpo {
        return Err(invalid(
            "incremental training uses stored runs (leafe, rft); grpo samples its own",
        ));
    }
    if store.model_manifest(line).await?.is_some() {
        return Err(invalid(format!(
            "`{line}` is a single model, not a model line: choose another name for the line"
        )));
    }
    let mut wm: Watermark = match store.watermark(line).await? {
        Some(v) => {
            serde_json::from_value(v).map_err(|e| invalid(format!("watermark of {line}: {e}")))?
        }
        None => Watermark::default(),
    };
    let session = QuerySession::open(store).await.map_err(invalid)?;
    let q = load_query(queries, "explored_runs")
        .map_err(invalid)?
        .bind(&BTreeMap::from([("run".to_string(), runs.to_string())]))
        .map_err(invalid)?;
    let seen: HashSet<&str> = wm.trained_runs.iter().map(String::as_str).collect();
    let mut new_runs = Vec::new();
    for b in session.collect(&q).await.map_err(invalid)? {
        let col = b.column(0).as_string::<i32>();
        new_runs.extend(
            (0..b.num_rows())
                .map(|i| col.value(i))
                .filter(|r| !seen.contains(r))
                .map(str::to_string),
        );
    }
    if new_runs.is_empty() {
        return Ok(Increment::NothingNew { latest: wm.latest });
    }
    let init = wm.latest.clone().unwrap_or_else(|| init.to_string());
    let name = format!("{line}.v{:04}", wm.version + 1);
    let patterns: Vec<String> = new_runs.iter().map(|r| like_exact(r)).collect();
    let report = distill_and_save(
        store,
        network,
        &init,
        method,
        &patterns,
        queries,
        config,
        &format!("train-{name}"),
        &name,
        |report| {
            serde_json::json!({
                "method": method, "init": init, "line": line, "runs": new_runs,
                "queries": queries.map(|q| q.display().to_string()), "distill": config, "report": report,
            })
        },
        command_line,
        progress,
    )
    .await?;
    wm.version += 1;
    wm.latest = Some(name.clone());
    wm.trained_runs.extend(new_runs.iter().cloned());
    wm.updated_at_us = now_us();
    store
        .put_watermark(
            line,
            &serde_json::to_value(&wm).expect("watermark serializes"),
        )
        .await?;
    Ok(Increment::Trained {
        name,
        init,
        runs: new_runs,
        report,
    })
}
