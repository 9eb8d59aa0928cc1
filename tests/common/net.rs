//! A cluster of nodes in one process that order over real TCP on loopback
//! (openraft), each with its own log directory and in-memory engine.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use certus::kv::{Engine, KvStore, MemoryEngine, StoreConfig};
use certus::net::Tcp;
use certus::node::NodeState;
use certus::order::{RaftOrder, RaftOrderConfig};
use certus::{NodeId, Seqno};
use tokio::net::TcpListener;

pub(crate) struct NetCluster {
    dir: tempfile::TempDir,
    pub(crate) ids: Vec<NodeId>,
    addrs: Vec<String>,
    engines: Vec<Arc<dyn Engine>>,
    tune: Tune,
    orders: Vec<Option<Arc<RaftOrder>>>,
    stores: Vec<Option<KvStore>>,
}

/// Settings a test may change from the defaults.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tune {
    pub(crate) fc_limit: u64,
    pub(crate) apply_queue: usize,
    pub(crate) apply_workers: usize,
    pub(crate) max_entry_bytes: usize,
    pub(crate) log_retention_bytes: u64,
    pub(crate) checkpoint_bytes: u64,
}

impl Default for Tune {
    fn default() -> Self {
        let order = RaftOrderConfig::new(NodeId::new(1), "x", "x", "x".into());
        let store = StoreConfig::new(NodeId::new(1));
        Tune {
            fc_limit: order.fc_limit,
            apply_queue: store.node.apply_queue,
            apply_workers: store.node.apply_workers,
            max_entry_bytes: order.max_entry_bytes,
            log_retention_bytes: order.log_retention_bytes,
            checkpoint_bytes: store.node.checkpoint_bytes,
        }
    }
}

/// Timeouts short enough for tests, long enough for a loaded 2-core machine.
fn config(
    id: NodeId,
    addr: &str,
    dir: std::path::PathBuf,
    members: &BTreeMap<NodeId, String>,
) -> RaftOrderConfig {
    let mut config = RaftOrderConfig::new(id, "certus-test", addr, dir);
    config.initial_members = members.clone();
    config.heartbeat = Duration::from_millis(50);
    config.election_timeout = (Duration::from_millis(400), Duration::from_millis(800));
    config.primary_lease = Duration::from_millis(800);
    config.submit_timeout = Duration::from_secs(20);
    config
}

impl NetCluster {
    /// Starts `nodes` nodes that bootstrap one cluster, and waits until every
    /// one is synced.
    pub(crate) async fn start(nodes: u64) -> NetCluster {
        let engines = (0..nodes)
            .map(|_| Arc::new(MemoryEngine::new()) as Arc<dyn Engine>)
            .collect();
        NetCluster::start_with(engines, Tune::default()).await
    }

    /// One node per engine, with `tune` applied to every node.
    pub(crate) async fn start_with(engines: Vec<Arc<dyn Engine>>, tune: Tune) -> NetCluster {
        let nodes = engines.len() as u64;
        let mut listeners = Vec::new();
        for _ in 0..nodes {
            listeners.push(super::stable_tokio_listener());
        }
        let addrs: Vec<String> = listeners
            .iter()
            .map(|l| l.local_addr().unwrap().to_string())
            .collect();
        let mut cluster = NetCluster {
            dir: tempfile::tempdir().unwrap(),
            ids: (1..=nodes).map(NodeId::new).collect(),
            addrs,
            engines,
            tune,
            orders: (0..nodes).map(|_| None).collect(),
            stores: (0..nodes).map(|_| None).collect(),
        };
        super::certificates(cluster.dir.path(), nodes);
        for (index, listener) in listeners.into_iter().enumerate() {
            cluster.open(index, listener).await;
        }
        for index in 0..cluster.ids.len() {
            cluster.wait_state(index, NodeState::Synced).await;
        }
        cluster
    }

    fn members(&self) -> BTreeMap<NodeId, String> {
        self.ids
            .iter()
            .copied()
            .zip(self.addrs.iter().cloned())
            .collect()
    }

    async fn open(&mut self, index: usize, listener: TcpListener) {
        let dir = self.dir.path().join(format!("node-{}", index + 1));
        let mut config = config(self.ids[index], &self.addrs[index], dir, &self.members());
        let tls = self.dir.path().join("tls");
        config.security = Some(super::peer_tls(&tls, self.ids[index]));
        config.fc_limit = self.tune.fc_limit;
        config.max_entry_bytes = self.tune.max_entry_bytes;
        config.log_retention_bytes = self.tune.log_retention_bytes;
        let order = Arc::new(
            RaftOrder::start(config, Box::new(listener), Tcp::connector())
                .await
                .unwrap(),
        );
        let mut store_config = StoreConfig::new(self.ids[index]);
        store_config.node.apply_queue = self.tune.apply_queue;
        store_config.node.apply_workers = self.tune.apply_workers;
        store_config.node.checkpoint_bytes = self.tune.checkpoint_bytes;
        let store = KvStore::open(store_config, self.engines[index].clone(), order.clone())
            .await
            .unwrap();
        self.orders[index] = Some(order);
        self.stores[index] = Some(store);
    }

    pub(crate) fn order(&self, index: usize) -> &Arc<RaftOrder> {
        self.orders[index].as_ref().expect("node is stopped")
    }

    pub(crate) fn store(&self, index: usize) -> &KvStore {
        self.stores[index].as_ref().expect("node is stopped")
    }

    /// The peer (replication) address of node `index`.
    pub(crate) fn peer_addr(&self, index: usize) -> String {
        self.addrs[index].clone()
    }

    /// Stops a node: its store, then its ordering layer (log closed).
    pub(crate) async fn stop(&mut self, index: usize) {
        let store = self.stores[index].take().expect("node already stopped");
        store.shutdown().await;
        let order = self.orders[index].take().expect("node already stopped");
        order.shutdown().await;
    }

    /// Restarts a stopped node on its old address, log and engine.
    pub(crate) async fn restart(&mut self, index: usize) {
        let listener = TcpListener::bind(&self.addrs[index]).await.unwrap();
        self.open(index, listener).await;
    }

    /// Waits (bounded by the test's bound) until node `index` is in `state`.
    pub(crate) async fn wait_state(&self, index: usize, state: NodeState) {
        let mut status = self.store(index).node().watch_status();
        status.wait_for(|s| s.state == state).await.unwrap();
    }

    /// Waits until every running node applied `seqno`.
    pub(crate) async fn wait_visible(&self, seqno: Seqno) {
        for store in self.stores.iter().flatten() {
            store.node().wait_visible(seqno).await.unwrap();
        }
    }

    /// Asserts every running node holds the same data once all applied
    /// `seqno`, and returns it.
    pub(crate) async fn assert_identical(&self, seqno: Seqno) -> Vec<(bytes::Bytes, bytes::Bytes)> {
        self.wait_visible(seqno).await;
        // Positions after `seqno` can only be barriers (leader no-ops) when
        // no client writes; catch every node up to the furthest anyway.
        let furthest = self
            .stores
            .iter()
            .flatten()
            .map(|s| s.node().last_visible())
            .max();
        self.wait_visible(furthest.unwrap_or(seqno)).await;
        let mut dumps = Vec::new();
        for store in self.stores.iter().flatten() {
            let (_, data) = store.dump().await.unwrap();
            dumps.push((store.node().id(), data));
        }
        let (first_id, first) = &dumps[0];
        for (id, data) in &dumps[1..] {
            assert_eq!(data, first, "{id} differs from {first_id}");
        }
        first.clone()
    }

    pub(crate) async fn shutdown(mut self) {
        for index in 0..self.ids.len() {
            if self.stores[index].is_some() {
                self.stop(index).await;
            }
        }
    }
}

/// Like [`super::retry`], but also rides out a failover: a transaction
/// refused with `NotPrimary` (certainly not committed) is retried once the
/// node is synced again. Any other error fails the test.
pub(crate) async fn retry_failover<T>(
    store: &KvStore,
    mut body: impl FnMut(&mut certus::kv::KvTransaction) -> Result<T, certus::kv::KvError>,
) -> (Seqno, T) {
    use certus::kv::KvError;
    use certus::node::{CommitOutcome, Error};
    for _ in 0..10_000 {
        let outcome = match store.begin().await {
            Ok(mut txn) => {
                let value = body(&mut txn).unwrap();
                txn.commit().await.map(|outcome| (outcome, value))
            }
            Err(err) => Err(err),
        };
        match outcome {
            Ok((CommitOutcome::Committed { seqno }, value)) => return (seqno, value),
            Ok((CommitOutcome::Conflict(conflict), _)) => {
                assert!(conflict.is_retryable(), "{conflict:?}")
            }
            Ok((other, _)) => panic!("unexpected outcome {other:?}"),
            Err(KvError::Node(Error::NotPrimary)) => {
                let mut status = store.node().watch_status();
                status
                    .wait_for(|s| s.state == NodeState::Synced)
                    .await
                    .unwrap();
                tokio::task::yield_now().await;
            }
            Err(err) => panic!("transaction failed: {err}"),
        }
    }
    panic!("transaction never committed");
}
