//! Shared test helpers: store backends and direct Parquet reads.

use std::path::Path;

use arrow::record_batch::RecordBatch;
use leafe::store::Store;

/// A store under test and what keeps it alive.
pub struct Backend {
    pub name: &'static str,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

impl Backend {
    pub fn store(&self) -> Store {
        Store::open(&self.url).unwrap()
    }
}

fn unique(tag: &str) -> String {
    format!("{tag}-{}-{:08x}", std::process::id(), rand::random::<u32>())
}

/// A fresh local store and, when configured, a fresh prefix on the S3 server.
pub fn backends(tag: &str) -> Vec<Backend> {
    let dir = tempfile::tempdir().unwrap();
    let mut out = vec![Backend {
        name: "local",
        url: dir.path().join("store").display().to_string(),
        _dir: Some(dir),
    }];
    match std::env::var("LEAFE_TEST_S3_BUCKET") {
        Ok(bucket) if !bucket.is_empty() => {
            out.push(Backend {
                name: "s3",
                url: format!("s3://{bucket}/{}", unique(tag)),
                _dir: None,
            });
        }
        _ => {
            assert!(
                std::env::var("CI").is_err(),
                "CI must test the S3 path: set LEAFE_TEST_S3_BUCKET and AWS_* (see .ci/run)"
            );
            eprintln!("note: LEAFE_TEST_S3_BUCKET unset, S3 backend skipped (.ci/run sets it)");
        }
    }
    out
}

/// A fresh local store directory.
pub fn local_store() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().join("store").display().to_string();
    (dir, url)
}

/// Reads every row of a local Parquet file with the parquet crate directly.
pub fn read_parquet(path: &Path) -> (arrow::datatypes::SchemaRef, Vec<RecordBatch>) {
    let file = std::fs::File::open(path).unwrap();
    let builder =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    let schema = builder.schema().clone();
    let batches = builder
        .build()
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    (schema, batches)
}

/// Every Parquet file under a directory, recursively, sorted.
pub fn parquet_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Runs the `leafe` binary: (exit code, stdout, stderr).
pub fn leafe(args: &[&str]) -> (i32, String, String) {
    leafe_with(args, &[])
}

/// [`leafe`] with environment variables set for the command.
pub fn leafe_with(args: &[&str], vars: &[(&str, &str)]) -> (i32, String, String) {
    use assert_cmd::cargo::CommandCargoExt;
    let out = std::process::Command::cargo_bin("leafe")
        .unwrap()
        .envs(vars.iter().copied())
        .env_remove("LEAFE_STORE")
        .env("RUST_LOG", "warn")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The Python that has `textworld` (`LEAFE_TEXTWORLD_PYTHON`, default
/// `python3`), or `None` (skip, saying so) outside CI; under CI=true its
/// absence fails the test that needs it (`what`).
pub fn textworld_python(what: &str) -> Option<String> {
    let python = std::env::var("LEAFE_TEXTWORLD_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = std::process::Command::new(&python)
        .args(["-c", "import textworld"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(python);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI must test {what}: `{python}` cannot import textworld (see .ci/run)"
    );
    eprintln!("note: `{python}` cannot import textworld; {what} skipped (.ci/run installs it)");
    None
}
