//! Real Jaeger and Zipkin client libraries (from PyPI, in their own venv
//! `target/pyenv-legacy`) send a multi-span trace to each receiver; the
//! script `api/tests/python/legacy/legacy_roundtrip.py` reads it back with
//! `GET /api/traces/{id}` and compares every translated field. The Node
//! Jaeger exporter (from npm, `api/tests/node`, installed with `npm ci` into
//! `target/node-legacy`) does the same through `jaeger_roundtrip.js`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{Options, TestServer};

/// The legacy clients' venv (OpenTelemetry SDK 1.21 with the Jaeger and
/// Zipkin exporters, jaeger-client, py_zipkin), created on first use.
fn legacy_python() -> PathBuf {
    common::ensure_venv("tests/python/legacy", "target/pyenv-legacy")
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

/// `npm ci` of `api/tests/node` into `target/node-legacy` (once per lock
/// file: a marker holds the lock's contents); returns its `node_modules`.
fn node_modules() -> PathBuf {
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/node-legacy");
    let lock = std::fs::read(src.join("package-lock.json")).unwrap();
    let marker = dir.join(".installed-lock");
    if std::fs::read(&marker).ok().as_ref() != Some(&lock) {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(src.join("package.json"), dir.join("package.json")).unwrap();
        std::fs::write(dir.join("package-lock.json"), &lock).unwrap();
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir)
            .stdout(Stdio::inherit())
            .status()
            .expect("run npm ci");
        assert!(status.success(), "npm ci failed");
        std::fs::write(&marker, &lock).unwrap();
    }
    dir.join("node_modules")
}

fn node_roundtrip(mode: &str) {
    let modules = node_modules();
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), Options::default());
    let output = Command::new("node")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node/jaeger_roundtrip.js"))
        .arg(mode)
        .env("NODE_PATH", modules)
        .env("SPANLAKE_HTTP", server.http.to_string())
        .env("SPANLAKE_JAEGER_BINARY", server.jaeger_thrift_binary.to_string())
        .env("SPANLAKE_JAEGER_THRIFT_HTTP", server.jaeger_thrift_http.to_string())
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "node {mode} round trip failed\nstdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.lines().last().is_some_and(|l| l.starts_with(&format!("OK node-{mode} "))), "{stdout}");
}

#[test]
fn node_jaeger_exporter_over_agent_udp_binary() {
    node_roundtrip("udp");
}

#[test]
fn node_jaeger_exporter_over_collector_http_chunked() {
    node_roundtrip("http");
}
