//! Writing a dataset as files: one OTLP `ExportTraceServiceRequest` per
//! file, protobuf or OTLP/JSON, named in order (`00000000.otlp.pb`, ...).

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

use crate::error::{Error, Result};
use crate::generator::Generator;

/// File encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// Binary protobuf, as sent to `/v1/traces` with `application/x-protobuf`.
    OtlpProto,
    /// OTLP/JSON (hex ids, camelCase), as sent with `application/json`.
    OtlpJson,
}

impl OutputFormat {
    /// File name extension.
    pub fn extension(self) -> &'static str {
        match self {
            OutputFormat::OtlpProto => "otlp.pb",
            OutputFormat::OtlpJson => "otlp.json",
        }
    }

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            OutputFormat::OtlpProto => "otlp-proto",
            OutputFormat::OtlpJson => "otlp-json",
        }
    }
}

impl fmt::Display for OutputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for OutputFormat {
    type Err = Error;

    fn from_str(s: &str) -> Result<OutputFormat> {
        [OutputFormat::OtlpProto, OutputFormat::OtlpJson]
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| Error::InvalidValue { value: s.to_owned(), expected: "otlp-proto or otlp-json" })
    }
}

/// One request encoded as `format`.
pub fn encode(request: &ExportTraceServiceRequest, format: OutputFormat) -> Result<Vec<u8>> {
    match format {
        OutputFormat::OtlpProto => Ok(request.encode_to_vec()),
        OutputFormat::OtlpJson => Ok(serde_json::to_vec(request)?),
    }
}

/// Name of the `index`th request file.
pub fn file_name(index: u64, format: OutputFormat) -> String {
    format!("{index:08}.{}", format.extension())
}

/// What [`write_dir`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteReport {
    /// Files (requests) written.
    pub files: u64,
    /// Spans in them.
    pub spans: u64,
    /// Traces in them.
    pub traces: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Wall time, generation included.
    pub elapsed: Duration,
}

/// Writes every request of `generator` into `dir` (created if missing).
pub fn write_dir(generator: Generator, dir: &Path, format: OutputFormat) -> Result<WriteReport> {
    let started = Instant::now();
    std::fs::create_dir_all(dir).map_err(Error::io(format!("creating {}", dir.display())))?;
    let mut generator = generator;
    let (mut files, mut bytes) = (0, 0);
    for request in generator.by_ref() {
        let body = encode(&request, format)?;
        let path = dir.join(file_name(files, format));
        std::fs::write(&path, &body).map_err(Error::io(format!("writing {}", path.display())))?;
        files += 1;
        bytes += body.len() as u64;
    }
    let stats = generator.stats();
    Ok(WriteReport { files, spans: stats.spans, traces: stats.traces, bytes, elapsed: started.elapsed() })
}
