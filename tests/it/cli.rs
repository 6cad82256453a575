//! The real binary: bad input gets one line and exit 2; a killed writer leaves
//! nothing visible.

use std::process::Command;
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;

use crate::common::local_store;

fn leafe() -> Command {
    let mut c = Command::cargo_bin("leafe").unwrap();
    c.env_remove("LEAFE_STORE").env("RUST_LOG", "warn");
    c
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = leafe().args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_one_line_error(args: &[&str], needle: &str) {
    let (code, _, err) = run(args);
    assert_eq!(code, 2, "{args:?}: {err}");
    let lines: Vec<_> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{args:?} printed {lines:?}");
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains(needle),
        "{args:?}: {}",
        lines[0]
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn bad_input_gets_one_line_and_exit_2() {
    let (_dir, url) = local_store();
    let (code, out, err) = run(&[
        "synth",
        "--store",
        &url,
        "--episodes",
        "50",
        "--run-id",
        "s",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("committed run s"), "{out}");
    assert_one_line_error(&["sql", "--store", &url, "SELEC 1"], "SELEC");
    assert_one_line_error(&["sql", "--store", &url, "SELECT * FROM nope"], "nope");
    assert_one_line_error(&["sql", "--store", &url, "SELECT nope FROM steps"], "nope");
    let q = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/queries/counterfactual_pairs.sql"
    );
    assert_one_line_error(
        &["sql", "--store", &url, "--file", q, "--param", "bogus=1"],
        "unknown parameter `bogus`",
    );
    assert_one_line_error(
        &[
            "sql",
            "--store",
            &url,
            "--file",
            q,
            "--param",
            "min_depth=x",
        ],
        "min_depth",
    );
    assert_one_line_error(
        &["sql", "--store", &url, "--file", "/nonexistent.sql"],
        "/nonexistent.sql",
    );
    assert_one_line_error(&["runs", "--store", "ftp://x/y"], "ftp://x/y");
    assert_one_line_error(&["runs", "--store", "s3://"], "s3://");
    for bad in ["../x", "a/b", "a b"] {
        assert_one_line_error(&["synth", "--store", &url, "--run-id", bad], bad);
    }
    assert_one_line_error(
        &["synth", "--store", &url, "--run-id", "s"],
        "already committed",
    );
    // Usage errors are clap's, also exit 2.
    assert_eq!(run(&["sql", "--format", "xml", "SELECT 1"]).0, 2);
}

#[test]
fn sql_prints_table_csv_and_json_with_params() {
    let (_dir, url) = local_store();
    assert_eq!(
        run(&[
            "synth",
            "--store",
            &url,
            "--episodes",
            "100",
            "--run-id",
            "a",
            "--seed",
            "1"
        ])
        .0,
        0
    );
    let (code, out, err) = run(&[
        "sql",
        "--store",
        &url,
        "SELECT origin, COUNT(*) AS n FROM episodes GROUP BY origin ORDER BY origin",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("| origin") && out.contains("| root"), "{out}");
    let (_, csv, _) = run(&[
        "sql",
        "--store",
        &url,
        "--format",
        "csv",
        "SELECT COUNT(*) AS n FROM episodes",
    ]);
    assert_eq!(csv.trim(), "n\n100");
    let q = concat!(env!("CARGO_MANIFEST_DIR"), "/queries/failure_patterns.sql");
    let (code, json, err) = run(&[
        "sql", "--store", &url, "-f", q, "-p", "run=a", "--format", "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let first: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    assert!(first["reflections"].as_i64().unwrap() > 0, "{first}");
    let (code, out, _) = run(&["runs", "--store", &url, "--format", "csv"]);
    assert_eq!(code, 0);
    assert!(
        out.lines().nth(1).unwrap().starts_with("a,synth,true,"),
        "{out}"
    );
}

#[test]
fn a_killed_writer_leaves_no_visible_run_and_gc_cleans_up() {
    let (_dir, url) = local_store();
    assert_eq!(
        run(&[
            "synth",
            "--store",
            &url,
            "--episodes",
            "30",
            "--run-id",
            "done"
        ])
        .0,
        0
    );
    let mut child = leafe()
        .args([
            "synth",
            "--store",
            &url,
            "--episodes",
            "100000000",
            "--run-id",
            "killed",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until it has written data files, then kill it mid-run.
    let started = Instant::now();
    let dir = std::path::Path::new(&url).join("steps/run_id=killed");
    while !dir.read_dir().is_ok_and(|mut d| d.next().is_some())
        && started.elapsed() < Duration::from_secs(60)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    let (_, out, _) = run(&[
        "sql",
        "--store",
        &url,
        "--format",
        "csv",
        "SELECT COUNT(DISTINCT run_id) AS r FROM episodes",
    ]);
    assert_eq!(out.trim(), "r\n1");
    let (_, out, _) = run(&["runs", "--store", &url, "--format", "csv"]);
    assert!(out.contains("killed,synth,false"), "{out}");
    let (code, out, _) = run(&["gc", "--store", &url]);
    assert_eq!(code, 0);
    assert!(out.contains("kept 1"), "{out}");
    let (code, out, _) = run(&["gc", "--store", &url, "--min-age", "0s"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("deleted 1 uncommitted run(s) [killed]"),
        "{out}"
    );
    assert!(
        !std::path::Path::new(&url)
            .join("steps/run_id=killed")
            .read_dir()
            .is_ok_and(|mut d| d.next().is_some())
    );
}

#[test]
fn a_down_s3_endpoint_fails_fast_with_a_clear_error() {
    let started = Instant::now();
    let out = leafe()
        .args(["runs", "--store", "s3://leafe-nowhere/p"])
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_ACCESS_KEY_ID", "x")
        .env("AWS_SECRET_ACCESS_KEY", "x")
        .env("AWS_REGION", "us-east-1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("s3://leafe-nowhere/p") && err.contains("127.0.0.1:9"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn the_demo_runs_on_a_fresh_store() {
    let (_dir, url) = local_store();
    let (code, out, err) = run(&["demo", "--store", &url, "--tasks", "24"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("Explored 24 tasks") && out.contains("Failure patterns"),
        "{out}"
    );
    assert!(
        out.contains("| category") && out.contains("| depth"),
        "{out}"
    );
}

#[test]
fn levels_generate_then_solve_and_bad_level_files() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("l.txt");
    let f = file.to_str().unwrap();
    let (code, _, err) = run(&[
        "levels", "generate", "--size", "6x6", "--boxes", "2", "--count", "20", "--seed", "3",
        "--out", f,
    ]);
    assert_eq!(code, 0, "{err}");
    let first = std::fs::read_to_string(&file).unwrap();
    let (code, out, err) = run(&["levels", "solve", f, "--format", "json", "--require-all"]);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 20);
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r["index"], i);
        assert_eq!(r["solved"], true);
        let moves = r["moves"].as_str().unwrap();
        assert!(
            !moves.is_empty() && moves.chars().all(|c| "udlr".contains(c)),
            "{r}"
        );
        assert!(
            r["pushes"].as_u64().unwrap() >= 1
                && r["nodes"].as_u64().is_some()
                && r["elapsed_ms"].as_f64().is_some()
        );
    }
    // Same flags, same file.
    assert_eq!(
        run(&[
            "levels", "generate", "--size", "6x6", "--boxes", "2", "--count", "20", "--seed", "3",
            "--out", f
        ])
        .0,
        0
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), first);

    let bad = dir.path().join("bad.txt");
    let b = bad.to_str().unwrap();
    for (text, needle) in [
        (
            "; 0\n#####\n#@$.#\n#####\n\n; 1\n#####\n#@x.#\n#####\n",
            "level 1 (line 8)",
        ),
        ("; 0\n#####\n#@$.#\n####\n", "line 4"),
        ("; 0\n#####\n# $.#\n#####\n", "player"),
        ("; 0\n#####\n#@$@#\n#.  #\n#####\n", "player"),
        ("; 0\n######\n#@$$.#\n######\n", "box"),
    ] {
        std::fs::write(&bad, text).unwrap();
        assert_one_line_error(&["levels", "solve", b], b);
        assert_one_line_error(&["levels", "solve", b], needle);
    }
}

#[test]
fn pretrain_then_explore_from_the_command_line() {
    let (_dir, url) = local_store();
    let dir = tempfile::tempdir().unwrap();
    let train = dir.path().join("train.txt");
    let test = dir.path().join("test.txt");
    let (t, h) = (train.to_str().unwrap(), test.to_str().unwrap());
    for (file, seed, count) in [(t, "1", "80"), (h, "2", "12")] {
        let (code, _, err) = run(&[
            "levels",
            "generate",
            "--size",
            "6x6",
            "--boxes",
            "2",
            "--min-pushes",
            "4",
            "--count",
            count,
            "--seed",
            seed,
            "--out",
            file,
        ]);
        assert_eq!(code, 0, "{err}");
    }
    let (code, out, err) = run(&[
        "pretrain",
        "--store",
        &url,
        "--levels",
        t,
        "--out-model",
        "base",
        "--demo-levels",
        "60",
        "--epochs",
        "3",
        "--eval-levels",
        h,
        "--eval-samples",
        "8",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("saved model base") && out.contains("pass@8"),
        "{out}"
    );
    assert_one_line_error(
        &[
            "pretrain",
            "--store",
            &url,
            "--levels",
            t,
            "--out-model",
            "base",
        ],
        "already exists",
    );
    assert_one_line_error(
        &["explore", "--store", &url, "--model", "nope", "--levels", h],
        "model `nope` not found",
    );
    // A bad flag value is clap's usage error: exit 2, the value named.
    let (code, _, err) = run(&[
        "explore", "--store", &url, "--model", "base", "--levels", h, "--shard", "2/2",
    ]);
    assert_eq!(code, 2);
    assert!(
        err.starts_with("error: invalid value '2/2' for '--shard"),
        "{err}"
    );

    let args = [
        "explore",
        "--store",
        &url,
        "--model",
        "base",
        "--levels",
        h,
        "--run-id",
        "x",
        "--budget",
        "200",
        "--chunk-tasks",
        "5",
    ];
    let (code, out, err) = run(&args);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("12 tasks in 3 chunk(s)"), "{out}");
    let (code, out, _) = run(&args);
    assert_eq!(code, 0);
    assert!(
        out.contains("nothing to do (12 tasks already committed)"),
        "{out}"
    );
    let (_, csv, _) = run(&[
        "sql",
        "--store",
        &url,
        "--format",
        "csv",
        "SELECT COUNT(DISTINCT task_id) AS n, MAX(depth) AS d FROM episodes WHERE run_id LIKE 'x.%'",
    ]);
    let row = csv.lines().nth(1).unwrap().to_string();
    assert!(row.starts_with("12,"), "{csv}");
    let (_, csv, _) = run(&[
        "sql",
        "--store",
        &url,
        "--format",
        "csv",
        "SELECT kind, COUNT(*) AS n FROM runs GROUP BY kind ORDER BY kind",
    ]);
    assert_eq!(csv.trim(), "kind,n\nexplore,3\npretrain,1");

    // Stage 2 from SQL, then Pass@k with eval episodes in the store.
    let (code, out, err) = run(&[
        "train",
        "--store",
        &url,
        "--method",
        "leafe",
        "--init",
        "base",
        "--runs",
        "x.%",
        "--out-model",
        "l1",
        "--epochs",
        "1",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("saved model l1") && !out.contains(" 0 counterfactual pairs"),
        "{out}"
    );
    // The same data streamed through a shuffle buffer smaller than it: the
    // same rows are trained on, in bounded memory.
    let counts = |out: &str| {
        let at = out.find(" counterfactual pairs").unwrap();
        let head = &out[..at];
        let pairs = head[head.rfind(' ').unwrap() + 1..].to_string();
        let tail = &out[at..];
        let rehearsal: String = tail
            .trim_start_matches(" counterfactual pairs, ")
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect();
        (pairs, rehearsal)
    };
    let (code, streamed, err) = run(&[
        "train",
        "--store",
        &url,
        "--method",
        "leafe",
        "--init",
        "base",
        "--runs",
        "x.%",
        "--out-model",
        "l1s",
        "--epochs",
        "2",
        "--shuffle-buffer",
        "64",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(counts(&streamed), counts(&out), "{streamed}\n{out}");
    assert!(!counts(&out).1.is_empty(), "{out}");
    assert_one_line_error(
        &[
            "train",
            "--store",
            &url,
            "--method",
            "rft",
            "--init",
            "base",
            "--runs",
            "none.%",
            "--out-model",
            "r1",
        ],
        "no training rows",
    );
    let (code, out, err) = run(&[
        "eval",
        "--store",
        &url,
        "--model",
        "l1",
        "--levels",
        h,
        "--samples",
        "8",
        "--format",
        "json",
        "--run-id",
        "ev",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        (
            v["model"].as_str(),
            v["split"].as_str(),
            v["tasks"].as_u64(),
            v["samples"].as_u64()
        ),
        (Some("l1"), Some("test"), Some(12), Some(8))
    );
    let p: Vec<f64> = ["1", "2", "4", "8"]
        .iter()
        .map(|k| v["pass_at_k"][k].as_f64().unwrap())
        .collect();
    assert!(
        p.windows(2).all(|w| w[0] <= w[1]) && p.iter().all(|x| (0.0..=1.0).contains(x)),
        "{v}"
    );
    // The SQL inputs of Pass@k reproduce the printed Pass@1.
    let q = concat!(env!("CARGO_MANIFEST_DIR"), "/queries/pass_at_k_inputs.sql");
    let (_, csv, _) = run(&[
        "sql", "--store", &url, "-f", q, "-p", "run=ev", "--format", "csv",
    ]);
    let rows: Vec<(f64, f64)> = csv
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[3].parse().unwrap(), f[4].parse().unwrap())
        })
        .collect();
    assert_eq!(rows.len(), 12);
    let pass1 = rows.iter().map(|(n, c)| c / n).sum::<f64>() / 12.0;
    assert!((pass1 - p[0]).abs() < 1e-9, "{pass1} vs {}", p[0]);
    assert_one_line_error(
        &[
            "eval",
            "--store",
            &url,
            "--model",
            "l1",
            "--levels",
            h,
            "--samples",
            "4",
            "--k",
            "8",
        ],
        "--k 8",
    );
}

/// `leafe sql --format csv|json` encodes batches side by side and writes
/// them in order: the bytes are the same whether the rows come in one batch
/// or in hundreds (DataFusion's batch size set through its environment
/// variable), the CSV header comes once, and a value DataFusion cannot parse
/// is one line that names the variables.
#[test]
fn streamed_output_is_the_same_bytes_whatever_the_batch_size() {
    let (_dir, url) = local_store();
    let (code, _, err) = run(&[
        "synth",
        "--store",
        &url,
        "--episodes",
        "300",
        "--seed",
        "5",
        "--run-id",
        "s",
    ]);
    assert_eq!(code, 0, "{err}");
    let sql = "SELECT s.episode_id, s.t, s.observation, s.action_text, e.success \
               FROM steps s JOIN episodes e USING (run_id, episode_id) \
               ORDER BY s.episode_id, s.t";
    let with = |size: &str, format: &str| {
        let (code, out, err) = crate::common::leafe_with(
            &["sql", "--store", &url, "--format", format, sql],
            &[("DATAFUSION_EXECUTION_BATCH_SIZE", size)],
        );
        assert_eq!(code, 0, "{err}");
        out
    };
    for format in ["csv", "json"] {
        let one = with("1000000", format);
        let many = with("7", format);
        assert!(one.len() > 10_000, "{format}: {} bytes", one.len());
        assert!(one == many, "{format}: batch size changed the output");
    }
    let csv = with("7", "csv");
    assert_eq!(csv.matches("episode_id,t,").count(), 1, "one header");
    let (code, _, err) = crate::common::leafe_with(
        &["sql", "--store", &url, "SELECT 1"],
        &[("DATAFUSION_EXECUTION_BATCH_SIZE", "lots")],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("DATAFUSION_"), "{err}");
    assert_eq!(
        err.lines().filter(|l| !l.trim().is_empty()).count(),
        1,
        "{err}"
    );
}
