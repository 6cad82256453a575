//! Stage 1 of LEAFE: roll out, reflect, roll back, branch.
//!
//! For each task the explorer rolls out the policy (the root). A reflector
//! ([`reflect`]) reads the trajectory with its feedback every `reflect_every`
//! steps and at a failed end; when it judges the trajectory off course it names
//! a rollback step tau and an experience. The environment is restored to its
//! snapshot before step tau (no replay: the prefix costs nothing again) and
//! `branches` continuations are sampled under that experience ([`guidance`]).
//! Failed branches are reflected on again, up to `max_depth`. A task stops when
//! its interaction budget (environment steps actually executed) is spent, when
//! `target_successes` branches succeeded, or when nothing is left to explore.
//! The result per task is a [`TaskTree`].
//!
//! Rollouts of many tasks and branches advance together, one batched policy
//! call per step. Everything random is seeded per (task, episode), so the same
//! seed gives the same trees whatever the batch composition.
//!
//! Invariants of every tree: a branch's parent failed; its first own step is
//! t = tau and its reflection was made on its parent; depth ≤ `max_depth`;
//! the task's interaction cost never exceeds `budget`. This module does not
//! know the store: trees go to a callback.

pub mod guidance;
pub mod reflect;

use std::collections::VecDeque;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::env::sokoban::{Level, Sokoban, SokobanConfig, State};
use crate::env::{Env, Events, Status};
use crate::policy::{Policy, PolicyError, encode_batch, sample};
use guidance::{Guidance, GuidanceConfig, Visited};
use reflect::{Experience, Reflector, StepRecord};

/// Settings of Stage 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExploreConfig {
    /// Master seed of all sampling.
    pub seed: u64,
    /// Step limit of an episode (full trajectory, prefix included).
    pub max_steps: u16,
    /// Sampling temperature of the policy.
    pub temperature: f32,
    /// Reflect every this many own steps of a running episode (0: only at a failed end).
    pub reflect_every: usize,
    /// Stop a running episode on any off-course verdict of a periodic
    /// reflection (true), or only on irreversible ones — dead square, frozen
    /// boxes, proven unsolvable (false: wandering is judged at the end).
    pub interrupt_on_loops: bool,
    /// Branches sampled from each rollback point.
    pub branches: usize,
    /// Deepest branch level (0: roots only).
    pub max_depth: usize,
    /// Environment steps a task may execute in total (roots and branches).
    pub budget: usize,
    /// Stop a task once this many branches succeeded.
    pub target_successes: usize,
    /// Tasks explored at once (the policy batch spans all their episodes).
    pub parallel_tasks: usize,
    /// Sample branches under the experience (false: the "LEAFE without
    /// experience" ablation — roll back to tau, but branch unguided).
    pub use_experience: bool,
    /// Independent rollouts from the task's start, at most. With more than 1,
    /// a new root starts whenever nothing else is left to explore, the budget
    /// is not spent and fewer than `target_successes` episodes succeeded.
    /// `max_depth = 0` with many root samples is rejection sampling — the
    /// data of the RFT baseline (no reflection, no rollback), under the same
    /// per-task budget as LEAFE.
    pub root_samples: usize,
    /// The reflector's settings.
    pub reflector: reflect::ReflectorConfig,
    /// How the experience guides branch sampling.
    pub guidance: GuidanceConfig,
}

impl Default for ExploreConfig {
    fn default() -> Self {
        ExploreConfig {
            seed: 0,
            max_steps: 60,
            temperature: 1.0,
            reflect_every: 10,
            interrupt_on_loops: false,
            branches: 4,
            max_depth: 2,
            budget: 1200,
            target_successes: 4,
            parallel_tasks: 64,
            use_experience: true,
            root_samples: 1,
            reflector: reflect::ReflectorConfig::default(),
            guidance: GuidanceConfig::default(),
        }
    }
}

/// A task to explore: a level and where it came from.
#[derive(Debug, Clone)]
pub struct Task {
    /// Position of the task in its source (stable across runs; seeds derive from it).
    pub index: u64,
    /// The level.
    pub level: Level,
    /// Where it came from, e.g. `levels.txt#17`.
    pub source: String,
}

/// How an episode came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// A rollout from the task's start.
    Root,
    /// A continuation from a rollback point.
    Branch,
}

impl Origin {
    /// The `episodes.origin` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Root => "root",
            Origin::Branch => "branch",
        }
    }
}

/// One stored step of an episode.
#[derive(Debug, Clone)]
pub struct StepOut {
    /// Step index in the full trajectory.
    pub t: usize,
    /// Text rendering of the state before the action.
    pub observation: String,
    /// Compact state before the action (see [`encode_state`]).
    pub state: [u8; STATE_BYTES],
    /// Action taken.
    pub action: usize,
    /// Reward received.
    pub reward: f32,
    /// Whether the episode ended here.
    pub done: bool,
    /// The environment's feedback.
    pub feedback: String,
    /// Irreversible mistake the environment flagged at this step.
    pub mistake: Option<&'static str>,
    /// Log-probability of the action as sampled (guidance included).
    pub log_prob: f32,
}

/// One episode of a tree.
#[derive(Debug, Clone)]
pub struct EpisodeOut {
    /// Id, unique within the run (derived from the task index).
    pub id: i64,
    /// The failed episode this branch left, if a branch.
    pub parent: Option<i64>,
    /// The reflection this branch was sampled under.
    pub reflection: Option<i64>,
    /// tau: first own step of a branch.
    pub rollback_step: Option<usize>,
    /// Tree depth.
    pub depth: usize,
    /// Index among siblings.
    pub sample_index: usize,
    /// Root or branch.
    pub origin: Origin,
    /// Whether the branch was sampled with guidance.
    pub experience_in_context: bool,
    /// Whether the full trajectory solved the task.
    pub success: bool,
    /// solved | step_limit | unsolvable | reflected (stopped by a reflection) | budget.
    pub status: &'static str,
    /// Return of the full trajectory.
    pub episode_return: f64,
    /// Steps of the full trajectory.
    pub length: usize,
    /// Own steps only (t ≥ tau).
    pub steps: Vec<StepOut>,
}

/// One reflection of a tree.
#[derive(Debug, Clone)]
pub struct ReflectionOut {
    /// Id, unique within the run.
    pub id: i64,
    /// Episode reflected on.
    pub episode: i64,
    /// The reflector's verdict.
    pub experience: Experience,
    /// Reflector name.
    pub reflector: String,
}

/// Everything explored for one task.
#[derive(Debug, Clone)]
pub struct TaskTree {
    /// The task's index in its source.
    pub task_index: u64,
    /// Stable task id (level content hash).
    pub task_id: String,
    /// Where the task came from.
    pub task_source: String,
    /// Root first, then branches (and further roots) in creation order.
    pub episodes: Vec<EpisodeOut>,
    /// Reflections in creation order.
    pub reflections: Vec<ReflectionOut>,
    /// Environment steps executed for the task.
    pub interaction_cost: usize,
}

impl TaskTree {
    /// Id of the tree's root.
    pub fn root_id(&self) -> i64 {
        self.episodes[0].id
    }

    /// Branches that succeeded.
    pub fn successful_branches(&self) -> usize {
        self.episodes
            .iter()
            .filter(|e| e.origin == Origin::Branch && e.success)
            .count()
    }
}

/// Bytes of [`encode_state`]'s output.
pub const STATE_BYTES: usize = 35;

/// Compact state: player cell, steps (u16 LE), then the 256-cell box bitset
/// (4 × u64 LE). With the level it restores the dynamic state.
pub fn encode_state(s: &State) -> [u8; STATE_BYTES] {
    let mut out = [0u8; STATE_BYTES];
    out[0] = s.player;
    out[1..3].copy_from_slice(&s.steps.to_le_bytes());
    for (i, w) in s.boxes.0.iter().enumerate() {
        out[3 + 8 * i..11 + 8 * i].copy_from_slice(&w.to_le_bytes());
    }
    out
}

/// Errors of Stage 1.
#[derive(Debug, thiserror::Error)]
pub enum ExploreError {
    /// The policy failed.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The configuration cannot work.
    #[error("explore config: {0}")]
    Config(String),
    /// The callback that takes finished trees failed.
    #[error("{0}")]
    Sink(String),
}

/// Result type of Stage 1.
pub type Result<T, E = ExploreError> = std::result::Result<T, E>;

/// Episode ids: task index in the high bits, a per-task counter in the low 20.
fn episode_id(task: u64, local: usize) -> i64 {
    ((task as i64) << 20) | local as i64
}

fn episode_seed(seed: u64, task: u64, local: usize) -> u64 {
    // SplitMix64-style mixing so nearby tasks/episodes get unrelated streams.
    let mut z = seed
        ^ task.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (local as u64).wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A rollout in progress.
struct Active {
    slot: usize,
    local: usize,
    env: Sokoban,
    rng: ChaCha8Rng,
    guidance: Option<Guidance>,
    visited: Visited,
    /// Full trajectory so far (inherited prefix + own steps) for the reflector.
    history: Vec<StepRecord>,
    start: usize,
    steps: Vec<StepOut>,
    prefix_return: f64,
    episode: EpisodeOut,
    pending_experience: Option<Experience>,
}

/// A task being explored.
struct TaskRun {
    task: Task,
    tree: TaskTree,
    /// Episodes by local index (None while running).
    eps: Vec<Option<EpisodeOut>>,
    /// Full histories of reflected-on episodes, by local index (for branching).
    histories: Vec<Option<Vec<StepRecord>>>,
    queue: VecDeque<(usize, i64, Experience)>,
    next_local: usize,
    next_reflection: usize,
    active: usize,
    budget_left: usize,
}

/// Explores tasks with a policy and a reflector, handing each finished tree to
/// `on_tree` (in task order of completion). Returns the number of trees.
pub fn explore<P: Policy, R: Reflector>(
    tasks: Vec<Task>,
    policy: &P,
    reflector: &R,
    config: &ExploreConfig,
    mut on_tree: impl FnMut(TaskTree) -> Result<()>,
) -> Result<usize> {
    if config.parallel_tasks == 0 || config.budget == 0 || config.root_samples == 0 {
        return Err(ExploreError::Config(
            "parallel_tasks, budget and root_samples must be at least 1".into(),
        ));
    }
    if config.branches == 0 && config.max_depth > 0 {
        return Err(ExploreError::Config(
            "branches must be at least 1 when max_depth > 0".into(),
        ));
    }
    let env_config = SokobanConfig {
        max_steps: config.max_steps,
        end_on_deadlock: false,
    };
    let mut pending: VecDeque<Task> = tasks.into();
    let mut slots: Vec<Option<TaskRun>> = (0..config.parallel_tasks).map(|_| None).collect();
    let mut actives: Vec<Active> = Vec::new();
    let mut planes = Vec::new();
    let mut done = 0usize;
    let board = policy.board();

    loop {
        // Fill free slots with new tasks (their roots become active).
        for (slot, entry) in slots.iter_mut().enumerate() {
            if entry.is_none() {
                let Some(task) = pending.pop_front() else {
                    break;
                };
                let mut run = TaskRun {
                    tree: TaskTree {
                        task_index: task.index,
                        task_id: task.level.task_id(),
                        task_source: task.source.clone(),
                        episodes: Vec::new(),
                        reflections: Vec::new(),
                        interaction_cost: 0,
                    },
                    task,
                    eps: Vec::new(),
                    histories: Vec::new(),
                    queue: VecDeque::new(),
                    next_local: 0,
                    next_reflection: 0,
                    active: 0,
                    budget_left: config.budget,
                };
                let env = Sokoban::new(run.task.level.clone(), env_config.clone());
                actives.push(spawn(
                    &mut run,
                    slot,
                    env,
                    Vec::new(),
                    0.0,
                    None,
                    None,
                    0,
                    config,
                ));
                *entry = Some(run);
            }
        }
        if actives.is_empty() {
            break;
        }

        // One batched policy call for every running episode.
        encode_batch(actives.iter().map(|a| &a.env), board, &mut planes)?;
        let log_probs = policy.log_probs(&planes, actives.len())?;
        let mut finished = Vec::new();
        for (i, a) in actives.iter_mut().enumerate() {
            let run = slots[a.slot].as_mut().expect("active episode has a task");
            if run.budget_left == 0 {
                // A sibling spent the task's last step in this round.
                a.episode.status = "budget";
                finished.push(i);
                continue;
            }
            let mut logits = [0f32; 4];
            logits.copy_from_slice(&log_probs[i * 4..i * 4 + 4]);
            let t = a.env.steps();
            if let Some(g) = &a.guidance {
                g.adjust(&a.env, t, &a.visited, &mut logits);
            }
            let (action, log_prob) = sample(&logits, config.temperature, &mut a.rng);
            let before = *a.env.state();
            let observation = a.env.render_text();
            let outcome = a.env.step(action).expect("running episode steps");
            run.budget_left -= 1;
            run.tree.interaction_cost += 1;
            a.visited.insert(a.env.state());
            a.history.push(StepRecord {
                t,
                state: before,
                action,
                events: outcome.events,
                reward: outcome.reward,
            });
            let mistake = if outcome.events.contains(Events::DEAD_SQUARE) {
                Some("dead_square")
            } else if outcome.events.contains(Events::FROZEN_BOXES) {
                Some("frozen_boxes")
            } else {
                None
            };
            a.steps.push(StepOut {
                t,
                observation,
                state: encode_state(&before),
                action,
                reward: outcome.reward,
                done: false,
                feedback: outcome.feedback,
                mistake,
                log_prob,
            });
            let own = a.env.steps() - a.start;
            let status = outcome.status;
            let end = if status != Status::Running {
                Some(status.as_str())
            } else if config.reflect_every > 0
                && own % config.reflect_every == 0
                && a.episode.depth < config.max_depth
            {
                // Periodic reflection: an off-course rollout stops here and is
                // branched from its critical step.
                match reflector.reflect(
                    &run.task.level,
                    &a.history,
                    a.env.state(),
                    Status::Running,
                    a.start,
                ) {
                    Some(exp) if config.interrupt_on_loops || exp.category.is_irreversible() => {
                        a.pending_experience = Some(exp);
                        Some("reflected")
                    }
                    _ => (run.budget_left == 0).then_some("budget"),
                }
            } else {
                (run.budget_left == 0).then_some("budget")
            };
            if let Some(status) = end {
                a.episode.status = status;
                a.episode.success = status == Status::Solved.as_str();
                finished.push(i);
            }
        }
        // Episodes of a task whose budget ran out stop too.
        for (i, a) in actives.iter_mut().enumerate() {
            let run = slots[a.slot].as_ref().expect("task");
            if run.budget_left == 0 && a.episode.status == "running" {
                a.episode.status = "budget";
                finished.push(i);
            }
        }
        finished.sort_unstable();
        finished.dedup();
        // Remove finished episodes (highest index first keeps indices valid).
        let mut closed: Vec<Active> = Vec::with_capacity(finished.len());
        for &i in finished.iter().rev() {
            closed.push(actives.swap_remove(i));
        }
        closed.sort_by_key(|a| (a.slot, a.local));
        for a in closed {
            let slot = a.slot;
            let run = slots[slot].as_mut().expect("task");
            finish(run, a, reflector, config);
        }
        // Schedule branches for tasks with nothing running; close finished tasks.
        for (slot, entry) in slots.iter_mut().enumerate() {
            let Some(run) = entry.as_mut() else { continue };
            if run.active > 0 {
                continue;
            }
            let successes = run
                .eps
                .iter()
                .flatten()
                .filter(|e| e.origin == Origin::Branch && e.success)
                .count();
            let roots = run
                .eps
                .iter()
                .flatten()
                .filter(|e| e.origin == Origin::Root)
                .count();
            let solved_roots = run
                .eps
                .iter()
                .flatten()
                .filter(|e| e.origin == Origin::Root && e.success)
                .count();
            let keep_going =
                solved_roots == 0 && successes < config.target_successes && run.budget_left > 0;
            let resample = roots < config.root_samples
                && solved_roots + successes < config.target_successes
                && run.budget_left > 0;
            // One rollback point at a time: its B branches run together.
            if let Some((parent_local, reflection_id, exp)) =
                keep_going.then(|| run.queue.pop_front()).flatten()
            {
                let history = run.histories[parent_local]
                    .clone()
                    .expect("reflected episode's history kept");
                let parent = run.eps[parent_local].as_ref().expect("parent finished");
                let depth = parent.depth + 1;
                let parent_id = parent.id;
                let tau = exp.tau;
                let prefix: Vec<StepRecord> = history[..tau].to_vec();
                let prefix_return = prefix.iter().map(|s| s.reward as f64).sum::<f64>();
                let guidance = config
                    .use_experience
                    .then(|| Guidance::new(&exp, &config.guidance));
                for b in 0..config.branches {
                    let mut env = Sokoban::new(run.task.level.clone(), env_config.clone());
                    env.restore(&history[tau].state);
                    let branch = Some((parent_id, reflection_id, tau));
                    let mut a = spawn(
                        run,
                        slot,
                        env,
                        prefix.clone(),
                        prefix_return,
                        guidance.clone(),
                        branch,
                        b,
                        config,
                    );
                    a.episode.depth = depth;
                    actives.push(a);
                }
            } else if resample {
                let env = Sokoban::new(run.task.level.clone(), env_config.clone());
                actives.push(spawn(
                    run,
                    slot,
                    env,
                    Vec::new(),
                    0.0,
                    None,
                    None,
                    roots,
                    config,
                ));
            } else {
                let run = entry.take().expect("task");
                let mut tree = run.tree;
                tree.episodes = run
                    .eps
                    .into_iter()
                    .map(|e| e.expect("every episode finished"))
                    .collect();
                done += 1;
                on_tree(tree)?;
            }
        }
        actives.sort_by_key(|a| (a.slot, a.local));
    }
    Ok(done)
}

#[allow(clippy::too_many_arguments)]
fn spawn(
    run: &mut TaskRun,
    slot: usize,
    env: Sokoban,
    history: Vec<StepRecord>,
    prefix_return: f64,
    guidance: Option<Guidance>,
    branch: Option<(i64, i64, usize)>,
    sample_index: usize,
    config: &ExploreConfig,
) -> Active {
    let local = run.next_local;
    run.next_local += 1;
    run.active += 1;
    run.eps.push(None);
    run.histories.push(None);
    let start = env.steps();
    let mut visited = Visited::new();
    visited.insert(env.state());
    let experience_in_context = guidance.is_some();
    Active {
        slot,
        local,
        rng: ChaCha8Rng::seed_from_u64(episode_seed(config.seed, run.task.index, local)),
        guidance,
        visited,
        history,
        start,
        steps: Vec::new(),
        prefix_return,
        episode: EpisodeOut {
            id: episode_id(run.task.index, local),
            parent: branch.map(|b| b.0),
            reflection: branch.map(|b| b.1),
            rollback_step: branch.map(|b| b.2),
            depth: 0,
            sample_index,
            origin: if branch.is_some() {
                Origin::Branch
            } else {
                Origin::Root
            },
            experience_in_context,
            success: false,
            status: "running",
            episode_return: 0.0,
            length: 0,
            steps: Vec::new(),
        },
        pending_experience: None,
        env,
    }
}

/// Closes an episode: records it, and for a failure reflects on it and queues
/// the rollback (if depth allows).
fn finish<R: Reflector>(run: &mut TaskRun, mut a: Active, reflector: &R, config: &ExploreConfig) {
    run.active -= 1;
    if let Some(last) = a.steps.last_mut() {
        last.done = true;
    }
    a.episode.length = a.env.steps();
    a.episode.episode_return =
        a.prefix_return + a.steps.iter().map(|s| s.reward as f64).sum::<f64>();
    a.episode.steps = std::mem::take(&mut a.steps);
    let local = a.local;
    let failed = !a.episode.success;
    let reflectable = failed && a.episode.status != "budget" && a.episode.depth < config.max_depth;
    let experience = if reflectable {
        a.pending_experience.take().or_else(|| {
            let status = match a.episode.status {
                "unsolvable" => Status::Unsolvable,
                _ => Status::StepLimit,
            };
            reflector.reflect(&run.task.level, &a.history, a.env.state(), status, a.start)
        })
    } else {
        None
    };
    let id = a.episode.id;
    run.eps[local] = Some(a.episode);
    if let Some(exp) = experience {
        let rid = episode_id(run.task.index, run.next_reflection);
        run.next_reflection += 1;
        run.tree.reflections.push(ReflectionOut {
            id: rid,
            episode: id,
            experience: exp.clone(),
            reflector: reflector.name().to_string(),
        });
        run.histories[local] = Some(std::mem::take(&mut a.history));
        run.queue.push_back((local, rid, exp));
    }
}

/// Outcome of one plain rollout.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RolloutOutcome {
    /// Index of the level.
    pub level: usize,
    /// Sample number for that level.
    pub sample: usize,
    /// Whether it solved the level.
    pub success: bool,
    /// Steps taken.
    pub length: usize,
    /// Sum of rewards.
    pub episode_return: f64,
}

/// What a plain rollout keeps of its episode: a [`RolloutOutcome`] (cheap:
/// no feedback text) or a full [`Trajectory`].
trait Recorder {
    /// An empty record of sample `sample` of level `level`.
    fn start(level: usize, sample: usize) -> Self;
    /// Applies `action` (sampled with `log_prob`) to `env` and records it.
    fn step(&mut self, env: &mut Sokoban, action: usize, log_prob: f32);
    /// Closes the record once the episode has ended.
    fn end(&mut self, env: &Sokoban);
    /// (level, sample), the output order.
    fn key(&self) -> (usize, usize);
}

impl Recorder for RolloutOutcome {
    fn start(level: usize, sample: usize) -> Self {
        RolloutOutcome {
            level,
            sample,
            success: false,
            length: 0,
            episode_return: 0.0,
        }
    }

    fn step(&mut self, env: &mut Sokoban, action: usize, _: f32) {
        self.episode_return += Sokoban::reward_of(env.apply(action)) as f64;
    }

    fn end(&mut self, env: &Sokoban) {
        self.success = env.status() == Status::Solved;
        self.length = env.steps();
    }

    fn key(&self) -> (usize, usize) {
        (self.level, self.sample)
    }
}

impl Recorder for Trajectory {
    fn start(level: usize, sample: usize) -> Self {
        Trajectory {
            level,
            sample,
            success: false,
            episode_return: 0.0,
            steps: Vec::new(),
        }
    }

    fn step(&mut self, env: &mut Sokoban, action: usize, log_prob: f32) {
        let before = *env.state();
        let observation = env.render_text();
        let outcome = env.step(action).expect("running episode steps");
        self.episode_return += outcome.reward as f64;
        self.steps.push(StepOut {
            t: before.steps as usize,
            observation,
            state: encode_state(&before),
            action,
            reward: outcome.reward,
            done: outcome.status != Status::Running,
            feedback: outcome.feedback,
            mistake: None,
            log_prob,
        });
    }

    fn end(&mut self, env: &Sokoban) {
        self.success = env.status() == Status::Solved;
    }

    fn key(&self) -> (usize, usize) {
        (self.level, self.sample)
    }
}

/// The batched driver of plain rollouts: `samples` episodes per level,
/// `batch` environments stepped together (one policy call per step), output
/// in (level, sample) order. Seeded per (level, sample), so the output does
/// not depend on `batch`.
fn rollouts<P: Policy, R: Recorder>(
    levels: &[Level],
    policy: &P,
    samples: usize,
    temperature: f32,
    max_steps: u16,
    seed: u64,
    batch: usize,
) -> Result<Vec<R>> {
    let env_config = SokobanConfig {
        max_steps,
        end_on_deadlock: false,
    };
    let mut out: Vec<R> = Vec::with_capacity(levels.len() * samples);
    let mut queue = (0..levels.len()).flat_map(|l| (0..samples).map(move |s| (l, s)));
    let mut running: Vec<(Sokoban, ChaCha8Rng, R)> = Vec::new();
    let mut planes = Vec::new();
    loop {
        while running.len() < batch.max(1) {
            let Some((l, s)) = queue.next() else { break };
            running.push((
                Sokoban::new(levels[l].clone(), env_config.clone()),
                ChaCha8Rng::seed_from_u64(episode_seed(seed, l as u64, s)),
                R::start(l, s),
            ));
        }
        if running.is_empty() {
            out.sort_by_key(R::key);
            return Ok(out);
        }
        encode_batch(running.iter().map(|r| &r.0), policy.board(), &mut planes)?;
        let lp = policy.log_probs(&planes, running.len())?;
        let mut i = 0;
        running.retain_mut(|(env, rng, rec)| {
            let (action, log_prob) = sample(&lp[i * 4..i * 4 + 4], temperature, rng);
            i += 1;
            rec.step(env, action, log_prob);
            if env.status() == Status::Running {
                return true;
            }
            rec.end(env);
            out.push(std::mem::replace(rec, R::start(0, 0)));
            false
        });
    }
}

/// Plain rollouts without reflection (evaluation): outcomes only. See
/// [`rollouts`] for order and seeding.
pub fn sample_rollouts<P: Policy>(
    levels: &[Level],
    policy: &P,
    samples: usize,
    temperature: f32,
    max_steps: u16,
    seed: u64,
    batch: usize,
) -> Result<Vec<RolloutOutcome>> {
    rollouts(levels, policy, samples, temperature, max_steps, seed, batch)
}

/// A sampled trajectory with what a policy-gradient update needs.
#[derive(Debug, Clone)]
pub struct Trajectory {
    /// Index of the level.
    pub level: usize,
    /// Sample number for that level.
    pub sample: usize,
    /// Whether it solved the level.
    pub success: bool,
    /// Sum of rewards.
    pub episode_return: f64,
    /// Its steps (observation before the action, action, reward, log-probability).
    pub steps: Vec<StepOut>,
}

/// Like [`sample_rollouts`], keeping every step (GRPO sampling).
pub fn sample_trajectories<P: Policy>(
    levels: &[Level],
    policy: &P,
    samples: usize,
    temperature: f32,
    max_steps: u16,
    seed: u64,
    batch: usize,
) -> Result<Vec<Trajectory>> {
    rollouts(levels, policy, samples, temperature, max_steps, seed, batch)
}

/// Successes per level of [`sample_rollouts`].
pub fn count_successes<P: Policy>(
    levels: &[Level],
    policy: &P,
    samples: usize,
    temperature: f32,
    max_steps: u16,
    seed: u64,
    batch: usize,
) -> Result<Vec<u32>> {
    let mut successes = vec![0u32; levels.len()];
    for o in sample_rollouts(levels, policy, samples, temperature, max_steps, seed, batch)? {
        successes[o.level] += u32::from(o.success);
    }
    Ok(successes)
}
