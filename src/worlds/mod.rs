//! The built-in environments, each a module of its own that carries what
//! it brings — rules and tasks, an [`Encoder`] for networks, a [`Guide`],
//! a rule-based [`Reflector`], demonstrations: [`sokoban`] and
//! [`gridworld`] (the smallest example of bringing your own environment;
//! `docs/environments.md`).
//!
//! This module is also the registry that turns a user's choice (`--env`)
//! into a type: [`SokobanWorld`] and [`GridWorld`] implement [`World`] for
//! the jobs, and [`with_world!`](crate::with_world) dispatches on the name.
//! The environments sit above the boundaries they implement (`env`,
//! `reflect`, `policy`) and `explore`'s `World`; nothing below names them.

pub mod gridworld;
pub mod sokoban;

use std::path::Path;
use std::sync::Arc;

use crate::env::{self, Observation};
use crate::explore::World;
use crate::policy::{Encoder, ExperienceGuide, GuidanceConfig, Guide};
use crate::reflect::{Reflector, ReflectorConfig};
use gridworld::{Grid, GridPlanes, GridReflector, Gridworld, GridworldConfig};
use sokoban::demos::demonstrations;
use sokoban::guide::SokobanGuide;
use sokoban::levels::read_level_file;
use sokoban::reflect::SokobanReflector;
use sokoban::solve::SolverConfig;
use sokoban::{Level, Sokoban, SokobanConfig, SokobanPlanes};

/// The names `--env` accepts.
pub const WORLDS: [&str; 2] = ["sokoban", "gridworld"];

/// Sokoban, where deadlocks do not end episodes (as in gym-sokoban).
#[derive(Debug, Clone, Copy, Default)]
pub struct SokobanWorld;

impl World for SokobanWorld {
    type Env = Sokoban;

    fn name(&self) -> &str {
        crate::worlds::sokoban::NAME
    }

    /// Every method's episodes end where the environment detects a
    /// deadlock (dead square, frozen boxes): the same termination for
    /// exploration, evaluation, GRPO and RFT.
    fn make_env(&self, max_steps: usize) -> env::Result<Sokoban> {
        Ok(Sokoban::with_config(SokobanConfig {
            max_steps: max_steps.min(u16::MAX as usize) as u16,
            end_on_deadlock: true,
        }))
    }

    fn encoder(&self) -> Arc<dyn Encoder> {
        Arc::new(SokobanPlanes)
    }

    fn guide(&self, config: &GuidanceConfig) -> Arc<dyn Guide> {
        Arc::new(SokobanGuide::new(config.clone()))
    }

    fn system_prompt(&self) -> &'static str {
        sokoban::SYSTEM_PROMPT
    }

    fn reflector(&self, config: &ReflectorConfig) -> Box<dyn Reflector> {
        Box::new(SokobanReflector::new(config.clone()))
    }

    fn read_tasks(&self, path: &Path) -> env::Result<Vec<Level>> {
        read_level_file(path)
    }

    /// The solver's solutions, `effort` nodes per level at most.
    fn demonstrations(
        &self,
        tasks: &[Level],
        max_steps: usize,
        effort: u64,
    ) -> env::Result<(Vec<(Observation, usize)>, usize)> {
        let solver = SolverConfig {
            max_nodes: effort,
            ..SolverConfig::default()
        };
        let d = demonstrations(tasks, max_steps.min(u16::MAX as usize) as u16, &solver)?;
        Ok((d.pairs, d.unsolved))
    }

    /// The oracle's solver (searches and the push states they expanded) and
    /// the lookahead guide's simulated moves; 0 for the default reflector.
    fn consulted(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("solver_searches", sokoban::solve::solver_searches()),
            ("solver_nodes", sokoban::solve::solver_nodes()),
            ("lookahead_moves", sokoban::guide::lookahead_steps()),
        ]
    }
}

/// The gridworld with traps.
#[derive(Debug, Clone, Copy, Default)]
pub struct GridWorld;

impl World for GridWorld {
    type Env = Gridworld;

    fn name(&self) -> &str {
        "gridworld"
    }

    fn make_env(&self, max_steps: usize) -> env::Result<Gridworld> {
        Ok(Gridworld::with_config(GridworldConfig {
            max_steps: max_steps.min(u16::MAX as usize) as u16,
        }))
    }

    fn encoder(&self) -> Arc<dyn Encoder> {
        Arc::new(GridPlanes)
    }

    /// The gridworld's guide is the generic one: exclude the critical move
    /// at tau, favour the suggested ones.
    fn guide(&self, config: &GuidanceConfig) -> Arc<dyn Guide> {
        Arc::new(ExperienceGuide {
            config: config.clone(),
        })
    }

    fn system_prompt(&self) -> &'static str {
        gridworld::SYSTEM_PROMPT
    }

    fn reflector(&self, _config: &ReflectorConfig) -> Box<dyn Reflector> {
        Box::new(GridReflector)
    }

    fn read_tasks(&self, path: &Path) -> env::Result<Vec<Grid>> {
        gridworld::read_grid_file(path)
    }

    /// Shortest paths avoiding traps (`effort` is not used).
    fn demonstrations(
        &self,
        tasks: &[Grid],
        max_steps: usize,
        _effort: u64,
    ) -> env::Result<(Vec<(Observation, usize)>, usize)> {
        let pairs = gridworld::demonstrations(tasks, max_steps.min(u16::MAX as usize) as u16);
        let unsolved = tasks
            .iter()
            .filter(|g| gridworld::shortest_path(g).is_none())
            .count();
        Ok((pairs, unsolved))
    }
}

/// The built-in world whose encoder is `encoder` (a model's manifest
/// names its encoder).
pub fn world_of_encoder(encoder: &str) -> Option<&'static str> {
    match encoder {
        SokobanPlanes::NAME => Some("sokoban"),
        GridPlanes::NAME => Some("gridworld"),
        _ => None,
    }
}

/// Runs `$body` with `$world` bound to the built-in world named `$name`;
/// evaluates to `Err` naming the choices for an unknown name.
#[macro_export]
macro_rules! with_world {
    ($name:expr, |$world:ident| $body:expr) => {
        match $name {
            "sokoban" => {
                let $world = $crate::worlds::SokobanWorld;
                Ok($body)
            }
            "gridworld" => {
                let $world = $crate::worlds::GridWorld;
                Ok($body)
            }
            other => Err(format!(
                "unknown environment `{other}` (choose one of: {})",
                $crate::worlds::WORLDS.join(", ")
            )),
        }
    };
}
