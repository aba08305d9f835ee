//! The same round trip against a real S3-compatible server (moto, with KMS)
//! on loopback: blocks land in the bucket encrypted with SSE-KMS, and a
//! fresh server reads the trace back from S3 alone.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use common::{Options, TestServer, post_otlp, python_script, random_trace_id, trace, venv_python};

/// moto's S3 + KMS server; stops when dropped (stdin closes).
struct S3Server {
    child: Child,
    info: serde_json::Value,
}

impl S3Server {
    fn start() -> Self {
        let mut child = Command::new(venv_python())
            .arg(python_script("s3_server.py"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start moto");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let info: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("moto said {line:?}: {e}"));
        Self { child, info }
    }

    fn get(&self, key: &str) -> &str {
        self.info[key].as_str().unwrap()
    }

    /// `key<TAB>sse<TAB>kms key id` for every object under `prefix`.
    fn list(&self, prefix: &str) -> Vec<Vec<String>> {
        let out = Command::new(venv_python())
            .arg(python_script("s3_list.py"))
            .args([self.get("endpoint"), self.get("bucket"), prefix])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().lines().map(|l| l.split('\t').map(str::to_owned).collect()).collect()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn blocks_round_trip_through_s3_with_sse_kms() {
    let s3 = S3Server::start();
    let storage = |credentials: &str| {
        format!(
            "backend: s3\ns3:\n  bucket: {}\n  prefix: traces\n  endpoint: {}\n  region: {}\n{credentials}  insecure: true\n  forcepathstyle: true\n  sse:\n    type: SSE-KMS\n    kms_key_id: {}\n",
            s3.get("bucket"),
            s3.get("endpoint"),
            s3.get("region"),
            s3.get("kms_key_id"),
        )
    };
    let static_keys = format!("  access_key: {}\n  secret_key: {}\n", s3.get("access_key"), s3.get("secret_key"));
    let dir = tempfile::tempdir().unwrap();
    let options = Options { storage_yaml: storage(&static_keys), ..Default::default() };
    let server = TestServer::start(&dir.path().join("first"), options);
    let id = random_trace_id();
    assert_eq!(post_otlp(&server, vec![trace(id, "svc", &[(1, None, "root"), (2, Some(1), "child")])], None).await.0, 200);
    server.flush().await;

    let objects = s3.list("traces/");
    let keys: Vec<&str> = objects.iter().map(|o| o[0].as_str()).collect();
    assert!(keys.iter().any(|k| k.starts_with("traces/single-tenant/blocks/") && k.ends_with("/data.parquet")), "{keys:?}");
    assert!(keys.iter().any(|k| k.ends_with("/meta.json")), "{keys:?}");
    assert!(keys.contains(&"traces/single-tenant/index.json"), "{keys:?}");
    for object in &objects {
        assert_eq!(object[1], "aws:kms", "{object:?} is SSE-KMS encrypted");
        let key_id = s3.get("kms_key_id");
        assert!(object[2].contains(key_id), "{object:?} uses key {key_id}");
    }
    drop(server);

    // A second server with an empty WAL: the trace comes from S3 alone. Its
    // credentials come from aws-config's default chain (the environment).
    let options = Options {
        storage_yaml: storage(""),
        env: vec![
            ("AWS_ACCESS_KEY_ID".into(), s3.get("access_key").into()),
            ("AWS_SECRET_ACCESS_KEY".into(), s3.get("secret_key").into()),
            ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
        ],
        ..Default::default()
    };
    let server = TestServer::start(&dir.path().join("second"), options);
    assert_eq!(server.span_names(&id).await, ["child", "root"]);
}
