//! The one mapping from Stage 1's records to the store's rows: explored
//! trees ([`TreeBatcher`]), plain episodes of evaluation and GRPO
//! ([`PlainEpisode`]) and their steps ([`push_steps`]). Every writer of
//! `episodes`, `steps` and `reflections` rows goes through here, so a column
//! means the same thing whoever wrote it.
//!
//! Step rows: `action` is the action's index in the environment's choice
//! space (-1 for a free-text action), `done` is set on an episode's last
//! stored step, `mistake` is the step's first mistake flag, `llm_call_id`
//! the model request that chose the action ([`write_llm_calls`] writes
//! those requests).

use crate::env::{ActionSpace, Step};
use crate::store::{
    AncestryBatchBuilder, EpisodeBatchBuilder, EpisodeRow, LlmCallBatchBuilder, LlmCallRow,
    ReflectionBatchBuilder, ReflectionRow, Result, RunWriter, StepBatchBuilder, StepRow, Table,
    TreeNode, now_us,
};

use super::TaskTree;

/// Appends the step rows of one episode (`steps` are its own steps; the last
/// one is marked `done`).
pub fn push_steps(
    builder: &mut StepBatchBuilder,
    episode_id: i64,
    steps: &[Step],
    experience_in_context: bool,
) {
    let last = steps.len().saturating_sub(1);
    for (i, s) in steps.iter().enumerate() {
        let flags = s.transition.flags.join(",");
        let legal = s
            .legal
            .as_ref()
            .map(|l| serde_json::to_string(l).expect("strings serialize"));
        builder.push(&StepRow {
            episode_id,
            t: s.t as i32,
            observation: &s.observation.text,
            state: s.observation.state.as_deref(),
            action: s.action_index.map_or(-1, |a| a as i32),
            action_text: &s.action,
            reward: s.transition.reward,
            done: i == last,
            feedback: &s.transition.feedback,
            mistake: s.transition.mistake(),
            log_prob: s.log_prob,
            experience_in_context,
            llm_call_id: s.call,
            flags: (!flags.is_empty()).then_some(flags.as_str()),
            info: s.transition.info.as_deref(),
            legal_actions: legal.as_deref(),
        });
    }
}

/// An episode without a tree: an evaluation sample or a GRPO sample (its
/// own tree, no parent, depth 0).
#[derive(Debug, Clone)]
pub struct PlainEpisode<'a> {
    /// Id, unique within the run.
    pub id: i64,
    /// Sample number for its task.
    pub sample_index: usize,
    /// `eval`, `grpo`, …
    pub origin: &'a str,
    /// Stable task id.
    pub task_id: &'a str,
    /// Where the task came from.
    pub task_source: Option<&'a str>,
    /// Dataset split.
    pub split: Option<&'a str>,
    /// Policy name.
    pub policy: &'a str,
    /// Whether it solved the task.
    pub success: bool,
    /// How it ended.
    pub status: &'a str,
    /// Sum of rewards.
    pub episode_return: f64,
    /// Steps taken (all executed: the interaction cost).
    pub length: usize,
    /// Why the environment failed, for status `env_error`.
    pub error: Option<&'a str>,
}

impl PlainEpisode<'_> {
    /// Appends its `episodes` row.
    pub fn push(&self, builder: &mut EpisodeBatchBuilder, created_at_us: i64) {
        builder.push(&EpisodeRow {
            episode_id: self.id,
            tree_id: self.id,
            parent_episode_id: None,
            reflection_id: None,
            rollback_step: None,
            depth: 0,
            sample_index: self.sample_index as i32,
            origin: self.origin,
            task_id: self.task_id,
            task_source: self.task_source,
            split: self.split,
            policy: self.policy,
            experience_in_context: false,
            success: self.success,
            status: self.status,
            episode_return: self.episode_return,
            length: self.length as i32,
            interaction_cost: self.length as i64,
            created_at_us,
            error: self.error,
        });
    }
}

/// Buffers trees' rows and hands full batches to a run writer.
#[derive(Debug)]
pub struct TreeBatcher {
    episodes: EpisodeBatchBuilder,
    steps: StepBatchBuilder,
    reflections: ReflectionBatchBuilder,
    ancestry: AncestryBatchBuilder,
    nodes: Vec<TreeNode>,
    actions: ActionSpace,
    /// Step rows per batch before a flush.
    pub batch_rows: usize,
}

impl TreeBatcher {
    /// A batcher flushing every `batch_rows` step rows, for trees of an
    /// environment with this action space (critical actions are stored by
    /// index too).
    pub fn new(batch_rows: usize, actions: ActionSpace) -> TreeBatcher {
        TreeBatcher {
            episodes: EpisodeBatchBuilder::default(),
            steps: StepBatchBuilder::default(),
            reflections: ReflectionBatchBuilder::default(),
            ancestry: AncestryBatchBuilder::default(),
            nodes: Vec::new(),
            actions,
            batch_rows: batch_rows.max(1),
        }
    }

    /// Adds a tree's rows; flushes to `run` when the buffers are full.
    ///
    /// # Errors
    /// The store's, on a flush.
    pub async fn push(
        &mut self,
        run: &mut RunWriter,
        tree: &TaskTree,
        policy: &str,
        split: Option<&str>,
    ) -> Result<()> {
        let created_at_us = now_us();
        let Some(root) = tree.root_id() else {
            return Ok(());
        };
        for e in &tree.episodes {
            push_steps(&mut self.steps, e.id, &e.steps, e.experience_in_context);
            self.episodes.push(&EpisodeRow {
                episode_id: e.id,
                tree_id: root,
                parent_episode_id: e.parent,
                reflection_id: e.reflection,
                rollback_step: e.rollback_step.map(|t| t as i32),
                depth: e.depth as i32,
                sample_index: e.sample_index as i32,
                origin: e.origin.as_str(),
                task_id: &tree.task_id,
                task_source: Some(&tree.task_source),
                split,
                policy,
                experience_in_context: e.experience_in_context,
                success: e.success,
                status: e.status,
                episode_return: e.episode_return,
                length: e.length as i32,
                interaction_cost: e.interaction_cost() as i64,
                created_at_us,
                error: if e.status == "env_error" {
                    tree.env_error.as_deref()
                } else {
                    None
                },
            });
        }
        // Each episode's path from the root, flattened while the tree is at
        // hand (the `ancestry` table: queries join it instead of walking).
        self.nodes.clear();
        self.nodes.extend(tree.episodes.iter().map(|e| TreeNode {
            id: e.id,
            parent: e.parent,
            rollback_step: e.rollback_step.map(|t| t as i32),
            length: e.length as i32,
        }));
        self.ancestry.push_tree(&self.nodes, |_| true);
        for r in &tree.reflections {
            let x = &r.experience;
            let suggested = x.suggested_actions.join(",");
            self.reflections.push(&ReflectionRow {
                reflection_id: r.id,
                episode_id: r.episode,
                tree_id: root,
                trigger_step: x.trigger_step as i32,
                rollback_step: x.tau as i32,
                critical_action: x
                    .critical_action
                    .as_deref()
                    .and_then(|a| self.actions.index_of(a))
                    .map(|a| a as i32),
                critical_action_text: x.critical_action.as_deref(),
                category: &x.category,
                diagnosis: &x.diagnosis,
                fix: &x.fix,
                suggested_actions: (!suggested.is_empty()).then_some(suggested.as_str()),
                reflector: &r.reflector,
                created_at_us,
                llm_call_id: x.call,
            });
        }
        if self.steps.len() >= self.batch_rows {
            self.flush(run).await?;
        }
        Ok(())
    }

    /// Writes whatever is buffered.
    ///
    /// # Errors
    /// The store's.
    pub async fn flush(&mut self, run: &mut RunWriter) -> Result<()> {
        if !self.steps.is_empty() {
            let b = self.steps.finish();
            run.write(Table::Steps, &b).await?;
        }
        if !self.episodes.is_empty() {
            let b = self.episodes.finish();
            run.write(Table::Episodes, &b).await?;
        }
        if !self.reflections.is_empty() {
            let b = self.reflections.finish();
            run.write(Table::Reflections, &b).await?;
        }
        if !self.ancestry.is_empty() {
            let b = self.ancestry.finish();
            run.write(Table::Ancestry, &b).await?;
        }
        Ok(())
    }
}

/// Writes the `llm_calls` rows of `calls` to `run` (nothing when empty),
/// in batches of `batch_rows`.
///
/// # Errors
/// The store's.
pub async fn write_llm_calls(
    run: &mut RunWriter,
    calls: &[crate::policy::llm::LlmCall],
    batch_rows: usize,
) -> Result<()> {
    let mut b = LlmCallBatchBuilder::default();
    for c in calls {
        b.push(&LlmCallRow {
            call_id: c.call_id,
            kind: c.kind,
            attempt: c.attempt,
            model: &c.model,
            request_key: &c.request_key,
            seed: c.seed,
            messages: &c.messages,
            completion: c.completion.as_deref(),
            parsed: c.parsed.as_deref(),
            valid: c.valid,
            error: c.error.as_deref(),
            prompt_tokens: c.prompt_tokens,
            completion_tokens: c.completion_tokens,
            log_prob: c.log_prob,
            latency_ms: c.latency_ms,
            retries: c.retries,
            cached: c.cached,
            response: c.response.as_deref(),
            created_at_us: c.created_at_us,
        });
        if b.len() >= batch_rows.max(1) {
            run.write(Table::LlmCalls, &b.finish()).await?;
        }
    }
    if !b.is_empty() {
        run.write(Table::LlmCalls, &b.finish()).await?;
    }
    Ok(())
}
