//! Deadlock detection: the irreversible mistakes of Sokoban.
//!
//! Two sound tests, shared by the environment's feedback, the solver's
//! pruning and (later) the reflector:
//! - dead squares: a non-target square from which no sequence of pushes can
//!   bring a box to any target, even on an otherwise empty board. A box on
//!   one can never be solved, since every box needs its own target.
//! - freeze deadlocks: a box that can move neither horizontally nor
//!   vertically, ever, because walls, dead squares or other frozen boxes
//!   block both axes (this covers 2×2 blocks of boxes and walls and boxes
//!   frozen against a wall), where the frozen group holds a box off target.
//!
//! Invariant: both tests are *sound* — they never call a solvable state
//! dead. They are incomplete (some hopeless states pass); the solver is the
//! exact oracle.

use std::collections::VecDeque;

use super::board::{Bits, CELLS, Level, step_pos};

/// Sentinel distance for "no push sequence reaches".
pub const UNREACHABLE: u16 = u16::MAX;

/// Dead squares of a board: floor, not a target, and not reachable from a
/// target by reverse pushes ("pulls") on an empty board.
pub fn dead_squares(walls: &Bits, targets: &Bits) -> Bits {
    let mut live = *targets;
    let mut queue: VecDeque<u8> = targets.iter().collect();
    while let Some(b) = queue.pop_front() {
        for d in 0..4 {
            // The box can come to `b` from `s` by a push in the opposite of
            // direction d, with the player standing at `q` behind it.
            let s = step_pos(b, d);
            if walls.get(s) || live.get(s) {
                continue;
            }
            let q = step_pos(s, d);
            if !walls.get(q) {
                live.set(s);
                queue.push_back(s);
            }
        }
    }
    let mut dead = Bits::EMPTY;
    for p in 0..=u8::MAX {
        if !walls.get(p) && !live.get(p) {
            dead.set(p);
        }
    }
    dead
}

/// Minimal number of pushes to bring a box from each cell to `target` on an
/// otherwise empty board ([`UNREACHABLE`] where impossible). A lower bound
/// used by the solver's heuristic.
pub fn push_distances(walls: &Bits, target: u8) -> [u16; CELLS] {
    let mut dist = [UNREACHABLE; CELLS];
    dist[target as usize] = 0;
    let mut queue = VecDeque::from([target]);
    while let Some(b) = queue.pop_front() {
        let db = dist[b as usize];
        for d in 0..4 {
            let s = step_pos(b, d);
            if walls.get(s) || dist[s as usize] != UNREACHABLE {
                continue;
            }
            if !walls.get(step_pos(s, d)) {
                dist[s as usize] = db + 1;
                queue.push_back(s);
            }
        }
    }
    dist
}

/// Whether the box at `pos` is frozen together with a box off target, given
/// the boxes `boxes` (which must contain `pos`). This is the test to run
/// right after a push moved a box to `pos`.
pub fn is_freeze_deadlock(level: &Level, boxes: &Bits, pos: u8) -> bool {
    freeze_group(level, boxes, pos).is_some_and(|g| !g.and(level.targets()).eq(&g))
}

/// The group of boxes frozen with the box at `pos`, or `None` when it can
/// still move along some axis.
pub fn freeze_group(level: &Level, boxes: &Bits, pos: u8) -> Option<Bits> {
    let mut as_wall = Bits::EMPTY;
    let mut group = Bits::EMPTY;
    frozen(level, boxes, pos, &mut as_wall, &mut group).then_some(group)
}

/// The recursion of the classic freeze test: while deciding about `p`, `p`
/// counts as a wall, which both breaks cycles and is exactly the assumption
/// under which the neighbour's verdict is valid (the two block each other).
fn frozen(level: &Level, boxes: &Bits, p: u8, as_wall: &mut Bits, group: &mut Bits) -> bool {
    as_wall.set(p);
    let res = blocked(level, boxes, p, 0, 1, as_wall, group)
        && blocked(level, boxes, p, 2, 3, as_wall, group);
    as_wall.clear(p);
    if res {
        group.set(p);
    }
    res
}

fn blocked(
    level: &Level,
    boxes: &Bits,
    p: u8,
    d1: usize,
    d2: usize,
    as_wall: &mut Bits,
    group: &mut Bits,
) -> bool {
    let (n1, n2) = (step_pos(p, d1), step_pos(p, d2));
    let walls = level.walls();
    if walls.get(n1) || walls.get(n2) || as_wall.get(n1) || as_wall.get(n2) {
        return true;
    }
    // Moving along this axis would put the box on a dead square either way.
    let dead = level.dead_squares();
    if dead.get(n1) && dead.get(n2) {
        return true;
    }
    for n in [n1, n2] {
        if boxes.get(n) {
            let mut g = *group;
            if frozen(level, boxes, n, as_wall, &mut g) {
                *group = g;
                return true;
            }
        }
    }
    false
}

/// Why a state is dead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadlockKind {
    /// A box off target on a dead square.
    DeadSquare,
    /// A frozen group of boxes holding a box off target.
    Frozen,
}

/// A detected deadlock: its kind and the (column, row) of a box involved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Deadlock {
    pub kind: DeadlockKind,
    pub x: usize,
    pub y: usize,
}

/// Check every box of a state for a dead square or a freeze deadlock.
/// `None` means no deadlock was found (not that the state is solvable).
pub fn find_deadlock(level: &Level, boxes: &Bits) -> Option<Deadlock> {
    let targets = level.targets();
    let at = |kind, p| {
        let (x, y) = super::board::coords(p);
        Some(Deadlock { kind, x, y })
    };
    for p in boxes.iter() {
        if !targets.get(p) && level.dead_squares().get(p) {
            return at(DeadlockKind::DeadSquare, p);
        }
    }
    for p in boxes.iter() {
        if is_freeze_deadlock(level, boxes, p) {
            return at(DeadlockKind::Frozen, p);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worlds::sokoban::levels::parse_levels;

    fn level(s: &str) -> Level {
        parse_levels(s, "t").unwrap().remove(0)
    }

    #[test]
    fn a_two_by_two_block_is_frozen_in_open_space() {
        let l = level("########\n#      #\n# $$ . #\n# $$ . #\n#   ..@#\n########");
        let p = crate::worlds::sokoban::board::cell(3, 3);
        assert!(is_freeze_deadlock(&l, l.boxes(), p));
        let g = freeze_group(&l, l.boxes(), p).unwrap();
        assert_eq!(g.count(), 4);
    }

    #[test]
    fn a_frozen_group_on_targets_is_not_a_deadlock() {
        let l = level("#####\n#**@#\n#   #\n#####");
        let p = crate::worlds::sokoban::board::cell(2, 1);
        assert!(freeze_group(&l, l.boxes(), p).is_some());
        assert!(!is_freeze_deadlock(&l, l.boxes(), p));
        assert!(find_deadlock(&l, l.boxes()).is_none());
    }

    #[test]
    fn push_distances_count_pushes_not_walks() {
        let l = level("#######\n#@$  .#\n#     #\n#######");
        use crate::worlds::sokoban::board::cell;
        let d = push_distances(l.walls(), cell(5, 1));
        assert_eq!(d[cell(2, 1) as usize], 3);
        // A corner, and the bottom row (a box there can never be pushed up).
        assert_eq!(d[cell(1, 1) as usize], UNREACHABLE);
        assert_eq!(d[cell(2, 2) as usize], UNREACHABLE);
        assert!(l.dead_squares().get(cell(1, 1)) && l.dead_squares().get(cell(3, 2)));
    }
}
