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
    pub jaeger: JaegerReceiverConfig,
    pub zipkin: ZipkinReceiverConfig,
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

/// `distributor.receivers.jaeger:` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JaegerReceiverConfig {
    pub protocols: JaegerProtocols,
}

/// `distributor.receivers.jaeger.protocols:` section. Every protocol is on
/// by default at Jaeger's loopback port; a protocol given without an
/// `endpoint` keeps its default address (so `thrift_binary: {enabled:
/// false}` is enough to switch one off).
#[derive(Debug, Clone, Deserialize)]
#[serde(from = "RawJaegerProtocols")]
pub struct JaegerProtocols {
    /// gRPC `jaeger.api_v2.CollectorService` (default 127.0.0.1:14250).
    pub grpc: Endpoint,
    /// Thrift over HTTP, `POST /api/traces` (default 127.0.0.1:14268).
    pub thrift_http: Endpoint,
    /// Agent UDP, compact protocol (default 127.0.0.1:6831).
    pub thrift_compact: Endpoint,
    /// Agent UDP, binary protocol (default 127.0.0.1:6832).
    pub thrift_binary: Endpoint,
}

impl Default for JaegerProtocols {
    fn default() -> Self {
        Self {
            grpc: Endpoint::new("127.0.0.1:14250"),
            thrift_http: Endpoint::new("127.0.0.1:14268"),
            thrift_compact: Endpoint::new("127.0.0.1:6831"),
            thrift_binary: Endpoint::new("127.0.0.1:6832"),
        }
    }
}

/// An endpoint whose fields may both be left out.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEndpoint {
    endpoint: Option<String>,
    enabled: Option<bool>,
}

impl RawEndpoint {
    fn or(self, default: Endpoint) -> Endpoint {
        Endpoint { endpoint: self.endpoint.unwrap_or(default.endpoint), enabled: self.enabled.unwrap_or(default.enabled) }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawJaegerProtocols {
    grpc: RawEndpoint,
    thrift_http: RawEndpoint,
    thrift_compact: RawEndpoint,
    thrift_binary: RawEndpoint,
}

impl From<RawJaegerProtocols> for JaegerProtocols {
    fn from(raw: RawJaegerProtocols) -> Self {
        let d = JaegerProtocols::default();
        Self {
            grpc: raw.grpc.or(d.grpc),
            thrift_http: raw.thrift_http.or(d.thrift_http),
            thrift_compact: raw.thrift_compact.or(d.thrift_compact),
            thrift_binary: raw.thrift_binary.or(d.thrift_binary),
        }
    }
}

/// `distributor.receivers.zipkin:` section (default 127.0.0.1:9411).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ZipkinReceiverConfig {
    pub endpoint: String,
    pub enabled: bool,
    /// Parse string tags into bool/int/double attributes (the collector's
    /// `parse_string_tags`; off: every tag stays a string).
    pub parse_string_tags: bool,
}

impl Default for ZipkinReceiverConfig {
    fn default() -> Self {
        Self { endpoint: "127.0.0.1:9411".into(), enabled: true, parse_string_tags: false }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jaeger_and_zipkin_defaults_and_switches() {
        let c: ReceiversConfig = serde_yaml_ng::from_str("{}").unwrap();
        assert_eq!(c.jaeger.protocols.thrift_compact.endpoint, "127.0.0.1:6831");
        assert!(c.zipkin.enabled);
        let c: ReceiversConfig = serde_yaml_ng::from_str(
            "jaeger:\n  protocols:\n    thrift_binary: {enabled: false}\n    grpc: {endpoint: 0.0.0.0:1}\nzipkin: {enabled: false}",
        )
        .unwrap();
        let p = &c.jaeger.protocols;
        assert!(!p.thrift_binary.enabled && p.thrift_binary.endpoint == "127.0.0.1:6832");
        assert!(p.grpc.enabled && p.grpc.endpoint == "0.0.0.0:1");
        assert!(p.thrift_http.enabled && !c.zipkin.enabled);
        assert!(serde_yaml_ng::from_str::<ReceiversConfig>("jaeger: {protocols: {thrift_udp: {}}}").is_err());
    }
}
