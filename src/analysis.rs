//! `leafe report`: failure analysis of explored runs.
//!
//! Four tables, each from the query files in `queries/` (a user who edits
//! them changes the report):
//! - mistakes by category, with the share of reflections whose rollback led
//!   to a successful branch (`failure_categories.sql`, which aggregates
//!   `failure_patterns.sql`);
//! - critical actions per category (`failure_patterns.sql` as is);
//! - where in the trajectory the critical step lies, in buckets of 10 steps,
//!   and how often it was fixed (`critical_positions.sql`, which aggregates
//!   `critical_steps.sql`);
//! - success by tree depth (`success_by_depth.sql`).
//!
//! The report is `report.md` plus one SVG bar chart per table but the
//! second, written to a directory (local or `s3://`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::DataType;
use tokio::io::AsyncWriteExt;

use crate::query::{QuerySession, load_query, register_inputs};
use crate::store::Store;

/// One table of the report.
pub struct Section {
    /// File-friendly name.
    pub name: &'static str,
    /// Title.
    pub title: &'static str,
    /// The rows.
    pub batches: Vec<RecordBatch>,
    /// (label column, value column) of its bar chart, if it has one.
    pub chart: Option<(&'static str, &'static str)>,
}

/// (name, title, query file, chart columns) of a section.
type Spec = (
    &'static str,
    &'static str,
    &'static str,
    Option<(&'static str, &'static str)>,
);

/// The report's sections, in order.
const SECTIONS: [Spec; 4] = [
    (
        "categories",
        "Mistakes by category (share fixed: a branch from tau succeeded)",
        "failure_categories",
        Some(("category", "reflections")),
    ),
    (
        "actions",
        "Critical actions per category",
        "failure_patterns",
        None,
    ),
    (
        "positions",
        "Where the critical step lies (tau, buckets of 10 steps)",
        "critical_positions",
        Some(("tau_from", "reflections")),
    ),
    (
        "depth",
        "Success by tree depth",
        "success_by_depth",
        Some(("depth", "success_rate")),
    ),
];

/// Runs the report's queries over the runs matching `runs`.
pub async fn analyse(
    store: &Store,
    runs: &str,
    queries: Option<&Path>,
) -> anyhow::Result<Vec<Section>> {
    let session = QuerySession::open(store).await?;
    let params = BTreeMap::from([("run".to_string(), runs.to_string())]);
    let mut bound = Vec::new();
    for (name, _, file, _) in SECTIONS {
        let q = load_query(queries, file)?;
        // The aggregates read failure_patterns or critical_steps over the
        // runs (`-- @input`) and take no parameter of their own.
        register_inputs(&session, &q, queries, &params).await?;
        let own = if q.params.is_empty() {
            BTreeMap::new()
        } else {
            params.clone()
        };
        bound.push((name, q.bind(&own)?));
    }
    // The four tables are independent: run them side by side (one memory
    // pool bounds them together).
    let session = &session;
    let tables = futures::future::try_join_all(bound.iter().map(|(name, q)| async move {
        session
            .collect(q)
            .await
            .with_context(|| format!("report table {name}"))
    }))
    .await?;
    let out = SECTIONS
        .iter()
        .zip(tables)
        .map(|((name, title, _, chart), batches)| Section {
            name,
            title,
            batches,
            chart: *chart,
        })
        .collect();
    Ok(out)
}

fn cells(b: &RecordBatch, col: &str) -> Vec<String> {
    let Some(c) = b.column_by_name(col) else {
        return Vec::new();
    };
    let c = arrow::compute::cast(c, &DataType::Utf8).expect("any column casts to text");
    let c = c.as_string::<i32>();
    (0..c.len())
        .map(|i| {
            if c.is_null(i) {
                "–".to_string()
            } else {
                c.value(i).to_string()
            }
        })
        .collect()
}

/// Whether every table is empty (nothing matched).
pub fn is_empty(sections: &[Section]) -> bool {
    sections
        .iter()
        .all(|s| s.batches.iter().all(|b| b.num_rows() == 0))
}

/// A Markdown table of batches.
pub fn markdown_table(batches: &[RecordBatch]) -> String {
    let Some(first) = batches.first() else {
        return "(no rows)\n".into();
    };
    let names: Vec<String> = first
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let mut s = format!(
        "| {} |\n|{}\n",
        names.join(" | "),
        "---|".repeat(names.len())
    );
    let mut rows = 0;
    for b in batches {
        let cols: Vec<Vec<String>> = names
            .iter()
            .map(|n| {
                cells(b, n)
                    .into_iter()
                    .map(|v| v.replace('|', "\\|"))
                    .collect()
            })
            .collect();
        for i in 0..b.num_rows() {
            rows += 1;
            let row: Vec<&str> = cols.iter().map(|c| c[i].as_str()).collect();
            let _ = writeln!(s, "| {} |", row.join(" | "));
        }
    }
    if rows == 0 {
        return "(no rows)\n".into();
    }
    s
}

/// A horizontal bar chart (SVG) of `value` per `label`.
pub fn bar_chart(title: &str, batches: &[RecordBatch], label: &str, value: &str) -> String {
    let mut bars: Vec<(String, f64)> = Vec::new();
    for b in batches {
        let labels = cells(b, label);
        let values = cells(b, value);
        for (l, v) in labels.into_iter().zip(values) {
            bars.push((l, v.parse().unwrap_or(0.0)));
        }
    }
    let max = bars.iter().map(|b| b.1).fold(0.0f64, f64::max).max(1e-12);
    let (left, width, row) = (150.0, 400.0, 22.0);
    let height = 40.0 + row * bars.len() as f64 + 10.0;
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{height}" font-family="sans-serif" font-size="12">
<rect width="{w}" height="{height}" fill="white"/>
<text x="10" y="20" font-size="14">{title} — {value}</text>
"#,
        w = left + width + 90.0,
        title = xml(title),
        value = xml(value),
    );
    for (i, (l, v)) in bars.iter().enumerate() {
        let y = 34.0 + row * i as f64;
        let len = width * v / max;
        let _ = writeln!(
            s,
            r##"<text x="{lx}" y="{ty}" text-anchor="end">{l}</text><rect x="{left}" y="{y}" width="{len:.1}" height="{h}" fill="#1f77b4"/><text x="{vx:.1}" y="{ty}">{v}</text>"##,
            lx = left - 6.0,
            ty = y + 14.0,
            l = xml(l),
            h = row - 6.0,
            vx = left + len + 4.0,
        );
    }
    s.push_str("</svg>\n");
    s
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The Markdown report.
pub fn markdown(store: &str, runs: &str, sections: &[Section]) -> String {
    let mut md = format!(
        "# leafe failure analysis\n\nStore `{store}`, runs matching `{runs}`. Regenerate: `leafe report --store {store} --run '{runs}' --out DIR`.\n\n"
    );
    for s in sections {
        let _ = writeln!(md, "## {}\n\n{}", s.title, markdown_table(&s.batches));
        if s.chart.is_some() {
            let _ = writeln!(md, "![{}]({}.svg)\n", s.title, s.name);
        }
    }
    md
}

/// Writes report.md and the charts under `out` (a directory path or URL).
pub async fn write_report(
    out: &str,
    store_url: &str,
    runs: &str,
    sections: &[Section],
) -> anyhow::Result<()> {
    let target = Store::open(out)?;
    let mut files = vec![(
        "report.md".to_string(),
        markdown(store_url, runs, sections).into_bytes(),
    )];
    for s in sections {
        if let Some((label, value)) = s.chart {
            files.push((
                format!("{}.svg", s.name),
                bar_chart(s.title, &s.batches, label, value).into_bytes(),
            ));
        }
    }
    for (name, bytes) in files {
        let mut w = target.object_writer(&name);
        w.write_all(&bytes)
            .await
            .with_context(|| format!("writing {name} under {out}"))?;
        w.shutdown()
            .await
            .with_context(|| format!("writing {name} under {out}"))?;
    }
    Ok(())
}
