//! The `spanlake serve` YAML configuration. Keys follow Tempo's where one
//! exists; an absent file or key means the default (loopback ports of Tempo,
//! data under `./data`).

use std::path::Path;

use serde::Deserialize;
use spanlake_engine::config::{CompactorConfig, IngesterConfig, StorageConfig};
use spanlake_ingest::config::DistributorConfig;

use crate::error::{Error, Result};

/// Top-level configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    /// When true, requests without `X-Scope-OrgID` are refused.
    pub multitenancy_enabled: bool,
    pub distributor: DistributorConfig,
    pub ingester: IngesterConfig,
    pub compactor: CompactorConfig,
    pub storage: StorageConfig,
}

/// `server:` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub http_listen_address: String,
    pub http_listen_port: u16,
    pub log_level: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self { http_listen_address: "127.0.0.1".into(), http_listen_port: 3200, log_level: "info".into() }
    }
}

impl Config {
    /// Reads a YAML file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(Error::io(format!("reading {}", path.display())))?;
        Self::parse(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
    }

    /// Parses YAML text; an empty document is the default configuration.
    pub fn parse(text: &str) -> Result<Self> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let config: Self = serde_yaml_ng::from_str(text).map_err(|e| Error::Config(e.to_string()))?;
        config.compactor.compaction.validate().map_err(|e| Error::Config(e.to_string()))?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tempo_keys_parse_and_unknown_keys_are_refused() {
        let config = Config::parse(
            "server:\n  http_listen_port: 3333\ningester:\n  max_block_duration: 5m\ncompactor:\n  compaction:\n    block_retention: 48h\n    compacted_block_retention: 10m\nstorage:\n  trace:\n    backend: s3\n    s3:\n      bucket: b\n      endpoint: 127.0.0.1:9000\n      insecure: true\n      sse:\n        type: SSE-KMS\n        kms_key_id: k\n",
        )
        .unwrap();
        assert_eq!(config.server.http_listen_port, 3333);
        assert_eq!(config.ingester.max_block_duration, std::time::Duration::from_secs(300));
        assert_eq!(config.storage.trace.s3.sse.kms_key_id, "k");
        assert_eq!(config.compactor.compaction.block_retention, std::time::Duration::from_secs(48 * 3600));
        assert_eq!(config.compactor.compaction.compacted_block_retention, std::time::Duration::from_secs(600));
        assert_eq!(config.compactor.compaction.compaction_window, std::time::Duration::from_secs(3600), "default");
        assert!(Config::parse("server:\n  no_such_key: 1\n").is_err());
        assert_eq!(Config::parse("").unwrap().server.http_listen_port, 3200);
    }

    #[test]
    fn invalid_compaction_values_are_refused_at_load_naming_the_key() {
        let error = Config::parse("compactor:\n  compaction:\n    compaction_cycle: 0s\n").unwrap_err().to_string();
        assert!(error.contains("compactor.compaction.compaction_cycle must be greater than 0"), "{error}");
    }
}
