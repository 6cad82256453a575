//! `leafe view`: its JSON answers over a store built here (a demo run, an
//! LLM run in an environment process through the scripted server, a run
//! whose every text is hostile), the HTTP server's guarantees (headers,
//! read-only, token, errors, many requests at once), the static export, the
//! v1 fixture store, and a browser (chromium through playwright-core)
//! clicking through the pages.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};

use leafe::policy::scripted::{completion, server};
use leafe::query::{QuerySession, load_query, register_inputs};
use leafe::store::Store;
use leafe::view::{Api, Params};
use serde_json::{Value, json};

use crate::common::{leafe, rt};

const PAYLOAD: &str = "<script>window.__pwned=1</script>";
const GO: &str = "<img src=x onerror=alert(1)>";
const HOSTILE_COMPLETION: &str =
    "<img src=x onerror=\"window.__pwned=4\"> javascript:window.__pwned=5";

struct Fixture {
    _dir: tempfile::TempDir,
    url: String,
    demo: String,
    llm: String,
    hostile: String,
}

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn user_text(req: &Value) -> String {
    req["messages"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .filter(|m| m["role"] == "user")
                .filter_map(|m| m["content"].as_str())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

fn is_reflection(req: &Value) -> bool {
    req["messages"][0]["content"]
        .as_str()
        .is_some_and(|s| s.contains("review failed attempts"))
}

/// The store every test here reads, built once.
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("store").display().to_string();
        let (code, out, err) = leafe(&["demo", "--store", &url, "--tasks", "12"]);
        assert_eq!(code, 0, "demo: {out}\n{err}");
        let ids = dir.path().join("ids.txt");
        std::fs::write(&ids, "1\n2\n3\n").unwrap();

        // An LLM in an environment process: left into the pit, a
        // reflection (by the rules), then right with the experience.
        let (llm_url, _) = server(Arc::new(|req: &Value, _| {
            let action = if user_text(req).contains("Experience from an earlier attempt") {
                "right"
            } else {
                "left"
            };
            (200, completion(&json!({ "action": action }).to_string()), 0)
        }));
        let corridor = format!("cmd:python3 {}", manifest().join("examples/corridor.py").display());
        let (code, _, err) = leafe(&[
            "explore", "--store", &url, "--env", &corridor, "--policy", "openai", "--base-url",
            &llm_url, "--model", "scripted", "--levels", ids.to_str().unwrap(), "--run-id",
            "llm-corridor", "--budget", "60",
        ]);
        assert_eq!(code, 0, "llm run: {err}");

        // Hostile text everywhere: observations, feedback, mistakes, an
        // action name, the completions and the LLM reflector's reflection.
        let (hostile_url, _) = server(Arc::new(|req: &Value, _| {
            if is_reflection(req) {
                let text = user_text(req);
                let tau: usize = text
                    .split("tau between ")
                    .nth(1)
                    .and_then(|r| r.split(' ').next())
                    .and_then(|x| x.parse().ok())
                    .unwrap_or(0);
                let reply = json!({ "tau": tau, "critical_action": "left",
                    "category": format!("cat{PAYLOAD}"), "irreversible": false,
                    "diagnosis": format!("diag {PAYLOAD} {GO}"),
                    "fix": "javascript:window.__pwned=6 <img src=x onerror=alert(3)>" });
                return (200, completion(&reply.to_string()), 0);
            }
            let action = if user_text(req).contains("Experience from an earlier attempt") {
                GO
            } else {
                "left"
            };
            let content = json!({ "action": action, "note": HOSTILE_COMPLETION }).to_string();
            (200, completion(&content), 0)
        }));
        let hostile_env = format!(
            "cmd:python3 {}",
            manifest().join("tests/browser/hostile_env.py").display()
        );
        let (code, _, err) = leafe(&[
            "explore", "--store", &url, "--env", &hostile_env, "--policy", "openai",
            "--reflector", "llm", "--base-url", &hostile_url, "--model", "scripted", "--levels",
            ids.to_str().unwrap(), "--run-id", "hostile", "--budget", "40",
        ]);
        assert_eq!(code, 0, "hostile run: {err}");

        let (_, csv, _) = leafe(&[
            "sql", "--store", &url, "--format", "csv",
            "SELECT run_id FROM episodes WHERE origin = 'branch' AND run_id LIKE 'demo%' GROUP BY run_id ORDER BY COUNT(*) DESC LIMIT 1",
        ]);
        let demo = csv.lines().nth(1).expect("the demo explored with branches").to_string();
        // A job's run id gets its chunk's suffix (`hostile.c00000`).
        let run_of = |prefix: &str| {
            let (_, csv, _) = leafe(&[
                "sql", "--store", &url, "--format", "csv",
                &format!("SELECT run_id FROM runs WHERE run_id LIKE '{prefix}%' ORDER BY run_id LIMIT 1"),
            ]);
            csv.lines().nth(1).unwrap_or_else(|| panic!("no run {prefix}")).to_string()
        };
        let (llm, hostile) = (run_of("llm-corridor"), run_of("hostile"));
        Fixture {
            _dir: dir,
            url,
            demo,
            llm,
            hostile,
        }
    })
}

fn params(pairs: &[(&str, &str)]) -> Params {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn api(f: &Fixture) -> Api {
    Api::new(Store::open(&f.url).unwrap(), None)
}

fn get(f: &Fixture, endpoint: &str, p: &[(&str, &str)]) -> Value {
    rt().block_on(api(f).get(endpoint, &params(p)))
        .unwrap_or_else(|e| panic!("{endpoint} {p:?}: {e}"))
}

fn get_err(f: &Fixture, endpoint: &str, p: &[(&str, &str)]) -> leafe::view::ApiError {
    rt().block_on(api(f).get(endpoint, &params(p)))
        .expect_err("an error")
}

/// Rows of SQL over the store, as JSON objects.
fn sql(f: &Fixture, query: &str) -> Vec<Value> {
    let (code, out, err) = leafe(&["sql", "--store", &f.url, "--format", "json", query]);
    assert_eq!(code, 0, "{query}: {err}");
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// (source, leaf, t) of the task's rows of counterfactual_pairs.sql and
/// rehearsal.sql, run here through the library (not the viewer).
fn training_rows(f: &Fixture, run: &str, task: &str) -> BTreeSet<(String, i64, i64)> {
    rt().block_on(async {
        let store = Store::open(&f.url).unwrap();
        let session = QuerySession::open(&store).await.unwrap();
        let mut out = BTreeSet::new();
        for (name, leaf) in [
            ("counterfactual_pairs", "episode_id"),
            ("rehearsal", "leaf_episode_id"),
        ] {
            let q = load_query(None, name).unwrap();
            let vals = BTreeMap::from([("run".to_string(), run.to_string())]);
            register_inputs(&session, &q, None, &vals).await.unwrap();
            let batches = session.collect(&q.bind(&vals).unwrap()).await.unwrap();
            for r in leafe::view::api::rows_json(&batches).unwrap() {
                if r["task_id"] == task && r["run_id"] == run {
                    let source = if name == "rehearsal" {
                        "rehearsal"
                    } else {
                        "counterfactual"
                    };
                    out.insert((
                        source.to_string(),
                        r[leaf].as_i64().unwrap(),
                        r["t"].as_i64().unwrap(),
                    ));
                }
            }
        }
        out
    })
}

/// The demo task with the most training rows (a tree with branches).
fn task_with_marks(f: &Fixture) -> String {
    let rows = sql(
        f,
        &format!(
            "SELECT task_id FROM episodes WHERE run_id = '{}' AND origin = 'branch' AND success \
             GROUP BY task_id ORDER BY COUNT(*) DESC, task_id LIMIT 1",
            f.demo
        ),
    );
    rows[0]["task_id"]
        .as_str()
        .expect("a task solved by a branch")
        .to_string()
}

#[test]
fn runs_list_every_committed_run_with_the_counts_sql_gives() {
    let f = fixture();
    let v = get(f, "runs", &[]);
    let rows = v["rows"].as_array().unwrap();
    for run in [&f.demo, &f.llm, &f.hostile] {
        let r = rows
            .iter()
            .find(|r| r["run_id"] == **run)
            .unwrap_or_else(|| panic!("{run}: {v}"));
        let want = &sql(
            f,
            &format!(
                "SELECT COUNT(*) AS episodes, COUNT(DISTINCT task_id) AS tasks, SUM(length) AS steps \
                 FROM episodes WHERE run_id = '{run}'"
            ),
        )[0];
        assert_eq!(r["episodes"], want["episodes"], "{run}");
        assert_eq!(r["tasks"], want["tasks"], "{run}");
        assert_eq!(r["steps"], want["steps"], "{run}");
        assert!(r["config_json"].is_string(), "{r}");
    }
}

#[test]
fn tasks_are_paged_filtered_and_sorted_and_bad_filters_refused_in_one_line() {
    let f = fixture();
    let run = f.demo.as_str();
    let all = get(f, "tasks", &[("run", run)]);
    let total = all["total"].as_i64().unwrap();
    let want = sql(
        f,
        &format!("SELECT COUNT(DISTINCT task_id) AS n FROM episodes WHERE run_id = '{run}'"),
    );
    assert_eq!(total, want[0]["n"].as_i64().unwrap());
    // The outcomes partition the tasks.
    let by_outcome: i64 = ["root", "rollback", "unsolved", "env_error"]
        .iter()
        .map(|o| {
            get(f, "tasks", &[("run", run), ("outcome", o)])["total"]
                .as_i64()
                .unwrap()
        })
        .sum();
    assert_eq!(by_outcome, total);
    // Paging: pages of 5 cover every task once.
    let mut seen = BTreeSet::new();
    for page in 0.. {
        let p = get(
            f,
            "tasks",
            &[
                ("run", run),
                ("page", &page.to_string()),
                ("page_size", "5"),
            ],
        );
        assert_eq!(p["total"].as_i64().unwrap(), total, "page {page}");
        for r in p["rows"].as_array().unwrap() {
            assert!(seen.insert(r["task_id"].as_str().unwrap().to_string()));
            assert_eq!(r.as_object().unwrap().len(), 13, "a task row: {r}");
        }
        if p["more"] != true {
            break;
        }
    }
    assert_eq!(seen.len() as i64, total);
    // A page past the end: no row, and still the number of tasks.
    let past = get(
        f,
        "tasks",
        &[("run", run), ("page", "1000"), ("page_size", "5")],
    );
    assert_eq!(past["rows"].as_array().unwrap().len(), 0);
    assert_eq!(past["total"].as_i64().unwrap(), total);
    // The free condition: tasks with an episode that matches it.
    let deep = get(
        f,
        "tasks",
        &[("run", run), ("where", "depth >= 1 AND success")],
    );
    let want = sql(
        f,
        &format!(
            "SELECT COUNT(DISTINCT task_id) AS n FROM episodes WHERE run_id = '{run}' AND depth >= 1 AND success"
        ),
    );
    assert_eq!(deep["total"], want[0]["n"]);
    // Sorted by episodes, most first.
    let sorted = get(
        f,
        "tasks",
        &[("run", run), ("sort", "episodes"), ("dir", "desc")],
    );
    let eps: Vec<i64> = sorted["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["episodes"].as_i64().unwrap())
        .collect();
    assert!(eps.windows(2).all(|w| w[0] >= w[1]), "{eps:?}");
    // Refusals: a status and one line.
    for (key, bad) in [
        ("where", "1=1; DROP TABLE episodes"),
        ("where", "success) UNION SELECT * FROM steps --"),
        ("where", "episode_id IN (SELECT episode_id FROM steps)"),
        ("where", "observation LIKE '%'"),
        ("where", "depth + 1"),
        ("sort", "random()"),
        ("outcome", "maybe"),
        ("page_size", "100000"),
    ] {
        let e = get_err(f, "tasks", &[("run", run), (key, bad)]);
        assert_eq!(e.status, 400, "{key}={bad}: {e}");
        assert!(!e.message.contains('\n'), "{e}");
    }
    let e = get_err(f, "tasks", &[("run", "no-such-run")]);
    assert_eq!(e.status, 404);
    assert!(e.message.contains("no-such-run"), "{e}");
}

#[test]
fn the_tree_holds_every_episode_of_the_task_and_marks_what_training_selects() {
    let f = fixture();
    let task = task_with_marks(f);
    let tree = get(f, "tree", &[("run", &f.demo), ("task", &task)]);
    let n = sql(
        f,
        &format!(
            "SELECT COUNT(*) AS n FROM episodes WHERE run_id = '{}' AND task_id = '{task}'",
            f.demo
        ),
    );
    assert_eq!(
        tree["nodes"].as_array().unwrap().len() as i64,
        n[0]["n"].as_i64().unwrap()
    );
    let marks: BTreeSet<(String, i64, i64)> = tree["marks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["source"].as_str().unwrap().to_string(),
                m["leaf"].as_i64().unwrap(),
                m["t"].as_i64().unwrap(),
            )
        })
        .collect();
    let want = training_rows(f, &f.demo, &task);
    assert!(!want.is_empty());
    assert_eq!(marks, want);
    // A branch's edge carries its reflection.
    let branch = tree["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["origin"] == "branch")
        .unwrap();
    assert!(
        branch["category"].is_string() && branch["tau"].is_i64(),
        "{branch}"
    );
    let e = get_err(f, "tree", &[("run", &f.demo), ("task", "no-such-task")]);
    assert_eq!(e.status, 404);
}

#[test]
fn an_llm_step_shows_the_call_behind_it_and_episodes_page_their_steps() {
    let f = fixture();
    let rows = sql(
        f,
        &format!(
            "SELECT episode_id, t, llm_call_id FROM steps WHERE run_id = '{}' AND llm_call_id IS NOT NULL ORDER BY episode_id, t LIMIT 1",
            f.llm
        ),
    );
    let (ep, call) = (
        rows[0]["episode_id"].as_i64().unwrap(),
        rows[0]["llm_call_id"].as_i64().unwrap(),
    );
    let c = get(
        f,
        "llm_call",
        &[("run", &f.llm), ("call", &call.to_string())],
    );
    let first = &c["rows"][0];
    assert!(
        first["completion"].as_str().unwrap().contains("action"),
        "{c}"
    );
    assert!(
        first["messages"].as_str().unwrap().contains("system"),
        "{c}"
    );
    let e = get(
        f,
        "episode",
        &[("run", &f.llm), ("episode", &ep.to_string())],
    );
    assert_eq!(e["episode"]["episode_id"], ep);
    let steps = get(
        f,
        "steps",
        &[
            ("run", &f.llm),
            ("episode", &ep.to_string()),
            ("limit", "2"),
        ],
    );
    assert_eq!(
        steps["rows"].as_array().unwrap().len(),
        2.min(e["episode"]["length"].as_i64().unwrap() as usize)
    );
    for (endpoint, p) in [
        (
            "episode",
            vec![("run", f.llm.as_str()), ("episode", "999999")],
        ),
        (
            "llm_call",
            vec![("run", f.llm.as_str()), ("call", "999999")],
        ),
        (
            "episode",
            vec![("run", f.llm.as_str()), ("episode", "seven")],
        ),
        ("nope", vec![]),
    ] {
        let e = get_err(f, endpoint, &p);
        assert!(e.status == 404 || e.status == 400, "{endpoint}: {e}");
    }
}

#[test]
fn hostile_text_comes_back_exactly_as_stored() {
    let f = fixture();
    let rows = sql(
        f,
        &format!(
            "SELECT e.task_id, s.episode_id, s.t, s.observation, s.action_text FROM steps s JOIN episodes e \
             ON e.run_id = s.run_id AND e.episode_id = s.episode_id WHERE s.run_id = '{}' AND e.origin = 'branch' \
             ORDER BY s.episode_id, s.t LIMIT 1",
            f.hostile
        ),
    );
    let r = &rows[0];
    assert!(r["observation"].as_str().unwrap().contains(PAYLOAD));
    let steps = get(
        f,
        "steps",
        &[
            ("run", &f.hostile),
            ("episode", &r["episode_id"].to_string()),
            ("from_t", &r["t"].to_string()),
        ],
    );
    assert_eq!(steps["rows"][0]["observation"], r["observation"]);
    assert_eq!(steps["rows"][0]["action_text"], GO);
    let ep = get(
        f,
        "episode",
        &[
            ("run", &f.hostile),
            ("episode", &r["episode_id"].to_string()),
        ],
    );
    assert!(
        ep["episode"]["diagnosis"]
            .as_str()
            .unwrap()
            .contains(PAYLOAD),
        "{ep}"
    );
}

#[test]
fn the_v1_fixture_store_opens() {
    let store = Store::open(
        &manifest()
            .join("tests/fixtures/store-v1")
            .display()
            .to_string(),
    )
    .unwrap();
    let api = Api::new(store, None);
    rt().block_on(async {
        let runs = api.get("runs", &Params::new()).await.unwrap();
        let run = runs["rows"][0]["run_id"].as_str().unwrap().to_string();
        let tasks = api.get("tasks", &params(&[("run", &run)])).await.unwrap();
        let task = tasks["rows"][0]["task_id"].as_str().unwrap().to_string();
        let tree = api
            .get("tree", &params(&[("run", &run), ("task", &task)]))
            .await
            .unwrap();
        let ep = tree["nodes"][0]["episode_id"].to_string();
        api.get("episode", &params(&[("run", &run), ("episode", &ep)]))
            .await
            .unwrap();
        api.get("steps", &params(&[("run", &run), ("episode", &ep)]))
            .await
            .unwrap();
        api.get("patterns", &Params::new()).await.unwrap();
    });
}

// ------------------------------------------------------------------ HTTP

struct ViewServer {
    child: Child,
    base: String,
    token: Option<String>,
}

impl Drop for ViewServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_view(f: &Fixture, extra: &[&str]) -> ViewServer {
    use assert_cmd::cargo::CommandCargoExt;
    let mut child = Command::cargo_bin("leafe")
        .unwrap()
        .args(["view", "--store", &f.url])
        .args(extra)
        .env_remove("LEAFE_VIEW_TOKEN")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .split(" at ")
        .nth(1)
        .unwrap_or_else(|| panic!("no URL in `{line}`"))
        .trim()
        .to_string();
    let (base, token) = match url.split_once("/?token=") {
        Some((b, t)) => (b.to_string(), Some(t.to_string())),
        None => (url.trim_end_matches('/').to_string(), None),
    };
    ViewServer { child, base, token }
}

/// One raw HTTP/1.1 request: (status, headers lower-cased, body).
fn http(base: &str, method: &str, target: &str, headers: &[&str]) -> (u16, String, String) {
    let host = base.trim_start_matches("http://");
    let mut s = TcpStream::connect(host.replace("0.0.0.0", "127.0.0.1")).unwrap();
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head.to_ascii_lowercase(), body.to_string())
}

#[test]
fn the_server_is_read_only_sends_a_strict_csp_and_answers_errors_with_a_status() {
    let f = fixture();
    let v = start_view(f, &["--addr", "127.0.0.1:0"]);
    assert!(v.token.is_none(), "loopback needs no token");
    let (status, head, body) = http(&v.base, "GET", "/", &[]);
    assert_eq!(status, 200);
    let csp = head
        .lines()
        .find(|l| l.starts_with("content-security-policy:"))
        .unwrap();
    assert!(
        csp.contains("script-src 'self'")
            && !csp.contains("unsafe-inline")
            && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    assert!(!body.contains("<script>"), "no inline script: {body}");
    let handler = body
        .split(|c: char| c.is_whitespace() || c == '<')
        .find(|w| w.starts_with("on") && w.contains('='));
    assert!(handler.is_none(), "no inline handler: {handler:?}");
    for asset in [
        "/app.js",
        "/tree.js",
        "/dom.js",
        "/style.css",
        "/vendor/d3-hierarchy.min.mjs",
        "/vendor/d3-hierarchy.LICENSE",
    ] {
        assert_eq!(http(&v.base, "GET", asset, &[]).0, 200, "{asset}");
    }
    for method in ["POST", "PUT", "DELETE"] {
        let (status, _, body) = http(&v.base, method, "/api/runs", &[]);
        assert_eq!(status, 405, "{method}: {body}");
    }
    let (status, _, body) = http(&v.base, "GET", "/api/tasks?run=no-such-run", &[]);
    assert_eq!(status, 404, "{body}");
    assert!(
        serde_json::from_str::<Value>(&body).unwrap()["error"]
            .as_str()
            .unwrap()
            .contains("no-such-run")
    );
    let (status, _, body) = http(
        &v.base,
        "GET",
        &format!(
            "/api/tasks?run={}&where=1%3D1%3B%20DROP%20TABLE%20x",
            f.demo
        ),
        &[],
    );
    assert_eq!(status, 400, "{body}");
    // Many requests at once, all answered.
    let base = v.base.clone();
    let demo = f.demo.clone();
    let handles: Vec<_> = (0..12)
        .map(|i| {
            let (base, demo) = (base.clone(), demo.clone());
            std::thread::spawn(move || {
                let target = match i % 3 {
                    0 => "/api/runs".to_string(),
                    1 => format!("/api/tasks?run={demo}"),
                    _ => "/api/patterns".to_string(),
                };
                http(&base, "GET", &target, &[]).0
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 200);
    }
}

#[test]
fn another_address_than_loopback_requires_the_token_on_every_request() {
    let f = fixture();
    let v = start_view(f, &["--addr", "0.0.0.0:0"]);
    let token = v
        .token
        .clone()
        .expect("a generated token in the printed URL");
    assert!(token.len() >= 32);
    assert_eq!(http(&v.base, "GET", "/", &[]).0, 401);
    assert_eq!(http(&v.base, "GET", "/api/runs", &[]).0, 401);
    assert_eq!(http(&v.base, "GET", "/api/runs?token=wrong", &[]).0, 401);
    let (status, head, _) = http(&v.base, "GET", &format!("/?token={token}"), &[]);
    assert_eq!(status, 200);
    assert!(head.contains("set-cookie: leafe_view_token="), "{head}");
    let cookie = format!("Cookie: leafe_view_token={token}");
    assert_eq!(http(&v.base, "GET", "/api/runs", &[&cookie]).0, 200);
    let bearer = format!("Authorization: Bearer {token}");
    assert_eq!(http(&v.base, "GET", "/app.js", &[&bearer]).0, 200);
}

#[test]
fn export_writes_the_views_as_static_files() {
    let f = fixture();
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("site");
    let (code, stdout, err) = leafe(&[
        "view",
        "--store",
        &f.url,
        "--export",
        dir.to_str().unwrap(),
        "--runs",
        &f.llm,
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("exported 1 run(s)"), "{stdout}");
    let index = std::fs::read_to_string(dir.join("index.html")).unwrap();
    assert!(index.contains(r#"content="static""#));
    let hex = |s: &str| leafe::view::export::hex(s);
    let tasks: Value = serde_json::from_slice(
        &std::fs::read(dir.join(format!("data/tasks/{}.json", hex(&f.llm)))).unwrap(),
    )
    .unwrap();
    let want = get(f, "tasks", &[("run", &f.llm)]);
    assert_eq!(
        tasks["rows"].as_array().unwrap().len() as i64,
        want["total"].as_i64().unwrap()
    );
    let task = tasks["rows"][0]["task_id"].as_str().unwrap();
    let tree: Value = serde_json::from_slice(
        &std::fs::read(dir.join(format!("data/tree/{}/{}.json", hex(&f.llm), hex(task)))).unwrap(),
    )
    .unwrap();
    assert_eq!(tree, get(f, "tree", &[("run", &f.llm), ("task", task)]));
    assert!(dir.join("vendor/d3-hierarchy.LICENSE").exists());
    let (code, _, err) = leafe(&[
        "view",
        "--store",
        &f.url,
        "--export",
        dir.to_str().unwrap(),
        "--runs",
        "none-such",
    ]);
    assert_eq!(code, 1, "{err}");
}

// --------------------------------------------------------------- browser

fn browser_tools() -> Result<(PathBuf, PathBuf), String> {
    let chromium =
        PathBuf::from(std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()));
    if !chromium.exists() {
        return Err(format!(
            "{} not found (apt-get install chromium)",
            chromium.display()
        ));
    }
    if Command::new("node").arg("--version").output().is_err() {
        return Err("node not found".into());
    }
    let dir = manifest().join("tests/browser");
    if !dir.join("node_modules/playwright-core").exists() {
        return Err(
            "tests/browser/node_modules/playwright-core missing (npm ci in tests/browser)".into(),
        );
    }
    Ok((chromium, dir))
}

#[test]
fn a_browser_clicks_through_every_page_and_no_hostile_payload_runs() {
    let (chromium, dir) = match browser_tools() {
        Ok(t) => t,
        Err(why) => {
            assert!(
                std::env::var("CI").is_err(),
                "CI must run the browser test: {why}"
            );
            eprintln!("note: browser test skipped: {why}");
            return;
        }
    };
    let f = fixture();
    let task = task_with_marks(f);
    let episodes = sql(
        f,
        &format!(
            "SELECT COUNT(*) AS n FROM episodes WHERE run_id = '{}' AND task_id = '{task}'",
            f.demo
        ),
    )[0]["n"]
        .as_i64()
        .unwrap();
    let marks: Vec<Value> = training_rows(f, &f.demo, &task)
        .into_iter()
        .map(|(s, leaf, t)| json!([s, leaf, t]))
        .collect();
    let branch = sql(
        f,
        &format!(
            "SELECT episode_id FROM episodes WHERE run_id = '{}' AND task_id = '{task}' AND origin = 'branch' ORDER BY success DESC, episode_id LIMIT 1",
            f.demo
        ),
    )[0]["episode_id"]
        .as_i64()
        .unwrap();
    let llm = &sql(
        f,
        &format!(
            "SELECT episode_id, t FROM steps WHERE run_id = '{}' AND llm_call_id IS NOT NULL ORDER BY episode_id, t LIMIT 1",
            f.llm
        ),
    )[0];
    let hostile = &sql(
        f,
        &format!(
            "SELECT task_id, episode_id FROM episodes WHERE run_id = '{}' AND origin = 'branch' ORDER BY episode_id LIMIT 1",
            f.hostile
        ),
    )[0];
    let v = start_view(f, &["--addr", "127.0.0.1:0"]);
    let shots = PathBuf::from(
        std::env::var("CARGO_TARGET_DIR")
            .unwrap_or_else(|_| manifest().join("target").display().to_string()),
    )
    .join("view-screenshots");
    let work = tempfile::tempdir().unwrap();
    let expect = json!({
        "url": format!("{}/", v.base),
        "runs": [f.demo, f.llm, f.hostile],
        "tree": { "run": f.demo, "task": task, "episodes": episodes, "marks": marks },
        "branch": { "run": f.demo, "episode": branch },
        "llm": { "run": f.llm, "episode": llm["episode_id"], "t": llm["t"] },
        "hostile": { "run": f.hostile, "task": hostile["task_id"], "episode": hostile["episode_id"] },
        "compare_with": f.llm,
        "payloads": [PAYLOAD, GO],
    });
    let expect_path = work.path().join("expect.json");
    std::fs::write(&expect_path, expect.to_string()).unwrap();
    let out = Command::new("node")
        .arg(dir.join("view.mjs"))
        .current_dir(&dir)
        .env("VIEW_EXPECT", &expect_path)
        .env("VIEW_SHOTS", &shots)
        .env("CHROMIUM", &chromium)
        .output()
        .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "browser checks failed:\n{text}");
    assert!(text.contains("all browser checks passed"), "{text}");
    eprintln!("screenshots in {}", shots.display());
    assert!(Path::new(&shots.join("tree.png")).exists());
}
