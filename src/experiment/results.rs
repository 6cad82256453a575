//! What the report is made of: one cell per (seed, method, split), stage
//! timings, paired differences and the curve's points.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ExpMethod, ExperimentConfig};

/// Result of one (seed, method, split) evaluation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Cell {
    /// Seed of the replicate.
    pub seed: u64,
    /// Method.
    pub method: ExpMethod,
    /// `heldout`, `shifted` or `hard`.
    pub split: String,
    /// Tasks evaluated.
    pub tasks: usize,
    /// Samples per task.
    pub samples: usize,
    /// Mean Pass@k by k.
    pub pass_at_k: BTreeMap<String, f64>,
    /// Interaction the method's training is charged for (0 for base):
    /// environment steps plus `simulated_steps`.
    pub train_env_steps: u64,
    /// The simulated transitions included in `train_env_steps` (the oracle
    /// row's solver nodes and lookahead moves; 0 for every other method).
    #[serde(default)]
    pub simulated_steps: u64,
}

/// Wall time of one stage in this invocation (0 when it was resumed).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StageTime {
    /// Seed of the replicate (None: shared stages).
    pub seed: Option<u64>,
    /// Stage name.
    pub stage: String,
    /// Seconds spent (0: found done in the store).
    pub seconds: f64,
    /// What it did, in a few words.
    pub detail: String,
}

/// Everything the report is made of.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Results {
    /// The run name.
    pub run: String,
    /// The resolved config.
    pub config: ExperimentConfig,
    /// k values.
    pub ks: Vec<u64>,
    /// Level counts per split.
    pub splits: BTreeMap<String, usize>,
    /// One cell per (seed, method, split).
    pub cells: Vec<Cell>,
    /// Training data volume per (seed, method): counterfactual pairs, rehearsal rows.
    pub training: Vec<serde_json::Value>,
    /// Stage timings of the invocation that wrote this report.
    pub stages: Vec<StageTime>,
    /// The command that regenerates it.
    pub command_line: String,
    /// Paired differences over tasks (LEAFE against the baselines).
    #[serde(default)]
    pub paired: Vec<Paired>,
    /// The intermediate points of the success-vs-environment-steps curve.
    #[serde(default)]
    pub curve: Vec<CurvePoint>,
}

/// A paired comparison of two methods on one split at one k: per task the
/// difference of their Pass@k (each averaged over seeds), its mean over
/// tasks and the 95 % bootstrap interval of that mean (tasks resampled).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Paired {
    /// Split.
    pub split: String,
    /// The method compared.
    pub a: ExpMethod,
    /// The method it is compared against.
    pub b: ExpMethod,
    /// k of Pass@k.
    pub k: u64,
    /// Tasks paired.
    pub tasks: usize,
    /// Mean of a − b over tasks.
    pub mean: f64,
    /// 2.5 % bootstrap quantile.
    pub lo: f64,
    /// 97.5 % bootstrap quantile.
    pub hi: f64,
}

/// One intermediate point of the success-vs-environment-steps curve (see
/// [`CurveConfig`]); the final points are the held-out cells.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CurvePoint {
    /// Seed of the replicate.
    pub seed: u64,
    /// Method.
    pub method: ExpMethod,
    /// Parts of the exploration trained on (LEAFE, RFT), or fraction of the
    /// budget reached (GRPO), out of `parts`.
    pub part: usize,
    /// See [`CurveConfig::parts`].
    pub parts: usize,
    /// Environment steps the point's training interacted for.
    pub env_steps: u64,
    /// Held-out Pass@1.
    pub pass1: f64,
    /// Samples per held-out task.
    pub samples: usize,
}
