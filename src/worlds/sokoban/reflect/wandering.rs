//! Wandering trajectories: no flagged mistake, so tau is the start of the
//! stretch after the last push that brought the boxes closer (a loop when
//! positions repeat in it, else the step limit).

use super::ctx::{Ctx, Stretch, at};
use super::suggest::suggestion_text;
use super::*;
use crate::worlds::sokoban::board::Bits;

impl Ctx<'_> {
    pub(super) fn wandering(&mut self, running: bool) -> Option<Verdict> {
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
    pub(super) fn progress_steps(&self) -> Vec<bool> {
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
    pub(super) fn positions(&self, start: usize, end: usize) -> Vec<(Bits, u8)> {
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
    pub(super) fn most_repeated(&self, start: usize, end: usize) -> (u8, usize) {
        let v = self.positions(start, end);
        let mut best = (v[0].1, 0);
        for run in v.chunk_by(|a, b| a == b) {
            if run.len() > best.1 {
                best = (run[0].1, run.len());
            }
        }
        best
    }

    pub(super) fn max_repeats(&self, start: usize, end: usize) -> usize {
        self.most_repeated(start, end).1
    }
}

/// The start and end of the longest run of owned steps without progress
/// (earliest on ties).
pub(super) fn longest_idle_run(progress: &[bool], min_tau: usize) -> Option<Stretch> {
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
