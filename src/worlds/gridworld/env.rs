//! The environment itself: the rules of a gridworld episode behind the
//! [`Env`] boundary. Start here to write your own.

use std::borrow::Cow;
use std::sync::OnceLock;

use super::*;
use crate::env::{ActionSpace, Env, EnvError, Observation, Result, Status, Transition};

/// Settings of a gridworld episode.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GridworldConfig {
    /// Steps after which the episode ends unsolved ([`Status::StepLimit`]).
    pub max_steps: u16,
}

impl Default for GridworldConfig {
    fn default() -> Self {
        GridworldConfig { max_steps: 40 }
    }
}

/// A gridworld episode on one grid.
#[derive(Debug, Clone)]
pub struct Gridworld {
    pub(super) grid: Grid,
    pub(super) config: GridworldConfig,
    pub(super) agent: (usize, usize),
    pub(super) steps: usize,
    pub(super) status: Status,
}

impl Gridworld {
    /// A new episode at the grid's start.
    pub fn new(grid: Grid, config: GridworldConfig) -> Gridworld {
        Gridworld {
            agent: grid.start,
            grid,
            config,
            steps: 0,
            status: Status::Running,
        }
    }

    /// An episode on a two-cell placeholder grid, for callers that
    /// [`Env::reset`] to their task before use (a fresh environment for the
    /// generic jobs).
    pub fn with_config(config: GridworldConfig) -> Gridworld {
        static PLACEHOLDER: OnceLock<Grid> = OnceLock::new();
        let grid = PLACEHOLDER.get_or_init(|| {
            parse_grids("####\n#@G#\n####", "placeholder")
                .expect("the placeholder grid parses")
                .remove(0)
        });
        Gridworld::new(grid.clone(), config)
    }

    /// The grid being played.
    pub fn grid(&self) -> &Grid {
        &self.grid
    }

    /// The settings.
    pub fn config(&self) -> &GridworldConfig {
        &self.config
    }

    /// The agent as (row, column).
    pub fn agent(&self) -> (usize, usize) {
        self.agent
    }

    /// The board as text with the agent drawn (see the module docs).
    pub fn render_text(&self) -> String {
        self.grid.render(self.agent)
    }

    /// Take action `action` (an index `< 4`).
    ///
    /// # Errors
    /// [`EnvError::InvalidAction`] for an index out of range,
    /// [`EnvError::EpisodeOver`] after the episode ended.
    pub fn act(&mut self, action: usize) -> Result<Transition> {
        let Some(&dir) = DIR_NAMES.get(action) else {
            return Err(EnvError::InvalidAction {
                env: NAME.into(),
                action: action.to_string(),
                message: "this environment has 4 actions (0..4: up, down, left, right)".into(),
            });
        };
        if self.status.is_terminal() {
            return Err(EnvError::EpisodeOver {
                status: self.status,
            });
        }
        self.steps += 1;
        let mut reward = REWARD_STEP;
        let mut flags: Vec<Cow<'static, str>> = Vec::new();
        let mut mistakes: Vec<Cow<'static, str>> = Vec::new();
        let target = self
            .grid
            .neighbour(self.agent, action)
            .filter(|&p| self.grid.cell(p) != Cell::Wall);
        let mut feedback = match target {
            None => {
                flags.push(Cow::Borrowed(FLAG_BUMPED_WALL));
                format!("tried to move {dir}: blocked by a wall")
            }
            Some(p) => {
                self.agent = p;
                flags.push(Cow::Borrowed(FLAG_MOVED));
                match self.grid.cell(p) {
                    Cell::Trap => {
                        flags.push(Cow::Borrowed(FLAG_FELL_INTO_TRAP));
                        mistakes.push(Cow::Borrowed(FLAG_FELL_INTO_TRAP));
                        reward += REWARD_TRAP;
                        self.status = Status::Unsolvable;
                        format!(
                            "moved {dir} into a trap at row {}, column {}: episode lost",
                            p.0, p.1
                        )
                    }
                    Cell::Goal => {
                        flags.push(Cow::Borrowed(FLAG_REACHED_GOAL));
                        reward += REWARD_GOAL;
                        self.status = Status::Solved;
                        format!("moved {dir} and reached the goal")
                    }
                    Cell::Floor | Cell::Wall => format!("moved {dir}"),
                }
            }
        };
        if self.status == Status::Running && self.steps >= self.config.max_steps as usize {
            self.status = Status::StepLimit;
            flags.push(Cow::Borrowed(FLAG_STEP_LIMIT));
            feedback.push_str(&format!(
                "; step limit of {} reached",
                self.config.max_steps
            ));
        }
        Ok(Transition {
            reward,
            status: self.status,
            feedback,
            flags,
            mistakes,
            info: None,
        })
    }

    /// The observation: the board as text and `[agent_row, agent_col,
    /// steps]` (steps saturate at 255).
    pub fn observation(&self) -> Observation {
        let steps = u8::try_from(self.steps).unwrap_or(u8::MAX);
        Observation {
            text: self.render_text(),
            state: Some(vec![self.agent.0 as u8, self.agent.1 as u8, steps]),
        }
    }
}

/// The action space: `up`, `down`, `left`, `right` (indices 0..4).
pub fn action_space() -> &'static ActionSpace {
    static SPACE: OnceLock<ActionSpace> = OnceLock::new();
    SPACE.get_or_init(|| ActionSpace::choice(&DIR_NAMES))
}

/// The index of an action name (`up`, `down`, `left`, `right`).
pub fn action_index(name: &str) -> Option<usize> {
    DIR_NAMES.iter().position(|n| *n == name)
}

impl Env for Gridworld {
    type Task = Grid;
    /// Replay only: there are no snapshots.
    type Snapshot = ();

    fn name(&self) -> &str {
        NAME
    }

    fn task_id(&self, task: &Grid) -> String {
        task.task_id()
    }

    fn action_space(&self) -> &ActionSpace {
        action_space()
    }

    /// The gridworld is deterministic: the seed is not used.
    fn reset(&mut self, task: &Grid, _seed: u64) -> Result<Observation> {
        *self = Gridworld::new(task.clone(), self.config.clone());
        Ok(self.observation())
    }

    fn observe(&self) -> Observation {
        self.observation()
    }

    fn step(&mut self, action: &str) -> Result<Transition> {
        let Some(a) = action_index(action) else {
            return Err(EnvError::InvalidAction {
                env: NAME.into(),
                action: action.into(),
                message: "expected one of up, down, left, right".into(),
            });
        };
        self.act(a)
    }

    /// Always `None`: rollback resets and replays, on purpose.
    fn snapshot(&mut self) -> Result<Option<()>> {
        Ok(None)
    }

    fn restore(&mut self, _snapshot: &()) -> Result<()> {
        Err(EnvError::Failed {
            env: NAME.into(),
            message: "the gridworld has no snapshots; roll back by reset and replay".into(),
        })
    }

    fn status(&self) -> Status {
        self.status
    }

    fn steps(&self) -> usize {
        self.steps
    }
}
