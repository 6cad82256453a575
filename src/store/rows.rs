//! Typed row builders for the store's tables: the writer side of `schemas/`.
//!
//! Producers (synth, explore, eval) push borrowed rows and get record batches
//! whose schema is exactly the table's (a test checks each builder against its
//! schema file). Builders append straight into Arrow buffers, so pushing a row
//! allocates nothing per row.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Float32Builder, Float64Builder, Int32Builder,
    Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::record_batch::RecordBatch;

use super::Table;

/// One row of `episodes` (see `schemas/episodes.toml` for each field's meaning).
#[derive(Debug, Clone)]
pub struct EpisodeRow<'a> {
    pub episode_id: i64,
    pub tree_id: i64,
    pub parent_episode_id: Option<i64>,
    pub reflection_id: Option<i64>,
    pub rollback_step: Option<i32>,
    pub depth: i32,
    pub sample_index: i32,
    pub origin: &'a str,
    pub task_id: &'a str,
    pub task_source: Option<&'a str>,
    pub split: Option<&'a str>,
    pub policy: &'a str,
    pub experience_in_context: bool,
    pub success: bool,
    pub status: &'a str,
    pub episode_return: f64,
    pub length: i32,
    pub interaction_cost: i64,
    pub created_at_us: i64,
}

/// One row of `steps` (see `schemas/steps.toml`).
#[derive(Debug, Clone)]
pub struct StepRow<'a> {
    pub episode_id: i64,
    pub t: i32,
    pub observation: &'a str,
    pub state: Option<&'a [u8]>,
    pub action: i32,
    pub action_text: &'a str,
    pub reward: f32,
    pub done: bool,
    pub feedback: &'a str,
    pub mistake: Option<&'a str>,
    pub log_prob: f32,
    pub experience_in_context: bool,
}

/// One row of `reflections` (see `schemas/reflections.toml`).
#[derive(Debug, Clone)]
pub struct ReflectionRow<'a> {
    pub reflection_id: i64,
    pub episode_id: i64,
    pub tree_id: i64,
    pub trigger_step: i32,
    pub rollback_step: i32,
    pub critical_action: Option<i32>,
    pub critical_action_text: Option<&'a str>,
    pub category: &'a str,
    pub diagnosis: &'a str,
    pub fix: &'a str,
    pub suggested_actions: Option<&'a str>,
    pub reflector: &'a str,
    pub created_at_us: i64,
}

fn ts() -> TimestampMicrosecondBuilder {
    TimestampMicrosecondBuilder::new().with_timezone("UTC")
}

fn batch(table: Table, columns: Vec<ArrayRef>) -> RecordBatch {
    RecordBatch::try_new(table.schema().arrow_schema(), columns).unwrap_or_else(|e| {
        panic!("row builder for {table} disagrees with schemas/{table}.toml: {e}")
    })
}

/// Accumulates `episodes` rows into a record batch.
#[derive(Debug, Default)]
pub struct EpisodeBatchBuilder {
    episode_id: Int64Builder,
    tree_id: Int64Builder,
    parent_episode_id: Int64Builder,
    reflection_id: Int64Builder,
    rollback_step: Int32Builder,
    depth: Int32Builder,
    sample_index: Int32Builder,
    origin: StringBuilder,
    task_id: StringBuilder,
    task_source: StringBuilder,
    split: StringBuilder,
    policy: StringBuilder,
    experience_in_context: BooleanBuilder,
    success: BooleanBuilder,
    status: StringBuilder,
    episode_return: Float64Builder,
    length: Int32Builder,
    interaction_cost: Int64Builder,
    created_at: Option<TimestampMicrosecondBuilder>,
    rows: usize,
}

impl EpisodeBatchBuilder {
    /// Appends a row.
    pub fn push(&mut self, r: &EpisodeRow<'_>) {
        self.episode_id.append_value(r.episode_id);
        self.tree_id.append_value(r.tree_id);
        self.parent_episode_id.append_option(r.parent_episode_id);
        self.reflection_id.append_option(r.reflection_id);
        self.rollback_step.append_option(r.rollback_step);
        self.depth.append_value(r.depth);
        self.sample_index.append_value(r.sample_index);
        self.origin.append_value(r.origin);
        self.task_id.append_value(r.task_id);
        self.task_source.append_option(r.task_source);
        self.split.append_option(r.split);
        self.policy.append_value(r.policy);
        self.experience_in_context
            .append_value(r.experience_in_context);
        self.success.append_value(r.success);
        self.status.append_value(r.status);
        self.episode_return.append_value(r.episode_return);
        self.length.append_value(r.length);
        self.interaction_cost.append_value(r.interaction_cost);
        self.created_at
            .get_or_insert_with(ts)
            .append_value(r.created_at_us);
        self.rows += 1;
    }

    /// Rows pushed since the last `finish`.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether no rows are pending.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Takes the pending rows as a batch with the `episodes` schema.
    pub fn finish(&mut self) -> RecordBatch {
        self.rows = 0;
        batch(
            Table::Episodes,
            vec![
                Arc::new(self.episode_id.finish()),
                Arc::new(self.tree_id.finish()),
                Arc::new(self.parent_episode_id.finish()),
                Arc::new(self.reflection_id.finish()),
                Arc::new(self.rollback_step.finish()),
                Arc::new(self.depth.finish()),
                Arc::new(self.sample_index.finish()),
                Arc::new(self.origin.finish()),
                Arc::new(self.task_id.finish()),
                Arc::new(self.task_source.finish()),
                Arc::new(self.split.finish()),
                Arc::new(self.policy.finish()),
                Arc::new(self.experience_in_context.finish()),
                Arc::new(self.success.finish()),
                Arc::new(self.status.finish()),
                Arc::new(self.episode_return.finish()),
                Arc::new(self.length.finish()),
                Arc::new(self.interaction_cost.finish()),
                Arc::new(self.created_at.get_or_insert_with(ts).finish()),
            ],
        )
    }
}

/// Accumulates `steps` rows into a record batch.
#[derive(Debug, Default)]
pub struct StepBatchBuilder {
    episode_id: Int64Builder,
    t: Int32Builder,
    observation: StringBuilder,
    state: BinaryBuilder,
    action: Int32Builder,
    action_text: StringBuilder,
    reward: Float32Builder,
    done: BooleanBuilder,
    feedback: StringBuilder,
    mistake: StringBuilder,
    log_prob: Float32Builder,
    experience_in_context: BooleanBuilder,
    rows: usize,
}

impl StepBatchBuilder {
    /// Appends a row.
    pub fn push(&mut self, r: &StepRow<'_>) {
        self.episode_id.append_value(r.episode_id);
        self.t.append_value(r.t);
        self.observation.append_value(r.observation);
        self.state.append_option(r.state);
        self.action.append_value(r.action);
        self.action_text.append_value(r.action_text);
        self.reward.append_value(r.reward);
        self.done.append_value(r.done);
        self.feedback.append_value(r.feedback);
        self.mistake.append_option(r.mistake);
        self.log_prob.append_value(r.log_prob);
        self.experience_in_context
            .append_value(r.experience_in_context);
        self.rows += 1;
    }

    /// Rows pushed since the last `finish`.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether no rows are pending.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Takes the pending rows as a batch with the `steps` schema.
    pub fn finish(&mut self) -> RecordBatch {
        self.rows = 0;
        batch(
            Table::Steps,
            vec![
                Arc::new(self.episode_id.finish()),
                Arc::new(self.t.finish()),
                Arc::new(self.observation.finish()),
                Arc::new(self.state.finish()),
                Arc::new(self.action.finish()),
                Arc::new(self.action_text.finish()),
                Arc::new(self.reward.finish()),
                Arc::new(self.done.finish()),
                Arc::new(self.feedback.finish()),
                Arc::new(self.mistake.finish()),
                Arc::new(self.log_prob.finish()),
                Arc::new(self.experience_in_context.finish()),
            ],
        )
    }
}

/// Accumulates `reflections` rows into a record batch.
#[derive(Debug, Default)]
pub struct ReflectionBatchBuilder {
    reflection_id: Int64Builder,
    episode_id: Int64Builder,
    tree_id: Int64Builder,
    trigger_step: Int32Builder,
    rollback_step: Int32Builder,
    critical_action: Int32Builder,
    critical_action_text: StringBuilder,
    category: StringBuilder,
    diagnosis: StringBuilder,
    fix: StringBuilder,
    suggested_actions: StringBuilder,
    reflector: StringBuilder,
    created_at: Option<TimestampMicrosecondBuilder>,
    rows: usize,
}

impl ReflectionBatchBuilder {
    /// Appends a row.
    pub fn push(&mut self, r: &ReflectionRow<'_>) {
        self.reflection_id.append_value(r.reflection_id);
        self.episode_id.append_value(r.episode_id);
        self.tree_id.append_value(r.tree_id);
        self.trigger_step.append_value(r.trigger_step);
        self.rollback_step.append_value(r.rollback_step);
        self.critical_action.append_option(r.critical_action);
        self.critical_action_text
            .append_option(r.critical_action_text);
        self.category.append_value(r.category);
        self.diagnosis.append_value(r.diagnosis);
        self.fix.append_value(r.fix);
        self.suggested_actions.append_option(r.suggested_actions);
        self.reflector.append_value(r.reflector);
        self.created_at
            .get_or_insert_with(ts)
            .append_value(r.created_at_us);
        self.rows += 1;
    }

    /// Rows pushed since the last `finish`.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether no rows are pending.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Takes the pending rows as a batch with the `reflections` schema.
    pub fn finish(&mut self) -> RecordBatch {
        self.rows = 0;
        batch(
            Table::Reflections,
            vec![
                Arc::new(self.reflection_id.finish()),
                Arc::new(self.episode_id.finish()),
                Arc::new(self.tree_id.finish()),
                Arc::new(self.trigger_step.finish()),
                Arc::new(self.rollback_step.finish()),
                Arc::new(self.critical_action.finish()),
                Arc::new(self.critical_action_text.finish()),
                Arc::new(self.category.finish()),
                Arc::new(self.diagnosis.finish()),
                Arc::new(self.fix.finish()),
                Arc::new(self.suggested_actions.finish()),
                Arc::new(self.reflector.finish()),
                Arc::new(self.created_at.get_or_insert_with(ts).finish()),
            ],
        )
    }
}
