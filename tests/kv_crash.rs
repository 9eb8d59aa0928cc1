//! A crash that loses every write since the engine's last durable batch:
//! the store commits its watermark lazily (only checkpoints and every
//! 64th commit are synced), so a restarted node must certify and apply
//! again from the log what its engine lost, and end identical to the rest.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod common;

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use certus::kv::{
    BatchOp, Engine, EngineError, Execution, Executor, Keyspace, KvError, MemoryEngine, WriteBatch,
};
use certus::node::OperationOutcome;
use certus::writeset::Operation;
use common::{Cluster, Disk, bounded, int, retry};

/// An engine that forgets, at a crash, every batch after the last durable
/// one: what a power cut does to redb, or to RocksDB's unsynced log tail.
#[derive(Default)]
struct Volatile {
    state: Mutex<VolatileState>,
}

#[derive(Default)]
struct VolatileState {
    live: Arc<MemoryEngine>,
    /// Every batch written, in order.
    batches: Vec<Vec<BatchOp>>,
    /// How many of them are durable.
    durable: usize,
    /// Crashed: writes are lost until the disk is opened again.
    crashed: bool,
}

impl Volatile {
    /// Batches that the crash lost.
    fn crash(&self) -> usize {
        let mut state = self.state.lock().unwrap();
        state.crashed = true;
        state.batches.len() - state.durable
    }
}

impl Engine for Volatile {
    fn get(&self, key: &[u8]) -> Result<Option<Bytes>, EngineError> {
        let live = self.state.lock().unwrap().live.clone();
        live.get(key)
    }

    fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Bytes, Bytes)>, EngineError> {
        let live = self.state.lock().unwrap().live.clone();
        live.scan(start, end, limit)
    }

    fn write(&self, batch: WriteBatch) -> Result<(), EngineError> {
        let mut state = self.state.lock().unwrap();
        if state.crashed {
            return Ok(());
        }
        let durable = batch.is_durable();
        state.batches.push(batch.ops().to_vec());
        if durable {
            state.durable = state.batches.len();
        }
        state.live.write(batch)
    }
}

struct VolatileDisk(Arc<Volatile>);

impl Disk for VolatileDisk {
    /// After a crash, the engine holds the durable batches only.
    fn open(&self) -> Arc<dyn Engine> {
        let mut state = self.0.state.lock().unwrap();
        if state.crashed {
            let durable = state.durable;
            state.batches.truncate(durable);
            let live = MemoryEngine::new();
            for ops in &state.batches {
                let mut batch = WriteBatch::new();
                for op in ops {
                    match op {
                        BatchOp::Put { key, value } => batch.put(key.clone(), value.clone()),
                        BatchOp::Delete { key } => batch.delete(key.clone()),
                        other => panic!("unknown batch operation {other:?}"),
                    }
                }
                live.write(batch).unwrap();
            }
            state.live = Arc::new(live);
            state.crashed = false;
        }
        self.0.clone()
    }
}

/// Three volatile engines, and the disks the cluster opens them through.
fn volatile_disks() -> (Vec<Arc<Volatile>>, Vec<Box<dyn Disk>>) {
    let engines: Vec<Arc<Volatile>> = (0..3).map(|_| Arc::default()).collect();
    let disks = engines
        .iter()
        .map(|e| Box::new(VolatileDisk(e.clone())) as Box<dyn Disk>)
        .collect();
    (engines, disks)
}

/// Crashes node 3's engine (it must lose something), restarts the node on
/// what survived, and returns the data every node then holds.
async fn crash_and_restart(
    cluster: &mut Cluster,
    engines: &[Arc<Volatile>],
) -> Vec<(Bytes, Bytes)> {
    let lost = engines[2].crash();
    assert!(lost > 0, "nothing was lost: every write was synced");
    cluster.stop(2).await;
    cluster.restart(2).await;
    cluster.assert_identical().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_engine_lost_its_unsynced_commits_replays_them_from_the_log() {
    bounded(async {
        let (engines, disks) = volatile_disks();
        let mut cluster = Cluster::start_on(disks, |_| {}).await;
        for round in 0..100 {
            let store = cluster.store(round % 3);
            retry(store, |txn| {
                txn.put(format!("k{round}"), format!("v{round}"))
            })
            .await;
        }
        let written = cluster.assert_identical().await;
        assert_eq!(written.len(), 100);

        let after = crash_and_restart(&mut cluster, &engines).await;
        assert_eq!(
            after, written,
            "the restarted node did not recover the lost commits"
        );
    })
    .await;
}

/// Adds one to the decimal counter its payload names; returns the new value.
struct Increment;

impl Executor for Increment {
    fn execute(&self, op: &Operation, keys: &mut Execution<'_>) -> Result<Bytes, KvError> {
        let key = op.payload().clone();
        let next = int(keys.get(&key)?) + 1;
        keys.put(key, Bytes::from(next.to_string()))?;
        Ok(Bytes::from(next.to_string()))
    }
}

/// The same crash with ordered operations: the restarted node executes
/// again what its engine lost, reading what it read the first time, and
/// ends with the same counters as the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_engine_lost_executed_operations_executes_them_again() {
    bounded(async {
        let (engines, disks) = volatile_disks();
        let executor: Arc<dyn Executor> = Arc::new(Increment);
        let mut cluster = Cluster::start_with_executor(disks, |_| {}, Some(executor)).await;
        for index in 0..3 {
            let mut status = cluster.store(index).node().watch_status();
            let synced = status.wait_for(|s| s.state == certus::node::NodeState::Synced);
            synced.await.unwrap();
        }
        for round in 0..120 {
            let key = format!("counter{}", round % 4);
            let mut op = cluster.store(round % 3).operation(key.clone()).unwrap();
            op.read(key.clone());
            op.write(key);
            let outcome = op.submit().await.unwrap();
            assert!(
                matches!(outcome, OperationOutcome::Executed { .. }),
                "{outcome:?}"
            );
        }
        let counted = cluster.assert_identical().await;
        let values: Vec<i64> = counted.iter().map(|(_, v)| int(Some(v.clone()))).collect();
        assert_eq!(values, [30, 30, 30, 30]);

        let after = crash_and_restart(&mut cluster, &engines).await;
        assert_eq!(after, counted, "re-execution after the crash diverged");
    })
    .await;
}
