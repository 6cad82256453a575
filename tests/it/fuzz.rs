//! Property tests over what leafe reads from outside: query parameter
//! values, commit markers and the catalog as found in a store, experiment
//! config files, and Parquet files that claim the wrong schema. (The level
//! parsers have theirs in `env.rs` and `gridworld.rs`.)
//!
//! CI runs proptest's default 256 cases per property; a longer run is
//! `PROPTEST_CASES=20000 cargo test --test it fuzz::`.

use std::collections::BTreeMap;

use datafusion::prelude::SessionContext;
use leafe::query::{Dialect, QuerySession, QueryText};
use leafe::store::Store;
use leafe::synth::{SynthConfig, synthesize};
use proptest::prelude::*;

use crate::common::{leafe, local_store, parquet_files, rt};

/// Runs one SQL statement on a bare DataFusion context, returning the
/// first cell as text.
fn first_cell(sql: &str) -> Result<String, String> {
    rt().block_on(async {
        let ctx = SessionContext::new();
        let batches = ctx
            .sql(sql)
            .await
            .map_err(|e| e.to_string())?
            .collect()
            .await
            .map_err(|e| e.to_string())?;
        let col = batches[0].column(0);
        Ok(arrow::util::display::array_value_to_string(col, 0).unwrap())
    })
}

/// Spark's reading of a string literal body (its `unescapeSQLString` for
/// the escapes the binder writes).
fn spark_unescape(lit: &str) -> String {
    let body = &lit[1..lit.len() - 1];
    let mut out = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some('t') => out.push('\t'),
                Some('0') => out.push('\0'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            }
        } else {
            assert_ne!(c, '\'', "an unescaped quote inside a Spark literal: {lit}");
            out.push(c);
        }
    }
    out
}

fn query(params: &str, body: &str) -> QueryText {
    QueryText::parse("fuzz.sql", &format!("{params}\n{body}")).unwrap()
}

proptest! {
    /// Whatever a string parameter holds, the bound query returns exactly
    /// that value: it never changes the query's structure.
    #[test]
    fn a_string_value_comes_back_unchanged(v in "\\PC{0,40}", other in "[$a-z{}]{0,8}") {
        let q = query(
            "-- @param v string\n-- @param w string",
            "SELECT ${v} AS v, ${w} AS w",
        );
        let vals = BTreeMap::from([("v".to_string(), v.clone()), ("w".to_string(), other)]);
        let bound = q.bind(&vals).unwrap();
        prop_assert_eq!(first_cell(&bound.sql).unwrap(), v.clone());
        let spark = q.bind_for(&vals, Dialect::Spark).unwrap().sql;
        let lit = spark.trim_start_matches(|c| c != '\'');
        let lit = &lit[..lit.find("' AS v").unwrap() + 1];
        prop_assert_eq!(spark_unescape(lit), v);
    }

    /// Numbers and booleans are checked: a value either binds to a literal
    /// that means the same number, or is refused in one line.
    #[test]
    fn typed_values_bind_to_their_literal_or_are_refused(v in "[-+0-9.eEnaif xy;']{0,12}") {
        for ty in ["int", "float", "bool"] {
            let q = query(&format!("-- @param v {ty}"), "SELECT ${v} AS v");
            let vals = BTreeMap::from([("v".to_string(), v.clone())]);
            match q.bind(&vals) {
                Ok(b) => {
                    let cell = first_cell(&b.sql).unwrap();
                    match ty {
                        "int" => prop_assert_eq!(cell.parse::<i64>().ok(), v.trim().parse::<i64>().ok()),
                        "float" => {
                            let want: f64 = v.parse().unwrap();
                            let got: f64 = cell.parse().unwrap();
                            prop_assert!((want - got).abs() <= want.abs() * 1e-12);
                        }
                        _ => prop_assert_eq!(cell, v.clone()),
                    }
                }
                Err(e) => prop_assert!(!e.to_string().contains('\n')),
            }
        }
    }

    /// No config text panics the parser; what parses prints back to a
    /// config that parses to the same value.
    #[test]
    fn experiment_configs_parse_or_fail_cleanly(
        key in prop::sample::select(vec!["seeds", "methods", "rft_root_samples", "grpo_budget_scale", "explore", "oracle_penalty", "curve"]),
        value in prop::sample::select(vec!["[]", "[0, 1]", "-1", "1e400", "\"x\"", "{}", "0", "[\"leafe\"]", "nan", "{ parts = 0 }", "99999999999999999999"]),
        junk in "[\\[\\]=a-z\" \n]{0,20}",
    ) {
        for text in [format!("{key} = {value}\n"), format!("{key} = {value}\n{junk}")] {
            if let Ok(cfg) = toml::from_str::<leafe::experiment::ExperimentConfig>(&text) {
                if let Err(e) = cfg.check() {
                    prop_assert!(!e.to_string().contains('\n'));
                    continue;
                }
                let printed = toml::to_string(&cfg).unwrap();
                let back: leafe::experiment::ExperimentConfig = toml::from_str(&printed).unwrap();
                prop_assert_eq!(back, cfg);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// A commit marker or catalog with any bytes in it fails the reader with
    /// a one-line error naming the object; nothing panics.
    #[test]
    fn corrupt_markers_and_catalogs_are_one_line_errors(
        bytes in proptest::collection::vec(any::<u8>(), 0..200),
        json in prop::sample::select(vec![
            r#"{}"#, r#"{"run_id": 1}"#, r#"[]"#, r#"null"#,
            r#"{"run_id":"x","kind":"k","created_at_us":0,"committed_at_us":0,"tables":{"steps":[{"path":"../../etc/passwd","rows":1,"bytes":1}]},"schema_versions":{}}"#,
            r#"{"format":"leafe-catalog","version":9,"generated_at_us":0,"partition_column":"run_id","runs":[],"tables":{}}"#,
            r#"{"format":"leafe-catalog","version":1,"generated_at_us":0,"partition_column":"run_id","runs":[],"tables":{}}"#,
        ]),
    ) {
        let (_dir, url) = local_store();
        let store = Store::open(&url).unwrap();
        let root = std::path::PathBuf::from(&url);
        std::fs::create_dir_all(root.join("_leafe/commits")).unwrap();
        for body in [bytes.clone(), json.as_bytes().to_vec()] {
            std::fs::write(root.join("_leafe/commits/x.json"), &body).unwrap();
            std::fs::write(root.join("_leafe/catalog.json"), &body).unwrap();
            rt().block_on(async {
                match store.commits().await {
                    Ok(markers) => {
                        // A marker that parses but names files that are not
                        // the run's: queries fail or see nothing, no panic.
                        let _ = markers;
                        if let Ok(s) = QuerySession::open(&store).await {
                            let q = QueryText::inline("SELECT COUNT(*) FROM steps").bind(&BTreeMap::new()).unwrap();
                            if let Err(e) = s.collect(&q).await {
                                assert!(!e.to_string().contains('\n'), "{e}");
                            }
                        }
                    }
                    Err(e) => {
                        let msg = e.to_string();
                        assert!(msg.contains("commits/x.json") && !msg.contains('\n'), "{msg}");
                    }
                }
                if let Err(e) = store.catalog().await {
                    let msg = e.to_string();
                    assert!(msg.contains("catalog.json") && !msg.contains('\n'), "{msg}");
                }
            });
        }
    }
}

/// A data file that claims the wrong schema (a column of another type, a
/// required column missing) fails the query with one line naming the
/// problem, and `leafe catalog` still lists only committed files.
#[test]
fn a_parquet_file_with_the_wrong_schema_is_a_one_line_error() {
    let (_dir, url) = local_store();
    let store = Store::open(&url).unwrap();
    rt().block_on(synthesize(
        &store,
        "w",
        &SynthConfig {
            episodes: 30,
            ..Default::default()
        },
        "t",
    ))
    .unwrap();
    let root = std::path::PathBuf::from(&url);
    let file = parquet_files(&root.join("steps/run_id=w"))[0].clone();
    // Same name, different content: `episode_id` as text, `t` missing.
    let batch = arrow::record_batch::RecordBatch::try_from_iter(vec![(
        "episode_id",
        std::sync::Arc::new(arrow::array::StringArray::from(vec!["not a number"]))
            as arrow::array::ArrayRef,
    )])
    .unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(&file).unwrap(),
        batch.schema(),
        None,
    )
    .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let (code, out, err) = leafe(&[
        "sql",
        "--store",
        &url,
        "SELECT SUM(episode_id), COUNT(t) FROM steps",
    ]);
    assert_eq!(code, 2, "{out}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("leafe catalog --verify"), "{err}");
    // --verify names the file and what is wrong with it.
    let (code, _, err) = leafe(&["catalog", "--store", &url, "--verify"]);
    assert_eq!(code, 1, "{err}");
    let name = file.file_name().unwrap().to_str().unwrap();
    assert!(
        err.contains(name) && err.contains("column `episode_id` is Utf8, table `steps` says Int64"),
        "{err}"
    );
    assert!(err.contains("lacks column `t`"), "{err}");
    // Garbage where a Parquet file should be.
    std::fs::write(&file, b"PAR1 not really").unwrap();
    let (code, _, err) = leafe(&["sql", "--store", &url, "SELECT COUNT(*) FROM steps"]);
    assert_eq!(code, 2);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let (code, _, err) = leafe(&["catalog", "--store", &url, "--verify"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not a readable Parquet file"), "{err}");
}
