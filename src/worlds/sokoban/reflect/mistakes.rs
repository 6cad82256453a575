//! Irreversible mistakes: the step a flag reports (a dead square, frozen
//! boxes) and, with the oracle, the step into the first unsolvable state;
//! the words that explain them.

use super::ctx::{Ctx, at};
use super::suggest::suggestion_text;
use super::*;
use crate::worlds::sokoban::board::{Bits, CELLS, step_pos};
use crate::worlds::sokoban::deadlock::{self, UNREACHABLE};

impl Ctx<'_> {
    pub(super) fn flagged(&mut self, k: usize) -> Verdict {
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
    pub(super) fn unsolvable(&mut self, j: usize, flagged: Option<usize>) -> Verdict {
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
}

/// The smallest set of boxes that can reach fewer targets than it has boxes
/// (pushes on an empty board; Hall's condition for a box-to-target matching
/// fails), with the targets it can reach. `None` when every set has enough,
/// or the level is too large to enumerate the sets cheaply.
pub(super) fn target_shortage(level: &Level, boxes: &Bits) -> Option<(Vec<u8>, Vec<u8>)> {
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

/// Why a dead square is dead, in words.
pub(super) fn dead_reason(level: &Level, cell: u8) -> &'static str {
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
