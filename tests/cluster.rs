//! The in-process three-node cluster: concurrent transactions on every node
//! converge, no update is lost, transfers conserve money, reads are causal,
//! an isolated node cannot commit, and a restarted node catches up.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use certus::kv::StoreConfig;
use certus::node::{CommitOutcome, Error, NodeState, TxnOptions};
use certus::writeset::Isolation;
use common::{Cluster, Rng, bounded, int, retry};

fn defaults(_: &mut StoreConfig) {}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_transactions_converge_to_identical_state() {
    bounded(async {
        let cluster = Arc::new(Cluster::start(3, defaults).await);
        let mut tasks = Vec::new();
        for client in 0..9u64 {
            let cluster = cluster.clone();
            tasks.push(tokio::spawn(async move {
                let store = cluster.store((client % 3) as usize).clone();
                let mut rng = Rng::new(client);
                let (mut committed, mut conflicts) = (0u32, 0u32);
                for round in 0..60 {
                    let mut txn = store.begin().await.unwrap();
                    for _ in 0..=rng.below(3) {
                        let key = format!("key-{}", rng.below(16));
                        let old = int(txn.get(key.as_bytes()).unwrap());
                        if rng.below(10) == 0 {
                            txn.delete(key).unwrap();
                        } else {
                            txn.put(key, (old + 1 + round).to_string()).unwrap();
                        }
                    }
                    match txn.commit().await.unwrap() {
                        CommitOutcome::Committed { .. } => committed += 1,
                        _ => conflicts += 1,
                    }
                }
                (committed, conflicts)
            }));
        }
        let mut committed = 0;
        for task in tasks {
            committed += task.await.unwrap().0;
        }
        assert!(committed > 0);
        let data = cluster.assert_identical().await;
        assert!(!data.is_empty());
        // Certification is deterministic: every node reached the same verdicts.
        let stats: Vec<_> = cluster
            .stores
            .iter()
            .flatten()
            .map(|s| s.node().status().cert)
            .collect();
        assert!(stats.windows(2).all(|w| w[0] == w[1]), "{stats:?}");
        let local: u64 = cluster
            .stores
            .iter()
            .flatten()
            .map(|s| s.node().status().local_commits)
            .sum();
        assert_eq!(
            local,
            u64::from(committed),
            "local commit counts disagree with clients"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_increment_of_a_contended_counter_is_lost() {
    bounded(async {
        let cluster = Arc::new(Cluster::start(3, defaults).await);
        let (clients, increments) = (9u64, 30);
        let mut tasks = Vec::new();
        for client in 0..clients {
            let cluster = cluster.clone();
            tasks.push(tokio::spawn(async move {
                let store = cluster.store((client % 3) as usize).clone();
                let mut conflicts = 0;
                for _ in 0..increments {
                    let (_, (), c) = retry(&store, |txn| {
                        let n = int(txn.get(b"counter")?);
                        txn.put("counter", (n + 1).to_string())
                    })
                    .await;
                    conflicts += c;
                }
                conflicts
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        cluster.assert_identical().await;
        for index in 0..3 {
            let mut txn = cluster.store(index).begin().await.unwrap();
            assert_eq!(
                int(txn.get(b"counter").unwrap()),
                (clients * increments) as i64
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bank_transfers_conserve_the_total() {
    const ACCOUNTS: u64 = 8;
    const TOTAL: i64 = 800;
    bounded(async {
        let cluster = Arc::new(Cluster::start(3, defaults).await);
        retry(cluster.store(0), |txn| {
            (0..ACCOUNTS).try_for_each(|a| {
                txn.put(format!("acct-{a}"), (TOTAL / ACCOUNTS as i64).to_string())
            })
        })
        .await;
        let mut tasks = Vec::new();
        for client in 0..6u64 {
            let cluster = cluster.clone();
            tasks.push(tokio::spawn(async move {
                let store = cluster.store((client % 3) as usize).clone();
                let mut rng = Rng::new(100 + client);
                for _ in 0..40 {
                    let from = format!("acct-{}", rng.below(ACCOUNTS));
                    let to = format!("acct-{}", rng.below(ACCOUNTS));
                    let amount = 1 + rng.below(20) as i64;
                    retry(&store, |txn| {
                        let (a, b) = (int(txn.get(from.as_bytes())?), int(txn.get(to.as_bytes())?));
                        if from != to && a >= amount {
                            txn.put(from.clone(), (a - amount).to_string())?;
                            txn.put(to.clone(), (b + amount).to_string())?;
                        }
                        Ok(())
                    })
                    .await;
                }
            }));
        }
        for reader in 0..3usize {
            let cluster = cluster.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..40 {
                    let mut txn = cluster.store(reader).begin().await.unwrap();
                    let balances: Vec<i64> = (0..ACCOUNTS)
                        .map(|a| int(txn.get(format!("acct-{a}").as_bytes()).unwrap()))
                        .collect();
                    assert_eq!(balances.iter().sum::<i64>(), TOTAL, "read {balances:?}");
                    assert!(
                        balances.iter().all(|b| *b >= 0),
                        "negative balance in {balances:?}"
                    );
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let data = cluster.assert_identical().await;
        let sum: i64 = data.iter().map(|(_, v)| int(Some(v.clone()))).sum();
        assert_eq!(sum, TOTAL);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn causal_reads_see_the_latest_commit_from_any_node() {
    bounded(async {
        let cluster = Cluster::start(3, defaults).await;
        for round in 0..100usize {
            let writer = cluster.store(round % 3);
            retry(writer, |txn| txn.put("latest", round.to_string())).await;
            for reader in [(round + 1) % 3, (round + 2) % 3] {
                let mut txn = cluster.store(reader).begin().await.unwrap();
                assert_eq!(
                    int(txn.get(b"latest").unwrap()),
                    round as i64,
                    "stale read on node {reader}"
                );
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_node_cannot_commit_and_catches_up_after_healing() {
    bounded(async {
        let cluster = Cluster::start(3, defaults).await;
        retry(cluster.store(0), |txn| txn.put("k", "before")).await;
        cluster.wait_converged().await;
        let isolated = cluster.store(2);
        cluster.hub.isolate(isolated.node().id()).unwrap();
        let mut status = isolated.node().watch_status();
        status
            .wait_for(|s| s.state == NodeState::NonPrimary)
            .await
            .unwrap();

        // Causal reads and commits are refused; a local (non-causal) read still works.
        assert!(matches!(
            isolated.begin().await,
            Err(certus::kv::KvError::Node(Error::NotPrimary))
        ));
        let mut local = isolated
            .begin_with(TxnOptions::default().causal(false))
            .await
            .unwrap();
        assert_eq!(
            local.get(b"k").unwrap(),
            Some(Bytes::from_static(b"before"))
        );
        local.put("k", "from the minority").unwrap();
        assert!(matches!(
            local.commit().await,
            Err(certus::kv::KvError::Node(Error::NotPrimary))
        ));

        // The majority keeps committing.
        for i in 0..20 {
            retry(cluster.store(i % 2), |txn| {
                txn.put("k", format!("after-{i}"))
            })
            .await;
        }
        cluster.hub.heal(isolated.node().id()).unwrap();
        status
            .wait_for(|s| s.state == NodeState::Synced)
            .await
            .unwrap();
        let data = cluster.assert_identical().await;
        assert_eq!(
            data,
            [(Bytes::from_static(b"k"), Bytes::from_static(b"after-19"))]
        );
        retry(isolated, |txn| txn.put("k", "healed")).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minority_cannot_commit_anywhere() {
    bounded(async {
        let cluster = Cluster::start(3, defaults).await;
        cluster.hub.isolate(cluster.ids[1]).unwrap();
        cluster.hub.isolate(cluster.ids[2]).unwrap();
        let mut status = cluster.store(0).node().watch_status();
        status
            .wait_for(|s| s.state == NodeState::NonPrimary)
            .await
            .unwrap();
        let mut txn = cluster
            .store(0)
            .begin_with(TxnOptions::default().causal(false))
            .await
            .unwrap();
        txn.put("k", "v").unwrap();
        assert!(matches!(
            txn.commit().await,
            Err(certus::kv::KvError::Node(Error::NotPrimary))
        ));
        cluster.hub.heal(cluster.ids[1]).unwrap();
        status
            .wait_for(|s| s.state == NodeState::Synced)
            .await
            .unwrap();
        retry(cluster.store(0), |txn| txn.put("k", "v")).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_recovers_from_its_engine_and_catches_up() {
    fn small_checkpoints(config: &mut StoreConfig) {
        config.node.checkpoint_interval = 8;
    }
    bounded(async {
        let mut cluster = Cluster::start(3, small_checkpoints).await;
        common::restart_recovers_and_catches_up(&mut cluster).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serializable_transactions_prevent_write_skew_that_snapshot_allows() {
    bounded(async {
        let cluster = Cluster::start(3, defaults).await;
        for (isolation, both_commit) in [
            (Isolation::Snapshot, true),
            (Isolation::Serializable, false),
        ] {
            retry(cluster.store(0), |txn| {
                txn.put("x", "0")?;
                txn.put("y", "0")
            })
            .await;
            let options = TxnOptions::isolation(isolation);
            let mut t1 = cluster.store(1).begin_with(options).await.unwrap();
            let mut t2 = cluster.store(2).begin_with(options).await.unwrap();
            for (txn, target) in [(&mut t1, "x"), (&mut t2, "y")] {
                let sum = int(txn.get(b"x").unwrap()) + int(txn.get(b"y").unwrap());
                txn.put(target, (sum + 1).to_string()).unwrap();
            }
            let first = t1.commit().await.unwrap().is_committed();
            let second = t2.commit().await.unwrap().is_committed();
            assert!(first, "{isolation:?}: the first committer wins");
            assert_eq!(second, both_commit, "{isolation:?}");
        }
        cluster.assert_identical().await;
    })
    .await;
}
