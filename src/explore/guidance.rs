//! Experience in context for a neural policy: turns an [`Experience`] into an
//! adjustment of the policy's action logits while a branch is sampled.
//!
//! An LLM policy reads the experience as text ([`Experience::summary`]); a
//! network policy cannot, so the experience acts on its output instead. The
//! adjustment lives OUTSIDE the network input on purpose: counterfactual
//! distillation trains the network on the corrected branch without the
//! experience, and the network never saw it.
//!
//! This module owns [`GuidanceConfig`], [`Guidance`] and the per-branch set of
//! visited positions ([`Visited`]). Invariants: [`Guidance::adjust`] never
//! leaves every action at `-inf` (it leaves the logits unchanged instead),
//! allocates nothing, and is a pure function of its arguments.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};

use super::reflect::{Category, Experience};
use crate::env::sokoban::board::Bits;
use crate::env::sokoban::solve::FxBuild;
use crate::env::sokoban::{Sokoban, State};
use crate::env::{Env, Status};

/// Settings of [`Guidance`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuidanceConfig {
    /// At `t == tau`, set the critical action's logit to `-inf`.
    pub exclude_critical: bool,
    /// Subtracted (in nats) from the logit of a move the experience warns
    /// against at `t > tau`. 0 disables the penalties.
    pub penalty: f32,
    /// Added (in nats) to the logits of the suggested actions at `t == tau`.
    pub suggested_bonus: f32,
}

impl Default for GuidanceConfig {
    fn default() -> Self {
        GuidanceConfig {
            exclude_critical: true,
            penalty: 4.0,
            suggested_bonus: 1.0,
        }
    }
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
    pub fn new(experience: &Experience, config: &GuidanceConfig) -> Guidance {
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
            for (a, v) in out[..n].iter_mut().enumerate() {
                sim.restore(&start);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_rejects_unknown_fields_and_fills_defaults() {
        let c: GuidanceConfig = serde_json::from_str(r#"{"penalty": 2.5}"#).unwrap();
        assert_eq!(c.penalty, 2.5);
        assert!(c.exclude_critical);
        assert_eq!(c.suggested_bonus, 1.0);
        let err = serde_json::from_str::<GuidanceConfig>(r#"{"penalti": 2.5}"#).unwrap_err();
        assert!(err.to_string().contains("penalti"), "{err}");
    }
}
