//! Bringing one's own environment and model: failures of an environment
//! process are recorded (never a silent kill), its processes never outlive
//! it, it describes itself, exports carry what the policy saw, and `leafe
//! env check` tests the protocol's laws.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use leafe::env::Env;
use leafe::env::process::{ProcessConfig, ProcessEnv};
use leafe::policy::scripted::{completion, server};
use serde_json::{Value, json};

use crate::common::{leafe, local_store};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `cmd:` for the probe environment with `flags`.
fn probe(flags: &str) -> String {
    format!(
        "cmd:python3 {} {flags}",
        root().join("tests/fixtures/envs/probe.py").display()
    )
}

fn ids(dir: &Path, ids: &[&str]) -> String {
    let path = dir.join("ids.txt");
    std::fs::write(&path, ids.join("\n")).unwrap();
    path.display().to_string()
}

/// The rows of a query as CSV lines (header dropped).
fn sql(store: &str, query: &str) -> Vec<String> {
    let (code, out, err) = leafe(&["sql", "--store", store, "--format", "csv", query]);
    assert_eq!(code, 0, "{query}: {err}");
    out.lines().skip(1).map(str::to_string).collect()
}

fn explore(
    store: &str,
    env: &str,
    levels: &str,
    run_id: &str,
    extra: &[&str],
) -> (i32, String, String) {
    let mut args = vec![
        "explore",
        "--store",
        store,
        "--env",
        env,
        "--policy",
        "random",
        "--model",
        "random",
        "--levels",
        levels,
        "--run-id",
        run_id,
        "--chunk-tasks",
        "1",
        "--budget",
        "80",
    ];
    if extra.contains(&"--budget") {
        args.truncate(args.len() - 2);
    }
    args.extend_from_slice(extra);
    leafe(&args)
}

#[test]
fn a_process_that_exits_after_answering_fails_its_task_and_the_job_goes_on() {
    let (dir, store) = local_store();
    let levels = ids(dir.path(), &["a", "bb", "ccc"]);
    let (code, out, err) = explore(&store, &probe("--exit-on bb"), &levels, "x", &[]);
    // Not killed by SIGPIPE (-1 here, 141 in a shell): the run goes on.
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("3 tasks in 3 chunk(s)"), "{out}");
    assert!(err.contains("1 task(s) failed by the environment"), "{err}");
    assert!(
        !err.contains('\u{1b}'),
        "no colour codes off a terminal: {err:?}"
    );
    let failed = sql(
        &store,
        "SELECT DISTINCT task_id, error FROM episodes WHERE status = 'env_error' ORDER BY task_id",
    );
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0].starts_with("bb,"), "{failed:?}");
    assert!(
        failed[0].contains("task bb") && failed[0].contains("died"),
        "{failed:?}"
    );
    // What was done for the other tasks is kept.
    let kept = sql(
        &store,
        "SELECT DISTINCT task_id FROM episodes WHERE status <> 'env_error' ORDER BY task_id",
    );
    assert!(
        kept.contains(&"a".to_string()) && kept.contains(&"ccc".to_string()),
        "{kept:?}"
    );
}

#[test]
fn a_process_that_never_starts_is_one_line_naming_it() {
    let (dir, store) = local_store();
    let levels = ids(dir.path(), &["a"]);
    for env in ["cmd:true", "cmd:pyhton3-no-such-interpreter env.py"] {
        let (code, _, err) = explore(&store, env, &levels, "never", &[]);
        assert_eq!(code, 2, "{env}: {err}");
        let line = err.lines().last().unwrap_or_default();
        assert!(
            line.starts_with("error: ") && line.contains(env.strip_prefix("cmd:").unwrap()),
            "{env}: {err}"
        );
    }
    let (_, _, err) = explore(
        &store,
        "cmd:pyhton3-no-such-interpreter env.py",
        &levels,
        "never",
        &[],
    );
    assert!(err.contains("not found"), "the shell's own words: {err}");
}

#[test]
fn a_reset_the_environment_refuses_stores_the_task_id_and_why() {
    let (dir, store) = local_store();
    let levels = ids(dir.path(), &["a", "boom"]);
    let (code, _, err) = explore(&store, &probe("--fail-reset boom"), &levels, "r", &["-q"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("SELECT task_id, error FROM episodes"),
        "-q still says where: {err}"
    );
    let rows = sql(
        &store,
        "SELECT task_id, task_source, error FROM episodes WHERE status = 'env_error'",
    );
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(
        rows[0].starts_with("boom,"),
        "the task id, not file#line: {rows:?}"
    );
    assert!(rows[0].contains("no such task: boom"), "{rows:?}");
    // Every task failed: the run worked, nothing in it did (exit 1).
    let (code, _, err) = explore(&store, &probe("--fail-reset '*'"), &levels, "all", &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("2 task(s) failed by the environment"), "{err}");
}

#[test]
fn flags_and_info_of_steps_are_stored_and_queryable() {
    let (dir, store) = local_store();
    let levels = ids(dir.path(), &["a", "bb"]);
    let (code, _, err) = explore(&store, &probe("--info"), &levels, "f", &[]);
    assert_eq!(code, 0, "{err}");
    let rows = sql(
        &store,
        "SELECT COUNT(*), SUM(CASE WHEN flags LIKE 'moved_%' THEN 1 ELSE 0 END), \
         SUM(CASE WHEN info LIKE '{\"pos\":%' THEN 1 ELSE 0 END) FROM steps",
    );
    let n: Vec<i64> = rows[0].split(',').map(|x| x.parse().unwrap()).collect();
    assert!(n[0] > 0 && n[1] == n[0] && n[2] == n[0], "{rows:?}");
    // A pit step carries its mistake among its flags.
    let pits = sql(
        &store,
        "SELECT flags FROM steps WHERE mistake = 'fell_into_pit' LIMIT 1",
    );
    if let Some(f) = pits.first() {
        assert!(
            f.contains("fell_into_pit") && f.contains("moved_left"),
            "{f}"
        );
    }
}

#[test]
fn the_random_policy_explores_and_evaluates_without_a_model() {
    let (dir, store) = local_store();
    let levels = ids(dir.path(), &["a", "bb"]);
    let (code, out, err) = explore(&store, &probe(""), &levels, "rnd", &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("2 tasks"), "{out}");
    assert_eq!(
        sql(&store, "SELECT DISTINCT policy FROM episodes"),
        ["random"]
    );
    let boxoban = root().join("tests/fixtures/boxoban/unfiltered-test-000-first60.txt");
    let (code, csv, err) = leafe(&[
        "eval",
        "--store",
        &store,
        "--env",
        "sokoban",
        "--policy",
        "random",
        "--model",
        "random",
        "--levels",
        boxoban.to_str().unwrap(),
        "--samples",
        "2",
        "--max-steps",
        "10",
        "--run-id",
        "e1",
        "--format",
        "csv",
    ]);
    assert_eq!(code, 0, "{err}");
    let row = csv.lines().nth(1).unwrap_or_default();
    assert!(row.starts_with("random,test,60,2,"), "{csv}");
    let (code, csv, err) = leafe(&[
        "eval",
        "--store",
        &store,
        "--env",
        &probe(""),
        "--policy",
        "random",
        "--model",
        "random",
        "--levels",
        &levels,
        "--samples",
        "3",
        "--run-id",
        "e2",
        "--format",
        "csv",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        csv.lines()
            .nth(1)
            .unwrap_or_default()
            .starts_with("random,test,2,3,"),
        "{csv}"
    );
}

#[test]
fn the_random_policy_needs_no_model_name_and_the_network_still_does() {
    let (dir, store) = local_store();
    let levels = ids(dir.path(), &["a", "bb"]);
    let env = probe("");
    let base = [
        "--store",
        store.as_str(),
        "--env",
        env.as_str(),
        "--levels",
        levels.as_str(),
    ];
    let with = |cmd: &'static str, args: &[&'static str]| -> (i32, String, String) {
        let mut all: Vec<&str> = vec![cmd];
        all.extend_from_slice(&base);
        all.extend_from_slice(args);
        leafe(&all)
    };
    let (code, _, err) = with("explore", &["-q", "--policy", "random", "--run-id", "nm"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        sql(
            &store,
            "SELECT DISTINCT policy FROM episodes WHERE run_id LIKE 'nm%'"
        ),
        ["random"]
    );
    let (code, csv, err) = with(
        "eval",
        &[
            "--policy",
            "random",
            "--samples",
            "2",
            "--run-id",
            "en",
            "--format",
            "csv",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        csv.lines()
            .nth(1)
            .unwrap_or_default()
            .starts_with("random,test,2,2,"),
        "{csv}"
    );
    // The network (the default policy) and an LLM still need their model.
    for policy in ["burn", "openai"] {
        let (code, _, err) = with("explore", &["--policy", policy]);
        assert_eq!(code, 2, "{policy}: {err}");
        assert!(err.contains("model"), "{policy}: {err}");
    }
}

#[test]
fn hello_describes_the_environment_and_the_run_and_export_carry_it() {
    let (dir, store) = local_store();
    let levels = ids(dir.path(), &["aaaaa", "bbbbb", "ccccc", "ddddd"]);
    let env = probe("--describe");
    let (code, _, err) = explore(&store, &env, &levels, "d", &["--budget", "300"]);
    assert_eq!(code, 0, "{err}");
    let configs = sql(
        &store,
        "SELECT config_json FROM runs WHERE run_id LIKE 'd.%'",
    );
    assert!(!configs.is_empty());
    assert!(
        configs.iter().all(|c| c.contains("PROBE: a corridor")),
        "{configs:?}"
    );
    // The export, with no --env and no --system-prompt, and with `--env cmd:…`.
    for with_env in [false, true] {
        let out = dir.path().join(format!("d-{with_env}.jsonl"));
        let mut args = vec![
            "export",
            "--store",
            &store,
            "--runs",
            "d.%",
            "--dataset",
            "rehearsal",
            "--format",
            "sharegpt",
            "--out",
            out.to_str().unwrap(),
            "--overwrite",
        ];
        if with_env {
            args.extend_from_slice(&["--env", &env]);
        }
        let (code, _, err) = leafe(&args);
        assert_eq!(code, 0, "{err}");
        let text = std::fs::read_to_string(&out).unwrap();
        let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        let system = first["system"].as_str().unwrap();
        assert!(
            system.contains("PROBE: a corridor") && system.contains("left and right move one cell"),
            "{system}"
        );
        assert!(!system.contains("Sokoban"), "{system}");
    }
    let out = dir.path().join("d.parquet");
    let (code, _, err) = leafe(&[
        "export",
        "--store",
        &store,
        "--runs",
        "d.%",
        "--dataset",
        "rehearsal",
        "--format",
        "verl-parquet",
        "--out",
        out.to_str().unwrap(),
        "--env",
        &env,
    ]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn an_llm_run_exports_the_messages_the_policy_sent() {
    let (url, _seen) = server(Arc::new(|_req: &Value, _| {
        (
            200,
            completion(&json!({ "action": "right" }).to_string()),
            0,
        )
    }));
    let (dir, store) = local_store();
    let levels = ids(dir.path(), &["1", "2"]);
    let corridor = format!(
        "cmd:python3 {}",
        root().join("examples/corridor.py").display()
    );
    let (code, _, err) = leafe(&[
        "explore",
        "--store",
        &store,
        "--env",
        &corridor,
        "--policy",
        "openai",
        "--base-url",
        &url,
        "--model",
        "scripted",
        "--levels",
        &levels,
        "--run-id",
        "llm",
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = leafe(&[
        "sql",
        "--store",
        &store,
        "--format",
        "json",
        "SELECT messages FROM llm_calls WHERE kind = 'act' ORDER BY call_id",
    ]);
    assert_eq!(code, 0, "{err}");
    let recorded: Vec<Value> = out
        .lines()
        .map(|l| {
            let row: Value = serde_json::from_str(l).unwrap();
            serde_json::from_str(row["messages"].as_str().unwrap()).unwrap()
        })
        .collect();
    assert!(!recorded.is_empty());
    // The corridor describes itself: the policy was prompted with that.
    assert!(
        recorded[0][0]["content"]
            .as_str()
            .unwrap()
            .contains("A corridor")
    );
    let out = dir.path().join("llm.jsonl");
    let (code, _, err) = leafe(&[
        "export",
        "--store",
        &store,
        "--runs",
        "llm.%",
        "--dataset",
        "rehearsal",
        "--format",
        "trl-prompt-completion",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let records: Vec<Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Walking right solves both corridors: every step an example.
    let steps: usize = sql(&store, "SELECT COUNT(*) FROM steps")[0]
        .parse()
        .unwrap();
    assert_eq!(records.len(), steps);
    for r in &records {
        assert!(
            recorded.contains(&r["prompt"]),
            "not a request the policy sent: {}",
            r["prompt"]
        );
        assert_eq!(
            r["completion"],
            json!([{ "role": "assistant", "content": "{\"action\":\"right\"}" }])
        );
    }
    // Rebuilt on request: the history as chat turns.
    let (code, _, err) = leafe(&[
        "export",
        "--store",
        &store,
        "--runs",
        "llm.%",
        "--dataset",
        "rehearsal",
        "--format",
        "trl-prompt-completion",
        "--out",
        out.to_str().unwrap(),
        "--overwrite",
        "--prompts",
        "rebuilt",
    ]);
    assert_eq!(code, 0, "{err}");
    let first: Value = serde_json::from_str(
        std::fs::read_to_string(&out)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(first["completion"][0]["content"], "right");
}

/// The processes of process group `pgid` that are alive (not zombies).
fn live_in_group(pgid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid pgrp …; comm may hold spaces.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields[0] != "Z" && fields[2].parse::<i32>() == Ok(pgid) {
            out.push(pid);
        }
    }
    out
}

fn wait_for(path: &Path) -> i32 {
    for _ in 0..200 {
        if let Ok(t) = std::fs::read_to_string(path)
            && let Ok(v) = t.trim().parse()
        {
            return v;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("{} never written", path.display());
}

/// An environment that starts a helper process (in its own group) at
/// reset, writes its process group to `pgid`, and hangs on `step`.
fn hanging_env(dir: &Path) -> (ProcessConfig, PathBuf) {
    let pgid = dir.join("pgid");
    let script = dir.join("hang.py");
    std::fs::write(
        &script,
        r#"import json, os, subprocess, sys, time
for line in sys.stdin:
    req = json.loads(line)
    out = {"id": req["id"], "ok": True}
    if req["verb"] == "hello":
        out.update(protocol=1, name="hang", snapshot=False, actions={"type": "choice", "names": ["wait"]})
    elif req["verb"] == "reset":
        subprocess.Popen(["sleep", "300"])
        open(sys.argv[1], "w").write(str(os.getpgrp()))
        out.update(observation={"text": "waiting"}, legal_actions=["wait"])
    else:
        time.sleep(300)
    print(json.dumps(out), flush=True)
"#,
    )
    .unwrap();
    let config = ProcessConfig {
        command: vec![
            "sh".into(),
            "-c".into(),
            format!("python3 {} {}", script.display(), pgid.display()),
        ],
        timeout_ms: 1_000,
        max_steps: 0,
    };
    (config, pgid)
}

#[test]
fn a_hung_or_dropped_environment_leaves_no_process_of_its_group() {
    let dir = tempfile::tempdir().unwrap();
    let (config, pgid_file) = hanging_env(dir.path());
    // A step that hangs: killed at the timeout, its whole group with it.
    let mut env = ProcessEnv::spawn(config.clone()).unwrap();
    env.reset(&"t".to_string(), 0).unwrap();
    let pgid = wait_for(&pgid_file);
    assert!(live_in_group(pgid).len() >= 2, "sh/python and sleep run");
    let e = env.step("wait").unwrap_err().to_string();
    assert!(e.contains("no answer within 1000 ms"), "{e}");
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(
        live_in_group(pgid),
        Vec::<i32>::new(),
        "orphans of a timeout"
    );
    drop(env);
    // A process dropped while its helper runs.
    std::fs::remove_file(&pgid_file).unwrap();
    let mut env = ProcessEnv::spawn(config).unwrap();
    env.reset(&"t".to_string(), 0).unwrap();
    let pgid = wait_for(&pgid_file);
    assert!(!live_in_group(pgid).is_empty());
    drop(env);
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(live_in_group(pgid), Vec::<i32>::new(), "orphans of a drop");
}

#[test]
fn ctrl_c_kills_the_environment_processes_too() {
    use assert_cmd::cargo::CommandCargoExt;
    let dir = tempfile::tempdir().unwrap();
    let (config, pgid_file) = hanging_env(dir.path());
    let (_d, store) = local_store();
    let levels = ids(dir.path(), &["t"]);
    let mut child = std::process::Command::cargo_bin("leafe")
        .unwrap()
        .args([
            "explore",
            "--store",
            &store,
            "--env",
            &format!("cmd:{}", config.command[2]),
            "--policy",
            "random",
            "--model",
            "random",
            "--levels",
            &levels,
            "--env-timeout-ms",
            "600000",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pgid = wait_for(&pgid_file);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(!live_in_group(pgid).is_empty());
    // SAFETY: a signal to the child this test started.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(live_in_group(pgid), Vec::<i32>::new(), "orphans of Ctrl-C");
}

/// `leafe env check` as (law, result, detail) rows, and its exit code.
fn check(env: &str, levels: &str) -> (i32, Vec<(String, String, String)>, String) {
    let (code, out, err) = leafe(&[
        "env", "check", "--env", env, "--levels", levels, "--format", "json",
    ]);
    let rows: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {out}\n{err}")))
        .collect();
    let rows = rows
        .iter()
        .map(|r| {
            (
                r["law"].as_str().unwrap().to_string(),
                r["result"].as_str().unwrap().to_string(),
                r["detail"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (code, rows, err)
}

#[test]
fn env_check_passes_the_shipped_environments_and_the_example() {
    let dir = tempfile::tempdir().unwrap();
    let boxoban = root().join("tests/fixtures/boxoban/unfiltered-test-000-first60.txt");
    let corridor = format!(
        "cmd:python3 {}",
        root().join("examples/corridor.py").display()
    );
    let grids = dir.path().join("grids.txt");
    let g = leafe::worlds::gridworld::generate(&leafe::worlds::gridworld::GridworldGenConfig {
        count: 3,
        seed: 1,
        ..Default::default()
    })
    .unwrap();
    leafe::worlds::gridworld::write_grid_file(&grids, &g).unwrap();
    let levels = ids(dir.path(), &["0", "1", "2"]);
    for (env, levels) in [
        ("sokoban", boxoban.to_str().unwrap()),
        ("gridworld", grids.to_str().unwrap()),
        (corridor.as_str(), levels.as_str()),
        (&probe(""), levels.as_str()),
    ] {
        let (code, rows, err) = check(env, levels);
        assert_eq!(code, 0, "{env}: {rows:?} {err}");
        let laws: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
        assert_eq!(
            laws,
            [
                "hello",
                "reset",
                "legal actions",
                "replay",
                "snapshot",
                "terminal"
            ],
            "{env}"
        );
        for (law, result, detail) in &rows {
            let ok = result == "passed" || (result == "skipped" && law == "snapshot");
            assert!(ok, "{env}: {law} {result}: {detail}");
        }
    }
}

#[test]
fn env_check_fails_a_broken_environment_law_by_law() {
    let dir = tempfile::tempdir().unwrap();
    let levels = ids(dir.path(), &["a", "bb", "ccc"]);
    for (broken, law, says) in [
        ("replay", "replay", "went another way"),
        ("snapshot", "snapshot", "restoring the snapshot"),
        ("terminal", "terminal", "answered instead of refused"),
        ("legal", "legal actions", "was taken instead of refused"),
    ] {
        let (code, rows, err) = check(&probe(&format!("--break {broken}")), &levels);
        assert_eq!(code, 1, "{broken}: {rows:?}");
        assert!(err.contains("law(s) failed"), "{err}");
        for (l, result, detail) in &rows {
            if l == law {
                assert_eq!(result, "failed", "{broken}: {detail}");
                assert!(
                    detail.contains(says) || (broken == "replay" && detail.contains("gave")),
                    "{broken}: {detail}"
                );
            } else if broken != "replay" {
                // The other laws hold (a broken replay breaks what walks).
                assert_ne!(result, "failed", "{broken} broke {l}: {detail}");
            }
        }
    }
    // A process that never starts: hello fails, the rest are skipped.
    let (code, rows, _) = check("cmd:true", &levels);
    assert_eq!(code, 1);
    assert_eq!(rows[0].1, "failed");
    assert!(rows[1..].iter().all(|r| r.1 == "skipped"), "{rows:?}");
}

#[test]
fn small_frictions_are_gone() {
    let dir = tempfile::tempdir().unwrap();
    let (_d, store) = local_store();
    // A path without `cmd:` gets the suggestion.
    let levels = ids(dir.path(), &["a"]);
    let (code, _, err) = leafe(&[
        "explore",
        "--store",
        &store,
        "--env",
        "./my_env.py",
        "--policy",
        "random",
        "--model",
        "random",
        "--levels",
        &levels,
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("--env 'cmd:python3 ./my_env.py'"), "{err}");
    // The compiled-in query of a missing file's name, said so.
    let (code, _, err) = leafe(&[
        "sql",
        "--store",
        &store,
        "--file",
        "/nonexistent/queries/failure_patterns.sql",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("compiled-in query `failure_patterns`"),
        "{err}"
    );
    let (_, help, _) = leafe(&["sql", "--help"]);
    let (_, top, _) = leafe(&["--help"]);
    assert!(
        help.contains("llm_calls") || top.contains("llm_calls"),
        "{top}"
    );
    // A reader of stdout that goes away ends leafe quietly.
    let exe = assert_cmd::cargo::cargo_bin("leafe");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "'{}' sql --store '{store}' --format csv 'SELECT * FROM generate_series(1, 300000)' | head -n 2",
            exe.display()
        ))
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2);
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "quiet");
    let (_, help, _) = leafe(&["explore", "--help"]);
    assert!(
        help.contains("--max-steps") && help.contains("max_depth"),
        "{help}"
    );
}
