//! The ordering log as openraft sees it: entries kept in memory for reads,
//! written and synced to [`LogFiles`] by one I/O thread (inline, in
//! [`crate::simulation`]).
//!
//! Appends from openraft are queued to the thread in order and acknowledged
//! (its `IOFlushed` callback) only once they are on disk: after an fsync
//! with [`SyncMode::Always`], after the write with [`SyncMode::Batch`]. The
//! thread drains every queued append before syncing, so one fsync covers
//! every entry that arrived meanwhile (group commit). Votes are synced
//! before `save_vote` returns, whatever the mode.
//!
//! The first write or fsync that fails is the log's [`Fault`]: it is never
//! retried and never forgotten. After a failed fsync the kernel may have
//! dropped the dirty pages, and a later fsync can "succeed" over writes that
//! are gone (PostgreSQL's fsyncgate, 2018; Rebello et al., "Can Applications
//! Recover from fsync Failures?", USENIX ATC 2020). So every later operation
//! fails with it, raft stops, and the node recovers only by a restart from
//! what is durable.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use openraft::storage::{IOFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::files::{LogFiles, PersistentState, Spot, encode_record, read_spot};
use super::index::{LogIndex, Part};
use crate::order::raft::types::{LogEntry, LogId, TypeConfig, Vote};

/// The log's size limits, in bytes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LogLimits {
    /// A segment file is closed once it reaches this.
    pub(crate) segment: u64,
    /// The largest record.
    pub(crate) entry: usize,
    /// Payloads kept in memory, newest first (beyond what is not yet on
    /// disk); older ones are read from disk.
    pub(crate) cache: usize,
}

/// When the log is forced to disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SyncMode {
    /// fsync before an append is acknowledged: an acknowledged commit
    /// survives any crash of any number of nodes.
    Always,
    /// fsync at most every `interval`; an append is acknowledged once
    /// written. An acknowledged commit survives any minority crashing, but a
    /// simultaneous power loss of a majority may lose the last `interval`.
    Batch {
        /// The longest time written entries stay unsynced.
        interval: Duration,
    },
}

enum Op {
    Append {
        first: u64,
        records: Vec<Bytes>,
        ids: Vec<LogId>,
        done: IOFlushed<TypeConfig>,
    },
    Truncate {
        from: u64,
        done: oneshot::Sender<io::Result<()>>,
    },
    SaveState {
        state: PersistentState,
        keep_from: Option<u64>,
        done: oneshot::Sender<io::Result<()>>,
    },
}

/// Where file operations go.
enum Io {
    /// To the log's I/O thread.
    Thread(Mutex<std_mpsc::SyncSender<Op>>),
    /// Run by the caller ([`crate::simulation`]).
    Inline(Mutex<Writer>),
}

/// What the writer measures, for operators.
#[derive(Debug, Default)]
struct IoStats {
    fsync: crate::Histogram,
    bytes: AtomicU64,
}

/// The log as an operator sees it.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct LogStats {
    /// How long the log's fsyncs took.
    pub fsync: crate::HistogramSnapshot,
    /// Bytes in the log's segment files.
    pub bytes: u64,
}

/// The log's first failed write or fsync, kept for good.
#[derive(Debug, Default)]
pub(crate) struct Fault(OnceLock<(io::ErrorKind, String)>);

impl Fault {
    /// Keeps `err` unless an earlier failure is kept.
    fn record(&self, err: &io::Error) {
        self.0.get_or_init(|| {
            tracing::error!(error = %err, "the log failed to write or sync: it refuses all further work");
            (err.kind(), err.to_string())
        });
    }

    /// The kept failure, if any.
    pub(crate) fn get(&self) -> Option<io::Error> {
        let (kind, text) = self.0.get()?;
        Some(io::Error::new(*kind, text.clone()))
    }

    /// Fails when a failure is kept.
    fn check(&self) -> io::Result<()> {
        match self.0.get() {
            Some((kind, text)) => Err(io::Error::new(
                *kind,
                format!("the log failed earlier and refuses work: {text}"),
            )),
            None => Ok(()),
        }
    }

    /// Runs `work` unless a failure is kept, and keeps its failure.
    fn guard<T>(&self, work: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
        self.check()?;
        let result = work();
        if let Err(err) = &result {
            self.record(err);
        }
        result
    }
}

struct Inner {
    /// Shared with the writer, which records where entries went.
    index: Arc<Mutex<LogIndex>>,
    /// How long the log's fsyncs take, and how many bytes its segments
    /// hold (both kept by the writer).
    stats: Arc<IoStats>,
    dir: PathBuf,
    io: Io,
    fault: Arc<Fault>,
    max_entry: usize,
    /// Entries at or below this may be dropped from disk once raft purged
    /// them: the node's engine holds a checkpoint covering them.
    released: AtomicU64,
}

/// The log store handle; clones share one log.
#[derive(Clone)]
pub(crate) struct LogStore {
    inner: Arc<Inner>,
}

/// Where a read asked for entries that were purged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Purged {
    /// The first index still held.
    pub(crate) first_retained: u64,
}

/// Why a read of the node's entries gave none.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    /// The entries asked for were purged.
    #[error("purged below {}", .0.first_retained)]
    Purged(Purged),
    /// Reading them from disk failed (a damaged record): the log's fault.
    #[error(transparent)]
    Io(io::Error),
}

impl ReadError {
    /// As openraft's storage API speaks it.
    fn into_io(self) -> io::Error {
        match self {
            ReadError::Io(err) => err,
            ReadError::Purged(purged) => io::Error::other(format!(
                "entries before {} are purged",
                purged.first_retained
            )),
        }
    }
}

/// Payload bytes one read of the node's subscription returns at most
/// (after its first entry), so a batch of large entries stays small.
pub(crate) const READ_BYTES: usize = 4 << 20;

/// Times a read is planned again when the log changed under it.
const READ_ATTEMPTS: usize = 8;

impl LogStore {
    /// Opens the log in `dir` and starts its I/O thread.
    pub(crate) fn open(dir: &Path, sync: SyncMode, limits: LogLimits) -> io::Result<Self> {
        let opened = LogFiles::open(dir, limits.segment, limits.entry)?;
        let index = LogIndex::new(opened.records, opened.state, limits.cache);
        let index = Arc::new(Mutex::new(index));
        let fault = Arc::new(Fault::default());
        let stats = Arc::new(IoStats::default());
        let writer = Writer::new(
            opened.files,
            sync,
            fault.clone(),
            index.clone(),
            stats.clone(),
        );
        let io = if crate::simulation::active() {
            Io::Inline(Mutex::new(writer))
        } else {
            let (tx, rx) = std_mpsc::sync_channel(1024);
            std::thread::Builder::new()
                .name("certus-log".to_string())
                .spawn(move || io_thread(writer, rx))?;
            Io::Thread(Mutex::new(tx))
        };
        Ok(LogStore {
            inner: Arc::new(Inner {
                index,
                stats,
                dir: dir.to_path_buf(),
                io,
                fault,
                max_entry: limits.entry,
                released: AtomicU64::new(0),
            }),
        })
    }

    /// The write or fsync that failed, once one did: the log refuses all
    /// work from then on.
    pub(crate) fn fault(&self) -> Option<io::Error> {
        self.inner.fault.get()
    }

    /// Makes the log fail as if a write or fsync had just failed.
    #[cfg(all(test, feature = "certs"))]
    pub(crate) fn inject_fault(&self, err: &io::Error) {
        self.inner.fault.record(err);
    }

    fn memory(&self) -> MutexGuard<'_, LogIndex> {
        lock(&self.inner.index)
    }

    /// How the log's disk is doing.
    /// The last index to purge so that the log's records take at most
    /// `keep` bytes; `None` while the segment files are within it.
    pub(crate) fn retention_cut(&self, keep: u64) -> Option<u64> {
        if self.inner.stats.bytes.load(AtomicOrdering::Relaxed) <= keep {
            return None;
        }
        lock(&self.inner.index).cut_keeping(keep)
    }

    pub(crate) fn stats(&self) -> LogStats {
        LogStats {
            fsync: self.inner.stats.fsync.snapshot(),
            bytes: self.inner.stats.bytes.load(AtomicOrdering::Relaxed),
        }
    }

    /// The first index raft may read: after its purge point.
    fn raft_first(&self) -> u64 {
        self.memory()
            .state
            .purged
            .as_ref()
            .map_or(0, |p| p.index + 1)
    }

    fn send(&self, op: Op) -> io::Result<()> {
        match &self.inner.io {
            Io::Thread(tx) => {
                let tx = tx.lock().unwrap_or_else(PoisonError::into_inner).clone();
                tx.send(op).map_err(|_| {
                    io::Error::new(io::ErrorKind::BrokenPipe, "log I/O thread stopped")
                })
            }
            Io::Inline(writer) => {
                let mut writer = writer.lock().unwrap_or_else(PoisonError::into_inner);
                let mut flushed = Vec::new();
                writer.apply(op, &mut flushed);
                writer.flush(flushed);
                Ok(())
            }
        }
    }

    /// The node can rebuild its state without the entries at or below
    /// `upto` (its engine stored a checkpoint there): they may leave the
    /// disk once raft has purged them too. Until then a purge by raft only
    /// hides them from raft, so a restarted node always finds the entries
    /// after its own checkpoint in its own log.
    pub(crate) fn release(&self, upto: u64) {
        self.inner.released.fetch_max(upto, AtomicOrdering::AcqRel);
    }

    /// Entries `[start, end)` that are held, at most [`READ_BYTES`] of
    /// them after the first, or where the held range begins when `start`
    /// was purged.
    pub(crate) fn read(&self, start: u64, end: u64) -> Result<Vec<LogEntry>, ReadError> {
        self.read_range(start, end, READ_BYTES, false)
    }

    /// The held entries of `[start, end)`, at most `max_bytes` after the
    /// first, as the log was at one moment: payloads older than the cache
    /// are read from disk (checksums checked), and a read that finds the
    /// log changed under it (truncated, purged) is planned again. A start
    /// already dropped is moved up to the first entry held when `clamp`,
    /// and is [`ReadError::Purged`] otherwise. A read that fails for good
    /// is the log's fault.
    fn read_range(
        &self,
        start: u64,
        end: u64,
        max_bytes: usize,
        clamp: bool,
    ) -> Result<Vec<LogEntry>, ReadError> {
        let mut attempts = 0;
        loop {
            let planned = self.memory().plan(start, end, max_bytes, clamp);
            let parts =
                planned.map_err(|first_retained| ReadError::Purged(Purged { first_retained }))?;
            match self.load(parts) {
                Ok(entries) => return Ok(entries),
                Err(err) if attempts < READ_ATTEMPTS && changed_under(&err) => {
                    attempts += 1;
                }
                Err(err) => {
                    self.inner.fault.record(&err);
                    return Err(ReadError::Io(err));
                }
            }
        }
    }

    /// Reads the disk parts of a plan, outside the lock.
    fn load(&self, parts: Vec<Part>) -> io::Result<Vec<LogEntry>> {
        let mut entries = Vec::with_capacity(parts.len());
        for part in parts {
            match part {
                Part::Cached(entry) => entries.push(entry),
                Part::Disk { log_id, spot } => {
                    let entry =
                        read_spot(&self.inner.dir, spot, log_id.index, self.inner.max_entry);
                    match entry {
                        Ok(entry) if entry.log_id == log_id => entries.push(entry),
                        Ok(_) => return Err(io::Error::new(io::ErrorKind::Interrupted, Changed)),
                        Err(err) => return Err(err),
                    }
                }
            }
        }
        Ok(entries)
    }

    /// Raft installed (or, at start, had installed) a snapshot point at
    /// `point`, and the node will read the entries up to it from here.
    ///
    /// They are the cluster's entries only if this log holds `point`
    /// itself: raft's log matching (equal log ids at one index mean equal
    /// logs before it) then vouches for every entry before it. Otherwise
    /// the entries at or below `point` may be leftovers of an older term
    /// that raft never truncated, because with no entry at `point` it
    /// found no conflict to truncate at (a node that was leader, crashed
    /// with appends nobody else had, and came back to a snapshot). Those
    /// are dropped now, durably (the purge point moves to `point`), before
    /// any reader learns of the snapshot; the node then needs a full state
    /// transfer instead of certifying what the cluster never committed.
    /// A log purged past `point` (the usual state at start) holds nothing
    /// at or below it and is left alone. Returns false when it dropped
    /// or purged anything.
    pub(crate) async fn settle_snapshot(&self, point: LogId) -> io::Result<bool> {
        {
            let mut memory = self.memory();
            if point.index < memory.first() || memory.log_id(point.index) == Some(point) {
                return Ok(true);
            }
            let last = memory.last_held();
            let dropped = memory.drop_before(point.index + 1, point.index + 1);
            if dropped > 0 {
                tracing::warn!(point = %point, ?last, dropped, "this log does not hold the snapshot point: its entries up to it may not be the cluster's and are dropped");
            }
            if memory.state.purged.is_none_or(|p| p.index < point.index) {
                memory.state.purged = Some(point);
            }
        }
        self.save_state(Some(point.index + 1)).await?;
        Ok(false)
    }

    async fn save_state(&self, keep_from: Option<u64>) -> io::Result<()> {
        let state = self.memory().state.clone();
        let (done, rx) = oneshot::channel();
        self.send(Op::SaveState {
            state,
            keep_from,
            done,
        })?;
        rx.await
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "log I/O thread stopped"))?
    }
}

/// A planned place that now holds another entry.
#[derive(Debug, thiserror::Error)]
#[error("the log changed under a read")]
struct Changed;

/// Whether `err` may come from the log changing under a read (another
/// entry at a planned place; a file purged or cut meanwhile): such a read
/// is planned again, a few times, before it counts as damage.
fn changed_under(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::Interrupted | io::ErrorKind::NotFound | io::ErrorKind::UnexpectedEof
    )
}

/// Locks the index; a panic elsewhere cannot leave it half-changed (every
/// change is made whole under the lock).
fn lock(index: &Mutex<LogIndex>) -> MutexGuard<'_, LogIndex> {
    index.lock().unwrap_or_else(PoisonError::into_inner)
}

fn bounds(range: &impl RangeBounds<u64>) -> (u64, u64) {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e.saturating_add(1),
        Bound::Excluded(&e) => e,
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<LogEntry>, io::Error> {
        let (start, end) = bounds(&range);
        // Entries kept past raft's purge point are not raft's any more.
        let purged = self.raft_first();
        self.read_range(start.max(purged), end, usize::MAX, true)
            .map_err(ReadError::into_io)
    }

    /// Replication reads at most [`READ_BYTES`] at a time.
    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<LogEntry>, io::Error> {
        let purged = self.raft_first();
        self.read_range(start.max(purged), end, READ_BYTES, true)
            .map_err(ReadError::into_io)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(self.memory().state.vote)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let memory = self.memory();
        Ok(LogState {
            last_purged_log_id: memory.state.purged,
            last_log_id: memory.last_log_id(),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        self.memory().state.vote = Some(*vote);
        self.save_state(None).await
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = LogEntry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        // Encode before taking the lock: readers are not held up by it, and
        // an entry that cannot be encoded leaves the log untouched.
        let entries: Vec<LogEntry> = entries.into_iter().collect();
        let records = entries
            .iter()
            .map(|entry| encode_record(entry, self.inner.max_entry))
            .collect::<io::Result<Vec<Bytes>>>()?;
        let first = entries.first().map(|entry| entry.log_id.index);
        let ids: Vec<LogId> = entries.iter().map(|entry| entry.log_id).collect();
        let mut memory = self.memory();
        for (entry, record) in entries.into_iter().zip(&records) {
            memory.push(entry, record.len());
        }
        drop(memory);
        let Some(first) = first else {
            callback.io_completed(Ok(()));
            return Ok(());
        };
        self.send(Op::Append {
            first,
            records,
            ids,
            done: callback,
        })
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let from = last_log_id.map_or(0, |id| id.index + 1);
        self.memory().truncate(from);
        let (done, rx) = oneshot::channel();
        self.send(Op::Truncate { from, done })?;
        rx.await
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "log I/O thread stopped"))?
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        let released = self.inner.released.load(AtomicOrdering::Acquire);
        let keep_from = {
            let mut memory = self.memory();
            let last = memory.last_held().map(|id| id.index);
            // Entries that end before the purge point (a snapshot point
            // installed past them) can never be read again: drop them all.
            let keep_from = if last.is_none_or(|last| last < log_id.index) {
                log_id.index + 1
            } else {
                (log_id.index + 1).min(released + 1)
            };
            memory.drop_before(keep_from, log_id.index + 1);
            memory.state.purged = Some(log_id);
            keep_from
        };
        self.save_state(Some(keep_from)).await
    }
}

/// Runs the log's file I/O until every handle is gone.
fn io_thread(mut writer: Writer, rx: std_mpsc::Receiver<Op>) {
    loop {
        let op = match writer.sync {
            SyncMode::Batch { interval } if writer.unsynced => match rx.recv_timeout(interval) {
                Ok(op) => Some(op),
                Err(std_mpsc::RecvTimeoutError::Timeout) => None,
                Err(std_mpsc::RecvTimeoutError::Disconnected) => break,
            },
            _ => match rx.recv() {
                Ok(op) => Some(op),
                Err(_) => break,
            },
        };
        let mut flushed = Vec::new();
        let mut next = op;
        while let Some(op) = next.take() {
            writer.apply(op, &mut flushed);
            next = rx.try_recv().ok();
        }
        writer.flush(flushed);
    }
}

/// An append written but not yet acknowledged, with how its write went.
type Flushed = (IOFlushed<TypeConfig>, io::Result<()>);

/// The log's files and when they were last synced: what the I/O thread
/// drives or, in [`crate::simulation`], what every operation runs inline.
struct Writer {
    files: LogFiles,
    sync: SyncMode,
    unsynced: bool,
    last_sync: Instant,
    fault: Arc<Fault>,
    /// Told where each record went.
    index: Arc<Mutex<LogIndex>>,
    stats: Arc<IoStats>,
}

impl Writer {
    fn new(
        files: LogFiles,
        sync: SyncMode,
        fault: Arc<Fault>,
        index: Arc<Mutex<LogIndex>>,
        stats: Arc<IoStats>,
    ) -> Self {
        stats.bytes.store(files.bytes(), AtomicOrdering::Relaxed);
        Writer {
            files,
            sync,
            unsynced: false,
            last_sync: Instant::now(),
            fault,
            index,
            stats,
        }
    }

    /// Syncs the files, timing it.
    fn sync_files(&mut self) -> io::Result<()> {
        let started = std::time::Instant::now();
        let result = self.files.sync();
        self.stats.fsync.observe(started.elapsed());
        result
    }

    /// Carries out `op`; an append is acknowledged by [`Writer::flush`].
    fn apply(&mut self, op: Op, flushed: &mut Vec<Flushed>) {
        self.carry_out(op, flushed);
        let bytes = self.files.bytes();
        self.stats.bytes.store(bytes, AtomicOrdering::Relaxed);
    }

    fn carry_out(&mut self, op: Op, flushed: &mut Vec<Flushed>) {
        match op {
            Op::Append {
                first,
                records,
                ids,
                done,
            } => {
                let fault = self.fault.clone();
                let result = fault.guard(|| self.files.append(first, &records));
                self.unsynced = true;
                let result = result.map(|spots| {
                    let written: Vec<(LogId, Spot)> = ids.into_iter().zip(spots).collect();
                    lock(&self.index).written(&written);
                });
                flushed.push((done, result));
            }
            Op::Truncate { from, done } => {
                let fault = self.fault.clone();
                let _ = done.send(fault.guard(|| self.files.truncate_from(from)));
            }
            Op::SaveState {
                state,
                keep_from,
                done,
            } => {
                let fault = self.fault.clone();
                let result = fault.guard(|| {
                    self.sync_files()?;
                    self.files.save_state(&state)?;
                    match keep_from {
                        Some(keep) => self.files.purge_before(keep),
                        None => Ok(()),
                    }
                });
                let _ = done.send(result);
            }
        }
    }

    /// Syncs when the mode asks for it, then acknowledges `flushed`.
    fn flush(&mut self, flushed: Vec<Flushed>) {
        let must_sync = match self.sync {
            SyncMode::Always => !flushed.is_empty(),
            SyncMode::Batch { interval } => self.unsynced && self.last_sync.elapsed() >= interval,
        };
        // A failed sync is kept even when no append waits for it (the
        // batch timer's): the writes it covered may be gone.
        let sync_result = if must_sync {
            self.last_sync = Instant::now();
            self.unsynced = false;
            let fault = self.fault.clone();
            fault.guard(|| self.sync_files())
        } else {
            Ok(())
        };
        for (done, result) in flushed {
            let result = match (&result, &sync_result) {
                (Ok(()), Ok(())) => Ok(()),
                (Err(e), _) | (_, Err(e)) => Err(io::Error::new(e.kind(), e.to_string())),
            };
            done.io_completed(result);
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if self.fault.get().is_none() {
            let _ = self.files.sync();
        }
    }
}
