//! The same queries on other engines over the same store, committed runs
//! only: `leafe catalog` lists the committed files, `python/leafe_views.py`
//! registers the tables over them in Spark, DuckDB and polars, and every
//! file of `queries/` must return the same rows in leafe and in Spark (local
//! mode and a standalone cluster of one master and two workers on
//! 127.0.0.1) and DuckDB. The store holds, besides committed runs, a crashed
//! run (files and lock, no marker), an orphan (files only) and a stray file
//! in a committed run's directory: none of their rows may appear.
//!
//! Needs python3 with pyspark, polars and duckdb, and Java 17 (`.ci/run`
//! installs the Python packages); outside CI the test is skipped with a note
//! when they are missing.

use std::path::{Path, PathBuf};
use std::process::Command;

use leafe::store::Store;
use leafe::synth::{SynthConfig, synthesize};

use crate::common::{leafe, local_store, parquet_files, rt};

fn engines_available() -> bool {
    let python = Command::new("python3")
        .args(["-c", "import pyspark, polars, duckdb"])
        .output()
        .is_ok_and(|o| o.status.success());
    let java = Command::new("java")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    python && java
}

fn helper() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python/leafe_views.py")
}

fn leafe_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_leafe"))
}

/// Runs the helper; panics with its output if it fails.
fn views(args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg(helper())
        .args(args)
        .env("LEAFE_BIN", leafe_bin())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "leafe_views.py {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A store with two committed synthetic runs (one with a numeric-looking
/// id), a crashed run, an orphan run directory and a stray file.
fn mixed_store() -> (tempfile::TempDir, String, u64) {
    let (dir, url) = local_store();
    let store = Store::open(&url).unwrap();
    let root = PathBuf::from(&url);
    let committed_episodes = rt().block_on(async {
        let cfg = |episodes, seed| SynthConfig {
            episodes,
            seed,
            ..Default::default()
        };
        synthesize(&store, "s1", &cfg(300, 1), "t").await.unwrap();
        synthesize(&store, "20261206", &cfg(120, 2), "t")
            .await
            .unwrap();
        // Crashed before its commit: files and lock, no marker.
        synthesize(&store, "crashed", &cfg(200, 3), "t")
            .await
            .unwrap();
        // An orphan: files whose lock and marker are gone.
        synthesize(&store, "orphan", &cfg(100, 4), "t")
            .await
            .unwrap();
        420
    });
    std::fs::remove_file(root.join("_leafe/commits/crashed.json")).unwrap();
    std::fs::remove_file(root.join("_leafe/commits/orphan.json")).unwrap();
    std::fs::remove_file(root.join("_leafe/locks/orphan.json")).unwrap();
    // A file in a committed run's directory that its marker does not name.
    let stray_from = parquet_files(&root.join("episodes/run_id=crashed"))[0].clone();
    std::fs::copy(
        &stray_from,
        root.join("episodes/run_id=s1/part-99999-stray.parquet"),
    )
    .unwrap();
    (dir, url, committed_episodes)
}

#[test]
fn spark_duckdb_and_polars_see_exactly_the_committed_runs_and_return_leafes_rows() {
    if !engines_available() {
        assert!(
            std::env::var("CI").is_err(),
            "CI must check Spark parity: pip install pyspark polars duckdb (and Java 17)"
        );
        eprintln!("note: pyspark/polars/duckdb or java not found; Spark parity test skipped");
        return;
    }
    let (_dir, url, committed_episodes) = mixed_store();

    // A glob of the directories sees the uncommitted rows; the catalog does not.
    let (code, _, err) = leafe(&["catalog", "--store", &url]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("2 committed run(s)"), "{err}");
    let catalog: serde_json::Value = serde_json::from_slice(
        &std::fs::read(Path::new(&url).join("_leafe/catalog.json")).unwrap(),
    )
    .unwrap();
    let runs: Vec<&str> = catalog["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap())
        .collect();
    assert_eq!(runs, ["20261206", "s1"]);
    let episode_files = catalog["tables"]["episodes"]["files"].as_array().unwrap();
    assert!(
        episode_files
            .iter()
            .all(|f| !f["path"].as_str().unwrap().contains("stray"))
    );

    let counts: serde_json::Value = serde_json::from_str(
        views(&[
            "counts", "--store", &url, "--engine", "duckdb", "--engine", "polars",
        ])
        .trim(),
    )
    .unwrap();
    for engine in ["catalog", "duckdb", "polars"] {
        assert_eq!(
            counts[engine]["episodes"], committed_episodes,
            "{engine}: {counts}"
        );
        assert_eq!(counts[engine]["runs"], 2, "{engine}: {counts}");
        assert_eq!(
            counts[engine]["steps"], counts["catalog"]["steps"],
            "{engine}: {counts}"
        );
    }
    let (code, leafe_count, err) = leafe(&[
        "sql",
        "--store",
        &url,
        "--format",
        "csv",
        "SELECT COUNT(*) AS n FROM steps",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        leafe_count.lines().nth(1).unwrap(),
        counts["catalog"]["steps"].to_string()
    );

    // Python polars reads leafe's exports as they are.
    let out_dir = tempfile::tempdir().unwrap();
    let mut written = Vec::new();
    for (format, file) in [
        ("verl-parquet", "cf.parquet"),
        ("trl-messages", "cf.jsonl"),
        ("sharegpt", "cf-sharegpt.jsonl"),
    ] {
        let path = out_dir.path().join(file);
        let path = path.to_str().unwrap().to_string();
        let (code, out, err) = leafe(&[
            "export",
            "--store",
            &url,
            "--dataset",
            "counterfactual",
            "--format",
            format,
            "--out",
            &path,
        ]);
        assert_eq!(code, 0, "{err}");
        let n: u64 = out
            .split_whitespace()
            .nth(1)
            .and_then(|w| w.parse().ok())
            .unwrap_or_else(|| panic!("{out}"));
        written.push((path, n));
    }
    let polars = Command::new("python3")
        .args([
            "-c",
            "import sys, polars as pl\n\
             p = pl.read_parquet(sys.argv[1])\n\
             assert p['prompt'].dtype == pl.List(pl.Struct({'role': pl.String, 'content': pl.String})), p.schema\n\
             print(p.height, pl.read_ndjson(sys.argv[2]).height, pl.read_ndjson(sys.argv[3]).height)",
            &written[0].0,
            &written[1].0,
            &written[2].0,
        ])
        .output()
        .unwrap();
    assert!(
        polars.status.success(),
        "{}",
        String::from_utf8_lossy(&polars.stderr)
    );
    let heights: Vec<u64> = String::from_utf8_lossy(&polars.stdout)
        .split_whitespace()
        .map(|w| w.parse().unwrap())
        .collect();
    assert_eq!(
        heights,
        written.iter().map(|(_, n)| *n).collect::<Vec<_>>(),
        "polars reads every exported record"
    );
    assert!(heights.iter().all(|&h| h > 0), "{heights:?}");

    // Every query file: leafe vs DuckDB, Spark local, Spark standalone.
    for (engine, master) in [
        ("duckdb", "local[2]"),
        ("spark", "local[2]"),
        ("spark", "standalone:2"),
    ] {
        let json = out_dir
            .path()
            .join(format!("{engine}-{}.json", master.len()));
        let json = json.to_str().unwrap();
        let printed = views(&[
            "parity", "--store", &url, "--engine", engine, "--master", master, "--json", json,
        ]);
        let results: Vec<serde_json::Value> =
            serde_json::from_slice(&std::fs::read(json).unwrap()).unwrap();
        let query_files = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("queries"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "sql")
            })
            .count();
        assert_eq!(results.len(), query_files, "{printed}");
        for r in &results {
            assert!(r["mismatch"].is_null(), "{engine} {master}: {r}\n{printed}");
        }
        let rows = |name: &str| {
            results.iter().find(|r| r["query"] == name).unwrap()["rows"]
                .as_u64()
                .unwrap()
        };
        // The comparison is not vacuous: the tree queries return rows.
        assert!(rows("counterfactual_pairs") > 100, "{printed}");
        assert!(rows("rehearsal") > 100, "{printed}");
        assert!(rows("critical_positions") > 0, "{printed}");
        assert_eq!(rows("explored_runs"), 2, "{printed}");
    }
}

#[test]
fn each_commit_merges_its_run_into_an_existing_catalog_and_never_an_uncommitted_one() {
    let (_dir, url) = local_store();
    let store = Store::open(&url).unwrap();
    rt().block_on(async {
        let cfg = SynthConfig {
            episodes: 50,
            ..Default::default()
        };
        synthesize(&store, "a", &cfg, "t").await.unwrap();
        // No catalog until someone asks for one: commits pay nothing.
        assert!(store.catalog().await.unwrap().is_none());
        let written = store.write_catalog().await.unwrap();
        assert_eq!(written.runs.len(), 1);
        synthesize(&store, "b", &cfg, "t").await.unwrap();
        let c = store.catalog().await.unwrap().unwrap();
        assert_eq!(
            c.runs.iter().map(|r| r.run_id.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        let marker = store.commit("b").await.unwrap().unwrap();
        assert_eq!(
            c.rows("steps"),
            written.rows("steps") + marker.rows(leafe::store::Table::Steps)
        );
        // A run that never commits never reaches the catalog.
        let spec = leafe::store::RunSpec {
            run_id: "never".into(),
            kind: "t".into(),
            seed: None,
            config: serde_json::Value::Null,
            command_line: "t".into(),
            meta: serde_json::Value::Null,
        };
        let w = store.begin_run(spec).await.unwrap();
        drop(w);
        synthesize(&store, "c", &cfg, "t").await.unwrap();
        let c = store.catalog().await.unwrap().unwrap();
        assert_eq!(
            c.runs.iter().map(|r| r.run_id.as_str()).collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        // A rebuild from the markers is the same catalog.
        let rebuilt = store.write_catalog().await.unwrap();
        assert_eq!(rebuilt.runs, c.runs);
        assert_eq!(rebuilt.tables, c.tables);
    });
}

#[test]
fn query_render_binds_for_the_dialect_and_defines_inputs_as_views() {
    let q = Path::new(env!("CARGO_MANIFEST_DIR")).join("queries/critical_positions.sql");
    let q = q.to_str().unwrap();
    let (code, sql, err) = leafe(&["query", "render", q, "--param", "run=it's"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        sql.starts_with("CREATE OR REPLACE TEMPORARY VIEW critical_steps AS\n"),
        "{sql}"
    );
    assert!(sql.contains("LIKE 'it''s'"), "{sql}");
    assert!(sql.trim_end().ends_with(';'), "{sql}");
    let (code, json, err) = leafe(&[
        "query",
        "render",
        "critical_positions",
        "--param",
        "run=it's",
        "--dialect",
        "spark",
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let statements = v["statements"].as_array().unwrap();
    assert_eq!(statements.len(), 2);
    assert_eq!(statements[0]["view"], "critical_steps");
    assert!(
        statements[0]["sql"]
            .as_str()
            .unwrap()
            .contains(r"LIKE 'it\'s'")
    );
    assert!(statements[1]["view"].is_null());
    // Unknown parameters and missing files are refused in one line.
    let (code, _, err) = leafe(&["query", "render", q, "--param", "nope=1"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown parameter `nope`"), "{err}");
    let (code, _, err) = leafe(&["query", "render", "queries/nope.sql"]);
    assert_eq!(code, 2);
    assert!(err.contains("no query file"), "{err}");
    // `leafe sql --file` runs a query with inputs too.
    let (_dir, url) = local_store();
    let store = Store::open(&url).unwrap();
    rt().block_on(synthesize(
        &store,
        "r",
        &SynthConfig {
            episodes: 60,
            ..Default::default()
        },
        "t",
    ))
    .unwrap();
    let (code, out, err) = leafe(&["sql", "--store", &url, "--file", q, "--format", "csv"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("tau_from,reflections,fixed"), "{out}");
}
