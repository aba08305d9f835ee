//! Write-ahead log: Arrow IPC stream segments, one directory per tenant.
//! A record is a request's spans as [`ReceivedSpans`] holds them: the
//! span-level columns, and the resource and scope columns once per scope
//! (a dictionary-encoded struct column, [`wal_schema`]).
//!
//! A request is acknowledged only after its batch is in the current segment
//! (and fsynced, under the default policy). Appends write under the
//! tenant's lock and fsync outside it, through the segment's [`SegmentSync`]:
//! concurrent appends share one fsync (group commit), and none returns before
//! an fsync that started after its bytes were written. A segment is deleted
//! once the head it backs is a block. A crash can leave a torn record at a
//! segment's end; it was never acknowledged, so replay stops there and keeps the rest.

use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use parking_lot::Mutex;

use crate::config::FsyncPolicy;
use crate::convert::{ReceivedSpans, wal_schema};
use crate::error::{Error, Result};
use crate::schema::adapt_to_span_schema;

const SEGMENT_SUFFIX: &str = ".arrow";

/// An open WAL segment being appended to.
pub struct WalSegment {
    path: PathBuf,
    writer: StreamWriter<BufWriter<File>>,
    sync: Arc<SegmentSync>,
    /// File length after the last complete record.
    good_len: u64,
}

impl std::fmt::Debug for WalSegment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalSegment").field("path", &self.path).finish()
    }
}

/// Makes a segment's written bytes durable, one fsync for every append
/// waiting at the time (group commit).
#[derive(Debug)]
pub struct SegmentSync {
    file: File,
    path: PathBuf,
    fsync: FsyncPolicy,
    /// Bytes handed to the OS so far (complete records only).
    written: AtomicU64,
    /// Bytes known durable; held while an fsync runs, so that later
    /// appenders wait for it and then find their bytes covered.
    synced: Mutex<u64>,
    /// An fsync failed. Linux reports a failed writeback once and may drop
    /// the pages, so a later fsync succeeding proves nothing: the segment
    /// acknowledges nothing more and is retired at the next write.
    failed: AtomicBool,
}

impl SegmentSync {
    /// Returns once the first `end` bytes of the segment are durable per
    /// the fsync policy, fsyncing unless a finished fsync already covers them.
    pub fn sync_to(&self, end: u64) -> Result<()> {
        if self.fsync != FsyncPolicy::Always {
            return Ok(());
        }
        let mut synced = self.synced.lock();
        if self.failed.load(Ordering::Acquire) {
            return Err(self.failed_error());
        }
        if *synced >= end {
            return Ok(());
        }
        // Everything written before this fsync starts is covered by it.
        let covered = self.written.load(Ordering::Acquire);
        if let Err(e) = self.file.sync_data() {
            self.failed.store(true, Ordering::Release);
            return Err(Error::io(format!("fsync of {}", self.path.display()))(e));
        }
        *synced = covered;
        Ok(())
    }

    /// Marks the segment as after a failed fsync (tests of the ingester's recovery).
    #[cfg(test)]
    pub(crate) fn poison(&self) {
        self.failed.store(true, Ordering::Release);
    }

    fn failed_error(&self) -> Error {
        Error::io(format!("WAL segment {} had a failed fsync", self.path.display()))(std::io::Error::other("earlier fsync failed"))
    }
}

impl WalSegment {
    /// Creates segment number `seq` of a tenant's WAL directory.
    pub fn create(tenant_dir: &Path, seq: u64, fsync: FsyncPolicy) -> Result<Self> {
        fs::create_dir_all(tenant_dir).map_err(Error::io(format!("creating WAL dir {}", tenant_dir.display())))?;
        let path = tenant_dir.join(format!("{seq:020}{SEGMENT_SUFFIX}"));
        let file = File::create(&path).map_err(Error::io(format!("creating WAL segment {}", path.display())))?;
        let sync_file = file.try_clone().map_err(Error::io(format!("opening WAL segment {}", path.display())))?;
        let sync = Arc::new(SegmentSync {
            file: sync_file,
            path: path.clone(),
            fsync,
            written: AtomicU64::new(0),
            synced: Mutex::new(0),
            failed: AtomicBool::new(false),
        });
        let mut segment = Self { writer: StreamWriter::try_new(BufWriter::new(file), &wal_schema())?, path, sync, good_len: 0 };
        let end = segment.write_pending()?;
        segment.sync.sync_to(end)?;
        if fsync == FsyncPolicy::Always {
            // Make the new file's directory entry durable too.
            File::open(tenant_dir).and_then(|d| d.sync_all()).map_err(Error::io("syncing WAL dir"))?;
        }
        Ok(segment)
    }

    /// Appends spans; durable per the fsync policy when this returns.
    pub fn append(&mut self, spans: &ReceivedSpans) -> Result<()> {
        let end = self.write(spans)?;
        self.sync.sync_to(end)
    }

    /// Writes spans to the OS without waiting for them to be durable; returns
    /// the segment length to pass to [`SegmentSync::sync_to`] (see [`Self::sync`]).
    pub fn write(&mut self, spans: &ReceivedSpans) -> Result<u64> {
        if self.sync.failed.load(Ordering::Acquire) {
            return Err(self.sync.failed_error());
        }
        self.writer.write(&spans.to_wal_batch()?)?;
        self.write_pending()
    }

    /// The segment's group-commit handle.
    pub fn sync(&self) -> Arc<SegmentSync> {
        self.sync.clone()
    }

    /// Hands buffered bytes to the OS; returns the segment length.
    fn write_pending(&mut self) -> Result<u64> {
        self.writer.flush()?;
        let file = self.writer.get_mut().get_mut();
        file.flush().map_err(Error::io("flushing WAL"))?;
        self.good_len = file.metadata().map_err(Error::io("reading WAL segment length"))?.len();
        self.sync.written.store(self.good_len, Ordering::Release);
        Ok(self.good_len)
    }

    /// Retires a segment after a failed append: cuts off the partial record
    /// so that replay reads every acknowledged one. Returns the path.
    pub fn abandon(self) -> Result<PathBuf> {
        let (path, good_len) = (self.path.clone(), self.good_len);
        drop(self);
        let file = fs::OpenOptions::new().write(true).open(&path).map_err(Error::io(format!("reopening {}", path.display())))?;
        file.set_len(good_len).map_err(Error::io(format!("truncating {}", path.display())))?;
        file.sync_all().map_err(Error::io(format!("fsync of {}", path.display())))?;
        Ok(path)
    }

    /// The segment's file name (recorded in the meta of the block it becomes).
    pub fn file_name(path: &Path) -> String {
        path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    }

    /// The segment number in a file name made by [`Self::file_name`]
    /// (`<seq>.arrow`); `None` for any other name.
    pub fn seq_of(file_name: &str) -> Option<u64> {
        file_name.strip_suffix(SEGMENT_SUFFIX).and_then(|s| s.parse::<u64>().ok())
    }

    /// Path of the segment file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A segment found on disk at start, with the spans it holds.
#[derive(Debug)]
pub struct ReplayedSegment {
    pub tenant: String,
    pub seq: u64,
    pub path: PathBuf,
    pub batches: Vec<ReceivedSpans>,
}

/// Reads every segment under `wal_dir` (`<tenant>/<seq>.arrow`), oldest first.
/// A segment that cannot be read in the current schema is moved aside
/// (`.unreadable`) with an error in the log, so the server still starts and
/// the data stays for manual recovery.
pub fn replay(wal_dir: &Path) -> Result<Vec<ReplayedSegment>> {
    let mut out = Vec::new();
    let Ok(tenants) = fs::read_dir(wal_dir) else { return Ok(out) };
    for tenant in tenants.flatten() {
        if !tenant.path().is_dir() {
            continue;
        }
        let tenant_name = tenant.file_name().to_string_lossy().into_owned();
        let segments = fs::read_dir(tenant.path()).map_err(Error::io("listing WAL"))?;
        for seg in segments.flatten() {
            let path = seg.path();
            let name = seg.file_name().to_string_lossy().into_owned();
            let Some(seq) = WalSegment::seq_of(&name) else { continue };
            let batches = match read_segment(&path) {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "unreadable WAL segment moved aside");
                    let _ = fs::rename(&path, path.with_extension("arrow.unreadable"));
                    continue;
                }
            };
            out.push(ReplayedSegment { tenant: tenant_name.clone(), seq, path, batches });
        }
    }
    out.sort_by_key(|s| s.seq);
    Ok(out)
}

/// Reads the complete records of a segment; a torn tail ends the read.
fn read_segment(path: &Path) -> Result<Vec<ReceivedSpans>> {
    let file = File::open(path).map_err(Error::io(format!("opening WAL segment {}", path.display())))?;
    let reader = match StreamReader::try_new(BufReader::new(file), None) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "WAL segment without a readable header; skipping");
            return Ok(Vec::new());
        }
    };
    let current = reader.schema() == wal_schema();
    let mut batches = Vec::new();
    for batch in reader {
        match batch {
            Ok(b) if current => match ReceivedSpans::from_wal_batch(&b) {
                Ok(spans) => batches.push(spans),
                // Decoded but not spans (a damaged file): replay keeps the records before it.
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "invalid record in a WAL segment; replay stops there");
                    break;
                }
            },
            // Segments written by another version: span-schema batches (or
            // records of another WAL schema, flattened), the same columns by
            // name, new nullable columns added as nulls.
            Ok(b) => {
                let adapted = ReceivedSpans::flatten_wal_record(&b)
                    .and_then(|flat| adapt_to_span_schema(&flat).map_err(Error::internal))
                    .and_then(|batch| ReceivedSpans::from_span_batch(&batch));
                batches.push(adapted.map_err(|e| {
                    Error::internal(format!("WAL segment {} has an incompatible schema: {e}", path.display()))
                })?)
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "torn record at the end of a WAL segment");
                break;
            }
        }
    }
    Ok(batches)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::SpanBatchBuilder;
    use arrow::record_batch::RecordBatch;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    fn batch(n: u8) -> ReceivedSpans {
        let spans = (1..=n).map(|i| Span { trace_id: vec![i; 16], span_id: vec![i; 8], ..Default::default() }).collect();
        let rs = ResourceSpans { scope_spans: vec![ScopeSpans { spans, ..Default::default() }], ..Default::default() };
        let mut b = SpanBatchBuilder::new();
        b.append_resource_spans(&rs, |reason| panic!("{reason}")).unwrap();
        b.finish_received().unwrap()
    }

    #[test]
    fn replay_returns_complete_records_and_stops_at_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let tenant_dir = dir.path().join("t1");
        let mut seg = WalSegment::create(&tenant_dir, 7, FsyncPolicy::Always).unwrap();
        seg.append(&batch(2)).unwrap();
        seg.append(&batch(3)).unwrap();
        let path = seg.path().to_owned();
        drop(seg);
        // Tear the last record in half.
        let len = fs::metadata(&path).unwrap().len();
        let full = replay(dir.path()).unwrap();
        assert_eq!(full[0].batches.iter().map(|b| b.num_rows()).sum::<usize>(), 5);
        fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(len - 40).unwrap();
        let torn = replay(dir.path()).unwrap();
        assert_eq!(torn.len(), 1);
        assert_eq!(torn[0].tenant, "t1");
        assert_eq!(torn[0].seq, 7);
        assert_eq!(torn[0].batches.iter().map(|b| b.num_rows()).sum::<usize>(), 2);
    }

    #[test]
    fn one_fsync_covers_every_record_written_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut seg = WalSegment::create(&dir.path().join("t1"), 1, FsyncPolicy::Always).unwrap();
        let first = seg.write(&batch(2)).unwrap();
        let second = seg.write(&batch(3)).unwrap();
        assert!(second > first);
        let sync = seg.sync();
        sync.sync_to(first).unwrap();
        assert_eq!(*sync.synced.lock(), second, "the fsync for the first record made the second durable too");
        sync.sync_to(second).unwrap();
        drop(seg);
        assert_eq!(replay(dir.path()).unwrap()[0].batches.iter().map(|b| b.num_rows()).sum::<usize>(), 5);
    }

    #[test]
    fn a_failed_fsync_poisons_the_segment() {
        let dir = tempfile::tempdir().unwrap();
        let mut seg = WalSegment::create(&dir.path().join("t1"), 1, FsyncPolicy::Always).unwrap();
        let end = seg.write(&batch(2)).unwrap();
        let sync = seg.sync();
        // As after sync_data failed: later fsyncs may succeed without the lost pages.
        sync.failed.store(true, Ordering::Release);
        assert!(sync.sync_to(end).is_err(), "nothing written before is acknowledged");
        assert!(seg.write(&batch(1)).is_err(), "the segment takes no more writes (the ingester retires it)");
    }

    /// A WAL directory and its tenant `t1`'s directory, created.
    fn wal_dir() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let tenant_dir = dir.path().join("t1");
        fs::create_dir_all(&tenant_dir).unwrap();
        (dir, tenant_dir)
    }

    fn write_segment(path: &Path, batches: &[RecordBatch]) {
        let mut w = StreamWriter::try_new(File::create(path).unwrap(), &batches[0].schema()).unwrap();
        for b in batches {
            w.write(b).unwrap();
        }
        w.finish().unwrap();
    }

    #[test]
    fn records_of_another_wal_schema_are_flattened_and_adapted() {
        let (dir, tenant_dir) = wal_dir();
        // A WAL record of a version without trace_state (a nullable column).
        let spans = batch(3);
        let record = spans.to_wal_batch().unwrap();
        let keep: Vec<usize> = (0..record.num_columns()).filter(|&i| record.schema().field(i).name() != "trace_state").collect();
        write_segment(&tenant_dir.join("00000000000000000001.arrow"), &[record.project(&keep).unwrap()]);
        let replayed = replay(dir.path()).unwrap();
        assert_eq!(replayed[0].batches[0].to_batch().unwrap(), spans.to_batch().unwrap(), "trace_state was null anyway");
    }

    #[test]
    fn an_invalid_record_ends_the_replay_of_its_segment_keeping_the_records_before_it() {
        use arrow::array::{Array, AsArray, DictionaryArray, StructArray};
        use arrow::buffer::NullBuffer;
        use arrow::datatypes::UInt32Type;
        let (dir, tenant_dir) = wal_dir();
        let good = batch(2).to_wal_batch().unwrap();
        // The same record with its scope struct null: it decodes, but is no spans.
        let scope = good.column(good.num_columns() - 1).as_dictionary::<UInt32Type>();
        let values = scope.values().as_struct();
        let nulls = NullBuffer::new_null(values.len());
        let null_values = StructArray::try_new(values.fields().clone(), values.columns().to_vec(), Some(nulls)).unwrap();
        let bad_scope = DictionaryArray::<UInt32Type>::try_new(scope.keys().clone(), Arc::new(null_values)).unwrap();
        let mut columns = good.columns().to_vec();
        *columns.last_mut().unwrap() = Arc::new(bad_scope);
        let bad = RecordBatch::try_new(good.schema(), columns).unwrap();
        write_segment(&tenant_dir.join("00000000000000000001.arrow"), &[good.clone(), bad, good]);
        let replayed = replay(dir.path()).unwrap();
        assert_eq!(replayed.len(), 1, "the segment is not moved aside");
        assert_eq!(replayed[0].batches.len(), 1);
    }

    #[test]
    fn older_segments_are_adapted_and_unreadable_ones_moved_aside() {
        let (dir, tenant_dir) = wal_dir();
        // An "older" schema: the span schema without child_count.
        let full = batch(2).to_batch().unwrap();
        let keep: Vec<usize> = (0..full.num_columns()).filter(|&i| full.schema().field(i).name() != "child_count").collect();
        write_segment(&tenant_dir.join("00000000000000000001.arrow"), &[full.project(&keep).unwrap()]);
        // An incompatible one: trace_id missing.
        write_segment(&tenant_dir.join("00000000000000000002.arrow"), &[full.project(&keep[1..]).unwrap()]);

        let replayed = replay(dir.path()).unwrap();
        assert_eq!(replayed.len(), 1);
        assert_eq!(replayed[0].batches[0].to_batch().unwrap(), full);
        assert!(tenant_dir.join("00000000000000000002.arrow.unreadable").exists());
    }
}
