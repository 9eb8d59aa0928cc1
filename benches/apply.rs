//! Apply throughput: [`MvccStore::apply_batch`] on the in-memory engine,
//! redb and fjall (and on RocksDB with `--features rocksdb`), as
//! write-sets grow in keys (1 to 1,000 rows of 100 bytes) and in value
//! size (100 bytes to 1 MiB in one row). Each iteration applies one batch
//! of write-sets at fresh seqnos and moves the watermark (a lazy commit),
//! as the node's apply workers and runtime do; building the write-sets is
//! not timed.
//!
//! Run: `cargo bench --bench apply` (add `--features rocksdb` for RocksDB).

#![allow(clippy::unwrap_used)] // Bench code: a failed unwrap is a bug in the bench.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use certus::Seqno;
use certus::apply::Applier;
use certus::kv::{Engine, MemoryEngine, MvccStore};
use certus::writeset::WriteSet;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use support::Rng;

#[path = "support.rs"]
mod support;

/// Distinct keys the rows are drawn from.
const KEY_SPACE: u64 = 100_000;
/// Write-sets per apply batch (the pool hands a worker up to 32).
const BATCH: usize = 32;

fn write_set(rng: &mut Rng, txn: u64, rows: usize, value: &Bytes) -> WriteSet {
    let read_view = Seqno::new(txn.saturating_sub(1));
    support::write_set(rng, txn, read_view, rows, KEY_SPACE, value)
}

/// A store fed contiguous seqnos, kept across timing samples.
struct Feed {
    store: MvccStore,
    seqno: u64,
    rng: Rng,
    rows: usize,
    value: Bytes,
}

impl Feed {
    fn new(engine: Arc<dyn Engine>, rows: usize, value_len: usize) -> Feed {
        Feed {
            store: MvccStore::new(engine, 1 << 16),
            seqno: 0,
            rng: Rng(rows as u64 ^ value_len as u64),
            rows,
            value: Bytes::from(vec![0x5a; value_len]),
        }
    }

    /// Applies `count` write-sets in batches; returns the time spent.
    fn run(&mut self, count: u64) -> Duration {
        let mut timed = Duration::ZERO;
        let mut done = 0;
        while done < count {
            let n = usize::try_from(count - done).unwrap().min(BATCH);
            let first = self.seqno + 1;
            let sets: Vec<(Seqno, WriteSet)> = (first..first + n as u64)
                .map(|s| {
                    (
                        Seqno::new(s),
                        write_set(&mut self.rng, s, self.rows, &self.value),
                    )
                })
                .collect();
            let batch: Vec<(Seqno, &WriteSet)> = sets.iter().map(|(s, ws)| (*s, ws)).collect();
            let upto = Seqno::new(first + n as u64 - 1);
            let start = Instant::now();
            self.store.apply_batch(&batch).unwrap();
            self.store.make_visible(upto, None).unwrap();
            timed += start.elapsed();
            // Old versions are collected outside the timed part, as the
            // store's GC task does off the apply path.
            self.store.collect_garbage(upto, 1 << 16).unwrap();
            self.seqno = upto.get();
            done += n as u64;
        }
        timed
    }
}

/// Opens a fresh engine, with the directory that must outlive it.
type Open = Box<dyn Fn() -> (Arc<dyn Engine>, Option<tempfile::TempDir>)>;

/// The engines to measure: memory always, redb, fjall and RocksDB with
/// their features (the default build has the first two).
/// `CERTUS_BENCH_ENGINES=redb,fjall` picks some.
fn engines() -> Vec<(&'static str, Open)> {
    let mut engines: Vec<(&'static str, Open)> = vec![(
        "memory",
        Box::new(|| (Arc::new(MemoryEngine::new()) as Arc<dyn Engine>, None)),
    )];
    #[cfg(feature = "redb")]
    engines.push((
        "redb",
        Box::new(|| {
            let dir = tempfile::tempdir().unwrap();
            let engine = certus::kv::RedbEngine::open(dir.path().join("data.redb")).unwrap();
            (Arc::new(engine) as Arc<dyn Engine>, Some(dir))
        }),
    ));
    #[cfg(feature = "fjall")]
    engines.push((
        "fjall",
        Box::new(|| {
            let dir = tempfile::tempdir().unwrap();
            let engine = certus::kv::FjallEngine::open(dir.path()).unwrap();
            (Arc::new(engine) as Arc<dyn Engine>, Some(dir))
        }),
    ));
    #[cfg(feature = "rocksdb")]
    engines.push((
        "rocksdb",
        Box::new(|| {
            let dir = tempfile::tempdir().unwrap();
            let engine = certus::kv::RocksEngine::open(dir.path()).unwrap();
            (Arc::new(engine) as Arc<dyn Engine>, Some(dir))
        }),
    ));
    if let Ok(chosen) = std::env::var("CERTUS_BENCH_ENGINES") {
        engines.retain(|(name, _)| chosen.split(',').any(|c| c == *name));
    }
    engines
}

fn apply(c: &mut Criterion) {
    let shapes = [
        // Rows per write-set, 100-byte values.
        (1usize, 100usize),
        (10, 100),
        (100, 100),
        (1000, 100),
        // One row, growing values.
        (1, 10 << 10),
        (1, 100 << 10),
        (1, 1 << 20),
    ];
    for (name, open) in engines() {
        let mut group = c.benchmark_group(format!("apply/{name}"));
        group.sample_size(20);
        group.measurement_time(Duration::from_secs(4));
        for (rows, value_len) in shapes {
            let (engine, _dir) = open();
            let mut feed = Feed::new(engine, rows, value_len);
            feed.run(BATCH as u64 * 4);
            group.throughput(Throughput::Bytes((rows * value_len) as u64));
            let label = format!("{rows}x{value_len}B");
            group.bench_function(BenchmarkId::from_parameter(label), |b| {
                b.iter_custom(|iters| feed.run(iters));
            });
        }
        group.finish();
    }
}

criterion_group!(benches, apply);
criterion_main!(benches);
