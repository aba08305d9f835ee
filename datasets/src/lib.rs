//! Deterministic, realistic microservice traces for tests and benchmarks.
//!
//! A [`Generator`] draws a layered service graph (edge → mid-tier →
//! backend, databases, caches and queues; see [`topology`]) from a seed and
//! walks it once per simulated request, yielding request-sized OTLP
//! `ExportTraceServiceRequest`s: an iterator that never holds more than one
//! request, so `large` (~100M spans) streams in constant memory.
//!
//! ```no_run
//! use spanlake_datasets::{GenConfig, Generator, Size};
//! let config = GenConfig { spans: Size::Small.spans(), seed: 42, ..GenConfig::default() };
//! for request in Generator::new(config).unwrap() {
//!     // request.resource_spans: one ResourceSpans per pod, complete traces only
//! }
//! ```
//!
//! [`write_dir`] writes the requests as OTLP protobuf or OTLP/JSON files;
//! [`send`] sends them to a running server over OTLP gRPC or HTTP at a target
//! rate over N connections.
//!
//! Determinism: the same [`GenConfig`] gives the same bytes on every run, for
//! a given version of this crate (ChaCha8 streams, bijective id sequences, no
//! clocks, no hash-map iteration order); across platforms only the math
//! library's rounding of `ln`/`exp`/`cos`/`powf` could move a nanosecond.

mod attrs;
pub mod dist;
mod error;
mod generator;
mod output;
mod send;
pub mod topology;
pub mod vocab;

#[cfg(test)]
mod tests;

pub use error::{Error, Result};
pub use generator::{DEFAULT_START_UNIX_NANO, GenConfig, GenStats, Generator, MAX_SERVICES, MAX_TRACE_SPANS, MIN_SERVICES};
pub use output::{OutputFormat, WriteReport, encode, file_name, write_dir};
pub use send::{Endpoint, SendOptions, SendReport, send};

use std::fmt;
use std::str::FromStr;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

/// The named dataset sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// ~10k spans: for tests.
    Tiny,
    /// ~1M spans.
    Small,
    /// ~10M spans.
    Medium,
    /// ~100M spans: streamed, never held in memory.
    Large,
}

impl Size {
    /// Every size, smallest first.
    pub const ALL: [Size; 4] = [Size::Tiny, Size::Small, Size::Medium, Size::Large];

    /// Target number of spans.
    pub fn spans(self) -> u64 {
        match self {
            Size::Tiny => 10_000,
            Size::Small => 1_000_000,
            Size::Medium => 10_000_000,
            Size::Large => 100_000_000,
        }
    }

    /// Lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Size::Tiny => "tiny",
            Size::Small => "small",
            Size::Medium => "medium",
            Size::Large => "large",
        }
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Size {
    type Err = Error;

    fn from_str(s: &str) -> Result<Size> {
        Size::ALL
            .into_iter()
            .find(|size| size.name() == s)
            .ok_or_else(|| Error::InvalidValue { value: s.to_owned(), expected: "tiny, small, medium or large" })
    }
}

/// Number of spans in a request.
pub fn span_count(request: &ExportTraceServiceRequest) -> u64 {
    request.resource_spans.iter().flat_map(|r| &r.scope_spans).map(|s| s.spans.len() as u64).sum()
}

/// Parses a start time: Unix seconds, or `now` (the wall clock, which of
/// course makes the output differ between runs).
pub fn parse_start(s: &str) -> Result<u64> {
    if s == "now" {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        return Ok(now.as_nanos() as u64);
    }
    s.parse::<u64>()
        .ok()
        .and_then(|secs| secs.checked_mul(1_000_000_000))
        .ok_or_else(|| Error::InvalidValue { value: s.to_owned(), expected: "Unix seconds or `now`" })
}
