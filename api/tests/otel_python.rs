//! The official OpenTelemetry Python SDK (OTLP gRPC and HTTP exporters from
//! PyPI) sends a trace to the server; the script reads it back by id and
//! compares every field with what the SDK recorded.

mod common;

use std::process::Command;

use common::{Options, TestServer, python_script, venv_python};

fn run_sdk_roundtrip(server: &TestServer, args: &[&str]) {
    let output = Command::new(venv_python())
        .arg(python_script("otel_sdk_roundtrip.py"))
        .args(args)
        .env("SPANLAKE_OTLP_GRPC", server.otlp_grpc.to_string())
        .env("SPANLAKE_OTLP_HTTP", server.otlp_http.to_string())
        .env("SPANLAKE_HTTP", server.http.to_string())
        .output()
        .expect("run otel_sdk_roundtrip.py");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "SDK round trip failed\nstdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.lines().last().is_some_and(|l| l.starts_with("OK ")), "{stdout}");
}

#[test]
fn python_sdk_over_otlp_grpc_reads_back_field_by_field() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), Options::default());
    run_sdk_roundtrip(&server, &["--protocol", "grpc"]);
    run_sdk_roundtrip(&server, &["--protocol", "grpc", "--tenant", "team-a", "--expect-absent-tenant", "team-b"]);
}

#[test]
fn python_sdk_over_otlp_http_reads_back_field_by_field() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), Options::default());
    run_sdk_roundtrip(&server, &["--protocol", "http", "--nonfinite-floats"]);
    run_sdk_roundtrip(&server, &["--protocol", "http", "--tenant", "team-a", "--expect-absent-tenant", "single-tenant"]);
}
