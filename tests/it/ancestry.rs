//! The `ancestry` table: written with every explored tree, filled on read for
//! runs committed before it existed, and the plain joins over it return
//! exactly the rows the recursive queries returned (the recursive ones are
//! kept in `tests/fixtures/recursive-queries/`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use leafe::query::{QuerySession, QueryText};
use leafe::store::Store;

use crate::common::{leafe, local_store, rt};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every row of a query as CSV text (header included), in its order.
fn rows(store: &Store, file: &Path, params: &[(&str, &str)]) -> String {
    let values: BTreeMap<String, String> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let q = QueryText::from_file(file).unwrap().bind(&values).unwrap();
    rt().block_on(async {
        let session = QuerySession::open(store).await.unwrap();
        let batches = session.collect(&q).await.unwrap();
        let mut out = Vec::new();
        leafe::query::write_batches(&mut out, &batches, leafe::query::OutputFormat::Csv).unwrap();
        String::from_utf8(out).unwrap()
    })
}

/// The recursive and the joined version of each tree-walking query return
/// the same rows, in the same order, under each parameter set.
fn assert_same_rows(store: &Store, run: &str) -> usize {
    let cases: [(&str, Vec<(&str, &str)>); 7] = [
        ("rehearsal", vec![]),
        ("rehearsal", vec![("run", run)]),
        ("export_trajectories", vec![]),
        (
            "export_trajectories",
            vec![("min_depth", "0"), ("run", run)],
        ),
        (
            "export_trajectories",
            vec![
                ("min_depth", "2"),
                ("from_example", "5"),
                ("to_example", "90"),
            ],
        ),
        ("export_preferences", vec![]),
        (
            "export_preferences",
            vec![("require_fix", "false"), ("to_example", "40")],
        ),
    ];
    let mut total = 0;
    for (name, params) in cases {
        let old = rows(
            store,
            &root().join(format!("tests/fixtures/recursive-queries/{name}.sql")),
            &params,
        );
        let new = rows(store, &root().join(format!("queries/{name}.sql")), &params);
        let n = new.lines().count() - 1;
        assert!(
            old == new,
            "{name} {params:?}: {} recursive rows, {n} joined rows, or in another order",
            old.lines().count() - 1
        );
        total += n;
    }
    total
}

fn synth(url: &str, run: &str, episodes: &str, seed: &str) {
    let (code, _, err) = leafe(&[
        "synth",
        "--store",
        url,
        "--episodes",
        episodes,
        "--seed",
        seed,
        "--run-id",
        run,
    ]);
    assert_eq!(code, 0, "{err}");
}

fn count(store: &Store, sql: &str) -> i64 {
    rt().block_on(async {
        let session = QuerySession::open(store).await.unwrap();
        let b = session
            .collect(&QueryText::inline(sql).bind(&BTreeMap::new()).unwrap())
            .await
            .unwrap();
        arrow::compute::cast(b[0].column(0), &arrow::datatypes::DataType::Int64)
            .unwrap()
            .as_any()
            .downcast_ref::<arrow::array::Int64Array>()
            .unwrap()
            .value(0)
    })
}

/// Makes a committed run look written by a leafe without the `ancestry`
/// table: its files gone, its marker without the table.
fn strip_ancestry(dir: &Path, run: &str) {
    std::fs::remove_dir_all(dir.join(format!("ancestry/run_id={run}"))).unwrap();
    let marker = dir.join(format!("_leafe/commits/{run}.json"));
    let mut m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&marker).unwrap()).unwrap();
    m["tables"]
        .as_object_mut()
        .unwrap()
        .remove("ancestry")
        .unwrap();
    m["schema_versions"]
        .as_object_mut()
        .unwrap()
        .remove("ancestry")
        .unwrap();
    std::fs::write(&marker, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
}

#[test]
fn synth_writes_each_tree_episodes_path_and_the_joins_return_the_recursive_rows() {
    let (dir, url) = local_store();
    synth(&url, "a", "400", "3");
    synth(&url, "b", "250", "8");
    let store = Store::open(&url).unwrap();
    // One row per tree episode and ancestor: depth + 1 per episode, and the
    // episode's own row keeps all its steps.
    let expected = count(
        &store,
        "SELECT SUM(depth + 1) FROM episodes WHERE origin IN ('root', 'branch')",
    );
    assert!(expected > 650, "{expected}");
    assert_eq!(count(&store, "SELECT COUNT(*) FROM ancestry"), expected);
    assert_eq!(
        count(
            &store,
            "SELECT COUNT(*) FROM ancestry a JOIN episodes e ON e.run_id = a.run_id \
             AND e.episode_id = a.episode_id \
             WHERE a.ancestor_episode_id = a.episode_id AND a.end_step = e.length \
             AND a.ancestor_depth = e.depth"
        ),
        count(&store, "SELECT COUNT(*) FROM episodes")
    );
    let written = assert_same_rows(&store, "b");
    assert!(written > 1000, "{written}");

    // Run `b` as an older leafe wrote it: its rows are filled on read, and
    // the store answers exactly as before.
    strip_ancestry(&dir.path().join("store"), "b");
    assert_eq!(count(&store, "SELECT COUNT(*) FROM ancestry"), expected);
    assert_eq!(assert_same_rows(&store, "b"), written);
}

#[test]
fn a_store_of_schema_version_1_answers_the_joined_queries_as_the_recursive_ones() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&root().join("tests/fixtures/store-v1"), dir.path());
    let store = Store::open(dir.path().to_str().unwrap()).unwrap();
    assert!(count(&store, "SELECT COUNT(*) FROM ancestry") >= 30);
    assert!(assert_same_rows(&store, "v1") > 0);
}

#[test]
fn exports_are_byte_identical_with_the_recursive_queries() {
    let (dir, url) = local_store();
    synth(&url, "x", "300", "4");
    let old_queries = root().join("tests/fixtures/recursive-queries");
    for (dataset, format) in [
        ("counterfactual", "trl-messages"),
        ("rehearsal", "trl-prompt-completion"),
        ("critical", "sharegpt"),
        ("preference", "dpo"),
    ] {
        let export = |queries: &Path, file: &str| {
            let out = dir.path().join(file);
            let (code, _, err) = leafe(&[
                "export",
                "--store",
                &url,
                "--dataset",
                dataset,
                "--format",
                format,
                "--queries",
                queries.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ]);
            assert_eq!(code, 0, "{dataset}: {err}");
            std::fs::read(out).unwrap()
        };
        let old = export(&old_queries, &format!("{dataset}-old.jsonl"));
        let new = export(&root().join("queries"), &format!("{dataset}-new.jsonl"));
        assert!(old.len() > 1000, "{dataset}: {} bytes", old.len());
        assert!(old == new, "{dataset}: the export changed");
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}
