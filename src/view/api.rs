//! The viewer's JSON answers: each one runs `queries/view_*.sql` (or the
//! report's query files) through a [`QuerySession`] under the process's
//! memory limit and turns the rows into JSON. The server and the static
//! export both call [`Api::get`], so the two show the same data.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use arrow::record_batch::RecordBatch;
use serde_json::{Map, Value, json};

use crate::query::{QueryError, QuerySession, load_query, register_inputs};
use crate::store::Store;

use super::filter::check_condition;

/// Largest page a request may ask for.
pub const MAX_PAGE: usize = 500;

/// Why a request got no answer: an HTTP status and one line for the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status (400 bad request, 404 unknown, 500/503 store trouble).
    pub status: u16,
    /// One line saying what is wrong.
    pub message: String,
}

impl ApiError {
    pub(crate) fn bad(message: impl Into<String>) -> ApiError {
        ApiError {
            status: 400,
            message: message.into(),
        }
    }

    pub(crate) fn not_found(message: impl Into<String>) -> ApiError {
        ApiError {
            status: 404,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.status)
    }
}

fn one_line(s: impl ToString) -> String {
    s.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> ApiError {
        let status = match &e {
            QueryError::Store(_) => 503,
            QueryError::BadParam { .. } | QueryError::UnknownParam { .. } => 400,
            QueryError::OutOfMemory { .. } => 503,
            _ => 500,
        };
        ApiError {
            status,
            message: one_line(e),
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> ApiError {
        ApiError {
            status: 503,
            message: one_line(e),
        }
    }
}

/// A request's parameters (the query string), by name.
pub type Params = BTreeMap<String, String>;

/// The rows of a query result as JSON objects (nulls explicit; timestamps
/// as RFC 3339 text).
pub fn rows_json(batches: &[RecordBatch]) -> Result<Vec<Value>, ApiError> {
    let mut buf = Vec::new();
    {
        let mut w = arrow::json::WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, arrow::json::writer::JsonArray>(&mut buf);
        for b in batches {
            w.write(b).map_err(|e| ApiError {
                status: 500,
                message: format!("encoding rows as JSON: {}", one_line(e)),
            })?;
        }
        w.finish().map_err(|e| ApiError {
            status: 500,
            message: format!("encoding rows as JSON: {}", one_line(e)),
        })?;
    }
    if buf.is_empty() {
        return Ok(Vec::new());
    }
    match serde_json::from_slice(&buf) {
        Ok(Value::Array(rows)) => Ok(rows),
        _ => Err(ApiError {
            status: 500,
            message: "encoding rows as JSON produced no array".into(),
        }),
    }
}

/// The viewer's data source: a store and where query files come from.
#[derive(Clone)]
pub struct Api {
    store: Store,
    queries: Option<PathBuf>,
}

fn param<'a>(p: &'a Params, name: &str) -> Result<&'a str, ApiError> {
    p.get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::bad(format!("missing parameter `{name}`")))
}

fn int_param(p: &Params, name: &str, default: Option<i64>) -> Result<i64, ApiError> {
    match p.get(name).filter(|v| !v.is_empty()) {
        None => default.ok_or_else(|| ApiError::bad(format!("missing parameter `{name}`"))),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| ApiError::bad(format!("parameter `{name}`: `{v}` is not an integer"))),
    }
}

fn values(pairs: &[(&str, String)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn str_of(row: &Value, col: &str) -> Option<String> {
    match &row[col] {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        v => Some(v.to_string()),
    }
}

impl Api {
    /// A data source over `store`; `queries` is a directory whose
    /// `NAME.sql` files replace the embedded ones.
    pub fn new(store: Store, queries: Option<PathBuf>) -> Api {
        Api { store, queries }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    async fn session(&self) -> Result<QuerySession, ApiError> {
        Ok(QuerySession::open(&self.store).await?)
    }

    /// Runs query file `name` with `params` (inputs registered with the
    /// same values) and returns its rows.
    async fn rows(
        &self,
        session: &QuerySession,
        name: &str,
        params: &[(&str, String)],
    ) -> Result<Vec<Value>, ApiError> {
        let q = load_query(self.queries.as_deref(), name)?;
        let vals = values(params);
        register_inputs(session, &q, self.queries.as_deref(), &vals).await?;
        let own: BTreeMap<String, String> = vals
            .into_iter()
            .filter(|(k, _)| q.params.iter().any(|p| &p.name == k))
            .collect();
        let batches = session.collect(&q.bind(&own)?).await?;
        rows_json(&batches)
    }

    /// Whether `run` is a committed run of the store; a 404 naming it if not.
    async fn check_run(&self, run: &str) -> Result<(), ApiError> {
        let commits = self.store.commits().await?;
        if commits.iter().any(|m| m.run_id == run) {
            return Ok(());
        }
        let pending = self.store.runs().await?;
        if pending.iter().any(|r| r.run_id == run) {
            return Err(ApiError::not_found(format!(
                "run `{run}` has not committed (still running, or crashed): its rows are not visible yet"
            )));
        }
        Err(ApiError::not_found(format!(
            "no run `{run}` in {}",
            self.store.url()
        )))
    }

    /// Answers one endpoint: `runs`, `tasks`, `tree`, `episode`, `steps`,
    /// `llm_call`, `reflections`, `patterns`, `report`.
    pub async fn get(&self, endpoint: &str, p: &Params) -> Result<Value, ApiError> {
        match endpoint {
            "runs" => self.runs(p).await,
            "tasks" => self.tasks(p).await,
            "tree" => self.tree(p).await,
            "episode" => self.episode(p).await,
            "steps" => self.steps(p).await,
            "llm_call" => self.llm_call(p).await,
            "reflections" => self.reflections(p).await,
            "patterns" => self.patterns(p).await,
            "report" => self.report(p).await,
            other => Err(ApiError::not_found(format!(
                "no endpoint `{other}` (runs, tasks, tree, episode, steps, llm_call, reflections, patterns, report)"
            ))),
        }
    }

    async fn runs(&self, p: &Params) -> Result<Value, ApiError> {
        let pattern = p.get("runs").cloned().unwrap_or_else(|| "%".into());
        let session = self.session().await?;
        let rows = self
            .rows(&session, "view_runs", &[("run", pattern.clone())])
            .await?;
        let uncommitted: Vec<Value> = self
            .store
            .runs()
            .await?
            .into_iter()
            .filter(|r| !r.committed)
            .map(|r| {
                json!({
                    "run_id": r.run_id,
                    "kind": r.kind,
                    "created_at_us": r.created_at_us,
                })
            })
            .collect();
        let reports: Vec<Value> = {
            let mut out = Vec::new();
            for r in &rows {
                if let Some(run) = str_of(r, "run_id")
                    && self
                        .store
                        .report_file(&run, "results.json")
                        .await
                        .ok()
                        .flatten()
                        .is_some()
                {
                    out.push(Value::String(run));
                }
            }
            out
        };
        Ok(json!({
            "store": self.store.url(),
            "rows": rows,
            "uncommitted": uncommitted,
            "reports": reports,
            "query": "queries/view_runs.sql",
        }))
    }

    async fn tasks(&self, p: &Params) -> Result<Value, ApiError> {
        /// The column that carries the number of rows of the whole result.
        const TOTAL: &str = "leafe_total_rows";
        const SORTABLE: [&str; 10] = [
            "task_id",
            "outcome",
            "episodes",
            "branches",
            "max_depth",
            "steps",
            "env_steps",
            "reflections",
            "first_category",
            "first_episode_id",
        ];
        let run = param(p, "run")?.to_string();
        let outcome = p
            .get("outcome")
            .filter(|v| !v.is_empty())
            .cloned()
            .unwrap_or_else(|| "any".into());
        if !["any", "root", "rollback", "unsolved", "env_error"].contains(&outcome.as_str()) {
            return Err(ApiError::bad(format!(
                "outcome `{outcome}`: expected any, root, rollback, unsolved or env_error"
            )));
        }
        let category = p
            .get("category")
            .filter(|v| !v.is_empty())
            .cloned()
            .unwrap_or_else(|| "any".into());
        let min_depth = int_param(p, "min_depth", Some(0))?;
        let sort = p
            .get("sort")
            .filter(|v| !v.is_empty())
            .cloned()
            .unwrap_or_else(|| "task_id".into());
        if !SORTABLE.contains(&sort.as_str()) {
            return Err(ApiError::bad(format!(
                "sort `{sort}`: expected one of {}",
                SORTABLE.join(", ")
            )));
        }
        let dir = match p.get("dir").map(String::as_str).unwrap_or("asc") {
            "" | "asc" => "ASC",
            "desc" => "DESC",
            other => {
                return Err(ApiError::bad(format!(
                    "dir `{other}`: expected asc or desc"
                )));
            }
        };
        let page = int_param(p, "page", Some(0))?;
        let size = int_param(p, "page_size", Some(50))?;
        if page < 0 || !(1..=MAX_PAGE as i64).contains(&size) {
            return Err(ApiError::bad(format!(
                "page {page}, page_size {size}: a page is >= 0 and its size 1..={MAX_PAGE}"
            )));
        }
        let condition = match p.get("where").map(|s| s.trim()).filter(|s| !s.is_empty()) {
            None => None,
            Some(c) => Some(check_condition(c).map_err(ApiError::bad)?),
        };
        self.check_run(&run).await?;
        let session = self.session().await?;
        // The free condition wraps view_episode_filter's rows and replaces
        // it as the input view_tasks reads.
        let filter = load_query(self.queries.as_deref(), "view_episode_filter")?;
        let mut bound = filter.bind(&values(&[("run", run.clone())]))?;
        if let Some(c) = &condition {
            bound.sql = format!("SELECT * FROM ({}) AS e WHERE {c}", bound.sql);
            bound.source_name = format!("the condition `{c}`");
        }
        let map_cond = |e: QueryError| -> ApiError {
            match (&condition, e) {
                (Some(_), QueryError::Sql { message, .. }) => ApiError::bad(format!(
                    "the condition is not a boolean expression over episode columns: {message}"
                )),
                (_, e) => e.into(),
            }
        };
        session
            .register_view("view_episode_filter", &bound)
            .await
            .map_err(map_cond)?;
        let q = load_query(self.queries.as_deref(), "view_tasks")?;
        let query = q.bind(&values(&[
            ("run", run.clone()),
            ("outcome", outcome.clone()),
            ("category", category.clone()),
            ("min_depth", min_depth.to_string()),
        ]))?;
        // One pass gives the page and the number of rows: the count rides
        // on every row as a window over the whole result.
        let paged = crate::query::BoundQuery {
            source_name: query.source_name.clone(),
            sql: format!(
                "SELECT * FROM (SELECT q.*, COUNT(*) OVER () AS {TOTAL} FROM ({}) AS q) AS q \
                 ORDER BY {sort} {dir}, task_id LIMIT {} OFFSET {}",
                query.sql,
                size + 1,
                page * size
            ),
        };
        let mut rows = rows_json(&session.collect(&paged).await.map_err(map_cond)?)?;
        let mut total = rows.first().and_then(|r| r[TOTAL].as_i64());
        if total.is_none() && page > 0 {
            // A page past the end has no row to carry the count.
            let counted = crate::query::BoundQuery {
                source_name: query.source_name.clone(),
                sql: format!("SELECT COUNT(*) AS n FROM ({}) AS q", query.sql),
            };
            total = rows_json(&session.collect(&counted).await.map_err(map_cond)?)?
                .first()
                .and_then(|r| r["n"].as_i64());
        }
        let total = total.unwrap_or(0);
        for r in &mut rows {
            if let Some(o) = r.as_object_mut() {
                o.remove(TOTAL);
            }
        }
        let more = rows.len() as i64 > size;
        rows.truncate(size as usize);
        Ok(json!({
            "run": run,
            "rows": rows,
            "page": page,
            "page_size": size,
            "more": more,
            "total": total,
            "where": condition,
            "query": "queries/view_tasks.sql",
        }))
    }

    async fn tree(&self, p: &Params) -> Result<Value, ApiError> {
        let run = param(p, "run")?.to_string();
        let task = param(p, "task")?.to_string();
        self.check_run(&run).await?;
        let session = self.session().await?;
        let nodes = self
            .rows(
                &session,
                "view_tree",
                &[("run", run.clone()), ("task", task.clone())],
            )
            .await?;
        if nodes.is_empty() {
            return Err(ApiError::not_found(format!(
                "no episodes of task `{task}` in run `{run}`"
            )));
        }
        let marks = self
            .rows(
                &session,
                "view_training_marks",
                &[("run", run.clone()), ("task", task.clone())],
            )
            .await?;
        let marks = resolve_marks(&nodes, &marks);
        Ok(json!({
            "run": run,
            "task": task,
            "nodes": nodes,
            "marks": marks,
            "truncated": nodes.len() >= 2000,
            "queries": ["queries/view_tree.sql", "queries/view_training_marks.sql",
                        "queries/counterfactual_pairs.sql", "queries/rehearsal.sql"],
        }))
    }

    async fn episode(&self, p: &Params) -> Result<Value, ApiError> {
        let run = param(p, "run")?.to_string();
        let episode = int_param(p, "episode", None)?;
        self.check_run(&run).await?;
        let session = self.session().await?;
        let rows = self
            .rows(
                &session,
                "view_episode",
                &[("run", run.clone()), ("episode", episode.to_string())],
            )
            .await?;
        let Some(row) = rows.into_iter().next() else {
            return Err(ApiError::not_found(format!(
                "no episode {episode} in run `{run}`"
            )));
        };
        let reflections = self
            .rows(
                &session,
                "view_reflections",
                &[
                    ("run", run.clone()),
                    ("episode", episode.to_string()),
                    ("limit", "1000".into()),
                ],
            )
            .await?
            .into_iter()
            .filter(|r| str_of(r, "run_id").as_deref() == Some(run.as_str()))
            .collect::<Vec<_>>();
        Ok(json!({
            "run": run,
            "episode": row,
            "reflections": reflections,
            "queries": ["queries/view_episode.sql", "queries/view_reflections.sql"],
        }))
    }

    async fn steps(&self, p: &Params) -> Result<Value, ApiError> {
        let run = param(p, "run")?.to_string();
        let episode = int_param(p, "episode", None)?;
        let from_t = int_param(p, "from_t", Some(0))?;
        let limit = int_param(p, "limit", Some(200))?;
        if !(1..=MAX_PAGE as i64).contains(&limit) || from_t < 0 {
            return Err(ApiError::bad(format!(
                "from_t {from_t}, limit {limit}: from_t >= 0 and limit 1..={MAX_PAGE}"
            )));
        }
        self.check_run(&run).await?;
        let session = self.session().await?;
        let mut rows = self
            .rows(
                &session,
                "view_steps",
                &[
                    ("run", run.clone()),
                    ("episode", episode.to_string()),
                    ("from_t", from_t.to_string()),
                    ("limit", (limit + 1).to_string()),
                ],
            )
            .await?;
        let more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        Ok(json!({
            "run": run,
            "episode": episode,
            "from_t": from_t,
            "rows": rows,
            "more": more,
            "query": "queries/view_steps.sql",
        }))
    }

    async fn llm_call(&self, p: &Params) -> Result<Value, ApiError> {
        let run = param(p, "run")?.to_string();
        let call = int_param(p, "call", None)?;
        self.check_run(&run).await?;
        let session = self.session().await?;
        let rows = self
            .rows(
                &session,
                "view_llm_call",
                &[("run", run.clone()), ("call", call.to_string())],
            )
            .await?;
        if rows.is_empty() {
            return Err(ApiError::not_found(format!(
                "no LLM call {call} in run `{run}`"
            )));
        }
        Ok(json!({ "run": run, "call": call, "rows": rows, "query": "queries/view_llm_call.sql" }))
    }

    async fn reflections(&self, p: &Params) -> Result<Value, ApiError> {
        let runs = p
            .get("runs")
            .filter(|v| !v.is_empty())
            .cloned()
            .unwrap_or_else(|| "%".into());
        let mut vals = vec![("run", runs.clone()), ("limit", "200".to_string())];
        for key in ["category", "action"] {
            if let Some(v) = p.get(key).filter(|v| !v.is_empty()) {
                vals.push((key, v.clone()));
            }
        }
        let session = self.session().await?;
        let rows = self.rows(&session, "view_reflections", &vals).await?;
        Ok(json!({ "runs": runs, "rows": rows, "query": "queries/view_reflections.sql" }))
    }

    async fn patterns(&self, p: &Params) -> Result<Value, ApiError> {
        let runs = p
            .get("runs")
            .filter(|v| !v.is_empty())
            .cloned()
            .unwrap_or_else(|| "%".into());
        let sections = crate::analysis::analyse(&self.store, &runs, self.queries.as_deref())
            .await
            .map_err(|e| ApiError {
                status: 500,
                message: e.chain().map(one_line).collect::<Vec<_>>().join(": "),
            })?;
        let mut out = Vec::new();
        for s in &sections {
            let columns: Vec<String> = s
                .batches
                .first()
                .map(|b| {
                    b.schema()
                        .fields()
                        .iter()
                        .map(|f| f.name().clone())
                        .collect()
                })
                .unwrap_or_default();
            out.push(json!({
                "name": s.name,
                "title": s.title,
                "columns": columns,
                "rows": rows_json(&s.batches)?,
                "chart": s.chart.map(|(l, v)| json!({"label": l, "value": v})),
            }));
        }
        Ok(json!({ "runs": runs, "sections": out,
                   "queries": ["queries/failure_categories.sql", "queries/failure_patterns.sql",
                               "queries/critical_positions.sql", "queries/success_by_depth.sql"] }))
    }

    async fn report(&self, p: &Params) -> Result<Value, ApiError> {
        let run = param(p, "run")?.to_string();
        let Some(bytes) = self.store.report_file(&run, "results.json").await? else {
            return Err(ApiError::not_found(format!(
                "run `{run}` has no experiment report (reports/{run}/results.json)"
            )));
        };
        let results: Value = serde_json::from_slice(&bytes).map_err(|e| ApiError {
            status: 500,
            message: format!("reports/{run}/results.json: {}", one_line(e)),
        })?;
        let markdown = self
            .store
            .report_file(&run, "report.md")
            .await?
            .map(|b| String::from_utf8_lossy(&b).into_owned());
        Ok(json!({ "run": run, "results": results, "markdown": markdown }))
    }

    /// The bytes of an SVG plot of an experiment's report.
    pub async fn report_plot(&self, run: &str, file: &str) -> Result<Vec<u8>, ApiError> {
        if !file.ends_with(".svg") || file.contains('/') {
            return Err(ApiError::bad(format!(
                "`{file}`: only the report's .svg plots are served"
            )));
        }
        self.store
            .report_file(run, file)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no plot reports/{run}/{file}")))
    }
}

/// Training marks on the episodes that store the steps: a counterfactual
/// row is the branch's own step; a rehearsal row (leaf, t) is stored in the
/// deepest episode on the leaf's path whose tau is at or before t.
fn resolve_marks(nodes: &[Value], marks: &[Value]) -> Vec<Value> {
    let by_id: HashMap<i64, (Option<i64>, i64)> = nodes
        .iter()
        .filter_map(|n| {
            Some((
                n["episode_id"].as_i64()?,
                (
                    n["parent_episode_id"].as_i64(),
                    n["tau"].as_i64().unwrap_or(0),
                ),
            ))
        })
        .collect();
    let mut out = Vec::new();
    for m in marks {
        let (Some(source), Some(leaf), Some(t)) = (
            m["source"].as_str(),
            m["episode_id"].as_i64(),
            m["t"].as_i64(),
        ) else {
            continue;
        };
        let mut owner = leaf;
        if source == "rehearsal" {
            while let Some((parent, tau)) = by_id.get(&owner) {
                match parent {
                    Some(p) if *tau > t => owner = *p,
                    _ => break,
                }
            }
        }
        let mut row = Map::new();
        row.insert("source".into(), source.into());
        row.insert("episode_id".into(), owner.into());
        row.insert("t".into(), t.into());
        row.insert("leaf".into(), leaf.into());
        out.push(Value::Object(row));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rehearsal_marks_land_on_the_episode_that_stores_the_step() {
        // root 1 (len 10); branch 2 from 1 at tau 4; branch 3 from 2 at tau 7.
        let nodes = vec![
            json!({"episode_id": 1, "parent_episode_id": null, "tau": null}),
            json!({"episode_id": 2, "parent_episode_id": 1, "tau": 4}),
            json!({"episode_id": 3, "parent_episode_id": 2, "tau": 7}),
        ];
        let marks: Vec<Value> = [0, 3, 4, 6, 7, 9]
            .iter()
            .map(|t| json!({"source": "rehearsal", "episode_id": 3, "t": t}))
            .chain([json!({"source": "counterfactual", "episode_id": 3, "t": 7})])
            .collect();
        let owners: Vec<(i64, i64)> = resolve_marks(&nodes, &marks)
            .iter()
            .map(|m| (m["episode_id"].as_i64().unwrap(), m["t"].as_i64().unwrap()))
            .collect();
        assert_eq!(
            owners,
            [(1, 0), (1, 3), (2, 4), (2, 6), (3, 7), (3, 9), (3, 7)]
        );
    }
}
