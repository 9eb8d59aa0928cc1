//! openraft's own storage test suite against the log store and the
//! delivery state machine, on a real directory; plus crash-recovery cases
//! the suite does not cover.

use openraft::StorageError;
use openraft::storage::RaftLogStorage;
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::{EntryPayload, RaftLogReader};

use super::delivery::Delivery;
use super::log::{LogLimits, LogStore, SyncMode};
use super::types::{LogEntry, Submission, TypeConfig};

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, Delivery, tempfile::TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, Delivery), StorageError<TypeConfig>> {
        let dir = tempfile::tempdir().map_err(|e| {
            StorageError::from_io_error(openraft::ErrorSubject::Store, openraft::ErrorVerb::Read, e)
        })?;
        let store =
            LogStore::open(dir.path(), SyncMode::Always, limits(4096, 1 << 20)).map_err(|e| {
                StorageError::from_io_error(
                    openraft::ErrorSubject::Store,
                    openraft::ErrorVerb::Read,
                    e,
                )
            })?;
        let book = std::sync::Arc::new(crate::net::ProtocolBook::new(Default::default()));
        let (delivery, _) =
            Delivery::open(dir.path(), u64::MAX, store.clone(), book).map_err(|e| {
                StorageError::from_io_error(
                    openraft::ErrorSubject::Store,
                    openraft::ErrorVerb::Read,
                    e,
                )
            })?;
        Ok((dir, store, delivery))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_storage_suite_passes() {
    Suite::test_all(Builder)
        .await
        .expect("openraft storage suite");
}

/// Limits with no payload cache: every read of a written entry goes to
/// disk, so these tests check that path.
fn limits(segment: u64, entry: usize) -> LogLimits {
    LogLimits {
        segment,
        entry,
        cache: 0,
    }
}

fn entry(index: u64, data: &str) -> LogEntry {
    let leader = openraft::impls::leader_id_adv::LeaderId {
        term: 1,
        node_id: 1,
    };
    LogEntry {
        log_id: openraft::LogId::new(leader, index),
        payload: EntryPayload::Normal(Submission {
            frame: bytes::Bytes::from(data.to_string()),
            stamp: crate::ids::ClusterTime::ZERO,
        }),
    }
}

/// The segment files in `dir`, oldest first.
fn segment_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    files.sort();
    files
}

/// A log of entries 0..40 in tiny segments, so they span several files.
async fn forty_entries(dir: &std::path::Path) -> LogStore {
    let mut store = LogStore::open(dir, SyncMode::Always, limits(256, 1 << 20)).expect("open");
    append(
        &mut store,
        (0..40).map(|i| entry(i, &format!("value {i}"))).collect(),
    )
    .await;
    store
}

async fn append(store: &mut LogStore, entries: Vec<LogEntry>) {
    let (tx, rx) = <TypeConfig as openraft::type_config::TypeConfigExt>::oneshot();
    store
        .append(entries, openraft::storage::IOFlushed::signal(tx))
        .await
        .expect("append");
    rx.await.expect("flushed").expect("flush result");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_survive_reopening_across_segments_and_a_torn_tail_is_cut() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let mut store = forty_entries(dir.path()).await;
        store
            .truncate_after(Some(entry(34, "").log_id))
            .await
            .expect("truncate");
    }
    let segments = segment_files(dir.path()).len();
    assert!(segments > 3, "expected several segments, found {segments}");
    let newest = segment_files(dir.path()).pop().expect("a segment");
    // A crash in the middle of writing one more record.
    write_after_records(&newest, b"CERT\x00\x01\x04\x00\x00\x00\x00\x40partial");
    let mut store =
        LogStore::open(dir.path(), SyncMode::Always, limits(256, 1 << 20)).expect("reopen");
    let entries = store.try_get_log_entries(0..100).await.expect("read");
    assert_eq!(
        entries.len(),
        35,
        "entries 0..=34 survive, the torn record does not"
    );
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e.log_id.index, i as u64);
        assert_eq!(
            e.payload,
            EntryPayload::Normal(Submission {
                frame: format!("value {i}").into(),
                stamp: crate::ids::ClusterTime::ZERO,
            })
        );
    }
    // The log keeps working after the cut.
    append(&mut store, vec![entry(35, "again")]).await;
    drop(store);
    let mut store =
        LogStore::open(dir.path(), SyncMode::Always, limits(256, 1 << 20)).expect("reopen");
    let last = store.try_get_log_entries(35..36).await.expect("read");
    assert_eq!(last.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corruption_before_the_newest_segment_refuses_to_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        forty_entries(dir.path()).await;
    }
    let oldest = segment_files(dir.path()).remove(0);
    let mut bytes = std::fs::read(&oldest).expect("read");
    let at = bytes.len() / 2;
    bytes[at] ^= 0x5a;
    std::fs::write(&oldest, bytes).expect("write");
    let err = LogStore::open(dir.path(), SyncMode::Always, limits(256, 1 << 20))
        .err()
        .expect("must refuse");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{err}");
}

/// Writes `bytes` where the records of the (preallocated) segment `path`
/// end, over its zeros, as the log's next append would.
fn write_after_records(path: &std::path::Path, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let end = records_end(path);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open segment");
    file.write_all_at(bytes, end as u64).expect("write");
}

/// Where the records of the segment `path` end (its zeros begin).
fn records_end(path: &std::path::Path) -> usize {
    records(path).last().map_or(0, |(at, len)| at + len)
}

/// The newest segment's records, as (offset, length) pairs.
fn records(path: &std::path::Path) -> Vec<(usize, usize)> {
    let bytes = std::fs::read(path).expect("read segment");
    let mut at = 0;
    let mut found = Vec::new();
    // The segment is preallocated: its records end where the zeros begin.
    while at < bytes.len() && bytes[at..].iter().any(|&b| b != 0) {
        let header = crate::frame::peek_header(&bytes[at..], 1 << 20)
            .expect("header")
            .expect("whole header");
        found.push((at, header.frame_len()));
        at += header.frame_len();
    }
    found
}

/// Segments are preallocated: the zeros after the records read as the
/// end, appends overwrite them and survive a reopen, and anything but zeros
/// there is damage (in the newest segment, a torn tail cut off).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preallocated_segment_ends_at_its_zeros_and_only_there() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let mut store =
            LogStore::open(dir.path(), SyncMode::Always, limits(4096, 1 << 20)).expect("open");
        append(&mut store, (0..5).map(|i| entry(i, "value")).collect()).await;
    }
    let segment = segment_files(dir.path()).pop().expect("a segment");
    let end = records_end(&segment);
    assert_eq!(std::fs::metadata(&segment).expect("stat").len(), 4096);
    assert!(end > 0 && end < 4096, "{end}");
    {
        let mut store =
            LogStore::open(dir.path(), SyncMode::Always, limits(4096, 1 << 20)).expect("reopen");
        assert_eq!(store.read(0, 10).expect("read").len(), 5);
        append(&mut store, vec![entry(5, "more")]).await;
    }
    // A byte in the zeros: the newest segment's tail is torn there, so it
    // is cut after the records, and preallocated again by the next append.
    let end = records_end(&segment);
    let mut bytes = std::fs::read(&segment).expect("read");
    *bytes.last_mut().expect("bytes") = 1;
    std::fs::write(&segment, &bytes).expect("write");
    let mut store =
        LogStore::open(dir.path(), SyncMode::Always, limits(4096, 1 << 20)).expect("reopen");
    assert_eq!(store.read(0, 10).expect("read").len(), 6);
    assert_eq!(std::fs::metadata(&segment).expect("stat").len(), end as u64);
    append(&mut store, vec![entry(6, "after the cut")]).await;
    assert_eq!(std::fs::metadata(&segment).expect("stat").len(), 4096);
    drop(store);
    let store =
        LogStore::open(dir.path(), SyncMode::Always, limits(4096, 1 << 20)).expect("reopen");
    assert_eq!(store.read(0, 10).expect("read").len(), 7);
}

/// A bit flip in an acknowledged record of the newest segment, with intact
/// records after it, is corruption, not a torn tail: cutting there would
/// silently drop the records after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damage_followed_by_intact_records_refuses_to_open_naming_the_place() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let mut store =
            LogStore::open(dir.path(), SyncMode::Always, limits(1 << 20, 1 << 20)).expect("open");
        append(&mut store, (0..5).map(|i| entry(i, "value")).collect()).await;
    }
    let newest = segment_files(dir.path()).pop().expect("a segment");
    let (second, len) = records(&newest)[1];
    let mut bytes = std::fs::read(&newest).expect("read");
    bytes[second + len / 2] ^= 0x20;
    std::fs::write(&newest, &bytes).expect("write");
    let err = LogStore::open(dir.path(), SyncMode::Always, limits(1 << 20, 1 << 20))
        .err()
        .expect("must refuse");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{err}");
    let text = err.to_string();
    let name = newest.display().to_string();
    assert!(text.contains(&name), "{text}");
    assert!(text.contains(&format!("record at byte {second}")), "{text}");
    // Nothing was cut: the operator's copy is as it was.
    assert_eq!(std::fs::read(&newest).expect("read"), bytes);
}

/// A last record written whole but garbled (a torn sector), with nothing
/// intact after it, is a torn tail: cut, and the rest opens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbled_last_record_is_cut_as_torn() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let mut store =
            LogStore::open(dir.path(), SyncMode::Always, limits(1 << 20, 1 << 20)).expect("open");
        append(&mut store, (0..5).map(|i| entry(i, "value")).collect()).await;
    }
    let newest = segment_files(dir.path()).pop().expect("a segment");
    let (last, len) = *records(&newest).last().expect("records");
    let mut bytes = std::fs::read(&newest).expect("read");
    bytes[last + len - 1] ^= 0x20;
    std::fs::write(&newest, &bytes).expect("write");
    let mut store =
        LogStore::open(dir.path(), SyncMode::Always, limits(1 << 20, 1 << 20)).expect("open");
    let entries = store.try_get_log_entries(0..10).await.expect("read");
    assert_eq!(entries.len(), 4);
    assert_eq!(std::fs::metadata(&newest).expect("stat").len(), last as u64);
}

/// A write that fails is never retried nor forgotten: every later
/// operation fails too, even once the disk would take it again, and the
/// store reports the fault (the ordering core then stops).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_write_is_kept_and_refuses_all_later_work() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("log");
    // One record per segment: every append creates a file.
    let mut store = LogStore::open(&dir, SyncMode::Always, limits(1, 1 << 20)).expect("open");
    append(&mut store, vec![entry(0, "a")]).await;
    assert!(store.fault().is_none());
    std::fs::remove_dir_all(&dir).expect("remove");
    let failed = try_append(&mut store, vec![entry(1, "b")]).await;
    assert!(
        failed.is_err(),
        "a segment was created in a removed directory"
    );
    std::fs::create_dir_all(&dir).expect("recreate");
    let again = try_append(&mut store, vec![entry(2, "c")]).await;
    let err = again.expect_err("the log must refuse after a failure");
    assert!(err.to_string().contains("failed earlier"), "{err}");
    let fault = store.fault().expect("the fault is kept");
    assert_eq!(fault.kind(), std::io::ErrorKind::NotFound, "{fault}");
    let truncate = store.truncate_after(Some(entry(0, "").log_id)).await;
    assert!(
        truncate.is_err(),
        "a truncation went through after the fault"
    );
}

async fn try_append(store: &mut LogStore, entries: Vec<LogEntry>) -> std::io::Result<()> {
    let (tx, rx) = <TypeConfig as openraft::type_config::TypeConfigExt>::oneshot();
    store
        .append(entries, openraft::storage::IOFlushed::signal(tx))
        .await?;
    rx.await.expect("flushed")
}

/// Raft's purge hides entries from raft, but the node's own reads keep
/// them (on disk too) until the node releases them with a checkpoint; a
/// purge past the end of the log (a snapshot point) drops them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purged_entries_stay_for_the_node_until_released() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let mut store = forty_entries(dir.path()).await;
        store.release(9);
        store.purge(entry(29, "").log_id).await.expect("purge");
        let raft_view = store.try_get_log_entries(0..100).await.expect("read");
        assert_eq!(raft_view.first().map(|e| e.log_id.index), Some(30));
        let node_view = store.read(10, 40).expect("released entries only are gone");
        assert_eq!(node_view.len(), 30);
        assert!(store.read(5, 40).is_err(), "entries 0..=9 were released");
    }
    let mut store =
        LogStore::open(dir.path(), SyncMode::Always, limits(256, 1 << 20)).expect("reopen");
    assert_eq!(store.read(10, 40).expect("kept on disk").len(), 30);
    let state = store.get_log_state().await.expect("state");
    assert_eq!(state.last_purged_log_id.map(|id| id.index), Some(29));
    // A snapshot point beyond the log: nothing before it can be used.
    store.release(0);
    store.purge(entry(100, "").log_id).await.expect("purge");
    assert!(store.read(10, 40).is_err());
    append(&mut store, vec![entry(101, "after the snapshot point")]).await;
    drop(store);
    let store = LogStore::open(dir.path(), SyncMode::Always, limits(256, 1 << 20)).expect("reopen");
    let kept = store.read(101, 102).expect("the new entry");
    assert_eq!(kept.len(), 1);
}

/// A snapshot point the log holds vouches for the entries before it; one it
/// does not hold (the entries may be an old term's leftovers) drops them,
/// durably, so the node can never read them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_point_the_log_does_not_hold_drops_the_entries_before_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = forty_entries(dir.path()).await;
        let held = store
            .settle_snapshot(entry(20, "").log_id)
            .await
            .expect("settle");
        assert!(held);
        assert_eq!(store.read(0, 40).expect("all kept").len(), 40);
        // The same index in a later term: not this log's entry.
        let leader = openraft::impls::leader_id_adv::LeaderId {
            term: 2,
            node_id: 2,
        };
        let foreign = openraft::LogId::new(leader, 30);
        let held = store.settle_snapshot(foreign).await.expect("settle");
        assert!(!held);
        let gone = store.read(10, 40).expect_err("entries up to 30 are gone");
        let super::log::ReadError::Purged(gone) = gone else {
            panic!("not purged: {gone}");
        };
        assert_eq!(gone.first_retained, 31);
        assert_eq!(store.read(31, 40).expect("above the point").len(), 9);
        // Purged past the point: nothing at or below it is left to drop.
        let held = store.settle_snapshot(foreign).await.expect("settle");
        assert!(held);
        assert_eq!(store.read(31, 40).expect("still above the point").len(), 9);
    }
    let mut store =
        LogStore::open(dir.path(), SyncMode::Always, limits(256, 1 << 20)).expect("reopen");
    assert!(store.read(10, 40).is_err(), "dropped on disk too");
    let state = store.get_log_state().await.expect("state");
    assert_eq!(state.last_purged_log_id.map(|id| id.index), Some(30));
}

/// A log written before entries carried stamps (record format 1) opens,
/// and its entries read as unstamped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_1_records_open_as_unstamped_entries() {
    use super::types::{LogEntryV1, SubmissionV1};
    use crate::frame::{self, FrameKind};

    let dir = tempfile::tempdir().expect("tempdir");
    {
        let mut store =
            LogStore::open(dir.path(), SyncMode::Always, limits(4096, 1 << 20)).expect("open");
        append(&mut store, vec![entry(0, "new")]).await;
    }
    let leader = openraft::impls::leader_id_adv::LeaderId {
        term: 1,
        node_id: 1,
    };
    let old = [
        LogEntryV1 {
            log_id: openraft::LogId::new(leader, 1),
            payload: EntryPayload::Normal(SubmissionV1(bytes::Bytes::from_static(b"old"))),
        },
        LogEntryV1 {
            log_id: openraft::LogId::new(leader, 2),
            payload: EntryPayload::Blank,
        },
    ];
    let segment = segment_files(dir.path()).pop().expect("a segment");
    for record in &old {
        let bytes = frame::encode_version(FrameKind::LogEntry, 1, record, 1 << 20).expect("encode");
        write_after_records(&segment, &bytes);
    }
    let mut store =
        LogStore::open(dir.path(), SyncMode::Always, limits(4096, 1 << 20)).expect("reopen");
    let entries = store.try_get_log_entries(0..3).await.expect("read");
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[1], entry(1, "old"));
    assert_eq!(entries[2].payload, EntryPayload::Blank);
    assert_eq!(entries[2].log_id.index, 2);
}
