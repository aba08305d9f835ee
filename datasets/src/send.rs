//! Sending a dataset to a running server over OTLP gRPC or OTLP/HTTP
//! (protobuf), over N connections at a target rate, retrying what the server
//! pushes back (`RESOURCE_EXHAUSTED`/`UNAVAILABLE`, HTTP 429/503) with
//! exponential backoff.
//!
//! One thread generates; each connection is a task taking the next request
//! from a shared queue, waiting for its slot under the rate, and sending it
//! until acknowledged or given up.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;
use tokio::sync::{Mutex, mpsc};

use crate::error::{Error, Result};
use crate::generator::Generator;

/// First retry delay; doubled per retry up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// Longest retry delay.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Tenant header of OTLP/HTTP and gRPC metadata key.
const TENANT_HEADER: &str = "x-scope-orgid";

/// Where to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// OTLP gRPC, `grpc://host:port`.
    Grpc {
        /// `http://host:port` as tonic dials it.
        uri: String,
    },
    /// OTLP/HTTP, `http://host:port` (path `/v1/traces` unless given).
    Http {
        /// Full URL of the traces endpoint.
        url: String,
    },
}

impl FromStr for Endpoint {
    type Err = Error;

    fn from_str(s: &str) -> Result<Endpoint> {
        let invalid = || Error::InvalidValue { value: s.to_owned(), expected: "grpc://host:port or http://host:port[/path]" };
        if let Some(authority) = s.strip_prefix("grpc://") {
            if authority.is_empty() || authority.contains('/') {
                return Err(invalid());
            }
            return Ok(Endpoint::Grpc { uri: format!("http://{authority}") });
        }
        let rest = s.strip_prefix("http://").or_else(|| s.strip_prefix("https://")).ok_or_else(invalid)?;
        match rest.split_once('/') {
            None if !rest.is_empty() => Ok(Endpoint::Http { url: format!("{}/v1/traces", s.trim_end_matches('/')) }),
            Some((authority, "")) if !authority.is_empty() => Ok(Endpoint::Http { url: format!("{s}v1/traces") }),
            Some((authority, _)) if !authority.is_empty() => Ok(Endpoint::Http { url: s.to_owned() }),
            _ => Err(invalid()),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Grpc { uri } => write!(f, "grpc://{}", uri.trim_start_matches("http://")),
            Endpoint::Http { url } => f.write_str(url),
        }
    }
}

/// How to send.
#[derive(Debug, Clone, PartialEq)]
pub struct SendOptions {
    /// The server.
    pub endpoint: Endpoint,
    /// Target spans per second; `None` sends as fast as acknowledged.
    pub rate: Option<f64>,
    /// Concurrent connections (each with one request in flight).
    pub connections: usize,
    /// `X-Scope-OrgID`, if any.
    pub tenant: Option<String>,
    /// Retries of a pushed-back request before it counts as failed.
    pub max_retries: u32,
}

impl SendOptions {
    /// Sends to `endpoint` over 4 connections, unthrottled, 10 retries.
    pub fn new(endpoint: Endpoint) -> Self {
        Self { endpoint, rate: None, connections: 4, tenant: None, max_retries: 10 }
    }
}

/// What [`send`] achieved.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SendReport {
    /// Requests acknowledged.
    pub requests: u64,
    /// Spans acknowledged.
    pub spans: u64,
    /// Requests given up on (refused, or still pushed back after the retries).
    pub failed_requests: u64,
    /// Spans in them.
    pub failed_spans: u64,
    /// Retries after push-back or connection errors.
    pub retries: u64,
    /// Wall time from the first request to the last answer.
    pub elapsed: Duration,
    /// The first error, if any.
    pub first_error: Option<String>,
}

impl SendReport {
    /// Acknowledged spans per second of wall time.
    pub fn spans_per_second(&self) -> f64 {
        self.spans as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl fmt::Display for SendReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sent {} spans in {} requests in {:.2}s: {:.0} spans/s; {} retries; {} failed requests ({} spans)",
            self.spans,
            self.requests,
            self.elapsed.as_secs_f64(),
            self.spans_per_second(),
            self.retries,
            self.failed_requests,
            self.failed_spans
        )?;
        if let Some(e) = &self.first_error {
            write!(f, "; first error: {e}")?;
        }
        Ok(())
    }
}

/// Counters shared by the connections.
#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    spans: AtomicU64,
    failed_requests: AtomicU64,
    failed_spans: AtomicU64,
    retries: AtomicU64,
    first_error: std::sync::Mutex<Option<String>>,
}

/// Spaces requests so that spans leave at the target rate.
struct Pacer {
    start: Instant,
    rate: Option<f64>,
    /// Spans handed a slot so far.
    scheduled: std::sync::Mutex<u64>,
}

impl Pacer {
    /// Waits until `spans` more spans may be sent.
    async fn wait(&self, spans: u64) {
        let Some(rate) = self.rate else { return };
        let due = {
            let mut scheduled = self.scheduled.lock().unwrap_or_else(|e| e.into_inner());
            let due = self.start + Duration::from_secs_f64(*scheduled as f64 / rate);
            *scheduled += spans;
            due
        };
        tokio::time::sleep_until(due.into()).await;
    }
}

/// Why a send did not succeed.
enum SendError {
    /// Pushed back or unreachable: worth retrying.
    Retry { message: String, after: Option<Duration> },
    /// Refused: retrying would not help.
    Fatal(String),
}

/// One connection's client.
enum Client {
    Grpc(TraceServiceClient<tonic::transport::Channel>),
    Http { client: reqwest::Client, url: String },
}

impl Client {
    async fn connect(endpoint: &Endpoint) -> Result<Client> {
        match endpoint {
            Endpoint::Grpc { uri } => {
                let connect_error = |message: String| Error::Connect { endpoint: endpoint.to_string(), message };
                let channel = tonic::transport::Endpoint::from_shared(uri.clone())
                    .map_err(|e| connect_error(e.to_string()))?
                    .connect()
                    .await
                    .map_err(|e| connect_error(format!("{e}: {}", std::error::Error::source(&e).map(|s| s.to_string()).unwrap_or_default())))?;
                Ok(Client::Grpc(TraceServiceClient::new(channel).max_encoding_message_size(usize::MAX)))
            }
            Endpoint::Http { url } => {
                // reqwest connects lazily: probe once, so an unreachable server fails fast.
                let connect_error = |message: String| Error::Connect { endpoint: url.clone(), message };
                let parsed = reqwest::Url::parse(url).map_err(|e| connect_error(e.to_string()))?;
                let addresses = parsed.socket_addrs(|| None).map_err(|e| connect_error(e.to_string()))?;
                tokio::net::TcpStream::connect(addresses.as_slice()).await.map_err(|e| connect_error(e.to_string()))?;
                let client = reqwest::Client::builder()
                    .pool_max_idle_per_host(1)
                    .build()
                    .map_err(|e| connect_error(e.to_string()))?;
                Ok(Client::Http { client, url: url.clone() })
            }
        }
    }

    async fn send(&mut self, request: &ExportTraceServiceRequest, body: &bytes::Bytes, tenant: Option<&str>) -> Result<(), SendError> {
        match self {
            Client::Grpc(client) => {
                let mut grpc_request = tonic::Request::new(request.clone());
                if let Some(tenant) = tenant {
                    let value = tenant.parse().map_err(|_| SendError::Fatal(format!("invalid tenant {tenant:?}")))?;
                    grpc_request.metadata_mut().insert(TENANT_HEADER, value);
                }
                match client.export(grpc_request).await {
                    Ok(_) => Ok(()),
                    Err(status) => match status.code() {
                        tonic::Code::ResourceExhausted | tonic::Code::Unavailable => {
                            Err(SendError::Retry { message: format!("{:?}: {}", status.code(), status.message()), after: None })
                        }
                        code => Err(SendError::Fatal(format!("{code:?}: {}", status.message()))),
                    },
                }
            }
            Client::Http { client, url } => {
                let mut http_request = client.post(url.as_str()).header("Content-Type", "application/x-protobuf").body(body.clone());
                if let Some(tenant) = tenant {
                    http_request = http_request.header(TENANT_HEADER, tenant);
                }
                let response = match http_request.send().await {
                    Ok(r) => r,
                    Err(e) if e.is_connect() || e.is_timeout() => return Err(SendError::Retry { message: e.to_string(), after: None }),
                    Err(e) => return Err(SendError::Fatal(e.to_string())),
                };
                let status = response.status();
                if status.is_success() {
                    return Ok(());
                }
                let after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                let text = response.text().await.unwrap_or_default();
                let message = format!("HTTP {status}: {}", text.chars().take(200).collect::<String>());
                if status.as_u16() == 429 || status.as_u16() == 503 {
                    Err(SendError::Retry { message, after })
                } else {
                    Err(SendError::Fatal(message))
                }
            }
        }
    }
}

/// Sends every request of `generator` as `options` say; returns what was
/// acknowledged. Errors only when no connection can be made; failed requests
/// are counted in the report.
pub async fn send(generator: Generator, options: SendOptions) -> Result<SendReport> {
    let connections = options.connections.max(1);
    let mut clients = Vec::with_capacity(connections);
    for _ in 0..connections {
        clients.push(Client::connect(&options.endpoint).await?);
    }

    let (tx, rx) = mpsc::channel::<ExportTraceServiceRequest>(connections * 2);
    let producer = std::thread::Builder::new()
        .name("spanlake-gen".into())
        .spawn(move || {
            for request in generator {
                if tx.blocking_send(request).is_err() {
                    break;
                }
            }
        })
        .map_err(Error::io("starting the generator thread"))?;

    let queue = Arc::new(Mutex::new(rx));
    let counters = Arc::new(Counters::default());
    let started = Instant::now();
    let pacer = Arc::new(Pacer { start: started, rate: options.rate.filter(|r| *r > 0.0), scheduled: std::sync::Mutex::new(0) });
    let options = Arc::new(options);
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|client| tokio::spawn(connection(client, queue.clone(), pacer.clone(), counters.clone(), options.clone())))
        .collect();
    for task in tasks {
        let _ = task.await;
    }
    let elapsed = started.elapsed();
    // Every connection has stopped; the producer ends once the queue is dropped.
    drop(queue);
    producer.join().map_err(|_| Error::GeneratorPanicked)?;

    let first_error = counters.first_error.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Ok(SendReport {
        requests: counters.requests.load(Ordering::Relaxed),
        spans: counters.spans.load(Ordering::Relaxed),
        failed_requests: counters.failed_requests.load(Ordering::Relaxed),
        failed_spans: counters.failed_spans.load(Ordering::Relaxed),
        retries: counters.retries.load(Ordering::Relaxed),
        elapsed,
        first_error,
    })
}

/// One connection: takes requests until the queue is empty and closed.
async fn connection(
    mut client: Client,
    queue: Arc<Mutex<mpsc::Receiver<ExportTraceServiceRequest>>>,
    pacer: Arc<Pacer>,
    counters: Arc<Counters>,
    options: Arc<SendOptions>,
) {
    loop {
        let Some(request) = queue.lock().await.recv().await else { return };
        let spans = crate::span_count(&request);
        let body = match &client {
            Client::Http { .. } => bytes::Bytes::from(request.encode_to_vec()),
            Client::Grpc(_) => bytes::Bytes::new(),
        };
        pacer.wait(spans).await;
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 0;
        let outcome = loop {
            match client.send(&request, &body, options.tenant.as_deref()).await {
                Ok(()) => break Ok(()),
                Err(SendError::Retry { after, .. }) if attempt < options.max_retries => {
                    attempt += 1;
                    counters.retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(after.unwrap_or(backoff).max(backoff)).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(SendError::Retry { message, .. }) | Err(SendError::Fatal(message)) => break Err(message),
            }
        };
        match outcome {
            Ok(()) => {
                counters.requests.fetch_add(1, Ordering::Relaxed);
                counters.spans.fetch_add(spans, Ordering::Relaxed);
            }
            Err(message) => {
                counters.failed_requests.fetch_add(1, Ordering::Relaxed);
                counters.failed_spans.fetch_add(spans, Ordering::Relaxed);
                counters.first_error.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(message);
            }
        }
    }
}
