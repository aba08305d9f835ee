//! Real Jaeger and Zipkin client libraries (from PyPI, in their own venv
//! `target/pyenv-legacy`) send a multi-span trace to each receiver; the
//! script `api/tests/python/legacy/legacy_roundtrip.py` reads it back with
//! `GET /api/traces/{id}` and compares every translated field.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{Options, TestServer};

/// The legacy clients' venv (OpenTelemetry SDK 1.21 with the Jaeger and
/// Zipkin exporters, jaeger-client, py_zipkin), created on first use.
fn legacy_python() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let venv = here.join("../target/pyenv-legacy");
    let out = Command::new("bash")
        .arg(here.join("tests/python/legacy/ensure_venv.sh"))
        .arg(&venv)
        .stderr(Stdio::inherit())
        .output()
        .expect("run legacy ensure_venv.sh");
    assert!(out.status.success(), "legacy ensure_venv.sh failed");
    let stdout = String::from_utf8(out.stdout).unwrap();
    PathBuf::from(stdout.lines().last().expect("python path").trim())
}

fn roundtrip(client: &str) {
    roundtrip_with(client, Options::default());
}

fn roundtrip_with(client: &str, options: Options) {
    let python = legacy_python();
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), options);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/legacy/legacy_roundtrip.py");
    server.run_client_script(&python, &script, &["--client", client], &format!("OK {client} "));
}

#[test]
fn otel_jaeger_thrift_exporter_over_agent_udp_compact() {
    roundtrip("otel-jaeger-thrift-agent");
}

#[test]
fn thrift_agent_client_over_udp_binary() {
    roundtrip("otel-jaeger-thrift-binary");
}

#[test]
fn otel_jaeger_thrift_exporter_over_collector_http() {
    roundtrip("otel-jaeger-thrift-http");
}

#[test]
fn otel_jaeger_proto_grpc_exporter() {
    roundtrip("otel-jaeger-grpc");
}

#[test]
fn jaeger_client_over_agent_udp_compact() {
    roundtrip("jaeger-client");
}

#[test]
fn otel_zipkin_json_exporter_v2() {
    roundtrip("otel-zipkin-v2");
}

#[test]
fn otel_zipkin_json_exporter_v1() {
    roundtrip("otel-zipkin-v1");
}

#[test]
fn py_zipkin_v2_json() {
    roundtrip("py-zipkin-v2-json");
}

#[test]
fn py_zipkin_v1_json() {
    roundtrip("py-zipkin-v1-json");
}

#[test]
fn py_zipkin_v2_proto3() {
    roundtrip("py-zipkin-v2-proto3");
}
