//! Environments that LEAFE explores: the [`Env`] trait and its implementations.
//!
//! This module owns everything an agent interacts with: resetting to a task,
//! stepping with an action, snapshot/restore for rollback, the text an agent
//! or a reflector reads, the tensor a neural policy reads, and the per-step
//! feedback that grounds a reflection. Sokoban ([`sokoban`]) is the first,
//! complete environment: Boxoban-compatible rules and level files, a seeded
//! generator, deadlock detection and an exact solver.
//!
//! Invariants every implementation keeps:
//! - `restore(&snapshot())` puts the environment back into a state that is
//!   indistinguishable from the one the snapshot was taken in (same
//!   observation, same status, same future under the same actions).
//! - Once [`Env::status`] is terminal, [`Env::step`] refuses to step
//!   ([`EnvError::EpisodeOver`]) until `reset` or `restore`.
//! - Feedback is a pure function of the state before the step and the action.
//!
//! This module sits at the bottom of the crate: it depends on no other leafe
//! module (not the store, not the policy).

pub mod sokoban;

use std::fmt;
use std::path::PathBuf;

/// Errors at the environment boundary: bad level files, bad actions, bad
/// configuration.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// A level in a level file is malformed. `level` is the 0-based position of
    /// the level in the file (equal to the `; N` header in Boxoban files) and
    /// `line` the 1-based line of the offending input.
    #[error("{file}: level {level} (line {line}): {message}")]
    Parse {
        file: String,
        level: usize,
        line: usize,
        message: String,
    },
    /// The file parsed but holds no level at all.
    #[error("{file}: no levels found")]
    NoLevels { file: String },
    /// A level file could not be read or written. The I/O error is part of
    /// the message (not a `source`), so a `{:#}` chain prints it once.
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// An action index outside `0..num_actions`.
    #[error("invalid action {action}: this environment has {num_actions} actions")]
    InvalidAction { action: usize, num_actions: usize },
    /// `step` was called after the episode ended.
    #[error("the episode is over ({status}); reset or restore before stepping")]
    EpisodeOver { status: Status },
    /// A tensor buffer or padding that does not fit the board.
    #[error("encoding: {message}")]
    Encoding { message: String },
    /// A configuration value out of range.
    #[error("invalid configuration: {field}: {message}")]
    InvalidConfig {
        field: &'static str,
        message: String,
    },
    /// The generator could not produce a level that satisfies the settings.
    #[error("generator: {message}")]
    Generate { message: String },
}

/// Result type of this module.
pub type Result<T, E = EnvError> = std::result::Result<T, E>;

/// Where an episode stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The episode goes on.
    Running,
    /// The task is solved (Sokoban: every box on a target).
    Solved,
    /// The step limit was reached before the task was solved.
    StepLimit,
    /// The task was detected to be unsolvable from the current state (only
    /// where the environment is configured to end on detection).
    Unsolvable,
}

impl Status {
    /// A stable lowercase name, used as a store column value.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Solved => "solved",
            Status::StepLimit => "step_limit",
            Status::Unsolvable => "unsolvable",
        }
    }

    /// Whether the episode has ended.
    pub fn is_terminal(self) -> bool {
        self != Status::Running
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Structured flags of what a step did, so that a reflector can match on
/// them without parsing the feedback text. A set of bits; combine with `|`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Events(u16);

impl Events {
    /// The player moved to a neighbouring square (possibly pushing a box).
    pub const MOVED: Events = Events(1);
    /// The move was blocked by a wall; the player stayed (the step still counts).
    pub const BLOCKED_BY_WALL: Events = Events(1 << 1);
    /// The move pushed against a box that cannot move (wall or box behind it).
    pub const BLOCKED_BY_BOX: Events = Events(1 << 2);
    /// The move pushed a box.
    pub const PUSHED_BOX: Events = Events(1 << 3);
    /// A box was pushed onto a target.
    pub const ONTO_TARGET: Events = Events(1 << 4);
    /// A box was pushed off a target.
    pub const OFF_TARGET: Events = Events(1 << 5);
    /// Irreversible mistake: a box was pushed onto a dead square (a non-target
    /// square from which no sequence of pushes reaches a target).
    pub const DEAD_SQUARE: Events = Events(1 << 6);
    /// Irreversible mistake: the push froze a group of boxes (2×2 block or
    /// against walls) that includes a box off target.
    pub const FROZEN_BOXES: Events = Events(1 << 7);
    /// The task is solved after this step.
    pub const SOLVED: Events = Events(1 << 8);
    /// The step limit was reached with this step.
    pub const STEP_LIMIT: Events = Events(1 << 9);

    const NAMES: [(Events, &'static str); 10] = [
        (Events::MOVED, "moved"),
        (Events::BLOCKED_BY_WALL, "blocked_by_wall"),
        (Events::BLOCKED_BY_BOX, "blocked_by_box"),
        (Events::PUSHED_BOX, "pushed_box"),
        (Events::ONTO_TARGET, "onto_target"),
        (Events::OFF_TARGET, "off_target"),
        (Events::DEAD_SQUARE, "dead_square"),
        (Events::FROZEN_BOXES, "frozen_boxes"),
        (Events::SOLVED, "solved"),
        (Events::STEP_LIMIT, "step_limit"),
    ];

    /// No event.
    pub const fn empty() -> Events {
        Events(0)
    }

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: Events) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether any flag of `other` is set.
    pub const fn intersects(self, other: Events) -> bool {
        self.0 & other.0 != 0
    }

    /// Whether the move was blocked (by a wall or an immovable box).
    pub const fn is_blocked(self) -> bool {
        self.intersects(Events(Events::BLOCKED_BY_WALL.0 | Events::BLOCKED_BY_BOX.0))
    }

    /// Whether the step made an irreversible mistake (dead square or frozen boxes).
    pub const fn is_mistake(self) -> bool {
        self.intersects(Events(Events::DEAD_SQUARE.0 | Events::FROZEN_BOXES.0))
    }

    /// The raw bits (stable: bit i is the i-th entry of [`Events::names`]'s order).
    pub const fn bits(self) -> u16 {
        self.0
    }

    /// The stable snake_case names of the set flags, in bit order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Events::NAMES
            .into_iter()
            .filter(move |(e, _)| self.contains(*e))
            .map(|(_, n)| n)
    }
}

impl std::ops::BitOr for Events {
    type Output = Events;
    fn bitor(self, rhs: Events) -> Events {
        Events(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for Events {
    fn bitor_assign(&mut self, rhs: Events) {
        self.0 |= rhs.0;
    }
}

impl fmt::Debug for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.names()).finish()
    }
}

impl serde::Serialize for Events {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_seq(self.names())
    }
}

/// What one step did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StepOutcome {
    /// The reward of this step.
    pub reward: f32,
    /// The status after the step.
    pub status: Status,
    /// One line of feedback grounded in the state ("moved left; pushed a box
    /// onto a target", "blocked by a wall", …), what a reflector reads.
    pub feedback: String,
    /// The same facts as flags.
    pub events: Events,
}

/// An environment that can be rolled back.
///
/// Actions are indices in `0..num_actions()`, each with a name. The trait is
/// object-safe apart from the associated types, and makes no assumption about
/// boards, so a text environment or an external process can implement it:
/// a process would use its own state id as `Snapshot`.
pub trait Env {
    /// A saved state. Cheap to take and restore: LEAFE rolls back thousands
    /// of times per run.
    type Snapshot: Clone;

    /// A stable identifier of the current task (joins results across runs).
    fn task_id(&self) -> String;

    /// Back to the initial state of the current task.
    fn reset(&mut self);

    /// The number of actions; actions are `0..num_actions()`.
    fn num_actions(&self) -> usize;

    /// The name of an action (what an agent writes, e.g. "up").
    fn action_name(&self, action: usize) -> &str;

    /// The actions that may be taken now: empty once the episode is over.
    fn legal_actions(&self) -> Vec<usize> {
        if self.status().is_terminal() {
            Vec::new()
        } else {
            (0..self.num_actions()).collect()
        }
    }

    /// Take one action.
    ///
    /// # Errors
    /// [`EnvError::InvalidAction`] for an index out of range,
    /// [`EnvError::EpisodeOver`] after the episode ended.
    fn step(&mut self, action: usize) -> Result<StepOutcome>;

    /// Save the current state.
    fn snapshot(&self) -> Self::Snapshot;

    /// Go back to a saved state.
    fn restore(&mut self, snapshot: &Self::Snapshot);

    /// Where the episode stands.
    fn status(&self) -> Status;

    /// Steps taken since the reset.
    fn steps(&self) -> usize;

    /// The observation as text (what an LLM agent or a human reads).
    fn render_text(&self) -> String;

    /// A compact string that identifies the state, for a store column.
    fn state_key(&self) -> String {
        self.render_text()
    }

    /// The number of channels of [`Env::encode`].
    fn num_channels(&self) -> usize;

    /// Write the observation as a `[channels, pad_h, pad_w]` tensor (row
    /// major) into `out`, whose length must be `channels * pad_h * pad_w`.
    ///
    /// # Errors
    /// [`EnvError::Encoding`] when the padding is smaller than the
    /// observation or `out` has the wrong length.
    fn encode(&self, pad_h: usize, pad_w: usize, out: &mut [f32]) -> Result<()>;
}
