//! GRPO, the outcome-RL baseline, through the store: sample G rollouts per
//! task from the current policy → write them as a run (origin `grpo`, with the
//! behaviour log-probabilities) → `queries/grpo_steps.sql` computes the
//! group-normalised advantages in SQL → clipped policy-gradient update with an
//! optional KL penalty to the initial policy → repeat until the interaction
//! budget (environment steps) is spent.

use std::path::Path;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Float32Type, Float64Type, Int32Type};
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use futures::StreamExt;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{Result, TrainError};
use crate::env::{self, Env, Observation};
use crate::explore::rows::{PlainEpisode, push_steps};
use crate::explore::sample_trajectories;
use crate::policy::{NeuralPolicy, Policy, default_device};
use crate::query::{QuerySession, load_query};
use crate::store::{EpisodeBatchBuilder, RunSpec, StepBatchBuilder, Store, Table, now_us};

/// Settings of GRPO.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrpoConfig {
    /// Rollouts per task (the group).
    pub group_size: usize,
    /// Tasks sampled per iteration.
    pub tasks_per_iteration: usize,
    /// Upper bound on iterations (the budget usually stops it first).
    pub max_iterations: usize,
    /// Importance-ratio clip epsilon.
    pub clip: f32,
    /// Weight of the KL penalty to the initial policy (0: none).
    pub kl_coef: f32,
    /// Passes over each iteration's samples.
    pub epochs: usize,
    /// Steps per gradient update.
    pub batch_size: usize,
    /// Adam learning rate.
    pub learning_rate: f64,
    /// Sampling temperature.
    pub temperature: f32,
    /// Step limit of an episode (the caller's environments must end
    /// episodes there: the budget check assumes it).
    pub max_steps: u16,
    /// Seed.
    pub seed: u64,
    /// The reward whose group-normalised value is every step's advantage.
    pub reward: GrpoReward,
    /// How the clipped surrogate is averaged: over steps (every step counts
    /// once, so a 60-step failure weighs 10× a 6-step success) or over
    /// episodes (each step weighted by mean length / its episode's length,
    /// so every episode counts once, as a sequence-level GRPO loss).
    pub loss_norm: LossNorm,
}

/// See [`GrpoConfig::loss_norm`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossNorm {
    /// Mean over the steps of a batch.
    #[default]
    Steps,
    /// Every episode weighs the same.
    Episodes,
}

/// What GRPO normalises within a group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrpoReward {
    /// 1 when the episode solved its task, else 0 (the outcome reward of
    /// GRPO as published). Groups that all fail or all succeed carry no
    /// signal.
    #[default]
    Success,
    /// The environment's shaped episode return (Sokoban: -0.1 a step, +1 a
    /// box on target, +10 solved). Even all-failure groups then get
    /// advantages, from differences in shaping that need not point to
    /// success.
    Return,
}

impl GrpoReward {
    /// The name `grpo_steps.sql`'s `reward` parameter takes.
    pub fn as_str(self) -> &'static str {
        match self {
            GrpoReward::Success => "success",
            GrpoReward::Return => "return",
        }
    }
}

impl Default for GrpoConfig {
    fn default() -> Self {
        GrpoConfig {
            group_size: 8,
            tasks_per_iteration: 32,
            max_iterations: 1000,
            clip: 0.2,
            kl_coef: 0.1,
            epochs: 2,
            batch_size: 512,
            learning_rate: 1e-4,
            temperature: 1.0,
            max_steps: 60,
            seed: 0,
            reward: GrpoReward::Success,
            loss_norm: LossNorm::Steps,
        }
    }
}

/// What a GRPO run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GrpoReport {
    /// Iterations run.
    pub iterations: usize,
    /// Environment steps spent.
    pub env_steps: u64,
    /// Success rate of each iteration's samples.
    pub success_rates: Vec<f32>,
}

struct Rows {
    planes: Vec<f32>,
    actions: Vec<i32>,
    old_logp: Vec<f32>,
    advantages: Vec<f32>,
    /// Loss weight of each row (1, or mean length / episode length).
    weights: Vec<f32>,
}

/// Runs GRPO from `init` on `levels` until `budget` environment steps are spent
/// (never more: an iteration takes only the tasks the rest can afford).
/// `make_env` makes the environments, which must end episodes at
/// `config.max_steps`. `progress` sees the report and the policy after
/// every iteration (to log, or to keep checkpoints).
#[allow(clippy::too_many_arguments)]
pub async fn grpo<E: Env>(
    store: &Store,
    init: &NeuralPolicy,
    levels: &[E::Task],
    make_env: &(dyn Fn() -> env::Result<E> + Sync),
    run_prefix: &str,
    budget: u64,
    queries: Option<&Path>,
    config: &GrpoConfig,
    command_line: &str,
    mut progress: impl FnMut(&GrpoReport, &NeuralPolicy),
) -> Result<(NeuralPolicy, GrpoReport)> {
    if levels.is_empty() || config.group_size < 2 || config.tasks_per_iteration == 0 {
        return Err(TrainError::Invalid(
            "GRPO needs levels, group_size >= 2 and tasks_per_iteration >= 1".into(),
        ));
    }
    let query =
        load_query(queries, "grpo_steps").map_err(|e| TrainError::Invalid(e.to_string()))?;
    let width = init.config().input_size();
    let mut sampler = Sampler::new(
        store,
        levels,
        make_env,
        run_prefix,
        budget,
        config,
        command_line,
    )?;
    let mut net = super::trainable(init.net().clone(), init.config(), config.seed);
    let mut optim = AdamConfig::new().init();
    let mut policy = init.clone();
    let mut report = GrpoReport::default();
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    while report.iterations < config.max_iterations {
        let Some(run_id) = sampler.sample(&policy, &mut report).await? else {
            break;
        };
        // Store → SQL advantages → tensors.
        let rows = read_rows(
            store,
            &query,
            &run_id,
            config.reward,
            config.loss_norm,
            &policy,
            width,
        )
        .await?;
        // Update: clipped surrogate + KL(init || current) (k3 estimator).
        let ref_logp = reference_logp(init, &rows)?;
        net = update_epochs(net, &mut optim, &rows, &ref_logp, config, &mut rng, width);
        policy = NeuralPolicy::new(
            init.name(),
            init.config().clone(),
            net.valid(),
            init.encoder().clone(),
        )?;
        report.iterations += 1;
        progress(&report, &policy);
    }
    Ok((policy, report))
}

/// GRPO's sampling, for any policy: each iteration takes the next tasks
/// (as many as the budget left can afford if every sample runs to the step
/// limit, at most `tasks_per_iteration`), samples a group of rollouts of
/// each and writes them as one committed run (origin `grpo`, the behaviour
/// log-probabilities and legal actions in `steps`), whose advantages
/// `queries/grpo_steps.sql` then computes.
pub(crate) struct Sampler<'a, E: Env> {
    store: &'a Store,
    levels: &'a [E::Task],
    ids: Vec<String>,
    make_env: &'a (dyn Fn() -> env::Result<E> + Sync),
    run_prefix: &'a str,
    budget: u64,
    config: &'a GrpoConfig,
    command_line: &'a str,
    next_task: usize,
}

impl<'a, E: Env> Sampler<'a, E> {
    /// A sampler over `levels` (checked: some, groups of two or more).
    pub(crate) fn new(
        store: &'a Store,
        levels: &'a [E::Task],
        make_env: &'a (dyn Fn() -> env::Result<E> + Sync),
        run_prefix: &'a str,
        budget: u64,
        config: &'a GrpoConfig,
        command_line: &'a str,
    ) -> Result<Sampler<'a, E>> {
        if levels.is_empty() || config.group_size < 2 || config.tasks_per_iteration == 0 {
            return Err(TrainError::Invalid(
                "GRPO needs levels, group_size >= 2 and tasks_per_iteration >= 1".into(),
            ));
        }
        let probe = make_env().map_err(|e| TrainError::Invalid(e.to_string()))?;
        let ids: Vec<String> = levels.iter().map(|l| probe.task_id(l)).collect();
        drop(probe);
        Ok(Sampler {
            store,
            levels,
            ids,
            make_env,
            run_prefix,
            budget,
            config,
            command_line,
            next_task: 0,
        })
    }

    /// Samples iteration `report.iterations` with `policy` and writes it;
    /// its run id, or None once the budget cannot afford another group.
    /// Adds the steps and the success rate to `report`.
    pub(crate) async fn sample<P: Policy + Sync + ?Sized>(
        &mut self,
        policy: &P,
        report: &mut GrpoReport,
    ) -> Result<Option<String>> {
        let config = self.config;
        if report.env_steps >= self.budget {
            return Ok(None);
        }
        // Never exceed the budget: take only as many tasks as could run to
        // the step limit in every sample with what is left (at most one
        // group's worst case stays unspent at the end).
        let worst = config.max_steps as u64 * config.group_size as u64;
        let tasks = (((self.budget - report.env_steps) / worst.max(1)) as usize)
            .min(config.tasks_per_iteration);
        if tasks == 0 {
            return Ok(None);
        }
        let levels = self.levels;
        let picked: Vec<usize> = (0..tasks)
            .map(|i| (self.next_task + i) % levels.len())
            .collect();
        let chosen: Vec<E::Task> = picked.iter().map(|&i| levels[i].clone()).collect();
        self.next_task += tasks;
        let it_seed = config.seed.wrapping_add(report.iterations as u64 * 7919);
        let trajectories = tokio::task::block_in_place(|| {
            sample_trajectories(
                &chosen,
                self.make_env,
                policy,
                config.group_size,
                config.temperature,
                it_seed,
                1024,
            )
        })?;
        let steps: u64 = trajectories.iter().map(|t| t.steps.len() as u64).sum();
        report.env_steps += steps;
        report.success_rates.push(
            trajectories.iter().filter(|t| t.success).count() as f32 / trajectories.len() as f32,
        );

        let run_id = format!("{}.i{:04}", self.run_prefix, report.iterations);
        let spec = RunSpec {
            run_id: run_id.clone(),
            kind: "grpo-sample".into(),
            seed: Some(it_seed as i64),
            config: serde_json::json!({ "grpo": config, "iteration": report.iterations, "tasks": tasks, "policy": policy.name() }),
            command_line: self.command_line.to_string(),
            meta: serde_json::Value::Null,
        };
        let mut run = self.store.begin_run(spec).await?;
        let (mut eb, mut sb) = (EpisodeBatchBuilder::default(), StepBatchBuilder::default());
        let now = now_us();
        for (i, t) in trajectories.iter().enumerate() {
            let id = i as i64;
            push_steps(&mut sb, id, &t.steps, false);
            PlainEpisode {
                id,
                sample_index: t.sample,
                origin: "grpo",
                task_id: &self.ids[picked[t.level]],
                task_source: None,
                split: Some("train"),
                policy: policy.name(),
                success: t.success,
                status: t.status.as_str(),
                episode_return: t.episode_return,
                length: t.steps.len(),
                error: None,
            }
            .push(&mut eb, now);
        }
        let (e, s) = (eb.finish(), sb.finish());
        run.write(Table::Steps, &s).await?;
        run.write(Table::Episodes, &e).await?;
        run.commit().await?;
        Ok(Some(run_id))
    }
}

/// `config.epochs` passes of the clipped surrogate (+ the KL penalty to
/// the reference log-probabilities) over `rows` in shuffled minibatches.
fn update_epochs(
    mut net: crate::policy::PolicyNet,
    optim: &mut burn::optim::ModuleOptimizer,
    rows: &Rows,
    ref_logp: &[f32],
    config: &GrpoConfig,
    rng: &mut ChaCha8Rng,
    width: usize,
) -> crate::policy::PolicyNet {
    let device = default_device().autodiff();
    let mut order: Vec<usize> = (0..rows.actions.len()).collect();
    for _ in 0..config.epochs {
        order.shuffle(rng);
        for chunk in order.chunks(config.batch_size.max(1)) {
            let b = chunk.len();
            let pick = |v: &[f32]| chunk.iter().map(|&i| v[i]).collect::<Vec<f32>>();
            let mut xs = Vec::with_capacity(b * width);
            for &i in chunk {
                xs.extend_from_slice(&rows.planes[i * width..(i + 1) * width]);
            }
            // [b, width] (taken as a gather where one-hot), [b, 1], [b] × 4
            let y = Tensor::<2, Int>::from_data(
                TensorData::new(
                    chunk.iter().map(|&i| rows.actions[i]).collect::<Vec<i32>>(),
                    [b, 1],
                ),
                &device,
            );
            let vector = |v: &[f32]| Tensor::<1>::from_data(TensorData::new(pick(v), [b]), &device);
            let (old, adv) = (vector(&rows.old_logp), vector(&rows.advantages));
            let (reference, weight) = (vector(ref_logp), vector(&rows.weights));
            let logp = log_softmax(net.forward_planes(&xs, b, &device), 1)
                .gather(1, y)
                .reshape([b]);
            let ratio = (logp.clone() - old).exp();
            let surrogate = (ratio.clone() * adv.clone())
                .min_pair(ratio.clamp(1.0 - config.clip, 1.0 + config.clip) * adv);
            let mut loss = (surrogate * weight).mean().neg();
            if config.kl_coef > 0.0 {
                let d = reference - logp;
                let kl = (d.clone().exp() - d).sub_scalar(1.0).mean();
                loss = loss + kl.mul_scalar(config.kl_coef);
            }
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optim.step(config.learning_rate, net, grads);
        }
    }
    net
}

/// One GRPO update of `policy` on a fixed batch, outside the sampling loop
/// (a fresh optimiser; `config.epochs` passes; the KL is to `reference`):
/// each row is an observation, the action taken, its behaviour
/// log-probability and its advantage. For tests and for users who compute
/// advantages their own way.
///
/// # Errors
/// When an observation cannot be encoded, or the lengths differ.
pub fn update_on_batch(
    policy: &NeuralPolicy,
    reference: &NeuralPolicy,
    rows: &[(Observation, usize, f32, f32)],
    config: &GrpoConfig,
) -> Result<NeuralPolicy> {
    let width = policy.config().input_size();
    let mut batch = Rows {
        planes: vec![0.0; rows.len() * width],
        actions: Vec::with_capacity(rows.len()),
        old_logp: Vec::with_capacity(rows.len()),
        advantages: Vec::with_capacity(rows.len()),
        weights: vec![1.0; rows.len()],
    };
    for (i, (obs, action, logp, adv)) in rows.iter().enumerate() {
        policy
            .encoder()
            .encode(
                obs,
                policy.config().board,
                &mut batch.planes[i * width..(i + 1) * width],
            )
            .map_err(|e| TrainError::Invalid(e.to_string()))?;
        batch.actions.push(*action as i32);
        batch.old_logp.push(*logp);
        batch.advantages.push(*adv);
    }
    let ref_logp = reference_logp(reference, &batch)?;
    let net = super::trainable(policy.net().clone(), policy.config(), config.seed);
    let mut optim = AdamConfig::new().init();
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let net = update_epochs(net, &mut optim, &batch, &ref_logp, config, &mut rng, width);
    NeuralPolicy::new(
        policy.name(),
        policy.config().clone(),
        net.valid(),
        policy.encoder().clone(),
    )
    .map_err(Into::into)
}

async fn read_rows(
    store: &Store,
    query: &crate::query::QueryText,
    run_id: &str,
    reward: GrpoReward,
    loss_norm: LossNorm,
    policy: &NeuralPolicy,
    width: usize,
) -> Result<Rows> {
    let board = policy.config().board;
    let bound = query
        .bind(&std::collections::BTreeMap::from([
            ("run".to_string(), run_id.to_string()),
            ("reward".to_string(), reward.as_str().to_string()),
        ]))
        .map_err(|e| TrainError::Invalid(e.to_string()))?;
    let session = QuerySession::open(store)
        .await
        .map_err(|e| TrainError::Invalid(e.to_string()))?;
    let mut stream = session
        .stream(&bound)
        .await
        .map_err(|e| TrainError::Invalid(e.to_string()))?;
    let mut rows = Rows {
        planes: Vec::new(),
        actions: Vec::new(),
        old_logp: Vec::new(),
        advantages: Vec::new(),
        weights: Vec::new(),
    };
    let mut episodes: Vec<(String, i64)> = Vec::new();
    let bad = |what: &str| TrainError::Invalid(format!("{}: {what}", query.source_name));
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| bad(&e.to_string()))?;
        let col = |name: &str| {
            batch
                .column_by_name(name)
                .ok_or_else(|| bad(&format!("no `{name}` column")))
        };
        let obs = col("observation")?
            .as_string_opt::<i32>()
            .ok_or_else(|| bad("`observation` is not Utf8"))?
            .clone();
        let act = col("action")?
            .as_primitive_opt::<Int32Type>()
            .ok_or_else(|| bad("`action` is not Int32"))?
            .clone();
        let lp = col("log_prob")?
            .as_primitive_opt::<Float32Type>()
            .ok_or_else(|| bad("`log_prob` is not Float32"))?
            .clone();
        let adv = col("advantage")?
            .as_primitive_opt::<Float64Type>()
            .ok_or_else(|| bad("`advantage` is not Float64"))?
            .clone();
        let run = col("run_id")?
            .as_string_opt::<i32>()
            .ok_or_else(|| bad("`run_id` is not Utf8"))?
            .clone();
        let episode = arrow::compute::cast(col("episode_id")?, &arrow::datatypes::DataType::Int64)
            .map_err(|e| bad(&e.to_string()))?;
        let episode = episode.as_primitive::<arrow::datatypes::Int64Type>();
        for i in 0..batch.num_rows() {
            if adv.is_null(i) {
                continue;
            }
            episodes.push((run.value(i).to_string(), episode.value(i)));
            let start = rows.planes.len();
            rows.planes.resize(start + width, 0.0);
            policy
                .encoder()
                .encode(
                    &Observation::text(obs.value(i)),
                    board,
                    &mut rows.planes[start..],
                )
                .map_err(|e| bad(&e.to_string()))?;
            rows.actions.push(act.value(i));
            rows.old_logp.push(lp.value(i));
            rows.advantages.push(adv.value(i) as f32);
        }
    }
    rows.weights = match loss_norm {
        LossNorm::Steps => vec![1.0; rows.actions.len()],
        LossNorm::Episodes => {
            let mut len: std::collections::HashMap<&(String, i64), usize> =
                std::collections::HashMap::new();
            for e in &episodes {
                *len.entry(e).or_default() += 1;
            }
            let mean = episodes.len() as f32 / len.len().max(1) as f32;
            episodes.iter().map(|e| mean / len[e] as f32).collect()
        }
    };
    Ok(rows)
}

fn reference_logp(init: &NeuralPolicy, rows: &Rows) -> Result<Vec<f32>> {
    let width = init.config().input_size();
    let actions = init.config().actions;
    let mut out = Vec::with_capacity(rows.actions.len());
    for (c, chunk) in rows.planes.chunks(4096 * width).enumerate() {
        let n = chunk.len() / width;
        let lp = init.log_probs(chunk, n)?;
        for j in 0..n {
            out.push(lp[j * actions + rows.actions[c * 4096 + j] as usize]);
        }
    }
    Ok(out)
}
