//! The official OpenTelemetry Python SDK (OTLP gRPC and HTTP exporters from
//! PyPI) sends a trace to the server; the script reads it back by id and
//! compares every field with what the SDK recorded.

mod common;

use common::{Options, TestServer, python_script, venv_python};

fn run_sdk_roundtrip(server: &TestServer, args: &[&str]) {
    server.run_client_script(&venv_python(), &python_script("otel_sdk_roundtrip.py"), args, "OK ");
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
