//! Jobs that wire Stage 1 to the store: exploration in resumable, shardable
//! chunks.
//!
//! An exploration job with run id R writes its trees as a sequence of
//! committed runs `R.c00000`, `R.c00001`, … of `chunk_tasks` tasks each (SQL
//! selects the whole job with `run_id LIKE 'R.%'`). Each chunk's commit marker
//! lists the task indices it covers (and how many rollbacks went by native
//! snapshot and by replay), so a job that is killed and started again
//! with the same run id skips the committed tasks and redoes only the rest; the
//! half-written chunk of the killed process stays invisible (and `leafe gc`
//! collects it). `--shard i/n` keeps the tasks whose index ≡ i (mod n), so n
//! workers can share one store with one run id: their chunk ids differ by the
//! shard suffix `R.s<i>of<n>.c…`.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::env::{Env, EnvError};
use crate::explore::rows::TreeBatcher;
use crate::explore::{ExploreConfig, ExploreError, Task, TaskTree, World, explore};
use crate::policy::Policy;
use crate::store::{RunSpec, Store, StoreError};
use crate::train::{TrainError, load_policy};

/// Errors of a job.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Loading the model failed.
    #[error(transparent)]
    Train(#[from] TrainError),
    /// Exploration failed.
    #[error(transparent)]
    Explore(#[from] ExploreError),
    /// The environment failed.
    #[error(transparent)]
    Env(#[from] EnvError),
    /// A job that cannot run as asked.
    #[error("{0}")]
    Invalid(String),
}

/// Result type of jobs.
pub type Result<T, E = JobError> = std::result::Result<T, E>;

/// Which part of the tasks a worker takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// This worker's index, `0..count`.
    pub index: u64,
    /// Number of workers.
    pub count: u64,
}

impl Shard {
    /// Everything.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Parses `i/n`.
    pub fn parse(s: &str) -> Result<Shard, String> {
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}` is not i/n"))?;
        let (index, count): (u64, u64) = (
            i.trim().parse().map_err(|_| format!("`{s}`: bad index"))?,
            n.trim().parse().map_err(|_| format!("`{s}`: bad count"))?,
        );
        if count == 0 || index >= count {
            return Err(format!("`{s}`: need 0 <= i < n"));
        }
        Ok(Shard { index, count })
    }

    fn contains(&self, task: u64) -> bool {
        task % self.count == self.index
    }
}

/// An exploration job over tasks of type `T`.
#[derive(Debug, Clone)]
pub struct ExploreJob<T> {
    /// Base run id R (chunks are `R[.s<i>of<n>].cNNNNN`).
    pub run_id: String,
    /// Model to act with (`models/<name>` in the store).
    pub model: String,
    /// Where the levels came from (recorded, and the task source prefix).
    pub levels_source: String,
    /// The tasks, in file order (task index = position).
    pub levels: Vec<T>,
    /// Dataset split recorded on the episodes.
    pub split: Option<String>,
    /// This worker's shard.
    pub shard: Shard,
    /// Tasks per committed chunk.
    pub chunk_tasks: usize,
    /// Stage 1 settings.
    pub config: ExploreConfig,
    /// The command line, recorded.
    pub command_line: String,
}

/// What the job did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ExploreSummary {
    /// Tasks explored by this invocation.
    pub tasks: usize,
    /// Tasks skipped because an earlier invocation committed them.
    pub skipped: usize,
    /// Chunks committed.
    pub chunks: usize,
    /// Episodes written.
    pub episodes: usize,
    /// Reflections written.
    pub reflections: usize,
    /// Tasks whose root or some branch succeeded.
    pub solved_tasks: usize,
    /// Tasks solved by the root rollout.
    pub root_solved: usize,
    /// Environment steps executed (replayed ones included).
    pub env_steps: usize,
    /// Tasks the environment failed (recorded, the job went on).
    pub env_errors: usize,
    /// The first of those failures: the task id and why.
    pub first_env_error: Option<String>,
    /// Rollbacks by native snapshot.
    pub rollbacks_snapshot: usize,
    /// Rollbacks by reset and replay of the action prefix.
    pub rollbacks_replay: usize,
}

/// Progress of a job, reported after each finished task.
pub trait Progress {
    /// Called with the summary so far and the number of tasks to do.
    fn update(&self, summary: &ExploreSummary, total: usize);
}

impl Progress for () {
    fn update(&self, _: &ExploreSummary, _: usize) {}
}

impl<T: Clone + Send + Sync> ExploreJob<T> {
    fn prefix(&self) -> String {
        if self.shard.count == 1 {
            format!("{}.c", self.run_id)
        } else {
            format!(
                "{}.s{}of{}.c",
                self.run_id, self.shard.index, self.shard.count
            )
        }
    }

    fn identity(&self) -> serde_json::Value {
        serde_json::json!({
            "model": self.model,
            "levels": self.levels_source,
            "split": self.split,
            "shard": self.shard,
            "config": self.config,
        })
    }

    /// Runs (or resumes) the job in `world`: the store's model `self.model`
    /// acts with the world's encoder and guide, the world's reflector
    /// reflects.
    pub async fn run<W: World>(
        &self,
        world: &W,
        store: &Store,
        progress: &(dyn Progress + Sync),
    ) -> Result<ExploreSummary>
    where
        W::Env: Env<Task = T>,
    {
        let policy = load_policy(store, &self.model, world.encoder())
            .await?
            .with_guide(world.guide(&self.config.guidance));
        let reflector = world.reflector(&self.config.reflector);
        let max_steps = self.config.max_steps as usize;
        self.run_counted(
            store,
            world.name(),
            &|| world.make_env(max_steps),
            &policy,
            reflector.as_ref(),
            None,
            progress,
            &|| world.consulted(),
        )
        .await
    }

    /// Runs (or resumes) the job with any policy and reflector, in
    /// environments from `make_env` (an LLM over an external process, say).
    /// `self.model` is recorded as the acting policy's name. The model calls
    /// the agents logged to `calls` go to each chunk's `llm_calls`.
    #[allow(clippy::too_many_arguments)]
    pub async fn run_with<E>(
        &self,
        store: &Store,
        env_name: &str,
        make_env: &(dyn Fn() -> crate::env::Result<E> + Sync),
        policy: &(dyn Policy + '_),
        reflector: &(dyn crate::reflect::Reflector + '_),
        calls: Option<&crate::policy::llm::CallLog>,
        progress: &(dyn Progress + Sync),
    ) -> Result<ExploreSummary>
    where
        E: Env<Task = T>,
    {
        self.run_counted(
            store,
            env_name,
            make_env,
            policy,
            reflector,
            calls,
            progress,
            &Vec::new,
        )
        .await
    }

    /// [`ExploreJob::run_with`], recording in each chunk's commit marker
    /// (`meta.consulted`) how much the counters of `consulted` (see
    /// [`World::consulted`]) rose while the chunk was explored. The counters
    /// are per thread, and a chunk is explored on the thread that reads them
    /// before and after, so jobs running side by side each count their own.
    #[allow(clippy::too_many_arguments)]
    async fn run_counted<E>(
        &self,
        store: &Store,
        env_name: &str,
        make_env: &(dyn Fn() -> crate::env::Result<E> + Sync),
        policy: &(dyn Policy + '_),
        reflector: &(dyn crate::reflect::Reflector + '_),
        calls: Option<&crate::policy::llm::CallLog>,
        progress: &(dyn Progress + Sync),
        consulted: &(dyn Fn() -> Vec<(&'static str, u64)> + Sync),
    ) -> Result<ExploreSummary>
    where
        E: Env<Task = T>,
    {
        crate::store::validate_run_id(&self.run_id)?;
        if self.chunk_tasks == 0 {
            return Err(JobError::Invalid("chunk_tasks must be at least 1".into()));
        }
        let (actions, env_description) = {
            let probe = make_env()?;
            (probe.action_space().clone(), probe.describe())
        };
        let prefix = self.prefix();
        let identity = self.identity();
        let mut done = BTreeSet::new();
        for marker in store.commits().await? {
            if !marker.run_id.starts_with(&prefix) {
                continue;
            }
            if marker.meta.get("job") != Some(&identity) {
                return Err(JobError::Invalid(format!(
                    "run id `{}` was started with other settings (chunk {}); resume with the same model, levels, \
                     shard and config, or choose another --run-id",
                    self.run_id, marker.run_id
                )));
            }
            for t in marker.meta["tasks"].as_array().into_iter().flatten() {
                done.insert(t.as_u64().unwrap_or(u64::MAX));
            }
        }
        let todo: Vec<Task<T>> = self
            .levels
            .iter()
            .enumerate()
            .map(|(i, level)| (i as u64, level))
            .filter(|(i, _)| self.shard.contains(*i) && !done.contains(i))
            .map(|(index, level)| Task {
                index,
                task: level.clone(),
                source: format!("{}#{index}", self.levels_source),
            })
            .collect();
        let mut summary = ExploreSummary {
            skipped: done.len(),
            ..Default::default()
        };
        let total = todo.len();
        progress.update(&summary, total);
        let mut chunk_no = store
            .runs()
            .await?
            .iter()
            .filter(|r| r.run_id.starts_with(&prefix))
            .count();
        for chunk in todo.chunks(self.chunk_tasks) {
            let tasks: Vec<u64> = chunk.iter().map(|t| t.index).collect();
            // Explore the chunk (CPU-bound) before opening the run, so a crash
            // mid-exploration leaves no lock behind.
            let mut trees: Vec<TaskTree> = Vec::with_capacity(chunk.len());
            let before = consulted();
            tokio::task::block_in_place(|| {
                explore(
                    chunk.to_vec(),
                    make_env,
                    policy,
                    reflector,
                    &self.config,
                    |tree| {
                        summary.tasks += 1;
                        summary.episodes += tree.episodes.len();
                        summary.reflections += tree.reflections.len();
                        summary.env_steps += tree.interaction_cost;
                        let (snapshot, replay) = tree.rollbacks();
                        summary.rollbacks_snapshot += snapshot;
                        summary.rollbacks_replay += replay;
                        summary.root_solved +=
                            usize::from(tree.episodes.first().is_some_and(|e| e.success));
                        if let Some(e) = &tree.env_error {
                            summary.env_errors += 1;
                            if summary.first_env_error.is_none() {
                                summary.first_env_error =
                                    Some(format!("task {}: {e}", tree.task_id));
                            }
                            tracing::warn!(task = %tree.task_source, "task failed by the environment: {e}");
                        }
                        summary.solved_tasks +=
                            usize::from(tree.episodes.iter().any(|e| e.success));
                        trees.push(tree);
                        progress.update(&summary, total);
                        Ok(())
                    },
                )
            })?;
            let rose: serde_json::Map<String, serde_json::Value> = consulted()
                .into_iter()
                .map(|(name, now)| {
                    let was = before.iter().find(|b| b.0 == name).map_or(0, |b| b.1);
                    (name.to_string(), now.saturating_sub(was).into())
                })
                .collect();
            trees.sort_by_key(|t| t.task_index);
            let (by_snapshot, by_replay) = trees.iter().fold((0, 0), |(s, r), t| {
                let (ts, tr) = t.rollbacks();
                (s + ts, r + tr)
            });
            let mut run = loop {
                let spec = RunSpec {
                    run_id: format!("{prefix}{chunk_no:05}"),
                    kind: "explore".into(),
                    seed: Some(self.config.seed as i64),
                    config: serde_json::json!({
                        "job": identity,
                        "run_id": self.run_id,
                        "tasks": tasks,
                        "policy": policy.name(),
                        "env": env_name,
                        "env_description": env_description,
                    }),
                    command_line: self.command_line.clone(),
                    meta: serde_json::json!({
                        "job": identity,
                        "tasks": tasks,
                        "rollbacks": { "snapshot": by_snapshot, "replay": by_replay },
                        "consulted": rose.clone(),
                    }),
                };
                chunk_no += 1;
                match store.begin_run(spec).await {
                    Ok(run) => break run,
                    Err(StoreError::RunExists { .. }) => continue,
                    Err(e) => return Err(e.into()),
                }
            };
            let mut batcher = TreeBatcher::new(64 * 1024, actions.clone());
            for tree in &trees {
                batcher
                    .push(&mut run, tree, &self.model, self.split.as_deref())
                    .await?;
            }
            batcher.flush(&mut run).await?;
            if let Some(log) = calls {
                crate::explore::rows::write_llm_calls(&mut run, &log.take(), 16 * 1024).await?;
            }
            run.commit().await?;
            summary.chunks += 1;
        }
        Ok(summary)
    }
}
