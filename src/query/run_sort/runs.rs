//! The runs of [`RunSortExec`](super::RunSortExec): input batches cut into
//! ascending runs, the runs merged into one order, rows gathered or spilled.

use std::sync::Arc;

use arrow::array::{DynComparator, RecordBatch, make_comparator};
use arrow::compute::{SortOptions, interleave_record_batch};
use arrow::datatypes::SchemaRef;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use arrow::row::{Row, RowConverter, Rows};
use datafusion::common::utils::memory::get_record_batch_memory_size;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SpillFile, TaskContext};
use datafusion::physical_expr::LexOrdering;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;

use super::MIN_MEAN_RUN;

/// One input batch with its sort keys in the row format, the order in which
/// to read it (`None`: as it is; else a permutation sorting it) and its runs.
pub(super) struct Prepared {
    pub(super) batch: RecordBatch,
    keys: Rows,
    pub(super) order: Option<Vec<u32>>,
    /// Ends (exclusive) of the runs, as positions in `order`.
    pub(super) run_ends: Vec<u32>,
}

impl Prepared {
    fn at(&self, pos: usize) -> usize {
        self.order.as_ref().map_or(pos, |o| o[pos] as usize)
    }

    fn key(&self, pos: usize) -> Row<'_> {
        self.keys.row(self.at(pos))
    }

    pub(super) fn size(&self) -> usize {
        get_record_batch_memory_size(&self.batch)
            + self.keys.size()
            + 4 * (self.order.as_ref().map_or(0, Vec::len) + self.run_ends.len())
    }

    /// Converts the keys and cuts the batch into runs: strictly ascending,
    /// one value of the leading sort columns each (so that the runs of
    /// different leaves do not overlap). A batch with short runs as it
    /// comes (a join's rows for several leaves interleaved) is sorted
    /// first, by its keys alone.
    pub(super) fn new(
        batch: RecordBatch,
        expr: &LexOrdering,
        converter: &RowConverter,
    ) -> Result<Self> {
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
    fn cut(&mut self, leading: &[DynComparator]) {
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

/// The rows of `batches` at `order`, `batch_size` rows a batch.
pub(super) fn gather(
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
pub(super) fn spill(
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
pub(super) fn read_spill(
    file: Arc<dyn SpillFile>,
    schema: &SchemaRef,
) -> Result<SendableRecordBatchStream> {
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
pub(super) fn merge(prepared: &[Prepared], rows: usize) -> (Vec<(u32, u32)>, bool) {
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
