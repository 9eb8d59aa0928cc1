//! MVCC garbage collection: versions an open read view can still see
//! survive, everything older goes, and deleted keys leave nothing behind.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod common;

use bytes::Bytes;
use certus::kv::{Engine, StoreConfig};
use common::{Cluster, bounded, retry};

/// No background collection: the test runs every step itself.
fn manual_gc(config: &mut StoreConfig) {
    config.gc_every = u64::MAX;
}

/// Stored versions, tombstones included. Every version key of the store's
/// layout lives in the `d` prefix.
fn versions(engine: &dyn Engine) -> usize {
    engine.scan(b"d", b"e", usize::MAX).unwrap().len()
}

fn value(raw: &'static str) -> Option<Bytes> {
    Some(Bytes::from_static(raw.as_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collection_keeps_what_open_read_views_can_see_and_drops_the_rest() {
    bounded(async {
        let cluster = Cluster::start(1, manual_gc).await;
        let store = cluster.store(0);
        for round in 0..2 {
            retry(store, |txn| txn.put("k", format!("v{round}"))).await;
        }
        let mut old = store.begin().await.unwrap();
        for round in 2..5 {
            retry(store, |txn| txn.put("k", format!("v{round}"))).await;
        }
        retry(store, |txn| txn.put("gone", "soon")).await;
        retry(store, |txn| txn.delete("gone")).await;
        assert_eq!(versions(cluster.engine(0)), 7);

        // The open transaction pins the horizon at its read view: only the
        // version it cannot see (v0) goes.
        let stats = store.collect_garbage().unwrap();
        assert_eq!(stats.versions_removed, 1, "{stats:?}");
        assert_eq!(versions(cluster.engine(0)), 6);
        assert_eq!(old.get(b"k").unwrap(), value("v1"));
        assert_eq!(old.get(b"gone").unwrap(), None);
        let mut fresh = store.begin().await.unwrap();
        assert_eq!(fresh.get(b"k").unwrap(), value("v4"));
        drop(fresh);

        // Once it ends, only the newest live version remains, and the deleted
        // key's versions and tombstone are gone.
        drop(old);
        let stats = store.collect_garbage().unwrap();
        assert_eq!(stats.versions_removed, 5, "{stats:?}");
        assert_eq!(versions(cluster.engine(0)), 1);
        let (_, data) = store.dump().await.unwrap();
        assert_eq!(
            data,
            vec![(Bytes::from_static(b"k"), Bytes::from_static(b"v4"))]
        );
        let again = store.collect_garbage().unwrap();
        assert_eq!(again.versions_removed, 0, "{again:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overflowing_queue_falls_back_to_a_full_scan_that_still_collects() {
    fn tiny_queue(config: &mut StoreConfig) {
        config.gc_every = u64::MAX;
        config.gc_queue = 2;
        config.gc_budget = 3;
    }
    bounded(async {
        let cluster = Cluster::start(1, tiny_queue).await;
        let store = cluster.store(0);
        for round in 0..3 {
            for key in 0..5 {
                retry(store, |txn| txn.put(format!("k{key}"), format!("v{round}"))).await;
            }
        }
        assert_eq!(versions(cluster.engine(0)), 15);
        // The scan works through the keys a budget at a time until done.
        let mut steps = 0;
        loop {
            steps += 1;
            assert!(steps <= 10, "the full scan did not finish");
            if !store.collect_garbage().unwrap().full_scan_pending {
                break;
            }
        }
        assert_eq!(versions(cluster.engine(0)), 5);
        let mut txn = store.begin().await.unwrap();
        for key in 0..5 {
            assert_eq!(txn.get(format!("k{key}").as_bytes()).unwrap(), value("v2"));
        }
    })
    .await;
}
