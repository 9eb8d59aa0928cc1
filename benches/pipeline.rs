//! The whole commit pipeline of a three-node cluster in one process:
//! `begin`, one 100-byte row, `commit` (encode, order, certify on every
//! node, apply, commit in order, and the origin waiting until it applied),
//! from 1, 16 and 64 concurrent clients spread over the nodes.
//!
//! Two orderings: `in_process` (the in-memory total order: no network, no
//! log, so this is the cost of the node itself) and `raft` (openraft over
//! loopback TCP with its log on disk, fsync before acknowledging, as
//! certusd runs). Engines are in memory in both. Throughput is commits per
//! second of the whole cluster.
//!
//! Run: `cargo bench --bench pipeline`.

#![allow(clippy::unwrap_used)] // Bench code: a failed unwrap is a bug in the bench.

#[path = "../tests/common/mod.rs"]
#[allow(unreachable_pub)]
mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use certus::kv::{KvStore, StoreConfig};
use common::Cluster;
use common::net::NetCluster;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tokio::runtime::Runtime;

const NODES: u64 = 3;
const KEY_SPACE: u64 = 100_000;

fn defaults(_: &mut StoreConfig) {}

/// `commits` single-row transactions from `clients` tasks, client `i` on
/// node `i % nodes`; returns the wall time they took.
async fn run(stores: &[KvStore], clients: u64, commits: u64) -> Duration {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..clients {
        let store = stores[(client % stores.len() as u64) as usize].clone();
        // Spread `commits` over the clients, the first ones taking the rest.
        let mine = commits / clients + u64::from(client < commits % clients);
        tasks.push(tokio::spawn(async move {
            let value = Bytes::from(vec![b'x'; 100]);
            let mut key = client.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            for _ in 0..mine {
                key = key.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let mut txn = store.begin().await.unwrap();
                txn.put(format!("kv:{:012}", key % KEY_SPACE), value.clone())
                    .unwrap();
                // A rare write-write conflict between two clients is an
                // outcome like a commit: the pipeline did the same work.
                let _outcome = txn.commit().await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    start.elapsed()
}

fn bench_cluster(c: &mut Criterion, rt: &Runtime, name: &str, stores: &[KvStore]) {
    let mut group = c.benchmark_group("pipeline");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(8));
    group.throughput(Throughput::Elements(1));
    for clients in [1u64, 16, 64] {
        rt.block_on(run(stores, clients, clients * 20));
        group.bench_function(BenchmarkId::new(name, clients), |b| {
            b.iter_custom(|iters| rt.block_on(run(stores, clients, iters.max(clients))));
        });
    }
    group.finish();
}

fn pipeline(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    let mut cluster = rt.block_on(Cluster::start(NODES, defaults));
    let stores: Vec<KvStore> = cluster.stores.iter().flatten().cloned().collect();
    bench_cluster(c, &rt, "in_process", &stores);
    drop(stores);
    rt.block_on(async {
        for index in 0..NODES as usize {
            cluster.stop(index).await;
        }
    });

    let cluster = rt.block_on(NetCluster::start(NODES));
    let stores: Vec<KvStore> = (0..NODES as usize)
        .map(|i| cluster.store(i).clone())
        .collect();
    bench_cluster(c, &rt, "raft", &stores);
    drop(stores);
    rt.block_on(cluster.shutdown());
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
