//! Compiles the Jaeger (`jaeger.api_v2`) and Zipkin (`zipkin.proto3`) wire
//! schemas under `proto/` with protox (a pure-Rust protobuf compiler, no
//! `protoc` needed) and tonic-prost-build.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["proto/jaeger/collector.proto", "proto/jaeger/model.proto", "proto/zipkin/zipkin.proto"];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .build_transport(false)
        .compile_fds(descriptors)?;
    Ok(())
}
