//! The query session: a DataFusion context over the committed runs of a
//! store, under a memory limit; runs, streams, collects and writes queries.

use super::memory::is_out_of_memory;
use super::*;

/// A DataFusion error as the query boundary's: running out of memory gets
/// its own one-line error, the rest keep DataFusion's message on one line.
pub(super) fn df_error(
    source_name: &str,
    limits: &MemoryLimits,
    e: &datafusion::error::DataFusionError,
) -> QueryError {
    if is_out_of_memory(e) {
        let mut detail = one_line(e.find_root());
        if detail.len() > 200 {
            let mut cut = 200;
            while !detail.is_char_boundary(cut) {
                cut -= 1;
            }
            detail.truncate(cut);
            detail.push('…');
        }
        return QueryError::OutOfMemory {
            source_name: source_name.to_string(),
            limit: format_size(limits.limit),
            spill_dir: limits.spill_dir_text(),
            detail,
        };
    }
    let mut message = one_line(e);
    if [
        "Cast error",
        "Parquet error",
        "External error",
        "Invalid argument error",
    ]
    .iter()
    .any(|m| message.contains(m))
    {
        message.push_str(
            " (a data file may not be what its table says: `leafe catalog --verify` names any that is not)",
        );
    }
    QueryError::Sql {
        source_name: source_name.to_string(),
        message,
    }
}

/// A DataFusion session over a store's committed runs.
pub struct QuerySession {
    ctx: SessionContext,
    limits: MemoryLimits,
}

impl QuerySession {
    /// Opens a session: reads the commit markers and registers `runs`,
    /// `episodes`, `steps`, `reflections` and `llm_calls`; queries run under
    /// [`MemoryLimits::process_default`].
    pub async fn open(store: &Store) -> Result<QuerySession> {
        QuerySession::open_with(store, MemoryLimits::process_default()).await
    }

    /// [`QuerySession::open`] under explicit memory limits.
    pub async fn open_with(store: &Store, limits: MemoryLimits) -> Result<QuerySession> {
        let commits = store.commits().await?;
        let runs: HashSet<String> = commits.iter().map(|m| m.run_id.clone()).collect();
        let files: HashSet<String> = commits
            .iter()
            .flat_map(|m| m.tables.values().flatten())
            .map(|f| f.path.clone())
            .collect();
        let view = Arc::new(CommittedView::new(store.objects(), runs, files));
        // Parquet scans are CPU-bound; use every core for them. Operators
        // share one memory pool of the limit; sorts and aggregations spill
        // to the disk manager's directory beyond their share.
        // DataFusion's own settings may be given as DATAFUSION_* variables
        // (e.g. DATAFUSION_EXECUTION_TARGET_PARTITIONS=4), as in its CLI.
        let mut config = SessionConfig::from_env()
            .map_err(|e| QueryError::Sql {
                source_name: "DATAFUSION_* environment variables".into(),
                message: one_line(e),
            })?
            .with_information_schema(true);
        // Each sort reserves room to merge its spills; keep that a small
        // share of a small limit (DataFusion's default is 10 MB per sort).
        config.options_mut().execution.sort_spill_reservation_bytes =
            (limits.limit / 32).min(10 << 20);
        let pool = datafusion::execution::memory_pool::TrackConsumersPool::new(
            datafusion::execution::memory_pool::FairSpillPool::new(limits.limit),
            std::num::NonZeroUsize::new(3).expect("nonzero"),
        );
        // A sort that spilled merges its files in passes of at most
        // SPILL_MERGE_FAN_IN files (a batch of each is held at once; with no
        // bound, one merge of many files outgrows a small pool).
        let mut runtime = datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(pool))
            .with_max_spill_merge_fan_in(SPILL_MERGE_FAN_IN);
        if let Some(dir) = &limits.spill_dir {
            std::fs::create_dir_all(dir).map_err(|e| QueryError::Io {
                path: dir.display().to_string(),
                source: e,
            })?;
            runtime = runtime.with_temp_file_path(dir.clone());
        }
        let runtime = runtime.build_arc().map_err(|e| QueryError::Sql {
            source_name: "memory limits".into(),
            message: one_line(e),
        })?;
        // Final sorts of rows that arrive in sorted runs (every path query)
        // order the runs instead of the rows; see run_sort.
        // LEAFE_RUN_SORT=off leaves every sort to DataFusion (to compare).
        let mut state = datafusion::execution::session_state::SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(runtime)
            .with_default_features();
        if std::env::var("LEAFE_RUN_SORT").as_deref() != Ok("off") {
            state = state.with_physical_optimizer_rule(Arc::new(super::run_sort::RunSortRule));
        }
        let state = state.build();
        let ctx = SessionContext::new_with_state(state);
        let base = Url::parse("leafe://store").expect("static URL");
        ctx.register_object_store(&base, view);
        for table in Table::ALL {
            let url = ListingTableUrl::parse(format!("leafe://store/{}/", table.name())).map_err(
                |e| QueryError::Sql {
                    source_name: "store".into(),
                    message: one_line(e),
                },
            )?;
            let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
                .with_file_extension(".parquet")
                .with_table_partition_cols(vec![(PARTITION_COLUMN.to_string(), DataType::Utf8)]);
            let config = ListingTableConfig::new(url)
                .with_listing_options(options)
                .with_schema(table.schema().arrow_schema());
            let provider = ListingTable::try_new(config).map_err(|e| QueryError::Sql {
                source_name: table.name().into(),
                message: one_line(e),
            })?;
            let mut provider: Arc<dyn datafusion::catalog::TableProvider> = Arc::new(provider);
            let older = super::ancestry::runs_without_ancestry(&commits);
            if table == Table::Ancestry && !older.is_empty() {
                let episodes = ctx
                    .table_provider(Table::Episodes.name())
                    .await
                    .map_err(|e| QueryError::Sql {
                        source_name: table.name().into(),
                        message: one_line(e),
                    })?;
                provider = Arc::new(super::ancestry::FilledAncestry::new(
                    provider, episodes, older,
                ));
            }
            ctx.register_table(table.name(), provider)
                .map_err(|e| QueryError::Sql {
                    source_name: table.name().into(),
                    message: one_line(e),
                })?;
        }
        Ok(QuerySession { ctx, limits })
    }

    /// The underlying DataFusion context, for callers that build plans directly.
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Plans a query without running it (used to check query files).
    pub async fn plan(&self, query: &BoundQuery) -> Result<datafusion::dataframe::DataFrame> {
        self.ctx.sql(&query.sql).await.map_err(|e| QueryError::Sql {
            source_name: query.source_name.clone(),
            message: one_line(e),
        })
    }

    /// Registers a query's rows as the view `name`, for queries that read
    /// them (`-- @input name`). A view is a plan, not a copy: it runs as part
    /// of each query that reads it. Registering a name again replaces the
    /// view; the store's tables cannot be replaced.
    pub async fn register_view(&self, name: &str, query: &BoundQuery) -> Result<()> {
        let refused = |message: String| QueryError::Sql {
            source_name: query.source_name.clone(),
            message,
        };
        if Table::ALL.iter().any(|t| t.name() == name) {
            return Err(refused(format!(
                "`{name}` is a table of the store, not a view name"
            )));
        }
        let view = self.plan(query).await?.into_view();
        self.ctx
            .deregister_table(name)
            .map_err(|e| refused(one_line(e)))?;
        self.ctx
            .register_table(name, view)
            .map_err(|e| refused(one_line(e)))?;
        Ok(())
    }

    /// Runs a query and streams its result as Arrow record batches.
    ///
    /// Hash joins are fastest but cannot spill: a join whose build side
    /// outgrows the memory limit fails before the first row. The query then
    /// runs again with sort-merge joins, whose sorts spill to disk, so it
    /// completes in bounded memory (more slowly) rather than failing. Under
    /// a very small limit, the partitions' sorts merging their spill files
    /// at the same time can still outgrow it (each merge holds a batch of
    /// every file it reads, up to [`SPILL_MERGE_FAN_IN`], and cannot
    /// spill); the last attempt runs with batches of [`SMALL_BATCH_ROWS`]
    /// rows, which makes every merge that much smaller.
    pub async fn stream(&self, query: &BoundQuery) -> Result<SendableRecordBatchStream> {
        use futures::StreamExt;
        let attempts: [(&str, Option<usize>); 3] = [
            ("hash joins", None),
            ("sort-merge joins, which spill", None),
            ("sort-merge joins and small batches", Some(SMALL_BATCH_ROWS)),
        ];
        let mut planned = Some(self.plan(query).await?);
        let mut last = None;
        for (i, (how, batch_rows)) in attempts.iter().enumerate() {
            let df = match planned.take() {
                Some(df) => df,
                None => {
                    tracing::info!(
                        "{}: exceeded the memory limit with {}; running it with {how}",
                        query.source_name,
                        attempts[i - 1].0
                    );
                    let mut state = self.ctx.state();
                    let options = state.config_mut().options_mut();
                    options.optimizer.prefer_hash_join = false;
                    if let Some(rows) = batch_rows {
                        // Never larger than a batch size already configured.
                        let rows = options.execution.batch_size.get().min(*rows);
                        options.execution.batch_size =
                            datafusion::common::config::ConfigNonZeroUsize::try_new(rows)
                                .expect("a positive batch size");
                    }
                    let ctx = SessionContext::new_with_state(state);
                    ctx.sql(&query.sql).await.map_err(|e| QueryError::Sql {
                        source_name: query.source_name.clone(),
                        message: one_line(e),
                    })?
                }
            };
            let attempt = async {
                let mut stream = df.execute_stream().await?;
                let first = stream.next().await.transpose()?;
                Ok::<_, datafusion::error::DataFusionError>((stream, first))
            };
            match attempt.await {
                Ok((stream, first)) => {
                    let schema = stream.schema();
                    let rest = futures::stream::iter(first.map(Ok)).chain(stream);
                    return Ok(Box::pin(
                        datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
                            schema, rest,
                        ),
                    ));
                }
                Err(e) if is_out_of_memory(&e) => last = Some(e),
                Err(e) => return Err(df_error(&query.source_name, &self.limits, &e)),
            }
        }
        let e = last.expect("every attempt ran out of memory");
        Err(df_error(&query.source_name, &self.limits, &e))
    }

    /// The limits this session's queries run under.
    pub fn limits(&self) -> &MemoryLimits {
        &self.limits
    }

    /// A query error as this session reports it (running out of memory
    /// named as such), for callers that poll [`QuerySession::stream`].
    pub fn error(&self, source_name: &str, e: &datafusion::error::DataFusionError) -> QueryError {
        df_error(source_name, &self.limits, e)
    }

    /// Runs a query and writes its rows as they come (CSV and JSON Lines
    /// stream in bounded memory; the aligned table needs every row first).
    /// Returns the number of rows written.
    pub async fn write(
        &self,
        query: &BoundQuery,
        out: &mut dyn Write,
        format: OutputFormat,
    ) -> Result<u64> {
        use futures::StreamExt;
        if format == OutputFormat::Table {
            let batches = self.collect(query).await?;
            write_batches(out, &batches, format)?;
            return Ok(batches.iter().map(|b| b.num_rows() as u64).sum());
        }
        // Batches are encoded on the blocking pool, several at once, while
        // the query goes on producing the next ones; their bytes are written
        // in order. The bytes are those of one writer over all the batches
        // (the CSV header with the first batch only).
        let mut stream = self.stream(query).await?;
        let schema = stream.schema();
        let in_flight = std::thread::available_parallelism().map_or(2, |n| n.get()) * 2;
        let mut pending = std::collections::VecDeque::new();
        let mut rows = 0u64;
        let mut first = true;
        while let Some(b) = stream.next().await {
            let b = b.map_err(|e| self.error(&query.source_name, &e))?;
            rows += b.num_rows() as u64;
            let header = first;
            first = false;
            pending.push_back(tokio::task::spawn_blocking(move || {
                encode_batch(&b, format, header)
            }));
            if pending.len() >= in_flight {
                write_encoded(&mut pending, out).await?;
            }
        }
        while !pending.is_empty() {
            write_encoded(&mut pending, out).await?;
        }
        if first && format == OutputFormat::Csv {
            // The header of an empty result.
            let bytes = encode_batch(&RecordBatch::new_empty(schema), format, true)
                .map_err(|e| output_error(&e))?;
            out.write_all(&bytes).map_err(|e| output_error(&e))?;
        }
        Ok(rows)
    }

    /// Runs a query and collects its result (for small results); an empty
    /// result is one empty batch with the result's schema.
    pub async fn collect(&self, query: &BoundQuery) -> Result<Vec<RecordBatch>> {
        use futures::StreamExt;
        let mut stream = self.stream(query).await?;
        let schema = stream.schema();
        let mut batches = Vec::new();
        while let Some(b) = stream.next().await {
            batches.push(b.map_err(|e| df_error(&query.source_name, &self.limits, &e))?);
        }
        if batches.is_empty() {
            // Keep the header: an empty result still has columns.
            batches.push(RecordBatch::new_empty(schema));
        }
        Ok(batches)
    }
}

/// An error writing a result.
fn output_error(e: &dyn std::fmt::Display) -> QueryError {
    QueryError::Output(e.to_string())
}

type Encoding = tokio::task::JoinHandle<std::result::Result<Vec<u8>, arrow::error::ArrowError>>;

/// Waits for the oldest batch being encoded and writes its bytes.
async fn write_encoded(
    pending: &mut std::collections::VecDeque<Encoding>,
    out: &mut dyn Write,
) -> Result<()> {
    let handle = pending.pop_front().expect("a batch being encoded");
    let bytes = handle
        .await
        .map_err(|e| output_error(&e))?
        .map_err(|e| output_error(&e))?;
    out.write_all(&bytes).map_err(|e| output_error(&e))
}

/// One batch as CSV (with the header row when `header`) or JSON Lines (null
/// fields written as null, so every row has every column).
fn encode_batch(
    batch: &RecordBatch,
    format: OutputFormat,
    header: bool,
) -> std::result::Result<Vec<u8>, arrow::error::ArrowError> {
    let mut buf = Vec::new();
    if format == OutputFormat::Csv {
        let mut w = arrow::csv::WriterBuilder::new()
            .with_header(header)
            .build(&mut buf);
        w.write(batch)?;
    } else {
        let mut w = arrow::json::WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, arrow::json::writer::LineDelimited>(&mut buf);
        w.write(batch)?;
        w.finish()?;
    }
    Ok(buf)
}
