//! Demonstrations for pretraining a Sokoban policy: the solver's solution of
//! each level, replayed, as (observation, action) pairs.

use super::solve::{SolverConfig, solve};
use super::{Level, Sokoban, SokobanConfig};
use crate::env::{Env, Observation, Result};

/// What [`demonstrations`] produced.
#[derive(Debug, Clone, Default)]
pub struct Demonstrations {
    /// (observation before the action, action index), level after level.
    pub pairs: Vec<(Observation, usize)>,
    /// Levels the solver could not solve within its limit (skipped).
    pub unsolved: usize,
}

/// Replays the solver's solution of each level and records every
/// (observation, action) until the episode ends (solved, or the step limit).
///
/// # Errors
/// The environment's, should a solution step fail.
pub fn demonstrations(
    levels: &[Level],
    max_steps: u16,
    solver: &SolverConfig,
) -> Result<Demonstrations> {
    let mut out = Demonstrations::default();
    for level in levels {
        let solution = solve(level, solver);
        if !solution.solved() {
            out.unsolved += 1;
            continue;
        }
        let mut env = Sokoban::new(
            level.clone(),
            SokobanConfig {
                max_steps,
                end_on_deadlock: false,
            },
        );
        for a in solution.actions() {
            out.pairs.push((env.observe(), a));
            if env.act(a)?.status.is_terminal() {
                break;
            }
        }
    }
    Ok(out)
}
