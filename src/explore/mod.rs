//! Stage 1 of LEAFE: roll out, reflect, roll back, branch — for any
//! environment, policy and reflector.
//!
//! For each task the explorer rolls out the policy (the root). A
//! [`Reflector`] reads the trajectory with its feedback every
//! `reflect_every` steps and at a failed end; when it judges the trajectory
//! off course it names a rollback step tau and an experience. The
//! environment is rolled back to the state before step tau — by its native
//! snapshot where it has one (no transition executed), else by reset and
//! replay of the action prefix (every replayed transition is charged to the
//! task's budget) — and `branches` continuations are sampled with the
//! experience in the policy's context. Failed branches are reflected on
//! again, up to `max_depth`. A task stops when its interaction budget
//! (environment transitions actually executed) is spent, when
//! `target_successes` branches succeeded, or when nothing is left to explore.
//! The result per task is a [`TaskTree`].
//!
//! Submodules: [`tree`] (the tree search), [`rollout`] (plain rollouts
//! without reflection, for evaluation and GRPO), [`rows`] (the one mapping
//! from these records to the store's rows), [`world`] (what an environment
//! brings to a job).
//!
//! Rollouts of many tasks and branches advance together, one batched policy
//! call per step. Everything random is seeded per (task, episode), so the
//! same seed gives the same trees whatever the batch composition.
//!
//! Invariants of every tree: a branch's parent failed; its first own step is
//! t = tau and its reflection was made on its parent; depth ≤ `max_depth`;
//! the task's interaction cost never exceeds `budget`. The search itself
//! does not know the store: trees go to a callback.

pub mod rollout;
pub mod rows;
pub mod tree;
pub mod world;

use serde::{Deserialize, Serialize};

use crate::env::{EnvError, RollbackKind, Step};
use crate::policy::{GuidanceConfig, PolicyError};
use crate::reflect::{Experience, ReflectorConfig};

pub use rollout::{
    RolloutOutcome, Trajectory, count_successes, sample_rollouts, sample_trajectories,
};
pub use tree::explore;
pub use world::World;

/// Settings of Stage 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExploreConfig {
    /// Master seed of all sampling.
    pub seed: u64,
    /// Step limit of an episode (full trajectory, prefix included); jobs
    /// make their environments with it ([`World::make_env`]).
    pub max_steps: u16,
    /// Sampling temperature of the policy.
    pub temperature: f32,
    /// Reflect every this many own steps of a running episode (0: only at a failed end).
    pub reflect_every: usize,
    /// Stop a running episode on any off-course verdict of a periodic
    /// reflection (true), or only on irreversible ones
    /// ([`Experience::irreversible`]; false: wandering is judged at the end).
    pub interrupt_on_loops: bool,
    /// Branches sampled from each rollback point.
    pub branches: usize,
    /// Deepest branch level (0: roots only).
    pub max_depth: usize,
    /// Environment steps a task may execute in total (roots and branches).
    pub budget: usize,
    /// Stop a task once this many branches succeeded.
    pub target_successes: usize,
    /// Tasks explored at once (the policy batch spans all their episodes).
    pub parallel_tasks: usize,
    /// Sample branches under the experience (false: the "LEAFE without
    /// experience" ablation — roll back to tau, but branch unguided).
    pub use_experience: bool,
    /// Start branches at tau by rolling the environment back (true), or
    /// from the task's start with the experience in context (false: the
    /// "LEAFE without rollback" ablation; the experience still names tau,
    /// and a branch's corrected steps are all its steps).
    pub rollback: bool,
    /// Independent rollouts from the task's start, at most. With more than 1,
    /// a new root starts whenever nothing else is left to explore, the budget
    /// is not spent and fewer than `target_successes` episodes succeeded.
    /// `max_depth = 0` with many root samples is rejection sampling — the
    /// data of the RFT baseline (no reflection, no rollback), under the same
    /// per-task budget as LEAFE.
    pub root_samples: usize,
    /// The settings of the built-in rule-based reflectors (the caller builds
    /// the reflector; recorded with the run).
    pub reflector: ReflectorConfig,
    /// How the experience guides a network's branch sampling (the caller
    /// builds the policy's guide; recorded with the run).
    pub guidance: GuidanceConfig,
}

impl Default for ExploreConfig {
    fn default() -> Self {
        ExploreConfig {
            seed: 0,
            max_steps: 60,
            temperature: 1.0,
            reflect_every: 10,
            interrupt_on_loops: false,
            branches: 4,
            max_depth: 2,
            budget: 1200,
            target_successes: 4,
            parallel_tasks: 64,
            use_experience: true,
            rollback: true,
            root_samples: 1,
            reflector: ReflectorConfig::default(),
            guidance: GuidanceConfig::default(),
        }
    }
}

/// A task to explore: what the environment resets to, and where it came
/// from.
#[derive(Debug, Clone)]
pub struct Task<T> {
    /// Position of the task in its source (stable across runs; seeds and
    /// episode ids derive from it).
    pub index: u64,
    /// The task.
    pub task: T,
    /// Where it came from, e.g. `levels.txt#17`.
    pub source: String,
}

/// How an episode came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// A rollout from the task's start.
    Root,
    /// A continuation from a rollback point.
    Branch,
}

impl Origin {
    /// The `episodes.origin` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Root => "root",
            Origin::Branch => "branch",
        }
    }
}

/// One episode of a tree.
#[derive(Debug, Clone)]
pub struct EpisodeOut {
    /// Id, unique within the run (derived from the task index).
    pub id: i64,
    /// The failed episode this branch left, if a branch.
    pub parent: Option<i64>,
    /// The reflection this branch was sampled under.
    pub reflection: Option<i64>,
    /// tau: first own step of a branch.
    pub rollback_step: Option<usize>,
    /// How a branch got back to tau.
    pub rollback: Option<RollbackKind>,
    /// Transitions executed to get back to tau (replayed steps; 0 for a
    /// snapshot). Counted in the task's budget and the episode's cost.
    pub replayed: usize,
    /// Tree depth.
    pub depth: usize,
    /// Index among siblings.
    pub sample_index: usize,
    /// Root or branch.
    pub origin: Origin,
    /// Whether the branch was sampled with the experience in context.
    pub experience_in_context: bool,
    /// Whether the full trajectory solved the task.
    pub success: bool,
    /// solved | step_limit | unsolvable | reflected (stopped by a reflection)
    /// | budget | env_error (the environment failed).
    pub status: &'static str,
    /// Return of the full trajectory.
    pub episode_return: f64,
    /// Steps of the full trajectory.
    pub length: usize,
    /// Own steps only (t ≥ tau).
    pub steps: Vec<Step>,
}

impl EpisodeOut {
    /// Environment transitions this episode executed: its own steps and any
    /// replay that brought it back to tau.
    pub fn interaction_cost(&self) -> usize {
        self.steps.len() + self.replayed
    }
}

/// One reflection of a tree.
#[derive(Debug, Clone)]
pub struct ReflectionOut {
    /// Id, unique within the run.
    pub id: i64,
    /// Episode reflected on.
    pub episode: i64,
    /// The reflector's verdict.
    pub experience: Experience,
    /// Reflector name.
    pub reflector: String,
}

/// Everything explored for one task.
#[derive(Debug, Clone)]
pub struct TaskTree {
    /// The task's index in its source.
    pub task_index: u64,
    /// Stable task id.
    pub task_id: String,
    /// Where the task came from.
    pub task_source: String,
    /// Root first, then branches (and further roots) in creation order.
    pub episodes: Vec<EpisodeOut>,
    /// Reflections in creation order.
    pub reflections: Vec<ReflectionOut>,
    /// Environment transitions executed for the task (replays included).
    pub interaction_cost: usize,
    /// Why the environment failed this task (a crashed, hung or garbled
    /// process, a replay that diverged): the task stopped there, its
    /// running episodes end with status `env_error`, and the job goes on.
    pub env_error: Option<String>,
}

impl TaskTree {
    /// Id of the tree's root (`None` only for a tree built by hand without
    /// episodes; a task the environment failed at its start has a root of no
    /// steps with status `env_error`).
    pub fn root_id(&self) -> Option<i64> {
        self.episodes.first().map(|e| e.id)
    }

    /// Branches that succeeded.
    pub fn successful_branches(&self) -> usize {
        self.episodes
            .iter()
            .filter(|e| e.origin == Origin::Branch && e.success)
            .count()
    }

    /// Rollbacks of each kind: (snapshot, replay).
    pub fn rollbacks(&self) -> (usize, usize) {
        let count = |k| {
            self.episodes
                .iter()
                .filter(|e| e.rollback == Some(k))
                .count()
        };
        (count(RollbackKind::Snapshot), count(RollbackKind::Replay))
    }
}

/// Errors of Stage 1.
#[derive(Debug, thiserror::Error)]
pub enum ExploreError {
    /// The policy failed.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The environment failed.
    #[error(transparent)]
    Env(#[from] EnvError),
    /// The configuration cannot work.
    #[error("explore config: {0}")]
    Config(String),
    /// The callback that takes finished trees failed.
    #[error("{0}")]
    Sink(String),
}

/// Result type of Stage 1.
pub type Result<T, E = ExploreError> = std::result::Result<T, E>;

/// Episode ids: task index in the high bits, a per-task counter in the low 20.
pub(crate) fn episode_id(task: u64, local: usize) -> i64 {
    ((task as i64) << 20) | local as i64
}

/// The seed of episode `local` of task `task` (SplitMix64-style mixing, so
/// nearby tasks and episodes get unrelated streams).
pub(crate) fn episode_seed(seed: u64, task: u64, local: usize) -> u64 {
    let mut z = seed
        ^ task.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (local as u64).wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
