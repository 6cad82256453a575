//! Typed row builders for the store's tables: the writer side of `schemas/`.
//!
//! Producers (synth, explore, eval) push borrowed rows and get record batches
//! whose schema is exactly the table's. Each table has one column list, a
//! `table_rows!` invocation below, and the row struct, the builder's fields,
//! `push` and `finish` are all generated from it, so they cannot drift apart.
//! Unit tests check every list against its `schemas/<table>.toml` (names,
//! order, nullability, types), naming the first column that disagrees.
//!
//! Whether a column takes nulls is said once, by the row field's type: a
//! plain value is appended with `append_value`, an `Option` with
//! `append_option` (see `Append`). Builders append straight into Arrow
//! buffers, so pushing a row allocates nothing per row.
//!
//! The `runs` row is written by [`super::RunWriter::commit`] itself and has
//! no builder here.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Float32Builder, Float64Builder, Int32Builder,
    Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::record_batch::RecordBatch;

use super::Table;

/// An Arrow builder for one column.
trait ColumnBuilder {
    /// Takes the pending cells as an array, leaving the builder empty.
    fn finish_array(&mut self) -> ArrayRef;
}

/// Appends one cell of type `V` to a column builder. Implemented for the
/// plain value (`append_value`, a non-nullable column) and for its `Option`
/// (`append_option`, a nullable one).
trait Append<V>: ColumnBuilder {
    /// Whether a column filled from `V` may hold nulls.
    #[cfg(test)]
    const NULLABLE: bool;
    fn append(&mut self, value: V);
}

/// Builds a `timestamp_us` column: microseconds since the epoch, tagged UTC as
/// `schemas/` declares.
#[derive(Debug)]
struct UtcMicrosBuilder(TimestampMicrosecondBuilder);

impl Default for UtcMicrosBuilder {
    fn default() -> Self {
        Self(TimestampMicrosecondBuilder::new().with_timezone("UTC"))
    }
}

impl UtcMicrosBuilder {
    fn append_value(&mut self, us: i64) {
        self.0.append_value(us);
    }

    fn append_option(&mut self, us: Option<i64>) {
        self.0.append_option(us);
    }

    fn finish(&mut self) -> arrow::array::TimestampMicrosecondArray {
        self.0.finish()
    }
}

/// Implements [`ColumnBuilder`] and [`Append`] (value and option) for each
/// `builder => cell type` pair.
macro_rules! impl_append {
    ($($builder:ty => $value:ty),+ $(,)?) => {$(
        impl ColumnBuilder for $builder {
            fn finish_array(&mut self) -> ArrayRef {
                Arc::new(self.finish())
            }
        }

        impl Append<$value> for $builder {
            #[cfg(test)]
            const NULLABLE: bool = false;
            fn append(&mut self, value: $value) {
                self.append_value(value);
            }
        }

        impl Append<Option<$value>> for $builder {
            #[cfg(test)]
            const NULLABLE: bool = true;
            fn append(&mut self, value: Option<$value>) {
                self.append_option(value);
            }
        }
    )+};
}

impl_append! {
    BooleanBuilder => bool,
    Int32Builder => i32,
    Int64Builder => i64,
    Float32Builder => f32,
    Float64Builder => f64,
    StringBuilder => &str,
    BinaryBuilder => &[u8],
    UtcMicrosBuilder => i64,
}

/// One column of a generated row type, as the tests compare it with `schemas/`.
#[cfg(test)]
#[derive(Debug, Clone, Copy)]
struct RowColumn {
    name: &'static str,
    nullable: bool,
}

/// The stored column name of a field: the field's own name unless the list
/// says `field as column`.
#[cfg(test)]
macro_rules! column_name {
    ($field:ident) => {
        stringify!($field)
    };
    ($field:ident $column:ident) => {
        stringify!($column)
    };
}

/// Generates a table's row struct and batch builder from its one column list.
///
/// Each entry is `field: RowType => ColumnBuilder`, in `schemas/` order;
/// `field as column: …` stores the field under another column name. The row
/// type decides value versus option appends (and so nullability).
macro_rules! table_rows {
    (
        $(#[$row_meta:meta])*
        $row:ident<$lt:lifetime>,
        $(#[$builder_meta:meta])*
        $builder:ident => $table:path {
            $($field:ident $(as $column:ident)? : $ty:ty => $column_builder:ty),+ $(,)?
        }
    ) => {
        $(#[$row_meta])*
        #[derive(Debug, Clone)]
        pub struct $row<$lt> {
            $(pub $field: $ty,)+
        }

        #[cfg(test)]
        impl<$lt> $row<$lt> {
            const TABLE: Table = $table;
            const COLUMNS: &'static [RowColumn] = &[$(RowColumn {
                name: column_name!($field $($column)?),
                nullable: <$column_builder as Append<$ty>>::NULLABLE,
            }),+];
        }

        $(#[$builder_meta])*
        #[derive(Debug, Default)]
        pub struct $builder {
            $($field: $column_builder,)+
            rows: usize,
        }

        impl $builder {
            /// Appends a row.
            pub fn push(&mut self, r: &$row<'_>) {
                $(Append::append(&mut self.$field, r.$field);)+
                self.rows += 1;
            }

            /// Rows pushed since the last `finish`.
            pub fn len(&self) -> usize {
                self.rows
            }

            /// Whether no rows are pending.
            pub fn is_empty(&self) -> bool {
                self.rows == 0
            }

            /// Takes the pending rows as a batch with the table's schema.
            pub fn finish(&mut self) -> RecordBatch {
                self.rows = 0;
                batch($table, vec![$(self.$field.finish_array()),+])
            }
        }
    };
}

fn batch(table: Table, columns: Vec<ArrayRef>) -> RecordBatch {
    RecordBatch::try_new(table.schema().arrow_schema(), columns).unwrap_or_else(|e| {
        panic!("row builder for {table} disagrees with schemas/{table}.toml: {e}")
    })
}

table_rows! {
    /// One row of `episodes` (see `schemas/episodes.toml` for each field's meaning).
    EpisodeRow<'a>,
    /// Accumulates `episodes` rows into a record batch.
    EpisodeBatchBuilder => Table::Episodes {
        episode_id: i64 => Int64Builder,
        tree_id: i64 => Int64Builder,
        parent_episode_id: Option<i64> => Int64Builder,
        reflection_id: Option<i64> => Int64Builder,
        rollback_step: Option<i32> => Int32Builder,
        depth: i32 => Int32Builder,
        sample_index: i32 => Int32Builder,
        origin: &'a str => StringBuilder,
        task_id: &'a str => StringBuilder,
        task_source: Option<&'a str> => StringBuilder,
        split: Option<&'a str> => StringBuilder,
        policy: &'a str => StringBuilder,
        experience_in_context: bool => BooleanBuilder,
        success: bool => BooleanBuilder,
        status: &'a str => StringBuilder,
        episode_return: f64 => Float64Builder,
        length: i32 => Int32Builder,
        interaction_cost: i64 => Int64Builder,
        created_at_us as created_at: i64 => UtcMicrosBuilder,
        error: Option<&'a str> => StringBuilder,
    }
}

table_rows! {
    /// One row of `steps` (see `schemas/steps.toml`).
    StepRow<'a>,
    /// Accumulates `steps` rows into a record batch.
    StepBatchBuilder => Table::Steps {
        episode_id: i64 => Int64Builder,
        t: i32 => Int32Builder,
        observation: &'a str => StringBuilder,
        state: Option<&'a [u8]> => BinaryBuilder,
        action: i32 => Int32Builder,
        action_text: &'a str => StringBuilder,
        reward: f32 => Float32Builder,
        done: bool => BooleanBuilder,
        feedback: &'a str => StringBuilder,
        mistake: Option<&'a str> => StringBuilder,
        log_prob: f32 => Float32Builder,
        experience_in_context: bool => BooleanBuilder,
        llm_call_id: Option<i64> => Int64Builder,
        flags: Option<&'a str> => StringBuilder,
        info: Option<&'a str> => StringBuilder,
        legal_actions: Option<&'a str> => StringBuilder,
    }
}

table_rows! {
    /// One row of `reflections` (see `schemas/reflections.toml`).
    ReflectionRow<'a>,
    /// Accumulates `reflections` rows into a record batch.
    ReflectionBatchBuilder => Table::Reflections {
        reflection_id: i64 => Int64Builder,
        episode_id: i64 => Int64Builder,
        tree_id: i64 => Int64Builder,
        trigger_step: i32 => Int32Builder,
        rollback_step: i32 => Int32Builder,
        critical_action: Option<i32> => Int32Builder,
        critical_action_text: Option<&'a str> => StringBuilder,
        category: &'a str => StringBuilder,
        diagnosis: &'a str => StringBuilder,
        fix: &'a str => StringBuilder,
        suggested_actions: Option<&'a str> => StringBuilder,
        reflector: &'a str => StringBuilder,
        created_at_us as created_at: i64 => UtcMicrosBuilder,
        llm_call_id: Option<i64> => Int64Builder,
    }
}

table_rows! {
    /// One row of `llm_calls` (see `schemas/llm_calls.toml`).
    LlmCallRow<'a>,
    /// Accumulates `llm_calls` rows into a record batch.
    LlmCallBatchBuilder => Table::LlmCalls {
        call_id: i64 => Int64Builder,
        kind: &'a str => StringBuilder,
        attempt: i32 => Int32Builder,
        model: &'a str => StringBuilder,
        request_key: &'a str => StringBuilder,
        seed: Option<i64> => Int64Builder,
        messages: &'a str => StringBuilder,
        completion: Option<&'a str> => StringBuilder,
        parsed: Option<&'a str> => StringBuilder,
        valid: bool => BooleanBuilder,
        error: Option<&'a str> => StringBuilder,
        prompt_tokens: Option<i64> => Int64Builder,
        completion_tokens: Option<i64> => Int64Builder,
        log_prob: Option<f32> => Float32Builder,
        latency_ms: f64 => Float64Builder,
        retries: i32 => Int32Builder,
        cached: bool => BooleanBuilder,
        response: Option<&'a str> => StringBuilder,
        created_at_us as created_at: i64 => UtcMicrosBuilder,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every generated column list, with the table it writes.
    fn lists() -> [(&'static str, Table, &'static [RowColumn]); 4] {
        [
            ("EpisodeRow", EpisodeRow::TABLE, EpisodeRow::COLUMNS),
            ("StepRow", StepRow::TABLE, StepRow::COLUMNS),
            (
                "ReflectionRow",
                ReflectionRow::TABLE,
                ReflectionRow::COLUMNS,
            ),
            ("LlmCallRow", LlmCallRow::TABLE, LlmCallRow::COLUMNS),
        ]
    }

    /// The first way a row's column list disagrees with `schemas/<table>.toml`,
    /// naming the column.
    fn disagreement(row: &str, table: Table, columns: &[RowColumn]) -> Option<String> {
        let file = format!("schemas/{table}.toml");
        let want = &table.schema().columns;
        if let Some(c) = want
            .iter()
            .find(|c| !columns.iter().any(|r| r.name == c.name))
        {
            return Some(format!(
                "column `{table}.{}` is in {file} but not in {row}",
                c.name
            ));
        }
        if let Some(r) = columns
            .iter()
            .find(|r| !want.iter().any(|c| c.name == r.name))
        {
            return Some(format!(
                "column `{table}.{}` is in {row} but not in {file}",
                r.name
            ));
        }
        for (i, (c, r)) in want.iter().zip(columns).enumerate() {
            if c.name != r.name {
                return Some(format!(
                    "column {i} of `{table}` is `{}` in {file} but `{}` in {row}",
                    c.name, r.name
                ));
            }
            if c.nullable != r.nullable {
                return Some(format!(
                    "column `{table}.{}` has nullable = {} in {file}, but {row} makes it {}",
                    c.name,
                    c.nullable,
                    if r.nullable {
                        "an Option"
                    } else {
                        "a plain value"
                    }
                ));
            }
        }
        None
    }

    #[test]
    fn every_column_list_matches_its_schema_file() {
        for (row, table, columns) in lists() {
            assert_eq!(disagreement(row, table, columns), None);
        }
    }

    #[test]
    fn a_drifted_column_list_is_named() {
        let steps = StepRow::COLUMNS.to_vec();

        // A column in the TOML that the builder lacks.
        let mut missing = steps.clone();
        missing.retain(|c| c.name != "reward");
        let err = disagreement("StepRow", Table::Steps, &missing).unwrap();
        assert!(
            err.contains("`steps.reward` is in schemas/steps.toml"),
            "{err}"
        );

        // A builder column the TOML lacks.
        let mut extra = steps.clone();
        extra.push(RowColumn {
            name: "entropy",
            nullable: false,
        });
        let err = disagreement("StepRow", Table::Steps, &extra).unwrap();
        assert!(
            err.contains("`steps.entropy` is in StepRow but not in"),
            "{err}"
        );

        // Same names, another order.
        let mut swapped = steps.clone();
        swapped.swap(1, 2);
        let err = disagreement("StepRow", Table::Steps, &swapped).unwrap();
        assert!(err.contains("column 1 of `steps` is `t`"), "{err}");

        // A nullable column filled from a plain value.
        let mut strict = steps;
        strict
            .iter_mut()
            .find(|c| c.name == "mistake")
            .unwrap()
            .nullable = false;
        let err = disagreement("StepRow", Table::Steps, &strict).unwrap();
        assert!(err.contains("`steps.mistake` has nullable = true"), "{err}");
    }

    #[test]
    fn every_builder_finishes_to_exactly_its_schema() {
        // `finish` checks column types through `RecordBatch::try_new`; an empty
        // batch is enough to exercise it.
        let batches = [
            (Table::Episodes, EpisodeBatchBuilder::default().finish()),
            (Table::Steps, StepBatchBuilder::default().finish()),
            (
                Table::Reflections,
                ReflectionBatchBuilder::default().finish(),
            ),
        ];
        for (table, batch) in batches {
            assert_eq!(batch.schema(), table.schema().arrow_schema(), "{table}");
            table.schema().check(&batch.schema()).unwrap();
        }
    }

    #[test]
    fn push_appends_values_and_nulls_and_finish_resets() {
        use arrow::array::{Array, AsArray};
        use arrow::datatypes::{Int32Type, TimestampMicrosecondType};

        let mut b = ReflectionBatchBuilder::default();
        assert!(b.is_empty());
        let row = |critical_action| ReflectionRow {
            reflection_id: 0,
            episode_id: 1,
            tree_id: 1,
            trigger_step: 2,
            rollback_step: 1,
            critical_action,
            critical_action_text: None,
            category: "loop",
            diagnosis: "d",
            fix: "f",
            suggested_actions: None,
            reflector: "r",
            created_at_us: 42,
            llm_call_id: None,
        };
        b.push(&row(Some(3)));
        b.push(&row(None));
        assert_eq!(b.len(), 2);
        let batch = b.finish();
        assert!(b.is_empty());
        assert_eq!(batch.num_rows(), 2);
        let critical = batch
            .column_by_name("critical_action")
            .unwrap()
            .as_primitive::<Int32Type>();
        assert_eq!((critical.value(0), critical.is_null(1)), (3, true));
        let created = batch
            .column_by_name("created_at")
            .unwrap()
            .as_primitive::<TimestampMicrosecondType>();
        assert_eq!(created.value(1), 42);
        assert_eq!(b.finish().num_rows(), 0);
    }
}
