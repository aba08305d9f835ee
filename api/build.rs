//! Compiles Spanlake's copy of Tempo's streaming query protos with protox
//! (pure Rust, no protoc) and tonic-prost-build. OTLP common types map onto
//! opentelemetry-proto's, so one `KeyValue` type serves everywhere.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let descriptors = protox::compile(["proto/tempo.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .extern_path(".opentelemetry.proto.common.v1", "::opentelemetry_proto::tonic::common::v1")
        .compile_fds(descriptors)?;
    Ok(())
}
