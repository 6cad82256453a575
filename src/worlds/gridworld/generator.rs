//! Tasks and demonstrations: the seeded grid generator, shortest paths,
//! and the demonstrations behaviour cloning fits.

use std::collections::{HashSet, VecDeque};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::env::{EnvError, Observation, Result};

/// Breadth-first search from the start to the goal through floor cells
/// (never walls or traps). Returns the actions of a shortest path, trying
/// directions in action order, so the path is deterministic; `None` when
/// the goal cannot be reached.
pub fn shortest_path(grid: &Grid) -> Option<Vec<usize>> {
    let (w, h) = (grid.width, grid.height);
    let index = |(r, c): (usize, usize)| r * w + c;
    // The cell each visited cell was reached from, and by which action.
    let mut prev: Vec<Option<((usize, usize), usize)>> = vec![None; w * h];
    let mut seen = vec![false; w * h];
    let mut queue = VecDeque::from([grid.start]);
    seen[index(grid.start)] = true;
    while let Some(p) = queue.pop_front() {
        if p == grid.goal {
            let mut actions = Vec::new();
            let mut at = p;
            while let Some((from, a)) = prev[index(at)] {
                actions.push(a);
                at = from;
            }
            actions.reverse();
            return Some(actions);
        }
        for a in 0..4 {
            let Some(q) = grid.neighbour(p, a) else {
                continue;
            };
            if seen[index(q)] || matches!(grid.cell(q), Cell::Wall | Cell::Trap) {
                continue;
            }
            seen[index(q)] = true;
            prev[index(q)] = Some((p, a));
            queue.push_back(q);
        }
    }
    None
}

/// Demonstrations for pretraining: each grid's [`shortest_path`] replayed
/// from the start, as (observation before the action, action index) pairs,
/// grid after grid, until the episode ends (solved, or the step limit).
/// Grids whose goal cannot be reached contribute nothing.
pub fn demonstrations(grids: &[Grid], max_steps: u16) -> Vec<(Observation, usize)> {
    let mut pairs = Vec::new();
    for grid in grids {
        let Some(path) = shortest_path(grid) else {
            continue;
        };
        let mut env = Gridworld::new(grid.clone(), GridworldConfig { max_steps });
        for a in path {
            pairs.push((env.observation(), a));
            match env.act(a) {
                Ok(t) if !t.status.is_terminal() => {}
                _ => break,
            }
        }
    }
    pairs
}

/// Settings of the seeded grid generator.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GridworldGenConfig {
    /// Columns, border walls included (3..=10).
    pub width: usize,
    /// Rows, border walls included (3..=10).
    pub height: usize,
    /// Traps per grid (at least 1: mistakes need traps).
    pub traps: usize,
    /// Probability that an inner cell is a wall, in [0, 1).
    pub wall_density: f64,
    /// Seed of the generator: the same settings give the same grids.
    pub seed: u64,
    /// Grids to generate (distinct).
    pub count: usize,
}

impl Default for GridworldGenConfig {
    fn default() -> Self {
        GridworldGenConfig {
            width: 6,
            height: 6,
            traps: 3,
            wall_density: 0.15,
            seed: 0,
            count: 100,
        }
    }
}

impl GridworldGenConfig {
    /// Checks every field's range.
    ///
    /// # Errors
    /// [`EnvError::InvalidConfig`] naming the first field out of range.
    pub fn validate(&self) -> Result<()> {
        let invalid = |field, message: String| Err(EnvError::InvalidConfig { field, message });
        for (field, v) in [("width", self.width), ("height", self.height)] {
            if !(3..=MAX_SIZE).contains(&v) {
                return invalid(field, format!("{v}: must be in 3..={MAX_SIZE}"));
            }
        }
        let inner = (self.width - 2) * (self.height - 2);
        if self.traps == 0 || self.traps + 2 > inner {
            return invalid(
                "traps",
                format!(
                    "{}: must be at least 1 and leave room for the start and the goal in the {inner} inner cells",
                    self.traps
                ),
            );
        }
        if !(0.0..1.0).contains(&self.wall_density) {
            return invalid(
                "wall_density",
                format!("{}: must be in [0, 1)", self.wall_density),
            );
        }
        Ok(())
    }
}

/// Generates `count` distinct grids: border walls, random inner walls and
/// traps, start and goal on distinct floor cells. A grid is kept only when
/// the goal is reachable avoiding traps by a shortest path of at least
/// [`MIN_PATH`] steps, and a trap lies next to that path (so mistakes
/// happen). Deterministic for a seed.
///
/// # Errors
/// [`EnvError::InvalidConfig`] for settings out of range;
/// [`EnvError::Generate`] when `count * 1000` attempts did not give enough
/// grids.
pub fn generate(config: &GridworldGenConfig) -> Result<Vec<Grid>> {
    config.validate()?;
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut grids = Vec::with_capacity(config.count);
    let mut seen = HashSet::new();
    let max_attempts = config.count.saturating_mul(1000);
    let mut attempts = 0usize;
    while grids.len() < config.count {
        if attempts >= max_attempts {
            return Err(EnvError::Generate {
                message: format!(
                    "only {} of {} grids ({}x{}, {} traps, wall density {}) after {attempts} attempts; make the grid larger or lower the wall density",
                    grids.len(),
                    config.count,
                    config.width,
                    config.height,
                    config.traps,
                    config.wall_density
                ),
            });
        }
        attempts += 1;
        if let Some(grid) = attempt(config, &mut rng)
            && seen.insert(grid.to_text())
        {
            grids.push(grid);
        }
    }
    tracing::debug!(count = grids.len(), attempts, "generated gridworld grids");
    Ok(grids)
}

/// One random grid, if it passes the generator's checks.
pub(super) fn attempt(config: &GridworldGenConfig, rng: &mut ChaCha8Rng) -> Option<Grid> {
    let (w, h) = (config.width, config.height);
    let mut cells = vec![Cell::Wall; w * h];
    let mut floor = Vec::new();
    for r in 1..h - 1 {
        for c in 1..w - 1 {
            if rng.random::<f64>() >= config.wall_density {
                cells[r * w + c] = Cell::Floor;
                floor.push((r, c));
            }
        }
    }
    let picks = config.traps + 2;
    if floor.len() < picks {
        return None;
    }
    // Partial Fisher-Yates: the first `picks` cells are a random sample.
    for i in 0..picks {
        let j = rng.random_range(i..floor.len());
        floor.swap(i, j);
    }
    let (start, goal) = (floor[0], floor[1]);
    cells[goal.0 * w + goal.1] = Cell::Goal;
    for &(r, c) in &floor[2..picks] {
        cells[r * w + c] = Cell::Trap;
    }
    let grid = Grid {
        width: w,
        height: h,
        cells,
        start,
        goal,
    };
    let path = shortest_path(&grid)?;
    if path.len() < MIN_PATH {
        return None;
    }
    // Cells the agent stands on along the path, before the goal.
    let mut at = grid.start;
    let mut on_path = vec![at];
    for &a in &path[..path.len() - 1] {
        at = grid.neighbour(at, a)?;
        on_path.push(at);
    }
    let trap_beside = on_path.iter().any(|&p| {
        (0..4).any(|a| {
            grid.neighbour(p, a)
                .is_some_and(|q| grid.cell(q) == Cell::Trap)
        })
    });
    trap_beside.then_some(grid)
}
