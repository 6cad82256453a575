//! Scheduled training: `leafe train --incremental` trains a model line only
//! on runs committed since its watermark; with nothing new it does nothing.

use crate::common::{leafe, local_store};

fn ok(args: &[&str]) -> String {
    let (code, out, err) = leafe(args);
    assert_eq!(code, 0, "{args:?}: {err}");
    out
}

/// Writes `count` generated 6×6 two-box levels to `lv` and pretrains model
/// `base` on them in the store at `url`.
fn levels_and_base(url: &str, lv: &str, count: &str, seed: &str) {
    ok(&[
        "levels", "generate", "--size", "6x6", "--boxes", "2", "--count", count, "--seed", seed,
        "--out", lv,
    ]);
    ok(&[
        "pretrain",
        "--store",
        url,
        "--levels",
        lv,
        "--out-model",
        "base",
        "--epochs",
        "3",
    ]);
}

/// Explores `lv` with `base` as run `run`.
fn explore(url: &str, lv: &str, run: &str, seed: &str) -> String {
    ok(&[
        "explore", "--store", url, "--model", "base", "--levels", lv, "--run-id", run, "--seed",
        seed, "--budget", "300",
    ])
}

/// One increment of model line `line` on runs `e%`.
fn train_line(url: &str) -> String {
    ok(&[
        "train",
        "--store",
        url,
        "--method",
        "leafe",
        "--init",
        "base",
        "--runs",
        "e%",
        "--out-model",
        "line",
        "--incremental",
        "--epochs",
        "1",
    ])
}

#[test]
fn incremental_training_moves_a_watermark_and_skips_when_nothing_is_new() {
    let (dir, url) = local_store();
    let lv = dir.path().join("lv.txt");
    let lv = lv.to_str().unwrap();
    levels_and_base(&url, lv, "60", "3");
    explore(&url, lv, "e1", "1");
    let said = train_line(&url);
    assert!(
        said.contains("line.v0001") && said.contains("1 new run"),
        "{said}"
    );
    // Nothing new: nothing trained, and it says so.
    let said = train_line(&url);
    assert!(
        said.contains("nothing new") && said.contains("line.v0001"),
        "{said}"
    );
    assert!(!dir.path().join("store/models/line.v0002").exists());
    // A new run: the next version, trained on that run only, from the last one.
    explore(&url, lv, "e2", "2");
    let said = train_line(&url);
    assert!(
        said.contains("line.v0002") && said.contains("from line.v0001"),
        "{said}"
    );
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("store/models/line.v0002/model.json")).unwrap(),
    )
    .unwrap();
    let runs = &manifest["provenance"]["train"]["runs"];
    assert!(
        runs.as_array()
            .unwrap()
            .iter()
            .all(|r| r.as_str().unwrap().starts_with("e2")),
        "{runs}"
    );
    // The line's name loads its latest version.
    let out = ok(&[
        "eval",
        "--store",
        &url,
        "--model",
        "line",
        "--levels",
        lv,
        "--samples",
        "2",
        "--no-write",
    ]);
    assert!(out.contains("line"), "{out}");
    // A single model's name is not a line.
    let (code, _, err) = leafe(&[
        "train",
        "--store",
        &url,
        "--method",
        "leafe",
        "--init",
        "base",
        "--runs",
        "e%",
        "--out-model",
        "base",
        "--incremental",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("not a model line"), "{err}");
}

/// The whole pipeline against the S3-compatible server: every table, model,
/// export and report under one s3:// URL.
#[test]
fn the_pipeline_runs_end_to_end_on_s3() {
    let Some(b) = crate::common::backends("e2e")
        .into_iter()
        .find(|b| b.name == "s3")
    else {
        eprintln!("skipped: no S3 server configured (LEAFE_TEST_S3_BUCKET)");
        return;
    };
    let url = b.url.clone();
    let dir = tempfile::tempdir().unwrap();
    let lv = dir.path().join("lv.txt");
    let lv = lv.to_str().unwrap();
    levels_and_base(&url, lv, "40", "8");
    explore(&url, lv, "e1", "0");
    train_line(&url);
    let said = train_line(&url);
    assert!(said.contains("nothing new"), "{said}");
    ok(&[
        "eval",
        "--store",
        &url,
        "--model",
        "line",
        "--levels",
        lv,
        "--samples",
        "4",
        "--run-id",
        "ev",
    ]);
    let cf = format!("{url}/exports/cf.jsonl");
    let said = ok(&[
        "export",
        "--store",
        &url,
        "--dataset",
        "counterfactual",
        "--format",
        "trl-messages",
        "--out",
        &cf,
    ]);
    assert!(said.contains("wrote"), "{said}");
    ok(&[
        "export",
        "--store",
        &url,
        "--dataset",
        "preference",
        "--format",
        "verl-parquet",
        "--out",
        &format!("{url}/exports/pref.parquet"),
    ]);
    ok(&[
        "report",
        "--store",
        &url,
        "--run",
        "e%",
        "--out",
        &format!("{url}/analysis"),
    ]);
    let counts = ok(&[
        "sql",
        "--store",
        &url,
        "--format",
        "csv",
        "SELECT (SELECT COUNT(*) FROM episodes WHERE run_id = 'ev') AS eval, \
         (SELECT COUNT(*) FROM episodes WHERE run_id LIKE 'e1%') AS explored, \
         (SELECT COUNT(*) FROM reflections) AS reflections",
    ]);
    let row: Vec<i64> = counts
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(row[0], 40 * 4);
    assert!(row[1] >= 40 && row[2] > 0, "{counts}");
    let store = leafe::store::Store::open(&url).unwrap();
    crate::common::rt().block_on(async {
        for f in [
            "exports/cf.jsonl",
            "exports/pref.parquet",
            "analysis/report.md",
            "analysis/categories.svg",
            "models/line.v0001/model.json",
            "_leafe/watermarks/line.json",
        ] {
            assert!(store.exists(f).await.unwrap(), "{f} missing on S3");
        }
    });
}
