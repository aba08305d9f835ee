//! The one write path every receiver uses: tenant resolution, validation,
//! conversion to the span table, WAL append and the ingest metrics.

use std::sync::Arc;

use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use spanlake_engine::convert::{convert_export_request, count_spans, encode_request};
use spanlake_engine::ingester::{Ingester, validate_tenant};

use crate::error::Result;

/// Tenant used when a request names none (Tempo's default).
pub const DEFAULT_TENANT: &str = "single-tenant";

/// Header (and gRPC metadata key) naming the tenant.
pub const TENANT_HEADER: &str = "x-scope-orgid";

/// How requests name their tenant.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tenancy {
    /// Multi-tenant mode: a request without `X-Scope-OrgID` is refused
    /// instead of going to [`DEFAULT_TENANT`].
    pub required: bool,
}

impl Tenancy {
    /// The tenant a request names in `X-Scope-OrgID` (`value`), validated.
    pub fn resolve(self, value: Option<&[u8]>) -> Result<String> {
        if self.required && value.is_none() {
            return Err(spanlake_engine::Error::Unauthenticated("no org id (X-Scope-OrgID header)".into()).into());
        }
        tenant_from_header(value)
    }
}

/// The tenant a request names in `X-Scope-OrgID`, or the default; validated.
pub fn tenant_from_header(value: Option<&[u8]>) -> Result<String> {
    let tenant = match value {
        None => DEFAULT_TENANT.to_owned(),
        Some(v) => std::str::from_utf8(v)
            .map_err(|_| spanlake_engine::Error::invalid("X-Scope-OrgID is not UTF-8"))?
            .trim()
            .to_owned(),
    };
    validate_tenant(&tenant)?;
    Ok(tenant)
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    tenant: String,
    protocol: String,
    result: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantLabels {
    tenant: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DiscardLabels {
    tenant: String,
    reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProtocolLabels {
    protocol: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DropLabels {
    protocol: String,
    reason: String,
}

/// Metrics of the write path (names follow Tempo's distributor).
#[derive(Debug, Clone, Default)]
pub struct DistributorMetrics {
    requests: Family<RequestLabels, Counter>,
    spans_received: Family<TenantLabels, Counter>,
    bytes_received: Family<TenantLabels, Counter>,
    spans_discarded: Family<DiscardLabels, Counter>,
    malformed: Family<ProtocolLabels, Counter>,
    datagrams: Family<ProtocolLabels, Counter>,
    datagrams_dropped: Family<DropLabels, Counter>,
}

impl DistributorMetrics {
    /// Creates the metrics and registers them.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register("tempo_distributor_ingestion_requests", "Write requests by tenant, protocol and result", m.requests.clone());
        registry.register("tempo_distributor_spans_received", "Spans accepted into the WAL", m.spans_received.clone());
        registry.register("tempo_distributor_bytes_received", "Request bytes accepted", m.bytes_received.clone());
        registry.register("tempo_discarded_spans", "Spans refused, by reason", m.spans_discarded.clone());
        registry.register(
            "spanlake_receiver_malformed_payloads",
            "Payloads that could not be decoded, by protocol",
            m.malformed.clone(),
        );
        registry.register(
            "spanlake_receiver_udp_datagrams",
            "UDP datagrams received, by protocol",
            m.datagrams.clone(),
        );
        registry.register(
            "spanlake_receiver_udp_datagrams_dropped",
            "UDP datagrams dropped (UDP has no acknowledgement), by protocol and reason",
            m.datagrams_dropped.clone(),
        );
        m
    }

    /// Counts a payload that could not be decoded.
    pub fn malformed(&self, protocol: &str) {
        self.malformed.get_or_create(&ProtocolLabels { protocol: protocol.to_owned() }).inc();
    }

    /// Counts a UDP datagram received.
    pub fn datagram(&self, protocol: &str) {
        self.datagrams.get_or_create(&ProtocolLabels { protocol: protocol.to_owned() }).inc();
    }

    /// Counts a UDP datagram dropped for `reason` (`malformed`, `overloaded`,
    /// or the refused write's error kind).
    pub fn datagram_dropped(&self, protocol: &str, reason: &str) {
        self.datagrams_dropped.get_or_create(&DropLabels { protocol: protocol.to_owned(), reason: reason.to_owned() }).inc();
    }

    fn request(&self, tenant: &str, protocol: &str, ok: bool) {
        let labels = RequestLabels {
            tenant: tenant.to_owned(),
            protocol: protocol.to_owned(),
            result: if ok { "success" } else { "error" }.to_owned(),
        };
        self.requests.get_or_create(&labels).inc();
    }

    fn discarded(&self, tenant: &str, reason: &str, n: u64) {
        if n > 0 {
            self.spans_discarded.get_or_create(&DiscardLabels { tenant: tenant.to_owned(), reason: reason.to_owned() }).inc_by(n);
        }
    }
}

/// Outcome of an accepted write: spans that were refused (OTLP partial success).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PushOutcome {
    pub accepted_spans: u64,
    pub rejected_spans: u64,
    /// The first rejection's reason, for the partial-success message.
    pub rejection_message: String,
}

/// Accepts decoded spans from any receiver.
#[derive(Debug, Clone)]
pub struct Distributor {
    ingester: Arc<Ingester>,
    metrics: DistributorMetrics,
    tenancy: Tenancy,
}

impl Distributor {
    /// A distributor writing to `ingester`.
    pub fn new(ingester: Arc<Ingester>, metrics: DistributorMetrics, tenancy: Tenancy) -> Self {
        Self { ingester, metrics, tenancy }
    }

    /// The tenant of a request from its `X-Scope-OrgID` value.
    pub fn tenant(&self, header: Option<&[u8]>) -> Result<String> {
        self.tenancy.resolve(header)
    }

    /// The metrics, for receivers counting malformed payloads.
    pub fn metrics(&self) -> &DistributorMetrics {
        &self.metrics
    }

    /// Validates, converts and durably stores the spans of an OTLP
    /// `ExportTraceServiceRequest` (its protobuf). On `Ok`, every accepted
    /// span is in the WAL; invalid spans are counted in the outcome.
    pub async fn push_protobuf(&self, tenant: &str, protocol: &str, request: &[u8]) -> Result<PushOutcome> {
        self.push_counted(tenant, protocol, request.len(), request).await
    }

    /// [`push_protobuf`](Self::push_protobuf) for spans decoded from OTLP/JSON
    /// or translated from another protocol, whose payload had `payload_bytes`.
    pub async fn push(&self, tenant: &str, protocol: &str, payload_bytes: usize, spans: &[ResourceSpans]) -> Result<PushOutcome> {
        self.push_counted(tenant, protocol, payload_bytes, &encode_request(spans)).await
    }

    /// Pushes `request` and counts it in the metrics as a payload of `payload_bytes`.
    async fn push_counted(&self, tenant: &str, protocol: &str, payload_bytes: usize, request: &[u8]) -> Result<PushOutcome> {
        let result = self.push_inner(tenant, request).await;
        // A payload that does not decode is the receiver's to count (as
        // malformed), as are those that fail before they reach here.
        if result.as_ref().is_err_and(|e| e.is_malformed()) {
            return result;
        }
        self.metrics.request(tenant, protocol, result.is_ok());
        match &result {
            Ok(outcome) => {
                let labels = TenantLabels { tenant: tenant.to_owned() };
                self.metrics.spans_received.get_or_create(&labels).inc_by(outcome.accepted_spans);
                self.metrics.bytes_received.get_or_create(&labels).inc_by(payload_bytes as u64);
                self.metrics.discarded(tenant, "invalid_span", outcome.rejected_spans);
            }
            Err(e) => {
                let reason = match e.kind() {
                    spanlake_engine::ErrorKind::ResourceExhausted => "rate_limited",
                    _ => "internal_error",
                };
                self.metrics.discarded(tenant, reason, count_spans(request) as u64);
            }
        }
        result
    }

    async fn push_inner(&self, tenant: &str, request: &[u8]) -> Result<PushOutcome> {
        let (received, rejected) = convert_export_request(request)?;
        let accepted_spans = received.num_rows() as u64;
        self.ingester.append(tenant, received).await?;
        Ok(PushOutcome {
            accepted_spans,
            rejected_spans: rejected.len() as u64,
            rejection_message: rejected.into_iter().next().unwrap_or_default(),
        })
    }
}
