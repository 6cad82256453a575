//! Environments: the [`Env`] boundary and its implementations.
//!
//! An environment is anything an agent can act in step by step: a built-in
//! world (`worlds::sokoban`, `worlds::gridworld`) or, through the same
//! trait, a process that speaks a protocol. What crosses the boundary is deliberately plain,
//! so an LLM agent and a small network can both act, and a reflector can read
//! any trajectory:
//!
//! - an [`Observation`]: text (what an LLM or a person reads), plus an
//!   optional compact state the environment defines (stored, never required);
//! - actions are strings: one of the environment's [`ActionSpace::Choice`]
//!   names, or free text where the environment accepts it;
//! - every step returns a [`Transition`]: reward, the [`Status`] after it
//!   (terminated with or without success, truncated, running), one line of
//!   feedback text and structured flags, some of which the environment marks
//!   as mistakes.
//!
//! Rollback ([`Rollback`]) restores a native snapshot where the environment
//! has one ([`Env::snapshot`] returns `Some`), and otherwise resets to the
//! same task and seed and replays the action prefix, checking every replayed
//! observation against the recorded one ([`replay`]). Replayed transitions
//! are executed transitions: callers count them in their budgets.
//!
//! Invariants every implementation keeps:
//! - `restore(&snapshot())` puts the environment back into a state that is
//!   indistinguishable from the one the snapshot was taken in (same
//!   observation, same status, same future under the same actions).
//! - `reset(task, seed)` followed by the same actions gives the same
//!   observations (replay works).
//! - Once [`Env::status`] is terminal, [`Env::step`] refuses to step
//!   ([`EnvError::EpisodeOver`]) until `reset` or `restore`.
//!
//! This module sits at the bottom of the crate and depends on no other
//! leafe module. The environments themselves are rooms of their own above
//! the boundaries (`crate::worlds`), each carrying what is its own (rules,
//! tasks, encoding for networks, rule-based reflector).

pub mod check;
pub mod openenv;
pub mod process;
pub mod schemes;

use std::borrow::Cow;
use std::fmt;
use std::path::PathBuf;

/// Errors at the environment boundary: bad task files, bad actions, bad
/// configuration, a replay that did not reproduce.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// A task in a task file is malformed. `level` is the 0-based position of
    /// the task in the file and `line` the 1-based line of the offending
    /// input.
    #[error("{file}: level {level} (line {line}): {message}")]
    Parse {
        file: String,
        level: usize,
        line: usize,
        message: String,
    },
    /// The file parsed but holds no task at all.
    #[error("{file}: no levels found")]
    NoLevels { file: String },
    /// A task file could not be read or written. The I/O error is part of
    /// the message (not a `source`), so a `{:#}` chain prints it once.
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// An action the environment does not accept.
    #[error("{env}: invalid action {action:?}: {message}")]
    InvalidAction {
        env: String,
        action: String,
        message: String,
    },
    /// `step` was called after the episode ended.
    #[error("the episode is over ({status}); reset or restore before stepping")]
    EpisodeOver { status: Status },
    /// A tensor buffer or padding that does not fit the observation.
    #[error("encoding: {message}")]
    Encoding { message: String },
    /// A configuration value out of range.
    #[error("invalid configuration: {field}: {message}")]
    InvalidConfig {
        field: &'static str,
        message: String,
    },
    /// The generator could not produce a task that satisfies the settings.
    #[error("generator: {message}")]
    Generate { message: String },
    /// Rollback by replay reached a different observation than the one
    /// recorded: the environment is not deterministic under reset + replay.
    #[error(
        "{env}: task {task_id}: replay diverged at step {t}: the environment is not deterministic"
    )]
    NonDeterministic {
        env: String,
        task_id: String,
        t: usize,
    },
    /// The environment failed (an external process crashed, timed out or
    /// broke the protocol).
    #[error("{env}: {message}")]
    Failed { env: String, message: String },
}

/// Result type of this module.
pub type Result<T, E = EnvError> = std::result::Result<T, E>;

/// Where an episode stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The episode goes on.
    Running,
    /// Terminated with success: the task is solved.
    Solved,
    /// Truncated: the step limit was reached before the task was solved.
    StepLimit,
    /// Terminated without success: the task can no longer be solved (lost,
    /// dead, or — in Sokoban, when configured — a detected deadlock).
    Unsolvable,
}

impl Status {
    /// A stable lowercase name, used as a store column value.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Solved => "solved",
            Status::StepLimit => "step_limit",
            Status::Unsolvable => "unsolvable",
        }
    }

    /// Whether the episode has ended.
    pub fn is_terminal(self) -> bool {
        self != Status::Running
    }

    /// Whether the episode ended by truncation (the step limit) rather than
    /// by the task's own end.
    pub fn is_truncated(self) -> bool {
        self == Status::StepLimit
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an agent sees.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Observation {
    /// The observation as text: what an LLM or a person reads, what the
    /// store keeps, what a network's encoder reads back.
    pub text: String,
    /// A compact state the environment defines (Sokoban: player, steps and
    /// box bit set), stored next to the text; `None` where it has none.
    pub state: Option<Vec<u8>>,
}

impl Observation {
    /// An observation with text only.
    pub fn text(text: impl Into<String>) -> Observation {
        Observation {
            text: text.into(),
            state: None,
        }
    }
}

/// How actions are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionSpace {
    /// One of a fixed list of names; an action's index in the list is its
    /// id (what a network's output head predicts, the store's `action`).
    Choice(Vec<String>),
    /// Free text, checked by the environment.
    FreeText,
}

impl ActionSpace {
    /// A choice among `names`.
    pub fn choice<S: AsRef<str>>(names: &[S]) -> ActionSpace {
        ActionSpace::Choice(names.iter().map(|s| s.as_ref().to_string()).collect())
    }

    /// The names of a choice space (empty for free text).
    pub fn names(&self) -> &[String] {
        match self {
            ActionSpace::Choice(n) => n,
            ActionSpace::FreeText => &[],
        }
    }

    /// The index of `action` in a choice space.
    pub fn index_of(&self, action: &str) -> Option<usize> {
        self.names().iter().position(|n| n == action)
    }

    /// The number of choices (0 for free text).
    pub fn len(&self) -> usize {
        self.names().len()
    }

    /// Whether there is no choice (free text).
    pub fn is_empty(&self) -> bool {
        self.names().is_empty()
    }
}

/// What one step did.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// The reward of this step.
    pub reward: f32,
    /// The status after the step.
    pub status: Status,
    /// One line of feedback grounded in the state, what a reflector reads.
    pub feedback: String,
    /// Structured facts about the step, as stable snake_case names
    /// (`"blocked_by_wall"`, `"pushed_box"`, …).
    pub flags: Vec<Cow<'static, str>>,
    /// The flags that are mistakes the environment itself detects (in
    /// Sokoban the irreversible ones: `"dead_square"`, `"frozen_boxes"`).
    /// Every name here is also in `flags`.
    pub mistakes: Vec<Cow<'static, str>>,
    /// Whatever else the environment reports about the step, as a JSON
    /// object's text (an environment process's `info`); stored, never
    /// interpreted.
    pub info: Option<String>,
}

impl Transition {
    /// The first mistake flag, if any (the store's `steps.mistake`).
    pub fn mistake(&self) -> Option<&str> {
        self.mistakes.first().map(|m| m.as_ref())
    }
}

/// One executed step of a trajectory: the observation before the action,
/// the action, and what it did. The unit a policy's history, a reflector and
/// the store's `steps` table share.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Full-trajectory step index (0 is the first action after the reset).
    pub t: usize,
    /// The observation before the action.
    pub observation: Observation,
    /// The action as the environment read it.
    pub action: String,
    /// Its index in the environment's [`ActionSpace::Choice`], if any.
    pub action_index: Option<usize>,
    /// The log-probability of the action as sampled (0 where unknown).
    pub log_prob: f32,
    /// The model request that chose the action (`llm_calls.call_id`), for
    /// an LLM policy.
    pub call: Option<i64>,
    /// What the step did.
    pub transition: Transition,
    /// The legal actions the action was chosen among, as the environment
    /// listed them (what a text policy scores); `None` where it listed
    /// none (free-text actions).
    pub legal: Option<Vec<String>>,
}

impl Step {
    /// What [`Step::legal`] keeps of the legal actions `legal`: the list,
    /// or nothing for an empty one.
    pub fn legal_of(legal: Vec<String>) -> Option<Vec<String>> {
        (!legal.is_empty()).then_some(legal)
    }
}

/// An environment that an agent acts in, one task at a time.
///
/// `Task` is what `reset` starts: a level, a game file, a task id for an
/// external process. Implementations are `Send` so explorations can run in
/// worker threads.
pub trait Env: Send {
    /// A task.
    type Task: Clone + Send + Sync;
    /// A saved state, where the environment can save one natively.
    type Snapshot: Clone + Send;

    /// A stable name of the environment (recorded with runs and models).
    fn name(&self) -> &str;

    /// How the environment describes itself, as JSON recorded with the runs
    /// it takes part in (`runs.config.env_description`): an environment
    /// process's `hello` ([`process::Description`]). `None` for one that
    /// says nothing beyond its name (the built-in worlds: their rules are
    /// their `World::system_prompt`).
    fn describe(&self) -> Option<serde_json::Value> {
        None
    }

    /// A stable identifier of a task (joins results across runs).
    fn task_id(&self, task: &Self::Task) -> String;

    /// How actions are written; fixed for the environment's lifetime.
    fn action_space(&self) -> &ActionSpace;

    /// Start `task` afresh. `seed` seeds whatever is random in the
    /// environment; the same task and seed give the same episode under the
    /// same actions.
    fn reset(&mut self, task: &Self::Task, seed: u64) -> Result<Observation>;

    /// The current observation.
    fn observe(&self) -> Observation;

    /// The actions that may be taken now: empty once the episode is over.
    /// For a choice space, a subset of its names.
    fn legal_actions(&self) -> Vec<String> {
        if self.status().is_terminal() {
            Vec::new()
        } else {
            self.action_space().names().to_vec()
        }
    }

    /// Take one action.
    ///
    /// # Errors
    /// [`EnvError::InvalidAction`] for an action the environment does not
    /// accept, [`EnvError::EpisodeOver`] after the episode ended.
    fn step(&mut self, action: &str) -> Result<Transition>;

    /// How many episodes of this environment may run at once, at most
    /// (batched rollouts keep no more; an environment in another process
    /// costs a process for each).
    fn parallel_episodes() -> usize
    where
        Self: Sized,
    {
        usize::MAX
    }

    /// Whether starting another task costs this environment more than
    /// starting the same one again (a process that loads a game for each
    /// task): batched rollouts then keep an environment on one task while
    /// samples of it remain.
    fn switching_tasks_is_costly() -> bool
    where
        Self: Sized,
    {
        false
    }

    /// Takes `actions[i]` in `envs[i]` for every i: what calling
    /// [`Env::step`] on each in turn returns, with whatever overlap the
    /// environment allows (processes work on their steps at once).
    fn step_all(envs: &mut [&mut Self], actions: &[&str]) -> Vec<Result<Transition>>
    where
        Self: Sized,
    {
        envs.iter_mut()
            .zip(actions)
            .map(|(e, a)| e.step(a))
            .collect()
    }

    /// Resets `envs[i]` to `tasks[i]` with `seeds[i]` for every i: what
    /// calling [`Env::reset`] on each in turn returns, with whatever overlap
    /// the environment allows (processes start their episodes at once).
    fn reset_all(
        envs: &mut [&mut Self],
        tasks: &[&Self::Task],
        seeds: &[u64],
    ) -> Vec<Result<Observation>>
    where
        Self: Sized,
    {
        envs.iter_mut()
            .zip(tasks.iter().zip(seeds))
            .map(|(e, (t, s))| e.reset(t, *s))
            .collect()
    }

    /// Save the current state; `Ok(None)` where the environment cannot
    /// (then rollback replays the action prefix). `&mut`: for an
    /// environment in another process it is a request.
    ///
    /// # Errors
    /// The environment's own (a process that fails the request).
    fn snapshot(&mut self) -> Result<Option<Self::Snapshot>>;

    /// Go back to a saved state.
    fn restore(&mut self, snapshot: &Self::Snapshot) -> Result<()>;

    /// Where the episode stands.
    fn status(&self) -> Status;

    /// Steps taken since the reset.
    fn steps(&self) -> usize;

    /// A demonstration of `task`: an action sequence that solves it (a gold
    /// path, a walkthrough, a shortest path), for building a base policy;
    /// never shown to a reflector or to a policy while it acts. `Ok(None)`
    /// where the environment has none. May reset the environment: reset
    /// before stepping again.
    ///
    /// # Errors
    /// The environment's own (a process that fails the request).
    fn demo(&mut self, task: &Self::Task) -> Result<Option<Vec<String>>> {
        let _ = task;
        Ok(None)
    }
}

/// How a rollback reached its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RollbackKind {
    /// A native snapshot was restored (no transition executed).
    Snapshot,
    /// The task was reset and the action prefix replayed.
    Replay,
}

impl RollbackKind {
    /// A stable name (`"snapshot"`, `"replay"`).
    pub fn as_str(self) -> &'static str {
        match self {
            RollbackKind::Snapshot => "snapshot",
            RollbackKind::Replay => "replay",
        }
    }
}

/// A way back to the state before step `tau` of a recorded trajectory.
#[derive(Debug, Clone)]
pub enum Rollback<S> {
    /// Restore this snapshot.
    Snapshot(S),
    /// Reset to the task with this seed and replay the first `tau` actions.
    Replay {
        /// The episode's reset seed.
        seed: u64,
    },
}

/// Puts `env` into the state before step `tau` of `steps` (a full
/// trajectory from t = 0). Returns how it got there and the number of
/// transitions it executed (0 for a snapshot, `tau` for a replay).
///
/// # Errors
/// [`EnvError::NonDeterministic`] when a replayed observation differs from
/// the recorded one; the environment's own errors.
pub fn roll_back<E: Env>(
    env: &mut E,
    task: &E::Task,
    steps: &[Step],
    tau: usize,
    how: &Rollback<E::Snapshot>,
) -> Result<(RollbackKind, usize)> {
    let mut executed = 0;
    let kind = roll_back_counted(env, task, steps, tau, how, &mut executed)?;
    Ok((kind, executed))
}

/// [`roll_back`], counting the transitions it executes into `executed` as
/// it goes, so that a caller charges them to a budget even when the
/// rollback fails half-way (a replay that diverges, a process that dies).
///
/// # Errors
/// As [`roll_back`].
pub fn roll_back_counted<E: Env>(
    env: &mut E,
    task: &E::Task,
    steps: &[Step],
    tau: usize,
    how: &Rollback<E::Snapshot>,
    executed: &mut usize,
) -> Result<RollbackKind> {
    match how {
        Rollback::Snapshot(s) => {
            env.restore(s)?;
            Ok(RollbackKind::Snapshot)
        }
        Rollback::Replay { seed } => {
            replay_counted(env, task, *seed, &steps[..tau], executed)?;
            if let Some(at) = steps.get(tau)
                && env.observe() != at.observation
            {
                return Err(EnvError::NonDeterministic {
                    env: env.name().to_string(),
                    task_id: env.task_id(task),
                    t: tau,
                });
            }
            Ok(RollbackKind::Replay)
        }
    }
}

/// Resets `env` to `task` with `seed` and replays the actions of `prefix`,
/// checking that each observation before an action equals the recorded one
/// (text and state). Returns the transitions executed.
///
/// # Errors
/// [`EnvError::NonDeterministic`] at the first mismatch.
pub fn replay<E: Env>(env: &mut E, task: &E::Task, seed: u64, prefix: &[Step]) -> Result<usize> {
    let mut executed = 0;
    replay_counted(env, task, seed, prefix, &mut executed)?;
    Ok(executed)
}

/// [`replay`], counting executed transitions into `executed` as it goes.
///
/// # Errors
/// As [`replay`].
pub fn replay_counted<E: Env>(
    env: &mut E,
    task: &E::Task,
    seed: u64,
    prefix: &[Step],
    executed: &mut usize,
) -> Result<()> {
    let mut obs = env.reset(task, seed)?;
    for step in prefix {
        if obs != step.observation {
            return Err(EnvError::NonDeterministic {
                env: env.name().to_string(),
                task_id: env.task_id(task),
                t: step.t,
            });
        }
        // Counted before the call: a step the process may have executed
        // before failing is charged, never lost.
        *executed += 1;
        env.step(&step.action)?;
        obs = env.observe();
    }
    Ok(())
}

/// Every environment's request first, then every answer, so that
/// environments in other processes work at once: `send(env, i)` writes the
/// i-th request and returns its id (None where the environment cannot
/// split a request from its answer), `receive(env, i, sent)` reads the
/// answer (or, given None, makes the whole request). The
/// [`Env::step_all`] and [`Env::reset_all`] of process environments.
pub(crate) fn overlapped<E: ?Sized, T>(
    envs: &mut [&mut E],
    mut send: impl FnMut(&mut E, usize) -> Option<Result<u64>>,
    mut receive: impl FnMut(&mut E, usize, Option<Result<u64>>) -> Result<T>,
) -> Vec<Result<T>> {
    let sent: Vec<Option<Result<u64>>> = envs
        .iter_mut()
        .enumerate()
        .map(|(i, e)| send(e, i))
        .collect();
    envs.iter_mut()
        .zip(sent)
        .enumerate()
        .map(|(i, (e, sent))| receive(e, i, sent))
        .collect()
}
