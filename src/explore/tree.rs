//! The rollback tree search of Stage 1 (see the [module docs](super)).

use std::collections::VecDeque;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::{
    EpisodeOut, ExploreConfig, ExploreError, Origin, ReflectionOut, Result, Task, TaskTree,
    episode_id, episode_seed,
};
use crate::env::{self, Env, Observation, Rollback, Status, Step, Transition};
use crate::policy::{Memory, Policy, Turn};
use crate::reflect::{Experience, Reflector};

/// The seed a task's environment is reset with (every episode of the task
/// uses it, so a replayed prefix reproduces its parent's).
pub(crate) fn reset_seed(seed: u64, task: u64) -> u64 {
    episode_seed(seed ^ 0x5EED_5EED_5EED_5EED, task, 1 << 20)
}

/// A rollout in progress.
struct Active<E: Env> {
    slot: usize,
    local: usize,
    env: E,
    rng: ChaCha8Rng,
    experience: Option<Experience>,
    memory: Memory,
    /// Full trajectory so far (inherited prefix + own steps).
    history: Vec<Step>,
    /// Native snapshots before each step of `history` (empty for an
    /// environment without snapshots).
    snapshots: Vec<E::Snapshot>,
    observation: Observation,
    legal: Vec<String>,
    start: usize,
    prefix_return: f64,
    episode: EpisodeOut,
    pending_experience: Option<Experience>,
}

/// What a reflected-on episode leaves for its branches.
struct Reflected<S> {
    history: Vec<Step>,
    snapshots: Vec<S>,
}

/// A task being explored.
struct TaskRun<E: Env> {
    task: Task<E::Task>,
    seed: u64,
    tree: TaskTree,
    /// Episodes by local index (None while running).
    eps: Vec<Option<EpisodeOut>>,
    /// Full histories of reflected-on episodes, by local index (for branching).
    histories: Vec<Option<Reflected<E::Snapshot>>>,
    queue: VecDeque<(usize, i64, Experience)>,
    next_local: usize,
    next_reflection: usize,
    active: usize,
    budget_left: usize,
    /// Set when the environment failed the task: nothing more is started.
    failed: Option<String>,
}

/// A branch to start: where it comes from and how it got back to tau.
struct BranchStart {
    parent: i64,
    reflection: i64,
    tau: usize,
    kind: env::RollbackKind,
    replayed: usize,
}

/// Explores tasks with a policy and a reflector, handing each finished tree
/// to `on_tree` (in task order of completion). `make_env` makes one
/// environment per running episode. Returns the number of trees.
///
/// # Errors
/// A configuration that cannot work, the policy's and the environment's
/// errors, and whatever `on_tree` returns.
pub fn explore<E, P, R>(
    tasks: Vec<Task<E::Task>>,
    make_env: &dyn Fn() -> env::Result<E>,
    policy: &P,
    reflector: &R,
    config: &ExploreConfig,
    mut on_tree: impl FnMut(TaskTree) -> Result<()>,
) -> Result<usize>
where
    E: Env,
    P: Policy + ?Sized,
    R: Reflector + ?Sized,
{
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
    if config.max_steps == 0 {
        return Err(ExploreError::Config("max_steps must be at least 1".into()));
    }
    let mut pending: VecDeque<Task<E::Task>> = tasks.into();
    let mut slots: Vec<Option<TaskRun<E>>> = (0..config.parallel_tasks).map(|_| None).collect();
    let mut actives: Vec<Active<E>> = Vec::new();
    let mut done = 0usize;

    loop {
        // Fill free slots with new tasks (their roots become active).
        for (slot, entry) in slots.iter_mut().enumerate() {
            if entry.is_none() {
                let Some(task) = pending.pop_front() else {
                    break;
                };
                let seed = reset_seed(config.seed, task.index);
                // The task id, once an environment exists to say it (a
                // failed reset still knows it; a failed start does not).
                let mut known_id = None;
                let started = make_env().and_then(|mut env| {
                    known_id = Some(env.task_id(&task.task));
                    let observation = env.reset(&task.task, seed)?;
                    Ok((env.task_id(&task.task), env, observation))
                });
                let (task_id, env, observation) = match started {
                    Ok(s) => s,
                    Err(e) => {
                        // The task never started: a root of no steps with
                        // status env_error records it (its task id is the
                        // source when the environment could not say).
                        tracing::warn!(task = %task.source, "environment failed: {e}");
                        done += 1;
                        on_tree(TaskTree {
                            task_index: task.index,
                            task_id: known_id.unwrap_or_else(|| task.source.clone()),
                            task_source: task.source.clone(),
                            episodes: vec![EpisodeOut {
                                id: episode_id(task.index, 0),
                                parent: None,
                                reflection: None,
                                rollback_step: None,
                                rollback: None,
                                replayed: 0,
                                depth: 0,
                                sample_index: 0,
                                origin: Origin::Root,
                                experience_in_context: false,
                                success: false,
                                status: "env_error",
                                episode_return: 0.0,
                                length: 0,
                                steps: Vec::new(),
                            }],
                            reflections: Vec::new(),
                            interaction_cost: 0,
                            env_error: Some(e.to_string()),
                        })?;
                        continue;
                    }
                };
                let mut run = TaskRun {
                    tree: TaskTree {
                        task_index: task.index,
                        task_id,
                        task_source: task.source.clone(),
                        episodes: Vec::new(),
                        reflections: Vec::new(),
                        interaction_cost: 0,
                        env_error: None,
                    },
                    task,
                    seed,
                    eps: Vec::new(),
                    histories: Vec::new(),
                    queue: VecDeque::new(),
                    next_local: 0,
                    next_reflection: 0,
                    active: 0,
                    budget_left: config.budget,
                    failed: None,
                };
                actives.push(spawn(
                    &mut run,
                    slot,
                    env,
                    observation,
                    (Vec::new(), Vec::new()),
                    0.0,
                    None,
                    None,
                    0,
                    config,
                ));
                *entry = Some(run);
            }
        }
        if actives.is_empty() && slots.iter().all(Option::is_none) {
            break;
        }

        // One batched policy call for every running episode.
        let decisions = {
            let mut turns: Vec<Turn<'_>> = actives
                .iter_mut()
                .map(|a| Turn {
                    history: &a.history,
                    observation: &a.observation,
                    legal: &a.legal,
                    experience: a.experience.as_ref(),
                    rng: &mut a.rng,
                    memory: &mut a.memory,
                })
                .collect();
            policy.act(&mut turns, config.temperature)?
        };
        let mut finished = Vec::new();
        // Which episodes step this round: each task's budget is spent in
        // episode order, one step each, as if they stepped one after another.
        let mut left: Vec<usize> = slots
            .iter()
            .map(|s| s.as_ref().map_or(0, |r| r.budget_left))
            .collect();
        let mut steps: Vec<Option<env::Result<Transition>>> = Vec::new();
        steps.resize_with(actives.len(), || None);
        {
            // The snapshots first (a state to roll back to), then every
            // environment's step at once (processes work side by side).
            let (mut envs, mut actions, mut stepping) = (Vec::new(), Vec::new(), Vec::new());
            for (i, (a, decision)) in actives.iter_mut().zip(&decisions).enumerate() {
                let run = slots[a.slot].as_ref().expect("active episode has a task");
                if left[a.slot] == 0 || run.failed.is_some() {
                    continue;
                }
                left[a.slot] -= 1;
                match a.env.snapshot() {
                    Ok(snapshot) => a.snapshots.extend(snapshot),
                    Err(e) => {
                        steps[i] = Some(Err(e));
                        continue;
                    }
                }
                envs.push(&mut a.env);
                actions.push(decision.action.as_str());
                stepping.push(i);
            }
            for (i, step) in stepping.into_iter().zip(E::step_all(&mut envs, &actions)) {
                steps[i] = Some(step);
            }
        }
        for (i, (a, decision)) in actives.iter_mut().zip(decisions).enumerate() {
            let run = slots[a.slot].as_mut().expect("active episode has a task");
            if run.budget_left == 0 {
                // A sibling spent the task's last step in this round.
                a.episode.status = "budget";
                finished.push(i);
                continue;
            }
            if run.failed.is_some() {
                a.episode.status = "env_error";
                finished.push(i);
                continue;
            }
            let t = a.history.len();
            let transition = match steps[i]
                .take()
                .expect("a step for every episode with budget")
            {
                Ok(tr) => tr,
                Err(e) => {
                    run.failed = Some(e.to_string());
                    a.episode.status = "env_error";
                    finished.push(i);
                    continue;
                }
            };
            run.budget_left -= 1;
            run.tree.interaction_cost += 1;
            let observation = std::mem::replace(&mut a.observation, a.env.observe());
            let status = transition.status;
            a.history.push(Step {
                t,
                observation,
                action_index: decision
                    .index
                    .or_else(|| a.env.action_space().index_of(&decision.action)),
                action: decision.action,
                log_prob: decision.log_prob,
                call: decision.call,
                transition,
                legal: Step::legal_of(std::mem::take(&mut a.legal)),
            });
            a.legal = a.env.legal_actions();
            let own = a.history.len() - a.start;
            let end = if status != Status::Running {
                Some(status.as_str())
            } else if config.reflect_every > 0
                && own % config.reflect_every == 0
                && a.episode.depth < config.max_depth
            {
                // Periodic reflection: an off-course rollout stops here and is
                // branched from its critical step.
                match reflector.reflect(&a.history, &a.observation, Status::Running, a.start) {
                    Some(exp) if config.interrupt_on_loops || exp.irreversible => {
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
            if run.failed.is_some() && a.episode.status == "running" {
                a.episode.status = "env_error";
                finished.push(i);
            } else if run.budget_left == 0 && a.episode.status == "running" {
                a.episode.status = "budget";
                finished.push(i);
            }
        }
        finished.sort_unstable();
        finished.dedup();
        // Remove finished episodes (highest index first keeps indices valid).
        let mut closed: Vec<Active<E>> = Vec::with_capacity(finished.len());
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
            let count =
                |f: &dyn Fn(&EpisodeOut) -> bool| run.eps.iter().flatten().filter(|e| f(e)).count();
            let successes = count(&|e| e.origin == Origin::Branch && e.success);
            let roots = count(&|e| e.origin == Origin::Root);
            let solved_roots = count(&|e| e.origin == Origin::Root && e.success);
            let alive = run.failed.is_none();
            let keep_going = alive
                && solved_roots == 0
                && successes < config.target_successes
                && run.budget_left > 0;
            let resample = alive
                && roots < config.root_samples
                && solved_roots + successes < config.target_successes
                && run.budget_left > 0;
            // One rollback point at a time: its B branches run together. A
            // rollback point the budget cannot replay to is passed over.
            let mut branched = false;
            while !branched
                && run.failed.is_none()
                && let Some((parent_local, reflection_id, exp)) =
                    keep_going.then(|| run.queue.pop_front()).flatten()
            {
                let reflected = run.histories[parent_local]
                    .take()
                    .expect("reflected episode's history kept");
                let parent = run.eps[parent_local].as_ref().expect("parent finished");
                let depth = parent.depth + 1;
                let parent_id = parent.id;
                // Where the branch starts: tau (rollback), or the task's
                // start (the "no rollback" ablation: a fresh attempt with
                // the experience in context).
                let tau = if config.rollback { exp.tau } else { 0 };
                let prefix: Vec<Step> = reflected.history[..tau].to_vec();
                let prefix_snaps: Vec<E::Snapshot> =
                    reflected.snapshots[..tau.min(reflected.snapshots.len())].to_vec();
                let prefix_return = prefix
                    .iter()
                    .map(|s| s.transition.reward as f64)
                    .sum::<f64>();
                let how = match reflected.snapshots.get(tau) {
                    Some(s) => Rollback::Snapshot(s.clone()),
                    None => Rollback::Replay { seed: run.seed },
                };
                let experience = config.use_experience.then_some(exp);
                for b in 0..config.branches {
                    // A replay costs tau transitions: branch only while the
                    // budget can pay for it and at least one own step.
                    if matches!(how, Rollback::Replay { .. }) && run.budget_left <= tau {
                        break;
                    }
                    let mut replayed = 0;
                    let rolled = make_env().and_then(|mut env| {
                        // A replay resets by itself; a snapshot needs the task.
                        if matches!(how, Rollback::Snapshot(_)) {
                            env.reset(&run.task.task, run.seed)?;
                        }
                        let kind = env::roll_back_counted(
                            &mut env,
                            &run.task.task,
                            &reflected.history,
                            tau,
                            &how,
                            &mut replayed,
                        )?;
                        Ok((env, kind))
                    });
                    // Replayed transitions are charged even when the
                    // rollback failed half-way.
                    run.budget_left = run.budget_left.saturating_sub(replayed);
                    run.tree.interaction_cost += replayed;
                    let (env, kind) = match rolled {
                        Ok(r) => r,
                        Err(e) => {
                            run.failed = Some(e.to_string());
                            break;
                        }
                    };
                    let observation = env.observe();
                    let branch = BranchStart {
                        parent: parent_id,
                        reflection: reflection_id,
                        tau,
                        kind,
                        replayed,
                    };
                    let mut a = spawn(
                        run,
                        slot,
                        env,
                        observation,
                        (prefix.clone(), prefix_snaps.clone()),
                        prefix_return,
                        experience.clone(),
                        Some(branch),
                        b,
                        config,
                    );
                    a.episode.depth = depth;
                    actives.push(a);
                    branched = true;
                }
            }
            if branched {
                continue;
            }
            if resample {
                let started = make_env().and_then(|mut env| {
                    let observation = env.reset(&run.task.task, run.seed)?;
                    Ok((env, observation))
                });
                let (env, observation) = match started {
                    Ok(s) => s,
                    Err(e) => {
                        run.failed = Some(e.to_string());
                        continue;
                    }
                };
                actives.push(spawn(
                    run,
                    slot,
                    env,
                    observation,
                    (Vec::new(), Vec::new()),
                    0.0,
                    None,
                    None,
                    roots,
                    config,
                ));
            } else {
                let run = entry.take().expect("task");
                let mut tree = run.tree;
                tree.env_error = run.failed;
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
fn spawn<E: Env>(
    run: &mut TaskRun<E>,
    slot: usize,
    env: E,
    observation: Observation,
    (history, snapshots): (Vec<Step>, Vec<E::Snapshot>),
    prefix_return: f64,
    experience: Option<Experience>,
    branch: Option<BranchStart>,
    sample_index: usize,
    config: &ExploreConfig,
) -> Active<E> {
    let local = run.next_local;
    run.next_local += 1;
    run.active += 1;
    run.eps.push(None);
    run.histories.push(None);
    let start = history.len();
    let legal = env.legal_actions();
    Active {
        slot,
        local,
        rng: ChaCha8Rng::seed_from_u64(episode_seed(config.seed, run.task.index, local)),
        episode: EpisodeOut {
            id: episode_id(run.task.index, local),
            parent: branch.as_ref().map(|b| b.parent),
            reflection: branch.as_ref().map(|b| b.reflection),
            rollback_step: branch.as_ref().map(|b| b.tau),
            rollback: branch.as_ref().map(|b| b.kind),
            replayed: branch.as_ref().map_or(0, |b| b.replayed),
            depth: 0,
            sample_index,
            origin: if branch.is_some() {
                Origin::Branch
            } else {
                Origin::Root
            },
            experience_in_context: experience.is_some(),
            success: false,
            status: "running",
            episode_return: 0.0,
            length: 0,
            steps: Vec::new(),
        },
        experience,
        memory: None,
        history,
        snapshots,
        observation,
        legal,
        start,
        prefix_return,
        pending_experience: None,
        env,
    }
}

/// Closes an episode: records it, and for a failure reflects on it and queues
/// the rollback (if depth allows).
fn finish<E: Env, R: Reflector + ?Sized>(
    run: &mut TaskRun<E>,
    mut a: Active<E>,
    reflector: &R,
    config: &ExploreConfig,
) {
    run.active -= 1;
    a.episode.length = a.history.len();
    let own = &a.history[a.start..];
    a.episode.episode_return =
        a.prefix_return + own.iter().map(|s| s.transition.reward as f64).sum::<f64>();
    a.episode.steps = own.to_vec();
    let local = a.local;
    let failed = !a.episode.success;
    let reflectable = failed
        && !matches!(a.episode.status, "budget" | "env_error")
        && a.episode.depth < config.max_depth;
    let experience = if reflectable {
        a.pending_experience.take().or_else(|| {
            let status = match a.episode.status {
                "unsolvable" => Status::Unsolvable,
                _ => Status::StepLimit,
            };
            reflector.reflect(&a.history, &a.observation, status, a.start)
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
            reflector: exp
                .written_by
                .clone()
                .unwrap_or_else(|| reflector.name().to_string()),
        });
        run.histories[local] = Some(Reflected {
            history: std::mem::take(&mut a.history),
            snapshots: std::mem::take(&mut a.snapshots),
        });
        run.queue.push_back((local, rid, exp));
    }
}
