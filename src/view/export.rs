//! `leafe view --export DIR --runs PATTERN`: the viewer's pages and the
//! JSON answers they would ask for, as static files that any file server
//! or bucket serves (no leafe process behind them).
//!
//! Layout under DIR: the assets (`index.html` marked static), and under
//! `data/` one file per answer, named as the page asks for it in static
//! mode (run and task ids hex-encoded, so any id is a safe file name):
//! `runs.json`, `patterns.json`, `tasks/RUN.json` (every task; the page
//! filters, sorts and pages them itself), `tree/RUN/TASK.json`,
//! `episode/RUN/EP.json`, `steps/RUN/EP.json` (every step),
//! `llm_call/RUN/CALL.json`, `report/RUN.json`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::{Value, json};

use super::api::{Api, MAX_PAGE, Params};
use super::assets::ASSETS;

/// What an export wrote.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    /// Runs exported.
    pub runs: usize,
    /// Task trees exported.
    pub tasks: usize,
    /// Episodes exported (with all their steps).
    pub episodes: usize,
    /// Files written.
    pub files: usize,
}

/// The file-name form of an id: its UTF-8 bytes in hex (the page does the same).
pub fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn params(pairs: &[(&str, &str)]) -> Params {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

struct Writer {
    root: PathBuf,
    files: usize,
}

impl Writer {
    fn write(&mut self, rel: &str, bytes: &[u8]) -> anyhow::Result<()> {
        let path = self.root.join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
        self.files += 1;
        Ok(())
    }

    fn json(&mut self, rel: &str, v: &Value) -> anyhow::Result<()> {
        self.write(rel, v.to_string().as_bytes())
    }
}

async fn get(api: &Api, endpoint: &str, p: &Params) -> anyhow::Result<Value> {
    api.get(endpoint, p)
        .await
        .map_err(|e| anyhow::anyhow!("{endpoint}: {}", e.message))
}

/// Writes the static copy of the runs matching `runs` to `dir` (a local
/// directory, created if needed).
pub async fn export(api: &Api, dir: &Path, runs: &str) -> anyhow::Result<ExportSummary> {
    let mut w = Writer {
        root: dir.to_path_buf(),
        files: 0,
    };
    for (name, bytes, _) in ASSETS {
        if *name == "index.html" {
            let html = String::from_utf8_lossy(bytes).replace(
                r#"<meta name="leafe-mode" content="server">"#,
                r#"<meta name="leafe-mode" content="static">"#,
            );
            w.write(name, html.as_bytes())?;
        } else {
            w.write(name, bytes)?;
        }
    }
    let mut summary = ExportSummary::default();
    let list = get(api, "runs", &params(&[("runs", runs)])).await?;
    w.json("data/runs.json", &list)?;
    let patterns = get(api, "patterns", &params(&[("runs", runs)])).await?;
    w.json("data/patterns.json", &patterns)?;
    let reflections = get(api, "reflections", &params(&[("runs", runs)])).await?;
    w.json("data/reflections.json", &reflections)?;
    for run in list["reports"].as_array().into_iter().flatten() {
        let Some(run) = run.as_str() else { continue };
        let report = get(api, "report", &params(&[("run", run)])).await?;
        w.json(&format!("data/report/{}.json", hex(run)), &report)?;
    }
    for r in list["rows"].as_array().into_iter().flatten() {
        let Some(run) = r["run_id"].as_str() else {
            continue;
        };
        summary.runs += 1;
        let h = hex(run);
        let mut tasks = Vec::new();
        for page in 0.. {
            let page = page.to_string();
            let size = MAX_PAGE.to_string();
            let got = get(
                api,
                "tasks",
                &params(&[("run", run), ("page", &page), ("page_size", &size)]),
            )
            .await?;
            tasks.extend(got["rows"].as_array().cloned().unwrap_or_default());
            if got["more"] != Value::Bool(true) {
                break;
            }
        }
        let task_ids: Vec<String> = tasks
            .iter()
            .filter_map(|t| t["task_id"].as_str().map(str::to_string))
            .collect();
        w.json(
            &format!("data/tasks/{h}.json"),
            &json!({ "run": run, "rows": tasks, "query": "queries/view_tasks.sql" }),
        )?;
        let mut calls = BTreeSet::new();
        for task in &task_ids {
            let tree = get(api, "tree", &params(&[("run", run), ("task", task)])).await?;
            w.json(&format!("data/tree/{h}/{}.json", hex(task)), &tree)?;
            summary.tasks += 1;
            for node in tree["nodes"].as_array().into_iter().flatten() {
                let Some(ep) = node["episode_id"].as_i64() else {
                    continue;
                };
                let eps = ep.to_string();
                let episode =
                    get(api, "episode", &params(&[("run", run), ("episode", &eps)])).await?;
                w.json(&format!("data/episode/{h}/{ep}.json"), &episode)?;
                let mut steps = Vec::new();
                let mut from = 0i64;
                loop {
                    let f = from.to_string();
                    let size = MAX_PAGE.to_string();
                    let got = get(
                        api,
                        "steps",
                        &params(&[
                            ("run", run),
                            ("episode", &eps),
                            ("from_t", &f),
                            ("limit", &size),
                        ]),
                    )
                    .await?;
                    let rows = got["rows"].as_array().cloned().unwrap_or_default();
                    from = rows
                        .last()
                        .and_then(|s| s["t"].as_i64())
                        .map_or(from, |t| t + 1);
                    steps.extend(rows);
                    if got["more"] != Value::Bool(true) {
                        break;
                    }
                }
                for s in &steps {
                    if let Some(c) = s["llm_call_id"].as_i64() {
                        calls.insert(c);
                    }
                }
                for r in episode["reflections"].as_array().into_iter().flatten() {
                    if let Some(c) = r["llm_call_id"].as_i64() {
                        calls.insert(c);
                    }
                }
                w.json(
                    &format!("data/steps/{h}/{ep}.json"),
                    &json!({ "run": run, "episode": ep, "from_t": 0, "rows": steps, "more": false }),
                )?;
                summary.episodes += 1;
            }
        }
        for c in calls {
            let cs = c.to_string();
            let call = get(api, "llm_call", &params(&[("run", run), ("call", &cs)])).await?;
            w.json(&format!("data/llm_call/{h}/{c}.json"), &call)?;
        }
    }
    summary.files = w.files;
    Ok(summary)
}
