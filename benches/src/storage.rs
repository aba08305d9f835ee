//! Section 2, storage: bytes per span on disk (the `data.parquet` files of
//! the dataset's blocks over their rows) and the share of each column group,
//! from the compressed column-chunk sizes in the Parquet footers.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;

use anyhow::{Context, Result};
use parquet::file::reader::{FileReader, SerializedFileReader};
use spanlake_engine::schema::{DEDICATED_COLUMNS, col};

use crate::report::{Table, mib};
use crate::server::parquet_files;

/// Column groups, in table order.
const GROUPS: [&str; 10] =
    ["ids", "times", "names", "dedicated attrs", "span attr maps", "resource attr maps", "events", "links", "nested-set/trace-level", "other"];

/// The group of a top-level column.
fn group(column: &str) -> &'static str {
    match column {
        col::TRACE_ID | col::SPAN_ID | col::PARENT_SPAN_ID => "ids",
        col::START_UNIX_NANO | col::DURATION_NANO => "times",
        col::NAME => "names",
        col::EVENTS => "events",
        col::LINKS => "links",
        col::NESTED_SET_LEFT
        | col::NESTED_SET_RIGHT
        | col::NESTED_SET_PARENT
        | col::CHILD_COUNT
        | col::TRACE_ROOT_SERVICE
        | col::TRACE_ROOT_NAME
        | col::TRACE_START_UNIX_NANO
        | col::TRACE_DURATION_NANO => "nested-set/trace-level",
        c if DEDICATED_COLUMNS.iter().any(|d| d.column == c) => "dedicated attrs",
        c if c.starts_with("span_attrs") => "span attr maps",
        c if c.starts_with("resource_attrs") => "resource attr maps",
        _ => "other",
    }
}

/// What the blocks of a dataset hold.
#[derive(Debug, Clone, Default)]
pub struct StorageResult {
    /// `data.parquet` files.
    pub files: usize,
    /// Their total size.
    pub file_bytes: u64,
    /// Rows (spans) in them.
    pub rows: u64,
    /// Compressed column-chunk bytes per group.
    pub groups: BTreeMap<&'static str, u64>,
    /// Compressed column-chunk bytes per top-level column.
    pub columns: BTreeMap<String, u64>,
}

/// Reads the footers of every block under `data_dir`.
pub fn measure(data_dir: &Path) -> Result<StorageResult> {
    let mut result = StorageResult::default();
    for path in parquet_files(data_dir)? {
        let file = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        result.file_bytes += file.metadata().with_context(|| format!("size of {}", path.display()))?.len();
        let reader = SerializedFileReader::new(file).with_context(|| format!("reading the footer of {}", path.display()))?;
        let metadata = reader.metadata();
        result.files += 1;
        result.rows += metadata.file_metadata().num_rows() as u64;
        for row_group in metadata.row_groups() {
            for column in row_group.columns() {
                let top = column.column_path().parts().first().cloned().unwrap_or_default();
                let bytes = column.compressed_size() as u64;
                *result.groups.entry(group(&top)).or_default() += bytes;
                *result.columns.entry(top).or_default() += bytes;
            }
        }
    }
    Ok(result)
}

/// The storage table: one row per group, then the overhead and the total.
pub fn table(dataset: &str, r: &StorageResult) -> Table {
    let mut t = Table::new("Storage (data.parquet, zstd)", "storage", &["dataset", "group", "MiB", "bytes/span", "share %"]);
    let spans = r.rows.max(1) as f64;
    let mut add = |group: &str, bytes: u64| {
        t.row(vec![
            dataset.to_owned(),
            group.to_owned(),
            mib(bytes),
            format!("{:.2}", bytes as f64 / spans),
            format!("{:.1}", 100.0 * bytes as f64 / r.file_bytes.max(1) as f64),
        ]);
    };
    for group in GROUPS {
        add(group, r.groups.get(group).copied().unwrap_or(0));
    }
    let columns: u64 = r.groups.values().sum();
    add("footer, page index, bloom filters", r.file_bytes.saturating_sub(columns));
    add("total", r.file_bytes);
    let mut largest: Vec<_> = r.columns.iter().collect();
    largest.sort_by(|a, b| b.1.cmp(a.1));
    let top: Vec<String> = largest.iter().take(8).map(|(c, b)| format!("{c} {:.2}", **b as f64 / spans)).collect();
    t.notes.push(format!(
        "{} spans in {} blocks: **{:.1} bytes/span**. Largest columns (bytes/span): {}.",
        r.rows,
        r.files,
        r.file_bytes as f64 / spans,
        top.join(", ")
    ));
    t
}
