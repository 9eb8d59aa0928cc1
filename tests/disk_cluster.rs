//! The three-node cluster on durable engines (redb and fjall always, RocksDB
//! with the `rocksdb` feature): replicas converge, and a node whose engine is closed
//! and reopened from disk recovers its data, watermark and certifier, then
//! catches up.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use certus::kv::{Engine, FjallEngine, RedbEngine, StoreConfig};
use common::{Cluster, Disk, bounded, int, retry};

#[derive(Clone, Copy)]
enum Kind {
    Redb,
    Fjall,
    #[cfg(feature = "rocksdb")]
    Rocks,
}

struct FileDisk(PathBuf, Kind);

impl Disk for FileDisk {
    fn open(&self) -> Arc<dyn Engine> {
        match self.1 {
            Kind::Redb => Arc::new(RedbEngine::open(&self.0).unwrap()),
            Kind::Fjall => Arc::new(FjallEngine::open(&self.0).unwrap()),
            #[cfg(feature = "rocksdb")]
            Kind::Rocks => Arc::new(certus::kv::RocksEngine::open(&self.0).unwrap()),
        }
    }
}

fn small_checkpoints(config: &mut StoreConfig) {
    config.node.checkpoint_interval = 8;
}

async fn start(dir: &tempfile::TempDir, kind: Kind) -> Cluster {
    let disks = (1..=3)
        .map(|n| Box::new(FileDisk(dir.path().join(format!("node-{n}")), kind)) as Box<dyn Disk>)
        .collect();
    Cluster::start_on(disks, small_checkpoints).await
}

async fn replicas_converge_and_count_exactly(kind: Kind) {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let cluster = start(&dir, kind).await;
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

async fn a_reopened_node_recovers_and_catches_up(kind: Kind) {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let mut cluster = start(&dir, kind).await;
        common::restart_recovers_and_catches_up(&mut cluster).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_redb_converge_and_count_exactly() {
    replicas_converge_and_count_exactly(Kind::Redb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_reopened_from_redb_recovers_and_catches_up() {
    a_reopened_node_recovers_and_catches_up(Kind::Redb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_fjall_converge_and_count_exactly() {
    replicas_converge_and_count_exactly(Kind::Fjall).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_reopened_from_fjall_recovers_and_catches_up() {
    a_reopened_node_recovers_and_catches_up(Kind::Fjall).await;
}

#[cfg(feature = "rocksdb")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_rocksdb_converge_and_count_exactly() {
    replicas_converge_and_count_exactly(Kind::Rocks).await;
}

#[cfg(feature = "rocksdb")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_reopened_from_rocksdb_recovers_and_catches_up() {
    a_reopened_node_recovers_and_catches_up(Kind::Rocks).await;
}
