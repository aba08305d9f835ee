//! The `spanlake` binary: a Tempo-compatible tracing backend on DataFusion.

use spanlake::{config, server};

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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

fn run<F: std::future::Future<Output = spanlake::error::Result<()>>>(future: F) -> ExitCode {
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
    }
}

async fn traceql(config: config::Config, tenant: String, text: String, explain: bool, limit: usize, spss: usize) -> spanlake::error::Result<()> {
    use spanlake::error::Error;
    use spanlake_traceql::search::{SearchRequest, most_recent_traces_plan, plan_search, search};
    let query = spanlake_traceql::parse(&text).map_err(|e| Error::bad_request(format!("invalid TraceQL query: {e}")))?;
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
        let df = ctx.execute_logical_plan(first_pass).await.map_err(spanlake_engine::Error::from)?;
        let explained = df.explain(false, false).map_err(spanlake_engine::Error::from)?.collect().await.map_err(spanlake_engine::Error::from)?;
        let table = arrow::util::pretty::pretty_format_batches(&explained).map_err(spanlake_engine::Error::from)?;
        println!("== first pass (most recent traces): optimized logical and physical plans ==\n{table}");
        return Ok(());
    }
    let result = search(&ctx, &query, &request).await.map_err(plan_error)?;
    let json = spanlake::http::search::search_response_json(&result, 0, 0);
    println!("{}", serde_json::to_string_pretty(&json).unwrap_or_default());
    Ok(())
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{level},h2=warn,hyper=warn,tower=warn")));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}
