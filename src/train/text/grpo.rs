//! GRPO for the text policy: the same loop as the MLP's
//! ([`crate::train::grpo`]): groups sampled in the environment and written
//! as runs, advantages from `queries/grpo_steps.sql`, a clipped
//! policy-gradient update with a KL penalty to the initial policy, until
//! the interaction budget is spent. Each step's context is rebuilt from the
//! episode's rows before it, as in distillation ([`super::distill`]).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Float64Type};
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use futures::StreamExt;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::distill::{PathDecisions, PathRow, int_column, text_column};
use super::encode;
use crate::env::{self, Env};
use crate::policy::default_device;
use crate::policy::text::{TextInput, TextPolicy, trainable};
use crate::query::{QuerySession, QueryText, load_query};
use crate::store::Store;
use crate::train::grpo::{GrpoConfig, GrpoReport, LossNorm, Sampler};
use crate::train::{Result, TrainError};

/// One iteration's training rows.
struct Rows {
    inputs: Vec<TextInput>,
    chosen: Vec<usize>,
    old_logp: Vec<f32>,
    advantages: Vec<f32>,
    weights: Vec<f32>,
}

/// Runs GRPO from the text policy `init` on `levels` until `budget`
/// environment steps are spent, as [`crate::train::grpo::grpo`] does for
/// the MLP (the same sampling, budget rule, query and loss).
///
/// # Errors
/// As [`crate::train::grpo::grpo`].
#[allow(clippy::too_many_arguments)]
pub async fn grpo_text<E: Env>(
    store: &Store,
    init: &TextPolicy,
    levels: &[E::Task],
    make_env: &(dyn Fn() -> env::Result<E> + Sync),
    run_prefix: &str,
    budget: u64,
    queries: Option<&Path>,
    config: &GrpoConfig,
    command_line: &str,
    mut progress: impl FnMut(&GrpoReport),
) -> Result<(TextPolicy, GrpoReport)> {
    let query = load_query(queries, "grpo_steps")?;
    let mut sampler = Sampler::new(
        store,
        levels,
        make_env,
        run_prefix,
        budget,
        config,
        command_line,
    )?;
    let mut net = trainable(init.net().clone(), init.config(), config.seed);
    let mut optim = AdamConfig::new().init();
    let mut policy = init.clone();
    let mut report = GrpoReport::default();
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let device = default_device().autodiff();
    while report.iterations < config.max_iterations {
        let Some(run_id) = sampler.sample(&policy, &mut report).await? else {
            break;
        };
        let rows = read_rows(store, &query, &run_id, config, &policy).await?;
        let reference: Vec<f32> = {
            let refs: Vec<&TextInput> = rows.inputs.iter().collect();
            let mut out = Vec::with_capacity(refs.len());
            for (c, chunk) in refs.chunks(1024).enumerate() {
                let lp = init.log_probs(chunk)?;
                out.extend(
                    lp.iter()
                        .enumerate()
                        .map(|(j, l)| l[rows.chosen[c * 1024 + j]]),
                );
            }
            out
        };
        let mut order: Vec<usize> = (0..rows.inputs.len()).collect();
        for _ in 0..config.epochs {
            order.shuffle(&mut rng);
            for chunk in order.chunks(config.batch_size.max(1)) {
                let b = chunk.len();
                let xs: Vec<&TextInput> = chunk.iter().map(|&i| &rows.inputs[i]).collect();
                let ys: Vec<usize> = chunk.iter().map(|&i| rows.chosen[i]).collect();
                let vector = |v: &[f32]| {
                    Tensor::<1>::from_data(
                        TensorData::new(chunk.iter().map(|&i| v[i]).collect::<Vec<f32>>(), [b]),
                        &device,
                    )
                };
                let (old, adv) = (vector(&rows.old_logp), vector(&rows.advantages));
                let (refp, weight) = (vector(&reference), vector(&rows.weights));
                let logp = net.chosen_log_probs(&xs, &ys, &device);
                let ratio = (logp.clone() - old).exp();
                let surrogate = (ratio.clone() * adv.clone())
                    .min_pair(ratio.clamp(1.0 - config.clip, 1.0 + config.clip) * adv);
                let mut loss = (surrogate * weight).mean().neg();
                if config.kl_coef > 0.0 {
                    let d = refp - logp;
                    let kl = (d.clone().exp() - d).sub_scalar(1.0).mean();
                    loss = loss + kl.mul_scalar(config.kl_coef);
                }
                let grads = GradientsParams::from_grads(loss.backward(), &net);
                net = optim.step(config.learning_rate, net, grads);
            }
        }
        policy = TextPolicy::new(
            crate::policy::Policy::name(init),
            init.config().clone(),
            Arc::clone(init.vocab()),
            net.valid(),
        )?;
        report.iterations += 1;
        progress(&report);
    }
    Ok((policy, report))
}

/// The rows of `grpo_steps.sql` for one sampled run, as decisions of
/// `policy` with their behaviour log-probabilities, advantages and loss
/// weights.
async fn read_rows(
    store: &Store,
    query: &QueryText,
    run_id: &str,
    config: &GrpoConfig,
    policy: &TextPolicy,
) -> Result<Rows> {
    let bound = query.bind(&BTreeMap::from([
        ("run".to_string(), run_id.to_string()),
        ("reward".to_string(), config.reward.as_str().to_string()),
    ]))?;
    let source = bound.source_name.clone();
    let session = QuerySession::open(store).await?;
    let mut stream = session.stream(&bound).await?;
    let mut paths = PathDecisions::new(policy.config().history, 1.0);
    let (mut old_logp, mut advantages, mut episodes) = (Vec::new(), Vec::new(), Vec::new());
    while let Some(b) = stream.next().await {
        let b = b.map_err(|e| session.error(&source, &e))?;
        let (run, episode, t) = (
            text_column(&b, "run_id", &source)?,
            int_column(&b, "episode_id", &source)?,
            int_column(&b, "t", &source)?,
        );
        let (obs, action, feedback, legal) = (
            text_column(&b, "observation", &source)?,
            text_column(&b, "action_text", &source)?,
            text_column(&b, "feedback", &source)?,
            text_column(&b, "legal_actions", &source)?,
        );
        let number = |name: &str| -> Result<arrow::array::Float64Array> {
            let c = b.column_by_name(name).ok_or_else(|| {
                TrainError::Invalid(format!("{source}: the query returns no `{name}` column"))
            })?;
            let c = arrow::compute::cast(c, &DataType::Float64)
                .map_err(|e| TrainError::Invalid(format!("{source}: `{name}`: {e}")))?;
            Ok(c.as_primitive::<Float64Type>().clone())
        };
        let (lp, adv) = (number("log_prob")?, number("advantage")?);
        for i in 0..b.num_rows() {
            let before = paths.decisions.len();
            paths.push(PathRow {
                run_id: run.value(i),
                leaf: episode.value(i),
                t: t.value(i),
                observation: obs.value(i),
                action: action.value(i),
                feedback: feedback.value(i),
                legal: (!legal.is_null(i)).then(|| legal.value(i)),
                target: !adv.is_null(i),
            })?;
            if paths.decisions.len() > before {
                old_logp.push(lp.value(i) as f32);
                advantages.push(adv.value(i) as f32);
                episodes.push(episode.value(i));
            }
        }
    }
    let weights = match config.loss_norm {
        LossNorm::Steps => vec![1.0; episodes.len()],
        LossNorm::Episodes => {
            let mut len: HashMap<i64, usize> = HashMap::new();
            for e in &episodes {
                *len.entry(*e).or_default() += 1;
            }
            let mean = episodes.len() as f32 / len.len().max(1) as f32;
            episodes.iter().map(|e| mean / len[e] as f32).collect()
        }
    };
    let (inputs, chosen, _) = encode(policy, &paths.decisions)?;
    Ok(Rows {
        inputs,
        chosen,
        old_logp,
        advantages,
        weights,
    })
}
