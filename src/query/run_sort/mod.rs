//! A sort for rows that arrive as sorted runs: leafe's output `ORDER BY`.
//!
//! The queries that return millions of rows (a successful leaf's whole path,
//! a reflection's history) are sorted by (run, leaf, t). Their joins emit
//! each leaf's rows in ascending t, a few leaves interleaved, so each batch
//! holds short ascending runs, one per leaf. DataFusion's sort does the
//! general work: it sorts every batch, copying the text columns, merges a
//! few hundred sorted batches row by row, copying them again, and reserves
//! twice the input, so under the default memory limit it spills.
//!
//! [`RunSortExec`] reads every input partition in a task of its own, where
//! each batch's sort keys (only those) are converted to the row format and
//! the batch is cut into runs: strictly ascending, one value of the leading
//! sort columns each (a batch whose runs are short as it comes is first
//! sorted by its keys alone). The runs are ordered by their first key; a run
//! that ends before the next one starts is taken whole and only overlapping
//! runs are merged row by row; then each row's columns are copied once,
//! into the output. It holds the input once, up to three quarters of the
//! memory limit; past that it writes what it holds to disk as one sorted
//! run, and at the end merges the runs on disk (DataFusion's merge).
//!
//! What it returns is what any sort returns: in memory it takes its own
//! path only when no two rows have equal keys (whose order a sort may
//! choose; DataFusion's sort decides then; past the limit, as in any sort
//! that spills, equal keys come in either order), more than one batch
//! arrives and the runs are not mostly single rows; any other input is
//! handed, with what was buffered, to DataFusion's sort.
//!
//! [`RunSortRule`] puts it in place of a final sort: a sort of every
//! partition feeding a merge of them, or a sort of a single partition.

use std::fmt;
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::row::{RowConverter, SortField};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SpillFile;
use datafusion::execution::TaskContext;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryLimit, MemoryReservation};
use datafusion::physical_expr::{LexOrdering, PhysicalExpr};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet};
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::sorts::streaming_merge::StreamingMergeBuilder;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, PlanProperties,
    SendableRecordBatchStream,
};
use futures::{StreamExt, TryStreamExt};

mod runs;

use runs::{Prepared, gather, merge, read_spill, spill};

/// Runs shorter than this on average (rows per run) are not worth ordering
/// as runs: the input is handed to DataFusion's sort.
const MIN_MEAN_RUN: usize = 4;

/// Replaces final sorts with [`RunSortExec`]; see the module comment.
#[derive(Debug, Default)]
pub struct RunSortRule;

impl PhysicalOptimizerRule for RunSortRule {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_down(|node| {
            if let Some(merge) = node.downcast_ref::<SortPreservingMergeExec>() {
                if let Some(sort) = merge.input().downcast_ref::<SortExec>() {
                    if merge.fetch().is_none()
                        && sort.fetch().is_none()
                        && sort.preserve_partitioning()
                        && sort.expr() == merge.expr()
                    {
                        // One sort over all partitions: the runs of every
                        // partition are ordered together, with no merge.
                        let exec = RunSortExec::new(
                            sort.expr().clone(),
                            Arc::clone(sort.input()),
                            Arc::clone(merge.properties()),
                        );
                        return Ok(Transformed::new(
                            Arc::new(exec),
                            true,
                            TreeNodeRecursion::Jump,
                        ));
                    }
                }
            }
            if let Some(sort) = node.downcast_ref::<SortExec>() {
                if sort.fetch().is_none()
                    && sort.input().output_partitioning().partition_count() == 1
                    && sort.properties().output_partitioning().partition_count() == 1
                {
                    let exec = RunSortExec::new(
                        sort.expr().clone(),
                        Arc::clone(sort.input()),
                        Arc::clone(sort.properties()),
                    );
                    return Ok(Transformed::new(
                        Arc::new(exec),
                        true,
                        TreeNodeRecursion::Jump,
                    ));
                }
            }
            Ok(Transformed::no(node))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "leafe_run_sort"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Sorts one partition whose rows arrive as non-overlapping ascending runs;
/// any other input goes to DataFusion's [`SortExec`].
#[derive(Debug)]
pub struct RunSortExec {
    expr: LexOrdering,
    input: Arc<dyn ExecutionPlan>,
    properties: Arc<PlanProperties>,
}

impl RunSortExec {
    fn new(
        expr: LexOrdering,
        input: Arc<dyn ExecutionPlan>,
        properties: Arc<PlanProperties>,
    ) -> Self {
        RunSortExec {
            expr,
            input,
            properties,
        }
    }
}

impl DisplayAs for RunSortExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let keys: Vec<String> = self.expr.iter().map(|e| e.to_string()).collect();
        write!(f, "RunSortExec: expr=[{}]", keys.join(", "))
    }
}

impl ExecutionPlan for RunSortExec {
    fn name(&self) -> &str {
        "RunSortExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        for e in self.expr.iter() {
            if f(&e.expr)? == TreeNodeRecursion::Stop {
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return Err(DataFusionError::Internal(
                "RunSortExec takes one input".into(),
            ));
        }
        Ok(Arc::new(RunSortExec::new(
            self.expr.clone(),
            children.swap_remove(0),
            Arc::clone(&self.properties),
        )))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!(
                "RunSortExec has one partition, asked for {partition}"
            )));
        }
        let input = Arc::clone(&self.input);
        let schema = self.input.schema();
        // Not spillable in the pool's eyes: it keeps to its own share of
        // the limit (see sort_runs), not to a share among spilling operators.
        let reservation = MemoryConsumer::new("RunSortExec")
            .with_can_spill(false)
            .register(context.memory_pool());
        let sorted = sort_runs(self.expr.clone(), input, reservation, context);
        let sorted = async move { sorted.await.map(|(stream, _)| stream) };
        let stream = futures::stream::once(sorted).try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

/// Why the input is handed to DataFusion's sort.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fallback {
    Small,
    Ties,
    ShortRuns,
}

impl Fallback {
    fn why(&self) -> &'static str {
        match self {
            Fallback::Small => "one batch of rows",
            Fallback::Ties => "rows with equal sort keys",
            Fallback::ShortRuns => "rows not in ascending runs",
        }
    }
}

/// Reads every input partition in a task of its own, preparing its batches
/// there (the key conversion and any batch sort run on every core).
fn prepare_partitions(
    input: &Arc<dyn ExecutionPlan>,
    expr: &LexOrdering,
    converter: &Arc<RowConverter>,
    context: &Arc<TaskContext>,
) -> Result<(
    tokio::sync::mpsc::Receiver<Result<Prepared>>,
    tokio::task::JoinSet<()>,
)> {
    let partitions = input.output_partitioning().partition_count();
    let (tx, rx) = tokio::sync::mpsc::channel(2 * partitions.max(1));
    let mut tasks = tokio::task::JoinSet::new();
    for p in 0..partitions {
        let mut stream = input.execute(p, Arc::clone(context))?;
        let (tx, expr, converter) = (tx.clone(), expr.clone(), Arc::clone(converter));
        tasks.spawn(async move {
            while let Some(batch) = stream.next().await {
                let prepared = batch.and_then(|b| Prepared::new(b, &expr, &converter));
                let failed = prepared.is_err();
                if tx.send(prepared).await.is_err() || failed {
                    return;
                }
            }
        });
    }
    Ok((rx, tasks))
}

async fn sort_runs(
    expr: LexOrdering,
    input: Arc<dyn ExecutionPlan>,
    reservation: MemoryReservation,
    context: Arc<TaskContext>,
) -> Result<(SendableRecordBatchStream, Option<Fallback>)> {
    let schema = input.schema();
    let fields = expr
        .iter()
        .map(|e| {
            Ok(SortField::new_with_options(
                e.expr.data_type(&schema)?,
                e.options,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let converter = Arc::new(RowConverter::new(fields)?);
    let (mut rx, tasks) = prepare_partitions(&input, &expr, &converter, &context)?;
    let batch_size = context.session_config().batch_size();
    // What it holds at most: three quarters of the limit, leaving room for
    // the rest of the process (the scans, the joins, the output being
    // written), so that the process stays within the limit.
    let cap = match context.memory_pool().memory_limit() {
        MemoryLimit::Finite(limit) => limit - limit / 4,
        _ => usize::MAX,
    };
    let mut prepared: Vec<Prepared> = Vec::new();
    let mut spills: Vec<Arc<dyn SpillFile>> = Vec::new();
    let (mut rows, mut runs) = (0usize, 0usize);
    let mut fallback = None;
    while let Some(p) = rx.recv().await {
        let p = p?;
        if p.batch.num_rows() == 0 {
            continue;
        }
        rows += p.batch.num_rows();
        runs += p.run_ends.len();
        let size = p.size() + 8 * p.batch.num_rows();
        let fits = reservation.size() + size <= cap && reservation.try_grow(size).is_ok();
        prepared.push(p);
        if !fits {
            // Past its share: the rows so far go to disk as one sorted run.
            spills.push(spill(&prepared, rows, &schema, batch_size, &context)?);
            prepared.clear();
            reservation.free();
            (rows, runs) = (0, 0);
            continue;
        }
        // Judged on many batches: a join's first batches can be unlike the rest.
        if spills.is_empty() && rows >= 64 * batch_size && runs * MIN_MEAN_RUN > rows {
            fallback = Some(Fallback::ShortRuns);
            break;
        }
    }
    if fallback.is_none() && spills.is_empty() && rows <= batch_size {
        fallback = Some(Fallback::Small);
    }
    let mut order = Vec::new();
    if fallback.is_none() && spills.is_empty() {
        let tied;
        (order, tied) = merge(&prepared, rows);
        if tied {
            fallback = Some(Fallback::Ties);
        }
    }
    if let Some(why) = fallback {
        tracing::debug!(
            "sorting with DataFusion's sort: {} ({rows} rows, {runs} runs, {} batches, {} sorted)",
            why.why(),
            prepared.len(),
            prepared.iter().filter(|p| p.order.is_some()).count()
        );
        drop(order);
        reservation.free();
        let rest = futures::stream::unfold((rx, tasks), |(mut rx, tasks)| async move {
            rx.recv().await.map(|p| (p.map(|p| p.batch), (rx, tasks)))
        });
        let batches = prepared.into_iter().map(|p| Ok(p.batch));
        let replay = futures::stream::iter(batches).chain(rest);
        let replay = Box::pin(RecordBatchStreamAdapter::new(Arc::clone(&schema), replay));
        return Ok((fallback_sort(expr, schema, replay, context)?, Some(why)));
    }
    drop(tasks);
    if !spills.is_empty() {
        // The last rows to disk too, then one merge of the sorted files.
        if !prepared.is_empty() {
            spills.push(spill(&prepared, rows, &schema, batch_size, &context)?);
        }
        drop(prepared);
        reservation.free();
        tracing::debug!(
            "merging {} sorted runs from disk (at most {} MiB held)",
            spills.len(),
            cap >> 20
        );
        let streams = spills
            .into_iter()
            .map(|file| read_spill(file, &schema))
            .collect::<Result<Vec<_>>>()?;
        let metrics = ExecutionPlanMetricsSet::new();
        let merged = StreamingMergeBuilder::new()
            .with_streams(streams)
            .with_schema(Arc::clone(&schema))
            .with_expressions(&expr)
            .with_metrics(BaselineMetrics::new(&metrics, 0))
            .with_batch_size(batch_size)
            .with_reservation(reservation)
            .build()?;
        return Ok((merged, None));
    }
    tracing::debug!(
        "sorted {rows} rows as {runs} runs of {} batches, {} MiB ({} sorted by their keys first)",
        prepared.len(),
        reservation.size() >> 20,
        prepared.iter().filter(|p| p.order.is_some()).count()
    );
    let batches: Vec<RecordBatch> = prepared.into_iter().map(|p| p.batch).collect();
    let out = gather(batches, order, batch_size).map(move |b| {
        let _hold = &reservation;
        b
    });
    let stream = Box::pin(RecordBatchStreamAdapter::new(
        Arc::clone(&schema),
        futures::stream::iter(out),
    ));
    Ok((stream, None))
}

/// DataFusion's sort over a stream: what was buffered, then the rest.
fn fallback_sort(
    expr: LexOrdering,
    schema: SchemaRef,
    replay: SendableRecordBatchStream,
    context: Arc<TaskContext>,
) -> Result<SendableRecordBatchStream> {
    let once = Arc::new(Once {
        schema: Arc::clone(&schema),
        stream: Mutex::new(Some(replay)),
    });
    let source = StreamingTableExec::try_new(schema, vec![once], None, [], false, None)?;
    SortExec::new(expr, Arc::new(source)).execute(0, context)
}

/// One partition that is a stream already under way, read once.
struct Once {
    schema: SchemaRef,
    stream: Mutex<Option<SendableRecordBatchStream>>,
}

impl fmt::Debug for Once {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "Once")
    }
}

impl PartitionStream for Once {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let taken = self.stream.lock().expect("replay lock").take();
        taken.unwrap_or_else(|| {
            let again = DataFusionError::Internal("a replayed stream runs once".into());
            Box::pin(RecordBatchStreamAdapter::new(
                Arc::clone(&self.schema),
                futures::stream::once(async move { Err(again) }),
            ))
        })
    }
}

#[cfg(test)]
mod tests;
