//! The committed-files manifest (`_leafe/catalog.json`): what other engines
//! (Spark, DuckDB, polars, Trino, …) must read to see exactly what leafe's
//! queries see.
//!
//! Reading a table's directory glob also reads the files of runs that never
//! committed (a crashed writer, a writer still running) and stray files in a
//! committed run's directory. The catalog lists, per table, exactly the data
//! files named by commit markers, each with its `run_id` (the Hive partition
//! value), row count, size and schema version, plus each table's current
//! columns (from `schemas/`) so an engine can declare an empty table or read
//! older files whose later, nullable columns are missing.
//!
//! # Freshness and safety
//!
//! - `leafe catalog` ([`Store::write_catalog`]) rebuilds it from every
//!   commit marker.
//! - Once it exists, every commit merges its run into it
//!   ([`Store::merge_into_catalog`], called by [`super::RunWriter::commit`]
//!   after the marker is written; writers in one process take turns). Two
//!   processes committing at the same moment may each write a catalog
//!   without the other's run (last writer wins); the
//!   catalog then lags by a run until the next commit or `leafe catalog`,
//!   which a scheduled job runs after its workers finish.
//! - Entries come only from commit markers, and committed runs are never
//!   deleted (gc collects uncommitted ones only), so a catalog — however
//!   stale — never names a file of an uncommitted or crashed run.
//!
//! Paths are relative to the store root, so the same catalog serves a local
//! copy and the S3 original.

use std::collections::BTreeMap;

use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use super::schema::ColumnType;
use super::{CommitMarker, PARTITION_COLUMN, Result, Store, StoreError, Table, now_us};

/// Where the catalog lives, relative to the store root.
pub const CATALOG_PATH: &str = "_leafe/catalog.json";

/// The `format` field of every catalog.
pub const CATALOG_FORMAT: &str = "leafe-catalog";

/// The catalog layout version this build writes and reads.
pub const CATALOG_VERSION: u32 = 1;

/// The committed-files manifest of a store.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Catalog {
    /// Always [`CATALOG_FORMAT`].
    pub format: String,
    /// Layout version ([`CATALOG_VERSION`]).
    pub version: u32,
    /// When this catalog was written, microseconds since the epoch.
    pub generated_at_us: i64,
    /// The Hive partition column every table's files carry in their path.
    pub partition_column: String,
    /// Every committed run, ordered by run id.
    pub runs: Vec<CatalogRun>,
    /// Per table name (every table of the store, empty ones included).
    pub tables: BTreeMap<String, CatalogTable>,
}

/// A committed run in the catalog.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CatalogRun {
    /// The run id (the partition value of its files).
    pub run_id: String,
    /// What kind of command wrote it.
    pub kind: String,
    /// When its commit marker was written, microseconds since the epoch.
    pub committed_at_us: i64,
}

/// One table in the catalog.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CatalogTable {
    /// The table's current schema version (`schemas/<table>.toml`).
    pub schema_version: u32,
    /// Its stored columns, in file order (the partition column is not stored).
    pub columns: Vec<CatalogColumn>,
    /// Its data files of committed runs, ordered by run id then path.
    pub files: Vec<CatalogFile>,
}

/// A column of a table.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CatalogColumn {
    /// Column name.
    pub name: String,
    /// Type: utf8, binary, boolean, int32, int64, float32, float64 or
    /// timestamp_us (UTC).
    #[serde(rename = "type")]
    pub column_type: ColumnType,
    /// Whether it may hold nulls.
    pub nullable: bool,
}

/// A data file of a committed run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CatalogFile {
    /// Path relative to the store root (`<table>/run_id=<id>/part-….parquet`).
    pub path: String,
    /// The run it belongs to (its partition value).
    pub run_id: String,
    /// Rows in the file.
    pub rows: u64,
    /// Size in bytes.
    pub bytes: u64,
    /// The schema version the file was written with (older versions lack
    /// columns appended since; they read as nulls).
    pub schema_version: u32,
}

impl Catalog {
    /// An empty catalog with every table's current columns.
    pub fn empty() -> Catalog {
        let tables = Table::ALL
            .iter()
            .map(|&t| {
                let schema = t.schema();
                let table = CatalogTable {
                    schema_version: schema.version,
                    columns: schema
                        .columns
                        .iter()
                        .map(|c| CatalogColumn {
                            name: c.name.clone(),
                            column_type: c.column_type,
                            nullable: c.nullable,
                        })
                        .collect(),
                    files: Vec::new(),
                };
                (t.name().to_string(), table)
            })
            .collect();
        Catalog {
            format: CATALOG_FORMAT.into(),
            version: CATALOG_VERSION,
            generated_at_us: now_us(),
            partition_column: PARTITION_COLUMN.into(),
            runs: Vec::new(),
            tables,
        }
    }

    /// The catalog of exactly these committed runs.
    pub fn from_markers<'a>(markers: impl IntoIterator<Item = &'a CommitMarker>) -> Catalog {
        let mut catalog = Catalog::empty();
        for m in markers {
            catalog.add(m);
        }
        catalog
    }

    /// Adds (or replaces) a committed run; keeps runs and files ordered.
    pub fn add(&mut self, marker: &CommitMarker) {
        self.runs.retain(|r| r.run_id != marker.run_id);
        let at = self
            .runs
            .partition_point(|r| r.run_id.as_str() < marker.run_id.as_str());
        self.runs.insert(
            at,
            CatalogRun {
                run_id: marker.run_id.clone(),
                kind: marker.kind.clone(),
                committed_at_us: marker.committed_at_us,
            },
        );
        for (name, table) in self.tables.iter_mut() {
            table.files.retain(|f| f.run_id != marker.run_id);
            let version = marker
                .schema_versions
                .get(name)
                .copied()
                .unwrap_or(table.schema_version);
            let mut added: Vec<CatalogFile> = marker
                .tables
                .get(name)
                .into_iter()
                .flatten()
                .map(|f| CatalogFile {
                    path: f.path.clone(),
                    run_id: marker.run_id.clone(),
                    rows: f.rows,
                    bytes: f.bytes,
                    schema_version: version,
                })
                .collect();
            added.sort_by(|a, b| a.path.cmp(&b.path));
            let at = table
                .files
                .partition_point(|f| f.run_id.as_str() < marker.run_id.as_str());
            table.files.splice(at..at, added);
        }
        self.generated_at_us = now_us();
    }

    /// Rows of a table over all its files.
    pub fn rows(&self, table: &str) -> u64 {
        self.tables
            .get(table)
            .map_or(0, |t| t.files.iter().map(|f| f.rows).sum())
    }

    /// Checks what a reader must rely on: the format, a version this build
    /// understands, and one entry per table of the store.
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.format != CATALOG_FORMAT {
            return Err(format!(
                "format is `{}`, not `{CATALOG_FORMAT}`",
                self.format
            ));
        }
        if self.version != CATALOG_VERSION {
            return Err(format!(
                "layout version {} (this leafe reads {CATALOG_VERSION}); rebuild it with `leafe catalog`",
                self.version
            ));
        }
        if let Some(t) = Table::ALL
            .iter()
            .find(|t| !self.tables.contains_key(t.name()))
        {
            return Err(format!("no entry for table `{}`", t.name()));
        }
        Ok(())
    }
}

impl Store {
    /// The catalog as stored, or None if `leafe catalog` never wrote one.
    pub async fn catalog(&self) -> Result<Option<Catalog>> {
        let path = Path::from(CATALOG_PATH);
        let Some(catalog) = self.get_json::<Catalog>(&path, "catalog").await? else {
            return Ok(None);
        };
        catalog.check().map_err(|reason| StoreError::CorruptMeta {
            store: self.url().to_string(),
            path: CATALOG_PATH.into(),
            what: "catalog",
            reason,
        })?;
        Ok(Some(catalog))
    }

    /// Rebuilds the catalog from every commit marker and writes it.
    pub async fn write_catalog(&self) -> Result<Catalog> {
        let catalog = Catalog::from_markers(&self.commits().await?);
        self.put_catalog(&catalog).await?;
        Ok(catalog)
    }

    /// Merges one committed run into the catalog, if the store has one (a
    /// store whose users never asked for a catalog pays nothing). An
    /// unreadable catalog is rebuilt from the markers.
    pub async fn merge_into_catalog(&self, marker: &CommitMarker) -> Result<()> {
        // Writers in one process (an experiment's seeds) take turns, so
        // none of them overwrites another's run.
        static MERGING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
        let _turn = MERGING.lock().await;
        let mut catalog = match self.catalog().await {
            Ok(Some(c)) => c,
            Ok(None) => return Ok(()),
            Err(StoreError::CorruptMeta { .. }) => {
                self.write_catalog().await?;
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        catalog.add(marker);
        self.put_catalog(&catalog).await
    }

    /// Reads the footer of every file the catalog names and checks it
    /// against its table's schema: every column the file has must be the
    /// table's with the same type, a column it lacks must be nullable, and
    /// its row count must be the commit marker's. Returns one line per
    /// problem (empty: every file fits).
    pub async fn verify_catalog(&self, catalog: &Catalog) -> Result<Vec<String>> {
        use futures::StreamExt;
        use parquet::arrow::ParquetRecordBatchStreamBuilder;
        #[allow(deprecated)]
        use parquet::arrow::async_reader::ParquetObjectReader;

        let files: Vec<(Table, &CatalogFile)> = Table::ALL
            .iter()
            .flat_map(|&t| {
                catalog
                    .tables
                    .get(t.name())
                    .into_iter()
                    .flat_map(move |ct| ct.files.iter().map(move |f| (t, f)))
            })
            .collect();
        let checks = files.into_iter().map(|(table, f)| async move {
            let path = Path::from(f.path.as_str());
            let size = match self.objects.head(&path).await {
                Ok(meta) => meta.size,
                Err(e) => return vec![format!("{}: {}", f.path, super::explain(&e, self.url()))],
            };
            let mut problems = Vec::new();
            if size != f.bytes {
                problems.push(format!(
                    "{}: {size} bytes, its commit marker says {} (changed after its commit)",
                    f.path, f.bytes
                ));
            }
            // The reader is deprecated in favour of hand-written ones; it
            // still reads a footer through object_store correctly.
            #[allow(deprecated)]
            let reader = ParquetObjectReader::new(self.objects.clone(), path).with_file_size(size);
            let builder = match ParquetRecordBatchStreamBuilder::new(reader).await {
                Ok(b) => b,
                Err(e) => {
                    let e = e.to_string();
                    let e = e.split_whitespace().collect::<Vec<_>>().join(" ");
                    problems.push(format!("{}: not a readable Parquet file ({e})", f.path));
                    return problems;
                }
            };
            let rows = builder.metadata().file_metadata().num_rows();
            if rows as u64 != f.rows {
                problems.push(format!(
                    "{}: {rows} rows, its commit marker says {}",
                    f.path, f.rows
                ));
            }
            let want = table.schema().arrow_schema();
            let have = builder.schema();
            for field in have.fields() {
                match want.field_with_name(field.name()) {
                    Ok(w) if w.data_type() == field.data_type() => {}
                    Ok(w) => problems.push(format!(
                        "{}: column `{}` is {}, table `{}` says {}",
                        f.path,
                        field.name(),
                        field.data_type(),
                        table.name(),
                        w.data_type()
                    )),
                    Err(_) => problems.push(format!(
                        "{}: column `{}` is not a column of table `{}`",
                        f.path,
                        field.name(),
                        table.name()
                    )),
                }
            }
            for w in want.fields() {
                if have.field_with_name(w.name()).is_err() && !w.is_nullable() {
                    problems.push(format!(
                        "{}: lacks column `{}`, which table `{}` requires",
                        f.path,
                        w.name(),
                        table.name()
                    ));
                }
            }
            problems
        });
        let found: Vec<Vec<String>> = futures::stream::iter(checks).buffered(16).collect().await;
        Ok(found.into_iter().flatten().collect())
    }

    async fn put_catalog(&self, catalog: &Catalog) -> Result<()> {
        let path = Path::from(CATALOG_PATH);
        let body = serde_json::to_vec_pretty(catalog).expect("catalog serializes");
        self.objects
            .put(&path, PutPayload::from(body))
            .await
            .map_err(self.os_err("put", &path))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::FileEntry;

    fn marker(run: &str, files: &[(&str, u64)]) -> CommitMarker {
        CommitMarker {
            run_id: run.into(),
            kind: "t".into(),
            created_at_us: 1,
            committed_at_us: 2,
            tables: files
                .iter()
                .map(|(t, rows)| {
                    (
                        t.to_string(),
                        vec![FileEntry {
                            path: format!("{t}/run_id={run}/part-0.parquet"),
                            rows: *rows,
                            bytes: 10,
                        }],
                    )
                })
                .collect(),
            schema_versions: BTreeMap::from([("steps".to_string(), 1)]),
            meta: serde_json::Value::Null,
        }
    }

    #[test]
    fn runs_merge_in_order_and_replace_themselves() {
        let b = marker("b", &[("steps", 5), ("runs", 1)]);
        let a = marker("a", &[("steps", 3), ("runs", 1)]);
        let mut c = Catalog::from_markers([&b]);
        c.add(&a);
        c.add(&b);
        assert_eq!(
            c.runs.iter().map(|r| r.run_id.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(c.rows("steps"), 8);
        assert_eq!(c.rows("runs"), 2);
        assert_eq!(c.rows("llm_calls"), 0);
        let steps = &c.tables["steps"];
        assert_eq!(steps.files[0].run_id, "a");
        assert_eq!(steps.files[0].schema_version, 1);
        // A table the marker has no version for takes the current one.
        assert_eq!(
            c.tables["runs"].files[0].schema_version,
            Table::Runs.schema().version
        );
        assert!(c.check().is_ok());
        let json = serde_json::to_string(&c).unwrap();
        assert!(json.contains("\"type\":\"int64\""), "{json}");
        let back: Catalog = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
    }
}
