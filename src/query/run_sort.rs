//! A sort for rows that arrive as sorted runs: leafe's output `ORDER BY`.
//!
//! The queries that return millions of rows (a successful leaf's whole path,
//! a reflection's history) are sorted by (run, leaf, t). Their joins emit
//! each path segment as a run of rows already in that order, so sorting
//! them is ordering a few hundred thousand runs, not comparing millions of
//! rows. DataFusion's sort does the general work: it sorts every batch,
//! copying the text columns, merges the sorted batches, copying them again,
//! and reserves twice the input, so under the default memory limit it
//! spills.
//!
//! [`RunSortExec`] buffers the input, converts only the sort keys to
//! DataFusion's row format to find the ascending runs, orders the runs by
//! their first key and, when they do not overlap, gathers the rows into the
//! output once. Its result is the only one a sort can give: it takes this
//! path only when every key is distinct (no ties whose order a sort could
//! choose) and the runs do not overlap. Any other input (ties, overlapping
//! or very short runs, or more data than its share of the memory limit) is
//! handed, with what was buffered, to DataFusion's own sort, which spills.
//!
//! [`RunSortRule`] puts it in place of a final sort: a sort feeding a
//! merge of its partitions, or a sort of a single partition.

use std::fmt;
use std::sync::{Arc, Mutex};

use arrow::array::{RecordBatch, make_comparator};
use arrow::compute::SortOptions;
use arrow::compute::interleave_record_batch;
use arrow::datatypes::SchemaRef;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use arrow::row::{Row, RowConverter, Rows, SortField};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::utils::memory::get_record_batch_memory_size;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SpillFile;
use datafusion::execution::TaskContext;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryLimit, MemoryReservation};
use datafusion::physical_expr::{LexOrdering, PhysicalExpr};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet};
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::sorts::streaming_merge::StreamingMergeBuilder;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, PlanProperties,
    SendableRecordBatchStream,
};
use futures::{StreamExt, TryStreamExt};

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
                        let input: Arc<dyn ExecutionPlan> =
                            Arc::new(CoalescePartitionsExec::new(Arc::clone(sort.input())));
                        let exec = RunSortExec::new(
                            sort.expr().clone(),
                            input,
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
        // Not spillable in the pool's eyes: past its share it hands the
        // rows to DataFusion's sort, which is.
        let reservation = MemoryConsumer::new("RunSortExec")
            .with_can_spill(false)
            .register(context.memory_pool());
        let sorted = sort_runs(self.expr.clone(), input, reservation, context);
        let sorted = async move { sorted.await.map(|(stream, _)| stream) };
        let stream = futures::stream::once(sorted).try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

/// One input batch with its sort keys in the row format, the order in which
/// to read it (`None`: as it is; else a permutation sorting it) and its runs.
struct Prepared {
    batch: RecordBatch,
    keys: Rows,
    order: Option<Vec<u32>>,
    /// Ends (exclusive) of the runs, as positions in `order`.
    run_ends: Vec<u32>,
}

impl Prepared {
    fn at(&self, pos: usize) -> usize {
        self.order.as_ref().map_or(pos, |o| o[pos] as usize)
    }

    fn key(&self, pos: usize) -> Row<'_> {
        self.keys.row(self.at(pos))
    }

    fn size(&self) -> usize {
        get_record_batch_memory_size(&self.batch)
            + self.keys.size()
            + 4 * (self.order.as_ref().map_or(0, Vec::len) + self.run_ends.len())
    }

    /// Converts the keys and cuts the batch into runs: strictly ascending,
    /// one value of the leading sort columns each (so that the runs of
    /// different leaves do not overlap). A batch with short runs as it
    /// comes (a join's rows for several leaves interleaved) is sorted
    /// first, by its keys alone.
    fn new(batch: RecordBatch, expr: &LexOrdering, converter: &RowConverter) -> Result<Self> {
        let columns = expr
            .iter()
            .map(|e| Ok(e.evaluate_to_sort_column(&batch)?.values))
            .collect::<Result<Vec<_>>>()?;
        let keys = converter.convert_columns(&columns)?;
        let n = batch.num_rows();
        let leading = columns[..columns.len() - 1]
            .iter()
            .map(|c| make_comparator(c.as_ref(), c.as_ref(), SortOptions::default()))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let mut prepared = Prepared {
            batch,
            keys,
            order: None,
            run_ends: Vec::new(),
        };
        prepared.cut(&leading);
        if prepared.run_ends.len() * MIN_MEAN_RUN > n {
            let keys = &prepared.keys;
            let mut perm: Vec<u32> = (0..n as u32).collect();
            perm.sort_unstable_by(|&a, &b| keys.row(a as usize).cmp(&keys.row(b as usize)));
            prepared.order = Some(perm);
            prepared.cut(&leading);
        }
        Ok(prepared)
    }

    /// The runs of the batch read in `order`.
    fn cut(&mut self, leading: &[arrow::array::DynComparator]) {
        self.run_ends.clear();
        for pos in 1..self.batch.num_rows() {
            let (a, b) = (self.at(pos - 1), self.at(pos));
            if self.keys.row(a) >= self.keys.row(b)
                || leading.iter().any(|c| c(a, b) != std::cmp::Ordering::Equal)
            {
                self.run_ends.push(pos as u32);
            }
        }
        self.run_ends.push(self.batch.num_rows() as u32);
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

/// The rows of `batches` at `order`, `batch_size` rows a batch.
fn gather(
    batches: Vec<RecordBatch>,
    order: Vec<(u32, u32)>,
    batch_size: usize,
) -> impl Iterator<Item = Result<RecordBatch>> {
    let mut next = 0;
    std::iter::from_fn(move || {
        let end = (next + batch_size).min(order.len());
        let indices: Vec<(usize, usize)> = order[next..end]
            .iter()
            .map(|&(b, r)| (b as usize, r as usize))
            .collect();
        next = end;
        let refs: Vec<&RecordBatch> = batches.iter().collect();
        (!indices.is_empty())
            .then(|| interleave_record_batch(&refs, &indices).map_err(DataFusionError::from))
    })
}

/// Writes the prepared batches' rows, sorted, to a file of the disk manager
/// (Arrow IPC); equal keys are kept in either order.
fn spill(
    prepared: &[Prepared],
    rows: usize,
    schema: &SchemaRef,
    batch_size: usize,
    context: &Arc<TaskContext>,
) -> Result<Arc<dyn SpillFile>> {
    let (order, _) = merge(prepared, rows);
    let batches: Vec<RecordBatch> = prepared.iter().map(|p| p.batch.clone()).collect();
    let file = context
        .runtime_env()
        .disk_manager
        .create_tmp_file("RunSortExec")?;
    let mut writer = StreamWriter::try_new(file.open_writer()?, schema)?;
    for batch in gather(batches, order, batch_size) {
        writer.write(&batch?)?;
    }
    writer.into_inner()?.finish()?;
    Ok(file)
}

/// A spilled run, read back a batch at a time.
fn read_spill(file: Arc<dyn SpillFile>, schema: &SchemaRef) -> Result<SendableRecordBatchStream> {
    let path = file
        .path()
        .ok_or_else(|| DataFusionError::Internal("a spill file without a path".into()))?;
    let reader = StreamReader::try_new(std::io::BufReader::new(std::fs::File::open(path)?), None)?;
    let batches = futures::stream::iter(reader).map(move |b| {
        let _keep = &file;
        b.map_err(DataFusionError::from)
    });
    Ok(Box::pin(RecordBatchStreamAdapter::new(
        Arc::clone(schema),
        batches,
    )))
}

/// A run being merged: batch, position in the batch's order, and the run's
/// end; ordered by the key at the position, smallest first out of a heap.
struct Cursor<'a> {
    key: Row<'a>,
    batch: u32,
    pos: u32,
    end: u32,
}

impl PartialEq for Cursor<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl Eq for Cursor<'_> {}
impl PartialOrd for Cursor<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Cursor<'_> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.key.cmp(&self.key)
    }
}

/// Every row's (batch, row) in sort order, and whether two keys were equal. Runs
/// are taken by their first key; a run that ends before the next one starts
/// is copied whole, and overlapping runs are merged row by row.
fn merge(prepared: &[Prepared], rows: usize) -> (Vec<(u32, u32)>, bool) {
    let mut runs: Vec<Cursor<'_>> = Vec::new();
    for (b, p) in prepared.iter().enumerate() {
        let mut start = 0;
        for &end in &p.run_ends {
            runs.push(Cursor {
                key: p.key(start as usize),
                batch: b as u32,
                pos: start,
                end,
            });
            start = end;
        }
    }
    runs.sort_unstable_by(|a, b| a.key.cmp(&b.key));
    let mut pending = runs.into_iter().peekable();
    let mut heap = std::collections::BinaryHeap::new();
    let mut order: Vec<(u32, u32)> = Vec::with_capacity(rows);
    let mut last: Option<Row<'_>> = None;
    let mut tied = false;
    loop {
        if heap.is_empty() {
            match pending.next() {
                Some(run) => heap.push(run),
                None => break,
            }
        }
        while let Some(next) = pending.peek() {
            if next.key > heap.peek().expect("a run").key {
                break;
            }
            heap.push(pending.next().expect("peeked"));
        }
        let mut c = heap.pop().expect("a run");
        let p = &prepared[c.batch as usize];
        tied |= last == Some(c.key);
        let run_last = p.key(c.end as usize - 1);
        if heap.is_empty() && pending.peek().is_none_or(|n| run_last < n.key) {
            // No other run starts before this one ends: copy the rest.
            order.extend((c.pos..c.end).map(|pos| (c.batch, p.at(pos as usize) as u32)));
            last = Some(run_last);
            continue;
        }
        order.push((c.batch, p.at(c.pos as usize) as u32));
        last = Some(c.key);
        c.pos += 1;
        if c.pos < c.end {
            c.key = p.key(c.pos as usize);
            heap.push(c);
        }
    }
    (order, tied)
}

/// DataFusion's sort over a stream: what was buffered, then the rest.
fn fallback_sort(
    expr: LexOrdering,
    schema: SchemaRef,
    replay: SendableRecordBatchStream,
    context: Arc<TaskContext>,
) -> Result<SendableRecordBatchStream> {
    let source = Arc::new(ReplayExec::new(schema, replay));
    SortExec::new(expr, source).execute(0, context)
}

/// A plan whose one partition is a stream already under way.
struct ReplayExec {
    stream: Mutex<Option<SendableRecordBatchStream>>,
    properties: Arc<PlanProperties>,
}

impl ReplayExec {
    fn new(schema: SchemaRef, stream: SendableRecordBatchStream) -> Self {
        use datafusion::physical_expr::{EquivalenceProperties, Partitioning};
        use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        ReplayExec {
            stream: Mutex::new(Some(stream)),
            properties: Arc::new(properties),
        }
    }
}

impl fmt::Debug for ReplayExec {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "ReplayExec")
    }
}

impl DisplayAs for ReplayExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "ReplayExec")
    }
}

impl ExecutionPlan for ReplayExec {
    fn name(&self) -> &str {
        "ReplayExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        _partition: usize,
        _context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        self.stream
            .lock()
            .expect("replay lock")
            .take()
            .ok_or_else(|| DataFusionError::Internal("ReplayExec runs once".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::util::pretty::pretty_format_batches;
    use datafusion::datasource::MemTable;
    use datafusion::datasource::memory::MemorySourceConfig;
    use datafusion::execution::runtime_env::RuntimeEnvBuilder;
    use datafusion::execution::session_state::SessionStateBuilder;
    use datafusion::prelude::{SessionConfig, SessionContext};
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};

    /// Rows (run, leaf, t, text) with the given keys, cut into batches of 7.
    fn batches(keys: &[(&str, i64, i64)]) -> Vec<RecordBatch> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("run", DataType::Utf8, true),
            Field::new("leaf", DataType::Int64, true),
            Field::new("t", DataType::Int64, false),
            Field::new("text", DataType::Utf8, false),
        ]));
        keys.chunks(7)
            .map(|c| {
                let run: StringArray = c.iter().map(|k| (!k.0.is_empty()).then_some(k.0)).collect();
                let leaf: Int64Array = c.iter().map(|k| (k.1 >= 0).then_some(k.1)).collect();
                let t = Int64Array::from_iter_values(c.iter().map(|k| k.2));
                let text = StringArray::from_iter_values(
                    c.iter().map(|k| format!("{} leaf {} at {}", k.0, k.1, k.2)),
                );
                RecordBatch::try_new(
                    Arc::clone(&schema),
                    vec![Arc::new(run), Arc::new(leaf), Arc::new(t), Arc::new(text)],
                )
                .unwrap()
            })
            .collect()
    }

    /// Paths cut into segments of consecutive t, the segments shuffled: the
    /// shape of a join that emits each leaf's path segment by segment.
    fn segments(seed: u64) -> Vec<(&'static str, i64, i64)> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut segs = Vec::new();
        for run in ["a", "b", ""] {
            for leaf in (-1..40).filter(|l| *l != 0) {
                let mut t = 0;
                for _ in 0..rng.random_range(1..4) {
                    let len = rng.random_range(1..12);
                    segs.push((run, leaf, t, len));
                    t += len;
                }
            }
        }
        segs.shuffle(&mut rng);
        segs.iter()
            .flat_map(|&(run, leaf, t, len)| (t..t + len).map(move |t| (run, leaf, t)))
            .collect()
    }

    fn ctx(rule: bool, memory: usize) -> SessionContext {
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_limit(memory, 1.0)
            .build_arc()
            .unwrap();
        let mut config = SessionConfig::new()
            .with_target_partitions(2)
            .with_batch_size(5);
        config.options_mut().execution.sort_spill_reservation_bytes = memory / 32;
        let mut state = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(runtime)
            .with_default_features();
        if rule {
            state = state.with_physical_optimizer_rule(Arc::new(RunSortRule));
        }
        SessionContext::new_with_state(state.build())
    }

    /// The query's rows with and without the rule, and the rule's plan.
    async fn both(
        keys: &[(&str, i64, i64)],
        order: &str,
        memory: usize,
    ) -> (String, String, String) {
        let data = batches(keys);
        let half = data.len() / 2;
        let parts = vec![data[..half].to_vec(), data[half..].to_vec()];
        let sql = format!("SELECT * FROM t ORDER BY {order}");
        let mut out = Vec::new();
        for rule in [false, true] {
            let ctx = ctx(rule, memory);
            let table = MemTable::try_new(data[0].schema(), parts.clone()).unwrap();
            ctx.register_table("t", Arc::new(table)).unwrap();
            let rows = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
            out.push(pretty_format_batches(&rows).unwrap().to_string());
        }
        let ctx = ctx(true, memory);
        let table = MemTable::try_new(data[0].schema(), parts).unwrap();
        ctx.register_table("t", Arc::new(table)).unwrap();
        let plan = ctx
            .sql(&format!("EXPLAIN {sql}"))
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let plan = pretty_format_batches(&plan).unwrap().to_string();
        (out.remove(0), out.remove(0), plan)
    }

    /// Which path `sort_runs` takes over these rows, and its output.
    async fn path(
        keys: &[(&str, i64, i64)],
        memory: usize,
    ) -> (Option<Fallback>, Vec<RecordBatch>) {
        let data = batches(keys);
        let schema = data[0].schema();
        let ctx = ctx(true, memory);
        let task = ctx.task_ctx();
        let order = LexOrdering::new(["run", "leaf", "t"].map(|c| {
            datafusion::physical_expr::PhysicalSortExpr::new_default(
                datafusion::physical_expr::expressions::col(c, &schema).unwrap(),
            )
        }))
        .unwrap();
        // Two partitions, as the joins give them.
        let half = data.len() / 2;
        let parts = [data[..half].to_vec(), data[half..].to_vec()];
        let input: Arc<dyn ExecutionPlan> =
            MemorySourceConfig::try_new_exec(&parts, Arc::clone(&schema), None).unwrap();
        let reservation = MemoryConsumer::new("test").register(task.memory_pool());
        let (stream, why) = sort_runs(order, input, reservation, task).await.unwrap();
        (why, stream.try_collect().await.unwrap())
    }

    #[tokio::test]
    async fn rows_in_runs_are_ordered_as_runs_and_give_the_sorts_rows() {
        for seed in 0..4 {
            let keys = segments(seed);
            let (plain, ours, plan) = both(&keys, "run, leaf, t", 64 << 20).await;
            assert_eq!(plain, ours, "seed {seed}");
            assert!(plan.contains("RunSortExec"), "{plan}");
            assert!(!plan.contains("SortPreservingMergeExec"), "{plan}");
            let (why, rows) = path(&keys, 64 << 20).await;
            assert_eq!(why, None);
            assert_eq!(rows.iter().map(|b| b.num_rows()).sum::<usize>(), keys.len());
        }
        // Descending keys and nulls first or last: the row format's order.
        let keys = segments(9);
        for order in [
            "run DESC NULLS LAST, leaf, t",
            "run NULLS FIRST, leaf DESC, t",
            "leaf, run, t",
        ] {
            let (plain, ours, _) = both(&keys, order, 64 << 20).await;
            assert_eq!(plain, ours, "{order}");
        }
    }

    #[tokio::test]
    async fn other_inputs_go_to_datafusions_sort_with_the_same_rows() {
        // Equal keys: a sort may order them either way; DataFusion decides.
        let mut ties = segments(1);
        ties.extend(segments(1));
        assert_eq!(path(&ties, 64 << 20).await.0, Some(Fallback::Ties));
        // Overlapping runs are merged: leaf 1's t 0..10 and 20..30 in one
        // batch, 5..8 in another.
        let overlap: Vec<_> = (0..10)
            .chain(20..30)
            .chain(5..8)
            .chain(40..400)
            .map(|t| ("a", 1, t))
            .collect();
        let (why, rows) = path(&overlap, 64 << 20).await;
        assert_eq!(why, None);
        let t: Vec<i64> = rows
            .iter()
            .flat_map(|b| {
                b.column(2)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap()
                    .values()
                    .to_vec()
            })
            .collect();
        let mut want: Vec<i64> = overlap.iter().map(|k| k.2).collect();
        want.sort();
        assert_eq!(t, want);
        // Shuffled rows: runs of one or two rows.
        let mut shuffled = segments(2);
        shuffled.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(3));
        assert_eq!(path(&shuffled, 64 << 20).await.0, Some(Fallback::ShortRuns));
        // More than its share of the memory limit: sorted runs on disk,
        // merged.
        let big: Vec<_> = (0..5)
            .flat_map(|c| {
                segments(4)
                    .into_iter()
                    .map(move |k| (k.0, k.1 + 1000 * c, k.2))
            })
            .collect();
        let (why, rows) = path(&big, 256 << 10).await;
        assert_eq!(why, None);
        assert_eq!(rows.iter().map(|b| b.num_rows()).sum::<usize>(), big.len());
        for (keys, memory) in [
            (ties, 64 << 20),
            (overlap, 64 << 20),
            (shuffled, 64 << 20),
            (big, 256 << 10),
        ] {
            let (plain, ours, _) = both(&keys, "run, leaf, t", memory).await;
            assert_eq!(plain, ours);
        }
    }
}
