//! Queries: every file in queries/ plans on an empty store; results checked
//! against naive Rust reimplementations on synthetic data.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

use arrow::array::AsArray;
use arrow::datatypes::{Int32Type, Int64Type};
use arrow::record_batch::RecordBatch;
use leafe::query::{QuerySession, QueryText, register_inputs};
use leafe::store::Store;
use leafe::synth::{SynthConfig, synthesize};

use crate::common::{local_store, parquet_files, read_parquet, rt};

fn query_files() -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/queries"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    files.sort();
    files
}

async fn run_file(store: &Store, name: &str, params: &[(&str, &str)]) -> Vec<RecordBatch> {
    let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/queries")).join(name);
    let q = QueryText::from_file(&path).unwrap();
    let params: BTreeMap<String, String> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    QuerySession::open(store)
        .await
        .unwrap()
        .collect(&q.bind(&params).unwrap())
        .await
        .unwrap()
}

#[test]
fn every_query_file_has_a_header_and_plans_and_runs_on_an_empty_store() {
    let files = query_files();
    assert!(files.len() >= 6, "{files:?}");
    let (_dir, url) = local_store();
    let store = Store::open(&url).unwrap();
    rt().block_on(async {
        let session = QuerySession::open(&store).await.unwrap();
        for f in files {
            let q = QueryText::from_file(&f).unwrap();
            assert!(q.sql.starts_with("-- "), "{f:?} has no header comment");
            assert!(
                q.sql.contains("Returns:"),
                "{f:?} header does not say what it returns"
            );
            for p in &q.params {
                assert!(
                    p.default.is_some() && !p.doc.is_empty(),
                    "{f:?}: parameter {} needs a default and a doc",
                    p.name
                );
                assert!(
                    q.sql.contains(&format!("${{{}}}", p.name)),
                    "{f:?}: {} is declared but unused",
                    p.name
                );
            }
            // Queries that read another query's rows (`-- @input`) plan over it.
            let dir = f.parent().unwrap();
            register_inputs(&session, &q, Some(dir), &BTreeMap::new())
                .await
                .unwrap_or_else(|e| panic!("{f:?}: {e}"));
            let bound = q.bind(&BTreeMap::new()).unwrap();
            let batches = session
                .collect(&bound)
                .await
                .unwrap_or_else(|e| panic!("{f:?}: {e}"));
            // An aggregate without GROUP BY has its one row on an empty store
            // too; its header says so.
            let rows = usize::from(q.sql.contains("Returns: one row"));
            assert_eq!(
                batches.iter().map(|b| b.num_rows()).sum::<usize>(),
                rows,
                "{f:?}"
            );
            assert!(batches[0].num_columns() > 0, "{f:?}");
        }
    });
}

/// (origin, success, parent, rollback_step, length) of an episode.
type EpisodeFacts = (String, bool, Option<i64>, Option<i32>, i32);

/// Episodes and steps read straight from the Parquet files, no SQL.
struct Raw {
    episodes: HashMap<i64, EpisodeFacts>,
    // (episode_id, t) -> action
    steps: HashMap<(i64, i32), i32>,
}

fn read_raw(url: &str) -> Raw {
    let mut raw = Raw {
        episodes: HashMap::new(),
        steps: HashMap::new(),
    };
    for f in parquet_files(std::path::Path::new(url)) {
        let table = f
            .parent()
            .unwrap()
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        for b in read_parquet(&f).1 {
            let c = |n: &str| b.column_by_name(n).unwrap().clone();
            match table.as_str() {
                "episodes" => {
                    let (id, origin, success, parent, tau, len) = (
                        c("episode_id"),
                        c("origin"),
                        c("success"),
                        c("parent_episode_id"),
                        c("rollback_step"),
                        c("length"),
                    );
                    for i in 0..b.num_rows() {
                        let parent = parent.as_primitive::<Int64Type>();
                        let tau = tau.as_primitive::<Int32Type>();
                        raw.episodes.insert(
                            id.as_primitive::<Int64Type>().value(i),
                            (
                                origin.as_string::<i32>().value(i).to_string(),
                                success.as_boolean().value(i),
                                (!arrow::array::Array::is_null(parent, i)).then(|| parent.value(i)),
                                (!arrow::array::Array::is_null(tau, i)).then(|| tau.value(i)),
                                len.as_primitive::<Int32Type>().value(i),
                            ),
                        );
                    }
                }
                "steps" => {
                    let (id, t, a) = (c("episode_id"), c("t"), c("action"));
                    for i in 0..b.num_rows() {
                        raw.steps.insert(
                            (
                                id.as_primitive::<Int64Type>().value(i),
                                t.as_primitive::<Int32Type>().value(i),
                            ),
                            a.as_primitive::<Int32Type>().value(i),
                        );
                    }
                }
                _ => {}
            }
        }
    }
    raw
}

fn rows(batches: &[RecordBatch], id_col: &str) -> BTreeSet<(i64, i32, i32)> {
    let mut out = BTreeSet::new();
    for b in batches {
        let id = b
            .column_by_name(id_col)
            .unwrap()
            .as_primitive::<Int64Type>()
            .clone();
        let t = b
            .column_by_name("t")
            .unwrap()
            .as_primitive::<Int32Type>()
            .clone();
        let a = b
            .column_by_name("action")
            .unwrap()
            .as_primitive::<Int32Type>()
            .clone();
        for i in 0..b.num_rows() {
            assert!(
                out.insert((id.value(i), t.value(i), a.value(i))),
                "duplicate row"
            );
        }
    }
    out
}

#[test]
fn counterfactual_pairs_and_rehearsal_match_a_naive_walk_of_the_trees() {
    let (_dir, url) = local_store();
    let store = Store::open(&url).unwrap();
    rt().block_on(async {
        let cfg = SynthConfig {
            episodes: 400,
            seed: 5,
            max_depth: 3,
            ..Default::default()
        };
        synthesize(&store, "q", &cfg, "t").await.unwrap();
        let raw = read_raw(&url);
        assert_eq!(raw.episodes.len(), 400);

        // Counterfactual pairs: a successful branch's own steps, t >= tau.
        let mut want = BTreeSet::new();
        for (&id, (origin, success, _, tau, len)) in &raw.episodes {
            if origin == "branch" && *success {
                for t in tau.unwrap()..*len {
                    want.insert((id, t, raw.steps[&(id, t)]));
                }
            }
        }
        assert!(want.len() > 500);
        let got = rows(
            &run_file(&store, "counterfactual_pairs.sql", &[]).await,
            "episode_id",
        );
        assert_eq!(got, want);
        let deep = rows(
            &run_file(&store, "counterfactual_pairs.sql", &[("min_depth", "2")]).await,
            "episode_id",
        );
        assert!(!deep.is_empty() && deep.len() < want.len() && deep.is_subset(&want));

        // Rehearsal: the whole path of every successful root or branch, with
        // each ancestor contributing its steps before the child's tau.
        let mut want = BTreeSet::new();
        for (&leaf, (origin, success, _, _, len)) in &raw.episodes {
            if !*success || !(origin == "root" || origin == "branch") {
                continue;
            }
            for t in 0..*len {
                // Walk up to the episode that stores step t.
                let mut id = leaf;
                while t < raw.episodes[&id].3.unwrap_or(0) {
                    id = raw.episodes[&id].2.unwrap();
                }
                want.insert((leaf, t, raw.steps[&(id, t)]));
            }
        }
        let got = rows(
            &run_file(&store, "rehearsal.sql", &[]).await,
            "leaf_episode_id",
        );
        assert_eq!(got.len(), want.len());
        assert_eq!(got, want);

        // Critical steps: one row per reflection; the corrected action is
        // the one of its first successful branch (by episode id), if any.
        let cs = run_file(&store, "critical_steps.sql", &[("run", "q")]).await;
        let mut seen = 0;
        for b in &cs {
            let col = |n: &str| b.column_by_name(n).unwrap().clone();
            let (ep, tau, fixed) = (col("episode_id"), col("tau"), col("corrected_episode_id"));
            let (ep, tau, fixed) = (
                ep.as_primitive::<Int64Type>(),
                tau.as_primitive::<Int32Type>(),
                fixed.as_primitive::<Int64Type>(),
            );
            for i in 0..b.num_rows() {
                seen += 1;
                let children: Vec<(i64, bool, Option<i32>)> = raw
                    .episodes
                    .iter()
                    .filter(|(_, e)| e.0 == "branch" && e.2 == Some(ep.value(i)))
                    .map(|(&id, e)| (id, e.1, e.3))
                    .collect();
                assert!(children.iter().all(|c| c.2 == Some(tau.value(i))));
                let want = children.iter().filter(|c| c.1).map(|c| c.0).min();
                let got = (!arrow::array::Array::is_null(fixed, i)).then(|| fixed.value(i));
                assert_eq!(got, want, "reflection on episode {}", ep.value(i));
                if let Some(w) = want {
                    assert_eq!(raw.steps[&(w, tau.value(i))], {
                        let a = col("corrected_action");
                        let a = a.as_string::<i32>().value(i).to_string();
                        ["up", "down", "left", "right"]
                            .iter()
                            .position(|x| *x == a)
                            .unwrap() as i32
                    });
                }
            }
        }
        assert!(seen > 0);

        // Failure patterns account for every reflection.
        let fp = run_file(&store, "failure_patterns.sql", &[("run", "q")]).await;
        let total: i64 = fp
            .iter()
            .map(|b| {
                b.column_by_name("reflections")
                    .unwrap()
                    .as_primitive::<Int64Type>()
                    .iter()
                    .flatten()
                    .sum::<i64>()
            })
            .sum();
        let reflections = raw
            .episodes
            .values()
            .filter(|e| e.0 == "branch")
            .map(|e| e.2)
            .collect::<BTreeSet<_>>();
        assert!(total as usize >= reflections.len());
        let none = run_file(&store, "failure_patterns.sql", &[("run", "other")]).await;
        assert_eq!(none.iter().map(|b| b.num_rows()).sum::<usize>(), 0);
    });
}

/// Under a memory limit smaller than a hash join's build side, queries
/// still return every row: the join runs again as a sort-merge join, whose
/// sorts spill to disk; and a limit no plan fits is a one-line error.
#[test]
fn queries_complete_under_a_memory_limit_smaller_than_their_joins() {
    use leafe::query::MemoryLimits;
    let (_dir, url) = crate::common::local_store();
    let store = leafe::store::Store::open(&url).unwrap();
    let spill = tempfile::tempdir().unwrap();
    crate::common::rt().block_on(async {
        leafe::synth::synthesize(
            &store,
            "m",
            &leafe::synth::SynthConfig {
                episodes: 40_000,
                ..Default::default()
            },
            "t",
        )
        .await
        .unwrap();
        let q = leafe::query::load_query(None, "rehearsal")
            .unwrap()
            .bind(&Default::default())
            .unwrap();
        let rows = |batches: Vec<arrow::record_batch::RecordBatch>| -> usize {
            batches.iter().map(|b| b.num_rows()).sum()
        };
        let free = leafe::query::QuerySession::open_with(
            &store,
            MemoryLimits {
                limit: 4 << 30,
                spill_dir: None,
            },
        )
        .await
        .unwrap();
        let want = rows(free.collect(&q).await.unwrap());
        assert!(want > 10_000, "{want}");
        let tight = leafe::query::QuerySession::open_with(
            &store,
            MemoryLimits {
                limit: 64 << 20,
                spill_dir: Some(spill.path().to_path_buf()),
            },
        )
        .await
        .unwrap();
        assert_eq!(rows(tight.collect(&q).await.unwrap()), want);
        // A join whose hash build side (every step's key) outgrows 16 MiB:
        // planned with hash joins it fails; through the session it reruns
        // with sort-merge joins and returns the same count as unlimited.
        let join = leafe::query::QueryText::inline(
            "SELECT COUNT(*) AS n FROM steps a JOIN steps b \
             ON a.run_id = b.run_id AND a.episode_id = b.episode_id AND a.t = b.t",
        )
        .bind(&Default::default())
        .unwrap();
        let small = leafe::query::QuerySession::open_with(
            &store,
            MemoryLimits {
                limit: 16 << 20,
                spill_dir: Some(spill.path().to_path_buf()),
            },
        )
        .await
        .unwrap();
        let hashed = small
            .context()
            .sql(&join.sql)
            .await
            .unwrap()
            .collect()
            .await;
        assert!(
            hashed.is_err_and(|e| e.to_string().contains("Resources exhausted")),
            "the hash join must not fit, or this test proves nothing"
        );
        let count = |b: Vec<arrow::record_batch::RecordBatch>| {
            arrow::util::display::array_value_to_string(b[0].column(0), 0).unwrap()
        };
        assert_eq!(
            count(small.collect(&join).await.unwrap()),
            count(free.collect(&join).await.unwrap())
        );
        let hopeless = leafe::query::QuerySession::open_with(
            &store,
            MemoryLimits {
                limit: 1 << 10,
                spill_dir: Some(spill.path().to_path_buf()),
            },
        )
        .await
        .unwrap();
        let e = hopeless.collect(&q).await.unwrap_err().to_string();
        assert!(
            e.contains("needs more than the memory limit of 0 MiB") && !e.contains('\n'),
            "{e}"
        );
    });
}
