//! Stage 2 from SQL: the training data of LEAFE distillation and of
//! rejection-sampling fine-tuning is whatever `queries/counterfactual_pairs.sql`
//! and `queries/rehearsal.sql` return — Arrow record batches whose
//! `observation` (text) and `action` columns become burn tensors. Editing a
//! query changes what is trained on, without touching Rust.
//!
//! - `leafe`: cross-entropy on the counterfactual pairs (experience NOT in the
//!   input: the query does not select it and the network never sees it) plus
//!   `beta` × cross-entropy on rehearsal rows.
//! - `rft`: rehearsal rows only (rejection-sampling fine-tuning, the
//!   "no rollback" ablation).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::Int32Type;
use arrow::record_batch::RecordBatch;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::{FitConfig, Result, Samples, TrainError, fit, load_policy};
use crate::env::Observation;
use crate::policy::{Encoder, NeuralPolicy};
use crate::query::{QuerySession, QueryText, load_query};
use crate::store::Store;

/// Which Stage 2 method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Counterfactual distillation + beta × rehearsal.
    Leafe,
    /// Rehearsal only.
    Rft,
    /// Outcome RL baseline (see `train::grpo`); not a distillation.
    Grpo,
}

/// Settings of distillation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DistillConfig {
    /// Weight of rehearsal rows relative to counterfactual pairs (leafe).
    pub beta: f32,
    /// The optimisation.
    pub fit: FitConfig,
}

impl Default for DistillConfig {
    fn default() -> Self {
        DistillConfig {
            beta: 0.5,
            fit: FitConfig {
                epochs: 3,
                learning_rate: 5e-4,
                ..FitConfig::default()
            },
        }
    }
}

/// Appends the (observation, action) rows of record batches to `samples`
/// with one weight. The batches must have an `observation` Utf8 and an
/// `action` Int32 column.
pub fn append_rows(
    samples: &mut Samples,
    batches: &[RecordBatch],
    encoder: &dyn Encoder,
    board: usize,
    weight: f32,
) -> Result<usize> {
    let width = encoder.channels() * board * board;
    let mut n = 0;
    for b in batches {
        let col = |name: &str| {
            b.column_by_name(name).ok_or_else(|| {
                TrainError::Invalid(format!("the training query returns no `{name}` column"))
            })
        };
        let obs = col("observation")?;
        let act = col("action")?;
        let (Some(obs), Some(act)) = (
            obs.as_string_opt::<i32>(),
            act.as_primitive_opt::<Int32Type>(),
        ) else {
            return Err(TrainError::Invalid(
                "`observation` must be Utf8 and `action` Int32".into(),
            ));
        };
        for i in 0..b.num_rows() {
            if obs.is_null(i) || act.is_null(i) {
                continue;
            }
            let start = samples.planes.len();
            samples.planes.resize(start + width, 0.0);
            encoder
                .encode(
                    &Observation::text(obs.value(i)),
                    board,
                    &mut samples.planes[start..],
                )
                .map_err(|e| TrainError::Invalid(format!("observation row {i}: {e}")))?;
            samples.actions.push(act.value(i));
            samples.weights.push(weight);
            n += 1;
        }
    }
    Ok(n)
}

async fn rows(session: &QuerySession, query: &QueryText, runs: &str) -> Result<Vec<RecordBatch>> {
    let bound = query
        .bind(&BTreeMap::from([("run".to_string(), runs.to_string())]))
        .map_err(|e| TrainError::Invalid(e.to_string()))?;
    let mut stream = session
        .stream(&bound)
        .await
        .map_err(|e| TrainError::Invalid(e.to_string()))?;
    let mut out = Vec::new();
    while let Some(b) = stream.next().await {
        out.push(b.map_err(|e| TrainError::Invalid(format!("{}: {e}", query.source_name)))?);
    }
    Ok(out)
}

/// What a distillation used and reached.
#[derive(Debug, Clone, Serialize)]
pub struct DistillReport {
    /// Counterfactual pairs trained on.
    pub pairs: usize,
    /// Rehearsal rows trained on.
    pub rehearsal: usize,
    /// Mean weighted loss per epoch.
    pub epoch_losses: Vec<f32>,
}

/// Trains `init` with `method` on the runs matching `runs` (a SQL LIKE pattern).
#[allow(clippy::too_many_arguments)]
pub async fn distill(
    store: &Store,
    init: &str,
    encoder: Arc<dyn Encoder>,
    method: Method,
    runs: &str,
    queries: Option<&Path>,
    config: &DistillConfig,
    progress: impl FnMut(usize, usize, f32),
) -> Result<(NeuralPolicy, DistillReport)> {
    distill_runs(
        store,
        init,
        encoder,
        method,
        &[runs.to_string()],
        queries,
        config,
        progress,
    )
    .await
}

/// Escapes a run id for use as an exact SQL LIKE pattern.
pub fn like_exact(run_id: &str) -> String {
    run_id
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// Like [`distill`], on the union of several run patterns.
#[allow(clippy::too_many_arguments)]
pub async fn distill_runs(
    store: &Store,
    init: &str,
    encoder: Arc<dyn Encoder>,
    method: Method,
    patterns: &[String],
    queries: Option<&Path>,
    config: &DistillConfig,
    progress: impl FnMut(usize, usize, f32),
) -> Result<(NeuralPolicy, DistillReport)> {
    let runs = patterns.join(", ");
    if method == Method::Grpo {
        return Err(TrainError::Invalid(
            "GRPO samples its own data: use train::grpo".into(),
        ));
    }
    let base = load_policy(store, init, encoder).await?;
    let board = base.config().board;
    let encoder = base.encoder().clone();
    let session = QuerySession::open(store)
        .await
        .map_err(|e| TrainError::Invalid(e.to_string()))?;
    let mut samples = Samples::default();
    let mut pairs = 0;
    if method == Method::Leafe {
        let q = load_query(queries, "counterfactual_pairs")
            .map_err(|e| TrainError::Invalid(e.to_string()))?;
        for p in patterns {
            pairs += append_rows(
                &mut samples,
                &rows(&session, &q, p).await?,
                encoder.as_ref(),
                board,
                1.0,
            )?;
        }
    }
    let weight = if method == Method::Leafe {
        config.beta
    } else {
        1.0
    };
    let q = load_query(queries, "rehearsal").map_err(|e| TrainError::Invalid(e.to_string()))?;
    let mut rehearsal = 0;
    for p in patterns {
        rehearsal += append_rows(
            &mut samples,
            &rows(&session, &q, p).await?,
            encoder.as_ref(),
            board,
            weight,
        )?;
    }
    if samples.is_empty() {
        return Err(TrainError::Invalid(format!(
            "no training rows for runs matching `{runs}`: explore first, or check --runs"
        )));
    }
    let (net, epoch_losses) = tokio::task::block_in_place(|| {
        fit(
            base.net().clone(),
            base.config(),
            &samples,
            &config.fit,
            progress,
        )
    })?;
    let policy = NeuralPolicy::new(init, base.config().clone(), net, encoder)?;
    Ok((
        policy,
        DistillReport {
            pairs,
            rehearsal,
            epoch_losses,
        },
    ))
}
