//! Scheduled training: `leafe train --incremental` trains a model line only
//! on runs committed since its watermark; with nothing new it does nothing.

use std::process::Command;

use assert_cmd::cargo::CommandCargoExt;

use crate::common::local_store;

fn leafe(args: &[&str]) -> (i32, String, String) {
    let out = Command::cargo_bin("leafe")
        .unwrap()
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

fn ok(args: &[&str]) -> String {
    let (code, out, err) = leafe(args);
    assert_eq!(code, 0, "{args:?}: {err}");
    out
}

#[test]
fn incremental_training_moves_a_watermark_and_skips_when_nothing_is_new() {
    let (dir, url) = local_store();
    let lv = dir.path().join("lv.txt");
    let lv = lv.to_str().unwrap();
    ok(&[
        "levels", "generate", "--size", "6x6", "--boxes", "2", "--count", "60", "--seed", "3",
        "--out", lv,
    ]);
    ok(&[
        "pretrain",
        "--store",
        &url,
        "--levels",
        lv,
        "--out-model",
        "base",
        "--epochs",
        "3",
    ]);
    let explore = |run: &str, seed: &str| {
        ok(&[
            "explore", "--store", &url, "--model", "base", "--levels", lv, "--run-id", run,
            "--seed", seed, "--budget", "300",
        ])
    };
    let train = || {
        ok(&[
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
            "line",
            "--incremental",
            "--epochs",
            "1",
        ])
    };
    explore("e1", "1");
    let said = train();
    assert!(
        said.contains("line.v0001") && said.contains("1 new run"),
        "{said}"
    );
    // Nothing new: nothing trained, and it says so.
    let said = train();
    assert!(
        said.contains("nothing new") && said.contains("line.v0001"),
        "{said}"
    );
    assert!(!dir.path().join("store/models/line.v0002").exists());
    // A new run: the next version, trained on that run only, from the last one.
    explore("e2", "2");
    let said = train();
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
