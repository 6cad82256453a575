//! Training: fitting the policy network with burn, and checkpoints in the store.
//!
//! Supervised fitting (cross-entropy on observation/action pairs, Adam,
//! shuffled minibatches, seeded) and the base policy — behaviour cloning from
//! demonstrations an environment provides (`leafe pretrain`). Stage 2 (LEAFE
//! distillation, RFT, GRPO) builds on [`fit`]. Observations become network
//! input through the policy's [`Encoder`]. Checkpoints are saved into the
//! store under `models/<name>/` with their network config (encoder
//! included) and provenance.
//!
//! Only `policy` and `train` import burn.

use burn::tensor::activation::log_softmax;
pub mod distill;
pub mod grpo;
pub mod incremental;
pub mod job;
mod network;
pub mod text;
pub use network::{Network, distill_and_save, save_copy};

use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use std::sync::Arc;

use crate::env::{Env, Observation};
use crate::explore::World;
use crate::policy::{
    Encoder, NeuralPolicy, PolicyError, PolicyNet, PolicyNetConfig, default_device,
};
use crate::store::{Store, StoreError};

/// Errors of the training boundary.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The policy failed.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// Sampling rollouts failed.
    #[error(transparent)]
    Explore(#[from] crate::explore::ExploreError),
    /// A query failed.
    #[error(transparent)]
    Query(#[from] crate::query::QueryError),
    /// Nothing to train on, or a setting that cannot work.
    #[error("{0}")]
    Invalid(String),
    /// The runs hold no training data (no successful trajectory).
    #[error("{0}")]
    NoData(String),
    /// A step of a job failed: what it was doing, then why.
    #[error("{what}")]
    During {
        /// What it was doing (`training m from base`).
        what: String,
        /// Why it failed.
        #[source]
        source: Box<TrainError>,
    },
    /// A model that is not in the store.
    #[error("model `{name}` not found in store {store} (saved models: {available})")]
    NoModel {
        /// Name asked for.
        name: String,
        /// Store URL.
        store: String,
        /// What is there.
        available: String,
    },
}

/// Result type of the training boundary.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;

impl TrainError {
    /// This error as the cause of failing at `what`.
    #[must_use]
    pub fn during(self, what: String) -> TrainError {
        TrainError::During {
            what,
            source: Box::new(self),
        }
    }
}

/// State/action pairs to fit, planes laid out `[n, C, board, board]`.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    /// Input planes, `n × input_size` values.
    pub planes: Vec<f32>,
    /// Target actions, `n` values.
    pub actions: Vec<i32>,
    /// Loss weight per pair (empty: all 1).
    pub weights: Vec<f32>,
}

impl Samples {
    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.actions.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    /// Appends (observation, action) pairs, encoded by `encoder` at `board`.
    ///
    /// # Errors
    /// [`TrainError::Policy`] for an observation the encoder cannot read.
    pub fn extend_encoded(
        &mut self,
        pairs: &[(Observation, usize)],
        encoder: &dyn Encoder,
        board: usize,
    ) -> Result<()> {
        let width = encoder.channels() * board * board;
        for (o, a) in pairs {
            let start = self.planes.len();
            self.planes.resize(start + width, 0.0);
            encoder.encode(o, board, &mut self.planes[start..])?;
            self.actions.push(*a as i32);
        }
        Ok(())
    }
}

/// Settings of supervised fitting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FitConfig {
    /// Passes over the data.
    pub epochs: usize,
    /// Pairs per gradient step.
    pub batch_size: usize,
    /// Adam learning rate.
    pub learning_rate: f64,
    /// Seed of shuffling.
    pub seed: u64,
}

impl Default for FitConfig {
    fn default() -> Self {
        FitConfig {
            epochs: 4,
            batch_size: 256,
            learning_rate: 1e-3,
            seed: 0,
        }
    }
}

/// `net`'s weights in a network whose parameters are tracked for gradients:
/// parameters must be created on the autodiff device to be tracked, so a
/// fresh network is built there (seeded by `seed`) and the weights loaded
/// into it.
pub(crate) fn trainable(net: PolicyNet, config: &PolicyNetConfig, seed: u64) -> PolicyNet {
    config
        .init(&default_device().autodiff(), seed)
        .load_record(net.into_record())
}

/// One optimiser over a network: takes minibatches of (planes, action,
/// weight) and applies an Adam step of Σ w_i · CE_i / Σ w_i to each. Shared
/// by [`fit`] (samples in memory) and [`distill`]'s streaming fit (rows
/// from SQL through a shuffle buffer), so both train the same way.
pub struct Stepper {
    net: Option<PolicyNet>,
    optim: burn::optim::ModuleOptimizer,
    device: Device,
    width: usize,
    learning_rate: f64,
    /// Gradient steps taken.
    pub steps: usize,
}

impl Stepper {
    /// A stepper over a trainable copy of `net`.
    pub fn new(net: PolicyNet, config: &PolicyNetConfig, fit: &FitConfig) -> Stepper {
        Stepper {
            net: Some(trainable(net, config, fit.seed)),
            optim: AdamConfig::new().init(),
            device: default_device().autodiff(),
            width: config.input_size(),
            learning_rate: fit.learning_rate,
            steps: 0,
        }
    }

    /// One step on a minibatch (`xs` holds `ys.len()` rows of planes);
    /// returns its loss, or None when its weights sum to zero (no step).
    pub fn step(&mut self, xs: &[f32], ys: &[i32], ws: &[f32]) -> Option<f32> {
        let wsum: f32 = ws.iter().sum();
        if wsum <= 0.0 {
            return None;
        }
        let b = ys.len();
        let device = &self.device;
        // [b, width] planes (taken as a gather where one-hot), [b, 1]
        // targets, [b] weights
        debug_assert_eq!(xs.len(), b * self.width);
        let y = Tensor::<2, Int>::from_data(TensorData::new(ys.to_vec(), [b, 1]), device);
        let w = Tensor::<1>::from_data(TensorData::new(ws.to_vec(), [b]), device);
        let net = self.net.take().expect("stepper holds its network");
        // log-probability of each target action: [b, 4] → [b, 1] → [b]
        let picked = log_softmax(net.forward_planes(xs, b, device), 1)
            .gather(1, y)
            .reshape([b]);
        let loss = (picked * w).sum().neg().div_scalar(wsum);
        let value = loss.clone().into_scalar::<f32>();
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        self.net = Some(self.optim.step(self.learning_rate, net, grads));
        self.steps += 1;
        Some(value)
    }

    /// The trained network, for inference.
    pub fn finish(self) -> PolicyNet {
        self.net.expect("stepper holds its network").valid()
    }
}

/// Fits `net` to the samples with (weighted) cross-entropy,
/// Σ w_i · CE_i / Σ w_i per minibatch; returns the trained network
/// and the mean loss of each epoch. `progress` is called after every step with
/// (step, total steps, loss).
pub fn fit(
    net: PolicyNet,
    config: &PolicyNetConfig,
    samples: &Samples,
    fit: &FitConfig,
    mut progress: impl FnMut(usize, usize, f32),
) -> Result<(PolicyNet, Vec<f32>)> {
    if samples.is_empty() {
        return Err(TrainError::Invalid("no training samples".into()));
    }
    let width = config.input_size();
    if samples.planes.len() != samples.len() * width {
        return Err(TrainError::Invalid(format!(
            "samples have {} plane values for {} pairs of width {width}",
            samples.planes.len(),
            samples.len()
        )));
    }
    let mut stepper = Stepper::new(net, config, fit);
    let mut rng = ChaCha8Rng::seed_from_u64(fit.seed);
    let mut order: Vec<usize> = (0..samples.len()).collect();
    let batch = fit.batch_size.max(1);
    let steps_per_epoch = samples.len().div_ceil(batch);
    let total = steps_per_epoch * fit.epochs;
    let mut epoch_losses = Vec::with_capacity(fit.epochs);
    if !samples.weights.is_empty() && samples.weights.len() != samples.len() {
        return Err(TrainError::Invalid(format!(
            "{} weights for {} samples",
            samples.weights.len(),
            samples.len()
        )));
    }
    let (mut xs, mut ys, mut ws) = (
        Vec::with_capacity(batch * width),
        Vec::with_capacity(batch),
        Vec::with_capacity(batch),
    );
    for _ in 0..fit.epochs {
        order.shuffle(&mut rng);
        let mut sum = 0.0f64;
        for chunk in order.chunks(batch) {
            xs.clear();
            ys.clear();
            ws.clear();
            for &i in chunk {
                xs.extend_from_slice(&samples.planes[i * width..(i + 1) * width]);
                ys.push(samples.actions[i]);
                ws.push(samples.weights.get(i).copied().unwrap_or(1.0));
            }
            let wsum: f32 = ws.iter().sum();
            let Some(value) = stepper.step(&xs, &ys, &ws) else {
                continue;
            };
            sum += value as f64 * wsum as f64;
            progress(stepper.steps, total, value);
        }
        let total_weight: f64 = if samples.weights.is_empty() {
            samples.len() as f64
        } else {
            samples.weights.iter().map(|&w| w as f64).sum()
        };
        epoch_losses.push((sum / total_weight.max(1e-12)) as f32);
    }
    Ok((stepper.finish(), epoch_losses))
}

/// Settings of `leafe pretrain`: behaviour cloning from solver demonstrations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PretrainConfig {
    /// Levels (from the start of the file) whose solutions are imitated. Few
    /// levels and few epochs keep the base policy deliberately modest.
    pub demo_levels: usize,
    /// Step limit used to replay demonstrations.
    pub max_steps: u16,
    /// Node limit of the solver per level.
    pub solver_max_nodes: u64,
    /// Seed of the network's initialisation.
    pub seed: u64,
    /// The network.
    pub net: PolicyNetConfig,
    /// The optimisation.
    pub fit: FitConfig,
}

impl Default for PretrainConfig {
    fn default() -> Self {
        PretrainConfig {
            demo_levels: 300,
            max_steps: 120,
            solver_max_nodes: 200_000,
            seed: 0,
            net: PolicyNetConfig::new(),
            fit: FitConfig {
                epochs: 10,
                ..FitConfig::default()
            },
        }
    }
}

/// What pretraining saw and reached.
#[derive(Debug, Clone, Serialize)]
pub struct PretrainReport {
    /// Levels whose solutions were imitated.
    pub levels: usize,
    /// Levels the solver could not solve within its limit (skipped).
    pub unsolved: usize,
    /// State/action pairs.
    pub samples: usize,
    /// Mean loss per epoch.
    pub epoch_losses: Vec<f32>,
}

/// Demonstrations to imitate: (observation, action index) pairs and where
/// they came from.
#[derive(Debug, Clone, Copy)]
pub struct Demos<'a> {
    /// The pairs, in order.
    pub pairs: &'a [(Observation, usize)],
    /// Tasks whose demonstrations they are.
    pub tasks: usize,
    /// Tasks without a demonstration (skipped).
    pub unsolved: usize,
}

/// Pretrains a base policy by behaviour cloning on `demos`. The network's
/// encoder fields come from `encoder`; its size from `config.net`.
///
/// # Errors
/// An observation the encoder cannot read; no demonstrations.
pub fn pretrain(
    demos: Demos<'_>,
    encoder: Arc<dyn Encoder>,
    config: &PretrainConfig,
    progress: impl FnMut(usize, usize, f32),
) -> Result<(NeuralPolicy, PretrainReport)> {
    let net_config =
        PolicyNetConfig::for_encoder(encoder.as_ref(), config.net.board, config.net.hidden);
    let mut samples = Samples::default();
    samples.extend_encoded(demos.pairs, encoder.as_ref(), net_config.board)?;
    let device = default_device();
    let net = net_config.init(&device, config.seed);
    let (net, epoch_losses) = fit(net, &net_config, &samples, &config.fit, progress)?;
    let report = PretrainReport {
        levels: demos.tasks,
        unsolved: demos.unsolved,
        samples: samples.len(),
        epoch_losses,
    };
    Ok((NeuralPolicy::new("base", net_config, net, encoder)?, report))
}

/// Pretrains a base policy in `world` on the demonstrations of the first
/// `config.demo_levels` of `tasks`.
///
/// # Errors
/// As [`pretrain`]; the environment's while making demonstrations.
pub fn pretrain_world<W: World>(
    world: &W,
    tasks: &[<W::Env as Env>::Task],
    config: &PretrainConfig,
    progress: impl FnMut(usize, usize, f32),
) -> Result<(NeuralPolicy, PretrainReport)> {
    let chosen = &tasks[..config.demo_levels.min(tasks.len())];
    let (pairs, unsolved) = world
        .demonstrations(chosen, config.max_steps as usize, config.solver_max_nodes)
        .map_err(|e| TrainError::Invalid(format!("demonstrations: {e}")))?;
    let demos = Demos {
        pairs: &pairs,
        tasks: chosen.len(),
        unsolved,
    };
    pretrain(demos, world.encoder(), config, progress)
}

/// Saves a policy as `models/<name>/` (weights + manifest with its config and
/// `provenance`).
pub async fn save_policy(
    store: &Store,
    name: &str,
    policy: &NeuralPolicy,
    provenance: serde_json::Value,
) -> Result<()> {
    let manifest = serde_json::json!({
        "name": name,
        "net": serde_json::to_value(policy.config()).expect("config serializes"),
        "weights": "model.bpk",
        "leafe_version": env!("CARGO_PKG_VERSION"),
        "provenance": provenance,
    });
    store
        .save_model(name, vec![("model.bpk", policy.to_bytes()?)], &manifest)
        .await?;
    Ok(())
}

/// Records a training as a committed `train` run `run_id` (its resolved
/// config in the runs table), then saves the policy as `name` with the run as
/// its provenance. The run comes first so a saved model always points at a
/// recorded configuration.
pub async fn record_and_save(
    store: &Store,
    run_id: &str,
    name: &str,
    policy: &NeuralPolicy,
    seed: u64,
    config: serde_json::Value,
    command_line: &str,
) -> Result<()> {
    record_and_save_as(
        store,
        "train",
        run_id,
        name,
        policy,
        seed,
        config,
        command_line,
    )
    .await
}

/// [`record_and_save`] for a run of another kind (`pretrain`): the run is
/// recorded with that kind, and the model's provenance keeps the config
/// under the kind's name.
#[allow(clippy::too_many_arguments)]
pub async fn record_and_save_as(
    store: &Store,
    kind: &str,
    run_id: &str,
    name: &str,
    policy: &NeuralPolicy,
    seed: u64,
    config: serde_json::Value,
    command_line: &str,
) -> Result<()> {
    let provenance = record_run(store, kind, run_id, seed, config, command_line).await?;
    save_policy(store, name, &policy.clone().with_name(name), provenance).await
}

/// Records a committed run of `kind` with its resolved config (nothing
/// else in it) and returns the provenance a model trained by it keeps:
/// the run id, and the config under the kind's name.
pub(crate) async fn record_run(
    store: &Store,
    kind: &str,
    run_id: &str,
    seed: u64,
    config: serde_json::Value,
    command_line: &str,
) -> Result<serde_json::Value> {
    let spec = crate::store::RunSpec {
        run_id: run_id.to_string(),
        kind: kind.into(),
        seed: Some(seed as i64),
        config: config.clone(),
        command_line: command_line.to_string(),
        meta: serde_json::Value::Null,
    };
    store.begin_run(spec).await?.commit().await?;
    let mut provenance = serde_json::Map::new();
    provenance.insert("run_id".into(), run_id.into());
    provenance.insert(kind.into(), config);
    Ok(serde_json::Value::Object(provenance))
}

/// The network config of a saved model (its encoder's name says which
/// environment it plays). The name of a model line trained with `leafe
/// train --incremental` resolves to its latest version.
///
/// # Errors
/// [`TrainError::NoModel`] when it is not there; a bad manifest.
pub async fn model_config(store: &Store, name: &str) -> Result<PolicyNetConfig> {
    let (name, manifest) = resolve_model(store, name).await?;
    board_network(&name, &manifest)?;
    serde_json::from_value(manifest["net"].clone())
        .map_err(|e| TrainError::Invalid(format!("model `{name}`: bad manifest: {e}")))
}

/// Refuses a text policy where a board network is needed.
fn board_network(name: &str, manifest: &serde_json::Value) -> Result<()> {
    if manifest.get("text_net").is_some() {
        return Err(TrainError::Invalid(format!(
            "model `{name}` is a text policy: it acts in text environments (`--env cmd:…`, `textworld:…`, …) with `explore`/`eval --policy burn`; the built-in worlds (sokoban, gridworld) take board networks only"
        )));
    }
    Ok(())
}

pub(crate) async fn resolve_model(
    store: &Store,
    name: &str,
) -> Result<(String, serde_json::Value)> {
    let mut name = name.to_string();
    if store.model_manifest(&name).await?.is_none()
        && let Some(latest) = store
            .watermark(&name)
            .await?
            .and_then(|w| w["latest"].as_str().map(str::to_string))
    {
        name = latest;
    }
    let Some(manifest) = store.model_manifest(&name).await? else {
        let available = store.models().await?.join(", ");
        return Err(TrainError::NoModel {
            name,
            store: store.url().into(),
            available: if available.is_empty() {
                "none".into()
            } else {
                available
            },
        });
    };
    Ok((name, manifest))
}

/// Loads a policy saved by [`save_policy`], reading observations with
/// `encoder` (which must be the one it was trained with). The name of a
/// model line trained with `leafe train --incremental` loads its latest
/// version.
///
/// # Errors
/// [`TrainError::NoModel`]; [`TrainError::Policy`] when the encoder does not
/// fit the network.
pub async fn load_policy(
    store: &Store,
    name: &str,
    encoder: Arc<dyn Encoder>,
) -> Result<NeuralPolicy> {
    let (name, manifest) = resolve_model(store, name).await?;
    board_network(&name, &manifest)?;
    let net: PolicyNetConfig = serde_json::from_value(manifest["net"].clone())
        .map_err(|e| TrainError::Invalid(format!("model `{name}`: bad manifest: {e}")))?;
    let bytes = store.model_file(&name, "model.bpk").await?;
    Ok(NeuralPolicy::from_bytes(&name, net, encoder, bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(n: usize, config: &PolicyNetConfig) -> Samples {
        let width = config.input_size();
        // Each sample lights a few inputs that depend on its label, so the
        // batch is learnable.
        let mut planes = vec![0.0; n * width];
        for s in 0..n {
            let a = s % 4;
            for j in 0..3 {
                planes[s * width + (a * 7 + j * 13 + s % 3) % width] = 1.0;
            }
        }
        Samples {
            planes,
            actions: (0..n).map(|i| (i % 4) as i32).collect(),
            weights: Vec::new(),
        }
    }

    #[test]
    fn training_steps_lower_the_loss_on_a_fixed_batch() {
        let config = PolicyNetConfig::new().with_hidden(32).with_board(4);
        let samples = batch(64, &config);
        let net = config.init(&default_device(), 1);
        let fitc = FitConfig {
            epochs: 30,
            batch_size: 64,
            learning_rate: 1e-2,
            seed: 0,
        };
        let (_, losses) = fit(net, &config, &samples, &fitc, |_, _, _| {}).unwrap();
        assert!(losses[29] < losses[0] * 0.5, "{losses:?}");
    }

    #[test]
    fn zero_weights_take_no_part_in_the_loss() {
        let config = PolicyNetConfig::new().with_hidden(16).with_board(4);
        let mut samples = batch(32, &config);
        samples.weights = (0..32).map(|i| if i < 16 { 1.0 } else { 0.0 }).collect();
        let fitc = FitConfig {
            epochs: 1,
            batch_size: 32,
            learning_rate: 1e-3,
            seed: 0,
        };
        let (_, weighted) = fit(
            config.init(&default_device(), 3),
            &config,
            &samples,
            &fitc,
            |_, _, _| {},
        )
        .unwrap();
        let first_half = Samples {
            planes: samples.planes[..16 * config.input_size()].to_vec(),
            actions: samples.actions[..16].to_vec(),
            weights: Vec::new(),
        };
        let fitc16 = FitConfig {
            batch_size: 32,
            ..fitc
        };
        let (_, plain) = fit(
            config.init(&default_device(), 3),
            &config,
            &first_half,
            &fitc16,
            |_, _, _| {},
        )
        .unwrap();
        assert!(
            (weighted[0] - plain[0]).abs() < 1e-5,
            "{weighted:?} vs {plain:?}"
        );
    }
}
