//! Sokoban with the rules and rewards of gym-sokoban / Boxoban.
//!
//! Rules: four actions, up/down/left/right (indices 0..4). Moving into a box
//! pushes it when the square behind it is free (no wall, no box); a blocked
//! move leaves the board unchanged but still costs a step. Rewards: −0.1 per
//! step, +1 for pushing a box onto a target, −1 for pushing one off, +10
//! when every box is on a target. The episode ends when solved or when the
//! step limit ([`SokobanConfig::max_steps`], 120 by Boxoban convention) is
//! reached; optionally ([`SokobanConfig::end_on_deadlock`]) as soon as a
//! deadlock is detected.
//!
//! Invariants: the dynamic state ([`State`]) is `Copy`, 40 bytes, and the
//! whole of what changes in an episode, so snapshot/restore is a copy and
//! [`Sokoban::apply`] (the hot path) allocates nothing. `on_target` always
//! equals the number of boxes on targets.
//!
//! Submodules: [`levels`] (Boxoban files), [`generate`] (seeded generator),
//! [`solve`] (exact push search), [`deadlock`] (dead squares, freezes).

pub mod board;
pub mod deadlock;
pub mod generate;
pub mod levels;
pub mod solve;

pub use board::{Bits, Level, MAX_SIZE};

use board::{DIR_NAMES, coords, render_grid, step_pos};

use super::{Env, EnvError, Events, Result, Status, StepOutcome};

/// Reward of every step.
pub const REWARD_STEP: f32 = -0.1;
/// Reward for pushing a box onto a target.
pub const REWARD_BOX_ON_TARGET: f32 = 1.0;
/// Reward for pushing a box off a target.
pub const REWARD_BOX_OFF_TARGET: f32 = -1.0;
/// Reward for solving the level.
pub const REWARD_SOLVED: f32 = 10.0;

/// Action indices.
pub const UP: usize = 0;
pub const DOWN: usize = 1;
pub const LEFT: usize = 2;
pub const RIGHT: usize = 3;

/// Channels of [`Sokoban::encode_planes`], in order. Every cell of the padded
/// board is one-hot over these channels; cells outside the level are walls.
pub const CHANNELS: [&str; 7] = [
    "wall",
    "floor",
    "target",
    "box",
    "box_on_target",
    "player",
    "player_on_target",
];

/// Settings of a Sokoban episode.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SokobanConfig {
    /// Steps after which the episode ends unsolved (Boxoban: 120).
    pub max_steps: u16,
    /// End the episode with [`Status::Unsolvable`] as soon as a push makes a
    /// deadlock (dead square or frozen boxes). Off by default, as in
    /// gym-sokoban, where a deadlocked episode runs to the step limit.
    pub end_on_deadlock: bool,
}

impl Default for SokobanConfig {
    fn default() -> Self {
        SokobanConfig {
            max_steps: 120,
            end_on_deadlock: false,
        }
    }
}

/// Everything that changes during an episode; the [`Env::Snapshot`] of
/// [`Sokoban`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct State {
    /// Box cells.
    pub boxes: Bits,
    /// Player cell.
    pub player: u8,
    /// Boxes on targets.
    pub on_target: u8,
    /// Steps taken.
    pub steps: u16,
    /// Whether a deadlock was detected at some push of this episode.
    pub deadlocked: bool,
    /// Where the episode stands.
    pub status: Status,
}

/// A Sokoban episode on one level.
#[derive(Debug, Clone)]
pub struct Sokoban {
    level: Level,
    config: SokobanConfig,
    num_boxes: u8,
    state: State,
}

impl Sokoban {
    /// A new episode at the level's initial state.
    pub fn new(level: Level, config: SokobanConfig) -> Sokoban {
        let state = initial_state(&level);
        Sokoban {
            num_boxes: level.num_boxes() as u8,
            level,
            config,
            state,
        }
    }

    /// Switch to another level and reset.
    pub fn set_level(&mut self, level: Level) {
        *self = Sokoban::new(level, self.config.clone());
    }

    /// The level being played.
    pub fn level(&self) -> &Level {
        &self.level
    }

    /// The settings.
    pub fn config(&self) -> &SokobanConfig {
        &self.config
    }

    /// The current state (a copy is a snapshot).
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Player position as (column, row).
    pub fn player_xy(&self) -> (usize, usize) {
        coords(self.state.player)
    }

    /// Whether a deadlock was detected during this episode.
    pub fn is_deadlocked(&self) -> bool {
        self.state.deadlocked
    }

    /// The reward a step with these events earns.
    pub fn reward_of(events: Events) -> f32 {
        let mut r = REWARD_STEP;
        if events.contains(Events::ONTO_TARGET) {
            r += REWARD_BOX_ON_TARGET;
        }
        if events.contains(Events::OFF_TARGET) {
            r += REWARD_BOX_OFF_TARGET;
        }
        if events.contains(Events::SOLVED) {
            r += REWARD_SOLVED;
        }
        r
    }

    /// The hot path: take `action` (must be `< 4`) and return what happened,
    /// without building any text. Does nothing and returns no events once
    /// the episode is over.
    #[inline]
    pub fn apply(&mut self, action: usize) -> Events {
        let s = &mut self.state;
        if s.status != Status::Running {
            return Events::empty();
        }
        let walls = self.level.walls();
        let targets = self.level.targets();
        s.steps += 1;
        let next = step_pos(s.player, action & 3);
        let mut ev;
        if walls.get(next) {
            ev = Events::BLOCKED_BY_WALL;
        } else if s.boxes.get(next) {
            let dest = step_pos(next, action & 3);
            if walls.get(dest) || s.boxes.get(dest) {
                ev = Events::BLOCKED_BY_BOX;
            } else {
                s.boxes.clear(next);
                s.boxes.set(dest);
                s.player = next;
                ev = Events::MOVED | Events::PUSHED_BOX;
                if targets.get(next) {
                    ev |= Events::OFF_TARGET;
                    s.on_target -= 1;
                }
                if targets.get(dest) {
                    ev |= Events::ONTO_TARGET;
                    s.on_target += 1;
                }
                if s.on_target == self.num_boxes {
                    ev |= Events::SOLVED;
                } else if !targets.get(dest) && self.level.dead_squares().get(dest) {
                    ev |= Events::DEAD_SQUARE;
                } else if deadlock::is_freeze_deadlock(&self.level, &s.boxes, dest) {
                    ev |= Events::FROZEN_BOXES;
                }
            }
        } else {
            s.player = next;
            ev = Events::MOVED;
        }
        if ev.is_mistake() {
            s.deadlocked = true;
        }
        if ev.contains(Events::SOLVED) {
            s.status = Status::Solved;
        } else if s.deadlocked && self.config.end_on_deadlock {
            s.status = Status::Unsolvable;
        } else if s.steps >= self.config.max_steps {
            s.status = Status::StepLimit;
            ev |= Events::STEP_LIMIT;
        }
        ev
    }

    /// One line of feedback for a step in direction `action` that had
    /// `events`, given the state after the step.
    pub fn describe(&self, action: usize, events: Events) -> String {
        let dir = DIR_NAMES[action];
        let mut s = if events.contains(Events::BLOCKED_BY_WALL) {
            format!("tried to move {dir}: blocked by a wall")
        } else if events.contains(Events::BLOCKED_BY_BOX) {
            format!(
                "tried to move {dir}: the box there cannot move (a wall or another box is behind it)"
            )
        } else if events.contains(Events::PUSHED_BOX) {
            let (x, y) = coords(step_pos(self.state.player, action));
            let what =
                if events.contains(Events::ONTO_TARGET) && events.contains(Events::OFF_TARGET) {
                    "from a target onto another target"
                } else if events.contains(Events::ONTO_TARGET) {
                    "onto a target"
                } else if events.contains(Events::OFF_TARGET) {
                    "off a target"
                } else {
                    "onto a floor square"
                };
            format!("moved {dir}, pushed a box {what} (box now at row {y}, column {x})")
        } else {
            format!("moved {dir}")
        };
        if events.contains(Events::DEAD_SQUARE) {
            s.push_str("; mistake: the box is on a dead square, from which it can never reach a target (the level is now unsolvable)");
        }
        if events.contains(Events::FROZEN_BOXES) {
            s.push_str("; mistake: boxes are frozen (they can never move again and not all are on targets; the level is now unsolvable)");
        }
        if events.contains(Events::SOLVED) {
            s.push_str("; all boxes are on targets: solved");
        }
        if events.contains(Events::STEP_LIMIT) {
            s.push_str(&format!(
                "; step limit of {} reached",
                self.config.max_steps
            ));
        }
        if self.state.status == Status::Unsolvable {
            s.push_str("; episode ended: unsolvable");
        }
        s
    }

    /// The board as text, one row per line, in the Boxoban alphabet:
    ///
    /// | symbol | meaning |
    /// | --- | --- |
    /// | `#` | wall |
    /// | ` ` (space) | floor |
    /// | `.` | target (empty) |
    /// | `$` | box |
    /// | `*` | box on a target |
    /// | `@` | player |
    /// | `+` | player on a target |
    ///
    /// Rows are joined by `\n` with no trailing newline; the text is also a
    /// valid level for [`levels::parse_levels`].
    pub fn render_text(&self) -> String {
        render_grid(&self.level, &self.state.boxes, self.state.player)
    }

    /// One-hot planes of the board, padded to `pad_h × pad_w`.
    ///
    /// # Shapes
    /// `out` is `[C, pad_h, pad_w]` row major with `C = CHANNELS.len() = 7`,
    /// channels in the order of [`CHANNELS`]: wall, floor, target, box,
    /// box_on_target, player, player_on_target. Every cell has exactly one
    /// channel set; padding cells (outside the level) are walls. The level
    /// sits in the top-left corner.
    ///
    /// # Errors
    /// [`EnvError::Encoding`] when the padding is smaller than the level or
    /// `out.len() != 7 * pad_h * pad_w`.
    pub fn encode_planes(&self, pad_h: usize, pad_w: usize, out: &mut [f32]) -> Result<()> {
        let (w, h) = (self.level.width(), self.level.height());
        if pad_h < h || pad_w < w {
            return Err(EnvError::Encoding {
                message: format!(
                    "padding {pad_h}x{pad_w} (h x w) is smaller than the {h}x{w} level"
                ),
            });
        }
        let plane = check_planes_buffer(out.len(), pad_h, pad_w)?;
        out.fill(0.0);
        let (walls, targets) = (self.level.walls(), self.level.targets());
        for y in 0..pad_h {
            for x in 0..pad_w {
                let ch = if x >= w || y >= h {
                    0
                } else {
                    let p = board::cell(x, y);
                    let t = targets.get(p);
                    if walls.get(p) {
                        0
                    } else if self.state.boxes.get(p) {
                        if t { 4 } else { 3 }
                    } else if p == self.state.player {
                        if t { 6 } else { 5 }
                    } else if t {
                        2
                    } else {
                        1
                    }
                };
                out[ch * plane + y * pad_w + x] = 1.0;
            }
        }
        Ok(())
    }
}

fn initial_state(level: &Level) -> State {
    State {
        boxes: *level.boxes(),
        player: level.player(),
        on_target: level.boxes().and(level.targets()).count() as u8,
        steps: 0,
        deadlocked: false,
        status: Status::Running,
    }
}

/// Checks a planes buffer's length; returns the size of one plane.
fn check_planes_buffer(len: usize, pad_h: usize, pad_w: usize) -> Result<usize> {
    let plane = pad_h * pad_w;
    if len != CHANNELS.len() * plane {
        return Err(EnvError::Encoding {
            message: format!(
                "buffer has {len} values, [{}, {pad_h}, {pad_w}] needs {}",
                CHANNELS.len(),
                CHANNELS.len() * plane
            ),
        });
    }
    Ok(plane)
}

/// Encodes a rendered observation ([`Sokoban::render_text`]) into the same
/// one-hot planes as [`Sokoban::encode_planes`], `[C, pad_h, pad_w]`. This is
/// how training reads states back from the store's `observation` column.
pub fn encode_text_planes(text: &str, pad_h: usize, pad_w: usize, out: &mut [f32]) -> Result<()> {
    let plane = check_planes_buffer(out.len(), pad_h, pad_w)?;
    // Everything starts as wall (padding); cells of the text overwrite it.
    out.fill(0.0);
    out[..plane].fill(1.0);
    for (y, line) in text.lines().enumerate() {
        for (x, c) in line.chars().enumerate() {
            if y >= pad_h || x >= pad_w {
                return Err(EnvError::Encoding {
                    message: format!("observation larger than the {pad_h}x{pad_w} padding"),
                });
            }
            let ch = match c {
                '#' => 0,
                ' ' | '_' => 1,
                '.' => 2,
                '$' => 3,
                '*' => 4,
                '@' => 5,
                '+' => 6,
                other => {
                    return Err(EnvError::Encoding {
                        message: format!("unknown symbol {other:?} in observation"),
                    });
                }
            };
            out[y * pad_w + x] = 0.0;
            out[ch * plane + y * pad_w + x] = 1.0;
        }
    }
    Ok(())
}

impl Env for Sokoban {
    type Snapshot = State;

    fn task_id(&self) -> String {
        self.level.task_id()
    }

    fn reset(&mut self) {
        self.state = initial_state(&self.level);
    }

    fn num_actions(&self) -> usize {
        4
    }

    fn action_name(&self, action: usize) -> &str {
        DIR_NAMES.get(action).copied().unwrap_or("invalid")
    }

    fn step(&mut self, action: usize) -> Result<StepOutcome> {
        if action >= 4 {
            return Err(EnvError::InvalidAction {
                action,
                num_actions: 4,
            });
        }
        if self.state.status.is_terminal() {
            return Err(EnvError::EpisodeOver {
                status: self.state.status,
            });
        }
        let events = self.apply(action);
        Ok(StepOutcome {
            reward: Sokoban::reward_of(events),
            status: self.state.status,
            feedback: self.describe(action, events),
            events,
        })
    }

    fn snapshot(&self) -> State {
        self.state
    }

    fn restore(&mut self, snapshot: &State) {
        self.state = *snapshot;
    }

    fn status(&self) -> Status {
        self.state.status
    }

    fn steps(&self) -> usize {
        self.state.steps as usize
    }

    fn render_text(&self) -> String {
        Sokoban::render_text(self)
    }

    fn num_channels(&self) -> usize {
        CHANNELS.len()
    }

    fn encode(&self, pad_h: usize, pad_w: usize, out: &mut [f32]) -> Result<()> {
        self.encode_planes(pad_h, pad_w, out)
    }
}
