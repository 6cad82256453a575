//! Experience in context for a network playing Sokoban: turns an
//! experience into an adjustment of the policy's action logits while a
//! branch is sampled ([`SokobanGuide`], a [`crate::policy::Guide`]).
//!
//! An LLM policy reads the experience as text; a network policy cannot, so
//! the experience acts on its output instead. The adjustment lives OUTSIDE
//! the network input on purpose: counterfactual distillation trains the
//! network on the corrected branch without the experience, and the network
//! never saw it. After `tau` the penalties judge each move by a one-step
//! lookahead on a copy of the board rebuilt from the observation.
//!
//! This module owns the typed [`Guidance`], the per-branch set of visited
//! positions ([`Visited`]) and [`SokobanGuide`]. Invariants:
//! [`Guidance::adjust`] never leaves every action at `-inf` (it leaves the
//! logits unchanged instead), allocates nothing, and is a pure function of
//! its arguments.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};

use super::reflect::{Category, Verdict};
use crate::env::{ActionSpace, Env, Status};
use crate::policy::{Guide, Turn};
use crate::reflect::Experience;
use crate::worlds::sokoban::board::Bits;
use crate::worlds::sokoban::levels::parse_levels;
use crate::worlds::sokoban::solve::FxBuild;
use crate::worlds::sokoban::{Level, Sokoban, SokobanConfig, State, action_index, decode_state};

pub use crate::policy::GuidanceConfig;

thread_local! {
    /// Simulated moves (one-step lookaheads on a copy of the board) run on
    /// this thread by the guide and the oracle reflector's suggestions:
    /// shown next to the runs that used them (the oracle ablation's cost; 0
    /// by default).
    static LOOKAHEAD: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many simulated lookahead moves this thread has run so far (per
/// thread, like [`super::solve::solver_searches`]).
pub fn lookahead_steps() -> u64 {
    LOOKAHEAD.with(std::cell::Cell::get)
}

/// Counts `n` simulated moves.
pub(crate) fn count_lookahead(n: u64) {
    LOOKAHEAD.with(|c| c.set(c.get() + n));
}

/// A position: boxes and player cell (the step count and status do not
/// matter for "been here before").
#[derive(Clone, Copy, PartialEq, Eq)]
struct Position(Bits, u8);

impl Hash for Position {
    fn hash<H: Hasher>(&self, h: &mut H) {
        for w in self.0.0 {
            h.write_u64(w);
        }
        h.write_u8(self.1);
    }
}

impl From<&State> for Position {
    fn from(s: &State) -> Position {
        Position(s.boxes, s.player)
    }
}

/// The positions (player cell and boxes) visited in a branch. The caller
/// inserts every state the branch reaches, its start state (at `tau`)
/// included, before asking for the next action.
#[derive(Debug, Default, Clone)]
pub struct Visited {
    set: HashSet<Position, FxBuild>,
}

impl std::fmt::Debug for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "({:?}, {})", self.0, self.1)
    }
}

impl Visited {
    /// An empty set.
    pub fn new() -> Visited {
        Visited::default()
    }

    /// Record the position of `state`; returns whether it was new.
    pub fn insert(&mut self, state: &State) -> bool {
        self.set.insert(state.into())
    }

    /// Whether the position of `state` was visited.
    pub fn contains(&self, state: &State) -> bool {
        self.set.contains(&Position::from(state))
    }

    /// The number of distinct positions.
    pub fn len(&self) -> usize {
        self.set.len()
    }

    /// Whether nothing was visited.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// Forget everything, keeping the allocation (reuse across branches).
    pub fn clear(&mut self) {
        self.set.clear();
    }
}

/// An experience turned into a logit adjustment for one branch.
#[derive(Debug, Clone, PartialEq)]
pub struct Guidance {
    tau: usize,
    category: Category,
    critical: Option<usize>,
    suggested: [bool; 4],
    config: GuidanceConfig,
}

impl Guidance {
    /// Guidance for a branch that restarts at `experience.tau`. Suggested
    /// actions outside `0..4` are ignored.
    pub fn new(experience: &Verdict, config: &GuidanceConfig) -> Guidance {
        let mut suggested = [false; 4];
        for &a in &experience.suggested_actions {
            if a < 4 {
                suggested[a] = true;
            }
        }
        Guidance {
            tau: experience.tau,
            category: experience.category,
            critical: experience.critical_action.filter(|&a| a < 4),
            suggested,
            config: config.clone(),
        }
    }

    /// Guidance from a generic experience (actions by name, the category
    /// by [`Category::as_str`] name). `None` for a category this guide does
    /// not know.
    pub fn from_experience(experience: &Experience, config: &GuidanceConfig) -> Option<Guidance> {
        let category = Category::ALL
            .into_iter()
            .find(|c| c.as_str() == experience.category)?;
        let mut suggested = [false; 4];
        for a in experience
            .suggested_actions
            .iter()
            .filter_map(|a| action_index(a))
        {
            suggested[a] = true;
        }
        Some(Guidance {
            tau: experience.tau,
            category,
            critical: experience.critical_action.as_deref().and_then(action_index),
            suggested,
            config: config.clone(),
        })
    }

    /// The step the branch restarts at.
    pub fn tau(&self) -> usize {
        self.tau
    }

    /// The category whose moves are penalised after `tau`.
    pub fn category(&self) -> Category {
        self.category
    }

    /// Adjust the policy's action logits (or log-probabilities; up, down,
    /// left, right) in place for the environment's current state, at
    /// full-trajectory step `t` of a branch that restarted at `tau`.
    ///
    /// Exactly:
    /// - `t < tau`, or the episode is over: nothing changes.
    /// - `t == tau`: the critical action gets `-inf` (when
    ///   [`GuidanceConfig::exclude_critical`]), and each suggested action
    ///   gets `+suggested_bonus`.
    /// - `t > tau`: each move the experience's category warns against gets
    ///   `-penalty`, once, judged by a one-step lookahead (the move applied
    ///   to a copy of the environment):
    ///   - [`Category::DeadSquare`], [`Category::FrozenBoxes`],
    ///     [`Category::Unsolvable`]: moves whose lookahead raises
    ///     `DEAD_SQUARE` or `FROZEN_BOXES`;
    ///   - [`Category::Loop`]: moves that lead to a position in `visited`
    ///     (a blocked move stays put, so it counts when the current position
    ///     was inserted);
    ///   - [`Category::StepLimit`]: blocked moves (no-ops) and moves that
    ///     lead to a position in `visited`.
    /// - If the result would have every action at `-inf` (for instance the
    ///   policy already masked the other three), the logits are left
    ///   unchanged.
    ///
    /// `logits` should hold 4 values; only the first 4 are read. Allocates
    /// nothing.
    pub fn adjust(&self, env: &Sokoban, t: usize, visited: &Visited, logits: &mut [f32]) {
        let n = logits.len().min(4);
        if t < self.tau || env.status() != Status::Running {
            return;
        }
        let mut out = [0.0f32; 4];
        out[..n].copy_from_slice(&logits[..n]);
        if t == self.tau {
            for (a, v) in out[..n].iter_mut().enumerate() {
                if self.suggested[a] {
                    *v += self.config.suggested_bonus;
                }
            }
            if self.config.exclude_critical
                && let Some(a) = self.critical
                && a < n
            {
                out[a] = f32::NEG_INFINITY;
            }
        } else if self.config.penalty != 0.0 {
            // Cloning a Sokoban copies a few hundred bytes (the level is
            // inline bit sets), no heap.
            let mut sim = env.clone();
            let start = *env.state();
            count_lookahead(n as u64);
            for (a, v) in out[..n].iter_mut().enumerate() {
                sim.restore_state(&start);
                let ev = sim.apply(a);
                let warned = match self.category {
                    Category::DeadSquare | Category::FrozenBoxes | Category::Unsolvable => {
                        ev.is_mistake()
                    }
                    Category::Loop => visited.contains(sim.state()),
                    Category::StepLimit => ev.is_blocked() || visited.contains(sim.state()),
                };
                if warned {
                    *v -= self.config.penalty;
                }
            }
        }
        if out[..n].iter().all(|&v| v == f32::NEG_INFINITY) {
            return;
        }
        logits[..n].copy_from_slice(&out[..n]);
    }
}

/// Sokoban's [`Guide`]: the typed [`Guidance`] of the turn's experience,
/// with the board rebuilt from the observation (once per branch, kept in the
/// turn's memory with the branch's visited positions).
#[derive(Debug, Clone, Default)]
pub struct SokobanGuide {
    /// The settings.
    pub config: GuidanceConfig,
}

impl SokobanGuide {
    /// A guide with these settings.
    pub fn new(config: GuidanceConfig) -> SokobanGuide {
        SokobanGuide { config }
    }
}

/// What a guided branch keeps between its turns.
struct BranchMemory {
    level: Level,
    guidance: Option<Guidance>,
    visited: Visited,
}

impl Guide for SokobanGuide {
    fn adjust(
        &self,
        turn: &mut Turn<'_>,
        experience: &Experience,
        _actions: &ActionSpace,
        logits: &mut [f32],
    ) {
        if turn.memory.as_ref().is_none_or(|m| !m.is::<BranchMemory>()) {
            let Some(level) = parse_levels(&turn.observation.text, "observation")
                .ok()
                .and_then(|mut l| l.pop())
            else {
                return;
            };
            *turn.memory = Some(Box::new(BranchMemory {
                level,
                guidance: Guidance::from_experience(experience, &self.config),
                visited: Visited::new(),
            }));
        }
        let t = turn.t();
        let Some(m) = turn
            .memory
            .as_mut()
            .and_then(|m| m.downcast_mut::<BranchMemory>())
        else {
            return;
        };
        let Some(state) = turn
            .observation
            .state
            .as_deref()
            .and_then(|b| decode_state(&m.level, b))
        else {
            return;
        };
        m.visited.insert(&state);
        let Some(g) = &m.guidance else { return };
        let mut env = Sokoban::new(m.level.clone(), SokobanConfig::default());
        env.restore_state(&state);
        g.adjust(&env, t, &m.visited, logits);
    }
}
