//! SQL over the store: a DataFusion session with each table registered over
//! committed runs only, and the parameterised queries of `queries/*.sql`.
//!
//! Every table is a Hive-partitioned listing table (`run_id` is the partition
//! column, so `WHERE run_id = '…'` prunes whole runs before any file is
//! opened). Schemas come from `schemas/`, not from file inference, so queries
//! plan on an empty store too. A session sees the runs committed when it was
//! opened (see [`view::CommittedView`]).
//!
//! Query files open with a header comment: what the query returns, then one
//! `-- @param NAME TYPE [= DEFAULT]  description` line per parameter, TYPE one
//! of int, float, string, bool. The body refers to a parameter as `${NAME}`;
//! values are substituted as SQL literals of the declared type (strings are
//! quoted and escaped), so a value can never change the query's structure.
//! A query that reads another query's rows names it in a
//! `-- @input NAME  description` line and reads it as the table `NAME`.
//! Every file of `queries/` is compiled in; [`load_query`] finds one by name.

mod ancestry;
mod catalog;
mod memory;
mod output;
mod params;
mod render;
mod run_sort;
mod session;
pub mod view;

pub use catalog::{embedded_query, load_query, query_names, register_inputs};
pub use memory::{MemoryLimits, SMALL_BATCH_ROWS, SPILL_MERGE_FAN_IN, format_size, parse_size};
pub use output::{OutputFormat, write_batches};
pub use params::{BoundQuery, Dialect, ParamDecl, ParamType, QueryText, like_exact};
pub use render::{Rendered, Statement, check_params, own_values, render};
pub use session::QuerySession;

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::sync::Arc;

use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::prelude::{SessionConfig, SessionContext};
use url::Url;

use crate::store::{PARTITION_COLUMN, Store, StoreError, Table};
use view::CommittedView;

/// Errors of the query boundary.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// Opening the store or reading its markers failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// DataFusion refused or failed the query (syntax, unknown table or column, …).
    #[error("{source_name}: {message}")]
    Sql {
        /// Where the SQL came from: a file name or `command line`.
        source_name: String,
        /// DataFusion's message, on one line.
        message: String,
    },
    /// A `--param` the query does not declare.
    #[error("{source_name}: unknown parameter `{name}` (declared: {declared})")]
    UnknownParam {
        /// Where the SQL came from.
        source_name: String,
        /// The parameter given.
        name: String,
        /// The parameters the query declares.
        declared: String,
    },
    /// A parameter without a value and without a default, or with a bad value.
    #[error("{source_name}: parameter `{name}`: {problem}")]
    BadParam {
        /// Where the SQL came from.
        source_name: String,
        /// The parameter.
        name: String,
        /// What is wrong.
        problem: String,
    },
    /// The query file could not be read.
    #[error("cannot read query file `{path}`: {source}")]
    Io {
        /// The file.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Writing the output failed.
    #[error("writing query output: {0}")]
    Output(String),
    /// The query needs more memory than the limit allows, even spilling.
    #[error(
        "{source_name}: needs more than the memory limit of {limit} even with spilling to {spill_dir} ({detail}); raise --memory-limit (or LEAFE_MEMORY_LIMIT), or select fewer runs"
    )]
    OutOfMemory {
        /// Where the SQL came from.
        source_name: String,
        /// The limit, for people (`512 MiB`).
        limit: String,
        /// Where spill files go.
        spill_dir: String,
        /// What DataFusion said, shortened.
        detail: String,
    },
    /// A query name that is neither in the given directory nor embedded.
    #[error("no query named `{name}` (queries/{name}.sql)")]
    UnknownQuery {
        /// The name asked for.
        name: String,
    },
}

/// Result type of the query boundary.
pub type Result<T, E = QueryError> = std::result::Result<T, E>;

fn one_line(s: impl ToString) -> String {
    s.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_typed_literals_and_unknown_ones_are_refused() {
        let q = QueryText::parse(
            "q.sql",
            "-- @param k int = 3  how many\n-- @param who string\nSELECT ${k}, ${who}",
        )
        .unwrap();
        assert_eq!(q.params.len(), 2);
        assert_eq!(q.params[0].doc, "how many");
        let vals = BTreeMap::from([("who".to_string(), "o'brien".to_string())]);
        assert!(q.bind(&vals).unwrap().sql.ends_with("SELECT 3, 'o''brien'"));
        let bad = BTreeMap::from([
            ("k".to_string(), "1; DROP".to_string()),
            ("who".into(), "x".into()),
        ]);
        assert!(matches!(q.bind(&bad), Err(QueryError::BadParam { .. })));
        let unknown = BTreeMap::from([("nope".to_string(), "1".to_string())]);
        let e = q.bind(&unknown).unwrap_err().to_string();
        assert!(
            e.contains("unknown parameter `nope`") && e.contains("k, who"),
            "{e}"
        );
        assert!(matches!(
            q.bind(&BTreeMap::new()),
            Err(QueryError::BadParam { .. })
        ));
    }

    #[test]
    fn a_value_is_substituted_once_and_quoted_for_the_dialect() {
        let q = QueryText::parse(
            "q.sql",
            "-- @param a string\n-- @param b string\nSELECT ${a}, ${b}, ${c}",
        )
        .unwrap();
        let vals = BTreeMap::from([
            ("a".to_string(), "${b}".to_string()),
            ("b".to_string(), r"it's \d".to_string()),
        ]);
        let std = q.bind(&vals).unwrap().sql;
        assert!(std.ends_with(r"SELECT '${b}', 'it''s \d', ${c}"), "{std}");
        let spark = q.bind_for(&vals, Dialect::Spark).unwrap().sql;
        assert!(
            spark.ends_with(r"SELECT '${b}', 'it\'s \\d', ${c}"),
            "{spark}"
        );
    }
}
