//! One reflection's working set ([`Ctx`]): the trajectory, the solver's
//! answers gathered so far, and the walk that picks the verdict.

use super::*;
use crate::worlds::sokoban::board::coords;
use crate::worlds::sokoban::solve::{Solvability, SolverConfig, solve_from};

/// A solver answer for one state of the trajectory.
#[derive(Debug, Clone, Copy)]
pub(super) struct Probe {
    pub(super) solvability: Solvability,
    pub(super) first_move: Option<usize>,
    pub(super) pushes: u32,
}

/// One reflection's working set: the trajectory and the solver answers
/// gathered so far (each state is solved at most once).
pub(super) struct Ctx<'a> {
    pub(super) level: &'a Level,
    pub(super) steps: &'a [StepRecord],
    pub(super) now: &'a State,
    pub(super) min_tau: usize,
    pub(super) config: &'a ReflectorConfig,
    pub(super) solver: SolverConfig,
    pub(super) probes: Vec<Option<Probe>>,
}

/// A run of steps `start..end` (states `start..=end`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Stretch {
    pub(super) start: usize,
    pub(super) end: usize,
}

impl Ctx<'_> {
    pub(super) fn n(&self) -> usize {
        self.steps.len()
    }

    /// State `i`: before step `i`, or `now` for `i == n`.
    pub(super) fn state(&self, i: usize) -> &State {
        if i < self.n() {
            &self.steps[i].state
        } else {
            self.now
        }
    }

    pub(super) fn probe(&mut self, i: usize) -> Probe {
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

    pub(super) fn proven_unsolvable(&mut self, i: usize) -> bool {
        self.probe(i).solvability == Solvability::Unsolvable
    }

    pub(super) fn run(&mut self, running: bool) -> Option<Verdict> {
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
    pub(super) fn first_unsolvable(&mut self, mut lo: usize, mut hi: usize) -> usize {
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
    pub(super) fn push_cells(&self, k: usize) -> (u8, u8) {
        let s = &self.steps[k];
        let from = step_pos(s.state.player, s.action & 3);
        (from, step_pos(from, s.action & 3))
    }

    /// What step `k` did, for a diagnosis: "moved left and pushed the box at
    /// row 3, column 2 to row 3, column 1".
    pub(super) fn step_text(&self, k: usize) -> String {
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
}

/// "row 3, column 2" (0-based, as in the environment's feedback).
pub(super) fn at(cell: u8) -> String {
    let (x, y) = coords(cell);
    format!("row {y}, column {x}")
}
