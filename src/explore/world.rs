//! What an environment brings to leafe's jobs, in one place: how to make
//! one, how a network reads its observations, how an experience guides a
//! network on it, and its rule-based reflector. Jobs (explore, evaluate,
//! GRPO, pretrain) are generic over a [`World`]; the built-in worlds are
//! named only where a user picks one (the CLI and the experiment).

use std::path::Path;
use std::sync::Arc;

use crate::env::{self, Env, Observation};
use crate::policy::{Encoder, GuidanceConfig, Guide};
use crate::reflect::{Reflector, ReflectorConfig};

/// An environment family and what it brings.
pub trait World: Send + Sync {
    /// The environment.
    type Env: Env;

    /// The environment's name (as [`Env::name`]).
    fn name(&self) -> &str;

    /// A fresh environment whose episodes end after `max_steps` steps
    /// (truncated), to be reset to a task before use.
    ///
    /// # Errors
    /// When one cannot be made (an external process that does not start).
    fn make_env(&self, max_steps: usize) -> env::Result<Self::Env>;

    /// How a network reads its observations.
    fn encoder(&self) -> Arc<dyn Encoder>;

    /// How an experience acts on a network's action distribution.
    fn guide(&self, config: &GuidanceConfig) -> Arc<dyn Guide>;

    /// What an LLM is told about the environment (rules, symbols, how to
    /// answer): the default system prompt of exported datasets.
    fn system_prompt(&self) -> &'static str;

    /// Its rule-based reflector.
    fn reflector(&self, config: &ReflectorConfig) -> Box<dyn Reflector>;

    /// Reads a task file (task index = position in the file).
    ///
    /// # Errors
    /// A file that cannot be read or parsed, naming the line.
    fn read_tasks(&self, path: &Path) -> env::Result<Vec<<Self::Env as Env>::Task>>;

    /// Demonstrations to pretrain a network on: (observation, action index)
    /// pairs of solved episodes of `tasks`, at most `max_steps` steps each,
    /// and the number of tasks left without one. `effort` bounds the search
    /// where a planner makes them (Sokoban: solver nodes per level).
    ///
    /// # Errors
    /// The environment's.
    fn demonstrations(
        &self,
        tasks: &[<Self::Env as Env>::Task],
        max_steps: usize,
        effort: u64,
    ) -> env::Result<(Vec<(Observation, usize)>, usize)>;

    /// What the world's reflector and guide have consulted besides the
    /// environment so far on the calling thread (an oracle's solver searches
    /// and simulated moves), as counters by name. Exploration jobs record the
    /// increase per chunk in its commit marker (`meta.consulted`), where it
    /// is charged to the method's budget. Default: nothing (a reflector and
    /// guide that read only the trajectory and the feedback).
    fn consulted(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
}
