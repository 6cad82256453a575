//! Objects outside the tables: model checkpoints, the watermarks of
//! incrementally trained model lines, reports, and single files written for
//! other tools (exports).
//!
//! None of them is part of a run or of the commit protocol, and each has its
//! own rule, documented on its methods: a model appears whole once its
//! `model.json` exists and a name is never overwritten (put-if-absent);
//! a watermark is replaced after the model it points at is saved; reports
//! are derived output that a rerun replaces. Names become path segments, so
//! they are validated like run ids.

use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};

use super::{Result, Store, StoreError, validate_run_id};

const MODELS: &str = "models";
const REPORTS: &str = "reports";
const WATERMARKS: &str = "_leafe/watermarks";

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
