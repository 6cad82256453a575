//! What a Sokoban step did, as flags ([`Events`]) and as one typed outcome
//! ([`StepOutcome`]); the generic [`crate::env::Transition`] carries the
//! same facts as names.

use std::fmt;

use crate::env::Status;

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

    /// The flag with this name, if any.
    pub fn from_name(name: &str) -> Option<Events> {
        Events::NAMES
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(e, _)| *e)
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
