//! The files under a store open unchanged in other engines (pyarrow, DuckDB).
//! Needs python3 with pyarrow and duckdb (`.ci/run` installs them); outside CI
//! the test is skipped with a note when they are missing.

use std::process::Command;

use leafe::store::Store;
use leafe::synth::{SynthConfig, synthesize};

use crate::common::{local_store, rt};

const SCRIPT: &str = r#"
import sys, json
import pyarrow.dataset as ds
import duckdb
root = sys.argv[1]
con = duckdb.connect()
out = {}
for table in ["runs", "episodes", "steps", "reflections"]:
    d = ds.dataset(f"{root}/{table}", format="parquet", partitioning="hive")
    t = d.to_table()
    out[f"pyarrow_{table}"] = t.num_rows
    out[f"pyarrow_{table}_has_run_id"] = "run_id" in t.column_names
    out[f"duckdb_{table}"] = con.execute(
        f"SELECT COUNT(*) FROM read_parquet('{root}/{table}/*/*.parquet', hive_partitioning = true)"
    ).fetchone()[0]
out["duckdb_pairs"] = con.execute(f"""
    SELECT COUNT(*) FROM read_parquet('{root}/episodes/*/*.parquet', hive_partitioning = true) e
    JOIN read_parquet('{root}/steps/*/*.parquet', hive_partitioning = true) s
      ON s.run_id = e.run_id AND s.episode_id = e.episode_id
    WHERE e.origin = 'branch' AND e.success""").fetchone()[0]
print(json.dumps(out))
"#;

fn python_has_modules() -> bool {
    Command::new("python3")
        .args(["-c", "import pyarrow, duckdb"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn pyarrow_and_duckdb_read_the_store_as_is() {
    if !python_has_modules() {
        assert!(
            std::env::var("CI").is_err(),
            "CI must check external readers: pip install pyarrow duckdb"
        );
        eprintln!("note: python3 with pyarrow and duckdb not found; external-reader test skipped");
        return;
    }
    let (_dir, url) = local_store();
    let store = Store::open(&url).unwrap();
    let (summary, pairs) = rt().block_on(async {
        let s = synthesize(
            &store,
            "x1",
            &SynthConfig {
                episodes: 200,
                ..Default::default()
            },
            "t",
        )
        .await
        .unwrap();
        synthesize(
            &store,
            "x2",
            &SynthConfig {
                episodes: 100,
                seed: 9,
                ..Default::default()
            },
            "t",
        )
        .await
        .unwrap();
        let session = leafe::query::QuerySession::open(&store).await.unwrap();
        let q = leafe::query::QueryText::from_file(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/queries/counterfactual_pairs.sql"
        )))
        .unwrap()
        .bind(&Default::default())
        .unwrap();
        let pairs: usize = session
            .collect(&q)
            .await
            .unwrap()
            .iter()
            .map(|b| b.num_rows())
            .sum();
        (s, pairs)
    });
    let out = Command::new("python3")
        .args(["-c", SCRIPT, &url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["pyarrow_episodes"], 300);
    assert_eq!(v["duckdb_episodes"], 300);
    assert_eq!(v["pyarrow_runs"], 2);
    assert_eq!(v["duckdb_reflections"], v["pyarrow_reflections"]);
    assert!(v["pyarrow_steps"].as_u64().unwrap() > summary.steps);
    assert_eq!(v["pyarrow_steps"], v["duckdb_steps"]);
    assert_eq!(v["pyarrow_steps_has_run_id"], true);
    assert_eq!(v["duckdb_pairs"].as_u64().unwrap() as usize, pairs);
}
