//! Starting the real `spanlake serve` binary for integration tests and
//! benchmarks: every receiver on an ephemeral loopback port, data under a
//! given directory, and the addresses read back from what the server prints
//! ([`LISTENING`] lines, then [`READY`]). Only the standard library: the
//! callers bring their own HTTP clients.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// What `spanlake serve` prints, before [`READY`], for each listener:
/// `spanlake listening <name> <address>`.
pub const LISTENING: &str = "spanlake listening ";

/// What `spanlake serve` prints once every listener is up.
pub const READY: &str = "spanlake ready";

/// How long a server may take to print [`READY`] (a cold start replays the WAL).
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// Configuration of a started server besides the ports and the data paths,
/// as YAML fragments.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// YAML of `storage.trace` other than the local/wal paths (e.g. an s3 section).
    pub storage_yaml: String,
    /// YAML lines of the `ingester:` section.
    pub ingester_yaml: String,
    /// Top-level YAML appended as is.
    pub extra_yaml: String,
    /// Environment variables of the server process.
    pub env: Vec<(String, String)>,
    /// YAML lines of `distributor.receivers.zipkin` besides its endpoint.
    pub zipkin_yaml: String,
}

fn indent(yaml: &str, spaces: usize) -> String {
    yaml.lines().map(|l| format!("{}{l}\n", " ".repeat(spaces))).collect()
}

/// The configuration file of a server with data under `dir`.
pub fn config_yaml(dir: &Path, options: &Options) -> String {
    // An empty `ingester:` would be null, not the defaults.
    let ingester = if options.ingester_yaml.is_empty() { String::new() } else { format!("ingester:\n{}", indent(&options.ingester_yaml, 2)) };
    format!(
        "server:\n  http_listen_port: 0\n  log_level: warn\n\
         distributor:\n  receivers:\n    otlp:\n      protocols:\n        grpc:\n          endpoint: 127.0.0.1:0\n        http:\n          endpoint: 127.0.0.1:0\n\
         \x20   jaeger:\n      protocols:\n        grpc:\n          endpoint: 127.0.0.1:0\n        thrift_http:\n          endpoint: 127.0.0.1:0\n\
         \x20       thrift_compact:\n          endpoint: 127.0.0.1:0\n        thrift_binary:\n          endpoint: 127.0.0.1:0\n\
         \x20   zipkin:\n      endpoint: 127.0.0.1:0\n{}\
         {ingester}\
         storage:\n  trace:\n    local:\n      path: {}\n    wal:\n      path: {}\n{}{}",
        indent(&options.zipkin_yaml, 6),
        dir.join("blocks").display(),
        dir.join("wal").display(),
        indent(&options.storage_yaml, 4),
        options.extra_yaml,
    )
}

/// A running `binary serve`; killed (SIGKILL) when dropped.
pub struct ServerProcess {
    child: Child,
    addrs: HashMap<String, SocketAddr>,
}

impl ServerProcess {
    /// Writes `dir/spanlake.yaml` (creating `dir`), starts `binary serve` on
    /// it and waits until the server is ready.
    pub fn start(binary: &Path, dir: &Path, options: &Options) -> io::Result<ServerProcess> {
        std::fs::create_dir_all(dir)?;
        let config_path = dir.join("spanlake.yaml");
        std::fs::write(&config_path, config_yaml(dir, options))?;
        let mut child = Command::new(binary)
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .envs(options.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("starting {}: {e}", binary.display())))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        // Reads to the end even after the receiver is gone: a closed pipe
        // would make the server's next print fail.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        // Owned from here: dropped on an error, which kills the child.
        let mut process = ServerProcess { child, addrs: HashMap::new() };
        loop {
            let Ok(line) = rx.recv_timeout(READY_TIMEOUT) else {
                let _ = process.child.kill();
                let status = process.child.wait();
                return Err(io::Error::other(format!("{} did not become ready: {status:?}", binary.display())));
            };
            if line == READY {
                return Ok(process);
            }
            if let Some((name, addr)) = line.strip_prefix(LISTENING).and_then(|rest| rest.split_once(' ')) {
                let addr = addr.parse().map_err(|e| io::Error::other(format!("address in {line:?}: {e}")))?;
                process.addrs.insert(name.to_owned(), addr);
            }
        }
    }

    /// The address of listener `name` (`http`, `otlp_grpc`, `zipkin`, ...).
    pub fn addr(&self, name: &str) -> io::Result<SocketAddr> {
        self.addrs.get(name).copied().ok_or_else(|| io::Error::other(format!("the server printed no {name} address")))
    }

    /// The server's process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM and wait: the graceful path.
    pub fn terminate(mut self) -> io::Result<ExitStatus> {
        Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status()?;
        self.child.wait()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_land_in_their_sections() {
        let options = Options {
            storage_yaml: "backend: s3".into(),
            ingester_yaml: "flush_check_period: 200ms\nmax_block_duration: 1h".into(),
            extra_yaml: "compactor:\n  compaction:\n    compaction_cycle: 24h\n".into(),
            zipkin_yaml: "enabled: false".into(),
            env: Vec::new(),
        };
        let yaml = config_yaml(Path::new("/data"), &options);
        let config: serde_yaml_ng::Value = serde_yaml_ng::from_str(&yaml).unwrap();
        assert_eq!(config["ingester"]["flush_check_period"].as_str(), Some("200ms"));
        assert_eq!(config["ingester"]["max_block_duration"].as_str(), Some("1h"));
        assert_eq!(config["storage"]["trace"]["backend"].as_str(), Some("s3"));
        assert_eq!(config["storage"]["trace"]["wal"]["path"].as_str(), Some("/data/wal"));
        assert_eq!(config["distributor"]["receivers"]["zipkin"]["enabled"].as_bool(), Some(false));
        assert_eq!(config["compactor"]["compaction"]["compaction_cycle"].as_str(), Some("24h"));
        // The whole file is valid configuration.
        crate::config::Config::parse(&yaml).unwrap();
    }
}
