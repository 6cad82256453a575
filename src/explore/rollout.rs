//! Plain rollouts without reflection: `samples` episodes per task from the
//! task's start, many environments stepped together (one batched policy
//! call per step). Evaluation keeps outcomes ([`sample_rollouts`]), GRPO
//! keeps every step ([`sample_trajectories`]).
//!
//! Seeded per (task, sample), so the output does not depend on the batch
//! size; output in (task, sample) order.
//!
//! Evaluation with a policy that does not read the history
//! ([`Policy::reads_history`]) records no steps at all: a step then costs
//! the policy call and the environment's transition, nothing kept.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::tree::reset_seed;
use super::{Result, episode_seed};
use crate::env::{self, Env, Observation, Status, Step};
use crate::policy::{Memory, Policy, Turn};

/// Outcome of one plain rollout.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RolloutOutcome {
    /// Index of the task.
    pub level: usize,
    /// Sample number for that task.
    pub sample: usize,
    /// Whether it solved the task.
    pub success: bool,
    /// How it ended.
    pub status: Status,
    /// Steps taken.
    pub length: usize,
    /// Sum of rewards.
    pub episode_return: f64,
}

/// A sampled trajectory with what a policy-gradient update needs.
#[derive(Debug, Clone)]
pub struct Trajectory {
    /// Index of the task.
    pub level: usize,
    /// Sample number for that task.
    pub sample: usize,
    /// Whether it solved the task.
    pub success: bool,
    /// How it ended.
    pub status: Status,
    /// Sum of rewards.
    pub episode_return: f64,
    /// Its steps (observation before the action, action, transition,
    /// log-probability).
    pub steps: Vec<Step>,
}

impl From<&Trajectory> for RolloutOutcome {
    fn from(t: &Trajectory) -> RolloutOutcome {
        RolloutOutcome {
            level: t.level,
            sample: t.sample,
            success: t.success,
            status: t.status,
            length: t.steps.len(),
            episode_return: t.episode_return,
        }
    }
}

/// An episode being rolled out.
struct Running<E> {
    env: E,
    rng: ChaCha8Rng,
    memory: Memory,
    observation: Observation,
    legal: Vec<String>,
    trajectory: Trajectory,
    /// Steps taken (`trajectory.steps.len()` where steps are recorded).
    length: usize,
}

/// Rolls out `samples` episodes per task, `batch` environments at a time,
/// keeping every step. See the module docs for order and seeding.
///
/// # Errors
/// The policy's and the environment's.
pub fn sample_trajectories<E, P>(
    tasks: &[E::Task],
    make_env: &dyn Fn() -> env::Result<E>,
    policy: &P,
    samples: usize,
    temperature: f32,
    seed: u64,
    batch: usize,
) -> Result<Vec<Trajectory>>
where
    E: Env,
    P: Policy + ?Sized,
{
    rollouts(
        tasks,
        make_env,
        policy,
        samples,
        temperature,
        seed,
        batch,
        true,
        |t, _| t,
    )
}

/// Like [`sample_trajectories`], keeping outcomes only (evaluation).
///
/// # Errors
/// The policy's and the environment's.
pub fn sample_rollouts<E, P>(
    tasks: &[E::Task],
    make_env: &dyn Fn() -> env::Result<E>,
    policy: &P,
    samples: usize,
    temperature: f32,
    seed: u64,
    batch: usize,
) -> Result<Vec<RolloutOutcome>>
where
    E: Env,
    P: Policy + ?Sized,
{
    rollouts(
        tasks,
        make_env,
        policy,
        samples,
        temperature,
        seed,
        batch,
        policy.reads_history(),
        |t, length| RolloutOutcome {
            length,
            ..RolloutOutcome::from(&t)
        },
    )
}

/// Successes per task of [`sample_rollouts`].
///
/// # Errors
/// The policy's and the environment's.
pub fn count_successes<E, P>(
    tasks: &[E::Task],
    make_env: &dyn Fn() -> env::Result<E>,
    policy: &P,
    samples: usize,
    temperature: f32,
    seed: u64,
    batch: usize,
) -> Result<Vec<u32>>
where
    E: Env,
    P: Policy + ?Sized,
{
    let mut successes = vec![0u32; tasks.len()];
    for o in sample_rollouts(tasks, make_env, policy, samples, temperature, seed, batch)? {
        successes[o.level] += u32::from(o.success);
    }
    Ok(successes)
}

/// The batched driver: finished trajectories (with their steps where
/// `record_steps`, and their length) go through `keep` as soon as they end,
/// so memory holds only what is kept. Recording or not, the policy sees the
/// same observations and draws from the same streams: the outcomes are the
/// same.
#[allow(clippy::too_many_arguments)]
fn rollouts<E, P, T>(
    tasks: &[E::Task],
    make_env: &dyn Fn() -> env::Result<E>,
    policy: &P,
    samples: usize,
    temperature: f32,
    seed: u64,
    batch: usize,
    record_steps: bool,
    keep: impl Fn(Trajectory, usize) -> T,
) -> Result<Vec<T>>
where
    E: Env,
    P: Policy + ?Sized,
{
    let mut out: Vec<((usize, usize), T)> = Vec::with_capacity(tasks.len() * samples);
    let mut queue = (0..tasks.len()).flat_map(|l| (0..samples).map(move |s| (l, s)));
    let mut running: Vec<Running<E>> = Vec::new();
    let mut spare: Vec<E> = Vec::new();
    loop {
        while running.len() < batch.min(E::parallel_episodes()).max(1) {
            let Some((l, s)) = queue.next() else { break };
            let mut env = match spare.pop() {
                Some(e) => e,
                None => make_env()?,
            };
            let observation = env.reset(&tasks[l], reset_seed(seed, l as u64))?;
            running.push(Running {
                rng: ChaCha8Rng::seed_from_u64(episode_seed(seed, l as u64, s)),
                memory: None,
                observation,
                legal: env.legal_actions(),
                env,
                trajectory: Trajectory {
                    level: l,
                    sample: s,
                    success: false,
                    status: Status::Running,
                    episode_return: 0.0,
                    steps: Vec::new(),
                },
                length: 0,
            });
        }
        if running.is_empty() {
            out.sort_by_key(|(k, _)| *k);
            return Ok(out.into_iter().map(|(_, t)| t).collect());
        }
        let decisions = {
            let mut turns: Vec<Turn<'_>> = running
                .iter_mut()
                .map(|r| Turn {
                    history: &r.trajectory.steps,
                    observation: &r.observation,
                    legal: &r.legal,
                    experience: None,
                    rng: &mut r.rng,
                    memory: &mut r.memory,
                })
                .collect();
            policy.act(&mut turns, temperature)?
        };
        // Every environment's step at once (processes work side by side).
        let transitions = {
            let mut envs: Vec<&mut E> = running.iter_mut().map(|r| &mut r.env).collect();
            let actions: Vec<&str> = decisions.iter().map(|d| d.action.as_str()).collect();
            E::step_all(&mut envs, &actions)
        };
        let mut next = Vec::with_capacity(running.len());
        for ((mut r, d), transition) in running.drain(..).zip(decisions).zip(transitions) {
            let transition = transition?;
            let status = transition.status;
            let tr = &mut r.trajectory;
            tr.episode_return += transition.reward as f64;
            r.length += 1;
            if record_steps {
                let observation = std::mem::replace(&mut r.observation, r.env.observe());
                tr.steps.push(Step {
                    t: tr.steps.len(),
                    observation,
                    action_index: d.index.or_else(|| r.env.action_space().index_of(&d.action)),
                    action: d.action,
                    log_prob: d.log_prob,
                    call: d.call,
                    transition,
                    legal: Step::legal_of(std::mem::take(&mut r.legal)),
                });
            } else if status == Status::Running {
                r.observation = r.env.observe();
            }
            if status == Status::Running {
                r.legal = r.env.legal_actions();
                next.push(r);
                continue;
            }
            tr.status = status;
            tr.success = status == Status::Solved;
            let key = (tr.level, tr.sample);
            out.push((key, keep(r.trajectory, r.length)));
            spare.push(r.env);
        }
        running = next;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::explore::World;
    use crate::policy::neural::{NeuralPolicy, PolicyNetConfig};
    use crate::worlds::SokobanWorld;
    use crate::worlds::sokoban::SokobanPlanes;
    use crate::worlds::sokoban::generate::{GeneratorConfig, generate};

    /// Evaluation skips recording steps for a policy that reads no history;
    /// the outcomes must be those of the recorded rollouts, sample for
    /// sample.
    #[test]
    fn outcomes_are_the_same_whether_steps_are_recorded_or_not() {
        let levels = generate(&GeneratorConfig {
            count: 4,
            seed: 3,
            ..GeneratorConfig::default()
        })
        .unwrap();
        let policy = NeuralPolicy::untrained(
            "untrained",
            PolicyNetConfig::for_encoder(&SokobanPlanes, 10, 16),
            Arc::new(SokobanPlanes),
            5,
        )
        .unwrap();
        assert!(!policy.reads_history());
        let make_env = || SokobanWorld.make_env(30);
        let recorded = sample_trajectories(&levels, &make_env, &policy, 8, 1.0, 7, 5).unwrap();
        let outcomes = sample_rollouts(&levels, &make_env, &policy, 8, 1.0, 7, 5).unwrap();
        let expected: Vec<RolloutOutcome> = recorded.iter().map(RolloutOutcome::from).collect();
        assert_eq!(outcomes, expected);
        assert!(expected.iter().any(|o| o.length > 1));
        assert!(expected.iter().any(|o| o.status != expected[0].status));
    }
}
