//! An exact Sokoban solver: A* over push states.
//!
//! A search node is a box configuration plus the player's reachable region
//! (named by its smallest cell), an edge is one push. Children that put a box
//! on a dead square or freeze a group of boxes off target are pruned (both
//! tests are sound, see [`super::deadlock`]). The heuristic is the minimum
//! cost assignment of boxes to targets under push distances on an empty
//! board: admissible and consistent, so with `weight = 1` the first solution
//! popped has the fewest pushes. Moves between pushes are shortest walks, so
//! the move count is good but not guaranteed minimal.
//!
//! Invariants: an exhausted search proves the state unsolvable; a hit limit
//! answers [`Solvability::Unknown`], never a guess. With no time limit the
//! search is deterministic (the generator relies on it).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::time::{Duration, Instant};

use super::Sokoban;
use super::board::{Bits, CELLS, DIR_LETTERS, Level, step_pos};
use super::deadlock::{self, UNREACHABLE};

/// Limits and knobs of a search.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SolverConfig {
    /// Stop after expanding this many nodes (answer: unknown).
    pub max_nodes: u64,
    /// Stop after this much wall-clock time (answer: unknown). `None` keeps
    /// the search deterministic.
    pub time_limit_ms: Option<u64>,
    /// Heuristic weight: 1 is A* (fewest pushes); larger values find a
    /// solution faster without the optimality guarantee.
    pub weight: u16,
}

impl Default for SolverConfig {
    fn default() -> Self {
        SolverConfig {
            max_nodes: 1_000_000,
            time_limit_ms: None,
            weight: 1,
        }
    }
}

/// The answer of a search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Solvability {
    /// A solution was found.
    Solvable,
    /// The search space was exhausted: no solution exists.
    Unsolvable,
    /// A node or time limit was hit first.
    Unknown,
}

impl Solvability {
    /// A stable lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Solvability::Solvable => "solvable",
            Solvability::Unsolvable => "unsolvable",
            Solvability::Unknown => "unknown",
        }
    }
}

/// The result of [`solve`].
#[derive(Debug, Clone, PartialEq)]
pub struct Solution {
    /// Whether a plan was found, proven impossible, or the search gave up.
    pub solvability: Solvability,
    /// The plan as moves over `u d l r` (empty unless solvable).
    pub moves: String,
    /// Pushes in the plan.
    pub pushes: u32,
    /// Nodes expanded.
    pub nodes: u64,
    /// Wall-clock time of the search.
    pub elapsed: Duration,
}

impl Solution {
    /// Whether a plan was found.
    pub fn solved(&self) -> bool {
        self.solvability == Solvability::Solvable
    }

    /// Moves in the plan.
    pub fn num_moves(&self) -> usize {
        self.moves.len()
    }

    /// The plan as action indices (0 up, 1 down, 2 left, 3 right).
    pub fn actions(&self) -> Vec<usize> {
        self.moves
            .chars()
            .filter_map(|c| DIR_LETTERS.iter().position(|&l| l == c))
            .collect()
    }

    /// Elapsed time in milliseconds.
    pub fn elapsed_ms(&self) -> f64 {
        self.elapsed.as_secs_f64() * 1e3
    }
}

/// Solve a level from its initial state.
pub fn solve(level: &Level, config: &SolverConfig) -> Solution {
    solve_from(level, level.boxes(), level.player(), config)
}

/// Solve from the current state of an episode (the steps already taken do
/// not count against anything).
pub fn solve_state(env: &Sokoban, config: &SolverConfig) -> Solution {
    let s = env.state();
    solve_from(env.level(), &s.boxes, s.player, config)
}

/// Whether the episode can still be solved from its current state: the
/// oracle for "when did this trajectory become hopeless".
pub fn is_solvable(env: &Sokoban, config: &SolverConfig) -> Solvability {
    solve_state(env, config).solvability
}

thread_local! {
    /// Searches run on this thread (shown next to the runs that consulted
    /// the solver: the oracle ablation's cost).
    static SEARCHES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    /// Nodes (push states) those searches expanded: the simulated
    /// transitions the oracle is charged for.
    static NODES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many solver searches this thread has run so far ([`solve_from`],
/// and everything built on it). Per thread, so that jobs running side by
/// side (the experiment's seeds) each read their own: a job that explores
/// on one thread reads the counter before and after.
pub fn solver_searches() -> u64 {
    SEARCHES.with(std::cell::Cell::get)
}

/// How many nodes this thread's solver searches have expanded so far.
pub fn solver_nodes() -> u64 {
    NODES.with(std::cell::Cell::get)
}

/// How many searches this thread has run: lets a test prove that a method
/// never consulted the solver (the same counter as [`solver_searches`]).
pub fn solver_calls_on_this_thread() -> u64 {
    solver_searches()
}

/// Solve from boxes at `boxes` and the player at `player` on `level`.
pub fn solve_from(level: &Level, boxes: &Bits, player: u8, config: &SolverConfig) -> Solution {
    SEARCHES.with(|c| c.set(c.get() + 1));
    let start = Instant::now();
    let mut search = Search::new(level);
    let (solvability, pushes) = search.run(*boxes, player, config, start);
    NODES.with(|c| c.set(c.get() + search.expanded));
    let (moves, npushes) = match &pushes {
        Some(p) => (plan_moves(level, *boxes, player, p), p.len() as u32),
        None => (String::new(), 0),
    };
    Solution {
        solvability,
        moves,
        pushes: npushes,
        nodes: search.expanded,
        elapsed: start.elapsed(),
    }
}

/// A fast, good-enough hasher for bitset keys (multiply-rotate, as in rustc's
/// FxHash); the default SipHash would dominate the search time. Also used by
/// the explorer's visited-position sets.
#[derive(Default)]
pub struct Fx(u64);

impl Hasher for Fx {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b as u64);
        }
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// Hash-map builder with [`Fx`].
pub type FxBuild = BuildHasherDefault<Fx>;

#[derive(Clone, Copy, PartialEq, Eq)]
struct Key(Bits, u8);

impl Hash for Key {
    fn hash<H: Hasher>(&self, h: &mut H) {
        for w in self.0.0 {
            h.write_u64(w);
        }
        h.write_u64(self.1 as u64);
    }
}

struct Node {
    boxes: Bits,
    player: u8,
    parent: u32,
    /// The box's cell before the push that led here, and the push direction.
    push_from: u8,
    dir: u8,
}

struct Search<'a> {
    level: &'a Level,
    /// Push distance to each target, indexed [target][cell].
    dist: Vec<[u16; CELLS]>,
    expanded: u64,
}

impl<'a> Search<'a> {
    fn new(level: &'a Level) -> Self {
        let dist = level
            .targets()
            .iter()
            .map(|t| deadlock::push_distances(level.walls(), t))
            .collect();
        Search {
            level,
            dist,
            expanded: 0,
        }
    }

    /// Minimum-cost assignment of boxes to targets (DP over target subsets
    /// for up to 10 boxes, else the sum of nearest-target distances, which is
    /// weaker but still admissible). `UNREACHABLE` if some box reaches none.
    fn heuristic(&self, boxes: &Bits) -> u16 {
        let n = self.dist.len();
        if n > 10 {
            let mut sum = 0u32;
            for b in boxes.iter() {
                let m = self.dist.iter().map(|d| d[b as usize]).min().unwrap_or(0);
                if m == UNREACHABLE {
                    return UNREACHABLE;
                }
                sum += m as u32;
            }
            return sum.min(UNREACHABLE as u32 - 1) as u16;
        }
        let mut bs = [0u8; 10];
        for (i, b) in boxes.iter().take(10).enumerate() {
            bs[i] = b;
        }
        let full = (1usize << n) - 1;
        let mut dp = [UNREACHABLE; 1 << 10];
        dp[0] = 0;
        for mask in 0..full {
            let cur = dp[mask];
            if cur == UNREACHABLE {
                continue;
            }
            let i = mask.count_ones() as usize;
            let b = bs[i] as usize;
            for (t, d) in self.dist.iter().enumerate() {
                if mask & (1 << t) != 0 || d[b] == UNREACHABLE {
                    continue;
                }
                let m = mask | (1 << t);
                dp[m] = dp[m].min(cur + d[b]);
            }
        }
        dp[full]
    }

    /// The player's reachable cells and the smallest of them.
    fn reach(&self, boxes: &Bits, start: u8) -> (Bits, u8) {
        let blocked = self.level.walls().or(boxes);
        let mut seen = Bits::EMPTY;
        let mut queue = [0u8; CELLS];
        let (mut head, mut tail) = (0, 1);
        queue[0] = start;
        seen.set(start);
        let mut min = start;
        while head < tail {
            let p = queue[head];
            head += 1;
            for d in 0..4 {
                let n = step_pos(p, d);
                if !blocked.get(n) && !seen.get(n) {
                    seen.set(n);
                    min = min.min(n);
                    queue[tail] = n;
                    tail += 1;
                }
            }
        }
        (seen, min)
    }

    /// Returns the verdict and, when solvable, the pushes (box cell before
    /// the push, direction) from the start.
    fn run(
        &mut self,
        boxes: Bits,
        player: u8,
        config: &SolverConfig,
        start: Instant,
    ) -> (Solvability, Option<Vec<(u8, u8)>>) {
        let level = self.level;
        let (walls, targets, dead) = (level.walls(), level.targets(), level.dead_squares());
        if boxes == *targets {
            return (Solvability::Solvable, Some(Vec::new()));
        }
        let h0 = self.heuristic(&boxes);
        if h0 == UNREACHABLE || deadlock::find_deadlock(level, &boxes).is_some() {
            return (Solvability::Unsolvable, None);
        }
        let weight = config.weight.max(1) as u32;
        let limit = config.time_limit_ms.map(Duration::from_millis);
        let mut nodes = vec![Node {
            boxes,
            player,
            parent: u32::MAX,
            push_from: 0,
            dir: 0,
        }];
        let mut open = BinaryHeap::new();
        open.push((Reverse(h0 as u32 * weight), 0u16, Reverse(0u32)));
        let mut seen: HashMap<Key, u16, FxBuild> = HashMap::default();
        let mut closed: HashSet<Key, FxBuild> = HashSet::default();
        seen.insert(Key(boxes, player), 0);
        while let Some((_, g, Reverse(idx))) = open.pop() {
            let node = &nodes[idx as usize];
            let nb0 = node.boxes;
            let (reach, canon) = self.reach(&nb0, node.player);
            if !closed.insert(Key(nb0, canon)) {
                continue;
            }
            if nb0 == *targets {
                let mut pushes = Vec::new();
                let mut i = idx;
                while nodes[i as usize].parent != u32::MAX {
                    let n = &nodes[i as usize];
                    pushes.push((n.push_from, n.dir));
                    i = n.parent;
                }
                pushes.reverse();
                return (Solvability::Solvable, Some(pushes));
            }
            self.expanded += 1;
            if self.expanded > config.max_nodes {
                return (Solvability::Unknown, None);
            }
            if let Some(limit) = limit
                && self.expanded.is_multiple_of(256)
                && start.elapsed() > limit
            {
                return (Solvability::Unknown, None);
            }
            for b in nb0.iter() {
                for d in 0..4 {
                    let t = step_pos(b, d);
                    if walls.get(t) || nb0.get(t) || dead.get(t) || !reach.get(step_pos(b, d ^ 1)) {
                        continue;
                    }
                    let mut nb = nb0;
                    nb.clear(b);
                    nb.set(t);
                    if nb != *targets && deadlock::is_freeze_deadlock(level, &nb, t) {
                        continue;
                    }
                    let h = self.heuristic(&nb);
                    if h == UNREACHABLE {
                        continue;
                    }
                    let key = Key(nb, b);
                    let g1 = g + 1;
                    match seen.get(&key) {
                        Some(&old) if old <= g1 => continue,
                        _ => {
                            seen.insert(key, g1);
                        }
                    }
                    let child = nodes.len() as u32;
                    nodes.push(Node {
                        boxes: nb,
                        player: b,
                        parent: idx,
                        push_from: b,
                        dir: d as u8,
                    });
                    let f = g1 as u32 + h as u32 * weight;
                    open.push((Reverse(f), g1, Reverse(child)));
                }
            }
        }
        (Solvability::Unsolvable, None)
    }
}

/// Turn pushes into moves: a shortest walk to the square behind each box,
/// then the push.
fn plan_moves(level: &Level, mut boxes: Bits, mut player: u8, pushes: &[(u8, u8)]) -> String {
    let mut moves = String::new();
    for &(b, d) in pushes {
        let behind = step_pos(b, d as usize ^ 1);
        walk(level, &boxes, player, behind, &mut moves);
        moves.push(DIR_LETTERS[d as usize]);
        boxes.clear(b);
        boxes.set(step_pos(b, d as usize));
        player = b;
    }
    moves
}

/// Append a shortest walk from `from` to `to` avoiding walls and boxes.
fn walk(level: &Level, boxes: &Bits, from: u8, to: u8, out: &mut String) {
    let blocked = level.walls().or(boxes);
    let mut came: [u8; CELLS] = [u8::MAX; CELLS];
    let mut queue = [0u8; CELLS];
    let (mut head, mut tail) = (0, 1);
    queue[0] = from;
    came[from as usize] = 4;
    while head < tail {
        let p = queue[head];
        head += 1;
        if p == to {
            break;
        }
        for d in 0..4 {
            let n = step_pos(p, d);
            if !blocked.get(n) && came[n as usize] == u8::MAX {
                came[n as usize] = d as u8;
                queue[tail] = n;
                tail += 1;
            }
        }
    }
    let mut letters = Vec::new();
    let mut p = to;
    // The search only emits pushes from reachable squares, so the walk
    // exists; the bound guards against a corrupted plan looping forever.
    while p != from && came[p as usize] < 4 && letters.len() < CELLS {
        let d = came[p as usize] as usize;
        letters.push(DIR_LETTERS[d]);
        p = step_pos(p, d ^ 1);
    }
    out.extend(letters.into_iter().rev());
}
