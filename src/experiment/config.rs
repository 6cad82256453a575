//! The experiment's config: the methods compared, the level sets, evaluation,
//! the curve, and the checks and fingerprint of a resolved config.

use anyhow::bail;
use serde::{Deserialize, Serialize};

use crate::eval::default_ks;
use crate::explore::ExploreConfig;
use crate::train::PretrainConfig;
use crate::train::distill::DistillConfig;
use crate::train::grpo::GrpoConfig;
use crate::worlds::sokoban::generate::GeneratorConfig;

/// The methods compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpMethod {
    /// The pretrained base policy, untouched.
    Base,
    /// Counterfactual distillation of guided branches + rehearsal.
    Leafe,
    /// The same, from branches sampled without the experience.
    LeafeNoExperience,
    /// The same, from branches that start from the task's start with the
    /// experience in context instead of rolling back to tau.
    LeafeNoRollback,
    /// LEAFE with the oracle reflector (Sokoban's solver picks tau and the
    /// fix) and the lookahead guidance: the ablation row that shows what
    /// oracle access adds.
    LeafeOracle,
    /// Rejection-sampling fine-tuning: rehearsal of successful independent rollouts.
    Rft,
    /// Outcome RL with group-normalised advantages.
    Grpo,
}

impl ExpMethod {
    /// Short id used in model and run names.
    pub fn id(self) -> &'static str {
        match self {
            ExpMethod::Base => "base",
            ExpMethod::Leafe => "leafe",
            ExpMethod::LeafeNoExperience => "leafe-noexp",
            ExpMethod::LeafeNoRollback => "leafe-norollback",
            ExpMethod::LeafeOracle => "leafe-oracle",
            ExpMethod::Rft => "rft",
            ExpMethod::Grpo => "grpo",
        }
    }

    /// Name in reports.
    pub fn label(self) -> &'static str {
        match self {
            ExpMethod::Base => "base (BC)",
            ExpMethod::Leafe => "LEAFE",
            ExpMethod::LeafeNoExperience => "LEAFE w/o experience",
            ExpMethod::LeafeNoRollback => "LEAFE w/o rollback",
            ExpMethod::LeafeOracle => "LEAFE, oracle reflector",
            ExpMethod::Rft => "RFT",
            ExpMethod::Grpo => "GRPO",
        }
    }

    /// Exploration run whose data the method trains on (and whose
    /// environment steps are its interaction cost).
    pub(super) fn explore_id(self) -> Option<&'static str> {
        match self {
            ExpMethod::Leafe | ExpMethod::Grpo => Some("explore-leafe"),
            ExpMethod::LeafeNoExperience => Some("explore-noexp"),
            ExpMethod::LeafeNoRollback => Some("explore-norollback"),
            ExpMethod::LeafeOracle => Some("explore-oracle"),
            ExpMethod::Rft => Some("explore-rft"),
            ExpMethod::Base => None,
        }
    }
}

/// The level sets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LevelsConfig {
    /// Training levels: the first `pretrain.demo_levels` are the base policy's
    /// demonstrations, the rest are the tasks Stage 1 explores (and GRPO samples).
    pub train: GeneratorConfig,
    /// Held-out levels of the training distribution (levels also in the
    /// training set are dropped).
    pub heldout: GeneratorConfig,
    /// The shifted split: larger boards or more boxes.
    pub shifted: GeneratorConfig,
    /// The harder shifted split: larger boards and more boxes.
    pub hard: GeneratorConfig,
}

impl Default for LevelsConfig {
    fn default() -> Self {
        let base = GeneratorConfig {
            width: 6,
            height: 6,
            boxes: 2,
            min_pushes: 5,
            ..GeneratorConfig::default()
        };
        LevelsConfig {
            train: GeneratorConfig {
                count: 700,
                seed: 1,
                ..base.clone()
            },
            heldout: GeneratorConfig {
                count: 200,
                seed: 2,
                ..base.clone()
            },
            shifted: GeneratorConfig {
                width: 7,
                height: 7,
                count: 100,
                seed: 3,
                ..base.clone()
            },
            hard: GeneratorConfig {
                width: 7,
                height: 7,
                boxes: 3,
                count: 100,
                seed: 4,
                ..base
            },
        }
    }
}

/// How models are evaluated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalConfig {
    /// Samples per task (n of the Pass@k estimator).
    pub samples: usize,
    /// k values reported (empty: 1, 2, 4, … up to `samples`).
    pub ks: Vec<u64>,
    /// Sampling temperature.
    pub temperature: f32,
    /// Step limit of an episode.
    pub max_steps: u16,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            samples: 128,
            ks: Vec::new(),
            temperature: 1.0,
            max_steps: 60,
        }
    }
}

/// The whole experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExperimentConfig {
    /// One full replicate per seed (pretraining, exploration, training and
    /// evaluation sampling are all seeded by it; the level sets are shared).
    pub seeds: Vec<u64>,
    /// Methods compared (base is always evaluated).
    pub methods: Vec<ExpMethod>,
    /// The level sets.
    pub levels: LevelsConfig,
    /// The base policy.
    pub pretrain: PretrainConfig,
    /// Stage 1 (LEAFE; the ablations derive from it).
    pub explore: ExploreConfig,
    /// Independent rollouts per task at most for the RFT data (the per-task
    /// budget of `explore` bounds it as it bounds LEAFE).
    pub rft_root_samples: usize,
    /// The guide's lookahead penalty (nats) of the `leafe_oracle` row, whose
    /// reflector is the oracle; every other method explores with
    /// `explore.guidance` (penalty 0: no lookahead).
    pub oracle_penalty: f32,
    /// Distillation of LEAFE, LEAFE w/o experience and RFT.
    pub distill: DistillConfig,
    /// The GRPO baseline (its budget is LEAFE's exploration steps times
    /// `grpo_budget_scale`).
    pub grpo: GrpoConfig,
    /// GRPO's budget as a multiple of the environment steps LEAFE's
    /// exploration spent: 1 is the equal-budget comparison; the large
    /// config (`--preset large`) gives it 10.
    pub grpo_budget_scale: f64,
    /// Evaluation.
    pub eval: EvalConfig,
    /// Success against environment steps (the paper's Figure 3).
    pub curve: CurveConfig,
    /// A text environment instead of the built-in Sokoban: its tasks, and
    /// the text policy's pretraining (`levels` and `pretrain` are then
    /// unused). None: Sokoban.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<super::text::TextArena>,
}

/// The points of the success-vs-environment-steps curve besides each
/// method's final one: LEAFE and RFT distilled from the first 1/2, 1/4, …
/// of their exploration (explored in `parts` chunks of tasks, so a part
/// costs what its tasks cost), and GRPO's checkpoints at the same fractions
/// of its budget. Each is evaluated on the held-out split with `samples`
/// samples per task (Pass@1); the final points are the main evaluation's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CurveConfig {
    /// Chunks the exploration tasks are split into (0: no curve).
    pub parts: usize,
    /// Samples per held-out task at each intermediate point.
    pub samples: usize,
}

impl Default for CurveConfig {
    fn default() -> Self {
        CurveConfig {
            parts: 4,
            samples: 16,
        }
    }
}

impl CurveConfig {
    /// The intermediate points, as chunks of `parts`: parts/2, parts/4, …,
    /// down to 1, smallest first.
    pub fn fractions(&self) -> Vec<usize> {
        let mut out = Vec::new();
        let mut n = self.parts / 2;
        while n >= 1 {
            out.push(n);
            n /= 2;
        }
        out.reverse();
        out
    }
}

impl Default for ExperimentConfig {
    fn default() -> Self {
        ExperimentConfig {
            seeds: vec![0, 1, 2, 3, 4],
            methods: vec![
                ExpMethod::Leafe,
                ExpMethod::LeafeNoExperience,
                ExpMethod::LeafeNoRollback,
                ExpMethod::LeafeOracle,
                ExpMethod::Rft,
                ExpMethod::Grpo,
            ],
            levels: LevelsConfig::default(),
            pretrain: PretrainConfig::default(),
            explore: ExploreConfig::default(),
            rft_root_samples: 64,
            oracle_penalty: 4.0,
            distill: DistillConfig {
                fit: crate::train::FitConfig {
                    epochs: 10,
                    learning_rate: 5e-4,
                    ..crate::train::FitConfig::default()
                },
                ..DistillConfig::default()
            },
            grpo: GrpoConfig::default(),
            grpo_budget_scale: 1.0,
            eval: EvalConfig::default(),
            curve: CurveConfig::default(),
            text: None,
        }
    }
}

impl ExperimentConfig {
    /// The methods evaluated, base first, without repeats.
    pub fn evaluated(&self) -> Vec<ExpMethod> {
        let mut m = vec![ExpMethod::Base];
        for x in &self.methods {
            if !m.contains(x) {
                m.push(*x);
            }
        }
        m
    }

    /// The k values reported.
    pub fn ks(&self) -> Vec<u64> {
        if self.eval.ks.is_empty() {
            default_ks(self.eval.samples)
        } else {
            self.eval.ks.clone()
        }
    }

    /// Refuses settings no experiment can run with, in one line naming the field.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.seeds.is_empty() {
            bail!("seeds: give at least one seed");
        }
        let mut seen = self.seeds.clone();
        seen.sort_unstable();
        seen.dedup();
        if seen.len() != self.seeds.len() {
            bail!("seeds: {:?} repeats a seed", self.seeds);
        }
        if let Some(text) = &self.text {
            text.check(self)?;
        } else if self.levels.train.count <= self.pretrain.demo_levels {
            bail!(
                "levels.train.count ({}) must exceed pretrain.demo_levels ({}): the rest are the exploration tasks",
                self.levels.train.count,
                self.pretrain.demo_levels
            );
        }
        if self.eval.samples == 0 {
            bail!("eval.samples must be at least 1");
        }
        if let Some(k) = self
            .ks()
            .iter()
            .find(|&&k| k == 0 || k > self.eval.samples as u64)
        {
            bail!(
                "eval.ks: {k} is outside 1..={} (k cannot exceed eval.samples)",
                self.eval.samples
            );
        }
        if self.rft_root_samples == 0 {
            bail!("rft_root_samples must be at least 1");
        }
        if !(self.grpo_budget_scale.is_finite() && self.grpo_budget_scale > 0.0) {
            bail!(
                "grpo_budget_scale must be a positive number (1 = LEAFE's steps), not {}",
                self.grpo_budget_scale
            );
        }
        if !(self.oracle_penalty.is_finite() && self.oracle_penalty >= 0.0) {
            bail!(
                "oracle_penalty must be a number of nats ≥ 0, not {}",
                self.oracle_penalty
            );
        }
        if self.curve.parts > 0 && self.curve.samples == 0 {
            bail!("curve.samples must be at least 1 (or curve.parts = 0: no curve)");
        }
        Ok(())
    }

    /// A short stable hash of the config (the default run name).
    pub fn fingerprint(&self) -> String {
        let text = serde_json::to_string(self).expect("config serializes");
        // FNV-1a, 64 bit: stable across builds and platforms.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in text.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        format!("{:08x}", h >> 32)
    }
}
