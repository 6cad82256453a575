//! A burn policy for any environment whose observations are text and whose
//! legal actions are a list that changes from step to step (TextWorld,
//! ScienceWorld, gymnasium's text games, a process that speaks the env
//! protocol): no encoder is written for the environment.
//!
//! The network ([`net`]) scores each legal action against the context (the
//! episode's first observation, its recent steps, the current observation)
//! and the policy samples from the softmax over the legal actions, keeping
//! the action's log-probability as the MLP does. Words are ids of a
//! vocabulary learned from the environment's text ([`vocab`]), stored with
//! the checkpoint. The experience of a reflection is never an input: while a
//! branch is sampled it acts on the distribution through a [`Guide`], as for
//! the MLP, so that Stage 2 distils without it.

pub mod net;
pub mod vocab;

use std::sync::Arc;

use burn::module::Module;
use burn::prelude::*;
use burn::store::ModuleRecord;

use super::{Decision, Guide, Policy, PolicyError, Result, Turn, default_device, sample};
use crate::env::{ActionSpace, Step};
pub use net::{TextInput, TextNet, TextNetConfig};
pub use vocab::Vocab;

/// The text of the recent steps of `history` (at most `keep`, oldest
/// first): each step's action and the environment's feedback on it.
pub fn recent_text(history: &[Step], keep: usize) -> String {
    let from = history.len().saturating_sub(keep);
    join_recent(
        history[from..]
            .iter()
            .map(|s| (s.action.as_str(), s.transition.feedback.as_str())),
    )
}

/// [`recent_text`] of steps given as (action, feedback) pairs, as Stage 2
/// rebuilds them from the store's rows: the same text for the same steps.
pub fn recent_text_of(steps: &[(String, String)], keep: usize) -> String {
    let from = steps.len().saturating_sub(keep);
    join_recent(steps[from..].iter().map(|(a, f)| (a.as_str(), f.as_str())))
}

fn join_recent<'a>(steps: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::new();
    for (action, feedback) in steps {
        out.push_str(action);
        out.push_str(" . ");
        out.push_str(feedback);
        out.push_str(" . ");
    }
    out
}

/// What the network reads of a decision.
///
/// # Errors
/// [`PolicyError::Input`] if the tokenizer fails.
pub fn text_input(
    vocab: &Vocab,
    config: &TextNetConfig,
    first_observation: &str,
    recent: &str,
    observation: &str,
    legal: &[String],
) -> Result<TextInput> {
    let m = config.max_words;
    Ok(TextInput {
        task: vocab.encode(first_observation, m)?,
        recent: vocab.encode(recent, m)?,
        observation: vocab.encode(observation, m)?,
        actions: legal
            .iter()
            .map(|a| vocab.encode(a, config.max_action_words))
            .collect::<Result<_>>()?,
    })
}

/// The texts a vocabulary is learned from for one decision: what
/// [`text_input`] reads.
pub fn decision_texts<'a>(
    first_observation: &'a str,
    recent: &'a str,
    observation: &'a str,
    legal: &'a [String],
) -> impl Iterator<Item = &'a str> {
    [first_observation, recent, observation]
        .into_iter()
        .chain(legal.iter().map(String::as_str))
}

/// The text policy used for inference (no autodiff).
#[derive(Clone)]
pub struct TextPolicy {
    name: String,
    config: TextNetConfig,
    vocab: Arc<Vocab>,
    net: TextNet,
    device: Device,
    guide: Option<Arc<dyn Guide>>,
}

impl std::fmt::Debug for TextPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextPolicy")
            .field("name", &self.name)
            .field("config", &self.config)
            .field("guided", &self.guide.is_some())
            .finish()
    }
}

impl TextPolicy {
    /// Wraps a network (moved off autodiff) with its vocabulary.
    ///
    /// # Errors
    /// [`PolicyError::Mismatch`] when the vocabulary is not the network's.
    pub fn new(
        name: impl Into<String>,
        config: TextNetConfig,
        vocab: Arc<Vocab>,
        net: TextNet,
    ) -> Result<TextPolicy> {
        let name = name.into();
        if vocab.len() != config.vocab {
            return Err(PolicyError::Mismatch {
                policy: name,
                message: format!(
                    "the network has {} word embeddings, its vocabulary {} words",
                    config.vocab,
                    vocab.len()
                ),
            });
        }
        let net = net.valid();
        let device = net
            .devices()
            .first()
            .cloned()
            .unwrap_or_else(default_device);
        Ok(TextPolicy {
            name,
            config,
            vocab,
            net,
            device,
            guide: None,
        })
    }

    /// A fresh, untrained policy over `vocab` (`config.vocab` is set to its
    /// size).
    ///
    /// # Errors
    /// As [`TextPolicy::new`].
    pub fn untrained(
        name: impl Into<String>,
        mut config: TextNetConfig,
        vocab: Arc<Vocab>,
        seed: u64,
    ) -> Result<TextPolicy> {
        config.vocab = vocab.len();
        let net = config.init(&default_device(), seed);
        TextPolicy::new(name, config, vocab, net)
    }

    /// Applies `guide` to the distribution of turns with an experience.
    pub fn with_guide(mut self, guide: Arc<dyn Guide>) -> TextPolicy {
        self.guide = Some(guide);
        self
    }

    /// Renames the policy.
    pub fn with_name(mut self, name: impl Into<String>) -> TextPolicy {
        self.name = name.into();
        self
    }

    /// The network's shape.
    pub fn config(&self) -> &TextNetConfig {
        &self.config
    }

    /// The vocabulary.
    pub fn vocab(&self) -> &Arc<Vocab> {
        &self.vocab
    }

    /// The network.
    pub fn net(&self) -> &TextNet {
        &self.net
    }

    /// What the network reads of `turn`.
    ///
    /// # Errors
    /// As [`text_input`].
    pub fn input(&self, turn: &Turn<'_>) -> Result<TextInput> {
        let first = turn
            .history
            .first()
            .map_or(turn.observation.text.as_str(), |s| {
                s.observation.text.as_str()
            });
        text_input(
            &self.vocab,
            &self.config,
            first,
            &recent_text(turn.history, self.config.history),
            &turn.observation.text,
            turn.legal,
        )
    }

    /// Log-probabilities over each input's legal actions.
    ///
    /// # Errors
    /// [`PolicyError::Input`] if the backend fails.
    pub fn log_probs(&self, inputs: &[&TextInput]) -> Result<Vec<Vec<f32>>> {
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        let layout = net::Layout::of(inputs);
        let scores = self
            .net
            .scores(inputs, &layout, &self.device)
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| PolicyError::Input {
                message: format!("{e:?}"),
            })?;
        let mut out = Vec::with_capacity(inputs.len());
        let mut start = 0;
        for &k in &layout.counts {
            let s = &scores[start..start + k];
            let max = s.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let z = s.iter().map(|v| (v - max).exp()).sum::<f32>().ln() + max;
            out.push(s.iter().map(|v| v - z).collect());
            start += k;
        }
        Ok(out)
    }

    /// The checkpoint's files: the weights (burnpack) and the vocabulary.
    ///
    /// # Errors
    /// [`PolicyError::Checkpoint`] if the weights cannot be encoded.
    pub fn to_files(&self) -> Result<Vec<(&'static str, Vec<u8>)>> {
        let bytes =
            self.net
                .clone()
                .into_record()
                .into_bytes()
                .map_err(|e| PolicyError::Checkpoint {
                    name: self.name.clone(),
                    message: e.to_string(),
                })?;
        Ok(vec![
            (WEIGHTS, bytes.to_vec()),
            (VOCAB, self.vocab.to_json()?.into_bytes()),
        ])
    }

    /// Reads a checkpoint written by [`TextPolicy::to_files`].
    ///
    /// # Errors
    /// [`PolicyError::Checkpoint`] for files that are not one.
    pub fn from_files(
        name: &str,
        config: TextNetConfig,
        weights: Vec<u8>,
        vocab: &[u8],
    ) -> Result<TextPolicy> {
        let vocab =
            Vocab::from_json(
                std::str::from_utf8(vocab).map_err(|e| PolicyError::Checkpoint {
                    name: name.into(),
                    message: format!("{VOCAB}: {e}"),
                })?,
            )?;
        let record = ModuleRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(weights))
            .map_err(|e| PolicyError::Checkpoint {
                name: name.into(),
                message: e.to_string(),
            })?;
        let net = config.init(&default_device(), 0).load_record(record);
        TextPolicy::new(name, config, Arc::new(vocab), net)
    }
}

/// The checkpoint file of the weights.
pub const WEIGHTS: &str = "model.bpk";
/// The checkpoint file of the vocabulary.
pub const VOCAB: &str = "vocab.json";

impl Policy for TextPolicy {
    fn name(&self) -> &str {
        &self.name
    }

    /// One batched pass over every turn's legal actions; then per turn: the
    /// guide (if the turn has an experience) and a sample from the turn's
    /// stream. A turn without legal actions is an error: the network chooses
    /// among them and cannot write free text.
    fn act(&self, turns: &mut [Turn<'_>], temperature: f32) -> Result<Vec<Decision>> {
        if let Some(t) = turns.iter().find(|t| t.legal.is_empty()) {
            return Err(PolicyError::Mismatch {
                policy: self.name.clone(),
                message: format!(
                    "the text policy chooses among the legal actions, and step {} offers none (the environment must list them: `legal_actions` in the env protocol)",
                    t.t()
                ),
            });
        }
        let inputs = turns
            .iter()
            .map(|t| self.input(t))
            .collect::<Result<Vec<_>>>()?;
        let lp = self.log_probs(&inputs.iter().collect::<Vec<_>>())?;
        let mut out = Vec::with_capacity(turns.len());
        for (turn, mut logits) in turns.iter_mut().zip(lp) {
            if let (Some(guide), Some(exp)) = (&self.guide, turn.experience) {
                let space = ActionSpace::Choice(turn.legal.to_vec());
                guide.adjust(turn, exp, &space, &mut logits);
            }
            let (a, log_prob) = sample(&logits, temperature, turn.rng);
            out.push(Decision {
                action: turn.legal[a].clone(),
                index: None,
                log_prob,
                call: None,
            });
        }
        Ok(out)
    }
}

/// Trainable copy of a text network (parameters on the autodiff device).
pub fn trainable(net: TextNet, config: &TextNetConfig, seed: u64) -> TextNet {
    config
        .init(&default_device().autodiff(), seed)
        .load_record(net.into_record())
}
