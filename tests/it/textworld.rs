//! TextWorld end to end through `examples/textworld_env.py`: games made
//! offline by `textworld` (PyPI), explored by an LLM policy over the env
//! protocol, rolled back by replay, written to the store and exported.
//!
//! The policy is a scripted OpenAI-compatible server that picks one of the
//! admissible commands the request offers (seeded by the request's `seed`):
//! a random agent, no model. `LEAFE_TEXTWORLD_PYTHON` names a Python with
//! `textworld` installed (default `python3`); `.ci/run` installs it, and under
//! CI=true its absence is a failure, not a skip.

use std::sync::Arc;

use leafe::policy::scripted::{completion, server};
use serde_json::{Value, json};

use crate::common::{leafe, leafe_with, local_store, textworld_python};

fn sql(store: &str, query: &str) -> Vec<Vec<String>> {
    let (code, csv, err) = leafe(&["sql", "--store", store, "--format", "csv", query]);
    assert_eq!(code, 0, "{err}");
    csv.lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

#[test]
fn textworld_games_are_explored_through_the_adapter_with_rollback_by_replay() {
    let Some(python) = textworld_python("TextWorld") else {
        return;
    };
    // A random agent over the admissible commands the prompt lists.
    let (url, seen) = server(Arc::new(|req: &Value, _| {
        let legal = req["response_format"]["json_schema"]["schema"]["properties"]["action"]["enum"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(
            !legal.is_empty(),
            "every TextWorld turn offers its admissible commands"
        );
        let seed = req["seed"].as_u64().unwrap_or(0);
        let pick = legal[(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 33) as usize % legal.len()]
            .as_str()
            .unwrap()
            .to_string();
        (200, completion(&json!({ "action": pick }).to_string()), 0)
    }));
    let (dir, store) = local_store();
    let tasks = dir.path().join("tasks.txt");
    std::fs::write(&tasks, "1\n2\n").unwrap();
    let script =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/textworld_env.py");
    let games = dir.path().join("games");
    let env = format!(
        "cmd:{python} {} --games {} --max-steps 12",
        script.display(),
        games.display()
    );
    let explore = |run: &str| {
        leafe(&[
            "explore",
            "--store",
            &store,
            "--env",
            &env,
            "--policy",
            "openai",
            "--base-url",
            &url,
            "--model",
            "random-admissible",
            "--levels",
            tasks.to_str().unwrap(),
            "--run-id",
            run,
            "--budget",
            "80",
            "--branches",
            "2",
        ])
    };
    let (code, out, err) = explore("tw");
    assert_eq!(code, 0, "{err}");
    eprintln!("{out}");
    assert!(out.contains("2 tasks in 1 chunk(s)"), "{out}");
    assert!(
        out.contains("by replay") && !out.contains("failed by the environment"),
        "{out}\n{err}"
    );
    assert!(err.contains("0 invalid"), "{err}");
    // Both games were made offline, once.
    let made = std::fs::read_dir(&games)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "z8")
        })
        .count();
    assert_eq!(made, 2);

    // Roots, reflections and branches from the rollback, none failed by the env.
    let rows = sql(
        &store,
        "SELECT COUNT(*) AS n, SUM(CASE WHEN origin = 'branch' THEN 1 ELSE 0 END) AS branches, \
         SUM(CASE WHEN status = 'env_error' THEN 1 ELSE 0 END) AS failed, \
         SUM(CASE WHEN origin = 'branch' AND rollback_step > 0 THEN 1 ELSE 0 END) AS rolled_back \
         FROM episodes WHERE run_id LIKE 'tw.%'",
    );
    let n: Vec<i64> = rows[0].iter().map(|v| v.parse().unwrap()).collect();
    eprintln!("episodes, branches, env errors, rolled back: {n:?}");
    assert!(n[0] > 2 && n[1] > 0 && n[2] == 0 && n[3] > 0, "{rows:?}");
    let rows = sql(
        &store,
        "SELECT COUNT(*) FROM reflections WHERE run_id LIKE 'tw.%'",
    );
    assert!(rows[0][0].parse::<i64>().unwrap() > 0, "{rows:?}");
    // Every stored action is a command the game offered at that step: the
    // request for that turn listed it (the server saw every prompt).
    let offered: std::collections::HashSet<String> = seen
        .lock()
        .unwrap()
        .iter()
        .flat_map(|r| {
            r["response_format"]["json_schema"]["schema"]["properties"]["action"]["enum"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let (code, actions, err) = leafe(&[
        "sql",
        "--store",
        &store,
        "--format",
        "csv",
        "SELECT DISTINCT action_text FROM steps WHERE run_id LIKE 'tw.%'",
    ]);
    assert_eq!(code, 0, "{err}");
    for a in actions.lines().skip(1) {
        assert!(
            offered.contains(a.trim_matches('"')),
            "`{a}` was never offered"
        );
    }
    let rows = sql(
        &store,
        "SELECT COUNT(*) FROM steps WHERE run_id LIKE 'tw.%' AND action < 0",
    );
    assert!(
        rows[0][0].parse::<i64>().unwrap() > 0,
        "free-text actions store index -1"
    );

    // The runs export for a trainer.
    let out_file = dir.path().join("tw.jsonl");
    let (code, _, err) = leafe(&[
        "export",
        "--store",
        &store,
        "--runs",
        "tw.%",
        "--dataset",
        "rehearsal",
        "--format",
        "trl-messages",
        "--system-prompt",
        "You play a text adventure.",
        "--out",
        out_file.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");

    // Pass@k through the compiled-in adapter (`--env textworld:DIR`), on
    // the games made above.
    let (code, csv, err) = leafe_with(
        &[
            "eval",
            "--store",
            &store,
            "--env",
            &format!("textworld:{} --max-steps 12", games.display()),
            "--policy",
            "openai",
            "--base-url",
            &url,
            "--model",
            "random-admissible",
            "--levels",
            tasks.to_str().unwrap(),
            "--samples",
            "3",
            "--format",
            "csv",
        ],
        &[("LEAFE_PYTHON", python.as_str())],
    );
    assert_eq!(code, 0, "{err}");
    assert!(csv.starts_with("model,split,tasks,samples,pass@1"), "{csv}");
    assert!(
        csv.lines()
            .nth(1)
            .unwrap()
            .starts_with("random-admissible,test,2,3,"),
        "{csv}"
    );
    let rows = sql(
        &store,
        "SELECT COUNT(*) FROM llm_calls WHERE run_id LIKE 'eval-%'",
    );
    assert!(rows[0][0].parse::<i64>().unwrap() >= 6, "{rows:?}");
}

/// Opt-in, with a real model (docs/llm.md, "A real model"): set
/// `LEAFE_LLM_BASE_URL` (and `LEAFE_LLM_MODEL`) to a running
/// OpenAI-compatible server. The model plays four generated TextWorld games
/// as the policy and writes the reflections; then the same job is replayed
/// from the store's `llm_calls` without the server, and must match.
#[test]
fn a_real_model_plays_textworld_when_asked_to() {
    let Ok(url) = std::env::var("LEAFE_LLM_BASE_URL") else {
        eprintln!("note: LEAFE_LLM_BASE_URL unset; the real-model TextWorld test is skipped");
        return;
    };
    let model = std::env::var("LEAFE_LLM_MODEL").unwrap_or_else(|_| "default".into());
    let Some(python) = textworld_python("TextWorld") else {
        return;
    };
    let (dir, store) = local_store();
    let tasks = dir.path().join("tasks.txt");
    std::fs::write(&tasks, "1\n2\n3\n4\n").unwrap();
    let env = format!(
        "textworld:{} --max-steps 20",
        dir.path().join("games").display()
    );
    let vars = [("LEAFE_PYTHON", python.as_str())];
    let run = |run: &str, base_url: &str, replay: &str| {
        let started = std::time::Instant::now();
        let (code, out, err) = leafe_with(
            &[
                "explore",
                "--store",
                &store,
                "--env",
                &env,
                "--policy",
                "openai",
                "--base-url",
                base_url,
                "--model",
                &model,
                "--reflector",
                "llm",
                "--levels",
                tasks.to_str().unwrap(),
                "--run-id",
                run,
                "--budget",
                "80",
                "--llm-replay",
                replay,
            ],
            &vars,
        );
        assert_eq!(code, 0, "{err}");
        eprintln!("{out}{err}wall {:.1}s", started.elapsed().as_secs_f64());
        out
    };
    let live = run("live", &url, "off");
    let replayed = run("replayed", "http://127.0.0.1:9/v1", "only");
    let counts = |out: &str| {
        out.split("committed), ")
            .nth(1)
            .unwrap()
            .split(", rollbacks")
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(counts(&live), counts(&replayed));
    let rows = sql(
        &store,
        "SELECT kind, COUNT(*) AS calls, SUM(CAST(valid AS INT)) AS valid, ROUND(AVG(latency_ms)) AS ms \
         FROM llm_calls WHERE run_id LIKE 'live.%' GROUP BY kind ORDER BY kind",
    );
    eprintln!("llm_calls of the live run (kind, calls, valid, mean ms): {rows:?}");
    assert!(!rows.is_empty());
}
