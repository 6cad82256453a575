//! A seeded, deterministic level generator in the manner of gym-sokoban and
//! Boxoban: carve a room with a random walk, put the boxes on their targets
//! (the solved state), then play backwards — the player walks and pulls
//! boxes — and keep the most scrambled state reached.
//!
//! Invariants: the same [`GeneratorConfig`] gives the same levels, value for
//! value (one `ChaCha8Rng` stream, and the verifying solver runs without a
//! time limit); every returned level was solved by [`super::solve`] within
//! the configured node budget with at least `min_pushes` pushes, so
//! solvability is proven, not assumed from the reverse play.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::board::{Bits, CELLS, Level, MAX_SIZE, cell, step_pos};
use super::solve::{self, SolverConfig};
use crate::env::{EnvError, Result};

/// Settings of the generator.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GeneratorConfig {
    /// Board width including the outer walls (3..=14).
    pub width: usize,
    /// Board height including the outer walls (3..=14).
    pub height: usize,
    /// Boxes (and targets) per level.
    pub boxes: usize,
    /// Levels to generate.
    pub count: usize,
    /// Seed of the random stream.
    pub seed: u64,
    /// Steps of the room-carving walk; `None`: 1.7 × (width + height), as gym-sokoban.
    pub carve_steps: Option<usize>,
    /// Probability that the carving walk turns at a step.
    pub p_turn: f64,
    /// Steps of reverse play from the solved state (difficulty: more steps
    /// scramble further).
    pub reverse_steps: usize,
    /// Minimum pushes of the optimal solution (difficulty floor).
    pub min_pushes: u32,
    /// Maximum pushes of the optimal solution (difficulty ceiling).
    pub max_pushes: Option<u32>,
    /// Node budget of the verifying solver; a level not solved within it is
    /// discarded.
    pub solver_max_nodes: u64,
    /// Attempts per level before giving up with an error.
    pub max_attempts: usize,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig {
            width: 6,
            height: 6,
            boxes: 1,
            count: 100,
            seed: 0,
            carve_steps: None,
            p_turn: 0.35,
            reverse_steps: 300,
            min_pushes: 1,
            max_pushes: None,
            solver_max_nodes: 200_000,
            max_attempts: 1_000,
        }
    }
}

/// Carving brushes (3×3, centred on the walker), as in gym-sokoban.
const MASKS: [[[bool; 3]; 3]; 5] = {
    const O: bool = false;
    const X: bool = true;
    [
        [[O, O, O], [X, X, X], [O, O, O]],
        [[O, X, O], [O, X, O], [O, X, O]],
        [[O, O, O], [X, X, O], [O, X, O]],
        [[O, O, O], [X, X, O], [X, X, O]],
        [[O, O, O], [O, X, X], [O, X, O]],
    ]
};

/// Generate `config.count` levels.
///
/// # Errors
/// [`EnvError::InvalidConfig`] for sizes or counts out of range;
/// [`EnvError::Generate`] when a level needed more than `max_attempts`.
pub fn generate(config: &GeneratorConfig) -> Result<Vec<Level>> {
    check(config)?;
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let solver = SolverConfig {
        max_nodes: config.solver_max_nodes,
        time_limit_ms: None,
        weight: 1,
    };
    let mut levels = Vec::with_capacity(config.count);
    for index in 0..config.count {
        let mut found = None;
        for _ in 0..config.max_attempts {
            let Some(level) = attempt(config, &mut rng) else {
                continue;
            };
            let sol = solve::solve(&level, &solver);
            if sol.solved()
                && sol.pushes >= config.min_pushes
                && config.max_pushes.is_none_or(|m| sol.pushes <= m)
            {
                found = Some(level);
                break;
            }
        }
        let Some(level) = found else {
            return Err(EnvError::Generate {
                message: format!(
                    "level {index}: no {}x{} level with {} boxes and {}..{} pushes in {} attempts",
                    config.width,
                    config.height,
                    config.boxes,
                    config.min_pushes,
                    config.max_pushes.map_or("".into(), |m| m.to_string()),
                    config.max_attempts
                ),
            });
        };
        tracing::debug!(index, task_id = %level.task_id(), "generated level");
        levels.push(level);
    }
    Ok(levels)
}

fn check(c: &GeneratorConfig) -> Result<()> {
    let bad = |field, message: String| Err(EnvError::InvalidConfig { field, message });
    if !(3..=MAX_SIZE).contains(&c.width) {
        return bad("width", format!("{} is not in 3..={MAX_SIZE}", c.width));
    }
    if !(3..=MAX_SIZE).contains(&c.height) {
        return bad("height", format!("{} is not in 3..={MAX_SIZE}", c.height));
    }
    let interior = (c.width - 2) * (c.height - 2);
    if c.boxes == 0 || c.boxes + 1 > interior {
        return bad(
            "boxes",
            format!(
                "{} boxes do not fit a {}x{} board",
                c.boxes, c.width, c.height
            ),
        );
    }
    if !(0.0..=1.0).contains(&c.p_turn) {
        return bad("p_turn", format!("{} is not a probability", c.p_turn));
    }
    if c.max_attempts == 0 {
        return bad("max_attempts", "must be at least 1".into());
    }
    Ok(())
}

/// One try: a room, a solved placement, reverse play. `None` when the room
/// is too small or the reverse play never moved every box off its target.
fn attempt(c: &GeneratorConfig, rng: &mut ChaCha8Rng) -> Option<Level> {
    let (w, h) = (c.width, c.height);
    // Carve.
    let mut floor = vec![false; w * h];
    let steps = c
        .carve_steps
        .unwrap_or_else(|| (1.7 * (w + h) as f64) as usize);
    let mut x = rng.random_range(1..w - 1);
    let mut y = rng.random_range(1..h - 1);
    let dirs: [(i32, i32); 4] = [(0, -1), (0, 1), (-1, 0), (1, 0)];
    let mut dir = dirs[rng.random_range(0..4)];
    for _ in 0..steps {
        if rng.random_bool(c.p_turn) {
            dir = dirs[rng.random_range(0..4)];
        }
        x = (x as i32 + dir.0).clamp(1, w as i32 - 2) as usize;
        y = (y as i32 + dir.1).clamp(1, h as i32 - 2) as usize;
        let mask = &MASKS[rng.random_range(0..MASKS.len())];
        for (dy, row) in mask.iter().enumerate() {
            for (dx, &on) in row.iter().enumerate() {
                let (cx, cy) = (x + dx, y + dy);
                // The mask is centred on (x, y); keep the outer wall intact.
                if on && (2..w).contains(&cx) && (2..h).contains(&cy) {
                    floor[(cy - 1) * w + cx - 1] = true;
                }
            }
        }
    }
    let cells: Vec<u8> = (0..w * h)
        .filter(|&i| floor[i])
        .map(|i| cell(i % w, i / w))
        .collect();
    if cells.len() < c.boxes + 2 {
        return None;
    }
    // Place targets (with their boxes) and the player on distinct floor.
    let mut pool = cells.clone();
    let mut targets = Bits::EMPTY;
    for _ in 0..c.boxes {
        let i = rng.random_range(0..pool.len());
        targets.set(pool.swap_remove(i));
    }
    let player0 = pool[rng.random_range(0..pool.len())];
    let mut walls = Bits::EMPTY;
    for yy in 0..h {
        for xx in 0..w {
            if !floor[yy * w + xx] {
                walls.set(cell(xx, yy));
            }
        }
    }
    // Reverse play: the player walks; with probability 1/2 a step pulls the
    // box behind it along. Score = box switches × total push distance from
    // the targets (gym-sokoban's "box swaps × displacement"), so states
    // where several boxes were each moved far score highest.
    let probe = Level::from_parts(w, h, walls, targets, targets, player0);
    let dists: Vec<_> = targets
        .iter()
        .map(|t| super::deadlock::push_distances(probe.walls(), t))
        .collect();
    let mut boxes = targets;
    let mut player = player0;
    let mut last_box: Option<u8> = None;
    let mut switches = 0u32;
    let mut best: Option<(u64, Bits, u8)> = None;
    for _ in 0..c.reverse_steps {
        let d = rng.random_range(0..4usize);
        let pull = rng.random_bool(0.5);
        let next = step_pos(player, d);
        if probe.walls().get(next) || boxes.get(next) {
            continue;
        }
        let behind = step_pos(player, d ^ 1);
        if pull && boxes.get(behind) {
            boxes.clear(behind);
            boxes.set(player);
            if last_box != Some(behind) {
                switches += 1;
            }
            // Boxes move only when pulled, so a box is followed by its cell.
            last_box = Some(player);
        }
        player = next;
        if boxes.and(&targets).is_empty() {
            let score = switches as u64 * displacement(&dists, &boxes) as u64;
            if score > 0 && best.is_none_or(|(s, _, _)| score > s) {
                best = Some((score, boxes, player));
            }
        }
    }
    let (_, boxes, player) = best?;
    Some(Level::from_parts(w, h, walls, targets, boxes, player))
}

/// Sum over boxes of the push distance to the nearest target.
fn displacement(dists: &[[u16; CELLS]], boxes: &Bits) -> u32 {
    boxes
        .iter()
        .map(|b| {
            dists
                .iter()
                .map(|d| d[b as usize])
                .min()
                .unwrap_or(0)
                .min(1000) as u32
        })
        .sum()
}
