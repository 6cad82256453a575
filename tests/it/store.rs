//! The store: schema conformance, the commit protocol, gc — on every backend.

use std::collections::BTreeMap;
use std::time::Duration;

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use leafe::query::{QuerySession, QueryText};
use leafe::store::{
    EpisodeBatchBuilder, EpisodeRow, ReflectionBatchBuilder, ReflectionRow, RunSpec,
    StepBatchBuilder, StepRow, Store, StoreError, Table,
};
use leafe::synth::{SynthConfig, synthesize};

use crate::common::{backends, local_store, parquet_files, read_parquet, rt};

fn spec(run_id: &str) -> RunSpec {
    RunSpec {
        run_id: run_id.into(),
        kind: "test".into(),
        seed: Some(7),
        config: serde_json::json!({"k": 1}),
        command_line: "test".into(),
        meta: serde_json::Value::Null,
    }
}

async fn count(store: &Store, sql: &str) -> i64 {
    let session = QuerySession::open(store).await.unwrap();
    let batches = session
        .collect(&QueryText::inline(sql).bind(&BTreeMap::new()).unwrap())
        .await
        .unwrap();
    batches[0].column(0).as_primitive::<Int64Type>().value(0)
}

fn step_batch(episode_id: i64, n: i32) -> arrow::record_batch::RecordBatch {
    let mut b = StepBatchBuilder::default();
    for t in 0..n {
        b.push(&StepRow {
            episode_id,
            t,
            observation: "#@$.#",
            state: Some(&[1, 2, 3]),
            action: t % 4,
            action_text: "up",
            reward: -0.1,
            done: t + 1 == n,
            feedback: "moved up",
            mistake: None,
            log_prob: -1.0,
            experience_in_context: false,
            llm_call_id: None,
            flags: None,
            info: None,
            legal_actions: None,
        });
    }
    b.finish()
}

#[test]
fn every_builder_produces_exactly_its_schema_and_files_carry_it() {
    let mut e = EpisodeBatchBuilder::default();
    e.push(&EpisodeRow {
        episode_id: 1,
        tree_id: 1,
        parent_episode_id: None,
        reflection_id: None,
        rollback_step: None,
        depth: 0,
        sample_index: 0,
        origin: "root",
        task_id: "t",
        task_source: None,
        split: None,
        policy: "p",
        experience_in_context: false,
        success: true,
        status: "solved",
        episode_return: 1.0,
        length: 3,
        interaction_cost: 3,
        created_at_us: 0,
        error: None,
    });
    let mut r = ReflectionBatchBuilder::default();
    r.push(&ReflectionRow {
        reflection_id: 0,
        episode_id: 1,
        tree_id: 1,
        trigger_step: 2,
        rollback_step: 1,
        critical_action: None,
        critical_action_text: None,
        category: "loop",
        diagnosis: "d",
        fix: "f",
        suggested_actions: None,
        reflector: "r",
        created_at_us: 0,
        llm_call_id: None,
    });
    for (table, batch) in [
        (Table::Episodes, e.finish()),
        (Table::Steps, step_batch(1, 3)),
        (Table::Reflections, r.finish()),
    ] {
        assert_eq!(
            batch.schema().fields(),
            table.schema().arrow_schema().fields(),
            "{table}"
        );
        table.schema().check(&batch.schema()).unwrap();
    }

    // The files a synth run writes have exactly the schemas, with table name and
    // version in the footer metadata.
    let (_dir, url) = local_store();
    let store = Store::open(&url).unwrap();
    rt().block_on(synthesize(
        &store,
        "s1",
        &SynthConfig {
            episodes: 50,
            ..Default::default()
        },
        "t",
    ))
    .unwrap();
    let files = parquet_files(std::path::Path::new(&url));
    // steps, episodes, reflections, runs, and each tree's ancestry.
    assert_eq!(files.len(), 5, "{files:?}");
    for f in files {
        let table: Table = f
            .parent()
            .unwrap()
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let (schema, _) = read_parquet(&f);
        assert_eq!(
            schema.fields(),
            table.schema().arrow_schema().fields(),
            "{f:?}"
        );
        assert_eq!(
            schema.metadata().get("leafe.table").map(String::as_str),
            Some(table.name())
        );
        assert_eq!(
            schema.metadata().get("leafe.schema_version"),
            Some(&table.schema().version.to_string())
        );
    }
}

#[test]
fn a_batch_with_another_schema_is_refused_naming_table_and_column() {
    let (_dir, url) = local_store();
    let store = Store::open(&url).unwrap();
    rt().block_on(async {
        let mut run = store.begin_run(spec("bad")).await.unwrap();
        let wrong = step_batch(1, 2);
        let err = run.write(Table::Episodes, &wrong).await.unwrap_err();
        assert!(matches!(err, StoreError::SchemaMismatch { .. }), "{err}");
        assert!(
            err.to_string().contains("`episodes`") && err.to_string().contains("`tree_id`"),
            "{err}"
        );
    });
}

#[test]
fn write_commit_query_round_trip_on_every_backend() {
    for b in backends("roundtrip") {
        let store = b.store();
        rt().block_on(async {
            let cfg = SynthConfig {
                episodes: 300,
                seed: 3,
                ..Default::default()
            };
            let s = synthesize(&store, "r1", &cfg, "test").await.unwrap();
            assert_eq!(s.episodes, 300, "{}", b.name);
            assert_eq!(
                count(&store, "SELECT COUNT(*) FROM episodes").await,
                300,
                "{}",
                b.name
            );
            assert_eq!(
                count(&store, "SELECT COUNT(*) FROM steps").await as u64,
                s.steps,
                "{}",
                b.name
            );
            assert_eq!(
                count(&store, "SELECT COUNT(*) FROM reflections").await as u64,
                s.reflections
            );
            assert_eq!(
                count(
                    &store,
                    "SELECT COUNT(*) FROM runs WHERE run_id = 'r1' AND kind = 'synth'"
                )
                .await,
                1
            );
            // The resolved config is in the store: enough to regenerate the run.
            let session = QuerySession::open(&store).await.unwrap();
            let q = QueryText::inline("SELECT config_json, seed FROM runs")
                .bind(&BTreeMap::new())
                .unwrap();
            let batches = session.collect(&q).await.unwrap();
            let config: SynthConfig =
                serde_json::from_str(batches[0].column(0).as_string::<i32>().value(0)).unwrap();
            assert_eq!((config.episodes, config.seed), (300, 3));

            // A second run; run_id prunes to one of them.
            synthesize(
                &store,
                "r2",
                &SynthConfig {
                    episodes: 100,
                    seed: 4,
                    ..Default::default()
                },
                "t",
            )
            .await
            .unwrap();
            assert_eq!(
                count(&store, "SELECT COUNT(*) FROM episodes WHERE run_id = 'r2'").await,
                100
            );
            assert_eq!(count(&store, "SELECT COUNT(*) FROM episodes").await, 400);
            let runs = store.runs().await.unwrap();
            assert_eq!(runs.iter().filter(|r| r.committed).count(), 2);
            assert_eq!(
                runs.iter().find(|r| r.run_id == "r1").unwrap().rows["steps"],
                s.steps
            );
        });
    }
}

#[test]
fn the_same_seed_writes_the_same_rows() {
    let (_dir, url) = local_store();
    let store = Store::open(&url).unwrap();
    rt().block_on(async {
        let cfg = SynthConfig { episodes: 200, seed: 11, ..Default::default() };
        synthesize(&store, "a", &cfg, "t").await.unwrap();
        synthesize(&store, "b", &cfg, "t").await.unwrap();
        let diff = "SELECT COUNT(*) FROM (SELECT episode_id, t, observation, action, reward, feedback FROM steps WHERE run_id = 'a' \
                    EXCEPT SELECT episode_id, t, observation, action, reward, feedback FROM steps WHERE run_id = 'b')";
        assert_eq!(count(&store, diff).await, 0);
        assert!(count(&store, "SELECT COUNT(*) FROM steps WHERE run_id = 'a'").await > 1000);
    });
}

#[test]
fn uncommitted_runs_are_invisible_and_gc_removes_only_them() {
    for b in backends("gc") {
        let store = b.store();
        rt().block_on(async {
            synthesize(
                &store,
                "kept",
                &SynthConfig {
                    episodes: 40,
                    ..Default::default()
                },
                "t",
            )
            .await
            .unwrap();
            // A writer that writes a lot and dies before commit.
            let mut run = store.begin_run(spec("crashed")).await.unwrap();
            for i in 0..3 {
                run.write(Table::Steps, &step_batch(i, 500)).await.unwrap();
            }
            drop(run);
            // A writer whose files are complete but whose marker never came:
            // simulated with a tiny file-per-batch limit.
            let opts = leafe::store::WriterOptions {
                max_rows_per_file: 10,
                ..Default::default()
            };
            let mut run = store.begin_run_with(spec("no-marker"), opts).await.unwrap();
            run.write(Table::Steps, &step_batch(9, 50)).await.unwrap();
            run.write(Table::Steps, &step_batch(10, 50)).await.unwrap();
            drop(run);

            let steps_kept =
                count(&store, "SELECT COUNT(*) FROM steps WHERE run_id = 'kept'").await;
            assert_eq!(
                count(&store, "SELECT COUNT(*) FROM steps").await,
                steps_kept,
                "{}",
                b.name
            );
            assert_eq!(
                count(
                    &store,
                    "SELECT COUNT(*) FROM steps WHERE run_id = 'no-marker'"
                )
                .await,
                0
            );
            let runs = store.runs().await.unwrap();
            let state: BTreeMap<_, _> = runs
                .iter()
                .map(|r| (r.run_id.as_str(), r.committed))
                .collect();
            assert_eq!(
                state,
                BTreeMap::from([("crashed", false), ("kept", true), ("no-marker", false)])
            );

            // Young uncommitted runs survive a gc with a grace period.
            let r = store.gc(Duration::from_secs(3600), false).await.unwrap();
            assert!(r.runs.is_empty(), "{:?}", r.runs);
            assert_eq!(r.kept_young.len(), 2);

            let dry = store.gc(Duration::ZERO, true).await.unwrap();
            assert_eq!(dry.runs.len(), 2);
            let r = store.gc(Duration::ZERO, false).await.unwrap();
            let mut collected = r.runs.clone();
            collected.sort();
            assert_eq!(collected, ["crashed", "no-marker"]);
            assert!(r.files >= 2 + 2, "files {}", r.files);
            let objects: Vec<_> =
                futures::TryStreamExt::try_collect::<Vec<_>>(store.objects().list(None))
                    .await
                    .unwrap();
            assert!(
                objects
                    .iter()
                    .all(|o| !o.location.as_ref().contains("crashed")
                        && !o.location.as_ref().contains("no-marker")),
                "{:?}",
                objects
                    .iter()
                    .map(|o| o.location.to_string())
                    .collect::<Vec<_>>()
            );
            assert_eq!(
                count(&store, "SELECT COUNT(*) FROM steps").await,
                steps_kept
            );
            // The id is free again after gc.
            store
                .begin_run(spec("crashed"))
                .await
                .unwrap()
                .commit()
                .await
                .unwrap();
        });
    }
}

#[test]
fn a_run_id_has_one_writer_and_is_never_reused() {
    for b in backends("dup") {
        let store = b.store();
        rt().block_on(async {
            let first = store.begin_run(spec("dup")).await.unwrap();
            let err = store
                .begin_run(spec("dup"))
                .await
                .err()
                .expect("second writer refused");
            assert!(
                matches!(err, StoreError::RunExists { .. }),
                "{}: {err}",
                b.name
            );
            assert!(err.to_string().contains("another writer"), "{err}");
            first.commit().await.unwrap();
            let err = store
                .begin_run(spec("dup"))
                .await
                .err()
                .expect("committed id refused");
            assert!(err.to_string().contains("already committed"), "{err}");
            // Path characters never reach the store.
            for bad in ["../x", "a/b", "a b"] {
                let e = store
                    .begin_run(spec(bad))
                    .await
                    .err()
                    .expect("bad id refused");
                assert!(matches!(e, StoreError::BadRunId { .. }), "{bad}: {e}");
            }
        });
    }
}

#[test]
fn an_aborted_run_leaves_nothing_and_frees_its_id() {
    let (_dir, url) = local_store();
    let store = Store::open(&url).unwrap();
    rt().block_on(async {
        let opts = leafe::store::WriterOptions {
            max_rows_per_file: 100,
            ..Default::default()
        };
        let mut run = store.begin_run_with(spec("ab"), opts).await.unwrap();
        run.write(Table::Steps, &step_batch(1, 250)).await.unwrap();
        run.write(Table::Steps, &step_batch(2, 250)).await.unwrap();
        assert_eq!(run.rows_written(Table::Steps), 500);
        run.abort().await.unwrap();
        assert!(parquet_files(std::path::Path::new(&url)).is_empty());
        assert!(store.runs().await.unwrap().is_empty());
        store.begin_run(spec("ab")).await.unwrap();
    });
}

#[test]
fn files_roll_over_and_row_groups_are_bounded() {
    let (_dir, url) = local_store();
    let store = Store::open(&url).unwrap();
    rt().block_on(async {
        let opts = leafe::store::WriterOptions {
            max_rows_per_file: 1000,
            max_rows_per_group: 256,
            ..Default::default()
        };
        let mut run = store.begin_run_with(spec("roll"), opts).await.unwrap();
        for i in 0..10 {
            run.write(Table::Steps, &step_batch(i, 300)).await.unwrap();
        }
        let marker = run.commit().await.unwrap();
        assert_eq!(marker.rows(Table::Steps), 3000);
        let files = &marker.tables["steps"];
        assert_eq!(files.len(), 3, "{files:?}"); // rolls at >= 1000 rows: 1200 + 1200 + 600
        for f in files {
            let path = std::path::Path::new(&url).join(&f.path);
            let meta = parquet::file::reader::FileReader::metadata(
                &parquet::file::serialized_reader::SerializedFileReader::new(
                    std::fs::File::open(&path).unwrap(),
                )
                .unwrap(),
            )
            .clone();
            assert_eq!(meta.file_metadata().num_rows() as u64, f.rows);
            assert_eq!(std::fs::metadata(&path).unwrap().len(), f.bytes);
            assert!(meta.row_groups().iter().all(|rg| rg.num_rows() <= 256));
            let col = meta.row_group(0).column(0);
            assert!(
                matches!(col.compression(), parquet::basic::Compression::ZSTD(_)),
                "{:?}",
                col.compression()
            );
            assert!(
                meta.column_index().is_some() || col.column_index_offset().is_some(),
                "page statistics written"
            );
        }
        assert_eq!(count(&store, "SELECT COUNT(*) FROM steps").await, 3000);
        let distinct = count(&store, "SELECT COUNT(DISTINCT episode_id) FROM steps").await;
        assert_eq!(distinct, 10);
        let nulls = count(&store, "SELECT COUNT(*) FROM steps WHERE state IS NULL").await;
        assert_eq!(nulls, 0);
    });
}

/// A store written by leafe before schema version 2 (steps and reflections
/// without `llm_call_id`, no `llm_calls`) reads as before: the new column
/// reads as null, the new table is empty.
#[test]
fn a_store_of_schema_version_1_stays_readable() {
    use crate::common::leafe;
    let dir = tempfile::tempdir().unwrap();
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store-v1");
    copy_dir(&src, dir.path());
    let store = dir.path().to_str().unwrap();
    let (code, csv, err) = leafe(&[
        "sql",
        "--store",
        store,
        "--format",
        "csv",
        "SELECT (SELECT COUNT(*) FROM episodes) AS e, (SELECT COUNT(*) FROM steps) AS s, \
         (SELECT COUNT(*) FROM steps WHERE llm_call_id IS NULL) AS s_null, \
         (SELECT COUNT(*) FROM reflections WHERE llm_call_id IS NULL) AS r_null, \
         (SELECT COUNT(*) FROM llm_calls) AS calls",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(csv.lines().nth(1).unwrap(), "30,530,530,11,0", "{csv}");
    // The queries of today run on it.
    let file =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("queries/counterfactual_pairs.sql");
    let (code, _, err) = leafe(&["sql", "--store", store, "--file", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
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
