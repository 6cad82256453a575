//! The query catalog: every file of `queries/`, compiled in, by name.
//!
//! Library code keeps no SQL text of its own: each query it needs is a file
//! of `queries/` (one query per file, with the header described in the
//! parent module), loaded by name through [`load_query`]. (The exception is
//! `leafe export --filter`, a condition the user writes around the export
//! query.) A caller that is given a directory (`--queries`) reads `NAME.sql`
//! from there when the file exists, so a user who edits a query changes what
//! the library does; otherwise the copy embedded here at build time serves.
//! The unit test below keeps the catalog and the directory equal: a file
//! added to `queries/` without an entry here, or an entry without its file,
//! fails the tests.
//!
//! A query may read the rows of another one as a table: it names it in a
//! `-- @input NAME  description` header line, and the caller registers the
//! input first ([`register_inputs`]).

use std::collections::BTreeMap;
use std::path::Path;

use super::{QueryError, QuerySession, QueryText, Result};

/// (name, text) of every query file, sorted by name.
const CATALOG: &[(&str, &str)] = &[
    (
        "branch_nodes",
        include_str!("../../queries/branch_nodes.sql"),
    ),
    (
        "counterfactual_pairs",
        include_str!("../../queries/counterfactual_pairs.sql"),
    ),
    (
        "critical_positions",
        include_str!("../../queries/critical_positions.sql"),
    ),
    (
        "critical_steps",
        include_str!("../../queries/critical_steps.sql"),
    ),
    (
        "explored_runs",
        include_str!("../../queries/explored_runs.sql"),
    ),
    (
        "export_episode_ids",
        include_str!("../../queries/export_episode_ids.sql"),
    ),
    (
        "export_preferences",
        include_str!("../../queries/export_preferences.sql"),
    ),
    (
        "export_reflection_ids",
        include_str!("../../queries/export_reflection_ids.sql"),
    ),
    ("export_runs", include_str!("../../queries/export_runs.sql")),
    (
        "export_trajectories",
        include_str!("../../queries/export_trajectories.sql"),
    ),
    (
        "failure_categories",
        include_str!("../../queries/failure_categories.sql"),
    ),
    (
        "failure_patterns",
        include_str!("../../queries/failure_patterns.sql"),
    ),
    ("grpo_groups", include_str!("../../queries/grpo_groups.sql")),
    ("grpo_steps", include_str!("../../queries/grpo_steps.sql")),
    (
        "interaction_cost",
        include_str!("../../queries/interaction_cost.sql"),
    ),
    ("llm_replies", include_str!("../../queries/llm_replies.sql")),
    (
        "pairs_by_depth",
        include_str!("../../queries/pairs_by_depth.sql"),
    ),
    (
        "pass_at_k_inputs",
        include_str!("../../queries/pass_at_k_inputs.sql"),
    ),
    ("rehearsal", include_str!("../../queries/rehearsal.sql")),
    (
        "success_by_depth",
        include_str!("../../queries/success_by_depth.sql"),
    ),
    (
        "text_counterfactual_pairs",
        include_str!("../../queries/text_counterfactual_pairs.sql"),
    ),
    (
        "text_rehearsal",
        include_str!("../../queries/text_rehearsal.sql"),
    ),
    (
        "view_episode",
        include_str!("../../queries/view_episode.sql"),
    ),
    (
        "view_episode_filter",
        include_str!("../../queries/view_episode_filter.sql"),
    ),
    (
        "view_llm_call",
        include_str!("../../queries/view_llm_call.sql"),
    ),
    (
        "view_reflections",
        include_str!("../../queries/view_reflections.sql"),
    ),
    ("view_runs", include_str!("../../queries/view_runs.sql")),
    ("view_steps", include_str!("../../queries/view_steps.sql")),
    ("view_tasks", include_str!("../../queries/view_tasks.sql")),
    (
        "view_training_marks",
        include_str!("../../queries/view_training_marks.sql"),
    ),
    ("view_tree", include_str!("../../queries/view_tree.sql")),
];

/// The names of every query file, sorted.
pub fn query_names() -> impl Iterator<Item = &'static str> {
    CATALOG.iter().map(|(n, _)| *n)
}

/// The text of `queries/NAME.sql` as compiled in, or None if there is no
/// such query.
pub fn embedded_query(name: &str) -> Option<&'static str> {
    CATALOG
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, sql)| *sql)
}

/// Loads `NAME.sql` from `dir` if it is there, else the embedded copy.
pub fn load_query(dir: Option<&Path>, name: &str) -> Result<QueryText> {
    if let Some(dir) = dir {
        let path = dir.join(format!("{name}.sql"));
        if path.exists() {
            return QueryText::from_file(&path);
        }
    }
    let sql = embedded_query(name).ok_or_else(|| QueryError::UnknownQuery {
        name: name.to_string(),
    })?;
    QueryText::parse(&format!("queries/{name}.sql (embedded)"), sql)
}

/// Registers the `-- @input` queries of `query` in `session`, each loaded
/// like [`load_query`] and bound with those of `values` it declares, so that
/// `query` can read their rows by name.
pub async fn register_inputs(
    session: &QuerySession,
    query: &QueryText,
    dir: Option<&Path>,
    values: &BTreeMap<String, String>,
) -> Result<()> {
    for name in query.inputs() {
        let input = load_query(dir, name)?;
        let declared: BTreeMap<String, String> = values
            .iter()
            .filter(|(k, _)| input.params.iter().any(|p| &p.name == *k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        session.register_view(name, &input.bind(&declared)?).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn files_on_disk() -> BTreeSet<String> {
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/queries"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "sql"))
            .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn the_catalog_holds_every_query_file_and_nothing_else() {
        let embedded: BTreeSet<String> = CATALOG.iter().map(|(n, _)| n.to_string()).collect();
        assert_eq!(embedded, files_on_disk());
        let names: Vec<&str> = CATALOG.iter().map(|(n, _)| *n).collect();
        assert!(names.is_sorted(), "keep the catalog sorted: {names:?}");
        for (name, sql) in CATALOG {
            let on_disk = std::fs::read_to_string(format!(
                "{}/queries/{name}.sql",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap();
            assert_eq!(*sql, on_disk, "{name}: the embedded copy is stale");
            let q = QueryText::parse(name, sql).unwrap_or_else(|e| panic!("{name}: {e}"));
            for input in q.inputs() {
                assert!(
                    embedded_query(input).is_some(),
                    "{name}: input `{input}` is not a query"
                );
            }
        }
    }

    #[test]
    fn load_query_prefers_the_directory_and_names_an_unknown_query() {
        let dir = std::env::temp_dir().join(format!("leafe-catalog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("rehearsal.sql"), "-- mine\nSELECT 1").unwrap();
        assert_eq!(
            load_query(Some(&dir), "rehearsal").unwrap().sql,
            "-- mine\nSELECT 1"
        );
        // Files the directory lacks come from the catalog.
        assert_eq!(
            load_query(Some(&dir), "grpo_steps").unwrap().sql,
            embedded_query("grpo_steps").unwrap()
        );
        std::fs::remove_dir_all(&dir).unwrap();
        let e = load_query(None, "nope").unwrap_err();
        assert!(matches!(e, QueryError::UnknownQuery { .. }), "{e}");
        assert!(e.to_string().contains("nope"), "{e}");
    }
}
