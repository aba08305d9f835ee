//! The Jaeger agent's UDP ports: each datagram is one `Agent.emitBatch`
//! message, compact protocol on :6831, binary on :6832.
//!
//! UDP has no acknowledgement: a datagram is gone once received, whatever
//! happens to it. Every datagram is counted
//! (`spanlake_receiver_udp_datagrams_total`); malformed ones are counted
//! (`spanlake_receiver_malformed_payloads_total`) and dropped, and so are
//! datagrams whose write is refused or that arrive while
//! [`MAX_IN_FLIGHT`] writes are pending
//! (`spanlake_receiver_udp_datagrams_dropped_total{reason}`). Nothing stops
//! the listener but shutdown.

use std::future::Future;
use std::sync::Arc;

use spanlake_engine::ErrorKind;
use tokio::net::UdpSocket;
use tokio::sync::Semaphore;

use super::thrift::{ThriftProtocol, decode_emit_batch};
use crate::distributor::Distributor;

/// Largest datagram accepted (the Jaeger agent's default max packet size is
/// 65 000 bytes; anything up to the UDP maximum is read whole).
pub const MAX_DATAGRAM_BYTES: usize = 65_535;

/// Writes from one UDP port pending at once; beyond it datagrams are
/// dropped (and counted) instead of queueing without bound.
pub const MAX_IN_FLIGHT: usize = 256;

/// Serves one agent port until `shutdown` resolves.
pub async fn serve_agent_udp(
    socket: UdpSocket,
    protocol: ThriftProtocol,
    distributor: Distributor,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let name = match protocol {
        ThriftProtocol::Compact => "jaeger_thrift_compact",
        ThriftProtocol::Binary => "jaeger_thrift_binary",
    };
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut buf = vec![0u8; MAX_DATAGRAM_BYTES + 1];
    tokio::pin!(shutdown);
    loop {
        let len = tokio::select! {
            _ = &mut shutdown => break,
            received = socket.recv_from(&mut buf) => match received {
                Ok((len, _)) => len,
                // ICMP errors and the like surface here; the socket stays usable.
                Err(e) => {
                    tracing::debug!(error = %e, protocol = name, "UDP receive error");
                    continue;
                }
            },
        };
        let metrics = distributor.metrics();
        metrics.datagram(name);
        let batch = match decode_emit_batch(&buf[..len], protocol) {
            Ok(batch) => batch,
            Err(e) => {
                tracing::debug!(error = %e, protocol = name, len, "malformed datagram dropped");
                metrics.malformed(name);
                metrics.datagram_dropped(name, "malformed");
                continue;
            }
        };
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            metrics.datagram_dropped(name, "overloaded");
            continue;
        };
        let distributor = distributor.clone();
        tokio::spawn(async move {
            let _permit = permit;
            // UDP carries no headers: the default tenant (refused when
            // multitenancy requires an org id).
            let result = match distributor.tenant(None) {
                Ok(tenant) => distributor.push(&tenant, name, len, &batch.into_otlp()).await.map(|_| ()),
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, protocol = name, "datagram dropped");
                let reason = match e.kind() {
                    ErrorKind::ResourceExhausted => "rate_limited",
                    ErrorKind::Unauthenticated => "no_tenant",
                    ErrorKind::InvalidArgument => "invalid",
                    _ => "internal_error",
                };
                distributor.metrics().datagram_dropped(name, reason);
            }
        });
    }
    Ok(())
}
