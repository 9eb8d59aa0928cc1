//! The three-node cluster on RocksDB (feature `rocksdb`): replicas converge,
//! and a node whose engine is closed and reopened from its directory
//! recovers its data, watermark and certifier, then catches up.

#![cfg(feature = "rocksdb")]
#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use certus::kv::{Engine, RocksEngine, StoreConfig};
use common::{Cluster, Disk, bounded, int, retry};

struct RocksDisk(PathBuf);

impl Disk for RocksDisk {
    fn open(&self) -> Arc<dyn Engine> {
        Arc::new(RocksEngine::open(&self.0).unwrap())
    }
}

fn small_checkpoints(config: &mut StoreConfig) {
    config.node.checkpoint_interval = 8;
}

async fn start(dir: &tempfile::TempDir) -> Cluster {
    let disks = (1..=3)
        .map(|n| Box::new(RocksDisk(dir.path().join(format!("node-{n}")))) as Box<dyn Disk>)
        .collect();
    Cluster::start_on(disks, small_checkpoints).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_rocksdb_converge_and_count_exactly() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let cluster = start(&dir).await;
        for i in 0..60usize {
            retry(cluster.store(i % 3), |txn| {
                let n = int(txn.get(b"counter")?);
                txn.put("counter", (n + 1).to_string())?;
                txn.put(format!("k{}", i % 11), i.to_string())
            })
            .await;
        }
        let data = cluster.assert_identical().await;
        assert_eq!(data.len(), 12);
        let mut txn = cluster.store(1).begin().await.unwrap();
        assert_eq!(int(txn.get(b"counter").unwrap()), 60);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_reopened_from_its_directory_recovers_and_catches_up() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let mut cluster = start(&dir).await;
        common::restart_recovers_and_catches_up(&mut cluster).await;
    })
    .await;
}
