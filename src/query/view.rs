//! An object-store view that shows queries only the files of committed runs.
//!
//! DataFusion's listing tables discover files by listing `<table>/` and its
//! `run_id=…` directories. This wrapper filters those listings against the
//! commit markers read when the session was opened: a `run_id=X` directory is
//! listed only if X is committed, and a file under it only if X's manifest names
//! it. Files of crashed or in-flight runs, stray temp files and files written
//! after a commit are therefore never read. Reads of named objects pass through.

use std::collections::HashSet;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

/// The committed part of a store, as seen by the query engine.
#[derive(Debug)]
pub struct CommittedView {
    inner: Arc<dyn ObjectStore>,
    runs: HashSet<String>,
    files: HashSet<String>,
}

impl CommittedView {
    /// A view of `inner` showing the given committed runs and their files
    /// (paths relative to the store root).
    pub fn new(inner: Arc<dyn ObjectStore>, runs: HashSet<String>, files: HashSet<String>) -> Self {
        CommittedView { inner, runs, files }
    }

    fn visible(runs: &HashSet<String>, files: &HashSet<String>, path: &Path, is_dir: bool) -> bool {
        let mut parts = path.parts();
        let Some(run_id) =
            parts.find_map(|p| p.as_ref().strip_prefix("run_id=").map(str::to_string))
        else {
            return true;
        };
        runs.contains(&run_id) && (is_dir || files.contains(path.as_ref()))
    }
}

impl fmt::Display for CommittedView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CommittedView({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for CommittedView {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let runs = self.runs.clone();
        let files = self.files.clone();
        self.inner
            .list(prefix)
            .filter(move |m| {
                let keep = match m {
                    Ok(meta) => Self::visible(&runs, &files, &meta.location, false),
                    Err(_) => true,
                };
                futures::future::ready(keep)
            })
            .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let mut result = self.inner.list_with_delimiter(prefix).await?;
        result
            .common_prefixes
            .retain(|p| Self::visible(&self.runs, &self.files, p, true));
        result
            .objects
            .retain(|m| Self::visible(&self.runs, &self.files, &m.location, false));
        Ok(result)
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}
