//! The `spanlake` binary: a Tempo-compatible tracing backend on DataFusion.

use spanlake::{config, server};

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Turns transparent huge pages off for this process (what
/// `MIMALLOC_ALLOW_THP=0` does at mimalloc's start): memory mimalloc keeps
/// after a free is then held in 4 KiB pages instead of 2 MiB ones. On
/// `small`, peak RSS while ingesting was 439 and 495 MiB without, 386 and
/// 436 with the variable, 425 and 455 with this call (which comes after
/// mimalloc's first arenas); CPU unchanged within the noise.
#[cfg(target_os = "linux")]
fn disable_transparent_huge_pages() {
    // SAFETY: PR_SET_THP_DISABLE takes plain integers and only sets a flag
    // of this process; a kernel without it answers EINVAL, which is fine.
    let _ = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
}

#[cfg(not(target_os = "linux"))]
fn disable_transparent_huge_pages() {}

/// Spanlake: distributed tracing storage and query, Tempo-compatible.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run every role in one process (receivers, ingester, query API).
    Serve {
        /// YAML configuration file (Tempo's keys); defaults need none.
        #[arg(long, short = 'c')]
        config: Option<PathBuf>,
    },
    /// Run read-only SQL over the stored spans (blocks and WAL), e.g.
    /// `spanlake sql "SELECT service_name, count(*) FROM spans GROUP BY 1"`.
    Sql {
        /// The SQL query; the table is `spans`.
        query: String,
        #[arg(long, short = 'c')]
        config: Option<PathBuf>,
        /// Tenant whose spans are queried.
        #[arg(long, default_value = spanlake_ingest::DEFAULT_TENANT)]
        tenant: String,
        #[arg(long, value_enum, default_value = "table")]
        format: spanlake::sql::Format,
        /// Write the result here instead of standard output.
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
    },
    /// Run a TraceQL search over the stored spans and print Tempo's JSON,
    /// or with `--explain` the logical and physical plans it compiles to.
    Traceql {
        /// The TraceQL query.
        query: String,
        #[arg(long, short = 'c')]
        config: Option<PathBuf>,
        #[arg(long, default_value = spanlake_ingest::DEFAULT_TENANT)]
        tenant: String,
        /// Print the plans instead of running the query.
        #[arg(long)]
        explain: bool,
        /// Most recent traces returned.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Spans per spanset returned.
        #[arg(long, default_value_t = 3)]
        spss: usize,
    },
    /// Generate a deterministic dataset of realistic microservice traces and
    /// write it as OTLP request files (`--output`) or send it to a running
    /// server (`--send`), e.g. `spanlake gen --size small --send grpc://127.0.0.1:4317`.
    Gen {
        /// Named size: tiny (~10k spans), small (~1M), medium (~10M), large (~100M).
        #[arg(long, default_value = "tiny", conflicts_with = "spans")]
        size: spanlake_datasets::Size,
        /// Number of spans instead of a named size.
        #[arg(long)]
        spans: Option<u64>,
        /// Seed of every random choice: same seed, same output.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Services in the generated system.
        #[arg(long, default_value_t = 30)]
        services: usize,
        /// Spans per request (requests hold whole traces).
        #[arg(long, default_value_t = 1000)]
        batch_spans: usize,
        /// Start of generated time: Unix seconds or `now` [default: 2025-01-01T00:00:00Z].
        #[arg(long)]
        start: Option<String>,
        /// Directory to write one OTLP request per file into.
        #[arg(long, short = 'o', required_unless_present = "send", conflicts_with = "send")]
        output: Option<PathBuf>,
        /// File format: otlp-proto or otlp-json.
        #[arg(long, default_value = "otlp-proto")]
        format: spanlake_datasets::OutputFormat,
        /// Server to send to: grpc://host:port (OTLP gRPC) or http://host:port (OTLP/HTTP).
        #[arg(long)]
        send: Option<spanlake_datasets::Endpoint>,
        /// Target spans per second when sending [default: as fast as acknowledged].
        #[arg(long)]
        rate: Option<f64>,
        /// Concurrent connections when sending.
        #[arg(long, default_value_t = 4)]
        connections: usize,
        /// Tenant (`X-Scope-OrgID`) to send as.
        #[arg(long)]
        tenant: Option<String>,
    },
}

fn load_config(path: Option<&PathBuf>) -> Result<config::Config, ExitCode> {
    let config = match path {
        Some(path) => config::Config::load(path),
        None => Ok(config::Config::default()),
    };
    config.map_err(|e| {
        eprintln!("spanlake: {e}");
        ExitCode::from(2)
    })
}

fn run<E: std::fmt::Display, F: std::future::Future<Output = Result<(), E>>>(future: F) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("spanlake: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(future) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("spanlake: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    disable_transparent_huge_pages();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => {
            let config = match load_config(config.as_ref()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            init_logging(&config.server.log_level);
            run(server::serve(config))
        }
        Command::Traceql { query, config, tenant, explain, limit, spss } => {
            let config = match load_config(config.as_ref()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            init_logging("warn");
            run(traceql(config, tenant, query, explain, limit, spss))
        }
        Command::Sql { query, config, tenant, format, output } => {
            let config = match load_config(config.as_ref()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            init_logging("warn");
            run(async move {
                let engine = spanlake_engine::open_read_only(&config.storage).await?;
                let batches = spanlake::sql::run_sql(&engine, &tenant, &query).await?;
                let bytes = spanlake::sql::encode(&batches, format)?;
                match output {
                    Some(path) => std::fs::write(&path, bytes).map_err(spanlake::error::Error::io(format!("writing {}", path.display()))),
                    None => {
                        use std::io::Write;
                        std::io::stdout().write_all(&bytes).map_err(spanlake::error::Error::io("writing to stdout"))
                    }
                }
            })
        }
        Command::Gen { size, spans, seed, services, batch_spans, start, output, format, send, rate, connections, tenant } => {
            init_logging("warn");
            let start_unix_nano = match start.as_deref().map(spanlake_datasets::parse_start).transpose() {
                Ok(start) => start.unwrap_or(spanlake_datasets::DEFAULT_START_UNIX_NANO),
                Err(e) => {
                    eprintln!("spanlake: {e}");
                    return ExitCode::from(2);
                }
            };
            let config = spanlake_datasets::GenConfig {
                seed,
                services,
                spans: spans.unwrap_or(size.spans()),
                batch_spans,
                start_unix_nano,
                ..Default::default()
            };
            let send = send.map(|endpoint| spanlake_datasets::SendOptions {
                rate,
                connections,
                tenant,
                ..spanlake_datasets::SendOptions::new(endpoint)
            });
            run(generate(config, output, format, send))
        }
    }
}

/// `spanlake gen`: writes the dataset to `output` or sends it as `send` says.
async fn generate(
    config: spanlake_datasets::GenConfig,
    output: Option<PathBuf>,
    format: spanlake_datasets::OutputFormat,
    send: Option<spanlake_datasets::SendOptions>,
) -> Result<(), String> {
    let generator = spanlake_datasets::Generator::new(config).map_err(|e| e.to_string())?;
    match (output, send) {
        (_, Some(options)) => {
            let report = spanlake_datasets::send(generator, options).await.map_err(|e| e.to_string())?;
            println!("{report}");
            if report.failed_requests > 0 {
                return Err(format!("{} of {} requests failed", report.failed_requests, report.failed_requests + report.requests));
            }
            Ok(())
        }
        (Some(dir), None) => {
            // Nothing else runs: writing on the runtime's thread is fine.
            let report = spanlake_datasets::write_dir(generator, &dir, format).map_err(|e| e.to_string())?;
            println!(
                "wrote {} spans in {} traces to {} files in {} ({} bytes) in {:.2}s: {:.0} spans/s",
                report.spans,
                report.traces,
                report.files,
                dir.display(),
                report.bytes,
                report.elapsed.as_secs_f64(),
                report.spans as f64 / report.elapsed.as_secs_f64().max(1e-9)
            );
            Ok(())
        }
        (None, None) => Err("--output or --send is required".to_owned()),
    }
}

async fn traceql(config: config::Config, tenant: String, text: String, explain: bool, limit: usize, spss: usize) -> spanlake::error::Result<()> {
    use spanlake::error::Error;
    use spanlake_traceql::search::{SearchRequest, first_pass_session, most_recent_traces_plan, plan_search, search};
    let query = spanlake::http::search::parse_query(&text)?;
    let engine = spanlake_engine::open_read_only(&config.storage).await?;
    let ctx = engine.session(&tenant)?;
    let request = SearchRequest {
        limit,
        spans_per_spanset: spss,
        start_unix_nano: None,
        end_unix_nano: None,
        min_trace_duration: None,
        max_trace_duration: None,
    };
    let plan_error = |e: spanlake_traceql::search::SearchError| Error::bad_request(e.to_string());
    if explain {
        let spans = ctx.table_provider("spans").await.map_err(spanlake_engine::Error::from)?;
        let plan = plan_search(&query, spans, &request).map_err(plan_error)?;
        println!("== matched spans: logical plan as compiled ==\n{}\n", plan.plan.display_indent());
        // What the search runs first: the most recent matching traces.
        let first_pass = most_recent_traces_plan(&plan.plan, limit).map_err(plan_error)?;
        let df = first_pass_session(&ctx).execute_logical_plan(first_pass).await.map_err(spanlake_engine::Error::from)?;
        let explained = df.explain(false, false).map_err(spanlake_engine::Error::from)?.collect().await.map_err(spanlake_engine::Error::from)?;
        let table = arrow::util::pretty::pretty_format_batches(&explained).map_err(spanlake_engine::Error::from)?;
        println!("== first pass (most recent traces): optimized logical and physical plans ==\n{table}");
        return Ok(());
    }
    let result = search(&ctx, &query, &request).await.map_err(plan_error)?;
    let mut json = spanlake::http::search::search_response_json_pretty(&result, 0, 0);
    json.push(b'\n');
    use std::io::Write;
    std::io::stdout().write_all(&json).map_err(Error::io("writing to stdout"))
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{level},h2=warn,hyper=warn,tower=warn")));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}
