//! Sokoban's rule-based reflector: reads a trajectory and the environment's
//! feedback, names the critical mistake step `tau` and writes a typed
//! [`Verdict`] (diagnosis + fix), which the generic
//! [`crate::reflect::Reflector`] implementation turns into an
//! [`Experience`] for Stage 1.
//!
//! This module owns the record of one step it reads ([`StepRecord`]), its
//! verdict ([`Verdict`], [`Category`]) and [`SokobanReflector`]. Through the
//! generic boundary it reads the level from the observation text and each
//! state from the observation's compact state bytes, and the events from
//! the transition's flags.
//!
//! Invariants of every verdict (checked by the tests):
//! - `min_tau <= tau < steps.len()`: a rollback restarts from
//!   `steps[tau].state`, inside the part of the trajectory the episode owns.
//! - A verdict of [`Category::DeadSquare`], [`Category::FrozenBoxes`] or
//!   [`Category::Unsolvable`] is *proven*: the state after step `tau` is
//!   unsolvable (by the environment's sound deadlock tests or by an
//!   exhausted solver search). The state before it is not proven unsolvable
//!   (unless the level was already lost when the episode took over, see
//!   [`SokobanReflector`]).
//! - The reflector is deterministic: the solver runs with a node limit and no
//!   time limit, so the same trajectory always gets the same experience.

use std::fmt;

use crate::env::{Observation, Status, Step};
use crate::reflect::{Experience, Reflector};
use crate::worlds::sokoban::board::{CELLS, DIR_NAMES, step_pos};
use crate::worlds::sokoban::deadlock::{self, UNREACHABLE};
use crate::worlds::sokoban::levels::parse_levels;
use crate::worlds::sokoban::solve::{Solvability, SolverConfig};
use crate::worlds::sokoban::{Events, Level, Sokoban, State, decode_state};

pub use crate::reflect::ReflectorConfig;

mod ctx;
mod mistakes;
mod suggest;
mod wandering;

use ctx::Ctx;

/// What kind of mistake a reflection found. Stored in the `reflections`
/// table's `category` column ([`Category::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// A box was pushed onto a dead square (environment feedback).
    DeadSquare,
    /// A push froze a group of boxes off target (environment feedback).
    FrozenBoxes,
    /// The solver proves the level unsolvable after step `tau`, a loss the
    /// environment did not flag at that step (or the level was already lost
    /// when the episode took over: then `tau = min_tau`, no critical action).
    Unsolvable,
    /// The trajectory went in circles (positions repeat without progress),
    /// or, while running, made no progress for too long.
    Loop,
    /// The episode failed on a level not proven unsolvable, without
    /// repeating positions: the moves were wasted, not circular.
    StepLimit,
}

impl Category {
    /// Every category, in declaration order.
    pub const ALL: [Category; 5] = [
        Category::DeadSquare,
        Category::FrozenBoxes,
        Category::Unsolvable,
        Category::Loop,
        Category::StepLimit,
    ];

    /// A stable snake_case name (equal to the serde name).
    pub fn as_str(self) -> &'static str {
        match self {
            Category::DeadSquare => "dead_square",
            Category::FrozenBoxes => "frozen_boxes",
            Category::Unsolvable => "unsolvable",
            Category::Loop => "loop",
            Category::StepLimit => "step_limit",
        }
    }

    /// Whether the category names an irreversible mistake (the level is
    /// proven unsolvable after `tau`) rather than wasted moves.
    pub fn is_irreversible(self) -> bool {
        matches!(
            self,
            Category::DeadSquare | Category::FrozenBoxes | Category::Unsolvable
        )
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One step of a trajectory as the reflector reads it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepRecord {
    /// Full-trajectory step index (0 is the first action after the reset).
    pub t: usize,
    /// The state *before* the action (a rollback to this step restores it).
    pub state: State,
    /// The action taken.
    pub action: usize,
    /// What the step did (the environment's structured feedback).
    pub events: Events,
    /// The reward of the step.
    pub reward: f32,
}

impl StepRecord {
    /// Take `action` (`< 4`) on `env` with the allocation-free
    /// [`Sokoban::apply`] and record the step. `t` is the environment's step
    /// count before the action, which a restore keeps, so it is the
    /// full-trajectory index in a branch too. The episode must be running:
    /// a step after the end would record a no-op.
    pub fn play(env: &mut Sokoban, action: usize) -> StepRecord {
        let state = *env.state();
        debug_assert_eq!(
            state.status,
            Status::Running,
            "play after the episode ended"
        );
        let events = env.apply(action);
        StepRecord {
            t: state.steps as usize,
            state,
            action,
            events,
            reward: Sokoban::reward_of(events),
        }
    }
}

/// The verdict of a reflection, typed for Sokoban: where to roll back to and
/// what to do there (actions are indices, the category an enum).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Verdict {
    /// The number of steps in the trajectory when the reflection ran.
    pub trigger_step: usize,
    /// The rollback step: branches restart from the state *before* step
    /// `tau` (`steps[tau].state`).
    pub tau: usize,
    /// The action at `tau` that the experience warns against, if any.
    pub critical_action: Option<usize>,
    /// What kind of mistake it was.
    pub category: Category,
    /// What went wrong, grounded in the feedback and the board: which box,
    /// where, what happened, at which step.
    pub diagnosis: String,
    /// What to do differently from `tau`.
    pub fix: String,
    /// Actions recommended at `tau` (may be empty): the solver's first move
    /// when it found a plan from `steps[tau].state`, else the safe
    /// alternatives.
    pub suggested_actions: Vec<usize>,
}

impl Verdict {
    /// `"Diagnosis: … Fix: …"`, the text put in an LLM's context or exported.
    pub fn summary(&self) -> String {
        format!("Diagnosis: {} Fix: {}", self.diagnosis, self.fix)
    }
}

impl Verdict {
    /// The generic experience: actions by name, the category's name.
    pub fn into_experience(self) -> Experience {
        Experience {
            trigger_step: self.trigger_step,
            tau: self.tau,
            critical_action: self.critical_action.map(|a| DIR_NAMES[a & 3].to_string()),
            category: self.category.as_str().to_string(),
            irreversible: self.category.is_irreversible(),
            diagnosis: self.diagnosis,
            fix: self.fix,
            suggested_actions: self
                .suggested_actions
                .iter()
                .map(|&a| DIR_NAMES[a & 3].to_string())
                .collect(),
            written_by: None,
            call: None,
        }
    }
}

/// The Sokoban reflector, grounded in the environment's feedback and the
/// solver. Rules, in order (steps before `min_tau` are never chosen; `n` is
/// `steps.len()`, state `i` is `steps[i].state` and state `n` is `now`):
///
/// 1. **Flagged mistake.** The first owned step whose events contain
///    `DEAD_SQUARE` or `FROZEN_BOXES` is `tau`, its action the critical
///    action, category [`Category::DeadSquare`] / [`Category::FrozenBoxes`].
///    With [`ReflectorConfig::verify_flagged`], when the solver proves the
///    state before that step already unsolvable, rule 2's search runs over
///    the states up to it instead.
/// 2. **Proven unsolvable.** When the solver proves state `n` unsolvable, a
///    binary search over states `min_tau..=n` finds the first proven
///    unsolvable state `j` (solvability is monotone along a trajectory;
///    "unknown" counts as not proven); `tau = j - 1`, the step that led into
///    it, category [`Category::Unsolvable`]. When `j == min_tau` the level
///    was lost before the episode took over: `tau = min_tau`, no critical
///    action, and the diagnosis says so.
/// 3. **Wandering.** A push *makes progress* when it brings the sum over
///    boxes of the push distance to the nearest target (on an empty board)
///    below every earlier value of the trajectory. The *unproductive
///    stretch* is the steps after the last progress push (from `min_tau`
///    at the earliest).
///    - Running: `Some(Loop)` only when a position (player cell and boxes)
///      occurs [`ReflectorConfig::loop_repeats`] times among the states of
///      the last [`ReflectorConfig::loop_window`] owned steps, or the
///      stretch is at least [`ReflectorConfig::idle_limit`] steps long;
///      `tau` = the start of the stretch (at most `n - 1`). Else `None`.
///    - Failed end: `tau` = the start of the stretch; when the last step
///      itself made progress (empty stretch), the start of the longest
///      owned run of steps without progress (earliest on ties), or
///      `min_tau` if there is none. Category [`Category::Loop`] when a
///      position repeats within that run, else [`Category::StepLimit`].
///      The critical action is the action at `tau`, unless the solver's plan
///      from there starts with it (then `None`: that move was fine).
///
/// `suggested_actions`: the first move of the solver's plan from
/// `steps[tau].state` when it finds one within the node limit; otherwise the
/// moves at `tau` that are neither blocked nor flagged as a mistake nor the
/// critical action.
#[derive(Debug, Clone, Default)]
pub struct SokobanReflector {
    /// The settings.
    pub config: ReflectorConfig,
}

impl SokobanReflector {
    /// The reflector's name in the store.
    pub const NAME: &'static str = "sokoban-feedback";
    /// Its name with [`ReflectorConfig::oracle`] on.
    pub const ORACLE_NAME: &'static str = "sokoban-oracle";

    /// A reflector with these settings.
    pub fn new(config: ReflectorConfig) -> SokobanReflector {
        SokobanReflector { config }
    }
}

impl Reflector for SokobanReflector {
    fn name(&self) -> &str {
        if self.config.oracle {
            Self::ORACLE_NAME
        } else {
            Self::NAME
        }
    }

    fn reflect(
        &self,
        steps: &[Step],
        now: &Observation,
        status: Status,
        min_tau: usize,
    ) -> Option<Experience> {
        if status == Status::Solved || min_tau >= steps.len() {
            return None;
        }
        // Everything below reads Sokoban's own observations; anything else
        // is a wiring mistake, said once per reflection rather than taken
        // for "on course".
        let unreadable = |what: &str| {
            tracing::warn!(
                "the Sokoban reflector cannot read this trajectory ({what}): it reflects only on Sokoban observations"
            );
            None
        };
        let Some(level) = parse_levels(&now.text, "observation")
            .ok()
            .and_then(|mut l| l.pop())
        else {
            return unreadable("the observation is not a Sokoban board");
        };
        let state = |o: &Observation| decode_state(&level, o.state.as_deref()?);
        let mut records = Vec::with_capacity(steps.len());
        for s in steps {
            let mut events = Events::empty();
            for f in &s.transition.flags {
                if let Some(e) = Events::from_name(f) {
                    events |= e;
                }
            }
            let (Some(state), Some(action)) = (state(&s.observation), s.action_index) else {
                return unreadable("a step without Sokoban state bytes or action index");
            };
            records.push(StepRecord {
                t: s.t,
                state,
                action,
                events,
                reward: s.transition.reward,
            });
        }
        let Some(now) = state(now) else {
            return unreadable("the last observation has no Sokoban state bytes");
        };
        self.reflect_level(&level, &records, &now, status, min_tau)
            .map(Verdict::into_experience)
    }
}

impl SokobanReflector {
    /// Reflect on a typed trajectory of `level`.
    ///
    /// `steps` is the FULL trajectory from t = 0 (a branch's inherited
    /// prefix included); `now` is the state after the last step; `status` is
    /// [`Status::Running`] (periodic reflection) or terminal (a failed end:
    /// [`Status::StepLimit`] or [`Status::Unsolvable`]). `tau` is at least
    /// `min_tau`, the first step this episode owns.
    ///
    /// Returns `None` when the trajectory is judged on course (only while
    /// running), when it is solved, and when the episode owns no step yet
    /// (`min_tau >= steps.len()`: there is no step to roll back to). At a
    /// failed end with an owned step it always returns `Some`.
    pub fn reflect_level(
        &self,
        level: &Level,
        steps: &[StepRecord],
        now: &State,
        status: Status,
        min_tau: usize,
    ) -> Option<Verdict> {
        let n = steps.len();
        if status == Status::Solved || min_tau >= n {
            return None;
        }
        let mut ctx = Ctx {
            level,
            steps,
            now,
            min_tau,
            config: &self.config,
            solver: SolverConfig {
                max_nodes: self.config.solver_max_nodes,
                time_limit_ms: None,
                weight: self.config.solver_weight.max(1),
            },
            probes: vec![None; n + 1],
        };
        let exp = ctx.run(status == Status::Running);
        if let Some(e) = &exp {
            debug_assert!(e.tau >= min_tau && e.tau < n);
            tracing::debug!(
                category = e.category.as_str(),
                tau = e.tau,
                trigger_step = e.trigger_step,
                "reflection"
            );
        }
        exp
    }
}

#[cfg(test)]
mod tests {
    use super::suggest::suggestion_text;
    use super::wandering::longest_idle_run;
    use super::*;

    #[test]
    fn category_names_match_serde() {
        for c in Category::ALL {
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(json, format!("\"{}\"", c.as_str()));
            assert_eq!(serde_json::from_str::<Category>(&json).unwrap(), c);
        }
    }

    #[test]
    fn longest_idle_run_skips_progress_and_prefers_the_earliest_tie() {
        let p = [false, true, false, false, true, false, false, true];
        let r = longest_idle_run(&p, 0).unwrap();
        assert_eq!((r.start, r.end), (2, 4));
        let r = longest_idle_run(&p, 3).unwrap();
        assert_eq!((r.start, r.end), (5, 7));
        assert!(longest_idle_run(&[true, true], 0).is_none());
    }

    #[test]
    fn suggestions_read_as_moves() {
        assert_eq!(suggestion_text(&[], false), "take a different move");
        assert!(suggestion_text(&[2], true).starts_with("move left (the first move"));
        assert_eq!(suggestion_text(&[0, 3], false), "move up or right");
    }
}
