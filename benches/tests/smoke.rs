//! Smoke test of `spanlake-bench` on the `tiny` dataset with the dev build
//! of `spanlake`: every section runs, the tables and CSV files are produced
//! and DuckDB agrees with Spanlake on every query. No timing is asserted.
//! Needs the `spanlake` binary of the same build (made by `cargo test
//! --workspace`) and python3 with pip (the DuckDB venv is made in
//! `target/pyenv-bench`).

use std::path::PathBuf;
use std::process::Command;

/// The `spanlake` binary beside this test's: `CARGO_BIN_EXE_*` names only
/// this package's binaries, and the target directory can be anywhere
/// (`CARGO_TARGET_DIR`, `--target`, `--profile`). The test runs as
/// `<target>/<profile>/deps/smoke-<hash>`; binaries are in `<target>/<profile>`.
fn spanlake_binary() -> PathBuf {
    let test = std::env::current_exe().unwrap();
    let profile_dir = test.parent().and_then(|deps| deps.parent()).expect("the test runs from <target>/<profile>/deps");
    profile_dir.join(format!("spanlake{}", std::env::consts::EXE_SUFFIX))
}

#[test]
fn bench_runs_every_section_on_tiny() {
    let spanlake = spanlake_binary();
    assert!(spanlake.is_file(), "{} missing: run `cargo build --workspace` first", spanlake.display());
    // The bench binary was found the same way by cargo: a check of the derivation.
    assert_eq!(PathBuf::from(env!("CARGO_BIN_EXE_spanlake-bench")).parent(), spanlake.parent());
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let output = Command::new(env!("CARGO_BIN_EXE_spanlake-bench"))
        .args(["--size", "tiny", "--runs", "1", "--blocks", "1,3", "--tbi-spans", "2000", "--lookups", "5", "--no-charts"])
        .arg("--spanlake")
        .arg(&spanlake)
        .arg("--data")
        .arg(dir.path().join("data"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "spanlake-bench failed: {}\nstdout:\n{stdout}\nstderr:\n{stderr}", output.status);
    for title in ["### Ingest", "### Storage", "### TraceQL", "### Spanlake versus DuckDB", "### Trace by ID"] {
        assert!(stdout.contains(title), "no {title:?} table in:\n{stdout}");
    }
    assert!(!stdout.contains("**NO**") && !stdout.contains("DISAGREEMENTS"), "{stdout}");
    for csv in ["ingest", "storage", "traceql", "versus_duckdb", "trace_by_id"] {
        let text = std::fs::read_to_string(out.join(format!("{csv}.csv"))).unwrap();
        assert!(text.lines().count() > 1, "{csv}.csv has no rows");
    }
    let blocks: Vec<&str> = stdout.lines().filter(|l| l.starts_with("| 1 |") || l.starts_with("| 3 |")).collect();
    assert_eq!(blocks.len(), 2, "trace-by-id rows for 1 and 3 blocks:\n{stdout}");
}
