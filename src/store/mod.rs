//! The experience store: tables of Parquet files under one URL, and the
//! protocol that makes a run's data visible all at once or not at all.
//!
//! A store is a URL: a plain path (default `./leafe-data`), `file:///…`, or
//! `s3://bucket/prefix` (credentials, region and endpoint from the standard
//! `AWS_*` variables, so any S3-compatible server works). Layout under it:
//!
//! ```text
//! <table>/run_id=<id>/part-<seq>-<nonce>.parquet   data (Hive-partitioned by run)
//! _leafe/locks/<id>.json                            a writer's claim on a run id
//! _leafe/commits/<id>.json                          commit marker + manifest
//! ```
//!
//! # Guarantees (the commit protocol)
//!
//! 1. **One writer per run id.** [`Store::begin_run`] creates the run's lock
//!    object with put-if-absent (`PutMode::Create`). A second writer of the same
//!    id — concurrent, or after a crash, or after a commit — gets
//!    [`StoreError::RunExists`]. Locks are never removed for committed runs, so a
//!    run id is never reused.
//! 2. **Files appear whole.** Each data file is written through a multipart
//!    upload (a temp file + rename on local disk) and exists only once complete.
//!    File names carry a random nonce, so no file is ever overwritten.
//! 3. **Runs appear whole.** A run becomes visible to queries only when its
//!    commit marker is written, again with put-if-absent, after every data file
//!    (and the run's `runs` row) is complete. The marker lists the run's files;
//!    queries read exactly those files (see `query`), so a process killed at any
//!    point leaves no partial run in results.
//! 4. **Crashed runs are collectable.** Files of a run without a marker are
//!    invisible to queries; `leafe gc` deletes them and their lock once older than
//!    a grace period (so it does not race a live writer).
//! 5. **Bounded memory.** A writer holds at most one row group per table in
//!    memory plus an upload buffer, and rolls over to a new file every
//!    `max_rows_per_file` rows, however many rows a run writes.
//!
//! Data files are plain Parquet (zstd, page statistics, the Arrow schema and
//! `leafe.table` / `leafe.schema_version` in the footer metadata) readable
//! as-is by DuckDB, pyarrow, polars and Spark. External engines that glob the
//! directories also see files of uncommitted runs; the markers (or `leafe runs`)
//! say which runs are committed.
//!
//! This module and `query` are the only ones that know about object_store.

pub mod rows;
pub mod schema;
mod writer;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{
    ClientConfigKey, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, RetryConfig,
};
use serde::{Deserialize, Serialize};

pub use rows::{
    EpisodeBatchBuilder, EpisodeRow, ReflectionBatchBuilder, ReflectionRow, StepBatchBuilder,
    StepRow,
};
pub use schema::{PARTITION_COLUMN, Table, TableSchema};
pub use writer::{RunSpec, RunWriter, WriterOptions};

/// Errors of the store boundary.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store URL could not be understood.
    #[error("bad store URL `{url}`: {reason}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A run id that would be unsafe or ambiguous as a directory name.
    #[error("bad run id `{run_id}`: {reason}")]
    BadRunId {
        /// The run id as given.
        run_id: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The run id is already taken by a committed run or another writer.
    #[error("run `{run_id}` {state}; choose another --run-id")]
    RunExists {
        /// The run id.
        run_id: String,
        /// Who holds it.
        state: String,
    },
    /// A batch does not have the table's schema.
    #[error("schema mismatch in table `{table}`, column `{column}`: {problem}")]
    SchemaMismatch {
        /// Table name.
        table: String,
        /// First offending column.
        column: String,
        /// What differs.
        problem: String,
    },
    /// A table name that the store does not have.
    #[error("unknown table `{table}` (tables: runs, episodes, steps, reflections)")]
    UnknownTable {
        /// The name given.
        table: String,
    },
    /// The object store failed (after its bounded retries).
    #[error("store {store}: {op} `{path}` failed: {source}")]
    ObjectStore {
        /// The store URL.
        store: String,
        /// What was being done.
        op: &'static str,
        /// The object path.
        path: String,
        /// The underlying error (boxed: it is large and errors are rare).
        #[source]
        source: Box<object_store::Error>,
    },
    /// Encoding or writing Parquet failed.
    #[error("writing table `{table}`: {source}")]
    Parquet {
        /// Table name.
        table: String,
        /// The underlying error.
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// A marker or lock object in the store could not be read.
    #[error("store {store}: `{path}` is not a valid leafe {what}: {reason}")]
    CorruptMeta {
        /// The store URL.
        store: String,
        /// The object path.
        path: String,
        /// Lock or commit marker.
        what: &'static str,
        /// Parse error.
        reason: String,
    },
}

/// Result type of the store boundary.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The default store location, used when no `--store` is given.
pub const DEFAULT_STORE: &str = "./leafe-data";

const LOCKS: &str = "_leafe/locks";
const MODELS: &str = "models";
const REPORTS: &str = "reports";
const COMMITS: &str = "_leafe/commits";
const WATERMARKS: &str = "_leafe/watermarks";

/// A handle on a store: an object store rooted at the store URL.
#[derive(Debug, Clone)]
pub struct Store {
    url: String,
    objects: Arc<dyn ObjectStore>,
    /// The directory of a local store (for cleaning up what object_store
    /// does not list: a killed writer's half-written temp files).
    local_root: Option<std::path::PathBuf>,
}

/// A writer's claim on a run id, kept as `_leafe/locks/<id>.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunLock {
    /// The run id.
    pub run_id: String,
    /// What kind of command claimed it.
    pub kind: String,
    /// Host of the writer.
    pub host: Option<String>,
    /// Process id of the writer.
    pub pid: u32,
    /// When the claim was made, microseconds since the epoch.
    pub started_at_us: i64,
}

/// One data file of a committed run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FileEntry {
    /// Path relative to the store root.
    pub path: String,
    /// Rows in the file.
    pub rows: u64,
    /// Size in bytes.
    pub bytes: u64,
}

/// The commit marker of a run: written last, lists every file of the run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CommitMarker {
    /// The run id.
    pub run_id: String,
    /// What kind of command wrote it.
    pub kind: String,
    /// When the run started, microseconds since the epoch.
    pub created_at_us: i64,
    /// When the marker was written, microseconds since the epoch.
    pub committed_at_us: i64,
    /// Files per table name.
    pub tables: BTreeMap<String, Vec<FileEntry>>,
    /// Schema version per table name, as written.
    pub schema_versions: BTreeMap<String, u32>,
    /// What the writer wants known without reading the data (e.g. the task
    /// indices an exploration chunk covers, so a restart can skip them).
    #[serde(default)]
    pub meta: serde_json::Value,
}

impl CommitMarker {
    /// Rows the run wrote into a table.
    pub fn rows(&self, table: Table) -> u64 {
        self.tables
            .get(table.name())
            .map_or(0, |f| f.iter().map(|e| e.rows).sum())
    }
}

/// A run as `leafe runs` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    /// The run id.
    pub run_id: String,
    /// What kind of command wrote it.
    pub kind: String,
    /// Whether its commit marker exists.
    pub committed: bool,
    /// When it started, microseconds since the epoch.
    pub created_at_us: i64,
    /// Rows per table (committed runs only).
    pub rows: BTreeMap<String, u64>,
    /// Total bytes of its data files (committed runs only).
    pub bytes: u64,
}

/// What `gc` removed (or would remove, in a dry run).
#[derive(Debug, Clone, Default, Serialize)]
pub struct GcReport {
    /// Uncommitted runs collected.
    pub runs: Vec<String>,
    /// Objects deleted.
    pub files: u64,
    /// Bytes freed.
    pub bytes: u64,
    /// Uncommitted runs kept because they are younger than the grace period.
    pub kept_young: Vec<String>,
}

/// Microseconds since the Unix epoch, now.
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// Checks that a run id is safe as one path segment: 1–128 characters of
/// `[A-Za-z0-9._-]`, starting with a letter or digit.
pub fn validate_run_id(run_id: &str) -> Result<()> {
    let bad = |reason: &str| {
        Err(StoreError::BadRunId {
            run_id: run_id.to_string(),
            reason: reason.to_string(),
        })
    };
    if run_id.is_empty() {
        return bad("it is empty");
    }
    if run_id.len() > 128 {
        return bad("it is longer than 128 characters");
    }
    if !run_id
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
    {
        return bad("it must start with a letter or digit");
    }
    if let Some(c) = run_id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return bad(&format!(
            "character {c:?} is not allowed (use letters, digits, `.`, `_`, `-`)"
        ));
    }
    Ok(())
}

impl Store {
    /// Opens a store from its URL (see the module docs). Creates a local store's
    /// directory; contacts nothing remote (the first operation does, with
    /// bounded retries and timeouts).
    pub fn open(url: &str) -> Result<Store> {
        let bad = |reason: String| StoreError::BadUrl {
            url: url.to_string(),
            reason,
        };
        let url = url.trim();
        if url.is_empty() {
            return Err(bad("it is empty".into()));
        }
        let mut local_root = None;
        let objects: Arc<dyn ObjectStore> = if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad("no bucket name after s3://".into()));
            }
            let s3 = AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                // Bounded waits so a down endpoint fails fast instead of hanging;
                // set as config keys so AWS_* client settings (AWS_ALLOW_HTTP, …)
                // from the environment are kept.
                .with_config(
                    AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout),
                    "5s",
                )
                .with_config(AmazonS3ConfigKey::Client(ClientConfigKey::Timeout), "60s")
                .with_retry(RetryConfig {
                    max_retries: 3,
                    retry_timeout: Duration::from_secs(20),
                    ..RetryConfig::default()
                })
                .build()
                .map_err(|e| bad(e.to_string()))?;
            let prefix = prefix.trim_matches('/');
            if prefix.is_empty() {
                Arc::new(s3)
            } else {
                let prefix = Path::parse(prefix).map_err(|e| bad(e.to_string()))?;
                Arc::new(PrefixStore::new(s3, prefix))
            }
        } else {
            let path = if let Some(rest) = url.strip_prefix("file://") {
                if !rest.starts_with('/') {
                    return Err(bad(
                        "a file:// URL needs an absolute path (file:///…)".into()
                    ));
                }
                rest
            } else if let Some((scheme, _)) = url.split_once("://") {
                return Err(bad(format!(
                    "unsupported scheme `{scheme}` (use a path, file:// or s3://)"
                )));
            } else {
                url
            };
            std::fs::create_dir_all(path)
                .map_err(|e| bad(format!("cannot create directory: {e}")))?;
            let local = LocalFileSystem::new_with_prefix(path).map_err(|e| bad(e.to_string()))?;
            local_root = Some(std::path::PathBuf::from(path));
            Arc::new(local)
        };
        Ok(Store {
            url: url.to_string(),
            objects,
            local_root,
        })
    }

    /// The URL the store was opened with.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The object store rooted at the store URL (paths are relative to it).
    pub fn objects(&self) -> Arc<dyn ObjectStore> {
        self.objects.clone()
    }

    fn os_err(
        &self,
        op: &'static str,
        path: &Path,
    ) -> impl FnOnce(object_store::Error) -> StoreError {
        let store = self.url.clone();
        let path = path.to_string();
        move |source| StoreError::ObjectStore {
            store,
            op,
            path,
            source: Box::new(source),
        }
    }

    pub(crate) async fn put_if_absent(&self, path: &Path, bytes: Vec<u8>) -> Result<bool> {
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .objects
            .put_opts(path, PutPayload::from(bytes), opts)
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(self.os_err("put", path)(e)),
        }
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &Path,
        what: &'static str,
    ) -> Result<Option<T>> {
        let bytes = match self.objects.get(path).await {
            Ok(r) => r.bytes().await.map_err(self.os_err("read", path))?,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.os_err("read", path)(e)),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StoreError::CorruptMeta {
                store: self.url.clone(),
                path: path.to_string(),
                what,
                reason: e.to_string(),
            })
    }

    fn lock_path(run_id: &str) -> Path {
        Path::from(format!("{LOCKS}/{run_id}.json"))
    }

    fn commit_path(run_id: &str) -> Path {
        Path::from(format!("{COMMITS}/{run_id}.json"))
    }

    /// Starts writing a run: validates and claims its id (see guarantee 1).
    pub async fn begin_run(&self, spec: RunSpec) -> Result<RunWriter> {
        self.begin_run_with(spec, WriterOptions::default()).await
    }

    /// [`Store::begin_run`] with explicit writer options.
    pub async fn begin_run_with(&self, spec: RunSpec, options: WriterOptions) -> Result<RunWriter> {
        let run_id = spec.run_id.clone();
        validate_run_id(&run_id)?;
        let lock = RunLock {
            run_id: run_id.clone(),
            kind: spec.kind.clone(),
            host: hostname(),
            pid: std::process::id(),
            started_at_us: now_us(),
        };
        let body = serde_json::to_vec_pretty(&lock).expect("lock serializes");
        if !self.put_if_absent(&Self::lock_path(&run_id), body).await? {
            let state = if self.commit(&run_id).await?.is_some() {
                "is already committed".to_string()
            } else {
                match self
                    .get_json::<RunLock>(&Self::lock_path(&run_id), "lock")
                    .await?
                {
                    Some(l) => format!(
                        "is being written by another writer (pid {} on {}, kind {}) or that writer died; \
                         `leafe gc` removes a dead writer's files after the grace period",
                        l.pid,
                        l.host.as_deref().unwrap_or("unknown host"),
                        l.kind
                    ),
                    None => "was claimed by another writer".to_string(),
                }
            };
            return Err(StoreError::RunExists { run_id, state });
        }
        Ok(RunWriter::new(
            self.clone(),
            spec,
            lock.started_at_us,
            options,
        ))
    }

    /// The commit marker of a run, if the run is committed.
    pub async fn commit(&self, run_id: &str) -> Result<Option<CommitMarker>> {
        validate_run_id(run_id)?;
        self.get_json(&Self::commit_path(run_id), "commit marker")
            .await
    }

    /// Reads every `*.json` object under `dir` (16 requests in flight, which
    /// matters on S3 once a store holds many runs).
    async fn read_json_dir<T: serde::de::DeserializeOwned>(
        &self,
        dir: &str,
        what: &'static str,
    ) -> Result<Vec<(T, Path)>> {
        let prefix = Path::from(dir);
        let metas: Vec<_> = self
            .objects
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(self.os_err("list", &prefix))?;
        let reads = metas
            .into_iter()
            .filter(|m| m.location.extension() == Some("json"))
            .map(|m| async move {
                self.get_json::<T>(&m.location, what)
                    .await
                    .map(|v| v.map(|v| (v, m.location)))
            });
        let found: Vec<Option<(T, Path)>> = futures::stream::iter(reads)
            .buffered(16)
            .try_collect()
            .await?;
        Ok(found.into_iter().flatten().collect())
    }

    /// Every committed run's marker, ordered by run id.
    pub async fn commits(&self) -> Result<Vec<CommitMarker>> {
        let mut out: Vec<CommitMarker> = self
            .read_json_dir(COMMITS, "commit marker")
            .await?
            .into_iter()
            .map(|(m, _)| m)
            .collect();
        out.sort_by(|a, b| a.run_id.cmp(&b.run_id));
        Ok(out)
    }

    async fn locks(&self) -> Result<Vec<(RunLock, Path)>> {
        self.read_json_dir(LOCKS, "lock").await
    }

    /// Every run the store knows of, committed or not, oldest first.
    pub async fn runs(&self) -> Result<Vec<RunInfo>> {
        let commits = self.commits().await?;
        let mut out: Vec<RunInfo> = commits
            .iter()
            .map(|m| RunInfo {
                run_id: m.run_id.clone(),
                kind: m.kind.clone(),
                committed: true,
                created_at_us: m.created_at_us,
                rows: Table::ALL
                    .iter()
                    .map(|&t| (t.name().to_string(), m.rows(t)))
                    .collect(),
                bytes: m.tables.values().flatten().map(|f| f.bytes).sum(),
            })
            .collect();
        for (lock, _) in self.locks().await? {
            if !commits.iter().any(|m| m.run_id == lock.run_id) {
                out.push(RunInfo {
                    run_id: lock.run_id,
                    kind: lock.kind,
                    committed: false,
                    created_at_us: lock.started_at_us,
                    rows: BTreeMap::new(),
                    bytes: 0,
                });
            }
        }
        out.sort_by(|a, b| (a.created_at_us, &a.run_id).cmp(&(b.created_at_us, &b.run_id)));
        Ok(out)
    }

    /// Deletes the files and locks of uncommitted runs whose lock is older than
    /// `min_age`, and orphaned run directories that have neither lock nor
    /// marker. Committed runs are never touched. With `dry_run`, only reports.
    pub async fn gc(&self, min_age: Duration, dry_run: bool) -> Result<GcReport> {
        let committed: std::collections::HashSet<String> = self
            .commits()
            .await?
            .into_iter()
            .map(|m| m.run_id)
            .collect();
        let locks = self.locks().await?;
        let now = now_us();
        let mut report = GcReport::default();
        let mut doomed: Vec<(String, Option<Path>)> = Vec::new();
        for (lock, path) in &locks {
            if committed.contains(&lock.run_id) {
                continue;
            }
            let age_us = now.saturating_sub(lock.started_at_us).max(0) as u128;
            if age_us >= min_age.as_micros() {
                doomed.push((lock.run_id.clone(), Some(path.clone())));
            } else {
                report.kept_young.push(lock.run_id.clone());
            }
        }
        // Orphans: run directories with neither marker nor lock (a gc or a
        // writer died between deleting/writing files and the lock).
        for table in Table::ALL {
            let prefix = Path::from(table.name());
            let listing = self
                .objects
                .list_with_delimiter(Some(&prefix))
                .await
                .map_err(self.os_err("list", &prefix))?;
            for dir in listing.common_prefixes {
                let Some(run_id) = dir.filename().and_then(|s| s.strip_prefix("run_id=")) else {
                    continue;
                };
                let known =
                    committed.contains(run_id) || locks.iter().any(|(l, _)| l.run_id == run_id);
                if !known && !doomed.iter().any(|(r, _)| r == run_id) {
                    doomed.push((run_id.to_string(), None));
                }
            }
        }
        for (run_id, lock_path) in doomed {
            for table in Table::ALL {
                let dir = Path::from(format!("{}/run_id={run_id}", table.name()));
                let files: Vec<_> = self
                    .objects
                    .list(Some(&dir))
                    .try_collect()
                    .await
                    .map_err(self.os_err("list", &dir))?;
                for f in files {
                    report.files += 1;
                    report.bytes += f.size;
                    if !dry_run {
                        self.delete(&f.location).await?;
                    }
                }
                // A killed writer's unfinished upload is a temp file on local
                // disk that listings skip; remove the directory whole. (On S3 an
                // unfinished multipart upload is invisible and is reclaimed by
                // the bucket's lifecycle rule for incomplete uploads.)
                if let (Some(root), false) = (&self.local_root, dry_run) {
                    let dir = root.join(table.name()).join(format!("run_id={run_id}"));
                    match std::fs::remove_dir_all(&dir) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => {
                            return Err(StoreError::ObjectStore {
                                store: self.url.clone(),
                                op: "delete",
                                path: dir.display().to_string(),
                                source: Box::new(object_store::Error::Generic {
                                    store: "LocalFileSystem",
                                    source: Box::new(e),
                                }),
                            });
                        }
                    }
                }
            }
            if let Some(lock_path) = lock_path {
                report.files += 1;
                if !dry_run {
                    // The lock goes last: if gc dies before, the run is still
                    // visibly uncommitted and the next gc finishes the job.
                    self.delete(&lock_path).await?;
                }
            }
            report.runs.push(run_id);
        }
        Ok(report)
    }

    async fn delete(&self, path: &Path) -> Result<()> {
        match self.objects.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.os_err("delete", path)(e)),
        }
    }
}

impl Store {
    fn model_path(name: &str, file: &str) -> Result<Path> {
        validate_run_id(name).map_err(|_| StoreError::BadRunId {
            run_id: name.to_string(),
            reason:
                "a model name uses letters, digits, `.`, `_`, `-` and starts with a letter or digit"
                    .into(),
        })?;
        Ok(Path::from(format!("{MODELS}/{name}/{file}")))
    }

    /// Saves a model checkpoint as `models/<name>/<file>` for each file, then
    /// `models/<name>/model.json` (its config and provenance) last and
    /// put-if-absent: a checkpoint is visible whole once `model.json` exists, and
    /// a name is never overwritten (a second save under it is refused).
    pub async fn save_model(
        &self,
        name: &str,
        files: Vec<(&str, Vec<u8>)>,
        manifest: &serde_json::Value,
    ) -> Result<()> {
        let marker = Self::model_path(name, "model.json")?;
        if self.objects.head(&marker).await.is_ok() {
            return Err(StoreError::RunExists {
                run_id: format!("model {name}"),
                state: "already exists in the store (models are never overwritten)".into(),
            });
        }
        for (file, bytes) in files {
            let path = Self::model_path(name, file)?;
            self.objects
                .put(&path, PutPayload::from(bytes))
                .await
                .map_err(self.os_err("put", &path))?;
        }
        let body = serde_json::to_vec_pretty(manifest).expect("manifest serializes");
        if !self.put_if_absent(&marker, body).await? {
            return Err(StoreError::RunExists {
                run_id: format!("model {name}"),
                state: "was saved by another writer meanwhile".into(),
            });
        }
        Ok(())
    }

    /// The manifest (`model.json`) of a saved model, or None if there is none.
    pub async fn model_manifest(&self, name: &str) -> Result<Option<serde_json::Value>> {
        self.get_json(&Self::model_path(name, "model.json")?, "model manifest")
            .await
    }

    /// Reads one file of a saved model.
    pub async fn model_file(&self, name: &str, file: &str) -> Result<Vec<u8>> {
        let path = Self::model_path(name, file)?;
        let r = self
            .objects
            .get(&path)
            .await
            .map_err(self.os_err("read", &path))?;
        Ok(r.bytes()
            .await
            .map_err(self.os_err("read", &path))?
            .to_vec())
    }

    /// The watermark of an incrementally trained model line (see
    /// `leafe train --incremental`), if it has one.
    pub async fn watermark(&self, line: &str) -> Result<Option<serde_json::Value>> {
        validate_run_id(line)?;
        self.get_json(
            &Path::from(format!("{WATERMARKS}/{line}.json")),
            "watermark",
        )
        .await
    }

    /// Replaces the watermark of a model line. Callers write it after the
    /// model it points at is saved (a crash in between retrains the same
    /// runs into a new version: nothing is lost or skipped).
    pub async fn put_watermark(&self, line: &str, value: &serde_json::Value) -> Result<()> {
        validate_run_id(line)?;
        let path = Path::from(format!("{WATERMARKS}/{line}.json"));
        let body = serde_json::to_vec_pretty(value).expect("watermark serializes");
        self.objects
            .put(&path, PutPayload::from(body))
            .await
            .map_err(self.os_err("put", &path))?;
        Ok(())
    }

    /// Whether an object exists at `path` (relative to the store's root).
    pub async fn exists(&self, path: &str) -> Result<bool> {
        let path = Path::from(path);
        match self.objects.head(&path).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.os_err("head", &path)(e)),
        }
    }

    /// A buffered writer of one object at `path` (relative to the store's
    /// root). Large objects go up as multipart uploads; the object appears
    /// whole when the writer is shut down, never half-written (a local file
    /// is written aside and renamed).
    pub fn object_writer(&self, path: &str) -> object_store::buffered::BufWriter {
        object_store::buffered::BufWriter::new(self.objects.clone(), Path::from(path))
    }

    /// Writes `reports/<run>/<file>` (a report, a plot, a copy of levels).
    /// Reports are derived output: a later write of the same file replaces
    /// it (a rerun regenerates the report from the store).
    pub async fn put_report_file(&self, run: &str, file: &str, bytes: Vec<u8>) -> Result<()> {
        let path = Self::report_path(run, file)?;
        self.objects
            .put(&path, PutPayload::from(bytes))
            .await
            .map_err(self.os_err("put", &path))?;
        Ok(())
    }

    /// Reads `reports/<run>/<file>`, or None if it does not exist.
    pub async fn report_file(&self, run: &str, file: &str) -> Result<Option<Vec<u8>>> {
        let path = Self::report_path(run, file)?;
        match self.objects.get(&path).await {
            Ok(r) => Ok(Some(
                r.bytes()
                    .await
                    .map_err(self.os_err("read", &path))?
                    .to_vec(),
            )),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.os_err("read", &path)(e)),
        }
    }

    fn report_path(run: &str, file: &str) -> Result<Path> {
        validate_run_id(run)?;
        if file.is_empty()
            || file
                .split('/')
                .any(|p| p.is_empty() || p == "." || p == ".." || p.contains('\\'))
        {
            return Err(StoreError::BadRunId {
                run_id: file.to_string(),
                reason: "a report file is a relative path without empty, `.` or `..` parts".into(),
            });
        }
        Ok(Path::from(format!("{REPORTS}/{run}/{file}")))
    }

    /// Names of the saved models.
    pub async fn models(&self) -> Result<Vec<String>> {
        let prefix = Path::from(MODELS);
        let listing = self
            .objects
            .list_with_delimiter(Some(&prefix))
            .await
            .map_err(self.os_err("list", &prefix))?;
        let mut out = Vec::new();
        for dir in listing.common_prefixes {
            if let Some(name) = dir.filename()
                && self.model_manifest(name).await?.is_some()
            {
                out.push(name.to_string());
            }
        }
        out.sort();
        Ok(out)
    }
}

fn hostname() -> Option<String> {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_with_path_characters_are_refused() {
        for bad in [
            "",
            "../x",
            "a/b",
            "a b",
            ".hidden",
            "-x",
            "run\n",
            &"x".repeat(129),
        ] {
            assert!(validate_run_id(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["r1", "explore-2026.11.24_a", "0"] {
            validate_run_id(good).unwrap();
        }
    }

    #[test]
    fn bad_urls_are_refused_with_the_url_named() {
        for bad in [
            "",
            "ftp://host/x",
            "s3://",
            "s3:///prefix",
            "file://relative",
        ] {
            let err = Store::open(bad).unwrap_err().to_string();
            assert!(err.starts_with("bad store URL"), "{bad}: {err}");
        }
    }
}
