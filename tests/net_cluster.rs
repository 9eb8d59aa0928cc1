//! Three nodes ordering over openraft on real TCP (loopback): replication,
//! restart with incremental catch-up, quorum loss and healing, and a full
//! cluster restart without any bootstrap step.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use certus::Seqno;
use certus::kv::{Engine, EngineError, KvError, MemoryEngine, WriteBatch};
use certus::node::{self, CommitOutcome, NodeState};
use common::net::{NetCluster, Tune, retry_failover};
use common::{bounded, int, retry};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_each_node_is_read_on_the_others() {
    bounded(async {
        let cluster = NetCluster::start(3).await;
        let mut last = Seqno::ZERO;
        for writer in 0..3 {
            let (seqno, (), _) = retry(cluster.store(writer), |txn| {
                txn.put(format!("from-{writer}"), format!("{}", writer * 10))
            })
            .await;
            last = last.max(seqno);
            // Causal reads: every other node sees the write at once.
            for reader in 0..3 {
                let mut txn = cluster.store(reader).begin().await.unwrap();
                let value = txn.get(format!("from-{writer}").as_bytes()).unwrap();
                assert_eq!(
                    int(value),
                    (writer * 10) as i64,
                    "node {reader} misses node {writer}'s write"
                );
            }
        }
        let data = cluster.assert_identical(last).await;
        assert_eq!(data.len(), 3);
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contended_increments_from_every_node_lose_nothing() {
    bounded(async {
        let cluster = NetCluster::start(3).await;
        let mut tasks = Vec::new();
        for client in 0..6 {
            let store = cluster.store(client % 3).clone();
            tasks.push(tokio::spawn(async move {
                let mut last = Seqno::ZERO;
                for _ in 0..15 {
                    let (seqno, (), _) = retry(&store, |txn| {
                        let now = int(txn.get(b"counter")?);
                        txn.put("counter", (now + 1).to_string())
                    })
                    .await;
                    last = last.max(seqno);
                }
                last
            }));
        }
        let mut last = Seqno::ZERO;
        for task in tasks {
            last = last.max(task.await.unwrap());
        }
        let data = cluster.assert_identical(last).await;
        assert_eq!(
            data,
            vec![(bytes::Bytes::from("counter"), bytes::Bytes::from("90"))]
        );
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_catches_up_from_its_peers_log() {
    bounded(async {
        let mut cluster = NetCluster::start(3).await;
        for i in 0..20 {
            retry(cluster.store(i % 3), |txn| {
                txn.put(format!("k{i}"), "before")
            })
            .await;
        }
        let before = cluster.store(2).node().last_visible();
        cluster.stop(2).await;
        let mut last = Seqno::ZERO;
        for i in 0..20 {
            let (seqno, ()) = retry_failover(cluster.store(i % 2), |txn| {
                txn.put(format!("k{i}"), "after")
            })
            .await;
            last = last.max(seqno);
        }
        cluster.restart(2).await;
        let status = cluster.store(2).node().status();
        assert!(
            status.last_visible >= before,
            "restart lost applied state: {status:?}"
        );
        cluster.wait_state(2, NodeState::Synced).await;
        let data = cluster.assert_identical(last).await;
        assert_eq!(data.len(), 20);
        assert!(data.iter().all(|(_, v)| v.as_ref() == b"after"));
        cluster.shutdown().await;
    })
    .await;
}

/// openraft bounds an append by entry count only: a node far behind on
/// large write-sets must get its catch-up in appends that fit a peer frame
/// (four entries' worth), or replication to it fails the same way forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_behind_on_large_write_sets_catches_up_in_bounded_appends() {
    bounded(async {
        let memory = || Arc::new(MemoryEngine::new()) as Arc<dyn Engine>;
        let tune = Tune {
            max_entry_bytes: 64 << 10,
            ..Tune::default()
        };
        let mut cluster = NetCluster::start_with(vec![memory(), memory(), memory()], tune).await;
        cluster.stop(2).await;
        // 40 write-sets of 48 KiB: about 2 MiB behind, a 256 KiB frame.
        let value = "v".repeat(48 << 10);
        let mut last = Seqno::ZERO;
        for i in 0..40 {
            let (seqno, ()) = retry_failover(cluster.store(i % 2), |txn| {
                txn.put(format!("big{i}"), value.clone())
            })
            .await;
            last = last.max(seqno);
        }
        cluster.restart(2).await;
        cluster.wait_state(2, NodeState::Synced).await;
        let data = cluster.assert_identical(last).await;
        assert_eq!(data.len(), 40);
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minority_refuses_writes_and_heals() {
    bounded(async {
        let mut cluster = NetCluster::start(3).await;
        retry(cluster.store(0), |txn| txn.put("x", "1")).await;
        cluster.stop(1).await;
        cluster.stop(2).await;
        cluster.wait_state(0, NodeState::NonPrimary).await;
        match cluster.store(0).begin().await {
            Err(KvError::Node(node::Error::NotPrimary)) => {}
            other => panic!("a causal read in a minority must be refused, got {other:?}"),
        }
        let mut blind = cluster
            .store(0)
            .begin_with(certus::node::TxnOptions::default().causal(false))
            .await
            .unwrap();
        blind.put("x", "2").unwrap();
        match blind.commit().await {
            Err(KvError::Node(node::Error::NotPrimary)) => {}
            other => panic!("a write in a minority must be refused, got {other:?}"),
        }
        cluster.restart(1).await;
        cluster.restart(2).await;
        for index in 0..3 {
            cluster.wait_state(index, NodeState::Synced).await;
        }
        let (seqno, ()) = retry_failover(cluster.store(0), |txn| txn.put("x", "3")).await;
        let data = cluster.assert_identical(seqno).await;
        assert_eq!(
            data,
            vec![(bytes::Bytes::from("x"), bytes::Bytes::from("3"))]
        );
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_cluster_restarts_without_a_bootstrap_step() {
    bounded(async {
        let mut cluster = NetCluster::start(3).await;
        let mut acknowledged = Vec::new();
        for i in 0..15 {
            let (seqno, (), _) = retry(cluster.store(i % 3), |txn| {
                txn.put(format!("k{i}"), i.to_string())
            })
            .await;
            acknowledged.push((format!("k{i}"), seqno));
        }
        for index in 0..3 {
            cluster.stop(index).await;
        }
        for index in 0..3 {
            cluster.restart(index).await;
        }
        for index in 0..3 {
            cluster.wait_state(index, NodeState::Synced).await;
        }
        let (seqno, ()) = retry_failover(cluster.store(1), |txn| txn.put("after", "restart")).await;
        let data = cluster.assert_identical(seqno).await;
        for (key, _) in &acknowledged {
            assert!(
                data.iter().any(|(k, _)| k.as_ref() == key.as_bytes()),
                "acknowledged {key} lost"
            );
        }
        assert_eq!(data.len(), 16);
        assert!(matches!(
            cluster
                .store(2)
                .begin()
                .await
                .unwrap()
                .commit()
                .await
                .unwrap(),
            CommitOutcome::Committed { .. }
        ));
        cluster.shutdown().await;
    })
    .await;
}

/// A memory engine on a slow disk: every write takes `delay`.
struct SlowEngine {
    inner: MemoryEngine,
    delay: Duration,
}

impl Engine for SlowEngine {
    fn get(&self, key: &[u8]) -> Result<Option<bytes::Bytes>, EngineError> {
        self.inner.get(key)
    }

    fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(bytes::Bytes, bytes::Bytes)>, EngineError> {
        self.inner.scan(start, end, limit)
    }

    fn write(&self, batch: WriteBatch) -> Result<(), EngineError> {
        std::thread::sleep(self.delay);
        self.inner.write(batch)
    }
}

/// Node 3 applies slowly. Flow control pauses admission whenever it lags
/// more than `fc_limit` committed positions, so it never falls further
/// behind than the limit plus what was admitted before the pause took
/// effect; it counts the pauses it asked for, and the leader the paused time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_control_keeps_a_slow_node_close() {
    bounded(async {
        let fast = || Arc::new(MemoryEngine::new()) as Arc<dyn Engine>;
        let slow = Arc::new(SlowEngine {
            inner: MemoryEngine::new(),
            delay: Duration::from_millis(10),
        });
        let tune = Tune {
            fc_limit: 16,
            apply_queue: 4,
            apply_workers: 1,
            ..Tune::default()
        };
        let cluster = NetCluster::start_with(vec![fast(), fast(), slow], tune).await;
        let max_lag = Arc::new(AtomicU64::new(0));
        let mut clients = Vec::new();
        for client in 0..8 {
            let store = cluster.store(client % 2).clone();
            let slow = cluster.store(2).clone();
            let max_lag = max_lag.clone();
            clients.push(tokio::spawn(async move {
                for n in 0..40 {
                    let key = format!("c{client}:{n}");
                    let (seqno, (), _) = retry(&store, |txn| txn.put(key.clone(), "v")).await;
                    let lag = seqno.get().saturating_sub(slow.node().last_visible().get());
                    max_lag.fetch_max(lag, Ordering::Relaxed);
                }
            }));
        }
        for client in clients {
            client.await.unwrap();
        }
        let max_lag = max_lag.load(Ordering::Relaxed);
        // fc_limit + the slow node's queue + what two heartbeats admit: the
        // pause request reaches the leader over a peer connection, which on
        // a loaded two-core machine can take longer than one heartbeat
        // (once seen at 89). With a limit that never pauses, the slow node
        // fell 295 behind.
        assert!(
            max_lag <= 16 + 4 + 128,
            "the slow node fell {max_lag} behind"
        );
        let sent = cluster.store(2).node().flow_control().pauses_sent;
        assert!(sent >= 1, "the slow node never asked for a pause");
        let paused: Duration = (0..3)
            .map(|i| cluster.store(i).node().flow_control().paused)
            .sum();
        assert!(paused > Duration::ZERO, "no node counted paused time");
        cluster.shutdown().await;
    })
    .await;
}

/// The log is bounded in bytes as well as entries (Galera's `gcache.size`):
/// with 25 MiB written in 64 KiB values and 4 MiB of retention (1 MiB
/// segments), every node's log ends within the bound plus the segment
/// being filled, and a checkpoint every 512 KiB lets it purge that far.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_is_kept_within_its_bytes() {
    bounded(async {
        let engines = (0..3)
            .map(|_| Arc::new(MemoryEngine::new()) as Arc<dyn Engine>)
            .collect();
        let tune = Tune {
            log_retention_bytes: 4 << 20,
            checkpoint_bytes: 512 << 10,
            ..Tune::default()
        };
        let cluster = NetCluster::start_with(engines, tune).await;
        let value = "v".repeat(64 << 10);
        let mut last = Seqno::ZERO;
        for n in 0..400 {
            let (seqno, (), _) = retry(cluster.store(n % 3), |txn| {
                txn.put(format!("k{}", n % 50), value.clone())
            })
            .await;
            last = last.max(seqno);
        }
        cluster.wait_visible(last).await;
        let bound = (4 << 20) + (1 << 20) + (256 << 10);
        for node in 0..3 {
            let order = cluster.order(node);
            let mut bytes = order.log_stats().bytes;
            while bytes > bound {
                tokio::time::sleep(Duration::from_millis(20)).await;
                bytes = order.log_stats().bytes;
            }
        }
        let data = cluster.assert_identical(last).await;
        assert_eq!(data.len(), 50);
        cluster.shutdown().await;
    })
    .await;
}
