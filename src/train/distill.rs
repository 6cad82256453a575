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
    /// Rows held in memory at most. Training data that fits is held whole
    /// and shuffled whole every epoch; larger data streams from SQL each
    /// epoch through a shuffle buffer of this many rows (see
    /// [`distill_runs`]), so memory stays bounded however large the store.
    pub shuffle_buffer: usize,
}

/// The default [`DistillConfig::shuffle_buffer`]: 131,072 rows, about
/// 370 MB of Sokoban's 7 × 10 × 10 input planes.
pub const DEFAULT_SHUFFLE_BUFFER: usize = 131_072;

impl Default for DistillConfig {
    fn default() -> Self {
        DistillConfig {
            beta: 0.5,
            fit: FitConfig {
                epochs: 3,
                learning_rate: 5e-4,
                ..FitConfig::default()
            },
            shuffle_buffer: DEFAULT_SHUFFLE_BUFFER,
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

/// One training query over one run pattern, with its rows' loss weight.
struct Source {
    bound: crate::query::BoundQuery,
    weight: f32,
    counterfactual: bool,
}

impl Source {
    fn new(query: &QueryText, runs: &str, weight: f32, counterfactual: bool) -> Result<Source> {
        let bound = query
            .bind(&BTreeMap::from([("run".to_string(), runs.to_string())]))
            .map_err(|e| TrainError::Invalid(e.to_string()))?;
        Ok(Source {
            bound,
            weight,
            counterfactual,
        })
    }
}

/// Reads training rows from SQL into encoded samples.
struct Reader<'a> {
    session: &'a QuerySession,
    encoder: &'a dyn Encoder,
    board: usize,
}

impl Reader<'_> {
    /// Streams `source`'s rows, calling `each` with every batch encoded.
    async fn each_batch(
        &self,
        source: &Source,
        mut each: impl FnMut(Samples) -> Result<bool>,
    ) -> Result<()> {
        let mut stream = self
            .session
            .stream(&source.bound)
            .await
            .map_err(|e| TrainError::Invalid(e.to_string()))?;
        while let Some(b) = stream.next().await {
            let b = b.map_err(|e| {
                TrainError::Invalid(
                    self.session
                        .error(&source.bound.source_name, &e)
                        .to_string(),
                )
            })?;
            let mut samples = Samples::default();
            append_rows(
                &mut samples,
                std::slice::from_ref(&b),
                self.encoder,
                self.board,
                source.weight,
            )?;
            if !each(samples)? {
                break;
            }
        }
        Ok(())
    }

    /// Every source's rows in order, if there are at most `cap` of them
    /// (with the counts of pairs and rehearsal rows); None once more arrive.
    async fn up_to(
        &self,
        sources: &[Source],
        cap: usize,
    ) -> Result<(Option<Samples>, usize, usize)> {
        let mut all = Samples::default();
        let (mut pairs, mut rehearsal) = (0, 0);
        for source in sources {
            let mut over = false;
            self.each_batch(source, |batch| {
                if source.counterfactual {
                    pairs += batch.len();
                } else {
                    rehearsal += batch.len();
                }
                all.planes.extend_from_slice(&batch.planes);
                all.actions.extend_from_slice(&batch.actions);
                all.weights.extend_from_slice(&batch.weights);
                over = all.len() > cap;
                Ok(!over)
            })
            .await?;
            if over {
                return Ok((None, 0, 0));
            }
        }
        Ok((Some(all), pairs, rehearsal))
    }

    /// Fits on data larger than memory: every epoch runs the queries again
    /// and passes their rows through a shuffle buffer of `cap` rows (a row
    /// enters; once the buffer is full, a uniformly chosen row leaves for
    /// the next minibatch; at the end of the epoch the rest leave in random
    /// order). Minibatches therefore mix rows within a window of about
    /// `cap` rows of the queries' order (run, episode, step), not across the
    /// whole data as the in-memory fit does. Seeded: the same data and
    /// config give the same network.
    #[allow(clippy::type_complexity)]
    async fn fit_streaming(
        &self,
        net: crate::policy::PolicyNet,
        config: &crate::policy::PolicyNetConfig,
        sources: &[Source],
        cap: usize,
        fit_cfg: &FitConfig,
        mut progress: impl FnMut(usize, usize, f32),
    ) -> Result<(crate::policy::PolicyNet, Vec<f32>, usize, usize)> {
        use rand::seq::SliceRandom;
        use rand::{Rng, SeedableRng};

        let width = config.input_size();
        let mut stepper = super::Stepper::new(net, config, fit_cfg);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(fit_cfg.seed);
        let batch = fit_cfg.batch_size.max(1);
        let mut buffer = Samples::default();
        let mut mb = Samples::default();
        let (mut pairs, mut rehearsal) = (0usize, 0usize);
        let mut total_steps = 0usize;
        let mut epoch_losses = Vec::with_capacity(fit_cfg.epochs);
        for epoch in 0..fit_cfg.epochs {
            let (mut sum, mut weight_sum) = (0.0f64, 0.0f64);
            let mut take = |mb: &mut Samples, stepper: &mut super::Stepper| {
                let wsum: f32 = mb.weights.iter().sum();
                weight_sum += wsum as f64;
                if let Some(v) = tokio::task::block_in_place(|| {
                    stepper.step(&mb.planes, &mb.actions, &mb.weights)
                }) {
                    sum += v as f64 * wsum as f64;
                    progress(stepper.steps, total_steps, v);
                }
                mb.planes.clear();
                mb.actions.clear();
                mb.weights.clear();
            };
            for source in sources {
                self.each_batch(source, |rows| {
                    if epoch == 0 {
                        if source.counterfactual {
                            pairs += rows.len();
                        } else {
                            rehearsal += rows.len();
                        }
                    }
                    for i in 0..rows.len() {
                        let row = &rows.planes[i * width..(i + 1) * width];
                        if buffer.len() < cap {
                            buffer.planes.extend_from_slice(row);
                            buffer.actions.push(rows.actions[i]);
                            buffer.weights.push(rows.weights[i]);
                            continue;
                        }
                        // The buffer is full: a random row leaves, this one takes its place.
                        let j = rng.random_range(0..cap);
                        mb.planes
                            .extend_from_slice(&buffer.planes[j * width..(j + 1) * width]);
                        mb.actions.push(buffer.actions[j]);
                        mb.weights.push(buffer.weights[j]);
                        buffer.planes[j * width..(j + 1) * width].copy_from_slice(row);
                        buffer.actions[j] = rows.actions[i];
                        buffer.weights[j] = rows.weights[i];
                        if mb.len() == batch {
                            take(&mut mb, &mut stepper);
                        }
                    }
                    Ok(true)
                })
                .await?;
            }
            let mut order: Vec<usize> = (0..buffer.len()).collect();
            order.shuffle(&mut rng);
            for j in order {
                mb.planes
                    .extend_from_slice(&buffer.planes[j * width..(j + 1) * width]);
                mb.actions.push(buffer.actions[j]);
                mb.weights.push(buffer.weights[j]);
                if mb.len() == batch {
                    take(&mut mb, &mut stepper);
                }
            }
            if !mb.is_empty() {
                take(&mut mb, &mut stepper);
            }
            buffer = Samples::default();
            if epoch == 0 {
                total_steps = (pairs + rehearsal).div_ceil(batch) * fit_cfg.epochs;
            }
            epoch_losses.push((sum / weight_sum.max(1e-12)) as f32);
        }
        Ok((stepper.finish(), epoch_losses, pairs, rehearsal))
    }
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
    // The sources, in order: counterfactual pairs (weight 1), then
    // rehearsal rows (beta for leafe, 1 for rft), for each run pattern.
    let mut sources: Vec<Source> = Vec::new();
    if method == Method::Leafe {
        let q = load_query(queries, "counterfactual_pairs")
            .map_err(|e| TrainError::Invalid(e.to_string()))?;
        for p in patterns {
            sources.push(Source::new(&q, p, 1.0, true)?);
        }
    }
    let weight = if method == Method::Leafe {
        config.beta
    } else {
        1.0
    };
    let q = load_query(queries, "rehearsal").map_err(|e| TrainError::Invalid(e.to_string()))?;
    for p in patterns {
        sources.push(Source::new(&q, p, weight, false)?);
    }
    let cap = config.shuffle_buffer.max(1);
    let read = Reader {
        session: &session,
        encoder: encoder.as_ref(),
        board,
    };
    // Hold the data whole when it fits (then training is what it always
    // was); else stream it through the shuffle buffer every epoch.
    let (held, pairs, rehearsal) = read.up_to(&sources, cap).await?;
    let (net, epoch_losses, pairs, rehearsal) = match held {
        Some(samples) => {
            if samples.is_empty() {
                return Err(TrainError::NoData(format!(
                    "no training rows for runs matching `{runs}`: explore first, or check --runs"
                )));
            }
            let (net, losses) = tokio::task::block_in_place(|| {
                fit(
                    base.net().clone(),
                    base.config(),
                    &samples,
                    &config.fit,
                    progress,
                )
            })?;
            (net, losses, pairs, rehearsal)
        }
        None => {
            read.fit_streaming(
                base.net().clone(),
                base.config(),
                &sources,
                cap,
                &config.fit,
                progress,
            )
            .await?
        }
    };
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
