//! The commit protocol's bookkeeping: a writer's lock on a run id, the
//! commit marker that makes a run visible, and listing runs.
//!
//! Both objects are JSON under `_leafe/` and both are written put-if-absent
//! (`PutMode::Create`): a lock claims a run id once and for all (guarantee 1
//! of the module docs: locks of committed runs are never removed, so an id
//! is never reused), and a marker, written by [`RunWriter::commit`] after
//! every data file, is what makes the run exist for queries (guarantee 3).
//! Readers trust markers only: a lock without a marker is a run being
//! written, or a crashed one for `gc`.

use std::collections::BTreeMap;

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use serde::{Deserialize, Serialize};

use super::{
    Result, RunSpec, RunWriter, Store, StoreError, Table, WriterOptions, now_us, validate_run_id,
};

const LOCKS: &str = "_leafe/locks";
const COMMITS: &str = "_leafe/commits";

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

impl Store {
    pub(super) fn lock_path(run_id: &str) -> Path {
        Path::from(format!("{LOCKS}/{run_id}.json"))
    }

    pub(super) fn commit_path(run_id: &str) -> Path {
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

    pub(super) async fn locks(&self) -> Result<Vec<(RunLock, Path)>> {
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
}

/// The writer's host, recorded in its lock and in the `runs` row.
pub(super) fn hostname() -> Option<String> {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}
