//! The ordering log on disk: checksummed records in numbered segment files,
//! plus a small state file replaced atomically.
//!
//! Each record is one [`FrameKind::LogEntry`] frame holding one raft entry, so
//! every record carries its length and a crc32. Segments are named by the
//! index of their first record. On open, a damaged record at the end of the
//! newest segment, with nothing intact after it, is a write torn by a crash
//! and is cut off. A damaged record followed by an intact one, damage in
//! any older segment, or an intact record out of place is corruption (a
//! bit flip, a lost write, a bad sector): the open is refused, naming the
//! segment and offset, because cutting there would silently drop
//! acknowledged entries (etcd's WAL and RocksDB's `kTolerateCorruptedTailRecords`
//! draw the same line).

use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::disk::{Disk, DiskFile, disk_for};
use crate::frame::{self, FrameError, FrameKind, HEADER_LEN};
use openraft::EntryPayload;

use crate::ids::ClusterTime;
use crate::order::raft::types::{LogEntry, LogEntryV1, LogId, Submission, SubmissionV1, Vote};

const STATE_FILE: &str = "raft-state";
const STATE_MAX: usize = 1 << 20;
const SEGMENT_SUFFIX: &str = ".seg";

/// The small persistent state beside the log.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PersistentState {
    pub(crate) vote: Option<Vote>,
    pub(crate) purged: Option<LogId>,
}

struct Segment {
    first: u64,
    path: PathBuf,
    len: u64,
}

/// The log's files; owned by the log's I/O thread.
pub(crate) struct LogFiles {
    dir: PathBuf,
    disk: Arc<dyn Disk>,
    segments: Vec<Segment>,
    tail: Option<Box<dyn DiskFile>>,
    /// The index the next record on disk must have to continue the newest
    /// segment; any other index starts a new segment.
    next: Option<u64>,
    max_segment: u64,
    max_entry: usize,
}

/// What is wrong with a log file; carried as the source of an
/// [`io::ErrorKind::InvalidData`] error, which is what openraft's storage
/// API speaks.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LogDamage {
    #[error("unexpected log file {name}")]
    UnexpectedFile { name: String },
    #[error("no segment to append to")]
    NoSegment,
    #[error("log segments leave a gap between {before} and {after}")]
    Gap { before: u64, after: u64 },
    #[error("{file}: {source}")]
    Frame {
        file: String,
        #[source]
        source: FrameError,
    },
    #[error("{file} holds a frame of the wrong kind")]
    WrongKind { file: String },
    #[error("{file}: record at byte {offset}: {record}")]
    Record {
        file: String,
        offset: u64,
        #[source]
        record: BadRecord,
    },
}

/// Why one record of a segment cannot be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BadRecord {
    #[error("{got}-byte partial header")]
    PartialHeader { got: usize },
    #[error("short header")]
    ShortHeader,
    #[error("partial body")]
    PartialBody,
    #[error("record of kind {0:?}")]
    Kind(FrameKind),
    #[error("index {index} where {expected} belongs")]
    OutOfOrder { index: u64, expected: u64 },
    #[error(transparent)]
    Frame(#[from] FrameError),
}

fn invalid(damage: LogDamage) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, damage)
}

fn bad_frame(file: &str, source: FrameError) -> io::Error {
    let file = file.to_string();
    invalid(LogDamage::Frame { file, source })
}

/// Encodes one entry as a log record.
pub(crate) fn encode_record(entry: &LogEntry, max_entry: usize) -> io::Result<Bytes> {
    frame::encode(FrameKind::LogEntry, entry, max_entry).map_err(|e| bad_frame("a log entry", e))
}

/// Where one record is on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Spot {
    /// The first index of its segment (the segment's name).
    pub(crate) segment: u64,
    /// Its byte offset in the segment.
    pub(crate) offset: u64,
    /// Its length in bytes, header included.
    pub(crate) len: u64,
}

/// One record of the log as the store indexes it: its id and place, not
/// its payload (read from disk when needed).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Located {
    pub(crate) log_id: LogId,
    pub(crate) spot: Spot,
}

/// What opening the log found.
pub(crate) struct Opened {
    pub(crate) files: LogFiles,
    /// Every record kept, in index order.
    pub(crate) records: Vec<Located>,
    pub(crate) state: PersistentState,
}

impl LogFiles {
    /// Opens (creating if needed) the log in `dir`: checks every record
    /// and indexes those after the purge point, keeping no payload.
    pub(crate) fn open(dir: &Path, max_segment: u64, max_entry: usize) -> io::Result<Opened> {
        let disk = disk_for(dir);
        disk.create_dir_all(dir)?;
        let state = load_state(dir)?;
        let mut firsts: Vec<u64> = Vec::new();
        for name in disk.list(dir)? {
            if let Some(stem) = name.strip_suffix(SEGMENT_SUFFIX) {
                let first = stem.parse::<u64>().map_err(|_| {
                    let name = name.to_string();
                    invalid(LogDamage::UnexpectedFile { name })
                })?;
                firsts.push(first);
            }
        }
        firsts.sort_unstable();
        let mut files = LogFiles {
            dir: dir.to_path_buf(),
            disk: disk.clone(),
            segments: Vec::new(),
            tail: None,
            next: None,
            max_segment,
            max_entry,
        };
        let mut records = Vec::new();
        let count = firsts.len();
        for (i, first) in firsts.into_iter().enumerate() {
            let path = files.segment_path(first);
            let newest = i + 1 == count;
            let len = read_segment(&*disk, &path, first, max_entry, newest, &mut records)?;
            files.segments.push(Segment { first, path, len });
        }
        files.next = records.last().map(|r| r.log_id.index + 1);
        let keep_from = state.purged.as_ref().map_or(0, |p| p.index + 1);
        let kept = physically_kept(&records, keep_from)?;
        records.drain(..kept);
        Ok(Opened {
            files,
            records,
            state,
        })
    }

    fn segment_path(&self, first: u64) -> PathBuf {
        segment_path(&self.dir, first)
    }

    /// Appends records; `first` is the index of the first one. Not synced.
    /// Returns where each went.
    pub(crate) fn append(&mut self, first: u64, records: &[Bytes]) -> io::Result<Vec<Spot>> {
        let mut spots = Vec::with_capacity(records.len());
        for (i, record) in records.iter().enumerate() {
            let index = first + i as u64;
            let roll = self.next != Some(index)
                || self
                    .segments
                    .last()
                    .is_none_or(|s| s.len >= self.max_segment);
            if roll {
                self.roll(index)?;
            }
            let tail = match self.tail.as_mut() {
                Some(tail) => tail,
                None => self.reopen_tail()?,
            };
            tail.write_all(record)?;
            let Some(segment) = self.segments.last_mut() else {
                return Err(invalid(LogDamage::NoSegment));
            };
            spots.push(Spot {
                segment: segment.first,
                offset: segment.len,
                len: record.len() as u64,
            });
            segment.len += record.len() as u64;
            self.next = Some(index + 1);
        }
        Ok(spots)
    }

    fn roll(&mut self, first: u64) -> io::Result<()> {
        if let Some(mut tail) = self.tail.take() {
            tail.sync_data()?;
        }
        let path = self.segment_path(first);
        let mut file = self.disk.create(&path)?;
        // Preallocated (sparse): appends then change no size, so each sync
        // flushes the data alone and not the inode too (about a third
        // less per sync on ext4). The zeros after the last record read as
        // the log's end.
        file.set_len(self.max_segment)?;
        self.disk.sync_dir(&self.dir)?;
        if self.segments.last().is_some_and(|s| s.first == first) {
            self.segments.pop();
        }
        self.segments.push(Segment {
            first,
            path,
            len: 0,
        });
        self.tail = Some(file);
        Ok(())
    }

    fn reopen_tail(&mut self) -> io::Result<&mut Box<dyn DiskFile>> {
        let segment = self
            .segments
            .last()
            .ok_or_else(|| invalid(LogDamage::NoSegment))?;
        let mut file = self.disk.write_at(&segment.path, segment.len)?;
        // Preallocated again after a cut; past the records there are only
        // zeros (a reopened log checked that), so nothing is lost.
        if segment.len < self.max_segment {
            file.set_len(self.max_segment)?;
        }
        Ok(self.tail.insert(file))
    }

    /// Bytes in the segment files.
    pub(crate) fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.len).sum()
    }

    /// Makes everything appended so far durable.
    pub(crate) fn sync(&mut self) -> io::Result<()> {
        match self.tail.as_mut() {
            Some(tail) => tail.sync_data(),
            None => Ok(()),
        }
    }

    /// Removes the record of index `from` and everything after it.
    pub(crate) fn truncate_from(&mut self, from: u64) -> io::Result<()> {
        self.tail = None;
        while self
            .segments
            .last()
            .is_some_and(|s| s.first >= from && s.first > 0)
        {
            if let Some(segment) = self.segments.pop() {
                self.disk.remove(&segment.path)?;
            }
        }
        // Unknown until proven: a new segment is always safe.
        self.next = None;
        if let Some(segment) = self.segments.last_mut() {
            let (path, first) = (&segment.path, segment.first);
            let offset = record_offset(&*self.disk, path, first, from, self.max_entry)?;
            if let Some(offset) = offset {
                self.disk.truncate(path, offset)?;
                segment.len = offset;
                self.next = Some(from);
            }
        }
        self.disk.sync_dir(&self.dir)
    }

    /// Deletes segments holding only records before `keep_from`.
    pub(crate) fn purge_before(&mut self, keep_from: u64) -> io::Result<()> {
        while self.segments.len() > 1 && self.segments[1].first <= keep_from {
            let segment = self.segments.remove(0);
            self.disk.remove(&segment.path)?;
        }
        Ok(())
    }

    /// Replaces the state file atomically and durably.
    pub(crate) fn save_state(&self, state: &PersistentState) -> io::Result<()> {
        write_state_file(&self.dir, STATE_FILE, state, STATE_MAX)
    }
}

/// The path of the segment whose first record has index `first`.
pub(crate) fn segment_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:020}{SEGMENT_SUFFIX}"))
}

/// Reads the record at `spot` of the log in `dir` and checks it: its
/// checksum, its kind, and that it holds entry `index`.
pub(crate) fn read_spot(
    dir: &Path,
    spot: Spot,
    index: u64,
    max_entry: usize,
) -> io::Result<LogEntry> {
    let path = segment_path(dir, spot.segment);
    let mut record = vec![0u8; spot.len as usize];
    disk_for(dir).read_at(&path, spot.offset, &mut record)?;
    let damaged = |record: BadRecord| damaged(&path, spot.offset, record);
    match decode_record(&record, max_entry) {
        Ok(entry) if entry.log_id.index == index => Ok(entry),
        Ok(entry) => Err(damaged(BadRecord::OutOfOrder {
            index: entry.log_id.index,
            expected: index,
        })),
        Err(what) => Err(damaged(what)),
    }
}

fn load_state(dir: &Path) -> io::Result<PersistentState> {
    Ok(read_state_file(dir, STATE_FILE, STATE_MAX)?.unwrap_or_default())
}

/// Replaces `dir/name` with `value` as one [`FrameKind::OrderState`] frame:
/// written to a temporary file, synced, renamed over the old one, and the
/// directory synced, so a crash leaves either the old or the new state.
pub(crate) fn write_state_file<T: Serialize>(
    dir: &Path,
    name: &str,
    value: &T,
    max: usize,
) -> io::Result<()> {
    let bytes = frame::encode(FrameKind::OrderState, value, max).map_err(|e| bad_frame(name, e))?;
    crate::disk::replace(&dir.join(name), &bytes)
}

/// Reads a file written by [`write_state_file`]; `None` when there is none.
pub(crate) fn read_state_file<T: DeserializeOwned>(
    dir: &Path,
    name: &str,
    max: usize,
) -> io::Result<Option<T>> {
    let bytes = match disk_for(dir).read(&dir.join(name)) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err),
    };
    let (header, body) = frame::decode(&bytes, max).map_err(|e| bad_frame(name, e))?;
    if header.kind != FrameKind::OrderState {
        let file = name.to_string();
        return Err(invalid(LogDamage::WrongKind { file }));
    }
    frame::decode_body(FrameKind::OrderState, body)
        .map(Some)
        .map_err(|e| bad_frame(name, e))
}

/// Reads one segment's records into `out`; returns the valid length. A
/// torn record ends the newest segment (cut off there); any other damage
/// is an error.
fn read_segment(
    disk: &dyn Disk,
    path: &Path,
    first: u64,
    max_entry: usize,
    newest: bool,
    out: &mut Vec<Located>,
) -> io::Result<u64> {
    let mut input = BufReader::new(disk.reader(path, 0)?);
    let mut offset = 0u64;
    let mut expected = first;
    loop {
        match read_record(&mut input, max_entry)? {
            Record::End => return Ok(offset),
            Record::Entry(entry, len) if entry.log_id.index == expected => {
                let spot = Spot {
                    segment: first,
                    offset,
                    len,
                };
                out.push(Located {
                    log_id: entry.log_id,
                    spot,
                });
                offset += len;
                expected += 1;
            }
            // Intact but misplaced: no crash writes that.
            Record::Entry(entry, _) => {
                let index = entry.log_id.index;
                let record = BadRecord::OutOfOrder { index, expected };
                return Err(damaged(path, offset, record));
            }
            Record::Damaged(what) if newest => {
                return cut_torn_tail(disk, path, offset, what, max_entry);
            }
            Record::Damaged(what) => return Err(damaged(path, offset, what)),
        }
    }
}

fn damaged(path: &Path, offset: u64, record: BadRecord) -> io::Error {
    let file = path.display().to_string();
    invalid(LogDamage::Record {
        file,
        offset,
        record,
    })
}

/// The newest segment is damaged at `offset`. With no intact record after
/// the damage it is a write torn by a crash, cut off there; an intact
/// record after it means acknowledged entries would be lost, so it is
/// corruption.
fn cut_torn_tail(
    disk: &dyn Disk,
    path: &Path,
    offset: u64,
    what: BadRecord,
    max_entry: usize,
) -> io::Result<u64> {
    let mut rest = Vec::new();
    disk.reader(path, offset)?.read_to_end(&mut rest)?;
    if let Some(at) = intact_record_after(&rest, max_entry) {
        tracing::error!(path = %path.display(), offset, %what, intact_at = offset + at as u64, "a damaged log record is followed by an intact one: corruption");
        return Err(damaged(path, offset, what));
    }
    tracing::warn!(path = %path.display(), offset, %what, "cutting a torn record off the log's end");
    disk.truncate(path, offset)?;
    Ok(offset)
}

/// Where in `rest` (which starts with a damaged record) an intact log
/// record begins, if anywhere after its first byte.
fn intact_record_after(rest: &[u8], max_entry: usize) -> Option<usize> {
    let magic = frame::MAGIC.to_be_bytes();
    (1..rest.len()).find(|&at| {
        let candidate = &rest[at..];
        if !candidate.starts_with(&magic) {
            return false;
        }
        let Ok(Some(header)) = frame::peek_header(candidate, max_entry) else {
            return false;
        };
        header.kind == FrameKind::LogEntry
            && candidate
                .get(..header.frame_len())
                .is_some_and(|record| frame::decode(record, max_entry).is_ok())
    })
}

enum Record {
    End,
    Entry(Box<LogEntry>, u64),
    Damaged(BadRecord),
}

fn read_record(input: &mut impl Read, max_entry: usize) -> io::Result<Record> {
    let mut header = [0u8; HEADER_LEN];
    let got = read_full(input, &mut header)?;
    if got == 0 {
        return Ok(Record::End);
    }
    // A segment is preallocated: only zeros to its end is the end. Zeros
    // followed by anything else are damage (no record starts with zeros).
    if header[..got].iter().all(|&b| b == 0) && only_zeros(input)? {
        return Ok(Record::End);
    }
    if got < HEADER_LEN {
        return Ok(Record::Damaged(BadRecord::PartialHeader { got }));
    }
    let parsed = match frame::peek_header(&header, max_entry) {
        Ok(Some(h)) => h,
        Ok(None) => return Ok(Record::Damaged(BadRecord::ShortHeader)),
        Err(e) => return Ok(Record::Damaged(e.into())),
    };
    let mut record = vec![0u8; parsed.frame_len()];
    record[..HEADER_LEN].copy_from_slice(&header);
    let body_got = read_full(input, &mut record[HEADER_LEN..])?;
    if body_got < parsed.frame_len() - HEADER_LEN {
        return Ok(Record::Damaged(BadRecord::PartialBody));
    }
    Ok(match decode_record(&record, max_entry) {
        Ok(entry) => Record::Entry(Box::new(entry), record.len() as u64),
        Err(what) => Record::Damaged(what),
    })
}

/// Decodes and checks one whole record.
fn decode_record(record: &[u8], max_entry: usize) -> Result<LogEntry, BadRecord> {
    let (header, body) = frame::decode(record, max_entry)?;
    if header.kind != FrameKind::LogEntry {
        return Err(BadRecord::Kind(header.kind));
    }
    if header.version == 1 {
        let v1 = frame::decode_body::<LogEntryV1>(FrameKind::LogEntry, body)?;
        return Ok(upgrade(v1)?);
    }
    Ok(frame::decode_body::<LogEntry>(FrameKind::LogEntry, body)?)
}

/// A version 1 record's entry, as version 2 holds it: its frame without a
/// stamp (cluster time does not move at it). The log id and membership have
/// the same layout in both versions and are carried over through it.
fn upgrade(v1: LogEntryV1) -> Result<LogEntry, FrameError> {
    let convert = |err: postcard::Error| FrameError::Invalid {
        kind: FrameKind::LogEntry,
        reason: format!("a version 1 record does not convert: {err}"),
    };
    let log_id = postcard::to_stdvec(&v1.log_id).map_err(convert)?;
    let payload = match v1.payload {
        EntryPayload::Normal(SubmissionV1(frame)) => EntryPayload::Normal(Submission {
            frame,
            stamp: ClusterTime::ZERO,
        }),
        EntryPayload::Blank => EntryPayload::Blank,
        EntryPayload::Membership(membership) => {
            let bytes = postcard::to_stdvec(&membership).map_err(convert)?;
            EntryPayload::Membership(postcard::from_bytes(&bytes).map_err(convert)?)
        }
    };
    Ok(LogEntry {
        log_id: postcard::from_bytes(&log_id).map_err(convert)?,
        payload,
    })
}

/// Whether `input` holds nothing but zeros to its end (consumes it).
fn only_zeros(input: &mut impl Read) -> io::Result<bool> {
    let mut chunk = [0u8; 8192];
    loop {
        let got = read_full(input, &mut chunk)?;
        if chunk[..got].iter().any(|&b| b != 0) {
            return Ok(false);
        }
        if got < chunk.len() {
            return Ok(true);
        }
    }
}

fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match input.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// The byte offset of record `index` in a segment starting at `first`, or
/// `None` when the segment ends before it.
fn record_offset(
    disk: &dyn Disk,
    path: &Path,
    first: u64,
    index: u64,
    max_entry: usize,
) -> io::Result<Option<u64>> {
    let mut input = BufReader::new(disk.reader(path, 0)?);
    let mut offset = 0u64;
    for _ in first..index {
        match read_record(&mut input, max_entry)? {
            Record::Entry(_, len) => offset += len,
            Record::End => return Ok(None),
            Record::Damaged(record) => {
                let file = path.display().to_string();
                return Err(invalid(LogDamage::Record {
                    file,
                    offset,
                    record,
                }));
            }
        }
    }
    Ok(Some(offset))
}

/// Where the entries a reopened log keeps begin. Entries from `keep_from`
/// (after raft's purge point) must be contiguous. Entries before it are
/// kept while they run contiguously into the rest: raft no longer needs
/// them, but the node keeps them until its engine's checkpoint covers them
/// (see `LogStore::release`).
fn physically_kept(entries: &[Located], keep_from: u64) -> io::Result<usize> {
    let required = entries
        .iter()
        .position(|e| e.log_id.index >= keep_from)
        .unwrap_or(entries.len());
    check_contiguous(&entries[required..])?;
    // Walk back while each older entry leads into the next one kept.
    let mut start = required;
    let mut next = entries.get(required).map_or(keep_from, |e| e.log_id.index);
    while start > 0 && entries[start - 1].log_id.index + 1 == next {
        start -= 1;
        next = entries[start].log_id.index;
    }
    Ok(start)
}

fn check_contiguous(entries: &[Located]) -> io::Result<()> {
    for pair in entries.windows(2) {
        if pair[1].log_id.index != pair[0].log_id.index + 1 {
            let (before, after) = (pair[0].log_id.index, pair[1].log_id.index);
            return Err(invalid(LogDamage::Gap { before, after }));
        }
    }
    Ok(())
}
