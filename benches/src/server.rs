//! Starts the real `spanlake serve` binary on ephemeral loopback ports with
//! its data in a given directory (with `spanlake::harness`, as
//! `api/tests/common` does), talks to it over HTTP, and reads its resource
//! usage from `/proc/<pid>`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use spanlake::harness::{Options, ServerProcess};

/// The tenant every bench writes and reads.
pub const TENANT: &str = "single-tenant";

/// When the server cuts blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockCut {
    /// The defaults: every 30 s (`max_block_duration`) or 24 MiB.
    Default,
    /// Only on `POST /flush` (or 24 MiB): `max_block_duration: 1h`.
    FlushOnly,
}

/// A running `spanlake serve`; killed when dropped.
pub struct Server {
    process: ServerProcess,
    binary: PathBuf,
    cut: BlockCut,
    /// Data directory: `blocks/`, `wal/` and the config live here.
    pub dir: PathBuf,
    /// Query API (`:3200` in production).
    pub http: SocketAddr,
    /// OTLP gRPC receiver.
    pub otlp_grpc: SocketAddr,
    client: reqwest::Client,
}

/// Resource usage of the server process so far.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcStats {
    /// User + system CPU seconds.
    pub cpu_seconds: f64,
    /// Peak resident set size (`VmHWM`), bytes.
    pub peak_rss_bytes: u64,
    /// Bytes read through read(2)-like calls (`rchar` of `/proc/<pid>/io`),
    /// page cache hits included.
    pub read_bytes: u64,
}

/// The configuration besides the harness's ephemeral ports and data paths:
/// blocks cut as `cut` says; compaction only on `POST /compact` (so that it
/// is measured apart from ingest) with no grace for the merged blocks; the
/// rest is the defaults.
fn options(cut: BlockCut) -> Options {
    let block_duration = match cut {
        BlockCut::Default => "30s",
        BlockCut::FlushOnly => "1h",
    };
    Options {
        ingester_yaml: format!("max_block_duration: {block_duration}"),
        extra_yaml: "compactor:\n  compaction:\n    compaction_cycle: 24h\n    compacted_block_retention: 0s\n".to_owned(),
        ..Options::default()
    }
}

impl Server {
    /// Starts `binary serve` with data under `dir` (created if missing; kept).
    pub fn start(binary: &Path, dir: &Path, cut: BlockCut) -> Result<Server> {
        let process = ServerProcess::start(binary, dir, &options(cut))
            .with_context(|| format!("starting {} (build it with `cargo build --release --workspace`)", binary.display()))?;
        Ok(Server {
            http: process.addr("http")?,
            otlp_grpc: process.addr("otlp_grpc")?,
            process,
            binary: binary.to_owned(),
            cut,
            dir: dir.to_owned(),
            client: reqwest::Client::new(),
        })
    }

    /// Stops the server (SIGKILL: the data is flushed or in the WAL) and
    /// starts it again on the same data: caches are cold.
    pub fn restart(self) -> Result<Server> {
        let (binary, dir, cut) = (self.binary.clone(), self.dir.clone(), self.cut);
        drop(self);
        Server::start(&binary, &dir, cut)
    }

    /// Query API URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    /// The shared HTTP client.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// `POST /flush`: every head becomes a block before this returns.
    pub async fn flush(&self) -> Result<()> {
        let response = self.client.post(self.url("/flush")).send().await.context("POST /flush")?;
        if response.status() != 204 {
            bail!("POST /flush: {} {}", response.status(), response.text().await.unwrap_or_default());
        }
        Ok(())
    }

    /// `POST /compact`: merges blocks until nothing is left to merge.
    /// Returns how many blocks were merged.
    pub async fn compact(&self) -> Result<u64> {
        let response = self.client.post(self.url("/compact")).send().await.context("POST /compact")?;
        if response.status() != 200 {
            bail!("POST /compact: {} {}", response.status(), response.text().await.unwrap_or_default());
        }
        let report: serde_json::Value = response.json().await.context("JSON of POST /compact")?;
        report["blocks_compacted"].as_u64().context("blocks_compacted in the answer of POST /compact")
    }

    /// GETs `path` with query `params` and parses the JSON answer; errors on non-2xx.
    pub async fn get_json(&self, path: &str, params: &[(&str, String)]) -> Result<serde_json::Value> {
        let url = reqwest::Url::parse_with_params(&self.url(path), params).with_context(|| format!("URL of {path}"))?;
        let response = self.client.get(url.clone()).send().await.with_context(|| format!("GET {url}"))?;
        let status = response.status();
        let body = response.bytes().await.with_context(|| format!("reading GET {url}"))?;
        if !status.is_success() {
            bail!("GET {url}: {status} {}", String::from_utf8_lossy(&body));
        }
        serde_json::from_slice(&body).with_context(|| format!("JSON of GET {url}"))
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    /// CPU time, peak RSS and bytes read of the server process so far.
    pub fn proc_stats(&self) -> Result<ProcStats> {
        proc_stats(self.pid())
    }
}

/// `<data>/blocks/<tenant>/blocks`: one directory per block.
pub fn blocks_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("blocks").join(TENANT).join("blocks")
}

/// Every `data.parquet` under a data directory, sorted.
pub fn parquet_files(data_dir: &Path) -> Result<Vec<PathBuf>> {
    let dir = blocks_dir(data_dir);
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry.with_context(|| format!("listing {}", dir.display()))?.path().join("data.parquet");
        // A block exists once its meta.json does (DESIGN §2).
        if path.is_file() && path.with_file_name("meta.json").is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Clock ticks per second of `/proc/<pid>/stat` times (USER_HZ, 100 on Linux).
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

/// Reads `/proc/<pid>/{stat,status,io}`.
pub fn proc_stats(pid: u32) -> Result<ProcStats> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).with_context(|| format!("reading /proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).context("malformed /proc/<pid>/stat")?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| -> Result<f64> { Ok(fields.get(i).context("short /proc/<pid>/stat")?.parse::<f64>()?) };
    // `after_name` starts at field 3 (state), so field n is at index n - 3.
    let cpu_seconds = (ticks(14 - 3)? + ticks(15 - 3)?) / CLOCK_TICKS_PER_SECOND;

    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).with_context(|| format!("reading /proc/{pid}/status"))?;
    let peak_rss_kib = proc_field(&status, "VmHWM:").context("no VmHWM in /proc/<pid>/status")?;
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).with_context(|| format!("reading /proc/{pid}/io"))?;
    let read_bytes = proc_field(&io, "rchar:").context("no rchar in /proc/<pid>/io")?;
    Ok(ProcStats { cpu_seconds, peak_rss_bytes: peak_rss_kib * 1024, read_bytes })
}

/// The number after `key` in a `/proc` key-value file.
fn proc_field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| line.strip_prefix(key)).and_then(|rest| rest.split_whitespace().next()).and_then(|n| n.parse().ok())
}
