//! A gridworld with traps: the smallest "bring your own environment".
//!
//! Rules: the agent walks a board of at most 10×10 cells with four actions,
//! `up`, `down`, `left`, `right` (indices 0..4). Moving into a wall (or off
//! the board) leaves it in place (flag `bumped_wall`); moving onto floor
//! moves it (`moved`); moving onto a trap ends the episode lost
//! ([`Status::Unsolvable`](crate::env::Status::Unsolvable); flags `moved`, `fell_into_trap`, and
//! `fell_into_trap` is the one mistake); moving onto the goal solves it
//! ([`Status::Solved`](crate::env::Status::Solved); `moved`, `reached_goal`). After
//! [`GridworldConfig::max_steps`] steps the episode is truncated
//! ([`Status::StepLimit`](crate::env::Status::StepLimit), `step_limit`). Rewards: −0.05 per step, +1 on
//! reaching the goal, −1 on falling into a trap. Observations are the board
//! as text in the alphabet `#` wall, ` ` floor, `^` trap, `G` goal, `@`
//! agent (files may also write floor as `_`; a row of nothing but floor is
//! written with `_`, since a blank line separates grids), plus the bytes
//! `[agent_row, agent_col, steps]`. Rows and columns count from 0 at the
//! top left.
//!
//! Why it exists: it is not Sokoban, and a reader can see all of it in one
//! screen, so it proves that nothing above the [`Env`](crate::env::Env) boundary assumes a
//! particular environment. It brings what an environment brings: rules
//! ([`Gridworld`]), tasks ([`Grid`], [`parse_grids`], [`generate`]),
//! demonstrations ([`demonstrations`]), an encoding for networks
//! ([`GridPlanes`]) and a rule-based reflector ([`GridReflector`]). It has
//! no native snapshots on purpose ([`Env::snapshot`](crate::env::Env::snapshot) returns `None`), so
//! the explorer's rollback by reset + replay is exercised. It is
//! deterministic: the reset seed is not used.
//!
//! | file | what |
//! | --- | --- |
//! | `env.rs` | the environment itself: [`Gridworld`] behind the `Env` boundary |
//! | `grid.rs` | tasks: [`Grid`], its text form, grid files |
//! | `generator.rs` | the seeded generator, shortest paths, demonstrations |
//! | `encode.rs` | the encoding for networks: [`GridPlanes`] |
//! | `reflect.rs` | the rule-based reflector: [`GridReflector`] |

mod encode;
mod env;
mod generator;
mod grid;
mod reflect;
#[cfg(test)]
mod tests;

pub use encode::{GridPlanes, encode_text_planes};
pub use env::{Gridworld, GridworldConfig, action_index, action_space};
pub use generator::{GridworldGenConfig, demonstrations, generate, shortest_path};
pub use grid::{Cell, Grid, grids_to_text, parse_grids, read_grid_file, write_grid_file};
pub use reflect::GridReflector;

/// The environment's name at the boundary.
pub const NAME: &str = "gridworld";

/// What an LLM trained on gridworld data is told: the rules, the symbols,
/// the moves (the default system prompt of `leafe export --env gridworld`).
pub const SYSTEM_PROMPT: &str = "You are walking a grid. Reach the goal (G) with the agent (@). \
Symbols: # wall, space (or _) floor, ^ trap, G goal, @ agent. \
Stepping onto a trap loses the episode; walking into a wall wastes a step. \
Reply with one move: up, down, left or right.";

/// The largest board, in rows and in columns.
pub const MAX_SIZE: usize = 10;

/// Reward of every step.
pub const REWARD_STEP: f32 = -0.05;
/// Reward for reaching the goal (on top of the step's).
pub const REWARD_GOAL: f32 = 1.0;
/// Reward for falling into a trap (on top of the step's).
pub const REWARD_TRAP: f32 = -1.0;

/// Action indices.
pub const UP: usize = 0;
pub const DOWN: usize = 1;
pub const LEFT: usize = 2;
pub const RIGHT: usize = 3;

/// Action names, by index.
pub const DIR_NAMES: [&str; 4] = ["up", "down", "left", "right"];

/// Step flags.
pub const FLAG_MOVED: &str = "moved";
pub const FLAG_BUMPED_WALL: &str = "bumped_wall";
pub const FLAG_FELL_INTO_TRAP: &str = "fell_into_trap";
pub const FLAG_REACHED_GOAL: &str = "reached_goal";
pub const FLAG_STEP_LIMIT: &str = "step_limit";

/// Channels of [`GridPlanes`], in order. Every cell of the padded board is
/// one-hot over these channels; cells outside the grid are walls.
pub const CHANNELS: [&str; 5] = ["wall", "floor", "trap", "goal", "agent"];

/// The shortest path (in steps) of a generated grid is at least this long.
pub const MIN_PATH: usize = 4;
