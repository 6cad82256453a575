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
//! _leafe/catalog.json                               committed files of every run, for other engines
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
//! directories also see files of uncommitted runs; engines that follow the
//! catalog (`_leafe/catalog.json`, `leafe catalog`) see exactly the committed
//! ones, as leafe's queries do.
//!
//! This module and `query` are the only ones that know about object_store.
//!
//! | file | owns |
//! |---|---|
//! | `mod.rs` | [`Store`]: opening a URL, errors, the object primitives the others build on |
//! | `commit.rs` | locks, commit markers, listing runs (guarantees 1 and 3) |
//! | `writer.rs` | [`RunWriter`]: a run's Parquet files and its commit (guarantees 2 and 5) |
//! | `catalog.rs` | the committed-files manifest other engines read |
//! | `gc.rs` | collecting uncommitted runs (guarantee 4) |
//! | `artifacts.rs` | objects outside the tables: models, watermarks, reports, export files |
//! | `schema.rs`, `rows.rs` | table layouts from `schemas/`, row builders |
//! | `ancestry.rs` | the `ancestry` table: each tree's paths, flattened when it is written |

pub mod ancestry;
mod artifacts;
mod catalog;
mod commit;
mod gc;
pub mod rows;
pub mod schema;
mod writer;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{
    ClientConfigKey, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, RetryConfig,
};

// `writer` records the host as `super::hostname()`.
pub use ancestry::{AncestryBatchBuilder, TreeNode};
pub use catalog::{CATALOG_PATH, Catalog, CatalogColumn, CatalogFile, CatalogRun, CatalogTable};
use commit::hostname;
pub use commit::{CommitMarker, FileEntry, RunInfo, RunLock};
pub use gc::GcReport;
pub use rows::{
    EpisodeBatchBuilder, EpisodeRow, LlmCallBatchBuilder, LlmCallRow, ReflectionBatchBuilder,
    ReflectionRow, StepBatchBuilder, StepRow,
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
    /// The object store failed (after its bounded retries). Displayed as one
    /// line that says what is wrong and what to do ([`explain`]); the
    /// server's own words (an S3 XML body, say) stay in `source`.
    #[error("store {store}: {op} `{path}` failed: {}", explain(error, store))]
    ObjectStore {
        /// The store URL.
        store: String,
        /// What was being done.
        op: &'static str,
        /// The object path.
        path: String,
        /// The underlying error (boxed: it is large and errors are rare).
        /// Not the error's `source()`: its text holds the server's reply,
        /// which `explain` summarises; `-v` logs it whole.
        error: Box<object_store::Error>,
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

/// One short line for an object-store error: what is wrong and what to do
/// for the failures a user can fix (missing bucket, refused credentials,
/// denied access, unreachable endpoint); otherwise the error's first line,
/// without the server's XML body.
pub fn explain(err: &object_store::Error, store: &str) -> String {
    let mut chain = err.to_string();
    let mut cause: Option<&dyn std::error::Error> = std::error::Error::source(err);
    while let Some(c) = cause {
        chain.push_str(" | ");
        chain.push_str(&c.to_string());
        cause = c.source();
    }
    let bucket = store
        .strip_prefix("s3://")
        .map(|r| r.split('/').next().unwrap_or(r))
        .unwrap_or("");
    let endpoint = std::env::var("AWS_ENDPOINT_URL")
        .or_else(|_| std::env::var("AWS_ENDPOINT"))
        .unwrap_or_else(|_| "the AWS S3 endpoint".into());
    let has = |needles: &[&str]| needles.iter().any(|n| chain.contains(n));
    if has(&["NoSuchBucket", "The specified bucket does not exist"]) {
        return format!(
            "bucket `{bucket}` does not exist at {endpoint}: create it, or fix the bucket in --store / LEAFE_STORE"
        );
    }
    if matches!(err, object_store::Error::Unauthenticated { .. })
        || has(&[
            "InvalidAccessKeyId",
            "SignatureDoesNotMatch",
            "InvalidToken",
            "ExpiredToken",
            "InvalidClientTokenId",
        ])
    {
        return "the credentials were refused: check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary ones)".into();
    }
    if matches!(err, object_store::Error::PermissionDenied { .. })
        || has(&["AccessDenied", "Access Denied", "403 Forbidden"])
    {
        return format!(
            "access denied: these credentials may not read, write or list under `{store}`; grant s3:GetObject, s3:PutObject, s3:DeleteObject and s3:ListBucket on the bucket, or use other credentials"
        );
    }
    if has(&[
        "Connection refused",
        "connection refused",
        "dns error",
        "failed to lookup address",
        "error trying to connect",
        "tcp connect error",
        "operation timed out",
        "timed out",
        "error sending request",
    ]) {
        return format!(
            "cannot reach {endpoint}: check AWS_ENDPOINT_URL (and AWS_ALLOW_HTTP=true for http://), the network, or that the server is running"
        );
    }
    let first = err.to_string();
    let first = first.split(['\n', '<']).next().unwrap_or("").trim();
    let mut line: String = first.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.len() > 240 {
        let mut cut = 240;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
        line.push('…');
    }
    line
}

/// Result type of the store boundary.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The default store location, used when no `--store` is given.
pub const DEFAULT_STORE: &str = "./leafe-data";

/// A handle on a store: an object store rooted at the store URL.
#[derive(Debug, Clone)]
pub struct Store {
    url: String,
    objects: Arc<dyn ObjectStore>,
    /// The directory of a local store (for cleaning up what object_store
    /// does not list: a killed writer's half-written temp files).
    local_root: Option<std::path::PathBuf>,
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
        move |source| {
            tracing::debug!("store {store}: {op} `{path}`: {source}");
            StoreError::ObjectStore {
                store,
                op,
                path,
                error: Box::new(source),
            }
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

    async fn delete(&self, path: &Path) -> Result<()> {
        match self.objects.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.os_err("delete", path)(e)),
        }
    }
}

#[cfg(test)]
mod explain_tests {
    use super::explain;

    fn generic(body: &str) -> object_store::Error {
        object_store::Error::Generic {
            store: "S3",
            source: body.to_string().into(),
        }
    }

    #[test]
    fn s3_failures_are_one_line_that_says_what_to_do() {
        let xml = "Client error with status 404 Not Found: <?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message></Error>";
        let e = explain(&generic(xml), "s3://nope/prefix");
        assert!(e.starts_with("bucket `nope` does not exist"), "{e}");
        for (body, want) in [
            (
                "<Error><Code>InvalidAccessKeyId</Code></Error>",
                "credentials were refused",
            ),
            (
                "<Error><Code>SignatureDoesNotMatch</Code></Error>",
                "credentials were refused",
            ),
            ("<Error><Code>AccessDenied</Code></Error>", "access denied"),
            (
                "error sending request: tcp connect error: Connection refused (os error 111)",
                "cannot reach",
            ),
        ] {
            let e = explain(&generic(body), "s3://b/p");
            assert!(e.contains(want), "{body} -> {e}");
            assert!(!e.contains('<') && !e.contains('\n'), "{e}");
        }
        let other = explain(&generic("status 500: <?xml ?><Error>x</Error>"), "s3://b");
        assert_eq!(other, "Generic S3 error: status 500:");
    }
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
