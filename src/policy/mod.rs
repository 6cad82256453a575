//! Policies: what acts in an environment.
//!
//! A [`Policy`] chooses an action for each of a batch of [`Turn`]s. A turn
//! is a history of (observation, action, feedback) steps, the current
//! observation, the legal actions and, while a branch is sampled after a
//! rollback, the [`Experience`] of the reflection that caused it. An LLM
//! policy reads all of it as text; a network reads an encoding of the
//! observation ([`Encoder`], which an environment provides, e.g. Sokoban's
//! board planes) and cannot read the experience, so for it the experience
//! acts on the action distribution instead ([`Guide`]): outside the
//! network's input on purpose, so that Stage 2 distils the guided behaviour
//! into a network that never sees the experience.
//!
//! Sampling is the caller's to seed: every turn carries its own random
//! stream, so an episode's actions do not depend on which other episodes
//! share its batch. A turn also carries a per-episode [`Memory`] slot a
//! policy may use (a recurrent state, a parsed task, a cache).
//!
//! The burn MLP lives in [`neural`], an LLM over an OpenAI-compatible
//! endpoint in [`llm`]; only `policy` and `train` import burn.
//! This module depends on [`crate::env`] and [`crate::reflect`] only.

pub mod llm;
pub mod neural;
pub mod random;
pub mod scripted;
pub mod text;

use std::any::Any;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::env::{ActionSpace, Observation, Step};
use crate::reflect::Experience;

pub use neural::{NeuralPolicy, PolicyNet, PolicyNetConfig, default_device};

/// Errors of the policy boundary.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// A checkpoint could not be encoded or decoded.
    #[error("checkpoint `{name}`: {message}")]
    Checkpoint {
        /// Model name.
        name: String,
        /// What went wrong.
        message: String,
    },
    /// An observation that does not fit the policy's input.
    #[error("observation does not fit the policy: {message}")]
    Input {
        /// What does not fit.
        message: String,
    },
    /// An LLM endpoint failed (after its retries) or broke the API.
    #[error("LLM endpoint {endpoint}: {message}")]
    Llm {
        /// The chat-completions URL.
        endpoint: String,
        /// What went wrong.
        message: String,
    },
    /// The policy cannot act in this environment (action space, encoding).
    #[error("policy `{policy}`: {message}")]
    Mismatch {
        /// Policy name.
        policy: String,
        /// What does not match.
        message: String,
    },
}

/// Result type of the policy boundary.
pub type Result<T, E = PolicyError> = std::result::Result<T, E>;

/// A per-episode slot a policy may keep state in; starts empty.
pub type Memory = Option<Box<dyn Any + Send>>;

/// One decision to make.
pub struct Turn<'a> {
    /// The episode so far, from t = 0 (a branch's inherited prefix
    /// included); `history.len()` is the step about to be taken.
    pub history: &'a [Step],
    /// The current observation.
    pub observation: &'a Observation,
    /// The actions that may be taken now (a subset of a choice space's
    /// names; empty for a free-text space).
    pub legal: &'a [String],
    /// The experience in context, while sampling a branch under one.
    pub experience: Option<&'a Experience>,
    /// The episode's own random stream.
    pub rng: &'a mut ChaCha8Rng,
    /// The episode's memory slot.
    pub memory: &'a mut Memory,
}

impl Turn<'_> {
    /// The full-trajectory index of the step about to be taken.
    pub fn t(&self) -> usize {
        self.history.len()
    }
}

/// What a policy chose.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The action, as the environment reads it.
    pub action: String,
    /// Its index in the environment's choice space, if any.
    pub index: Option<usize>,
    /// Its log-probability under the distribution it was sampled from (0
    /// where unknown).
    pub log_prob: f32,
    /// The model request that chose it (`llm_calls.call_id`), for an LLM.
    pub call: Option<i64>,
}

/// Something that chooses actions.
pub trait Policy: Send + Sync {
    /// Name recorded in the store (`episodes.policy`).
    fn name(&self) -> &str;

    /// Chooses one action per turn, sampling at `temperature`. Returns the
    /// decisions in turn order.
    fn act(&self, turns: &mut [Turn<'_>], temperature: f32) -> Result<Vec<Decision>>;

    /// Whether [`act`](Policy::act) reads [`Turn::history`] (its steps or
    /// its length, [`Turn::t`]). A policy that does not lets a caller that
    /// keeps only outcomes (evaluation) skip recording the steps: its turns
    /// then carry an empty history. Default: it does.
    fn reads_history(&self) -> bool {
        true
    }
}

/// Turns observations into a network's input: an environment implements it
/// for its observations (Sokoban: one-hot board planes).
///
/// # Shapes
/// One observation becomes `[channels, board, board]` floats, row major (a
/// flat encoding uses `board = 1`).
pub trait Encoder: Send + Sync {
    /// A stable name, recorded in a model's manifest.
    fn name(&self) -> &str;
    /// The environment's action space (the network's output head).
    fn action_space(&self) -> &ActionSpace;
    /// Channels of the encoding.
    fn channels(&self) -> usize;
    /// Encodes `observation` padded to `board × board` into `out`
    /// (`channels * board * board` values).
    ///
    /// # Errors
    /// [`PolicyError::Input`] when the observation does not fit.
    fn encode(&self, observation: &Observation, board: usize, out: &mut [f32]) -> Result<()>;
}

/// One-hot planes of a text grid, the encoding the built-in grid
/// environments share: the character at row `y`, column `x` of `text` sets
/// channel `symbol(c)` of cell `(y, x)`; cells the text does not reach
/// (padding) are channel 0 (walls). `out` is `[channels, pad_h, pad_w]`,
/// row major.
///
/// # Errors
/// A one-line reason for a buffer of the wrong length, a text larger than
/// the padding, or a character `symbol` does not know.
pub fn encode_symbol_planes(
    text: &str,
    channels: usize,
    symbol: impl Fn(char) -> Option<usize>,
    pad_h: usize,
    pad_w: usize,
    out: &mut [f32],
) -> std::result::Result<(), String> {
    let plane = pad_h * pad_w;
    if out.len() != channels * plane {
        return Err(format!(
            "buffer has {} values, [{channels}, {pad_h}, {pad_w}] needs {}",
            out.len(),
            channels * plane
        ));
    }
    // Everything starts as wall (padding); cells of the text overwrite it.
    out.fill(0.0);
    out[..plane].fill(1.0);
    for (y, line) in text.lines().enumerate() {
        for (x, c) in line.chars().enumerate() {
            if y >= pad_h || x >= pad_w {
                return Err(format!(
                    "observation larger than the {pad_h}x{pad_w} padding"
                ));
            }
            let ch = symbol(c).ok_or_else(|| format!("unknown symbol {c:?} in observation"))?;
            out[y * pad_w + x] = 0.0;
            out[ch * plane + y * pad_w + x] = 1.0;
        }
    }
    Ok(())
}

/// Settings of experience guidance for networks.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuidanceConfig {
    /// At `t == tau`, set the critical action's logit to `-inf`.
    pub exclude_critical: bool,
    /// Subtracted (in nats) from the logit of a move the experience warns
    /// against at `t > tau`, where the environment's guide can tell (0
    /// disables the penalties). Sokoban's guide tells by a one-step
    /// lookahead on a copy of the board, which an agent acting in the real
    /// environment does not have: 0 by default, on only for the oracle
    /// ablation.
    pub penalty: f32,
    /// Added (in nats) to the logits of the suggested actions at `t == tau`.
    pub suggested_bonus: f32,
    /// Also exclude the critical action at every step after `tau`: the
    /// agent keeps what it was told not to do for the rest of the branch,
    /// as an LLM with the experience in its context would. From the
    /// experience alone (no lookahead). Off by default: on a board the
    /// move that was wrong at `tau` is often right later; the text preset
    /// turns it on, where a branch otherwise walks back into the loop its
    /// reflection named.
    pub exclude_critical_after_tau: bool,
}

impl Default for GuidanceConfig {
    fn default() -> Self {
        GuidanceConfig {
            exclude_critical: true,
            penalty: 0.0,
            suggested_bonus: 1.0,
            exclude_critical_after_tau: false,
        }
    }
}

/// How an experience changes a network's action distribution while a
/// branch is sampled. `logits` are indexed by the action space's names.
/// Implementations must never leave every action at `-inf` (leave the
/// logits unchanged instead).
pub trait Guide: Send + Sync {
    /// Adjusts `logits` for `turn`, which has an experience in context.
    fn adjust(
        &self,
        turn: &mut Turn<'_>,
        experience: &Experience,
        actions: &ActionSpace,
        logits: &mut [f32],
    );
}

/// The guidance any environment supports, from the experience alone: at
/// `t == tau` the critical action is excluded and the suggested actions get
/// a bonus; later steps are left alone unless
/// [`GuidanceConfig::exclude_critical_after_tau`] keeps the critical action
/// excluded.
#[derive(Debug, Clone, Default)]
pub struct ExperienceGuide {
    /// The settings (`penalty` is not used: it needs the environment's
    /// judgement of later moves).
    pub config: GuidanceConfig,
}

impl ExperienceGuide {
    /// [`Guide::adjust`] at step `t`.
    fn adjust_at(
        &self,
        t: usize,
        experience: &Experience,
        actions: &ActionSpace,
        logits: &mut [f32],
    ) {
        if t == experience.tau {
            adjust_at_tau(&self.config, experience, actions, logits);
        } else if t > experience.tau && self.config.exclude_critical_after_tau {
            exclude_critical(experience, actions, logits);
        }
    }
}

impl Guide for ExperienceGuide {
    fn adjust(
        &self,
        turn: &mut Turn<'_>,
        experience: &Experience,
        actions: &ActionSpace,
        logits: &mut [f32],
    ) {
        self.adjust_at(turn.t(), experience, actions, logits);
    }
}

/// The `t == tau` part of guidance, shared by environment guides: a bonus
/// for each suggested action, then `-inf` for the critical one unless it is
/// the only action left.
pub fn adjust_at_tau(
    config: &GuidanceConfig,
    experience: &Experience,
    actions: &ActionSpace,
    logits: &mut [f32],
) {
    let n = logits.len();
    for a in &experience.suggested_actions {
        if let Some(i) = actions.index_of(a).filter(|&i| i < n) {
            logits[i] += config.suggested_bonus;
        }
    }
    if config.exclude_critical {
        exclude_critical(experience, actions, logits);
    }
}

/// Sets the critical action's logit to `-inf`, unless it is the only
/// action left.
fn exclude_critical(experience: &Experience, actions: &ActionSpace, logits: &mut [f32]) {
    let Some(i) = experience
        .critical_action
        .as_deref()
        .and_then(|a| actions.index_of(a))
        .filter(|&i| i < logits.len())
    else {
        return;
    };
    if logits
        .iter()
        .enumerate()
        .any(|(j, &v)| j != i && v != f32::NEG_INFINITY)
    {
        logits[i] = f32::NEG_INFINITY;
    }
}

/// Samples an action from log-probabilities (or logits) at a temperature.
/// Returns the action and its log-probability under the distribution it was
/// sampled from (temperature applied). Entries of `-inf` are never chosen.
pub fn sample(logits: &[f32], temperature: f32, rng: &mut impl Rng) -> (usize, f32) {
    let t = temperature.max(1e-4);
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut small = [0f32; 16];
    let mut large = Vec::new();
    let probs: &mut [f32] = if logits.len() <= small.len() {
        &mut small[..logits.len()]
    } else {
        large.resize(logits.len(), 0.0);
        &mut large
    };
    let mut total = 0.0;
    for (i, &l) in logits.iter().enumerate() {
        let p = if l.is_finite() {
            ((l - max) / t).exp()
        } else {
            0.0
        };
        probs[i] = p;
        total += p;
    }
    let mut u = rng.random::<f32>() * total;
    let mut choice = logits.len() - 1;
    for (i, &p) in probs.iter().enumerate() {
        if p > 0.0 && (u < p || i + 1 == logits.len()) {
            choice = i;
            break;
        }
        u -= p;
    }
    // Guard against rounding landing on a zero-probability tail entry.
    if probs[choice] == 0.0 {
        choice = probs
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map_or(0, |(i, _)| i);
    }
    (choice, (probs[choice] / total).ln())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn sampling_follows_the_distribution_and_never_picks_excluded_actions() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let logits = [0.0f32.ln_1p(), f32::NEG_INFINITY, (3.0f32).ln(), 0.0];
        let mut counts = [0usize; 4];
        for _ in 0..20_000 {
            let (a, lp) = sample(&logits, 1.0, &mut rng);
            counts[a] += 1;
            let expected = [0.2f32, 0.0, 0.6, 0.2][a];
            assert!((lp - expected.ln()).abs() < 1e-4, "{a} {lp}");
        }
        assert_eq!(counts[1], 0);
        assert!(
            (counts[2] as f64 / 20_000.0 - 0.6).abs() < 0.02,
            "{counts:?}"
        );
    }

    #[test]
    fn sampling_works_for_many_actions() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let mut logits = vec![f32::NEG_INFINITY; 40];
        logits[33] = 0.0;
        assert_eq!(sample(&logits, 1.0, &mut rng).0, 33);
    }

    #[test]
    fn guidance_config_rejects_unknown_fields_and_fills_defaults() {
        let c: GuidanceConfig = serde_json::from_str(r#"{"penalty": 2.5}"#).unwrap();
        assert_eq!(c.penalty, 2.5);
        assert!(c.exclude_critical);
        assert_eq!(c.suggested_bonus, 1.0);
        let err = serde_json::from_str::<GuidanceConfig>(r#"{"penalti": 2.5}"#).unwrap_err();
        assert!(err.to_string().contains("penalti"), "{err}");
    }

    #[test]
    fn at_tau_the_critical_action_is_excluded_and_suggestions_raised() {
        let actions = ActionSpace::choice(&["a", "b", "c"]);
        let exp = Experience {
            trigger_step: 3,
            tau: 1,
            critical_action: Some("b".into()),
            category: "x".into(),
            irreversible: true,
            diagnosis: String::new(),
            fix: String::new(),
            suggested_actions: vec!["c".into()],
            written_by: None,
            call: None,
        };
        let mut logits = [0.0f32, 0.0, 0.0];
        adjust_at_tau(&GuidanceConfig::default(), &exp, &actions, &mut logits);
        assert_eq!(logits, [0.0, f32::NEG_INFINITY, 1.0]);
        // Never everything excluded.
        let mut logits = [f32::NEG_INFINITY, 0.0, f32::NEG_INFINITY];
        adjust_at_tau(&GuidanceConfig::default(), &exp, &actions, &mut logits);
        assert_eq!(logits, [f32::NEG_INFINITY, 0.0, f32::NEG_INFINITY]);
    }

    #[test]
    fn after_tau_the_critical_action_stays_excluded_only_when_asked() {
        let actions = ActionSpace::choice(&["a", "b", "c"]);
        let exp = Experience {
            trigger_step: 6,
            tau: 2,
            critical_action: Some("b".into()),
            category: "loop".into(),
            irreversible: false,
            diagnosis: String::new(),
            fix: String::new(),
            suggested_actions: vec!["c".into()],
            written_by: None,
            call: None,
        };
        let at = |guide: &ExperienceGuide, t: usize, mut logits: [f32; 3]| {
            guide.adjust_at(t, &exp, &actions, &mut logits);
            logits
        };
        let plain = ExperienceGuide::default();
        assert_eq!(at(&plain, 4, [0.0; 3]), [0.0; 3]);
        let keep = ExperienceGuide {
            config: GuidanceConfig {
                exclude_critical_after_tau: true,
                ..GuidanceConfig::default()
            },
        };
        let inf = f32::NEG_INFINITY;
        // Before tau nothing; at tau exclusion and the bonus; after tau
        // the exclusion alone, never of the last action left.
        assert_eq!(at(&keep, 1, [0.0; 3]), [0.0; 3]);
        assert_eq!(at(&keep, 2, [0.0; 3]), [0.0, inf, 1.0]);
        assert_eq!(at(&keep, 5, [0.0; 3]), [0.0, inf, 0.0]);
        assert_eq!(at(&keep, 5, [inf, 0.0, inf]), [inf, 0.0, inf]);
    }
}
