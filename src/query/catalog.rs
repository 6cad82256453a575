//! The query catalog: every file of `queries/`, compiled in, by name.
//!
//! A query is a file of `queries/` (one query per file, with the header
//! described in the parent module), loaded by name through [`load_query`]. A
//! caller that is given a directory (`--queries`) reads `NAME.sql` from there
//! when the file exists, so a user who edits a query changes what the library
//! does; otherwise the copy embedded here at build time serves. The unit test below keeps the
//! catalog and the directory equal: a file added to `queries/` without an
//! entry here, or an entry without its file, fails the build's tests.

use std::path::Path;

use super::{QueryError, QueryText, Result};

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
        "critical_steps",
        include_str!("../../queries/critical_steps.sql"),
    ),
    (
        "export_preferences",
        include_str!("../../queries/export_preferences.sql"),
    ),
    (
        "export_trajectories",
        include_str!("../../queries/export_trajectories.sql"),
    ),
    (
        "failure_patterns",
        include_str!("../../queries/failure_patterns.sql"),
    ),
    ("grpo_groups", include_str!("../../queries/grpo_groups.sql")),
    ("grpo_steps", include_str!("../../queries/grpo_steps.sql")),
    (
        "pass_at_k_inputs",
        include_str!("../../queries/pass_at_k_inputs.sql"),
    ),
    ("rehearsal", include_str!("../../queries/rehearsal.sql")),
    (
        "success_by_depth",
        include_str!("../../queries/success_by_depth.sql"),
    ),
];

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
            QueryText::parse(name, sql).unwrap_or_else(|e| panic!("{name}: {e}"));
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
