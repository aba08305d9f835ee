//! Test harness: starts the real `spanlake` binary on ephemeral loopback
//! ports with its data in a temporary directory, and talks to it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
pub use spanlake::harness::Options;
use spanlake::harness::ServerProcess;

/// A running `spanlake serve`.
pub struct TestServer {
    process: Option<ServerProcess>,
    pub dir: PathBuf,
    pub http: SocketAddr,
    pub otlp_grpc: SocketAddr,
    pub otlp_http: SocketAddr,
    /// Jaeger gRPC `CollectorService`.
    pub jaeger_grpc: SocketAddr,
    /// Jaeger thrift over HTTP (`POST /api/traces`).
    pub jaeger_thrift_http: SocketAddr,
    /// Jaeger agent UDP, compact protocol.
    pub jaeger_thrift_compact: SocketAddr,
    /// Jaeger agent UDP, binary protocol.
    pub jaeger_thrift_binary: SocketAddr,
    /// Zipkin HTTP API.
    pub zipkin: SocketAddr,
    options: Options,
}

impl TestServer {
    /// Starts a server with data under `dir` (which outlives restarts);
    /// heads are checked for flushing every 200 ms.
    pub fn start(dir: &Path, options: Options) -> Self {
        let server_options =
            Options { ingester_yaml: format!("flush_check_period: 200ms\n{}", options.ingester_yaml), ..options.clone() };
        let process = ServerProcess::start(Path::new(env!("CARGO_BIN_EXE_spanlake")), dir, &server_options)
            .unwrap_or_else(|e| panic!("spanlake: {e}"));
        let addr = |name: &str| process.addr(name).unwrap();
        Self {
            dir: dir.to_owned(),
            http: addr("http"),
            otlp_grpc: addr("otlp_grpc"),
            otlp_http: addr("otlp_http"),
            jaeger_grpc: addr("jaeger_grpc"),
            jaeger_thrift_http: addr("jaeger_thrift_http"),
            jaeger_thrift_compact: addr("jaeger_thrift_compact"),
            jaeger_thrift_binary: addr("jaeger_thrift_binary"),
            zipkin: addr("zipkin"),
            process: Some(process),
            options,
        }
    }

    /// Query API URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    /// OTLP/HTTP traces URL.
    pub fn otlp_http_url(&self) -> String {
        format!("http://{}/v1/traces", self.otlp_http)
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.process.as_ref().expect("running").id()
    }

    /// `kill -9`: no flush, no cleanup.
    pub fn kill9(&mut self) {
        // Dropping the process kills and reaps it.
        self.process = None;
    }

    /// SIGTERM and wait: the graceful path.
    pub fn terminate(&mut self) -> ExitStatus {
        self.process.take().expect("running").terminate().unwrap()
    }

    /// Starts the server again on the same data (new ports).
    pub fn restart(&mut self) {
        self.kill9();
        *self = Self::start(&self.dir.clone(), self.options.clone());
    }

    /// Asks the server to write every head as a block.
    pub async fn flush(&self) {
        let r = reqwest::Client::new().post(self.url("/flush")).send().await.unwrap();
        assert_eq!(r.status(), 204, "{}", r.text().await.unwrap());
    }

    /// Whether the server answers `/ready`.
    pub async fn ready(&self) -> bool {
        matches!(reqwest::get(self.url("/ready")).await, Ok(r) if r.status() == 200)
    }

    /// `GET /api/traces/{id}` as JSON; `None` on 404.
    pub async fn trace_json(&self, trace_id: &[u8], tenant: Option<&str>) -> Option<serde_json::Value> {
        let mut req = reqwest::Client::new().get(self.url(&format!("/api/traces/{}", hex::encode(trace_id))));
        if let Some(t) = tenant {
            req = req.header("X-Scope-OrgID", t);
        }
        let r = req.send().await.unwrap();
        if r.status() == 404 {
            return None;
        }
        assert_eq!(r.status(), 200);
        Some(r.json().await.unwrap())
    }

    /// Names of the spans of a trace, sorted (empty when absent).
    pub async fn span_names(&self, trace_id: &[u8]) -> Vec<String> {
        let Some(json) = self.trace_json(trace_id, None).await else { return Vec::new() };
        span_names_in(&json)
    }
}

/// Sorted span names of a Tempo v1 trace JSON (`{"batches": [...]}`).
pub fn span_names_in(json: &serde_json::Value) -> Vec<String> {
    let mut names: Vec<String> = json["batches"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|b| b["scopeSpans"].as_array().unwrap())
        .flat_map(|s| s["spans"].as_array().unwrap())
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

/// A string attribute.
pub fn attr(key: &str, value: &str) -> KeyValue {
    KeyValue { key: key.into(), value: Some(AnyValue { value: Some(Value::StringValue(value.into())) }), ..Default::default() }
}

/// One resource of `service` holding spans `(span id byte, parent byte, name)` of trace `trace_id`.
pub fn trace(trace_id: [u8; 16], service: &str, spans: &[(u8, Option<u8>, &str)]) -> ResourceSpans {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    ResourceSpans {
        resource: Some(Resource { attributes: vec![attr("service.name", service)], ..Default::default() }),
        scope_spans: vec![ScopeSpans {
            spans: spans
                .iter()
                .map(|(id, parent, name)| Span {
                    trace_id: trace_id.to_vec(),
                    span_id: vec![*id; 8],
                    parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
                    name: (*name).into(),
                    kind: 2,
                    start_time_unix_nano: now,
                    end_time_unix_nano: now + 1_000_000,
                    attributes: vec![attr("http.method", "GET")],
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// A random trace id.
pub fn random_trace_id() -> [u8; 16] {
    *uuid::Uuid::new_v4().as_bytes()
}

/// POSTs an OTLP protobuf request; returns status and body.
pub async fn post_otlp(server: &TestServer, spans: Vec<ResourceSpans>, tenant: Option<&str>) -> (u16, Vec<u8>) {
    use prost::Message;
    let body = opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest { resource_spans: spans }.encode_to_vec();
    let mut req = reqwest::Client::new().post(server.otlp_http_url()).header("Content-Type", "application/x-protobuf").body(body);
    if let Some(t) = tenant {
        req = req.header("X-Scope-OrgID", t);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
}

impl TestServer {
    /// Runs a client script with every receiver's and the query API's
    /// address in `SPANLAKE_*` variables; asserts it succeeded and that its
    /// last line starts with `expect`. Returns its standard output.
    pub fn run_client_script(&self, python: &Path, script: &Path, args: &[&str], expect: &str) -> String {
        let output = Command::new(python)
            .arg(script)
            .args(args)
            .env("SPANLAKE_HTTP", self.http.to_string())
            .env("SPANLAKE_OTLP_GRPC", self.otlp_grpc.to_string())
            .env("SPANLAKE_OTLP_HTTP", self.otlp_http.to_string())
            .env("SPANLAKE_JAEGER_GRPC", self.jaeger_grpc.to_string())
            .env("SPANLAKE_JAEGER_THRIFT_HTTP", self.jaeger_thrift_http.to_string())
            .env("SPANLAKE_JAEGER_COMPACT", self.jaeger_thrift_compact.to_string())
            .env("SPANLAKE_JAEGER_BINARY", self.jaeger_thrift_binary.to_string())
            .env("SPANLAKE_ZIPKIN", self.zipkin.to_string())
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", script.display()));
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{} {args:?} failed\nstdout:\n{stdout}\nstderr:\n{stderr}", script.display());
        assert!(stdout.lines().last().is_some_and(|l| l.starts_with(expect)), "{stdout}");
        stdout
    }
}

/// The test virtualenv's python (OpenTelemetry SDK, moto), created on first
/// use by `api/tests/python/ensure_venv.sh` (a no-op when up to date).
pub fn venv_python() -> PathBuf {
    ensure_venv("tests/python", "target/pyenv")
}

/// Runs `<script_dir>/ensure_venv.sh <venv>` (`script_dir` relative to the
/// api crate, `venv` to the repository root; passed absolute, since a
/// script reached through a symlink resolves relative paths elsewhere) and
/// returns the venv's python.
pub fn ensure_venv(script_dir: &str, venv: &str) -> PathBuf {
    let api = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = api.join(script_dir).join("ensure_venv.sh");
    let venv = api.parent().expect("api is inside the repository").join(venv);
    let out = Command::new("bash").arg(&script).arg(&venv).stderr(Stdio::inherit()).output().expect("run ensure_venv.sh");
    assert!(out.status.success(), "{} failed", script.display());
    let stdout = String::from_utf8(out.stdout).unwrap();
    PathBuf::from(stdout.lines().last().expect("python path").trim())
}

/// Path of a helper script in `api/tests/python`.
pub fn python_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python").join(name)
}
