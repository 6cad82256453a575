//! Garbage collection: deleting what crashed writers left behind.
//!
//! A run without a commit marker is invisible to queries; [`Store::gc`]
//! deletes its files and then its lock (the lock last, so a gc that dies
//! halfway leaves a run that is still visibly uncommitted and the next gc
//! finishes it), and run directories that have neither lock nor marker.
//! It never touches a committed run, and spares uncommitted runs younger
//! than a grace period, so it cannot race a live writer (guarantee 4 of the
//! module docs).

use std::time::Duration;

use futures::TryStreamExt;
use object_store::path::Path;
use serde::Serialize;

use super::{Result, Store, StoreError, Table, now_us};

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

impl Store {
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
                                error: Box::new(object_store::Error::Generic {
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
}
