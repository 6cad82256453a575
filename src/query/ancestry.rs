//! The `ancestry` table of runs committed before it existed, filled on read.
//!
//! Runs written by this version of leafe carry their `ancestry` rows (see
//! `store::ancestry`); their commit markers list the table's schema version.
//! A run whose marker does not (an older store) has no such files, so the
//! table the queries see is the union of the files and, for those runs,
//! rows built from their `episodes` with the same function the writers use,
//! the first time a query scans the table in the session. Building them
//! holds the old runs' tree pointers in memory (a few dozen bytes per
//! episode); stores without old runs pay nothing.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use arrow::datatypes::{Int32Type, Int64Type, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::MemTable;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::union::UnionExec;
use tokio::sync::OnceCell;

use crate::store::{AncestryBatchBuilder, CommitMarker, Table, TreeNode};

/// The committed runs whose markers predate the `ancestry` table.
pub(super) fn runs_without_ancestry(commits: &[CommitMarker]) -> Vec<String> {
    commits
        .iter()
        .filter(|m| !m.schema_versions.contains_key(Table::Ancestry.name()))
        .map(|m| m.run_id.clone())
        .collect()
}

/// `ancestry` over a store with older runs: the table's files plus the
/// older runs' rows, built once per session on the first scan.
#[derive(Debug)]
pub(super) struct FilledAncestry {
    files: Arc<dyn TableProvider>,
    episodes: Arc<dyn TableProvider>,
    runs: HashSet<String>,
    filled: OnceCell<Arc<MemTable>>,
}

impl FilledAncestry {
    pub(super) fn new(
        files: Arc<dyn TableProvider>,
        episodes: Arc<dyn TableProvider>,
        runs: Vec<String>,
    ) -> FilledAncestry {
        FilledAncestry {
            files,
            episodes,
            runs: runs.into_iter().collect(),
            filled: OnceCell::new(),
        }
    }

    /// The older runs' rows: their episodes' tree pointers, read once and
    /// flattened per run.
    async fn fill(&self, state: &dyn Session) -> Result<Arc<MemTable>> {
        let schema = self.episodes.schema();
        let wanted = [
            "run_id",
            "episode_id",
            "parent_episode_id",
            "rollback_step",
            "length",
            "origin",
        ];
        let projection: Vec<usize> = wanted
            .iter()
            .map(|c| schema.index_of(c))
            .collect::<std::result::Result<_, _>>()?;
        let plan = self
            .episodes
            .scan(state, Some(&projection), &[], None)
            .await?;
        let batches = datafusion::physical_plan::collect(plan, state.task_ctx()).await?;
        // run -> (nodes, whether each is a tree episode)
        let mut per_run: BTreeMap<String, Vec<(TreeNode, bool)>> = BTreeMap::new();
        for b in &batches {
            let run = b.column(0).as_string::<i32>();
            let id = b.column(1).as_primitive::<Int64Type>();
            let parent = b.column(2).as_primitive::<Int64Type>();
            let tau = b.column(3).as_primitive::<Int32Type>();
            let length = b.column(4).as_primitive::<Int32Type>();
            let origin = b.column(5).as_string::<i32>();
            for i in 0..b.num_rows() {
                let run_id = run.value(i);
                if !self.runs.contains(run_id) {
                    continue;
                }
                let node = TreeNode {
                    id: id.value(i),
                    parent: parent.is_valid(i).then(|| parent.value(i)),
                    rollback_step: tau.is_valid(i).then(|| tau.value(i)),
                    length: length.value(i),
                };
                let tree = matches!(origin.value(i), "root" | "branch");
                per_run
                    .entry(run_id.to_string())
                    .or_default()
                    .push((node, tree));
            }
        }
        let target = self.files.schema();
        let mut out = Vec::new();
        for (run_id, entries) in per_run {
            let nodes: Vec<TreeNode> = entries.iter().map(|(n, _)| *n).collect();
            let trees: HashSet<i64> = entries
                .iter()
                .filter(|(_, tree)| *tree)
                .map(|(n, _)| n.id)
                .collect();
            let mut builder = AncestryBatchBuilder::default();
            builder.push_tree(&nodes, |n| trees.contains(&n.id));
            if builder.is_empty() {
                continue;
            }
            let rows = builder.finish();
            let mut columns: Vec<ArrayRef> = rows.columns().to_vec();
            columns.push(Arc::new(StringArray::from(vec![
                run_id.as_str();
                rows.num_rows()
            ])));
            out.push(RecordBatch::try_new(target.clone(), columns)?);
        }
        Ok(Arc::new(MemTable::try_new(target, vec![out])?))
    }
}

#[async_trait]
impl TableProvider for FilledAncestry {
    fn schema(&self) -> SchemaRef {
        self.files.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // The files prune runs by the filters they are given; the filled
        // rows do not, so every filter is also applied above the scan.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let filled = self
            .filled
            .get_or_try_init(|| self.fill(state))
            .await
            .map_err(|e| {
                DataFusionError::Context("filling ancestry of older runs".into(), Box::new(e))
            })?
            .clone();
        let files = self.files.scan(state, projection, filters, limit).await?;
        let rows = filled.scan(state, projection, filters, limit).await?;
        UnionExec::try_new(vec![files, rows])
    }
}
