//! `spanlake serve`: every role in one process. Binds the query API and the
//! receivers, replays the WAL, runs the flush loop, and on SIGTERM/SIGINT
//! stops accepting, flushes every head to blocks and exits.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use prometheus_client::registry::Registry;
use spanlake_engine::Engine;
use spanlake_engine::metrics::EngineMetrics;
use spanlake_ingest::jaeger::thrift::ThriftProtocol;
use spanlake_ingest::jaeger::{jaeger_grpc_service, jaeger_http_router, serve_agent_udp};
use spanlake_ingest::otlp::{grpc_server, otlp_grpc_service, otlp_http_router};
use spanlake_ingest::zipkin::{TranslateOptions, zipkin_http_router};
use spanlake_ingest::{Distributor, DistributorMetrics, Tenancy};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::http::{AppState, router};

async fn bind(name: &str, addr: &str) -> Result<TcpListener> {
    let listener = TcpListener::bind(addr).await.map_err(Error::io(format!("binding {name} on {addr}")))?;
    Ok(listener)
}

/// Announces a listener on stdout (tests and scripts read the real port
/// from here when the configured port is 0).
fn announce(name: &str, addr: SocketAddr) {
    use std::io::Write;
    println!("{}{name} {addr}", crate::harness::LISTENING);
    let _ = std::io::stdout().flush();
}

/// Resolves once SIGTERM or SIGINT arrives.
async fn termination() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

fn shutdown_signal(rx: &watch::Receiver<bool>) -> impl Future<Output = ()> + Send + 'static {
    let mut rx = rx.clone();
    async move {
        let _ = rx.wait_for(|stop| *stop).await;
    }
}

/// Runs the server until terminated.
pub async fn serve(config: Config) -> Result<()> {
    let mut registry = Registry::default();
    let engine_metrics = EngineMetrics::register(&mut registry);
    let distributor_metrics = DistributorMetrics::register(&mut registry);
    let engine = Engine::open(&config.storage, &config.ingester, &config.compactor.compaction, engine_metrics).await?;
    let tenancy = Tenancy { required: config.multitenancy_enabled };
    let distributor = Distributor::new(engine.ingester.clone(), distributor_metrics, tenancy);
    let limits = config.distributor.limits();
    let ready = Arc::new(AtomicBool::new(false));

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut servers = JoinSet::new();

    let http_addr = format!("{}:{}", config.server.http_listen_address, config.server.http_listen_port);
    let http_listener = bind("http", &http_addr).await?;
    let state = AppState {
        engine: engine.clone(),
        registry: Arc::new(registry),
        tenancy,
        ready: ready.clone(),
        compactor_enabled: !config.compactor.disabled,
    };
    announce("http", http_listener.local_addr().map_err(Error::io("local address"))?);
    let app = router(state);
    let stop = shutdown_signal(&stop_rx);
    servers.spawn(async move {
        axum::serve(http_listener, app).with_graceful_shutdown(stop).await.map_err(Error::io("query API server"))
    });

    let otlp = &config.distributor.receivers.otlp.protocols;
    if otlp.grpc.enabled {
        let listener = bind("otlp_grpc", &otlp.grpc.endpoint).await?;
        announce("otlp_grpc", listener.local_addr().map_err(Error::io("local address"))?);
        let service = otlp_grpc_service(distributor.clone(), limits);
        let stop = shutdown_signal(&stop_rx);
        servers.spawn(async move {
            grpc_server(listener, service, stop)
                .await
                .map_err(|e| Error::io("OTLP gRPC server")(std::io::Error::other(e)))
        });
    }
    if otlp.http.enabled {
        let listener = bind("otlp_http", &otlp.http.endpoint).await?;
        announce("otlp_http", listener.local_addr().map_err(Error::io("local address"))?);
        let app = otlp_http_router(distributor.clone(), limits);
        let stop = shutdown_signal(&stop_rx);
        servers.spawn(async move {
            axum::serve(listener, app).with_graceful_shutdown(stop).await.map_err(Error::io("OTLP HTTP server"))
        });
    }

    let jaeger = &config.distributor.receivers.jaeger.protocols;
    if jaeger.grpc.enabled {
        let listener = bind("jaeger_grpc", &jaeger.grpc.endpoint).await?;
        announce("jaeger_grpc", listener.local_addr().map_err(Error::io("local address"))?);
        let service = jaeger_grpc_service(distributor.clone(), limits);
        let stop = shutdown_signal(&stop_rx);
        servers.spawn(async move {
            grpc_server(listener, service, stop)
                .await
                .map_err(|e| Error::io("Jaeger gRPC server")(std::io::Error::other(e)))
        });
    }
    let zipkin = &config.distributor.receivers.zipkin;
    let http_receivers = [
        ("jaeger_thrift_http", jaeger.thrift_http.enabled, &jaeger.thrift_http.endpoint, None),
        ("zipkin", zipkin.enabled, &zipkin.endpoint, Some(TranslateOptions { parse_string_tags: zipkin.parse_string_tags })),
    ];
    for (name, enabled, endpoint, zipkin_options) in http_receivers {
        if !enabled {
            continue;
        }
        let listener = bind(name, endpoint).await?;
        announce(name, listener.local_addr().map_err(Error::io("local address"))?);
        let app = match zipkin_options {
            Some(options) => zipkin_http_router(distributor.clone(), limits, options),
            None => jaeger_http_router(distributor.clone(), limits),
        };
        let stop = shutdown_signal(&stop_rx);
        servers.spawn(async move {
            axum::serve(listener, app).with_graceful_shutdown(stop).await.map_err(Error::io(format!("{name} server")))
        });
    }
    let udp_receivers = [
        ("jaeger_thrift_compact", &jaeger.thrift_compact, ThriftProtocol::Compact),
        ("jaeger_thrift_binary", &jaeger.thrift_binary, ThriftProtocol::Binary),
    ];
    for (name, endpoint, protocol) in udp_receivers {
        if !endpoint.enabled {
            continue;
        }
        let socket = tokio::net::UdpSocket::bind(&endpoint.endpoint)
            .await
            .map_err(Error::io(format!("binding {name} on {} (udp)", endpoint.endpoint)))?;
        announce(name, socket.local_addr().map_err(Error::io("local address"))?);
        let stop = shutdown_signal(&stop_rx);
        let distributor = distributor.clone();
        servers.spawn(async move {
            serve_agent_udp(socket, protocol, distributor, stop).await.map_err(Error::io(format!("{name} listener")))
        });
    }

    let flush_loop = engine.ingester.spawn_flush_loop();
    let compaction_loop = (!config.compactor.disabled).then(|| engine.compactor.spawn_loop());
    ready.store(true, Ordering::SeqCst);
    announce_ready();

    tokio::select! {
        _ = termination() => tracing::info!("termination signal received; shutting down"),
        Some(result) = servers.join_next() => {
            // A server stopped on its own: report it and shut the rest down.
            match result {
                Ok(Err(e)) => tracing::error!(error = %e, "server failed"),
                Err(e) => tracing::error!(error = %e, "server task failed"),
                Ok(Ok(())) => tracing::error!("server stopped unexpectedly"),
            }
        }
    }
    ready.store(false, Ordering::SeqCst);
    let _ = stop_tx.send(true);
    // In-flight requests get a moment to finish before the final flush.
    let _ = tokio::time::timeout(Duration::from_secs(10), async { while servers.join_next().await.is_some() {} }).await;
    // Not aborted: a flush in progress finishes (shutdown waits for it), and
    // the loop then sees the stop flag and ends.
    // A merge cut short leaves at most objects no meta names: its inputs stay live.
    if let Some(compaction_loop) = compaction_loop {
        compaction_loop.abort();
    }
    engine.ingester.shutdown().await?;
    let _ = tokio::time::timeout(Duration::from_secs(5), flush_loop).await;
    tracing::info!("all heads flushed; bye");
    Ok(())
}

fn announce_ready() {
    use std::io::Write;
    println!("{}", crate::harness::READY);
    let _ = std::io::stdout().flush();
}
