//! What every [`Engine`] must do for the store to be correct, run against
//! the in-memory engine, redb, fjall and, with the `rocksdb` feature, RocksDB:
//! byte-ordered half-open scans with limits (forward and from the end), atomic batches where a later
//! change to a key wins, arbitrary binary keys and values, and (durable
//! engines) data that survives reopening and a refused second opener.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

use bytes::Bytes;
use std::path::Path;

use certus::kv::{Engine, EngineError, MemoryEngine, WriteBatch};

fn b(raw: &[u8]) -> Bytes {
    Bytes::copy_from_slice(raw)
}

fn put_all(engine: &dyn Engine, entries: &[(&[u8], &[u8])]) {
    let mut batch = WriteBatch::new();
    for (key, value) in entries {
        batch.put(b(key), b(value));
    }
    engine.write(batch).unwrap();
}

fn keys(entries: &[(Bytes, Bytes)]) -> Vec<&[u8]> {
    entries.iter().map(|(k, _)| k.as_ref()).collect()
}

fn gets_what_was_put_and_nothing_else(engine: &dyn Engine) {
    assert_eq!(engine.get(b"missing").unwrap(), None);
    put_all(engine, &[(b"k", b"v"), (b"empty", b"")]);
    assert_eq!(engine.get(b"k").unwrap(), Some(b(b"v")));
    assert_eq!(engine.get(b"empty").unwrap(), Some(Bytes::new()));
    assert_eq!(engine.get(b"k\0").unwrap(), None);
}

fn scans_are_byte_ordered_half_open_and_limited(engine: &dyn Engine) {
    let binary: &[(&[u8], &[u8])] = &[
        (b"a", b"1"),
        (b"a\x00", b"2"),
        (b"a\xff", b"3"),
        (b"b", b"4"),
        (b"\x00", b"5"),
        (b"\xff\xff", b"6"),
    ];
    put_all(engine, binary);
    let all = engine.scan(b"", b"\xff\xff\xff", usize::MAX).unwrap();
    assert_eq!(
        keys(&all),
        vec![&b"\x00"[..], b"a", b"a\x00", b"a\xff", b"b", b"\xff\xff"]
    );
    let range = engine.scan(b"a", b"b", usize::MAX).unwrap();
    assert_eq!(keys(&range), vec![&b"a"[..], b"a\x00", b"a\xff"]);
    assert_eq!(range[2].1, b(b"3"));
    let limited = engine.scan(b"a\x00", b"\xff", 2).unwrap();
    assert_eq!(keys(&limited), vec![&b"a\x00"[..], b"a\xff"]);
    assert!(engine.scan(b"a", b"b", 0).unwrap().is_empty());
    assert!(engine.scan(b"b", b"a", 10).unwrap().is_empty());
    assert!(engine.scan(b"b", b"b", 10).unwrap().is_empty());
    // Reverse scans: the same ranges from their end.
    let all = engine.scan_rev(b"", b"\xff\xff\xff", usize::MAX).unwrap();
    assert_eq!(
        keys(&all),
        vec![&b"\xff\xff"[..], b"b", b"a\xff", b"a\x00", b"a", b"\x00"]
    );
    let range = engine.scan_rev(b"a", b"b", 2).unwrap();
    assert_eq!(keys(&range), vec![&b"a\xff"[..], b"a\x00"]);
    assert_eq!(range[0].1, b(b"3"));
    let upper_excluded = engine.scan_rev(b"a\x00", b"b", usize::MAX).unwrap();
    assert_eq!(keys(&upper_excluded), vec![&b"a\xff"[..], b"a\x00"]);
    assert!(engine.scan_rev(b"a", b"b", 0).unwrap().is_empty());
    assert!(engine.scan_rev(b"b", b"a", 10).unwrap().is_empty());
}

fn batches_apply_in_order_and_deletes_remove(engine: &dyn Engine) {
    put_all(engine, &[(b"x", b"old"), (b"y", b"keep")]);
    let mut batch = WriteBatch::new();
    batch.put(b(b"x"), b(b"first"));
    batch.delete(b(b"x"));
    batch.put(b(b"z"), b(b"first"));
    batch.put(b(b"z"), b(b"second"));
    batch.delete(b(b"never-there"));
    batch.set_durable();
    engine.write(batch).unwrap();
    assert_eq!(engine.get(b"x").unwrap(), None);
    assert_eq!(engine.get(b"y").unwrap(), Some(b(b"keep")));
    assert_eq!(engine.get(b"z").unwrap(), Some(b(b"second")));
    let scanned = engine.scan(b"x", b"zz", usize::MAX).unwrap();
    assert_eq!(keys(&scanned), vec![&b"y"[..], b"z"]);
    engine.write(WriteBatch::new()).unwrap();
}

/// A scan sees a batch whole or not at all, while it is being written:
/// the store's garbage collection deletes a key's tombstone and the
/// versions it hides in one batch, and a scan that saw only part of it
/// would find a deleted row alive again. A writer puts and deletes eight
/// keys together, round after round, while scans forward and backward
/// count them (bounded rounds; a torn batch shows as a count of 1 to 7).
fn a_batch_is_seen_whole_by_concurrent_scans(engine: std::sync::Arc<dyn Engine>) {
    const ROUNDS: usize = 3000;
    let names: Vec<Bytes> = (0..8).map(|n| b(format!("t{n}").as_bytes())).collect();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (engine, done, names) = (engine.clone(), done.clone(), names.clone());
        std::thread::spawn(move || {
            for round in 0..ROUNDS {
                let mut batch = WriteBatch::new();
                for name in &names {
                    if round % 2 == 0 {
                        batch.put(name.clone(), b(b"v"));
                    } else {
                        batch.delete(name.clone());
                    }
                }
                engine.write(batch).unwrap();
            }
            done.store(true, std::sync::atomic::Ordering::Release);
        })
    };
    let mut scans = 0;
    while !done.load(std::sync::atomic::Ordering::Acquire) || scans == 0 {
        let forward = engine.scan(b"t", b"u", 100).unwrap().len();
        let backward = engine.scan_rev(b"t", b"u", 100).unwrap().len();
        for seen in [forward, backward] {
            assert!(
                seen == 0 || seen == 8,
                "a scan saw {seen} of a batch's 8 keys"
            );
        }
        scans += 1;
    }
    writer.join().unwrap();
}

/// Every check, each on a fresh engine from `fresh`.
fn conformance(fresh: &mut dyn FnMut() -> Box<dyn Engine>) {
    gets_what_was_put_and_nothing_else(fresh().as_ref());
    scans_are_byte_ordered_half_open_and_limited(fresh().as_ref());
    batches_apply_in_order_and_deletes_remove(fresh().as_ref());
    a_batch_is_seen_whole_by_concurrent_scans(std::sync::Arc::from(fresh()));
}

#[test]
fn the_memory_engine_conforms() {
    conformance(&mut || Box::new(MemoryEngine::new()));
}

/// Opens a durable engine at a path (which may not exist yet).
type Open = fn(&Path) -> Result<Box<dyn Engine>, EngineError>;

/// Every engine made by `open` conforms, each in a fresh path.
fn durable_conformance(open: Open) {
    let dir = tempfile::tempdir().unwrap();
    let mut count = 0;
    conformance(&mut || {
        count += 1;
        open(&dir.path().join(count.to_string())).unwrap()
    });
}

/// A batch written before a durable one is durable with it: both survive
/// closing and reopening.
fn data_survives_reopening(open: Open) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    {
        let engine = open(&path).unwrap();
        let mut batch = WriteBatch::new();
        batch.put(b(b"k"), b(b"v"));
        engine.write(batch).unwrap();
        let mut batch = WriteBatch::new();
        batch.put(b(b"w"), b(b"x"));
        batch.set_durable();
        engine.write(batch).unwrap();
    }
    let engine = open(&path).unwrap();
    assert_eq!(engine.get(b"k").unwrap(), Some(b(b"v")));
    assert_eq!(engine.get(b"w").unwrap(), Some(b(b"x")));
}

/// A second opener while the first holds the data gets an error.
fn data_in_use_is_refused(open: Open) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    let _first = open(&path).unwrap();
    let second = open(&path);
    assert!(
        matches!(second, Err(EngineError::Io(_))),
        "in use, yet opened"
    );
}

/// Batches the killed writer writes up to its last durable one; every
/// tenth is durable.
const KILLED_BATCHES: u64 = 400;
/// Batches it writes after its last durable one, none of them durable.
const KILLED_TAIL: u64 = 5;

/// The child half of [`a_killed_writer_leaves_every_durable_batch`]: run
/// only when that test starts this binary again with
/// `CERTUS_KILLED_WRITER=<path>`. It writes numbered batches, says on
/// stdout each time a durable one returned, and aborts in the middle of a
/// tail of batches that are not durable, with no destructor run, as
/// `kill -9` would stop it.
fn killed_writer_child(open: Open) {
    let Ok(path) = std::env::var("CERTUS_KILLED_WRITER") else {
        return;
    };
    let engine = open(Path::new(&path)).unwrap();
    for i in 0..KILLED_BATCHES + KILLED_TAIL {
        let mut batch = WriteBatch::new();
        batch.put(b(format!("k{i:06}").as_bytes()), b(&[7; 100]));
        if i % 10 == 9 && i < KILLED_BATCHES {
            batch.set_durable();
        }
        engine.write(batch).unwrap();
        if i % 10 == 9 && i < KILLED_BATCHES {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            writeln!(out, "durable {i}").unwrap();
            out.flush().unwrap();
        }
    }
    std::process::abort();
}

/// A process killed while writing leaves, once reopened, every batch
/// whose durable write returned and a prefix of the others: no hole.
/// The engine runs in a child process (this test binary started again on
/// `child`, an ignored test), which aborts after a tail of batches that
/// are not durable.
fn a_killed_writer_leaves_every_durable_batch(open: Open, child: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            child,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("CERTUS_KILLED_WRITER", &path)
        .output()
        .unwrap();
    assert!(!output.status.success(), "the writer was not killed");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let acknowledged = stdout
        .lines()
        .filter_map(|line| line.strip_prefix("durable "))
        .map(|n| n.parse::<u64>().unwrap())
        .max()
        .expect("the writer acknowledged no durable batch");
    assert_eq!(acknowledged, KILLED_BATCHES - 1, "{stdout}");
    let engine = open(&path).unwrap();
    let kept = engine.scan(b"k", b"l", usize::MAX).unwrap();
    for (i, (key, _)) in kept.iter().enumerate() {
        assert_eq!(key.as_ref(), format!("k{i:06}").as_bytes(), "a hole at {i}");
    }
    assert!(
        kept.len() as u64 > acknowledged,
        "only {} batches kept, {acknowledged} acknowledged durable",
        kept.len()
    );
    assert!(
        kept.len() as u64 <= KILLED_BATCHES + KILLED_TAIL,
        "{} batches kept, more than were written",
        kept.len()
    );
}

mod redb {
    use super::*;
    use certus::kv::RedbEngine;

    fn open(path: &Path) -> Result<Box<dyn Engine>, EngineError> {
        Ok(Box::new(RedbEngine::open(path)?))
    }

    #[test]
    fn the_redb_engine_conforms() {
        durable_conformance(open);
    }

    #[test]
    fn redb_data_survives_reopening() {
        data_survives_reopening(open);
    }

    #[test]
    fn a_redb_file_in_use_is_refused_with_an_error() {
        data_in_use_is_refused(open);
    }

    #[test]
    fn a_killed_redb_writer_leaves_every_durable_batch() {
        a_killed_writer_leaves_every_durable_batch(open, "redb::killed_writer");
    }

    #[test]
    #[ignore = "the child of a_killed_redb_writer_leaves_every_durable_batch"]
    fn killed_writer() {
        killed_writer_child(open);
    }

    /// redb on the simulation's disk locks its file as on a real one, and a
    /// database open when its host crashed can no longer touch the file.
    #[test]
    fn a_simulated_redb_file_is_opened_once_and_dies_with_its_host() {
        use certus::simulation::SimDisk;
        let disk = SimDisk::new(1);
        let path = Path::new("/sim/data.redb");
        let open = || RedbEngine::open_backend(disk.open_in_place(path).unwrap(), 1 << 20);
        let first = open().unwrap();
        assert!(matches!(open(), Err(EngineError::Io(_))), "opened twice");
        drop(first);
        let second = open().unwrap();
        put_all(&second, &[(b"k", b"v")]);
        disk.crash();
        disk.revive();
        let mut late = WriteBatch::new();
        late.put(b(b"late"), b(b"x"));
        late.set_durable();
        assert!(second.write(late).is_err(), "a dead process wrote");
        let third = open().unwrap();
        drop(second);
        assert_eq!(
            third.get(b"k").unwrap(),
            None,
            "an undurable batch survived"
        );
    }

    /// redb on the simulation's disk, whose crashes keep any subset of the
    /// writes since the last sync: after each crash the file opens, and the
    /// data is every durable batch and a prefix of the others, never a
    /// hole (redb in fact rolls back to the last durable commit).
    #[test]
    fn a_crash_leaves_every_durable_batch_and_a_prefix_of_the_rest() {
        use certus::simulation::SimDisk;
        for seed in 0..24u64 {
            let disk = SimDisk::new(seed);
            let path = Path::new("/sim/data.redb");
            let open = || RedbEngine::open_backend(disk.open_in_place(path).unwrap(), 1 << 20);
            let mut written = 0u32;
            let mut durable = 0u32;
            for round in 0..3 {
                let engine = open().unwrap();
                let present = (0..written)
                    .take_while(|n| engine.get(format!("k{n}").as_bytes()).unwrap().is_some())
                    .count() as u32;
                assert!(
                    present >= durable,
                    "seed {seed} round {round}: lost durable batches"
                );
                for n in present..written {
                    let key = format!("k{n}");
                    assert_eq!(
                        engine.get(key.as_bytes()).unwrap(),
                        None,
                        "seed {seed}: a hole before {key}"
                    );
                }
                written = present;
                for _ in 0..12 {
                    let mut batch = WriteBatch::new();
                    batch.put(format!("k{written}").into_bytes(), vec![7u8; 3000]);
                    if written % 4 == 3 {
                        batch.set_durable();
                    }
                    engine.write(batch).unwrap();
                    written += 1;
                    if written.is_multiple_of(4) {
                        durable = written;
                    }
                }
                // Power fails with the database open: its closing writes
                // find the host down.
                disk.crash();
                drop(engine);
                disk.revive();
            }
            assert!(durable >= 24, "seed {seed}: only {durable} durable batches");
        }
    }
}

mod fjall {
    use super::*;
    use certus::kv::FjallEngine;

    fn open(path: &Path) -> Result<Box<dyn Engine>, EngineError> {
        Ok(Box::new(FjallEngine::open(path)?))
    }

    #[test]
    fn the_fjall_engine_conforms() {
        durable_conformance(open);
    }

    #[test]
    fn fjall_data_survives_reopening() {
        data_survives_reopening(open);
    }

    #[test]
    fn a_fjall_database_in_use_is_refused_with_an_error() {
        data_in_use_is_refused(open);
    }

    #[test]
    fn a_killed_fjall_writer_leaves_every_durable_batch() {
        a_killed_writer_leaves_every_durable_batch(open, "fjall::killed_writer");
    }

    #[test]
    #[ignore = "the child of a_killed_fjall_writer_leaves_every_durable_batch"]
    fn killed_writer() {
        killed_writer_child(open);
    }
}

#[cfg(feature = "rocksdb")]
mod rocks {
    use super::*;
    use certus::kv::RocksEngine;

    fn open(path: &Path) -> Result<Box<dyn Engine>, EngineError> {
        Ok(Box::new(RocksEngine::open(path)?))
    }

    #[test]
    fn the_rocksdb_engine_conforms() {
        durable_conformance(open);
    }

    #[test]
    fn rocksdb_data_survives_reopening() {
        data_survives_reopening(open);
    }

    #[test]
    fn a_database_in_use_is_refused_with_an_error() {
        data_in_use_is_refused(open);
    }

    #[test]
    fn a_killed_rocksdb_writer_leaves_every_durable_batch() {
        a_killed_writer_leaves_every_durable_batch(open, "rocks::killed_writer");
    }

    #[test]
    #[ignore = "the child of a_killed_rocksdb_writer_leaves_every_durable_batch"]
    fn killed_writer() {
        killed_writer_child(open);
    }
}
