//! SQL over the store: a DataFusion session with each table registered over
//! committed runs only, and the parameterised queries of `queries/*.sql`.
//!
//! Every table is a Hive-partitioned listing table (`run_id` is the partition
//! column, so `WHERE run_id = '…'` prunes whole runs before any file is
//! opened). Schemas come from `schemas/`, not from file inference, so queries
//! plan on an empty store too. A session sees the runs committed when it was
//! opened (see [`view::CommittedView`]).
//!
//! Query files open with a header comment: what the query returns, then one
//! `-- @param NAME TYPE [= DEFAULT]  description` line per parameter, TYPE one
//! of int, float, string, bool. The body refers to a parameter as `${NAME}`;
//! values are substituted as SQL literals of the declared type (strings are
//! quoted and escaped), so a value can never change the query's structure.
//! A query that reads another query's rows names it in a
//! `-- @input NAME  description` line and reads it as the table `NAME`.
//! Every file of `queries/` is compiled in; [`load_query`] finds one by name.

mod ancestry;
mod catalog;
mod render;
pub mod view;

pub use catalog::{embedded_query, load_query, query_names, register_inputs};
pub use render::{Rendered, Statement, check_params, own_values, render};

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::sync::Arc;

use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::prelude::{SessionConfig, SessionContext};
use url::Url;

use crate::store::{PARTITION_COLUMN, Store, StoreError, Table};
use view::CommittedView;

/// Errors of the query boundary.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// Opening the store or reading its markers failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// DataFusion refused or failed the query (syntax, unknown table or column, …).
    #[error("{source_name}: {message}")]
    Sql {
        /// Where the SQL came from: a file name or `command line`.
        source_name: String,
        /// DataFusion's message, on one line.
        message: String,
    },
    /// A `--param` the query does not declare.
    #[error("{source_name}: unknown parameter `{name}` (declared: {declared})")]
    UnknownParam {
        /// Where the SQL came from.
        source_name: String,
        /// The parameter given.
        name: String,
        /// The parameters the query declares.
        declared: String,
    },
    /// A parameter without a value and without a default, or with a bad value.
    #[error("{source_name}: parameter `{name}`: {problem}")]
    BadParam {
        /// Where the SQL came from.
        source_name: String,
        /// The parameter.
        name: String,
        /// What is wrong.
        problem: String,
    },
    /// The query file could not be read.
    #[error("cannot read query file `{path}`: {source}")]
    Io {
        /// The file.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Writing the output failed.
    #[error("writing query output: {0}")]
    Output(String),
    /// The query needs more memory than the limit allows, even spilling.
    #[error(
        "{source_name}: needs more than the memory limit of {limit} even with spilling to {spill_dir} ({detail}); raise --memory-limit (or LEAFE_MEMORY_LIMIT), or select fewer runs"
    )]
    OutOfMemory {
        /// Where the SQL came from.
        source_name: String,
        /// The limit, for people (`512 MiB`).
        limit: String,
        /// Where spill files go.
        spill_dir: String,
        /// What DataFusion said, shortened.
        detail: String,
    },
    /// A query name that is neither in the given directory nor embedded.
    #[error("no query named `{name}` (queries/{name}.sql)")]
    UnknownQuery {
        /// The name asked for.
        name: String,
    },
}

/// Result type of the query boundary.
pub type Result<T, E = QueryError> = std::result::Result<T, E>;

fn one_line(s: impl ToString) -> String {
    s.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// How much memory queries may use, and where they spill beyond it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryLimits {
    /// Bytes DataFusion's operators may hold (sorts, aggregations, joins'
    /// build sides, the recursive CTEs' work tables); sorts and aggregations
    /// spill to disk beyond it, the rest fails with [`QueryError::OutOfMemory`].
    pub limit: usize,
    /// Directory for spill files (None: the OS temporary directory).
    pub spill_dir: Option<std::path::PathBuf>,
}

impl Default for MemoryLimits {
    /// A quarter of the machine's memory, at most 2 GiB, at least 256 MiB.
    fn default() -> Self {
        let physical = physical_memory().unwrap_or(8 << 30);
        MemoryLimits {
            limit: (physical / 4).clamp(256 << 20, 2 << 30),
            spill_dir: None,
        }
    }
}

impl MemoryLimits {
    /// The limits every session of this process uses unless told otherwise:
    /// those set by [`MemoryLimits::set_process_default`] (the CLI's
    /// `--memory-limit` / `--spill-dir`), else [`MemoryLimits::default`].
    pub fn process_default() -> MemoryLimits {
        PROCESS_LIMITS.get().cloned().unwrap_or_default()
    }

    /// Sets the process-wide limits (once; later calls are ignored).
    pub fn set_process_default(limits: MemoryLimits) {
        let _ = PROCESS_LIMITS.set(limits);
    }

    fn spill_dir_text(&self) -> String {
        self.spill_dir.as_ref().map_or_else(
            || std::env::temp_dir().display().to_string(),
            |d| d.display().to_string(),
        )
    }
}

static PROCESS_LIMITS: std::sync::OnceLock<MemoryLimits> = std::sync::OnceLock::new();

/// The machine's physical memory in bytes, where the OS says.
fn physical_memory() -> Option<usize> {
    #[cfg(unix)]
    {
        // SAFETY: sysconf has no preconditions; it returns -1 when unknown.
        let (pages, size) = unsafe {
            (
                libc::sysconf(libc::_SC_PHYS_PAGES),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        if pages > 0 && size > 0 {
            return Some(pages as usize * size as usize);
        }
    }
    None
}

/// Parses a size: `512M`, `2G`, `1.5GiB`, `1048576` (bytes).
pub fn parse_size(s: &str) -> std::result::Result<usize, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a size like 512M, 2G or 1073741824"))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" | "tib" => 1024.0f64.powi(4),
        other => return Err(format!("`{s}`: unknown unit `{other}` (K, M, G, T)")),
    };
    let bytes = n * mult;
    if !bytes.is_finite() || bytes < (16 << 20) as f64 || bytes > 1e15 {
        return Err(format!(
            "`{s}`: a memory limit must lie between 16M and 1000T"
        ));
    }
    Ok(bytes as usize)
}

/// Spill files one merge pass of a sort reads at once (DataFusion's
/// default: all of them).
pub const SPILL_MERGE_FAN_IN: usize = 16;

/// Rows per batch in the last attempt of [`QuerySession::stream`]
/// (DataFusion's default is 8,192).
pub const SMALL_BATCH_ROWS: usize = 1024;

/// A size for people: `512 MiB`, `2.0 GiB`.
pub fn format_size(bytes: usize) -> String {
    if bytes >= 1 << 30 {
        format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
    } else {
        format!("{} MiB", bytes >> 20)
    }
}

/// Whether DataFusion ran out of its memory pool.
fn is_out_of_memory(e: &datafusion::error::DataFusionError) -> bool {
    matches!(
        e.find_root(),
        datafusion::error::DataFusionError::ResourcesExhausted(_)
    ) || e.to_string().contains("Resources exhausted")
}

/// A DataFusion error as the query boundary's: running out of memory gets
/// its own one-line error, the rest keep DataFusion's message on one line.
fn df_error(
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
        let mut config = SessionConfig::new().with_information_schema(true);
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
        let ctx = SessionContext::new_with_config_rt(config, runtime);
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
            let older = ancestry::runs_without_ancestry(&commits);
            if table == Table::Ancestry && !older.is_empty() {
                let episodes = ctx
                    .table_provider(Table::Episodes.name())
                    .await
                    .map_err(|e| QueryError::Sql {
                        source_name: table.name().into(),
                        message: one_line(e),
                    })?;
                provider = Arc::new(ancestry::FilledAncestry::new(provider, episodes, older));
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
        let mut stream = self.stream(query).await?;
        let schema = stream.schema();
        let err = |e: &dyn std::fmt::Display| QueryError::Output(e.to_string());
        let mut rows = 0u64;
        match format {
            OutputFormat::Csv => {
                let mut w = arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(&mut *out);
                let mut any = false;
                while let Some(b) = stream.next().await {
                    let b = b.map_err(|e| self.error(&query.source_name, &e))?;
                    rows += b.num_rows() as u64;
                    any = true;
                    w.write(&b).map_err(|e| err(&e))?;
                }
                if !any {
                    // The header of an empty result.
                    w.write(&RecordBatch::new_empty(schema))
                        .map_err(|e| err(&e))?;
                }
            }
            _ => {
                let mut w = arrow::json::WriterBuilder::new()
                    .with_explicit_nulls(true)
                    .build::<_, arrow::json::writer::LineDelimited>(&mut *out);
                while let Some(b) = stream.next().await {
                    let b = b.map_err(|e| self.error(&query.source_name, &e))?;
                    rows += b.num_rows() as u64;
                    w.write(&b).map_err(|e| err(&e))?;
                }
                w.finish().map_err(|e| err(&e))?;
            }
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

/// A parameter type in a query header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    /// A 64-bit integer.
    Int,
    /// A float.
    Float,
    /// A string (substituted as a quoted SQL literal).
    String,
    /// true or false.
    Bool,
}

impl ParamType {
    /// The name a query header uses for it.
    pub fn name(self) -> &'static str {
        match self {
            ParamType::Int => "int",
            ParamType::Float => "float",
            ParamType::String => "string",
            ParamType::Bool => "bool",
        }
    }
}

/// A parameter declared in a query file's header.
#[derive(Debug, Clone)]
pub struct ParamDecl {
    /// Name, used as `${name}` in the body.
    pub name: String,
    /// Its type.
    pub param_type: ParamType,
    /// Default value (as written), if any.
    pub default: Option<String>,
    /// What it means.
    pub doc: String,
}

/// A query: SQL text with its declared parameters.
#[derive(Debug, Clone)]
pub struct QueryText {
    /// Where it came from (file path or `command line`).
    pub source_name: String,
    /// The SQL, header included.
    pub sql: String,
    /// Declared parameters.
    pub params: Vec<ParamDecl>,
}

/// A query with its parameters substituted, ready to run.
#[derive(Debug, Clone)]
pub struct BoundQuery {
    /// Where it came from.
    pub source_name: String,
    /// The SQL to run.
    pub sql: String,
}

impl QueryText {
    /// SQL given inline (no parameters declared).
    pub fn inline(sql: &str) -> QueryText {
        QueryText::parse("command line", sql).unwrap_or_else(|_| QueryText {
            source_name: "command line".into(),
            sql: sql.to_string(),
            params: Vec::new(),
        })
    }

    /// Reads a query file.
    pub fn from_file(path: &std::path::Path) -> Result<QueryText> {
        let sql = std::fs::read_to_string(path).map_err(|source| QueryError::Io {
            path: path.display().to_string(),
            source,
        })?;
        QueryText::parse(&path.display().to_string(), &sql)
    }

    /// Parses the `-- @param` lines of a query's header.
    pub fn parse(source_name: &str, sql: &str) -> Result<QueryText> {
        let mut params = Vec::new();
        for line in sql.lines() {
            let Some(rest) = line.trim().strip_prefix("--").map(str::trim) else {
                continue;
            };
            let Some(rest) = rest.strip_prefix("@param") else {
                continue;
            };
            let bad = |problem: String| QueryError::BadParam {
                source_name: source_name.to_string(),
                name: rest.split_whitespace().next().unwrap_or("?").to_string(),
                problem,
            };
            let mut words = rest.split_whitespace();
            let name = words
                .next()
                .ok_or_else(|| bad("`@param` needs a name".into()))?
                .to_string();
            let param_type = match words.next() {
                Some("int") => ParamType::Int,
                Some("float") => ParamType::Float,
                Some("string") => ParamType::String,
                Some("bool") => ParamType::Bool,
                other => {
                    return Err(bad(format!(
                        "unknown type {other:?} (int, float, string, bool)"
                    )));
                }
            };
            let mut rest: Vec<&str> = words.collect();
            let default = if rest.first() == Some(&"=") && rest.len() >= 2 {
                let d = rest[1].to_string();
                rest.drain(..2);
                Some(d)
            } else {
                None
            };
            params.push(ParamDecl {
                name,
                param_type,
                default,
                doc: rest.join(" "),
            });
        }
        Ok(QueryText {
            source_name: source_name.to_string(),
            sql: sql.to_string(),
            params,
        })
    }

    /// The queries this one reads as tables: the names of its
    /// `-- @input NAME  description` lines, in order.
    pub fn inputs(&self) -> Vec<&str> {
        self.sql
            .lines()
            .filter_map(|line| {
                line.trim()
                    .strip_prefix("--")?
                    .trim()
                    .strip_prefix("@input")
            })
            .filter(|rest| rest.starts_with(char::is_whitespace))
            .filter_map(|rest| rest.split_whitespace().next())
            .collect()
    }

    /// Substitutes parameter values (given ones over defaults) into the body,
    /// as literals of standard SQL (DataFusion's, DuckDB's, Trino's).
    pub fn bind(&self, values: &BTreeMap<String, String>) -> Result<BoundQuery> {
        self.bind_for(values, Dialect::Standard)
    }

    /// [`QueryText::bind`] with string literals written for `dialect`.
    pub fn bind_for(
        &self,
        values: &BTreeMap<String, String>,
        dialect: Dialect,
    ) -> Result<BoundQuery> {
        for name in values.keys() {
            if !self.params.iter().any(|p| &p.name == name) {
                let declared = if self.params.is_empty() {
                    "none".to_string()
                } else {
                    self.params
                        .iter()
                        .map(|p| p.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                return Err(QueryError::UnknownParam {
                    source_name: self.source_name.clone(),
                    name: name.clone(),
                    declared,
                });
            }
        }
        let mut literals: BTreeMap<&str, String> = BTreeMap::new();
        for p in &self.params {
            let bad = |problem: String| QueryError::BadParam {
                source_name: self.source_name.clone(),
                name: p.name.clone(),
                problem,
            };
            let value = values.get(&p.name).or(p.default.as_ref()).ok_or_else(|| {
                bad("no value given and no default (pass --param NAME=VALUE)".into())
            })?;
            let literal = match p.param_type {
                ParamType::Int => value
                    .parse::<i64>()
                    .map(|v| v.to_string())
                    .map_err(|_| bad(format!("`{value}` is not an integer")))?,
                ParamType::Float => match value.parse::<f64>() {
                    Ok(v) if v.is_finite() => format!("{v:?}"),
                    _ => return Err(bad(format!("`{value}` is not a finite number"))),
                },
                ParamType::Bool => match value.as_str() {
                    "true" | "false" => value.clone(),
                    _ => return Err(bad(format!("`{value}` is not true or false"))),
                },
                ParamType::String => dialect.string_literal(value),
            };
            literals.insert(&p.name, literal);
        }
        // One pass over the text: a value that itself reads `${other}` stays
        // inside its literal instead of being substituted again. Header
        // lines hold `${…}` in docs only if the author wrote them; an
        // unresolved one in the body is an error the engine reports itself.
        let mut sql = String::with_capacity(self.sql.len());
        let mut rest = self.sql.as_str();
        while let Some(at) = rest.find("${") {
            sql.push_str(&rest[..at]);
            let after = &rest[at + 2..];
            match after
                .find('}')
                .and_then(|end| literals.get(&after[..end]).map(|l| (end, l)))
            {
                Some((end, literal)) => {
                    sql.push_str(literal);
                    rest = &after[end + 1..];
                }
                None => {
                    sql.push_str("${");
                    rest = after;
                }
            }
        }
        sql.push_str(rest);
        Ok(BoundQuery {
            source_name: self.source_name.clone(),
            sql,
        })
    }
}

/// The SQL dialect a bound query is written for. Only string literals
/// differ: the query files use SQL that DataFusion, DuckDB and Spark share.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    /// Standard SQL string literals (`'o''brien'`, backslash is a plain
    /// character): DataFusion, DuckDB, Trino, PostgreSQL.
    #[default]
    Standard,
    /// Spark SQL: backslash escapes inside literals (`'o\'brien'`), since
    /// Spark reads `'a''b'` as two adjacent literals, `ab`.
    Spark,
}

impl Dialect {
    /// `value` as a string literal of this dialect.
    pub fn string_literal(self, value: &str) -> String {
        match self {
            Dialect::Standard => format!("'{}'", value.replace('\'', "''")),
            Dialect::Spark => {
                let mut out = String::with_capacity(value.len() + 2);
                out.push('\'');
                for c in value.chars() {
                    match c {
                        '\\' => out.push_str("\\\\"),
                        '\'' => out.push_str("\\'"),
                        '\n' => out.push_str("\\n"),
                        '\r' => out.push_str("\\r"),
                        '\t' => out.push_str("\\t"),
                        '\0' => out.push_str("\\0"),
                        c => out.push(c),
                    }
                }
                out.push('\'');
                out
            }
        }
    }
}

/// How a command prints rows on stdout.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// An aligned text table.
    #[default]
    Table,
    /// CSV with a header row.
    Csv,
    /// JSON Lines: one object per row, every column in every row (null as null).
    Json,
}

/// Writes batches in the chosen format.
pub fn write_batches(
    out: &mut dyn Write,
    batches: &[RecordBatch],
    format: OutputFormat,
) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| QueryError::Output(e.to_string());
    match format {
        OutputFormat::Table => {
            let table = arrow::util::pretty::pretty_format_batches(batches).map_err(|e| err(&e))?;
            writeln!(out, "{table}").map_err(|e| err(&e))?;
        }
        OutputFormat::Csv => {
            let mut w = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut *out);
            for b in batches {
                w.write(b).map_err(|e| err(&e))?;
            }
        }
        OutputFormat::Json => {
            // Null fields are written as null, so every row has every column.
            let mut w = arrow::json::WriterBuilder::new()
                .with_explicit_nulls(true)
                .build::<_, arrow::json::writer::LineDelimited>(&mut *out);
            for b in batches {
                w.write(b).map_err(|e| err(&e))?;
            }
            w.finish().map_err(|e| err(&e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_typed_literals_and_unknown_ones_are_refused() {
        let q = QueryText::parse(
            "q.sql",
            "-- @param k int = 3  how many\n-- @param who string\nSELECT ${k}, ${who}",
        )
        .unwrap();
        assert_eq!(q.params.len(), 2);
        assert_eq!(q.params[0].doc, "how many");
        let vals = BTreeMap::from([("who".to_string(), "o'brien".to_string())]);
        assert!(q.bind(&vals).unwrap().sql.ends_with("SELECT 3, 'o''brien'"));
        let bad = BTreeMap::from([
            ("k".to_string(), "1; DROP".to_string()),
            ("who".into(), "x".into()),
        ]);
        assert!(matches!(q.bind(&bad), Err(QueryError::BadParam { .. })));
        let unknown = BTreeMap::from([("nope".to_string(), "1".to_string())]);
        let e = q.bind(&unknown).unwrap_err().to_string();
        assert!(
            e.contains("unknown parameter `nope`") && e.contains("k, who"),
            "{e}"
        );
        assert!(matches!(
            q.bind(&BTreeMap::new()),
            Err(QueryError::BadParam { .. })
        ));
    }

    #[test]
    fn a_value_is_substituted_once_and_quoted_for_the_dialect() {
        let q = QueryText::parse(
            "q.sql",
            "-- @param a string\n-- @param b string\nSELECT ${a}, ${b}, ${c}",
        )
        .unwrap();
        let vals = BTreeMap::from([
            ("a".to_string(), "${b}".to_string()),
            ("b".to_string(), r"it's \d".to_string()),
        ]);
        let std = q.bind(&vals).unwrap().sql;
        assert!(std.ends_with(r"SELECT '${b}', 'it''s \d', ${c}"), "{std}");
        let spark = q.bind_for(&vals, Dialect::Spark).unwrap().sql;
        assert!(
            spark.ends_with(r"SELECT '${b}', 'it\'s \\d', ${c}"),
            "{spark}"
        );
    }
}
