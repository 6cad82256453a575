//! Stage 1 output into the store: explored trees as `episodes`, `steps` and
//! `reflections` rows, batched and streamed into a run.

use crate::explore::TaskTree;

use super::{
    EpisodeBatchBuilder, EpisodeRow, ReflectionBatchBuilder, ReflectionRow, Result, RunWriter,
    StepBatchBuilder, StepRow, Table, now_us,
};

/// Buffers trees' rows and hands full batches to a run writer.
#[derive(Debug, Default)]
pub struct TreeBatcher {
    episodes: EpisodeBatchBuilder,
    steps: StepBatchBuilder,
    reflections: ReflectionBatchBuilder,
    /// Rows per batch before a flush.
    pub batch_rows: usize,
}

impl TreeBatcher {
    /// A batcher flushing every `batch_rows` step rows.
    pub fn new(batch_rows: usize) -> TreeBatcher {
        TreeBatcher {
            batch_rows: batch_rows.max(1),
            ..Default::default()
        }
    }

    /// Adds a tree's rows; flushes to `run` when the buffers are full.
    pub async fn push(
        &mut self,
        run: &mut RunWriter,
        tree: &TaskTree,
        policy: &str,
        split: Option<&str>,
    ) -> Result<()> {
        let created_at_us = now_us();
        let root = tree.root_id();
        for e in &tree.episodes {
            for s in &e.steps {
                self.steps.push(&StepRow {
                    episode_id: e.id,
                    t: s.t as i32,
                    observation: &s.observation,
                    state: Some(&s.state),
                    action: s.action as i32,
                    action_text: crate::env::sokoban::board::DIR_NAMES[s.action],
                    reward: s.reward,
                    done: s.done,
                    feedback: &s.feedback,
                    mistake: s.mistake,
                    log_prob: s.log_prob,
                    experience_in_context: e.experience_in_context,
                });
            }
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
                interaction_cost: e.steps.len() as i64,
                created_at_us,
            });
        }
        for r in &tree.reflections {
            let x = &r.experience;
            let suggested = x
                .suggested_actions
                .iter()
                .map(|&a| crate::env::sokoban::board::DIR_NAMES[a])
                .collect::<Vec<_>>()
                .join(",");
            self.reflections.push(&ReflectionRow {
                reflection_id: r.id,
                episode_id: r.episode,
                tree_id: root,
                trigger_step: x.trigger_step as i32,
                rollback_step: x.tau as i32,
                critical_action: x.critical_action.map(|a| a as i32),
                critical_action_text: x
                    .critical_action
                    .map(|a| crate::env::sokoban::board::DIR_NAMES[a]),
                category: x.category.as_str(),
                diagnosis: &x.diagnosis,
                fix: &x.fix,
                suggested_actions: (!suggested.is_empty()).then_some(suggested.as_str()),
                reflector: &r.reflector,
                created_at_us,
            });
        }
        if self.steps.len() >= self.batch_rows {
            self.flush(run).await?;
        }
        Ok(())
    }

    /// Writes whatever is buffered.
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
        Ok(())
    }
}
