//! Where records go: a JSON Lines or a Parquet (verl) file in a store,
//! local or S3.
//!
//! A sink writes through one object upload, so the file appears whole when
//! the export finishes or not at all (an empty or failed export aborts the
//! upload). Memory is bounded: JSONL is flushed every MiB, Parquet every
//! 8192 records.

use arrow::array::RecordBatch;
use arrow::datatypes::Schema;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

use super::formats::verl_schema;
use super::{ExportError, Format};
use crate::store::Store;

/// Splits `--out` into the store it lies in and the file's name there.
pub(super) fn split_output(out: &str) -> Result<(String, String), ExportError> {
    let out = out.trim();
    let (dir, file) = match out.rsplit_once('/') {
        Some((d, f)) if !f.is_empty() => (d.to_string(), f.to_string()),
        Some(_) => {
            return Err(ExportError::Invalid(format!(
                "--out {out} names a directory; give a file name"
            )));
        }
        None => (".".to_string(), out.to_string()),
    };
    if dir.is_empty() {
        return Ok(("/".into(), file));
    }
    if dir == "s3:/" || dir.ends_with(":/") {
        return Err(ExportError::Invalid(format!(
            "--out {out}: give s3://bucket/key, a key inside a bucket"
        )));
    }
    Ok((dir, file))
}

/// An open output file.
pub(super) enum Sink {
    Jsonl {
        out: Box<object_store::buffered::BufWriter>,
        buf: Vec<u8>,
    },
    Parquet {
        writer: Box<parquet::arrow::AsyncArrowWriter<object_store::buffered::BufWriter>>,
        pending: Vec<Value>,
        schema: std::sync::Arc<Schema>,
    },
}

impl Sink {
    pub(super) fn new(store: &Store, file: &str, format: Format) -> Sink {
        let out = store.object_writer(file);
        match format {
            Format::VerlParquet => {
                let schema = std::sync::Arc::new(verl_schema());
                let props = parquet::file::properties::WriterProperties::builder()
                    .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
                    .build();
                Sink::Parquet {
                    writer: Box::new(
                        parquet::arrow::AsyncArrowWriter::try_new(out, schema.clone(), Some(props))
                            .expect("static verl schema"),
                    ),
                    pending: Vec::new(),
                    schema,
                }
            }
            _ => Sink::Jsonl {
                out: Box::new(out),
                buf: Vec::new(),
            },
        }
    }

    pub(super) async fn write(&mut self, record: Value) -> Result<(), ExportError> {
        match self {
            Sink::Jsonl { out, buf } => {
                serde_json::to_writer(&mut *buf, &record).expect("json serializes");
                buf.push(b'\n');
                if buf.len() >= 1 << 20 {
                    out.write_all(buf).await.map_err(io_err)?;
                    buf.clear();
                }
            }
            Sink::Parquet {
                writer,
                pending,
                schema,
            } => {
                pending.push(record);
                if pending.len() >= 8192 {
                    let batch = to_batch(schema, pending)?;
                    pending.clear();
                    writer.write(&batch).await.map_err(parquet_err)?;
                }
            }
        }
        Ok(())
    }

    pub(super) async fn finish(self) -> Result<(), ExportError> {
        match self {
            Sink::Jsonl { mut out, buf } => {
                out.write_all(&buf).await.map_err(io_err)?;
                out.shutdown().await.map_err(io_err)?;
            }
            Sink::Parquet {
                writer,
                pending,
                schema,
            } => {
                let mut writer = *writer;
                if !pending.is_empty() {
                    let batch = to_batch(&schema, &pending)?;
                    writer.write(&batch).await.map_err(parquet_err)?;
                }
                writer.close().await.map_err(parquet_err)?;
            }
        }
        Ok(())
    }

    pub(super) async fn abort(self) {
        match self {
            Sink::Jsonl { mut out, .. } => {
                let _ = out.abort().await;
            }
            Sink::Parquet { writer, .. } => {
                let mut inner = (*writer).into_inner();
                let _ = inner.abort().await;
            }
        }
    }
}

fn to_batch(schema: &std::sync::Arc<Schema>, rows: &[Value]) -> Result<RecordBatch, ExportError> {
    let mut decoder = arrow::json::ReaderBuilder::new(schema.clone())
        .build_decoder()
        .map_err(|e| ExportError::Other(e.into()))?;
    decoder
        .serialize(rows)
        .map_err(|e| ExportError::Other(e.into()))?;
    Ok(decoder
        .flush()
        .map_err(|e| ExportError::Other(e.into()))?
        .expect("rows were given"))
}

fn io_err(e: std::io::Error) -> ExportError {
    ExportError::Other(anyhow::anyhow!("writing the export: {e}"))
}

fn parquet_err(e: parquet::errors::ParquetError) -> ExportError {
    ExportError::Other(anyhow::anyhow!("writing the export: {e}"))
}
