//! `leafe catalog` and `leafe query`: what other engines (Spark, DuckDB,
//! polars, Trino) need to run leafe's queries over the same store — the
//! committed-files manifest, and query files rendered with their
//! parameters bound.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};

use super::{StoreArgs, parse_param};
use crate::query::{Dialect, QueryText, load_query, render};
use crate::store::CATALOG_PATH;

/// Arguments of `leafe catalog`.
#[derive(Debug, Args)]
pub struct CatalogArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Also print the catalog (JSON) on stdout; the summary goes to stderr.
    #[arg(long)]
    pub print: bool,
    /// Also read every listed file's footer and check it against its
    /// table's schema and its commit marker's row count; prints one line per
    /// problem and exits 1 if there is any.
    #[arg(long)]
    pub verify: bool,
}

/// `leafe query …`.
#[derive(Debug, Subcommand)]
pub enum QueryCmd {
    /// Print a query file with its parameters bound and its `@input` queries
    /// defined as temporary views first, in SQL that Spark and DuckDB run.
    Render(RenderArgs),
    /// List the query files (embedded, or those of --queries) with their parameters.
    List(ListArgs),
}

/// Arguments of `leafe query render`.
#[derive(Debug, Args)]
pub struct RenderArgs {
    /// A query file (queries/rehearsal.sql) or the name of one (rehearsal).
    pub query: String,
    /// A parameter the query declares, as NAME=VALUE (repeatable); its inputs
    /// take those they declare.
    #[arg(long = "param", short = 'p', value_parser = parse_param)]
    pub params: Vec<(String, String)>,
    /// Directory of the query files for a name and for `@input` queries
    /// (default: the file's own directory, else queries/); embedded copies
    /// serve for files it lacks.
    #[arg(long)]
    pub queries: Option<PathBuf>,
    /// How string literals are written: standard (DataFusion, DuckDB, Trino)
    /// or spark (backslash escapes).
    #[arg(long, value_enum, default_value_t = Dialect::Standard)]
    pub dialect: Dialect,
    /// sql: a script, statements ended by `;`; json: {"source", "dialect",
    /// "statements": [{"view", "sql"}]} for programs.
    #[arg(long, value_enum, default_value_t = RenderFormat::Sql)]
    pub format: RenderFormat,
}

/// Output of `leafe query render`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RenderFormat {
    /// A SQL script.
    Sql,
    /// JSON, one object.
    Json,
}

/// Arguments of `leafe query list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Directory of the query files; embedded copies serve for files it lacks.
    #[arg(long, default_value = "queries")]
    pub queries: PathBuf,
}

pub async fn catalog_cmd(a: CatalogArgs) -> anyhow::Result<u8> {
    let store = a.store.open()?;
    let catalog = store
        .write_catalog()
        .await
        .with_context(|| format!("writing the catalog of {}", store.url()))?;
    if a.print {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, &catalog)?;
        writeln!(out)?;
    }
    let tables: Vec<String> = catalog
        .tables
        .iter()
        .map(|(name, t)| {
            format!(
                "{name} {} file(s), {} rows",
                t.files.len(),
                catalog.rows(name)
            )
        })
        .collect();
    eprintln!(
        "wrote {}/{CATALOG_PATH}: {} committed run(s); {}",
        store.url().trim_end_matches('/'),
        catalog.runs.len(),
        tables.join("; ")
    );
    if a.verify {
        let files: usize = catalog.tables.values().map(|t| t.files.len()).sum();
        let problems = store
            .verify_catalog(&catalog)
            .await
            .with_context(|| format!("verifying the files of {}", store.url()))?;
        if !problems.is_empty() {
            for p in &problems {
                eprintln!("{p}");
            }
            eprintln!(
                "{} problem(s) in {files} file(s): a file that does not match its table fails the queries that read it",
                problems.len()
            );
            return Ok(1);
        }
        eprintln!(
            "verified {files} file(s): every one matches its table's schema and its marker's row count"
        );
    }
    Ok(0)
}

/// Reads a query given as a file path or as a name of the catalog.
fn query_arg(query: &str, dir: Option<&Path>) -> anyhow::Result<QueryText> {
    let path = Path::new(query);
    if path.exists() {
        return Ok(QueryText::from_file(path)?);
    }
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    if query.ends_with(".sql") && path.parent().is_some_and(|p| !p.as_os_str().is_empty()) {
        // A path that does not exist: say so rather than silently taking
        // the embedded query of the same name.
        anyhow::bail!("no query file `{query}`");
    }
    Ok(load_query(dir, &name)?)
}

pub async fn query_cmd(cmd: QueryCmd) -> anyhow::Result<u8> {
    match cmd {
        QueryCmd::Render(a) => {
            let dir = a.queries.clone().or_else(|| {
                let p = Path::new(&a.query);
                p.exists()
                    .then(|| p.parent().map(Path::to_path_buf))
                    .flatten()
                    .filter(|d| !d.as_os_str().is_empty())
                    .or_else(|| Some(PathBuf::from("queries")))
            });
            let text = query_arg(&a.query, dir.as_deref())?;
            let params: BTreeMap<String, String> = a.params.into_iter().collect();
            let rendered = render(&text, dir.as_deref(), &params, a.dialect)?;
            let mut out = std::io::stdout().lock();
            match a.format {
                RenderFormat::Sql => out.write_all(rendered.script().as_bytes())?,
                RenderFormat::Json => {
                    serde_json::to_writer(&mut out, &rendered)?;
                    writeln!(out)?;
                }
            }
            Ok(0)
        }
        QueryCmd::List(a) => {
            let mut out = std::io::stdout().lock();
            for name in crate::query::query_names() {
                let q = load_query(Some(&a.queries), name)?;
                let summary = q
                    .sql
                    .lines()
                    .next()
                    .and_then(|l| l.strip_prefix("--"))
                    .map(str::trim)
                    .unwrap_or_default()
                    .to_string();
                writeln!(out, "{summary}")?;
                for p in &q.params {
                    let default = p
                        .default
                        .as_ref()
                        .map(|d| format!(" = {d}"))
                        .unwrap_or_default();
                    writeln!(
                        out,
                        "    --param {}=<{}{default}>  {}",
                        p.name,
                        p.param_type.name(),
                        p.doc
                    )?;
                }
            }
            Ok(0)
        }
    }
}
