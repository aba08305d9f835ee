//! Result tables: printed as Markdown, written as CSV, collected into
//! `summary.md`; and the small statistics the sections share.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};

/// One section's results.
#[derive(Debug, Clone)]
pub struct Table {
    /// Heading, e.g. "Storage".
    pub title: String,
    /// File stem of the CSV, e.g. "storage".
    pub slug: String,
    /// Column headers.
    pub headers: Vec<String>,
    /// Rows of cells, as many as headers.
    pub rows: Vec<Vec<String>>,
    /// Lines printed under the table.
    pub notes: Vec<String>,
}

impl Table {
    /// An empty table.
    pub fn new(title: &str, slug: &str, headers: &[&str]) -> Table {
        Table {
            title: title.to_owned(),
            slug: slug.to_owned(),
            headers: headers.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Appends a row.
    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.headers.len(), "row width of {}", self.title);
        self.rows.push(cells);
    }

    /// The table as Markdown, with its title and notes.
    pub fn markdown(&self) -> String {
        let mut out = format!("### {}\n\n| {} |\n|{}|\n", self.title, self.headers.join(" | "), vec!["---"; self.headers.len()].join("|"));
        for row in &self.rows {
            let _ = writeln!(out, "| {} |", row.join(" | "));
        }
        for note in &self.notes {
            let _ = write!(out, "\n{note}\n");
        }
        out
    }

    /// The table as CSV (cells quoted when they need it).
    pub fn csv(&self) -> String {
        let line = |cells: &[String]| cells.iter().map(|c| csv_cell(c)).collect::<Vec<_>>().join(",") + "\n";
        std::iter::once(line(&self.headers)).chain(self.rows.iter().map(|r| line(r))).collect()
    }

    /// Writes `<dir>/<slug>.csv`.
    pub fn write_csv(&self, dir: &Path) -> Result<()> {
        let path = dir.join(format!("{}.csv", self.slug));
        std::fs::write(&path, self.csv()).with_context(|| format!("writing {}", path.display()))
    }
}

fn csv_cell(cell: &str) -> String {
    if cell.contains([',', '"', '\n']) { format!("\"{}\"", cell.replace('"', "\"\"")) } else { cell.to_owned() }
}

/// The `q`-quantile (0..=1) of `samples` by nearest rank; zero when empty.
pub fn quantile(samples: &[Duration], q: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Milliseconds with a precision that suits the magnitude.
pub fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms < 10.0 { format!("{ms:.2}") } else if ms < 100.0 { format!("{ms:.1}") } else { format!("{ms:.0}") }
}

/// Bytes as MiB with two decimals.
pub fn mib(bytes: u64) -> String {
    format!("{:.2}", bytes as f64 / (1024.0 * 1024.0))
}

/// The machine the numbers were measured on: `nproc`, memory, CPU model.
pub fn machine() -> String {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo.lines().find_map(|l| l.strip_prefix("model name")).and_then(|l| l.split_once(':')).map(|(_, m)| m.trim()).unwrap_or("unknown");
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: u64 =
        meminfo.lines().find_map(|l| l.strip_prefix("MemTotal:")).and_then(|l| l.split_whitespace().next()).and_then(|n| n.parse().ok()).unwrap_or(0);
    format!("{cpus} CPUs ({model}), {:.1} GiB RAM", mem_kib as f64 / (1024.0 * 1024.0))
}
