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
//! Through the generic [`Env`] boundary actions are the names `up`, `down`,
//! `left`, `right`; observations are the board as text plus the compact
//! [`encode_state`] bytes; the mistake flags are `dead_square` and
//! `frozen_boxes`. [`Sokoban::act`] and [`Sokoban::apply`] are the typed
//! fast paths (action indices, [`Events`]).
//!
//! Submodules: [`levels`] (Boxoban files), [`generate`] (seeded generator),
//! [`solve`] (exact push search), [`deadlock`] (dead squares, freezes),
//! [`events`] (step flags), and what Sokoban brings to the agent side:
//! [`reflect`] (its rule-based reflector), [`guide`] (experience guidance
//! for networks), [`SokobanPlanes`] (the board-plane encoding),
//! [`demos`] (solver demonstrations for pretraining).

pub mod board;
pub mod deadlock;
pub mod demos;
pub mod events;
pub mod generate;
pub mod guide;
pub mod levels;
pub mod reflect;
pub mod solve;

use std::borrow::Cow;
use std::sync::OnceLock;

pub use board::{Bits, DIR_NAMES, Level, MAX_SIZE};
pub use events::{Events, StepOutcome};

use board::{coords, render_grid, step_pos};

use crate::env::{ActionSpace, Env, EnvError, Observation, Result, Status, Transition};
use crate::policy::{self, Encoder, PolicyError};

/// The environment's name at the boundary.
pub const NAME: &str = "sokoban";

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
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

    /// An episode on a one-push placeholder level, for callers that
    /// [`Env::reset`] to their task before use (a fresh environment for the
    /// generic jobs).
    pub fn with_config(config: SokobanConfig) -> Sokoban {
        static PLACEHOLDER: OnceLock<Level> = OnceLock::new();
        let level = PLACEHOLDER.get_or_init(|| {
            levels::parse_levels("#####\n#@$.#\n#####", "placeholder")
                .expect("the placeholder level parses")
                .remove(0)
        });
        Sokoban::new(level.clone(), config)
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
    let symbol = |c| match c {
        '#' => Some(0),
        ' ' | '_' => Some(1),
        '.' => Some(2),
        '$' => Some(3),
        '*' => Some(4),
        '@' => Some(5),
        '+' => Some(6),
        _ => None,
    };
    policy::encode_symbol_planes(text, CHANNELS.len(), symbol, pad_h, pad_w, out)
        .map_err(|message| EnvError::Encoding { message })
}

/// What an LLM trained on Sokoban data is told: the rules, the symbols,
/// the moves (the default system prompt of `leafe export`).
pub const SYSTEM_PROMPT: &str = "You are playing Sokoban. Push every box ($) onto a target (.) by moving the player (@). \
Symbols: # wall, space floor, $ box, * box on target, . target, @ player, + player on target. \
Boxes can be pushed but not pulled; a box pushed into a corner that is not a target can never be moved out. \
Reply with one move: up, down, left or right.";

/// Bytes of [`encode_state`]'s output.
pub const STATE_BYTES: usize = 35;

/// Compact state: player cell, steps (u16 LE), then the 256-cell box bitset
/// (4 × u64 LE). With the level it restores the dynamic state
/// ([`decode_state`]).
pub fn encode_state(s: &State) -> [u8; STATE_BYTES] {
    let mut out = [0u8; STATE_BYTES];
    out[0] = s.player;
    out[1..3].copy_from_slice(&s.steps.to_le_bytes());
    for (i, w) in s.boxes.0.iter().enumerate() {
        out[3 + 8 * i..11 + 8 * i].copy_from_slice(&w.to_le_bytes());
    }
    out
}

/// The running state that [`encode_state`] wrote, on `level` (boxes on
/// targets recounted; `deadlocked` false). `None` for a buffer of the wrong
/// length.
pub fn decode_state(level: &Level, bytes: &[u8]) -> Option<State> {
    if bytes.len() != STATE_BYTES {
        return None;
    }
    let mut boxes = Bits::default();
    for i in 0..4 {
        boxes.0[i] = u64::from_le_bytes(bytes[3 + 8 * i..11 + 8 * i].try_into().ok()?);
    }
    Some(State {
        boxes,
        player: bytes[0],
        on_target: boxes.and(level.targets()).count() as u8,
        steps: u16::from_le_bytes([bytes[1], bytes[2]]),
        deadlocked: false,
        status: Status::Running,
    })
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

impl Sokoban {
    /// Take action `action` (an index `< 4`), with the feedback text.
    ///
    /// # Errors
    /// [`EnvError::InvalidAction`] for an index out of range,
    /// [`EnvError::EpisodeOver`] after the episode ended.
    pub fn act(&mut self, action: usize) -> Result<StepOutcome> {
        if action >= 4 {
            return Err(EnvError::InvalidAction {
                env: NAME.into(),
                action: action.to_string(),
                message: "this environment has 4 actions (0..4: up, down, left, right)".into(),
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

    /// Back to the level's initial state.
    pub fn restart(&mut self) {
        self.state = initial_state(&self.level);
    }

    /// Go back to a saved state.
    pub fn restore_state(&mut self, state: &State) {
        self.state = *state;
    }

    /// The observation: the board as text and the [`encode_state`] bytes.
    pub fn observation(&self) -> Observation {
        Observation {
            text: self.render_text(),
            state: Some(encode_state(&self.state).to_vec()),
        }
    }
}

/// The generic view of a step's events: every flag by name, the deadlock
/// flags as mistakes.
pub fn transition(outcome: StepOutcome) -> Transition {
    let flags: Vec<Cow<'static, str>> = outcome.events.names().map(Cow::Borrowed).collect();
    let mistakes = [Events::DEAD_SQUARE, Events::FROZEN_BOXES]
        .into_iter()
        .filter(|e| outcome.events.contains(*e))
        .flat_map(|e| e.names())
        .map(Cow::Borrowed)
        .collect();
    Transition {
        reward: outcome.reward,
        status: outcome.status,
        feedback: outcome.feedback,
        flags,
        mistakes,
        info: None,
    }
}

impl Env for Sokoban {
    type Task = Level;
    type Snapshot = State;

    fn name(&self) -> &str {
        NAME
    }

    fn task_id(&self, task: &Level) -> String {
        task.task_id()
    }

    fn action_space(&self) -> &ActionSpace {
        action_space()
    }

    /// Sokoban is deterministic: the seed is not used.
    fn reset(&mut self, task: &Level, _seed: u64) -> Result<Observation> {
        self.set_level(task.clone());
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
        Ok(transition(self.act(a)?))
    }

    fn snapshot(&mut self) -> Result<Option<State>> {
        Ok(Some(self.state))
    }

    fn restore(&mut self, snapshot: &State) -> Result<()> {
        self.state = *snapshot;
        Ok(())
    }

    fn status(&self) -> Status {
        self.state.status
    }

    fn steps(&self) -> usize {
        self.state.steps as usize
    }
}

/// Sokoban's encoding for networks: the one-hot board planes of
/// [`encode_text_planes`], read from the observation text (so the store's
/// `observation` column trains the same network that acted).
#[derive(Debug, Clone, Copy, Default)]
pub struct SokobanPlanes;

impl SokobanPlanes {
    /// The encoder's name, recorded in model manifests.
    pub const NAME: &'static str = "sokoban-planes";
}

impl Encoder for SokobanPlanes {
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
        encode_text_planes(&observation.text, board, board, out).map_err(|e| PolicyError::Input {
            message: e.to_string(),
        })
    }
}
