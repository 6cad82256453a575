//! A gridworld with traps: the smallest "bring your own environment".
//!
//! Rules: the agent walks a board of at most 10×10 cells with four actions,
//! `up`, `down`, `left`, `right` (indices 0..4). Moving into a wall (or off
//! the board) leaves it in place (flag `bumped_wall`); moving onto floor
//! moves it (`moved`); moving onto a trap ends the episode lost
//! ([`Status::Unsolvable`]; flags `moved`, `fell_into_trap`, and
//! `fell_into_trap` is the one mistake); moving onto the goal solves it
//! ([`Status::Solved`]; `moved`, `reached_goal`). After
//! [`GridworldConfig::max_steps`] steps the episode is truncated
//! ([`Status::StepLimit`], `step_limit`). Rewards: −0.05 per step, +1 on
//! reaching the goal, −1 on falling into a trap. Observations are the board
//! as text in the alphabet `#` wall, ` ` floor, `^` trap, `G` goal, `@`
//! agent (files may also write floor as `_`; a row of nothing but floor is
//! written with `_`, since a blank line separates grids), plus the bytes
//! `[agent_row, agent_col, steps]`. Rows and columns count from 0 at the
//! top left.
//!
//! Why it exists: it is not Sokoban, and a reader can see all of it in one
//! screen, so it proves that nothing above the [`Env`] boundary assumes a
//! particular environment. It brings what an environment brings: rules
//! ([`Gridworld`]), tasks ([`Grid`], [`parse_grids`], [`generate`]),
//! demonstrations ([`demonstrations`]), an encoding for networks
//! ([`GridPlanes`]) and a rule-based reflector ([`GridReflector`]). It has
//! no native snapshots on purpose ([`Env::snapshot`] returns `None`), so
//! the explorer's rollback by reset + replay is exercised. It is
//! deterministic: the reset seed is not used.

use std::borrow::Cow;
use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::path::Path;
use std::sync::OnceLock;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::env::{ActionSpace, Env, EnvError, Observation, Result, Status, Step, Transition};
use crate::policy::{self, Encoder, PolicyError};
use crate::reflect::{Experience, FeedbackReflector, Reflector};

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

/// One cell of a grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cell {
    Wall,
    Floor,
    Trap,
    Goal,
}

impl Cell {
    /// The cell's symbol in the text alphabet.
    pub fn symbol(self) -> char {
        match self {
            Cell::Wall => '#',
            Cell::Floor => ' ',
            Cell::Trap => '^',
            Cell::Goal => 'G',
        }
    }
}

/// A task: the board (walls, floor, traps, one goal) and the agent's start.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Grid {
    width: usize,
    height: usize,
    /// Row major, `height * width`.
    cells: Vec<Cell>,
    start: (usize, usize),
    goal: (usize, usize),
}

impl Grid {
    /// Columns.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Rows.
    pub fn height(&self) -> usize {
        self.height
    }

    /// The agent's start as (row, column).
    pub fn start(&self) -> (usize, usize) {
        self.start
    }

    /// The goal as (row, column).
    pub fn goal(&self) -> (usize, usize) {
        self.goal
    }

    /// The cell at (row, column); outside the board, a wall. The start is
    /// floor.
    pub fn cell(&self, (row, col): (usize, usize)) -> Cell {
        if row < self.height && col < self.width {
            self.cells[row * self.width + col]
        } else {
            Cell::Wall
        }
    }

    /// The traps as (row, column), row major.
    pub fn traps(&self) -> Vec<(usize, usize)> {
        (0..self.height)
            .flat_map(|r| (0..self.width).map(move |c| (r, c)))
            .filter(|&p| self.cell(p) == Cell::Trap)
            .collect()
    }

    /// The cell one step from `pos` in direction `action`, if it is on the
    /// board.
    pub fn neighbour(&self, pos: (usize, usize), action: usize) -> Option<(usize, usize)> {
        let (r, c) = offset(pos, action)?;
        (r < self.height && c < self.width).then_some((r, c))
    }

    /// The grid as text with the agent at `agent`, rows joined by `\n`, no
    /// trailing newline.
    pub fn render(&self, agent: (usize, usize)) -> String {
        let mut s = String::with_capacity(self.height * (self.width + 1));
        for r in 0..self.height {
            if r > 0 {
                s.push('\n');
            }
            let row: String = (0..self.width)
                .map(|c| {
                    if (r, c) == agent {
                        '@'
                    } else {
                        self.cell((r, c)).symbol()
                    }
                })
                .collect();
            // A blank line separates grids in a file: keep this row visible.
            if row.chars().all(|ch| ch == ' ') {
                s.extend(std::iter::repeat_n('_', self.width));
            } else {
                s.push_str(&row);
            }
        }
        s
    }

    /// The grid as text with the agent at its start; parses back to an
    /// equal grid, and equals the observation text after a reset.
    pub fn to_text(&self) -> String {
        self.render(self.start)
    }

    /// A stable task id: 16 hex digits of the FNV-1a 64-bit hash of
    /// [`Grid::to_text`], independent of the file the grid came from.
    pub fn task_id(&self) -> String {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in self.to_text().bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        format!("{h:016x}")
    }

    /// A grid from its rows; on error, the 0-based row at fault and what is
    /// wrong.
    fn from_rows(rows: &[&str]) -> std::result::Result<Grid, (usize, String)> {
        if rows.len() > MAX_SIZE {
            return Err((
                MAX_SIZE,
                format!("{} rows: a grid has at most {MAX_SIZE}", rows.len()),
            ));
        }
        let width = rows[0].chars().count();
        let mut cells = Vec::with_capacity(rows.len() * width);
        let (mut start, mut goal) = (None, None);
        for (r, row) in rows.iter().enumerate() {
            let n = row.chars().count();
            if n > MAX_SIZE {
                return Err((r, format!("{n} columns: a grid has at most {MAX_SIZE}")));
            }
            if n != width {
                return Err((
                    r,
                    format!(
                        "ragged row of {n} cells, the first row has {width} (rows must be equally wide)"
                    ),
                ));
            }
            for (c, ch) in row.chars().enumerate() {
                let cell = match ch {
                    '#' => Cell::Wall,
                    ' ' | '_' => Cell::Floor,
                    '^' => Cell::Trap,
                    'G' => {
                        if goal.replace((r, c)).is_some() {
                            return Err((r, "a second `G`: a grid has exactly one goal".into()));
                        }
                        Cell::Goal
                    }
                    '@' => {
                        if start.replace((r, c)).is_some() {
                            return Err((r, "a second `@`: a grid has exactly one agent".into()));
                        }
                        Cell::Floor
                    }
                    other => {
                        return Err((
                            r,
                            format!(
                                "unknown symbol {other:?} at column {c} (expected `#`, ` `, `_`, `^`, `G` or `@`)"
                            ),
                        ));
                    }
                };
                cells.push(cell);
            }
        }
        let start = start.ok_or((0, "no `@`: a grid needs the agent's start".to_string()))?;
        let goal = goal.ok_or((0, "no `G`: a grid needs a goal".to_string()))?;
        Ok(Grid {
            width,
            height: rows.len(),
            cells,
            start,
            goal,
        })
    }
}

impl fmt::Display for Grid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

impl fmt::Debug for Grid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Grid {}x{} {}", self.width, self.height, self.task_id())?;
        f.write_str(&self.to_text())
    }
}

/// (row, column) one step in direction `action`, unless it leaves the
/// top or left edge.
fn offset((r, c): (usize, usize), action: usize) -> Option<(usize, usize)> {
    match action {
        UP => Some((r.checked_sub(1)?, c)),
        DOWN => Some((r + 1, c)),
        LEFT => Some((r, c.checked_sub(1)?)),
        RIGHT => Some((r, c + 1)),
        _ => None,
    }
}

/// Parses a file of grids separated by blank lines or `;` header lines (as
/// in Boxoban files). `source` names the input in errors.
///
/// # Errors
/// [`EnvError::Parse`] naming the grid and line for an unknown symbol, no
/// `@` or several, no `G` or several, ragged rows, more than 10 rows or
/// columns, a header with no grid; [`EnvError::NoLevels`] when there is no
/// grid at all.
pub fn parse_grids(text: &str, source: &str) -> Result<Vec<Grid>> {
    let mut grids = Vec::new();
    // Rows of the grid being read, with their 1-based line numbers.
    let mut rows: Vec<(usize, &str)> = Vec::new();
    // Line of a `;` header whose grid has not started yet.
    let mut header: Option<usize> = None;
    let finish =
        |grids: &mut Vec<Grid>, rows: &mut Vec<(usize, &str)>, header: &mut Option<usize>| {
            if rows.is_empty() {
                return match header.take() {
                    Some(line) => Err(EnvError::Parse {
                        file: source.to_string(),
                        level: grids.len(),
                        line,
                        message: "empty grid: a header with no grid".into(),
                    }),
                    None => Ok(()),
                };
            }
            let text: Vec<&str> = rows.iter().map(|(_, r)| *r).collect();
            let grid = Grid::from_rows(&text).map_err(|(row, message)| EnvError::Parse {
                file: source.to_string(),
                level: grids.len(),
                line: rows[row.min(rows.len() - 1)].0,
                message,
            })?;
            grids.push(grid);
            rows.clear();
            *header = None;
            Ok(())
        };
    for (i, raw) in text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.starts_with(';') {
            finish(&mut grids, &mut rows, &mut header)?;
            header = Some(i + 1);
        } else if line.trim().is_empty() {
            finish(&mut grids, &mut rows, &mut header)?;
        } else {
            rows.push((i + 1, line));
        }
    }
    finish(&mut grids, &mut rows, &mut header)?;
    if grids.is_empty() {
        return Err(EnvError::NoLevels {
            file: source.to_string(),
        });
    }
    Ok(grids)
}

/// The text of a grid file: `; i` headers, grids, blank lines.
pub fn grids_to_text(grids: &[Grid]) -> String {
    let mut s = String::new();
    for (i, grid) in grids.iter().enumerate() {
        s.push_str(&format!("; {i}\n{grid}\n\n"));
    }
    s
}

/// Reads and parses a grid file. Bytes that are not UTF-8 become U+FFFD and
/// are reported as unknown symbols.
///
/// # Errors
/// [`EnvError::Io`] when the file cannot be read, else as [`parse_grids`].
pub fn read_grid_file(path: impl AsRef<Path>) -> Result<Vec<Grid>> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|error| EnvError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    parse_grids(
        &String::from_utf8_lossy(&bytes),
        &path.display().to_string(),
    )
}

/// Writes `grids` as a grid file. The file appears whole: it is written
/// next to `path` under a temporary name and renamed into place.
///
/// # Errors
/// [`EnvError::Io`] when the file cannot be written.
pub fn write_grid_file(path: impl AsRef<Path>, grids: &[Grid]) -> Result<()> {
    let path = path.as_ref();
    let io = |error| EnvError::Io {
        path: path.to_path_buf(),
        error,
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, grids_to_text(grids)).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

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
    grid: Grid,
    config: GridworldConfig,
    agent: (usize, usize),
    steps: usize,
    status: Status,
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
fn attempt(config: &GridworldGenConfig, rng: &mut ChaCha8Rng) -> Option<Grid> {
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

/// Encodes an observation text into one-hot planes `[C, board, board]` with
/// `C = CHANNELS.len() = 5`, row major, channels in the order of
/// [`CHANNELS`]. Every cell has exactly one channel set; padding cells
/// (outside the text) are walls; the text sits in the top-left corner.
///
/// # Errors
/// [`EnvError::Encoding`] when `out.len() != 5 * board * board`, the text
/// is larger than the padding, or it holds an unknown symbol.
pub fn encode_text_planes(text: &str, board: usize, out: &mut [f32]) -> Result<()> {
    let symbol = |c| match c {
        '#' => Some(0),
        ' ' | '_' => Some(1),
        '^' => Some(2),
        'G' => Some(3),
        '@' => Some(4),
        _ => None,
    };
    policy::encode_symbol_planes(text, CHANNELS.len(), symbol, board, board, out)
        .map_err(|message| EnvError::Encoding { message })
}

/// The gridworld's encoding for networks: the one-hot planes of
/// [`encode_text_planes`], read from the observation text (so the store's
/// `observation` column trains the same network that acted).
#[derive(Debug, Clone, Copy, Default)]
pub struct GridPlanes;

impl GridPlanes {
    /// The encoder's name, recorded in model manifests.
    pub const NAME: &'static str = "gridworld-planes";
}

impl Encoder for GridPlanes {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn action_space(&self) -> &ActionSpace {
        action_space()
    }

    fn channels(&self) -> usize {
        CHANNELS.len()
    }

    fn encode(
        &self,
        observation: &Observation,
        board: usize,
        out: &mut [f32],
    ) -> policy::Result<()> {
        encode_text_planes(&observation.text, board, out).map_err(|e| PolicyError::Input {
            message: e.to_string(),
        })
    }
}

/// The gridworld's rule-based reflector. It reads only what any reflector
/// may read (observations, actions, feedback, flags), with no solver and no
/// lookahead:
///
/// - the first owned step flagged `fell_into_trap` is `tau` (category
///   `"trap"`, irreversible); the diagnosis says where the agent stood and
///   where the trap was (from the observation text before the step), and the
///   suggested actions are the other directions that, judged from that
///   text, lead to neither a wall nor a trap;
/// - else, at a failed end, [`FeedbackReflector`]'s verdict (a loop, or
///   the step limit);
/// - while running without a trap, and for solved episodes, `None`.
#[derive(Debug, Clone, Copy, Default)]
pub struct GridReflector;

impl GridReflector {
    /// The reflector's name in the store.
    pub const NAME: &'static str = "gridworld-rules";
    /// The category of a fall into a trap.
    pub const CATEGORY_TRAP: &'static str = "trap";
}

/// The agent's (row, column) in an observation text.
fn agent_in(text: &str) -> Option<(usize, usize)> {
    text.lines()
        .enumerate()
        .find_map(|(r, line)| line.chars().position(|c| c == '@').map(|c| (r, c)))
}

/// The symbol at (row, column) of an observation text, if inside it.
fn symbol_at(text: &str, (r, c): (usize, usize)) -> Option<char> {
    text.lines().nth(r)?.chars().nth(c)
}

impl Reflector for GridReflector {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn reflect(
        &self,
        steps: &[Step],
        now: &Observation,
        status: Status,
        min_tau: usize,
    ) -> Option<Experience> {
        let n = steps.len();
        if status == Status::Solved || min_tau >= n {
            return None;
        }
        let fell = |s: &Step| {
            s.transition
                .mistakes
                .iter()
                .any(|m| m == FLAG_FELL_INTO_TRAP)
        };
        let Some(k) = (min_tau..n).find(|&i| fell(&steps[i])) else {
            if status == Status::Running {
                return None;
            }
            return FeedbackReflector.reflect(steps, now, status, min_tau);
        };
        let s = &steps[k];
        let dir = s.action.as_str();
        let text = &s.observation.text;
        let agent = agent_in(text);
        let diagnosis = match (agent, action_index(dir)) {
            (Some(p), Some(a)) => match offset(p, a) {
                Some(t) => format!(
                    "at step {k} the agent at row {}, column {} moved {dir} into the trap at row {}, column {} and lost the episode",
                    p.0, p.1, t.0, t.1
                ),
                None => {
                    format!("at step {k} the agent moved {dir} into a trap and lost the episode")
                }
            },
            _ => format!(
                "at step {k} the agent moved {dir} into a trap and lost the episode ({})",
                s.transition.feedback
            ),
        };
        // Safe directions, judged from the text alone: off the text is wall.
        let suggested_actions = agent
            .map(|p| {
                DIR_NAMES
                    .iter()
                    .enumerate()
                    .filter(|&(_, name)| *name != dir)
                    .filter(|&(a, _)| {
                        offset(p, a)
                            .and_then(|q| symbol_at(text, q))
                            .is_some_and(|c| !matches!(c, '#' | '^'))
                    })
                    .map(|(_, name)| name.to_string())
                    .collect()
            })
            .unwrap_or_default();
        Some(Experience {
            trigger_step: n,
            tau: k,
            critical_action: Some(s.action.clone()),
            category: Self::CATEGORY_TRAP.to_string(),
            irreversible: true,
            diagnosis,
            fix: format!("at step {k} do not move {dir} (a trap is there); go around it"),
            suggested_actions,
            written_by: None,
            call: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::{Rollback, RollbackKind, replay, roll_back};

    /// Start (1,1); a trap at (1,3); the goal at (3,4), five steps away
    /// (down, down, right, right, right).
    const SMALL: &str = "\
######
#@ ^ #
# #  #
#   G#
######";

    fn small() -> Grid {
        parse_grids(SMALL, "small").unwrap().remove(0)
    }

    fn env(grid: &Grid) -> Gridworld {
        Gridworld::new(grid.clone(), GridworldConfig::default())
    }

    /// Plays `actions` from a reset and records the trajectory.
    fn play(env: &mut Gridworld, grid: &Grid, actions: &[&str]) -> Vec<Step> {
        env.reset(grid, 0).unwrap();
        actions
            .iter()
            .enumerate()
            .map(|(t, a)| {
                let observation = env.observe();
                let transition = env.step(a).unwrap();
                Step {
                    t,
                    observation,
                    action: a.to_string(),
                    action_index: action_index(a),
                    log_prob: 0.0,
                    call: None,
                    transition,
                }
            })
            .collect()
    }

    fn parse_error(text: &str) -> (usize, usize, String) {
        match parse_grids(text, "f.txt") {
            Err(EnvError::Parse {
                file,
                level,
                line,
                message,
            }) => {
                assert_eq!(file, "f.txt");
                (level, line, message)
            }
            other => panic!("expected a parse error, got {other:?}"),
        }
    }

    #[test]
    fn parse_errors_name_the_grid_and_line() {
        let (level, line, msg) = parse_error("; 0\n#@G#\n\n; 1\n####\n#@x#\n#G #");
        assert_eq!((level, line), (1, 6));
        assert!(msg.contains("'x'"), "{msg}");
        let (_, line, msg) = parse_error("####\n#  #\n#G #");
        assert_eq!(line, 1);
        assert!(msg.contains("no `@`"), "{msg}");
        let (_, line, msg) = parse_error("#@@#\n#G #");
        assert_eq!(line, 1);
        assert!(msg.contains("second `@`"), "{msg}");
        let (_, line, msg) = parse_error("\n\n#@ #\n#  #");
        assert_eq!(line, 3);
        assert!(msg.contains("no `G`"), "{msg}");
        let (_, line, msg) = parse_error("#@G#\n#  #\n# #");
        assert_eq!(line, 3);
        assert!(msg.contains("ragged"), "{msg}");
        let (_, line, msg) = parse_error("#@G        #");
        assert_eq!(line, 1);
        assert!(msg.contains("12 columns"), "{msg}");
        let tall = std::iter::once("@G")
            .chain(std::iter::repeat_n("__", 10))
            .collect::<Vec<_>>()
            .join("\n");
        let (_, line, msg) = parse_error(&tall);
        assert_eq!(line, 11);
        assert!(msg.contains("11 rows"), "{msg}");
        let (level, line, msg) = parse_error("#@G#\n; 1\n");
        assert_eq!((level, line), (1, 2));
        assert!(msg.contains("header"), "{msg}");
        assert!(matches!(
            parse_grids("\n; nothing here?\n", "e").unwrap_err(),
            EnvError::Parse { .. }
        ));
        assert!(matches!(
            parse_grids("\n \n", "e").unwrap_err(),
            EnvError::NoLevels { file } if file == "e"
        ));
    }

    #[test]
    fn text_round_trips_and_is_the_first_observation() {
        let text = "; 0\n#####\n#@_^#\n#___#\n#  G#\n#####\n\n; 1\n@ G\r\n___\n";
        let grids = parse_grids(text, "t").unwrap();
        assert_eq!(grids.len(), 2);
        // `_` is floor; a row of floor only stays visible as `_`.
        assert_eq!(grids[0].to_text(), "#####\n#@ ^#\n#   #\n#  G#\n#####");
        assert_eq!(grids[1].to_text(), "@ G\n___");
        assert_eq!(grids[0].traps(), vec![(1, 3)]);
        assert_eq!((grids[1].width(), grids[1].height()), (3, 2));
        let again = parse_grids(&grids_to_text(&grids), "again").unwrap();
        assert_eq!(again, grids);
        assert_eq!(small().to_text(), SMALL);
        assert_eq!(env(&small()).reset(&small(), 3).unwrap().text, SMALL);
        assert_eq!(small().task_id().len(), 16);
        assert_ne!(small().task_id(), grids[0].task_id());
        assert_eq!(env(&small()).task_id(&small()), small().task_id());
    }

    #[test]
    fn grid_files_round_trip_and_io_errors_name_the_path() {
        let dir = std::env::temp_dir().join(format!("leafe-gridworld-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("grids.txt");
        let grids = vec![small(), parse_grids("@ G", "x").unwrap().remove(0)];
        write_grid_file(&path, &grids).unwrap();
        assert_eq!(read_grid_file(&path).unwrap(), grids);
        let missing = dir.join("missing.txt");
        let err = read_grid_file(&missing).unwrap_err();
        assert!(matches!(&err, EnvError::Io { path, .. } if *path == missing));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn walls_traps_and_the_goal_follow_the_rules() {
        let grid = small();
        let mut env = env(&grid);
        assert_eq!(env.action_space().names(), DIR_NAMES);
        // Into a wall: stays, costs a step.
        let t = env.step("up").unwrap();
        assert_eq!(t.flags, vec![FLAG_BUMPED_WALL]);
        assert_eq!(t.feedback, "tried to move up: blocked by a wall");
        assert_eq!((t.reward, t.status), (REWARD_STEP, Status::Running));
        assert!(t.mistakes.is_empty());
        assert_eq!(env.agent(), (1, 1));
        assert_eq!(env.observe().state, Some(vec![1, 1, 1]));
        // Into a trap: the episode is lost, a mistake.
        assert_eq!(env.step("right").unwrap().feedback, "moved right");
        let t = env.step("right").unwrap();
        assert_eq!(t.status, Status::Unsolvable);
        assert_eq!(t.flags, vec![FLAG_MOVED, FLAG_FELL_INTO_TRAP]);
        assert_eq!(t.mistake(), Some(FLAG_FELL_INTO_TRAP));
        assert_eq!(t.reward, REWARD_STEP + REWARD_TRAP);
        assert_eq!(
            t.feedback,
            "moved right into a trap at row 1, column 3: episode lost"
        );
        assert_eq!(env.status(), Status::Unsolvable);
        assert!(env.legal_actions().is_empty());
        // To the goal: solved.
        env.reset(&grid, 0).unwrap();
        let path: Vec<&str> = shortest_path(&grid)
            .unwrap()
            .into_iter()
            .map(|a| DIR_NAMES[a])
            .collect();
        assert_eq!(path, ["down", "down", "right", "right", "right"]);
        let mut last = None;
        for a in &path {
            last = Some(env.step(a).unwrap());
        }
        let t = last.unwrap();
        assert_eq!(t.status, Status::Solved);
        assert_eq!(t.flags, vec![FLAG_MOVED, FLAG_REACHED_GOAL]);
        assert_eq!(t.feedback, "moved right and reached the goal");
        assert!((t.reward - 0.95).abs() < 1e-6);
        assert_eq!(env.steps(), 5);
        assert_eq!(env.observe().state, Some(vec![3, 4, 5]));
    }

    #[test]
    fn the_step_limit_truncates() {
        let grid = small();
        let mut env = Gridworld::new(grid.clone(), GridworldConfig { max_steps: 2 });
        assert_eq!(env.step("left").unwrap().status, Status::Running);
        let t = env.step("left").unwrap();
        assert_eq!(t.status, Status::StepLimit);
        assert_eq!(t.flags, vec![FLAG_BUMPED_WALL, FLAG_STEP_LIMIT]);
        assert!(
            t.feedback.ends_with("; step limit of 2 reached"),
            "{}",
            t.feedback
        );
    }

    #[test]
    fn stepping_after_the_end_or_with_a_bad_action_errors() {
        let grid = small();
        let mut env = env(&grid);
        let err = env.step("jump").unwrap_err();
        assert!(
            matches!(&err, EnvError::InvalidAction { env, action, .. } if env == NAME && action == "jump"),
            "{err}"
        );
        assert!(matches!(env.act(4), Err(EnvError::InvalidAction { .. })));
        env.step("right").unwrap();
        env.step("right").unwrap();
        assert!(matches!(
            env.step("left"),
            Err(EnvError::EpisodeOver {
                status: Status::Unsolvable
            })
        ));
        // A reset starts again.
        env.reset(&grid, 0).unwrap();
        assert_eq!(env.step("left").unwrap().status, Status::Running);
    }

    #[test]
    fn there_are_no_snapshots_and_replay_reproduces_the_episode() {
        let grid = small();
        let mut env1 = env(&grid);
        assert!(env1.snapshot().unwrap().is_none());
        assert!(matches!(env1.restore(&()), Err(EnvError::Failed { .. })));
        let steps = play(&mut env1, &grid, &["up", "down", "right", "left", "down"]);
        let end = env1.observe();
        let mut env2 = env(&grid);
        assert_eq!(replay(&mut env2, &grid, 9, &steps).unwrap(), 5);
        assert_eq!(env2.observe(), end);
        let (kind, executed) =
            roll_back(&mut env2, &grid, &steps, 3, &Rollback::Replay { seed: 1 }).unwrap();
        assert_eq!((kind, executed), (RollbackKind::Replay, 3));
        assert_eq!(env2.observe(), steps[3].observation);
        // A recording that does not match is caught.
        let mut wrong = steps.clone();
        wrong[2].observation.state = Some(vec![0, 0, 0]);
        assert!(matches!(
            replay(&mut env2, &grid, 0, &wrong),
            Err(EnvError::NonDeterministic { t: 2, .. })
        ));
    }

    #[test]
    fn the_generator_is_seeded_and_every_grid_is_solvable_with_a_trap_nearby() {
        let config = GridworldGenConfig {
            count: 30,
            ..GridworldGenConfig::default()
        };
        let a = generate(&config).unwrap();
        assert_eq!(a.len(), 30);
        assert_eq!(a, generate(&config).unwrap());
        let b = generate(&GridworldGenConfig {
            seed: 1,
            ..config.clone()
        })
        .unwrap();
        assert_ne!(a, b);
        let ids: HashSet<String> = a.iter().map(Grid::task_id).collect();
        assert_eq!(ids.len(), a.len());
        for grid in &a {
            assert_eq!((grid.width(), grid.height()), (6, 6));
            assert_eq!(grid.traps().len(), 3);
            assert_eq!(parse_grids(&grid.to_text(), "g").unwrap()[0], *grid);
            let path = shortest_path(grid).unwrap();
            assert!(path.len() >= MIN_PATH, "{grid:?}");
            // Playing the path solves the grid without touching a trap.
            let mut env = env(grid);
            let mut status = Status::Running;
            for &a in &path {
                status = env.act(a).unwrap().status;
            }
            assert_eq!(status, Status::Solved, "{grid:?}");
        }
    }

    #[test]
    fn the_generator_rejects_bad_settings_and_gives_up_when_it_must() {
        for (config, field) in [
            (
                GridworldGenConfig {
                    width: 11,
                    ..Default::default()
                },
                "width",
            ),
            (
                GridworldGenConfig {
                    height: 2,
                    ..Default::default()
                },
                "height",
            ),
            (
                GridworldGenConfig {
                    traps: 0,
                    ..Default::default()
                },
                "traps",
            ),
            (
                GridworldGenConfig {
                    width: 4,
                    height: 4,
                    traps: 3,
                    ..Default::default()
                },
                "traps",
            ),
            (
                GridworldGenConfig {
                    wall_density: 1.0,
                    ..Default::default()
                },
                "wall_density",
            ),
        ] {
            assert!(
                matches!(generate(&config), Err(EnvError::InvalidConfig { field: f, .. }) if f == field),
                "{config:?}"
            );
        }
        // A 2x2 interior has no path of 4 steps.
        let tiny = GridworldGenConfig {
            width: 4,
            height: 4,
            traps: 1,
            count: 2,
            ..Default::default()
        };
        assert!(matches!(generate(&tiny), Err(EnvError::Generate { .. })));
        let c: GridworldGenConfig = serde_json::from_str(r#"{"traps": 2}"#).unwrap();
        assert_eq!((c.traps, c.width, c.count), (2, 6, 100));
        assert!(serde_json::from_str::<GridworldGenConfig>(r#"{"trap": 2}"#).is_err());
        assert!(serde_json::from_str::<GridworldConfig>(r#"{"max_step": 2}"#).is_err());
    }

    #[test]
    fn demonstrations_replay_the_shortest_paths() {
        let grids = vec![
            small(),
            parse_grids("#####\n#@^G#\n#####", "x").unwrap().remove(0),
        ];
        let pairs = demonstrations(&grids, 40);
        // The second grid's goal is behind a trap: no demonstration.
        assert_eq!(pairs.len(), 5);
        assert_eq!(pairs[0].0.text, SMALL);
        assert_eq!(pairs[0].1, DOWN);
        assert_eq!(pairs[4].1, RIGHT);
        assert_eq!(pairs[4].0.state, Some(vec![3, 3, 4]));
        // A step limit cuts them short.
        assert_eq!(demonstrations(&grids, 3).len(), 3);
    }

    #[test]
    fn the_encoder_sets_exactly_one_channel_per_cell() {
        let board = 7;
        let plane = board * board;
        let mut out = vec![f32::NAN; 5 * plane];
        let obs = env(&small()).observe();
        GridPlanes.encode(&obs, board, &mut out).unwrap();
        for cell in 0..plane {
            let set: Vec<usize> = (0..5).filter(|&ch| out[ch * plane + cell] == 1.0).collect();
            assert_eq!(set.len(), 1, "cell {cell}");
            assert!(
                (0..5).all(|ch| out[ch * plane + cell] == 0.0 || out[ch * plane + cell] == 1.0)
            );
        }
        let at = |ch: usize, r: usize, c: usize| out[ch * plane + r * board + c];
        assert_eq!(at(4, 1, 1), 1.0); // agent
        assert_eq!(at(2, 1, 3), 1.0); // trap
        assert_eq!(at(3, 3, 4), 1.0); // goal
        assert_eq!(at(1, 2, 3), 1.0); // floor
        assert_eq!(at(0, 0, 0), 1.0); // wall
        assert_eq!(at(0, 6, 6), 1.0); // padding is wall
        assert_eq!(GridPlanes.channels(), CHANNELS.len());
        assert_eq!(GridPlanes.action_space().len(), 4);
        assert!(matches!(
            GridPlanes.encode(&obs, board, &mut out[1..]),
            Err(PolicyError::Input { .. })
        ));
        let mut small_out = vec![0.0; 5 * 16];
        assert!(matches!(
            GridPlanes.encode(&obs, 4, &mut small_out),
            Err(PolicyError::Input { .. })
        ));
        assert!(matches!(
            GridPlanes.encode(&Observation::text("@x"), board, &mut out),
            Err(PolicyError::Input { .. })
        ));
    }

    #[test]
    fn the_reflector_names_the_trap_step_and_respects_min_tau() {
        let grid = small();
        let mut env = env(&grid);
        let steps = play(&mut env, &grid, &["up", "right", "right"]);
        let now = env.observe();
        let r = GridReflector;
        let e = r.reflect(&steps, &now, Status::Unsolvable, 0).unwrap();
        assert_eq!((e.tau, e.trigger_step), (2, 3));
        assert_eq!(e.critical_action.as_deref(), Some("right"));
        assert_eq!(e.category, "trap");
        assert!(e.irreversible);
        assert!(e.diagnosis.contains("step 2"), "{}", e.diagnosis);
        assert!(e.diagnosis.contains("row 1, column 2"), "{}", e.diagnosis);
        assert!(
            e.diagnosis.contains("trap at row 1, column 3"),
            "{}",
            e.diagnosis
        );
        assert_eq!(
            e.fix,
            "at step 2 do not move right (a trap is there); go around it"
        );
        // From (1, 2): up and down are walls, right the trap.
        assert_eq!(e.suggested_actions, ["left"]);
        assert_eq!(
            r.reflect(&steps, &now, Status::Unsolvable, 2).unwrap().tau,
            2
        );
        assert!(r.reflect(&steps, &now, Status::Unsolvable, 3).is_none());
        // While running with no trap: on course.
        assert!(
            r.reflect(&steps[..2], &steps[2].observation, Status::Running, 0)
                .is_none()
        );
        assert!(r.reflect(&steps, &now, Status::Solved, 0).is_none());
    }

    #[test]
    fn the_reflector_hands_failed_ends_without_a_trap_to_the_feedback_rules() {
        let grid = small();
        let mut env = Gridworld::new(grid.clone(), GridworldConfig { max_steps: 4 });
        let steps = play(&mut env, &grid, &["down", "up", "down", "up"]);
        assert_eq!(env.status(), Status::StepLimit);
        let now = env.observe();
        let e = GridReflector
            .reflect(&steps, &now, Status::StepLimit, 1)
            .unwrap();
        assert_eq!(
            e,
            FeedbackReflector
                .reflect(&steps, &now, Status::StepLimit, 1)
                .unwrap()
        );
        assert_eq!((e.tau, e.category.as_str()), (1, "loop"));
        assert!(!e.irreversible);
        let e = GridReflector
            .reflect(&steps[..1], &steps[1].observation, Status::StepLimit, 0)
            .unwrap();
        assert_eq!(e.category, "step_limit");
        assert_eq!(GridReflector.name(), GridReflector::NAME);
    }
}
