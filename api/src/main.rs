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

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{level},h2=warn,hyper=warn,tower=warn")));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}
