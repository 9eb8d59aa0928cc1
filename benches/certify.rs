//! Certification throughput, and write-set encode/decode throughput.
//!
//! Certification runs in steady state: one certifier lives across all
//! iterations, so its key index is full-size and its sweeps are included.
//! Each write-set touches 1 or 10 uniformly random keys of a 1M-key space
//! and read from a snapshot `LAG` positions old (that many concurrent
//! transactions), as on a busy cluster. Only `certify` is timed; building
//! the write-sets is not.
//!
//! Run: `cargo bench --bench certify`.

#![allow(clippy::unwrap_used)] // Bench code: a failed unwrap is a bug in the bench.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use certus::Seqno;
use certus::certify::{CertConfig, Certifier, Verdict};
use certus::writeset::WriteSet;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use support::Rng;

#[path = "support.rs"]
mod support;

fn write_set(rng: &mut Rng, txn: u64, read_view: Seqno, keys: usize, value: &Bytes) -> WriteSet {
    support::write_set(rng, txn, read_view, keys, KEY_SPACE, value)
}

const KEY_SPACE: u64 = 1_000_000;
const LAG: u64 = 8;
/// Write-sets built per untimed batch.
const BATCH: u64 = 4096;
const MAX_BYTES: usize = 32 << 20;

/// A certifier fed contiguous positions, kept across timing samples.
struct Feed {
    certifier: Certifier,
    seqno: Seqno,
    rng: Rng,
    keys: usize,
    value: Bytes,
    commits: u64,
    aborts: u64,
}

impl Feed {
    fn new(keys: usize) -> Self {
        Feed {
            certifier: Certifier::new(CertConfig::default()),
            seqno: Seqno::ZERO,
            rng: Rng(keys as u64),
            keys,
            value: Bytes::from_static(&[7; 64]),
            commits: 0,
            aborts: 0,
        }
    }

    /// Certifies `count` write-sets; returns the time spent certifying.
    fn run(&mut self, count: u64) -> Duration {
        let mut timed = Duration::ZERO;
        let mut done = 0;
        while done < count {
            let n = BATCH.min(count - done);
            let first = self.seqno.get() + 1;
            let batch: Vec<WriteSet> = (first..first + n)
                .map(|s| {
                    let read_view = Seqno::new(s.saturating_sub(LAG + 1));
                    write_set(&mut self.rng, s, read_view, self.keys, &self.value)
                })
                .collect();
            let start = Instant::now();
            for ws in &batch {
                self.seqno = self.seqno.next();
                match black_box(self.certifier.certify(self.seqno, ws)) {
                    Verdict::Commit { .. } => self.commits += 1,
                    _ => self.aborts += 1,
                }
            }
            timed += start.elapsed();
            done += n;
        }
        timed
    }
}

fn certification(c: &mut Criterion) {
    let mut group = c.benchmark_group("certify");
    group.throughput(Throughput::Elements(1));
    for keys in [1usize, 10] {
        let mut feed = Feed::new(keys);
        // Warm the index to steady state: a full certification window.
        feed.run(CertConfig::default().window);
        group.bench_function(BenchmarkId::new("keys", keys), |b| {
            b.iter_custom(|iters| feed.run(iters));
        });
        let total = feed.commits + feed.aborts;
        let (index_keys, dedup) = feed.certifier.sizes();
        eprintln!(
            "certify/keys/{keys}: {total} write-sets, {:.3}% aborted, index {index_keys} keys, \
             dedup {dedup} entries",
            100.0 * feed.aborts as f64 / total as f64
        );
    }
    group.finish();
}

fn codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("writeset");
    let mut rng = Rng(99);
    for (keys, value_len) in [(1usize, 64usize), (10, 100), (100, 1000)] {
        let value = Bytes::from(vec![0x5a; value_len]);
        let ws = write_set(&mut rng, 1, Seqno::new(1000), keys, &value);
        let frame = ws.encode(MAX_BYTES).unwrap();
        group.throughput(Throughput::Bytes(frame.len() as u64));
        let label = format!("{keys}x{value_len}B");
        group.bench_function(BenchmarkId::new("encode", &label), |b| {
            b.iter(|| black_box(&ws).encode(MAX_BYTES).unwrap());
        });
        group.bench_function(BenchmarkId::new("decode", &label), |b| {
            b.iter(|| WriteSet::decode(black_box(&frame), MAX_BYTES).unwrap());
        });
    }
    group.finish();
}

criterion_group!(benches, certification, codec);
criterion_main!(benches);
