//! The `ancestry` table: each explored tree's parent pointers flattened into
//! paths when the tree is written, so that no query walks the tree.
//!
//! A branch stores only its own steps (t >= its rollback step); its prefix
//! is its parent's, and the parent's prefix its grandparent's. For every
//! episode of a tree (roots and branches) the table holds one row per
//! episode on its path from the root, the episode itself included, with
//! `end_step`: the path holds that ancestor's steps with `t < end_step` (the
//! rollback step of the next episode on the path, or the episode's own
//! length for the episode itself). An episode's full trajectory is then one
//! join, `ancestry ⋈ steps ON ancestor_episode_id = episode_id AND t <
//! end_step`, with no recursion.
//!
//! Rows are built by [`AncestryBatchBuilder::push_tree`] from a tree's
//! [`TreeNode`]s, which the writers of trees call with the tree they write
//! (so the rows go through the same [`super::RunWriter`] and the same
//! commit as the episodes). The query layer builds the rows of runs
//! committed before this table existed with the same function, on read.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int32Builder, Int64Builder};
use arrow::record_batch::RecordBatch;

use super::Table;

/// The tree pointers of one episode, as the `episodes` table holds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeNode {
    /// The episode id.
    pub id: i64,
    /// The episode it branched from (None for a root).
    pub parent: Option<i64>,
    /// The step where it left its parent (None for a root).
    pub rollback_step: Option<i32>,
    /// Steps of its full trajectory, prefix included.
    pub length: i32,
}

/// Accumulates `ancestry` rows into a record batch (see the module docs).
#[derive(Debug, Default)]
pub struct AncestryBatchBuilder {
    episode_id: Int64Builder,
    ancestor_episode_id: Int64Builder,
    ancestor_depth: Int32Builder,
    end_step: Int32Builder,
    rows: usize,
}

impl AncestryBatchBuilder {
    /// Appends the rows of every episode of `nodes` for which `include`
    /// holds: its path up the parent pointers to the first episode without
    /// a parent in `nodes` (a root, or an episode whose parent is missing),
    /// nearest first. A pointer cycle (never written by leafe) stops the
    /// walk after `nodes.len()` steps.
    pub fn push_tree(&mut self, nodes: &[TreeNode], include: impl Fn(&TreeNode) -> bool) {
        let by_id: HashMap<i64, &TreeNode> = nodes.iter().map(|n| (n.id, n)).collect();
        let mut path: Vec<(i64, i32)> = Vec::new();
        for node in nodes.iter().filter(|n| include(n)) {
            path.clear();
            path.push((node.id, node.length));
            let mut child = node;
            while let Some(parent) = child.parent.and_then(|p| by_id.get(&p)) {
                if path.len() > nodes.len() {
                    break;
                }
                path.push((parent.id, child.rollback_step.unwrap_or(0)));
                child = parent;
            }
            let top = path.len() - 1;
            for (i, &(ancestor, end_step)) in path.iter().enumerate() {
                self.episode_id.append_value(node.id);
                self.ancestor_episode_id.append_value(ancestor);
                self.ancestor_depth.append_value((top - i) as i32);
                self.end_step.append_value(end_step);
                self.rows += 1;
            }
        }
    }

    /// Rows pushed since the last `finish`.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether no rows are pending.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Takes the pending rows as a batch with the table's schema.
    pub fn finish(&mut self) -> RecordBatch {
        self.rows = 0;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.episode_id.finish()),
            Arc::new(self.ancestor_episode_id.finish()),
            Arc::new(self.ancestor_depth.finish()),
            Arc::new(self.end_step.finish()),
        ];
        RecordBatch::try_new(Table::Ancestry.schema().arrow_schema(), columns)
            .expect("the ancestry builder matches schemas/ancestry.toml")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::AsArray;
    use arrow::datatypes::{Int32Type, Int64Type};

    fn rows(b: &mut AncestryBatchBuilder) -> Vec<(i64, i64, i32, i32)> {
        let batch = b.finish();
        let col64 = |i: usize| batch.column(i).as_primitive::<Int64Type>().clone();
        let col32 = |i: usize| batch.column(i).as_primitive::<Int32Type>().clone();
        let (e, a, d, t) = (col64(0), col64(1), col32(2), col32(3));
        (0..batch.num_rows())
            .map(|i| (e.value(i), a.value(i), d.value(i), t.value(i)))
            .collect()
    }

    #[test]
    fn each_episode_gets_its_path_from_the_root_with_the_steps_it_keeps() {
        // Root 1 (12 steps) ─ branch 2 at t=5 (9 steps) ─ branch 3 at t=7 (10 steps);
        // root 1 ─ branch 4 at t=3.
        let nodes = [
            TreeNode {
                id: 1,
                parent: None,
                rollback_step: None,
                length: 12,
            },
            TreeNode {
                id: 2,
                parent: Some(1),
                rollback_step: Some(5),
                length: 9,
            },
            TreeNode {
                id: 3,
                parent: Some(2),
                rollback_step: Some(7),
                length: 10,
            },
            TreeNode {
                id: 4,
                parent: Some(1),
                rollback_step: Some(3),
                length: 4,
            },
        ];
        let mut b = AncestryBatchBuilder::default();
        b.push_tree(&nodes, |_| true);
        assert_eq!(b.len(), 1 + 2 + 3 + 2);
        assert_eq!(
            rows(&mut b),
            vec![
                (1, 1, 0, 12),
                (2, 2, 1, 9),
                (2, 1, 0, 5),
                (3, 3, 2, 10),
                (3, 2, 1, 7),
                (3, 1, 0, 5),
                (4, 4, 1, 4),
                (4, 1, 0, 3),
            ]
        );
        assert!(b.is_empty());
        // A missing parent ends the path; `include` picks the episodes.
        b.push_tree(&nodes[2..], |n| n.id == 3);
        assert_eq!(rows(&mut b), vec![(3, 3, 0, 10)]);
    }
}
