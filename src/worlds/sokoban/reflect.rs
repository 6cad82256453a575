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
use crate::worlds::sokoban::board::{Bits, CELLS, DIR_NAMES, coords, step_pos};
use crate::worlds::sokoban::deadlock::{self, UNREACHABLE};
use crate::worlds::sokoban::levels::parse_levels;
use crate::worlds::sokoban::solve::{Solvability, SolverConfig, solve_from};
use crate::worlds::sokoban::{Events, Level, Sokoban, State, decode_state};

pub use crate::reflect::ReflectorConfig;

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

/// A solver answer for one state of the trajectory.
#[derive(Debug, Clone, Copy)]
struct Probe {
    solvability: Solvability,
    first_move: Option<usize>,
    pushes: u32,
}

/// One reflection's working set: the trajectory and the solver answers
/// gathered so far (each state is solved at most once).
struct Ctx<'a> {
    level: &'a Level,
    steps: &'a [StepRecord],
    now: &'a State,
    min_tau: usize,
    config: &'a ReflectorConfig,
    solver: SolverConfig,
    probes: Vec<Option<Probe>>,
}

/// A run of steps `start..end` (states `start..=end`).
#[derive(Debug, Clone, Copy)]
struct Stretch {
    start: usize,
    end: usize,
}

impl Ctx<'_> {
    fn n(&self) -> usize {
        self.steps.len()
    }

    /// State `i`: before step `i`, or `now` for `i == n`.
    fn state(&self, i: usize) -> &State {
        if i < self.n() {
            &self.steps[i].state
        } else {
            self.now
        }
    }

    fn probe(&mut self, i: usize) -> Probe {
        if let Some(p) = self.probes[i] {
            return p;
        }
        let s = *self.state(i);
        let sol = solve_from(self.level, &s.boxes, s.player, &self.solver);
        let p = Probe {
            solvability: sol.solvability,
            first_move: sol.actions().first().copied(),
            pushes: sol.pushes,
        };
        self.probes[i] = Some(p);
        p
    }

    fn proven_unsolvable(&mut self, i: usize) -> bool {
        self.probe(i).solvability == Solvability::Unsolvable
    }

    fn run(&mut self, running: bool) -> Option<Verdict> {
        let (n, min_tau) = (self.n(), self.min_tau);
        let oracle = self.config.oracle;
        // Rule 1: the environment's sound deadlock flags.
        if let Some(k) = (min_tau..n).find(|&i| self.steps[i].events.is_mistake()) {
            if oracle && self.config.verify_flagged && self.proven_unsolvable(k) {
                let j = self.first_unsolvable(min_tau, k);
                return Some(self.unsolvable(j, Some(k)));
            }
            return Some(self.flagged(k));
        }
        // Rule 2 (oracle only): the solver's proof on the current state.
        if oracle && self.proven_unsolvable(n) {
            let j = self.first_unsolvable(min_tau, n);
            return Some(self.unsolvable(j, None));
        }
        // Rule 3: still solvable, judge the wandering.
        self.wandering(running)
    }

    /// The smallest `j` in `lo..=hi` with state `j` proven unsolvable, given
    /// that state `hi` is. Sound because solvability is monotone along a
    /// trajectory: a successor of an unsolvable state is unsolvable.
    fn first_unsolvable(&mut self, mut lo: usize, mut hi: usize) -> usize {
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.proven_unsolvable(mid) {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        hi
    }

    /// The cells a step's push moved a box from and to (the step must push).
    fn push_cells(&self, k: usize) -> (u8, u8) {
        let s = &self.steps[k];
        let from = step_pos(s.state.player, s.action & 3);
        (from, step_pos(from, s.action & 3))
    }

    /// What step `k` did, for a diagnosis: "moved left and pushed the box at
    /// row 3, column 2 to row 3, column 1".
    fn step_text(&self, k: usize) -> String {
        let s = &self.steps[k];
        let dir = DIR_NAMES[s.action & 3];
        if s.events.contains(Events::PUSHED_BOX) {
            let (from, to) = self.push_cells(k);
            format!(
                "moved {dir} and pushed the box at {} to {}",
                at(from),
                at(to)
            )
        } else if s.events.is_blocked() {
            format!("tried to move {dir} but was blocked")
        } else {
            format!("moved {dir}")
        }
    }

    fn flagged(&mut self, k: usize) -> Verdict {
        let step = self.steps[k];
        let dir = DIR_NAMES[step.action & 3];
        let (from, to) = self.push_cells(k);
        let (category, diagnosis) = if step.events.contains(Events::DEAD_SQUARE) {
            (
                Category::DeadSquare,
                format!(
                    "At step {k} the agent moved {dir} and pushed the box at {} to {}, {}. \
                     It is not a target, so the level has been unsolvable since \
                     (environment feedback: dead_square).",
                    at(from),
                    at(to),
                    dead_reason(self.level, to)
                ),
            )
        } else {
            let mut boxes = step.state.boxes;
            boxes.clear(from);
            boxes.set(to);
            let group = deadlock::freeze_group(self.level, &boxes, to).unwrap_or_default();
            let targets = self.level.targets();
            let others: Vec<String> = group.iter().filter(|&p| p != to).map(at).collect();
            let off = group.iter().filter(|&p| !targets.get(p)).count();
            let with = if others.is_empty() {
                String::new()
            } else {
                format!(" together with the box(es) at {}", others.join(", "))
            };
            (
                Category::FrozenBoxes,
                format!(
                    "At step {k} the agent moved {dir} and pushed the box at {} to {}, where it \
                     is frozen{with}: walls and boxes block every axis, so none of them can ever \
                     move again, and {off} of them are off target. The level has been unsolvable \
                     since (environment feedback: frozen_boxes).",
                    at(from),
                    at(to)
                ),
            )
        };
        let (suggested, from_solver) = self.suggest(k, Some(step.action));
        let what = if category == Category::DeadSquare {
            if dead_reason(self.level, to).starts_with("a corner") {
                "into the corner"
            } else {
                "onto that dead square"
            }
        } else {
            "where it freezes"
        };
        let fix = format!(
            "At step {k} do not push the box at {} {dir} {what}; instead {}. Never push a box \
             onto a non-target square it cannot be pushed out of.",
            at(from),
            suggestion_text(&suggested, from_solver)
        );
        Verdict {
            trigger_step: self.n(),
            tau: k,
            critical_action: Some(step.action),
            category,
            diagnosis,
            fix,
            suggested_actions: suggested,
        }
    }

    /// The experience for state `j`, the first proven unsolvable one;
    /// `flagged` is the later step the environment flagged, if any.
    fn unsolvable(&mut self, j: usize, flagged: Option<usize>) -> Verdict {
        let min_tau = self.min_tau;
        if j == min_tau {
            // Nothing this episode did lost the level: it was lost when the
            // episode took over. The rollback point is the earliest owned.
            let earlier = (0..min_tau)
                .rev()
                .find(|&i| self.steps[i].events.is_mistake())
                .map(|i| format!(" (the environment flagged a mistake at step {i})"))
                .unwrap_or_default();
            return Verdict {
                trigger_step: self.n(),
                tau: min_tau,
                critical_action: None,
                category: Category::Unsolvable,
                diagnosis: format!(
                    "The level was already unsolvable at step {min_tau}, where this episode \
                     took over: the mistake was made before it{earlier}, and no move from \
                     step {min_tau} on can save it."
                ),
                fix: format!(
                    "Roll back to before step {min_tau}: the moves from step {min_tau} on are \
                     not to blame."
                ),
                suggested_actions: Vec::new(),
            };
        }
        let tau = j - 1;
        let step = self.steps[tau];
        let dir = DIR_NAMES[step.action & 3];
        let before = match self.probes[tau] {
            Some(p) if p.solvability == Solvability::Solvable => format!(
                "the solver found a plan of {} pushes from the position before it",
                p.pushes
            ),
            _ => "the solver could not prove the position before it unsolvable".to_string(),
        };
        let why = match deadlock::find_deadlock(self.level, &self.state(j).boxes) {
            Some(d) => format!(
                "the box at row {}, column {} is {}",
                d.y,
                d.x,
                match d.kind {
                    deadlock::DeadlockKind::DeadSquare => "on a dead square",
                    deadlock::DeadlockKind::Frozen => "frozen off target",
                }
            ),
            None => match target_shortage(self.level, &self.state(j).boxes) {
                Some((boxes, targets)) => {
                    let b: Vec<String> = boxes.into_iter().map(at).collect();
                    let t: Vec<String> = targets.into_iter().map(at).collect();
                    format!(
                        "the boxes at {} can only ever reach the target(s) at {} ({} boxes, {} \
                         target(s))",
                        b.join(" and "),
                        t.join(" and "),
                        b.len(),
                        t.len()
                    )
                }
                None => "the boxes block each other or the player's way to them (a deadlock \
                         the simple dead-square and freeze tests do not see)"
                    .to_string(),
            },
        };
        let later = flagged
            .map(|k| {
                format!(" The mistake the environment flagged at step {k} only made it visible.")
            })
            .unwrap_or_default();
        let diagnosis = format!(
            "At step {tau} the agent {}; {before}, but after it the solver proves that no \
             solution exists: {why}.{later}",
            self.step_text(tau)
        );
        let (suggested, from_solver) = self.suggest(tau, Some(step.action));
        let fix = format!(
            "At step {tau} do not move {dir}; instead {}. Before pushing a box, check that \
             every box can still reach a target.",
            suggestion_text(&suggested, from_solver)
        );
        Verdict {
            trigger_step: self.n(),
            tau,
            critical_action: Some(step.action),
            category: Category::Unsolvable,
            diagnosis,
            fix,
            suggested_actions: suggested,
        }
    }

    fn wandering(&mut self, running: bool) -> Option<Verdict> {
        let (n, min_tau) = (self.n(), self.min_tau);
        let progress = self.progress_steps();
        let tail_start = progress
            .iter()
            .rposition(|&p| p)
            .map_or(0, |i| i + 1)
            .max(min_tau);
        let stretch = if running {
            let w0 = n.saturating_sub(self.config.loop_window).max(min_tau);
            let repeats = self.max_repeats(w0, n);
            let idle = n - tail_start;
            let looped = repeats >= self.config.loop_repeats.max(2)
                || (self.config.idle_limit > 0 && idle >= self.config.idle_limit);
            if !looped {
                return None;
            }
            Stretch {
                start: tail_start.min(n - 1),
                end: n,
            }
        } else if tail_start < n {
            Stretch {
                start: tail_start,
                end: n,
            }
        } else {
            longest_idle_run(&progress, min_tau).unwrap_or(Stretch {
                start: min_tau,
                end: n,
            })
        };
        let tau = stretch.start;
        let repeats = self.max_repeats(stretch.start, stretch.end);
        let category = if running || repeats >= 2 {
            Category::Loop
        } else {
            Category::StepLimit
        };
        let taken = self.steps[tau].action;
        let probe = (self.config.oracle && self.config.suggest_with_solver)
            .then(|| self.probe(tau))
            .filter(|p| p.solvability == Solvability::Solvable);
        let critical = match probe.and_then(|p| p.first_move) {
            Some(m) if m == taken => None,
            _ => Some(taken),
        };
        let (suggested, from_solver) = self.suggest(tau, critical);
        let len = stretch.end - stretch.start;
        let (mut blocked, mut pushes) = (0, 0);
        for s in &self.steps[stretch.start..stretch.end] {
            blocked += s.events.is_blocked() as usize;
            pushes += s.events.contains(Events::PUSHED_BOX) as usize;
        }
        let ending = if running {
            format!("the episode is still running at step {n}")
        } else {
            format!("the episode ended at step {n} without solving the level")
        };
        let what = if repeats >= 2 {
            let (cell, count) = self.most_repeated(stretch.start, stretch.end);
            format!(
                "the agent went in circles: the same position (player at {}, boxes unchanged) \
                 came back {count} times",
                at(cell)
            )
        } else {
            "the agent never returned to a position but no move got closer to a solution"
                .to_string()
        };
        let diagnosis = format!(
            "From step {tau} to step {} ({len} steps, {pushes} pushes, {blocked} blocked moves) \
             no push brought the boxes closer to their targets; {what}, and {ending}.",
            stretch.end - 1
        );
        let instead = suggestion_text(&suggested, from_solver);
        let first = match critical {
            Some(a) => format!("do not move {} but {instead}", DIR_NAMES[a & 3]),
            None => instead,
        };
        let fix = if category == Category::Loop {
            format!(
                "At step {tau} {first}; then walk to a box and push it toward a target, and do \
                 not go back to positions already visited."
            )
        } else {
            format!(
                "At step {tau} {first}; then go straight to a box and push it toward a target \
                 without walking into walls ({blocked} blocked moves were wasted)."
            )
        };
        Some(Verdict {
            trigger_step: n,
            tau,
            critical_action: critical,
            category,
            diagnosis,
            fix,
            suggested_actions: suggested,
        })
    }

    /// For each step, whether its push brought the total push distance below
    /// every earlier value of the trajectory.
    fn progress_steps(&self) -> Vec<bool> {
        let mut nearest = [UNREACHABLE; CELLS];
        for t in self.level.targets().iter() {
            let d = deadlock::push_distances(self.level.walls(), t);
            for (m, v) in nearest.iter_mut().zip(d) {
                *m = (*m).min(v);
            }
        }
        // A box on a dead square weighs more than any live box could.
        let h = |boxes: &Bits| -> u32 { boxes.iter().map(|b| nearest[b as usize] as u32).sum() };
        let mut best = h(&self.state(0).boxes);
        (0..self.n())
            .map(|i| {
                if !self.steps[i].events.contains(Events::PUSHED_BOX) {
                    return false;
                }
                let v = h(&self.state(i + 1).boxes);
                let better = v < best;
                best = best.min(v);
                better
            })
            .collect()
    }

    /// Positions (player, boxes) of states `start..=end`, sorted.
    fn positions(&self, start: usize, end: usize) -> Vec<(Bits, u8)> {
        let mut v: Vec<(Bits, u8)> = (start..=end)
            .map(|i| {
                let s = self.state(i);
                (s.boxes, s.player)
            })
            .collect();
        v.sort_unstable();
        v
    }

    /// The most frequent position among states `start..=end`: its player
    /// cell and count.
    fn most_repeated(&self, start: usize, end: usize) -> (u8, usize) {
        let v = self.positions(start, end);
        let mut best = (v[0].1, 0);
        for run in v.chunk_by(|a, b| a == b) {
            if run.len() > best.1 {
                best = (run[0].1, run.len());
            }
        }
        best
    }

    fn max_repeats(&self, start: usize, end: usize) -> usize {
        self.most_repeated(start, end).1
    }

    /// The suggested actions at step `k`: the solver's first move from
    /// state `k` if it finds a plan, else the moves that are not blocked,
    /// not flagged as a mistake and not `critical`. The flag says whether
    /// the suggestion is the solver's.
    fn suggest(&mut self, k: usize, critical: Option<usize>) -> (Vec<usize>, bool) {
        if !self.config.oracle {
            // Without the oracle nothing is simulated: the fix says only to
            // take another move than the critical one.
            return (Vec::new(), false);
        }
        if self.config.suggest_with_solver {
            let p = self.probe(k);
            if p.solvability == Solvability::Solvable
                && let Some(m) = p.first_move
            {
                return (vec![m], true);
            }
        }
        let mut env = Sokoban::new(self.level.clone(), Default::default());
        super::guide::count_lookahead(4);
        let start = State {
            status: Status::Running,
            steps: 0,
            ..*self.state(k)
        };
        let safe = (0..4)
            .filter(|&a| {
                env.restore_state(&start);
                let ev = env.apply(a);
                Some(a) != critical && !ev.is_blocked() && !ev.is_mistake()
            })
            .collect();
        (safe, false)
    }
}

/// The start and end of the longest run of owned steps without progress
/// (earliest on ties).
fn longest_idle_run(progress: &[bool], min_tau: usize) -> Option<Stretch> {
    let mut best: Option<Stretch> = None;
    let mut start = min_tau;
    for i in min_tau..=progress.len() {
        if i == progress.len() || progress[i] {
            if i > start && best.is_none_or(|b| i - start > b.end - b.start) {
                best = Some(Stretch { start, end: i });
            }
            start = i + 1;
        }
    }
    best
}

/// The smallest set of boxes that can reach fewer targets than it has boxes
/// (pushes on an empty board; Hall's condition for a box-to-target matching
/// fails), with the targets it can reach. `None` when every set has enough,
/// or the level is too large to enumerate the sets cheaply.
fn target_shortage(level: &Level, boxes: &Bits) -> Option<(Vec<u8>, Vec<u8>)> {
    let targets: Vec<u8> = level.targets().iter().collect();
    let cells: Vec<u8> = boxes.iter().collect();
    if cells.len() > 12 || targets.len() > 32 {
        return None;
    }
    let dist: Vec<[u16; CELLS]> = targets
        .iter()
        .map(|&t| deadlock::push_distances(level.walls(), t))
        .collect();
    let reach: Vec<u32> = cells
        .iter()
        .map(|&b| {
            (0..targets.len())
                .filter(|&i| dist[i][b as usize] != UNREACHABLE)
                .fold(0u32, |m, i| m | 1 << i)
        })
        .collect();
    let union = |mask: u32| {
        (0..cells.len())
            .filter(|&i| mask >> i & 1 == 1)
            .fold(0u32, |u, i| u | reach[i])
    };
    let worst = (1u32..1 << cells.len())
        .filter(|&m| union(m).count_ones() < m.count_ones())
        .min_by_key(|m| m.count_ones())?;
    let pick = |mask: u32, from: &[u8]| -> Vec<u8> {
        (0..from.len())
            .filter(|&i| mask >> i & 1 == 1)
            .map(|i| from[i])
            .collect()
    };
    Some((pick(worst, &cells), pick(union(worst), &targets)))
}

/// "row 3, column 2" (0-based, as in the environment's feedback).
fn at(cell: u8) -> String {
    let (x, y) = coords(cell);
    format!("row {y}, column {x}")
}

/// Why a dead square is dead, in words.
fn dead_reason(level: &Level, cell: u8) -> &'static str {
    let w = level.walls();
    let vertical = w.get(step_pos(cell, 0)) || w.get(step_pos(cell, 1));
    let horizontal = w.get(step_pos(cell, 2)) || w.get(step_pos(cell, 3));
    if vertical && horizontal {
        "a corner: walls on two sides, so it can never be pushed out again"
    } else if vertical || horizontal {
        "against a wall with no target along it: it can only slide along the wall"
    } else {
        "a dead square: no sequence of pushes can bring a box from there to a target"
    }
}

/// The "instead …" part of a fix.
fn suggestion_text(suggested: &[usize], from_solver: bool) -> String {
    match suggested {
        [] => "take a different move".to_string(),
        [a] if from_solver => format!(
            "move {} (the first move of a solution from this position)",
            DIR_NAMES[a & 3]
        ),
        several => {
            let names: Vec<&str> = several.iter().map(|&a| DIR_NAMES[a & 3]).collect();
            format!("move {}", names.join(" or "))
        }
    }
}

#[cfg(test)]
mod tests {
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
