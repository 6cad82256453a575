//! A query file rendered for another engine: its parameters bound by the
//! same binder `leafe sql` uses, and each `-- @input` query it reads turned
//! into a temporary view defined before it.
//!
//! The result is a list of statements, run in order: `CREATE OR REPLACE
//! TEMPORARY VIEW <input> AS …` for every input (inputs of inputs first),
//! then the query itself. Spark SQL and DuckDB accept that syntax as it is;
//! `leafe query render` prints it, and `python/leafe_views.py` runs it.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::{Dialect, QueryError, QueryText, Result, catalog::load_query};

/// One statement of a rendered query.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Statement {
    /// The view this statement defines, or None for the query itself.
    pub view: Option<String>,
    /// The SQL, without a trailing semicolon.
    pub sql: String,
}

/// A query rendered for an engine.
#[derive(Debug, Clone, Serialize)]
pub struct Rendered {
    /// Where the query came from.
    pub source: String,
    /// The dialect its literals are written in.
    pub dialect: Dialect,
    /// Statements to run in order; the last one returns the rows.
    pub statements: Vec<Statement>,
}

impl Rendered {
    /// The statements as one SQL script, each ended by `;`.
    pub fn script(&self) -> String {
        let mut out = String::new();
        for s in &self.statements {
            out.push_str(&s.sql);
            out.push_str(";\n");
            if s.view.is_some() {
                out.push('\n');
            }
        }
        out
    }
}

/// Renders `query`: binds `values` (each input takes those it declares) and
/// defines its inputs, loaded from `dir` or the embedded catalog, as views.
pub fn render(
    query: &QueryText,
    dir: Option<&Path>,
    values: &BTreeMap<String, String>,
    dialect: Dialect,
) -> Result<Rendered> {
    check_params(query, dir, values)?;
    let mut statements = Vec::new();
    let mut visiting = Vec::new();
    views_of(query, dir, values, dialect, &mut statements, &mut visiting)?;
    let main = query.bind_for(&own_values(query, values), dialect)?;
    statements.push(Statement {
        view: None,
        sql: body(&main.sql),
    });
    Ok(Rendered {
        source: query.source_name.clone(),
        dialect,
        statements,
    })
}

fn views_of(
    query: &QueryText,
    dir: Option<&Path>,
    values: &BTreeMap<String, String>,
    dialect: Dialect,
    out: &mut Vec<Statement>,
    visiting: &mut Vec<String>,
) -> Result<()> {
    for name in query.inputs() {
        if out.iter().any(|s| s.view.as_deref() == Some(name)) {
            continue;
        }
        if visiting.iter().any(|v| v == name) {
            return Err(QueryError::BadParam {
                source_name: query.source_name.clone(),
                name: name.to_string(),
                problem: format!(
                    "inputs read each other in a circle: {} → {name}",
                    visiting.join(" → ")
                ),
            });
        }
        let input = load_query(dir, name)?;
        visiting.push(name.to_string());
        views_of(&input, dir, values, dialect, out, visiting)?;
        visiting.pop();
        let bound = input.bind_for(&own_values(&input, values), dialect)?;
        out.push(Statement {
            view: Some(name.to_string()),
            sql: format!(
                "CREATE OR REPLACE TEMPORARY VIEW {name} AS\n{}",
                body(&bound.sql)
            ),
        });
    }
    Ok(())
}

/// Those of `values` that `query` itself declares.
pub fn own_values(
    query: &QueryText,
    values: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    values
        .iter()
        .filter(|(k, _)| query.params.iter().any(|p| &p.name == *k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Refuses a value that neither `query` nor any query it reads (its
/// `@input`s, loaded from `dir` or embedded) declares.
pub fn check_params(
    query: &QueryText,
    dir: Option<&Path>,
    values: &BTreeMap<String, String>,
) -> Result<()> {
    let mut declared: Vec<String> = Vec::new();
    let mut pending = vec![query.clone()];
    let mut seen: Vec<String> = Vec::new();
    while let Some(q) = pending.pop() {
        declared.extend(q.params.iter().map(|p| p.name.clone()));
        for name in q.inputs() {
            if !seen.iter().any(|s| s == name) {
                seen.push(name.to_string());
                pending.push(load_query(dir, name)?);
            }
        }
    }
    declared.sort();
    declared.dedup();
    match values.keys().find(|k| !declared.contains(k)) {
        None => Ok(()),
        Some(name) => Err(QueryError::UnknownParam {
            source_name: query.source_name.clone(),
            name: name.clone(),
            declared: if declared.is_empty() {
                "none".into()
            } else {
                declared.join(", ")
            },
        }),
    }
}

/// The SQL without trailing whitespace and semicolons.
fn body(sql: &str) -> String {
    sql.trim_end().trim_end_matches(';').trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_become_views_before_the_query() {
        let q = super::super::load_query(None, "critical_positions").unwrap();
        let values = BTreeMap::from([("run".to_string(), "it's".to_string())]);
        let r = render(&q, None, &values, Dialect::Spark).unwrap();
        assert_eq!(r.statements.len(), 2);
        assert_eq!(r.statements[0].view.as_deref(), Some("critical_steps"));
        assert!(
            r.statements[0]
                .sql
                .starts_with("CREATE OR REPLACE TEMPORARY VIEW critical_steps AS\n")
        );
        assert!(r.statements[0].sql.contains(r"'it\'s'"));
        assert!(r.statements[1].view.is_none());
        assert!(r.statements[1].sql.contains("FROM critical_steps"));
        assert!(!r.script().contains(";;"));
    }
}
