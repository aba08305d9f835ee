//! Test harness: starts the real `spanlake` binary on ephemeral loopback
//! ports with its data in a temporary directory, and talks to it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

/// Extra configuration sections for a test server.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// YAML of `storage.trace` other than the local/wal paths (e.g. an s3 section).
    pub storage_yaml: String,
    /// YAML lines of the `ingester:` section.
    pub ingester_yaml: String,
    /// Top-level YAML appended as is.
    pub extra_yaml: String,
    /// Environment variables of the server process.
    pub env: Vec<(String, String)>,
    /// YAML lines of `distributor.receivers.zipkin` besides its endpoint.
    pub zipkin_yaml: String,
}

/// A running `spanlake serve`.
pub struct TestServer {
    child: Option<Child>,
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

fn indent(yaml: &str, spaces: usize) -> String {
    yaml.lines().map(|l| format!("{}{l}\n", " ".repeat(spaces))).collect()
}

impl TestServer {
    /// Starts a server with data under `dir` (which outlives restarts).
    pub fn start(dir: &Path, options: Options) -> Self {
        let config = format!(
            "server:\n  http_listen_port: 0\n  log_level: warn\n\
             distributor:\n  receivers:\n    otlp:\n      protocols:\n        grpc:\n          endpoint: 127.0.0.1:0\n        http:\n          endpoint: 127.0.0.1:0\n\
             \x20   jaeger:\n      protocols:\n        grpc:\n          endpoint: 127.0.0.1:0\n        thrift_http:\n          endpoint: 127.0.0.1:0\n\
             \x20       thrift_compact:\n          endpoint: 127.0.0.1:0\n        thrift_binary:\n          endpoint: 127.0.0.1:0\n\
             \x20   zipkin:\n      endpoint: 127.0.0.1:0\n{}\
             ingester:\n  flush_check_period: 200ms\n{}\
             storage:\n  trace:\n    local:\n      path: {}\n    wal:\n      path: {}\n{}{}",
            indent(&options.zipkin_yaml, 6),
            indent(&options.ingester_yaml, 2),
            dir.join("blocks").display(),
            dir.join("wal").display(),
            indent(&options.storage_yaml, 4),
            options.extra_yaml,
        );
        let config_path = dir.join("spanlake.yaml");
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(&config_path, config).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_spanlake"))
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .envs(options.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn spanlake");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut addrs = std::collections::HashMap::new();
        loop {
            let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| {
                let _ = child.kill();
                panic!("spanlake did not become ready: {:?}", child.wait())
            });
            if line == "spanlake ready" {
                break;
            }
            if let Some(rest) = line.strip_prefix("spanlake listening ") {
                let (name, addr) = rest.split_once(' ').unwrap();
                addrs.insert(name.to_owned(), addr.parse::<SocketAddr>().unwrap());
            }
        }
        Self {
            child: Some(child),
            dir: dir.to_owned(),
            http: addrs["http"],
            otlp_grpc: addrs["otlp_grpc"],
            otlp_http: addrs["otlp_http"],
            jaeger_grpc: addrs["jaeger_grpc"],
            jaeger_thrift_http: addrs["jaeger_thrift_http"],
            jaeger_thrift_compact: addrs["jaeger_thrift_compact"],
            jaeger_thrift_binary: addrs["jaeger_thrift_binary"],
            zipkin: addrs["zipkin"],
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

    /// `kill -9`: no flush, no cleanup.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// SIGTERM and wait: the graceful path.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
        child.wait().unwrap()
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

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill9();
    }
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
