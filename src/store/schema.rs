//! Table schemas, loaded from `schemas/*.toml` — the single source of truth.
//!
//! Each TOML file names a table, a schema version, a doc string for the table
//! and one entry per stored column (name, type, nullability, doc). The files are
//! compiled in with `include_str!`, so the binary and the repository can never
//! disagree. The Hive partition column `run_id` is not stored in the files; the
//! query layer adds it (see [`PARTITION_COLUMN`]).
//!
//! Invariant: every batch a writer accepts has exactly the Arrow schema built
//! here (names, order, types, nullability); [`TableSchema::check`] enforces it
//! and names the first offending column.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde::Deserialize;

use super::{Result, StoreError};

/// Name of the Hive partition column every table carries in the store layout.
pub const PARTITION_COLUMN: &str = "run_id";

/// Metadata key under which the table name is written into Parquet files.
pub const META_TABLE: &str = "leafe.table";
/// Metadata key under which the schema version is written into Parquet files.
pub const META_SCHEMA_VERSION: &str = "leafe.schema_version";

/// The tables of a store, in the order a run writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// One row per command run that wrote data.
    Runs,
    /// One row per rollout.
    Episodes,
    /// One row per environment step.
    Steps,
    /// One row per reflection.
    Reflections,
    /// One row per request to a language model.
    LlmCalls,
    /// One row per (episode of an explored tree, episode on its path from the root).
    Ancestry,
}

impl Table {
    /// Every table, in a stable order.
    pub const ALL: [Table; 6] = [
        Table::Runs,
        Table::Episodes,
        Table::Steps,
        Table::Reflections,
        Table::LlmCalls,
        Table::Ancestry,
    ];

    /// The table's name: its directory in the store and its name in SQL.
    pub fn name(self) -> &'static str {
        match self {
            Table::Runs => "runs",
            Table::Episodes => "episodes",
            Table::Steps => "steps",
            Table::Reflections => "reflections",
            Table::LlmCalls => "llm_calls",
            Table::Ancestry => "ancestry",
        }
    }

    fn source(self) -> &'static str {
        match self {
            Table::Runs => include_str!("../../schemas/runs.toml"),
            Table::Episodes => include_str!("../../schemas/episodes.toml"),
            Table::Steps => include_str!("../../schemas/steps.toml"),
            Table::Reflections => include_str!("../../schemas/reflections.toml"),
            Table::LlmCalls => include_str!("../../schemas/llm_calls.toml"),
            Table::Ancestry => include_str!("../../schemas/ancestry.toml"),
        }
    }

    /// The table's schema, parsed once from `schemas/<name>.toml`.
    pub fn schema(self) -> &'static TableSchema {
        static SCHEMAS: OnceLock<HashMap<Table, TableSchema>> = OnceLock::new();
        let all = SCHEMAS.get_or_init(|| {
            Table::ALL
                .iter()
                .map(|&t| {
                    let parsed = TableSchema::parse(t.source())
                        .unwrap_or_else(|e| panic!("schemas/{}.toml is invalid: {e}", t.name()));
                    assert_eq!(
                        parsed.table,
                        t.name(),
                        "schemas/{}.toml names another table",
                        t.name()
                    );
                    (t, parsed)
                })
                .collect()
        });
        &all[&self]
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Table {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self> {
        Table::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| StoreError::UnknownTable {
                table: s.to_string(),
            })
    }
}

/// Column types a schema file may use, and their Arrow equivalents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnType {
    /// UTF-8 string.
    Utf8,
    /// Opaque bytes.
    Binary,
    /// Boolean.
    Boolean,
    /// 32-bit signed integer.
    Int32,
    /// 64-bit signed integer.
    Int64,
    /// 32-bit float.
    Float32,
    /// 64-bit float.
    Float64,
    /// Microseconds since the Unix epoch, UTC.
    TimestampUs,
}

impl ColumnType {
    /// The Arrow data type stored for this column type.
    pub fn data_type(self) -> DataType {
        match self {
            ColumnType::Utf8 => DataType::Utf8,
            ColumnType::Binary => DataType::Binary,
            ColumnType::Boolean => DataType::Boolean,
            ColumnType::Int32 => DataType::Int32,
            ColumnType::Int64 => DataType::Int64,
            ColumnType::Float32 => DataType::Float32,
            ColumnType::Float64 => DataType::Float64,
            ColumnType::TimestampUs => {
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
            }
        }
    }
}

/// One stored column of a table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnSchema {
    /// Column name (snake_case).
    pub name: String,
    /// Column type.
    #[serde(rename = "type")]
    pub column_type: ColumnType,
    /// Whether the column may hold nulls.
    pub nullable: bool,
    /// What the column means, with units.
    pub doc: String,
}

/// A table's schema as declared in `schemas/`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableSchema {
    /// Table name.
    pub table: String,
    /// Schema version, written into every Parquet file of the table.
    pub version: u32,
    /// What one row of the table is.
    pub doc: String,
    /// Stored columns, in file order.
    pub columns: Vec<ColumnSchema>,
    #[serde(skip)]
    arrow: Option<SchemaRef>,
}

impl TableSchema {
    /// Parses a schema file; used for the compiled-in files and by tests.
    pub fn parse(text: &str) -> std::result::Result<Self, toml::de::Error> {
        let mut schema: TableSchema = toml::from_str(text)?;
        let fields: Vec<Field> = schema
            .columns
            .iter()
            // Docs stay in schemas/ rather than in field metadata: engines
            // compare field metadata when unioning and joining plans.
            .map(|c| Field::new(&c.name, c.column_type.data_type(), c.nullable))
            .collect();
        let metadata = HashMap::from([
            (META_TABLE.to_string(), schema.table.clone()),
            (META_SCHEMA_VERSION.to_string(), schema.version.to_string()),
        ]);
        schema.arrow = Some(Arc::new(Schema::new_with_metadata(fields, metadata)));
        Ok(schema)
    }

    /// The Arrow schema of the stored columns (the partition column excluded),
    /// with the table name and version in its metadata.
    pub fn arrow_schema(&self) -> SchemaRef {
        self.arrow.clone().expect("set by parse")
    }

    /// Checks that a batch's schema is exactly this table's: same column names
    /// in the same order, same types, same nullability.
    pub fn check(&self, batch_schema: &Schema) -> Result<()> {
        let table = self.table.clone();
        let expected = self.arrow_schema();
        for (i, want) in expected.fields().iter().enumerate() {
            let Some(got) = batch_schema.fields().get(i) else {
                return Err(StoreError::SchemaMismatch {
                    table,
                    column: want.name().clone(),
                    problem: "missing from the batch".into(),
                });
            };
            if got.name() != want.name() {
                return Err(StoreError::SchemaMismatch {
                    table,
                    column: want.name().clone(),
                    problem: format!("expected at position {i}, found column `{}`", got.name()),
                });
            }
            if got.data_type() != want.data_type() {
                return Err(StoreError::SchemaMismatch {
                    table,
                    column: want.name().clone(),
                    problem: format!(
                        "type is {}, schema says {}",
                        got.data_type(),
                        want.data_type()
                    ),
                });
            }
            if got.is_nullable() != want.is_nullable() {
                return Err(StoreError::SchemaMismatch {
                    table,
                    column: want.name().clone(),
                    problem: format!(
                        "nullable is {}, schema says {}",
                        got.is_nullable(),
                        want.is_nullable()
                    ),
                });
            }
        }
        if let Some(extra) = batch_schema.fields().get(expected.fields().len()) {
            return Err(StoreError::SchemaMismatch {
                table,
                column: extra.name().clone(),
                problem: "not in the schema".into(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_parses_and_documents_every_column() {
        for t in Table::ALL {
            let s = t.schema();
            assert_eq!(s.table, t.name());
            assert!(s.version >= 1);
            assert!(!s.columns.is_empty());
            for c in &s.columns {
                assert!(!c.doc.trim().is_empty(), "{}.{} has no doc", t, c.name);
                assert_ne!(c.name, PARTITION_COLUMN, "{t} stores the partition column");
            }
        }
    }

    #[test]
    fn check_names_the_offending_column() {
        let s = Table::Reflections.schema();
        let good = s.arrow_schema();
        assert!(s.check(&good).is_ok());
        let mut fields: Vec<Field> = good.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields[3] = Field::new(fields[3].name(), DataType::Int64, false);
        let err = s.check(&Schema::new(fields)).unwrap_err().to_string();
        assert!(err.contains("trigger_step"), "{err}");
        assert!(err.contains("reflections"), "{err}");
    }
}
