//! Training the text policy ([`crate::policy::text`]): demonstrations
//! replayed through any environment that offers them (the protocol's `demo`
//! verb: TextWorld's walkthrough, ScienceWorld's gold path), a vocabulary
//! learned from their text, and weighted cross-entropy over each decision's
//! legal actions, the same loss the MLP's [`super::fit`] minimises.

use std::sync::Arc;

use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::{FitConfig, Result, TrainError};
use crate::env::{Env, Step};
use crate::policy::default_device;
use crate::policy::text::{
    TextInput, TextNet, TextNetConfig, TextPolicy, Vocab, decision_texts, recent_text, text_input,
    trainable,
};

/// One demonstrated decision, as text.
#[derive(Debug, Clone, PartialEq)]
pub struct TextDecision {
    /// The episode's first observation.
    pub first: String,
    /// The recent steps ([`recent_text`]).
    pub recent: String,
    /// The observation the action was taken in.
    pub observation: String,
    /// The legal actions then.
    pub legal: Vec<String>,
    /// Index of the action taken in `legal`.
    pub target: usize,
    /// Loss weight.
    pub weight: f32,
}

/// What replaying demonstrations gave.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct DemoReport {
    /// Tasks whose demonstration was replayed.
    pub tasks: usize,
    /// Tasks that have none (or whose replay failed).
    pub without: usize,
    /// Demonstrations whose replay ended in success.
    pub succeeded: usize,
    /// Decisions kept.
    pub decisions: usize,
    /// Demonstrated actions that were not among the legal actions of their
    /// step (taken, but not learned from).
    pub not_legal: usize,
    /// Environment steps the replays took.
    pub env_steps: usize,
    /// The first error the environment answered a demonstration or its
    /// reset with, if any.
    pub first_error: Option<String>,
}

/// Replays each task's demonstration (the environment's `demo`) and keeps
/// every step whose action is among the legal ones, with the context the
/// policy will see (`history` recent steps). At most `max_steps` steps a
/// task.
///
/// # Errors
/// The environment's, when it fails outside a task (a task whose demo or
/// replay fails is counted in `without`).
pub fn demonstrations<E: Env>(
    env: &mut E,
    tasks: &[E::Task],
    max_steps: usize,
    history: usize,
    seed: u64,
) -> Result<(Vec<TextDecision>, DemoReport)> {
    let mut out = Vec::new();
    let mut report = DemoReport::default();
    for task in tasks {
        let actions = match env.demo(task) {
            Ok(Some(a)) if !a.is_empty() => a,
            Ok(_) => {
                report.without += 1;
                continue;
            }
            Err(e) => {
                report.without += 1;
                report.first_error.get_or_insert_with(|| e.to_string());
                continue;
            }
        };
        let mut observation = match env.reset(task, seed) {
            Ok(o) => o,
            Err(e) => {
                report.without += 1;
                report.first_error.get_or_insert_with(|| e.to_string());
                continue;
            }
        };
        let first = observation.text.clone();
        let mut steps: Vec<Step> = Vec::new();
        let mut kept = Vec::new();
        let mut failed = false;
        for action in actions.iter().take(max_steps) {
            let legal = env.legal_actions();
            match legal.iter().position(|l| l == action) {
                Some(target) => kept.push(TextDecision {
                    first: first.clone(),
                    recent: recent_text(&steps, history),
                    observation: observation.text.clone(),
                    legal,
                    target,
                    weight: 1.0,
                }),
                None => report.not_legal += 1,
            }
            let transition = match env.step(action) {
                Ok(t) => t,
                Err(_) => {
                    failed = true;
                    break;
                }
            };
            report.env_steps += 1;
            let done = transition.status.is_terminal();
            steps.push(Step {
                t: steps.len(),
                observation: observation.clone(),
                action: action.clone(),
                action_index: None,
                log_prob: 0.0,
                call: None,
                legal: None,
                transition,
            });
            observation = env.observe();
            if done {
                break;
            }
        }
        if failed {
            report.without += 1;
            continue;
        }
        report.tasks += 1;
        if env.status() == crate::env::Status::Solved {
            report.succeeded += 1;
        }
        report.decisions += kept.len();
        out.extend(kept);
    }
    Ok((out, report))
}

/// A vocabulary of the words of `decisions` (each seen twice or more, at
/// most `max_size`).
///
/// # Errors
/// The tokenizer's.
pub fn learn_vocab(decisions: &[TextDecision], max_size: usize) -> Result<Vocab> {
    Ok(Vocab::learn(
        decisions
            .iter()
            .flat_map(|d| decision_texts(&d.first, &d.recent, &d.observation, &d.legal)),
        max_size,
        2,
    )?)
}

/// Encodes decisions for the network.
///
/// # Errors
/// The tokenizer's.
pub fn encode(
    policy: &TextPolicy,
    decisions: &[TextDecision],
) -> Result<(Vec<TextInput>, Vec<usize>, Vec<f32>)> {
    let mut inputs = Vec::with_capacity(decisions.len());
    for d in decisions {
        inputs.push(text_input(
            policy.vocab(),
            policy.config(),
            &d.first,
            &d.recent,
            &d.observation,
            &d.legal,
        )?);
    }
    Ok((
        inputs,
        decisions.iter().map(|d| d.target).collect(),
        decisions.iter().map(|d| d.weight).collect(),
    ))
}

/// One optimiser over a text network: Adam steps of Σ w_i · CE_i / Σ w_i
/// over minibatches of decisions, where CE_i is the negative log-probability
/// of the chosen action under the softmax over that decision's legal
/// actions.
pub struct TextStepper {
    net: Option<TextNet>,
    optim: burn::optim::ModuleOptimizer,
    device: Device,
    learning_rate: f64,
    /// Gradient steps taken.
    pub steps: usize,
}

impl TextStepper {
    /// A stepper over a trainable copy of `policy`'s network.
    pub fn new(policy: &TextPolicy, fit: &FitConfig) -> TextStepper {
        TextStepper {
            net: Some(trainable(policy.net().clone(), policy.config(), fit.seed)),
            optim: AdamConfig::new().init(),
            device: default_device().autodiff(),
            learning_rate: fit.learning_rate,
            steps: 0,
        }
    }

    /// One step; its loss, or None when the weights sum to zero.
    pub fn step(&mut self, inputs: &[&TextInput], chosen: &[usize], ws: &[f32]) -> Option<f32> {
        let wsum: f32 = ws.iter().sum();
        if wsum <= 0.0 || inputs.is_empty() {
            return None;
        }
        let b = inputs.len();
        let net = self.net.take().expect("stepper holds its network");
        let w = Tensor::<1>::from_data(TensorData::new(ws.to_vec(), [b]), &self.device);
        let picked = net.chosen_log_probs(inputs, chosen, &self.device);
        let loss = (picked * w).sum().neg().div_scalar(wsum);
        let value = loss.clone().into_scalar::<f32>();
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        self.net = Some(self.optim.step(self.learning_rate, net, grads));
        self.steps += 1;
        Some(value)
    }

    /// The trained policy.
    ///
    /// # Errors
    /// As [`TextPolicy::new`].
    pub fn finish(self, like: &TextPolicy) -> Result<TextPolicy> {
        let net = self.net.expect("stepper holds its network").valid();
        Ok(TextPolicy::new(
            crate::policy::Policy::name(like),
            like.config().clone(),
            Arc::clone(like.vocab()),
            net,
        )?)
    }
}

/// Fits `policy` to decisions; returns the trained policy and each epoch's
/// mean loss. `progress` gets (step, total steps, loss).
///
/// # Errors
/// [`TrainError::Invalid`] for no decisions.
pub fn fit_text(
    policy: &TextPolicy,
    decisions: &[TextDecision],
    fit: &FitConfig,
    mut progress: impl FnMut(usize, usize, f32),
) -> Result<(TextPolicy, Vec<f32>)> {
    if decisions.is_empty() {
        return Err(TrainError::Invalid("no training decisions".into()));
    }
    let (inputs, targets, weights) = encode(policy, decisions)?;
    let mut stepper = TextStepper::new(policy, fit);
    let mut rng = ChaCha8Rng::seed_from_u64(fit.seed);
    let mut order: Vec<usize> = (0..inputs.len()).collect();
    let batch = fit.batch_size.max(1);
    let total = inputs.len().div_ceil(batch) * fit.epochs;
    let mut losses = Vec::with_capacity(fit.epochs);
    for _ in 0..fit.epochs {
        order.shuffle(&mut rng);
        let (mut sum, mut n) = (0.0, 0);
        for chunk in order.chunks(batch) {
            let xs: Vec<&TextInput> = chunk.iter().map(|&i| &inputs[i]).collect();
            let ys: Vec<usize> = chunk.iter().map(|&i| targets[i]).collect();
            let ws: Vec<f32> = chunk.iter().map(|&i| weights[i]).collect();
            if let Some(l) = stepper.step(&xs, &ys, &ws) {
                sum += l;
                n += 1;
                progress(stepper.steps, total, l);
            }
        }
        losses.push(if n > 0 { sum / n as f32 } else { f32::NAN });
    }
    Ok((stepper.finish(policy)?, losses))
}

pub mod distill;
pub mod grpo;
#[cfg(test)]
mod tests;

/// Settings of `leafe pretrain` for a text environment (a process, a
/// TextWorld, ScienceWorld or gymnasium adapter, an OpenEnv server).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TextPretrainConfig {
    /// Tasks (from the start of the file) whose demonstrations are imitated.
    pub demo_levels: usize,
    /// Step limit of a replayed demonstration.
    pub max_steps: u16,
    /// Seed of the network's initialisation (and of the replays' resets).
    pub seed: u64,
    /// Largest vocabulary (words seen at least twice in the demonstrations).
    pub vocab_size: usize,
    /// The network.
    pub net: TextNetConfig,
    /// The optimisation.
    pub fit: FitConfig,
}

impl Default for TextPretrainConfig {
    fn default() -> Self {
        TextPretrainConfig {
            demo_levels: 300,
            max_steps: 120,
            seed: 0,
            vocab_size: 4000,
            net: TextNetConfig::default(),
            fit: FitConfig {
                epochs: 20,
                batch_size: 32,
                learning_rate: 3e-3,
                seed: 0,
            },
        }
    }
}

/// What [`pretrain_text`] did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TextPretrainReport {
    /// The replays.
    pub demos: DemoReport,
    /// Words in the vocabulary.
    pub vocab: usize,
    /// Mean loss of each epoch.
    pub epoch_losses: Vec<f32>,
}

/// Behaviour cloning of a text policy from the demonstrations of the first
/// `demo_levels` tasks, replayed in `env`.
///
/// # Errors
/// [`TrainError::Invalid`] when no task has a demonstration (naming what
/// the environment must offer); the environment's and the tokenizer's.
pub fn pretrain_text<E: Env>(
    env: &mut E,
    tasks: &[E::Task],
    config: &TextPretrainConfig,
    progress: impl FnMut(usize, usize, f32),
) -> Result<(TextPolicy, TextPretrainReport)> {
    let tasks = &tasks[..tasks.len().min(config.demo_levels)];
    let (decisions, demos) = demonstrations(
        env,
        tasks,
        config.max_steps as usize,
        config.net.history,
        config.seed,
    )?;
    if decisions.is_empty() {
        return Err(TrainError::Invalid(format!(
            "no demonstrations to learn from: {} of {} tasks have none (the environment answers the protocol's `demo` verb with an action sequence, and the actions must be among the legal ones: {} were not){}",
            demos.without,
            tasks.len(),
            demos.not_legal,
            demos
                .first_error
                .as_deref()
                .map(|e| format!("; the first failure: {e}"))
                .unwrap_or_default()
        )));
    }
    let vocab = learn_vocab(&decisions, config.vocab_size)?;
    let policy = TextPolicy::untrained("text", config.net.clone(), Arc::new(vocab), config.seed)?;
    let (policy, epoch_losses) = fit_text(&policy, &decisions, &config.fit, progress)?;
    Ok((
        policy.clone(),
        TextPretrainReport {
            demos,
            vocab: policy.vocab().len(),
            epoch_losses,
        },
    ))
}

/// Saves a text policy as model `name`: its weights, its vocabulary and a
/// manifest whose `text_net` says it reads text.
///
/// # Errors
/// The store's (a name that exists), the checkpoint's.
pub async fn save_text_policy(
    store: &crate::store::Store,
    name: &str,
    policy: &TextPolicy,
    provenance: serde_json::Value,
) -> Result<()> {
    let manifest = serde_json::json!({
        "name": name,
        "text_net": serde_json::to_value(policy.config()).expect("config serializes"),
        "weights": crate::policy::text::WEIGHTS,
        "vocab": crate::policy::text::VOCAB,
        "leafe_version": env!("CARGO_PKG_VERSION"),
        "provenance": provenance,
    });
    store
        .save_model(name, policy.to_files()?, &manifest)
        .await?;
    Ok(())
}

/// Whether model `name` (or the latest version of the line `name`) is a
/// text policy.
///
/// # Errors
/// [`TrainError::NoModel`], the store's.
pub async fn is_text_model(store: &crate::store::Store, name: &str) -> Result<bool> {
    let (_, manifest) = super::resolve_model(store, name).await?;
    Ok(manifest.get("text_net").is_some())
}

/// Loads a text policy saved by [`save_text_policy`].
///
/// # Errors
/// [`TrainError::NoModel`]; [`TrainError::Invalid`] for a board network
/// (it cannot read text).
pub async fn load_text_policy(store: &crate::store::Store, name: &str) -> Result<TextPolicy> {
    let (name, manifest) = super::resolve_model(store, name).await?;
    let Some(net) = manifest.get("text_net") else {
        return Err(TrainError::Invalid(format!(
            "model `{name}` is a board network (it reads `{}` encodings), not a text policy; train one for this environment with `leafe pretrain --env … --levels TASKS --out-model NAME`",
            manifest["net"]["encoder"]
                .as_str()
                .unwrap_or("sokoban-planes")
        )));
    };
    let config: TextNetConfig = serde_json::from_value(net.clone())
        .map_err(|e| TrainError::Invalid(format!("model `{name}`: bad manifest: {e}")))?;
    let weights = store
        .model_file(&name, crate::policy::text::WEIGHTS)
        .await?;
    let vocab = store.model_file(&name, crate::policy::text::VOCAB).await?;
    Ok(TextPolicy::from_files(&name, config, weights, &vocab)?)
}

/// Records a run of `kind` (its resolved config in the runs table), then
/// saves the text policy as `name` with the run as its provenance, as
/// [`super::record_and_save_as`] does for the MLP.
///
/// # Errors
/// The store's.
#[allow(clippy::too_many_arguments)]
pub async fn record_and_save_text(
    store: &crate::store::Store,
    kind: &str,
    run_id: &str,
    name: &str,
    policy: &TextPolicy,
    seed: u64,
    config: serde_json::Value,
    command_line: &str,
) -> Result<()> {
    let provenance = super::record_run(store, kind, run_id, seed, config, command_line).await?;
    save_text_policy(store, name, &policy.clone().with_name(name), provenance).await
}
