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
    let mut schedule = Schedule::new(tasks.len(), samples, E::switching_tasks_is_costly());
    let mut running: Vec<Running<E>> = Vec::new();
    // Environments whose episode ended, with the task they played.
    let mut spare: Vec<(E, usize)> = Vec::new();
    loop {
        // New episodes for the free slots, their resets sent at once
        // (processes start side by side).
        let mut starting: Vec<(usize, usize, E)> = Vec::new();
        while running.len() + starting.len() < batch.min(E::parallel_episodes()).max(1) {
            let (env, last) = match spare.pop() {
                Some((e, l)) => (Some(e), Some(l)),
                None => (None, None),
            };
            let Some((l, s)) = schedule.take(last) else {
                break;
            };
            let env = match env {
                Some(e) => e,
                None => make_env()?,
            };
            starting.push((l, s, env));
        }
        let observations = {
            let tasks: Vec<&E::Task> = starting.iter().map(|(l, _, _)| &tasks[*l]).collect();
            let seeds: Vec<u64> = starting
                .iter()
                .map(|(l, _, _)| reset_seed(seed, *l as u64))
                .collect();
            let mut envs: Vec<&mut E> = starting.iter_mut().map(|(_, _, e)| e).collect();
            E::reset_all(&mut envs, &tasks, &seeds)
        };
        for ((l, s, env), observation) in starting.into_iter().zip(observations) {
            running.push(Running {
                rng: ChaCha8Rng::seed_from_u64(episode_seed(seed, l as u64, s)),
                memory: None,
                observation: observation?,
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
            spare.push((r.env, key.0));
        }
        running = next;
    }
}

/// Which (task, sample) a free environment plays next: task after task,
/// sample after sample. Where switching tasks costs the environment (a
/// process that loads a game for each task), an environment keeps to the
/// task it played last while samples of it remain and a fresh one claims a
/// task nobody plays yet, so that each task is loaded by few processes
/// instead of by every one; once every task is claimed, a free environment
/// helps with the task that has the most samples left. Outcomes do not
/// depend on the order (seeded per task and sample, output sorted).
struct Schedule {
    /// The next sample of each task.
    next: Vec<usize>,
    /// Whether an environment has claimed the task.
    claimed: Vec<bool>,
    samples: usize,
    /// Tasks before it are claimed or done.
    cursor: usize,
    sticky: bool,
}

impl Schedule {
    fn new(tasks: usize, samples: usize, sticky: bool) -> Schedule {
        Schedule {
            next: vec![0; tasks],
            claimed: vec![false; tasks],
            samples,
            cursor: 0,
            sticky,
        }
    }

    /// The next (task, sample) for an environment that last played `last`.
    fn take(&mut self, last: Option<usize>) -> Option<(usize, usize)> {
        let left = |s: &Schedule, l: usize| s.next[l] < s.samples;
        let pick = if !self.sticky {
            while self.cursor < self.next.len() && !left(self, self.cursor) {
                self.cursor += 1;
            }
            (self.cursor < self.next.len()).then_some(self.cursor)
        } else if let Some(l) = last.filter(|&l| left(self, l)) {
            Some(l)
        } else {
            while self.cursor < self.next.len()
                && (self.claimed[self.cursor] || !left(self, self.cursor))
            {
                self.cursor += 1;
            }
            if self.cursor < self.next.len() {
                self.claimed[self.cursor] = true;
                Some(self.cursor)
            } else {
                (0..self.next.len())
                    .filter(|&l| left(self, l))
                    .min_by_key(|&l| self.next[l])
            }
        }?;
        self.next[pick] += 1;
        Some((pick, self.next[pick] - 1))
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

    /// Every (task, sample) is played exactly once, in either schedule; the
    /// plain one in task order, the sticky one keeping an environment on
    /// its task.
    #[test]
    fn schedules_take_every_sample_once() {
        let mut plain = Schedule::new(3, 2, false);
        let order: Vec<_> = std::iter::from_fn(|| plain.take(None)).collect();
        assert_eq!(order, [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)]);

        let mut sticky = Schedule::new(3, 3, true);
        assert_eq!(sticky.take(None), Some((0, 0)));
        assert_eq!(sticky.take(None), Some((1, 0)));
        assert_eq!(sticky.take(Some(0)), Some((0, 1)));
        assert_eq!(sticky.take(Some(0)), Some((0, 2)));
        // Task 0 is done: the environment claims task 2.
        assert_eq!(sticky.take(Some(0)), Some((2, 0)));
        // Every task is claimed: help the one with most samples left.
        assert_eq!(sticky.take(None), Some((1, 1)));
        let mut rest: Vec<_> = std::iter::from_fn(|| sticky.take(Some(2))).collect();
        rest.sort_unstable();
        assert_eq!(rest, [(1, 2), (2, 1), (2, 2)]);
    }

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
