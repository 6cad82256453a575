//! Streaming run writer: record batches in, Parquet files out, then one commit.
//!
//! Memory stays bounded: per table one open file with at most one row group
//! buffered (`max_rows_per_group` rows) plus the upload buffer; files roll over
//! every `max_rows_per_file` rows. Nothing is visible until [`RunWriter::commit`]
//! writes the marker (see the commit protocol in the parent module).

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, StringArray, TimestampMicrosecondArray};
use arrow::record_batch::RecordBatch;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use parquet::arrow::AsyncArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use super::schema::{META_SCHEMA_VERSION, META_TABLE};
use super::{CommitMarker, FileEntry, Result, Store, StoreError, Table, now_us};

/// What a run is, recorded in the `runs` table when it commits.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// The run id (validated by `begin_run`).
    pub run_id: String,
    /// What kind of command writes it: synth, explore, train, eval, …
    pub kind: String,
    /// Master seed, if the run is seeded.
    pub seed: Option<i64>,
    /// The fully resolved configuration.
    pub config: serde_json::Value,
    /// The command line, for humans.
    pub command_line: String,
    /// Written into the commit marker (see [`super::CommitMarker::meta`]).
    pub meta: serde_json::Value,
}

/// Knobs of the Parquet writer.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// Rows per row group (the unit of buffering and of statistics pruning).
    pub max_rows_per_group: usize,
    /// Rows per file before rolling over to the next file.
    pub max_rows_per_file: u64,
    /// zstd compression level.
    pub zstd_level: i32,
    /// Bytes buffered before an upload part is sent.
    pub upload_buffer_bytes: usize,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            max_rows_per_group: 128 * 1024,
            max_rows_per_file: 4 * 1024 * 1024,
            zstd_level: 3,
            upload_buffer_bytes: 8 * 1024 * 1024,
        }
    }
}

struct OpenFile {
    path: Path,
    writer: AsyncArrowWriter<BufWriter>,
    rows: u64,
}

/// Writes one run's tables; see [`Store::begin_run`].
pub struct RunWriter {
    store: Store,
    spec: RunSpec,
    created_at_us: i64,
    options: WriterOptions,
    open: BTreeMap<Table, OpenFile>,
    done: BTreeMap<Table, Vec<FileEntry>>,
    next_seq: u32,
}

impl RunWriter {
    pub(super) fn new(
        store: Store,
        spec: RunSpec,
        created_at_us: i64,
        options: WriterOptions,
    ) -> Self {
        RunWriter {
            store,
            spec,
            created_at_us,
            options,
            open: BTreeMap::new(),
            done: BTreeMap::new(),
            next_seq: 0,
        }
    }

    /// The run id being written.
    pub fn run_id(&self) -> &str {
        &self.spec.run_id
    }

    /// Rows written so far into a table (visible only after commit).
    pub fn rows_written(&self, table: Table) -> u64 {
        self.done
            .get(&table)
            .map_or(0, |f| f.iter().map(|e| e.rows).sum::<u64>())
            + self.open.get(&table).map_or(0, |f| f.rows)
    }

    fn properties(&self, table: Table) -> WriterProperties {
        let schema = table.schema();
        WriterProperties::builder()
            .set_compression(Compression::ZSTD(
                ZstdLevel::try_new(self.options.zstd_level).unwrap_or_default(),
            ))
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_max_row_group_row_count(Some(self.options.max_rows_per_group))
            .set_created_by(format!("leafe {}", env!("CARGO_PKG_VERSION")))
            .set_key_value_metadata(Some(vec![
                KeyValue::new(META_TABLE.to_string(), schema.table.clone()),
                KeyValue::new(META_SCHEMA_VERSION.to_string(), schema.version.to_string()),
            ]))
            .build()
    }

    /// Appends a batch to a table. The batch must have exactly the table's
    /// schema (see `schemas/`); the `runs` table is written by `commit`.
    pub async fn write(&mut self, table: Table, batch: &RecordBatch) -> Result<()> {
        if table == Table::Runs {
            return Err(StoreError::SchemaMismatch {
                table: "runs".into(),
                column: "*".into(),
                problem: "the runs row is written by commit, not by callers".into(),
            });
        }
        self.write_any(table, batch).await
    }

    async fn write_any(&mut self, table: Table, batch: &RecordBatch) -> Result<()> {
        let schema = table.schema();
        schema.check(&batch.schema())?;
        if batch.num_rows() == 0 {
            return Ok(());
        }
        // Same columns under the canonical schema (table name and version in
        // the footer), whatever metadata the caller's schema had.
        let batch = RecordBatch::try_new(schema.arrow_schema(), batch.columns().to_vec())
            .expect("schema checked above");
        let pq = |source| StoreError::Parquet {
            table: table.name().to_string(),
            source,
        };
        if !self.open.contains_key(&table) {
            let seq = self.next_seq;
            self.next_seq += 1;
            let path = Path::from(format!(
                "{}/run_id={}/part-{seq:05}-{:016x}.parquet",
                table.name(),
                self.spec.run_id,
                rand::random::<u64>()
            ));
            let sink = BufWriter::with_capacity(
                self.store.objects(),
                path.clone(),
                self.options.upload_buffer_bytes,
            );
            let writer = AsyncArrowWriter::try_new(
                sink,
                schema.arrow_schema(),
                Some(self.properties(table)),
            )
            .map_err(pq)?;
            self.open.insert(
                table,
                OpenFile {
                    path,
                    writer,
                    rows: 0,
                },
            );
        }
        let file = self.open.get_mut(&table).expect("inserted above");
        file.writer.write(&batch).await.map_err(pq)?;
        file.rows += batch.num_rows() as u64;
        if file.rows >= self.options.max_rows_per_file {
            self.close_file(table).await?;
        }
        Ok(())
    }

    async fn close_file(&mut self, table: Table) -> Result<()> {
        let Some(mut file) = self.open.remove(&table) else {
            return Ok(());
        };
        file.writer
            .finish()
            .await
            .map_err(|source| StoreError::Parquet {
                table: table.name().to_string(),
                source,
            })?;
        let entry = FileEntry {
            path: file.path.to_string(),
            rows: file.rows,
            bytes: file.writer.bytes_written() as u64,
        };
        self.done.entry(table).or_default().push(entry);
        Ok(())
    }

    /// Finishes every file, writes the run's `runs` row, then the commit marker
    /// (put-if-absent). Returns the marker. After this the run is visible.
    pub async fn commit(mut self) -> Result<CommitMarker> {
        let tables: Vec<Table> = self.open.keys().copied().collect();
        for t in tables {
            self.close_file(t).await?;
        }
        let finished_at = now_us();
        let runs_row = RecordBatch::try_new(
            Table::Runs.schema().arrow_schema(),
            vec![
                Arc::new(StringArray::from(vec![self.spec.kind.clone()])) as ArrayRef,
                Arc::new(
                    TimestampMicrosecondArray::from(vec![self.created_at_us]).with_timezone("UTC"),
                ),
                Arc::new(TimestampMicrosecondArray::from(vec![finished_at]).with_timezone("UTC")),
                Arc::new(Int64Array::from(vec![self.spec.seed])),
                Arc::new(StringArray::from(vec![self.spec.config.to_string()])),
                Arc::new(StringArray::from(vec![self.spec.command_line.clone()])),
                Arc::new(StringArray::from(vec![env!("CARGO_PKG_VERSION")])),
                Arc::new(StringArray::from(vec![super::hostname()])),
            ],
        )
        .expect("runs row matches schemas/runs.toml");
        self.write_any(Table::Runs, &runs_row).await?;
        self.close_file(Table::Runs).await?;

        let marker = CommitMarker {
            run_id: self.spec.run_id.clone(),
            kind: self.spec.kind.clone(),
            created_at_us: self.created_at_us,
            committed_at_us: now_us(),
            tables: self
                .done
                .iter()
                .map(|(t, f)| (t.name().to_string(), f.clone()))
                .collect(),
            schema_versions: Table::ALL
                .iter()
                .map(|t| (t.name().to_string(), t.schema().version))
                .collect(),
            meta: self.spec.meta.clone(),
        };
        let body = serde_json::to_vec_pretty(&marker).expect("marker serializes");
        if !self
            .store
            .put_if_absent(&Store::commit_path(&self.spec.run_id), body)
            .await?
        {
            return Err(StoreError::RunExists {
                run_id: self.spec.run_id.clone(),
                state: "was committed by another writer while this one ran".into(),
            });
        }
        // The run is committed whatever happens to the catalog: a failed
        // refresh leaves it a run behind (never ahead), and says so.
        if let Err(e) = self.store.merge_into_catalog(&marker).await {
            tracing::warn!(
                "run {} committed, but the catalog was not refreshed ({e}); `leafe catalog` rebuilds it",
                marker.run_id
            );
        }
        Ok(marker)
    }

    /// Gives up the run: deletes the files written so far and releases the run
    /// id. Best effort; what it cannot delete stays invisible and `gc` collects it.
    pub async fn abort(mut self) -> Result<()> {
        self.open.clear(); // dropping an unfinished upload never completes it
        for entry in self.done.values().flatten() {
            self.store.delete(&Path::from(entry.path.as_str())).await?;
        }
        self.store
            .delete(&Store::lock_path(&self.spec.run_id))
            .await
    }
}
