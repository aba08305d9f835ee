//! `distributor:` configuration: receiver endpoints (the OpenTelemetry
//! Collector's keys, as in Tempo) and request limits.

use serde::Deserialize;

use crate::body::BodyLimits;

/// `distributor:` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DistributorConfig {
    pub receivers: ReceiversConfig,
    /// Largest request body on the wire (bytes).
    pub max_request_bytes: Option<usize>,
    /// Largest request after decompression (bytes); also the gRPC message limit.
    pub max_decompressed_bytes: Option<usize>,
}

impl DistributorConfig {
    /// The body limits, defaults filled in.
    pub fn limits(&self) -> BodyLimits {
        let d = BodyLimits::default();
        BodyLimits {
            max_request_bytes: self.max_request_bytes.unwrap_or(d.max_request_bytes),
            max_decompressed_bytes: self.max_decompressed_bytes.unwrap_or(d.max_decompressed_bytes),
        }
    }
}

/// `distributor.receivers:` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReceiversConfig {
    pub otlp: OtlpReceiverConfig,
}

/// `distributor.receivers.otlp:` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OtlpReceiverConfig {
    pub protocols: OtlpProtocols,
}

/// `distributor.receivers.otlp.protocols:` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OtlpProtocols {
    pub grpc: Endpoint,
    pub http: Endpoint,
}

impl Default for OtlpProtocols {
    fn default() -> Self {
        Self { grpc: Endpoint::new("127.0.0.1:4317"), http: Endpoint::new("127.0.0.1:4318") }
    }
}

/// A receiver's listen address; `enabled: false` switches it off.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    pub endpoint: String,
    #[serde(default = "enabled")]
    pub enabled: bool,
}

fn enabled() -> bool {
    true
}

impl Endpoint {
    /// An enabled endpoint at `addr`.
    pub fn new(addr: &str) -> Self {
        Self { endpoint: addr.to_owned(), enabled: true }
    }
}
