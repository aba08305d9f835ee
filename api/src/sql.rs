//! SQL over spans, read-only, on the same `spans` table TraceQL uses; shared
//! by `spanlake sql` and `POST /api/sql`.

use arrow::record_batch::RecordBatch;
use datafusion::execution::context::SQLOptions;
use spanlake_engine::query::QueryEngine;

use crate::error::{Error, Result};

/// Most rows one SQL answer may hold.
pub const MAX_SQL_ROWS: usize = 1_000_000;

/// Output encodings of SQL results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// An aligned text table.
    Table,
    Csv,
    /// A JSON array of row objects.
    Json,
    Parquet,
    /// Arrow IPC stream.
    Arrow,
}

/// Runs one read-only SQL statement for `tenant`.
pub async fn run_sql(query: &QueryEngine, tenant: &str, sql: &str) -> Result<Vec<RecordBatch>> {
    let ctx = query.session(tenant)?;
    // Queries only: no DDL, no DML, no SET/COPY and friends.
    let options = SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false);
    let df = ctx.sql_with_options(sql, options).await.map_err(spanlake_engine::Error::from)?;
    // Stream the result and stop at the cap rather than holding any size.
    let mut stream = df.execute_stream().await.map_err(spanlake_engine::Error::from)?;
    let (mut batches, mut rows) = (Vec::new(), 0usize);
    while let Some(batch) = futures::StreamExt::next(&mut stream).await {
        let batch = batch.map_err(spanlake_engine::Error::from)?;
        rows += batch.num_rows();
        if rows > MAX_SQL_ROWS {
            return Err(Error::bad_request(format!("the result has more than {MAX_SQL_ROWS} rows; add a LIMIT or aggregate")));
        }
        batches.push(batch);
    }
    Ok(batches)
}

fn arrow_err(e: arrow::error::ArrowError) -> Error {
    Error::Engine(spanlake_engine::Error::from(e))
}

/// Encodes results; an empty result still carries its header where the format has one.
pub fn encode(batches: &[RecordBatch], format: Format) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    match format {
        Format::Table => {
            out = arrow::util::pretty::pretty_format_batches(batches).map_err(arrow_err)?.to_string().into_bytes();
            out.push(b'\n');
        }
        Format::Csv => {
            let mut writer = arrow::csv::WriterBuilder::new().with_header(true).build(&mut out);
            for b in batches {
                writer.write(b).map_err(|e| Error::bad_request(format!("cannot write CSV: {e} (select scalar columns)")))?;
            }
        }
        Format::Json => {
            let mut writer = arrow::json::ArrayWriter::new(&mut out);
            for b in batches {
                writer.write(b).map_err(arrow_err)?;
            }
            writer.finish().map_err(arrow_err)?;
            if out.is_empty() {
                out.extend_from_slice(b"[]");
            }
        }
        Format::Parquet => {
            let Some(first) = batches.first() else { return Ok(out) };
            let mut writer = parquet::arrow::ArrowWriter::try_new(&mut out, first.schema(), None)
                .map_err(|e| Error::Engine(spanlake_engine::Error::from(e)))?;
            for b in batches {
                writer.write(b).map_err(|e| Error::Engine(spanlake_engine::Error::from(e)))?;
            }
            writer.close().map_err(|e| Error::Engine(spanlake_engine::Error::from(e)))?;
        }
        Format::Arrow => {
            let Some(first) = batches.first() else { return Ok(out) };
            let mut writer = arrow::ipc::writer::StreamWriter::try_new(&mut out, &first.schema()).map_err(arrow_err)?;
            for b in batches {
                writer.write(b).map_err(arrow_err)?;
            }
            writer.finish().map_err(arrow_err)?;
        }
    }
    Ok(out)
}
