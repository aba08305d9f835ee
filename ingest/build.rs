//! Compiles the Jaeger (`jaeger.api_v2`) and Zipkin (`zipkin.proto3`) wire
//! schemas under `proto/` with protox (a pure-Rust protobuf compiler, no
//! `protoc` needed) and tonic-prost-build, and generates the OTLP trace
//! service's server with a codec that hands requests over as bytes.

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
    // OTLP `TraceService`, its requests undecoded: the engine converts their
    // protobuf straight into Arrow (see `otlp::grpc`).
    use tonic_prost_build::manual::{Builder, Method, Service};
    let export = Method::builder()
        .name("export")
        .route_name("Export")
        .input_type("crate::otlp::ExportRequestBytes")
        .output_type("opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse")
        .codec_path("crate::otlp::ExportRequestCodec")
        .build();
    let service = Service::builder().name("TraceService").package("opentelemetry.proto.collector.trace.v1").method(export).build();
    Builder::new().build_client(false).build_transport(false).compile(&[service]);
    Ok(())
}
