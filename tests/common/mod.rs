//! Shared harness for the in-process cluster tests.

#![allow(dead_code)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use certus::kv::{Engine, Executor, KvError, KvStore, KvTransaction, MemoryEngine, StoreConfig};
use certus::node::CommitOutcome;
use certus::order::{InProcessConfig, InProcessOrder};
use certus::{NodeId, Seqno};

pub(crate) mod net;
#[cfg(feature = "server")]
pub(crate) mod resp;

/// A listener on a loopback port below the kernel's ephemeral range
/// (32768 and up), so no outgoing connection ever takes the port and a node
/// restarted on it can bind it again. Ports are tried from a per-process
/// offset upwards until one is free.
pub(crate) fn stable_listener() -> std::net::TcpListener {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    let offset = (std::process::id() * 97) % SPAN;
    for _ in 0..SPAN {
        let port = FIRST + (offset + NEXT.fetch_add(1, Ordering::Relaxed)) % SPAN;
        let port = u16::try_from(port).expect("ports fit in 16 bits");
        if let Ok(listener) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            listener.set_nonblocking(true).unwrap();
            return listener;
        }
    }
    panic!("no free loopback port below the ephemeral range");
}

/// A test cluster's CA and node certificates for nodes `1..=nodes`, under
/// `dir/tls`, as `certusd certs` writes them. Returns the directory.
#[cfg(feature = "certs")]
pub(crate) fn certificates(dir: &std::path::Path, nodes: u64) -> std::path::PathBuf {
    let tls = dir.join("tls");
    let ca = certus::net::CertificateAuthority::open_or_create(&tls, "certus-test").unwrap();
    for id in 1..=nodes {
        ca.write_node(&tls, NodeId::new(id), &[]).unwrap();
    }
    tls
}

/// Without the `certs` feature no certificates are made, and clusters
/// run insecure peers.
#[cfg(not(feature = "certs"))]
pub(crate) fn certificates(dir: &std::path::Path, _nodes: u64) -> std::path::PathBuf {
    dir.join("tls")
}

/// Without the `certs` feature: plaintext peers.
#[cfg(not(feature = "certs"))]
pub(crate) fn peer_tls(_tls: &std::path::Path, _id: NodeId) -> certus::net::PeerSecurity {
    certus::net::PeerSecurity::Insecure
}

/// Node `id`'s peer TLS from the files [`certificates`] wrote in `tls`.
#[cfg(feature = "certs")]
pub(crate) fn peer_tls(tls: &std::path::Path, id: NodeId) -> certus::net::PeerSecurity {
    let name = certus::net::node_name(id);
    let files = certus::net::PeerTls::from_files(
        &tls.join("ca.pem"),
        &tls.join(format!("{name}.pem")),
        &tls.join(format!("{name}.key")),
    );
    certus::net::PeerSecurity::Tls(Arc::new(files.unwrap()))
}

/// [`stable_listener`] for tokio.
pub(crate) fn stable_tokio_listener() -> tokio::net::TcpListener {
    tokio::net::TcpListener::from_std(stable_listener()).unwrap()
}

/// Every cluster test runs under this bound; it guards against hangs and is
/// never used to wait for something to happen.
pub(crate) const TEST_BOUND: Duration = Duration::from_secs(120);

/// Fails the test if `body` runs longer than [`TEST_BOUND`].
pub(crate) async fn bounded<T>(body: impl Future<Output = T>) -> T {
    tokio::time::timeout(TEST_BOUND, body)
        .await
        .expect("test exceeded its time bound")
}

/// Where a node keeps its data between restarts.
pub(crate) trait Disk: Send + Sync {
    /// Opens the engine on this disk; the previous one must be closed.
    fn open(&self) -> Arc<dyn Engine>;
}

/// A memory engine that outlives the node (so a node can restart on it).
pub(crate) struct MemoryDisk(Arc<MemoryEngine>);

impl Disk for MemoryDisk {
    fn open(&self) -> Arc<dyn Engine> {
        self.0.clone()
    }
}

/// Nodes in one process over one [`InProcessOrder`], each on its own disk.
pub(crate) struct Cluster {
    pub(crate) hub: InProcessOrder,
    pub(crate) ids: Vec<NodeId>,
    pub(crate) stores: Vec<Option<KvStore>>,
    disks: Vec<Box<dyn Disk>>,
    engines: Vec<Option<Arc<dyn Engine>>>,
    configure: fn(&mut StoreConfig),
    /// Runs ordered operations, when the test submits any.
    executor: Option<Arc<dyn Executor>>,
}

impl Cluster {
    /// `nodes` nodes on in-memory engines.
    pub(crate) async fn start(nodes: u64, configure: fn(&mut StoreConfig)) -> Cluster {
        let disks = (0..nodes)
            .map(|_| Box::new(MemoryDisk(Arc::new(MemoryEngine::new()))) as Box<dyn Disk>)
            .collect();
        Cluster::start_on(disks, configure).await
    }

    /// One node per disk.
    pub(crate) async fn start_on(
        disks: Vec<Box<dyn Disk>>,
        configure: fn(&mut StoreConfig),
    ) -> Cluster {
        Cluster::start_with_executor(disks, configure, None).await
    }

    /// One node per disk, each store running ordered operations with
    /// `executor`.
    pub(crate) async fn start_with_executor(
        disks: Vec<Box<dyn Disk>>,
        configure: fn(&mut StoreConfig),
        executor: Option<Arc<dyn Executor>>,
    ) -> Cluster {
        let ids: Vec<NodeId> = (1..=disks.len() as u64).map(NodeId::new).collect();
        let hub = InProcessOrder::new(InProcessConfig::default(), ids.clone());
        let mut cluster = Cluster {
            hub,
            ids,
            stores: Vec::new(),
            engines: disks.iter().map(|_| None).collect(),
            disks,
            configure,
            executor,
        };
        for index in 0..cluster.ids.len() {
            let store = cluster.open(index).await;
            cluster.stores.push(Some(store));
        }
        cluster
    }

    async fn open(&mut self, index: usize) -> KvStore {
        let mut config = StoreConfig::new(self.ids[index]);
        (self.configure)(&mut config);
        let order = Arc::new(self.hub.endpoint(self.ids[index]).unwrap());
        let engine = self.disks[index].open();
        self.engines[index] = Some(engine.clone());
        match &self.executor {
            Some(executor) => KvStore::open_with(config, engine, order, executor.clone())
                .await
                .unwrap(),
            None => KvStore::open(config, engine, order).await.unwrap(),
        }
    }

    /// The engine a running node uses.
    pub(crate) fn engine(&self, index: usize) -> &dyn Engine {
        self.engines[index].as_deref().expect("node is stopped")
    }

    pub(crate) fn store(&self, index: usize) -> &KvStore {
        self.stores[index].as_ref().expect("node is stopped")
    }

    /// Stops the node and closes its engine.
    pub(crate) async fn stop(&mut self, index: usize) {
        let store = self.stores[index].take().expect("node already stopped");
        store.shutdown().await;
        drop(store);
        // A RocksDB engine closes here; reopening it while anything still
        // held it would fail on its lock.
        self.engines[index] = None;
    }

    pub(crate) async fn restart(&mut self, index: usize) {
        assert!(self.stores[index].is_none(), "stop the node first");
        let store = self.open(index).await;
        self.stores[index] = Some(store);
    }

    /// Waits until every running node applied every ordered position.
    pub(crate) async fn wait_converged(&self) -> Seqno {
        let last = self.hub.last_seqno();
        for store in self.stores.iter().flatten() {
            store.node().wait_visible(last).await.unwrap();
        }
        last
    }

    /// Asserts every running node holds exactly the same data at the same
    /// position, and returns it.
    pub(crate) async fn assert_identical(&self) -> Vec<(Bytes, Bytes)> {
        let last = self.wait_converged().await;
        let mut dumps = Vec::new();
        for store in self.stores.iter().flatten() {
            let (at, data) = store.dump().await.unwrap();
            assert_eq!(
                at,
                last,
                "{} dumped at {at}, expected {last}",
                store.node().id()
            );
            dumps.push((store.node().id(), data));
        }
        let (first_id, first) = &dumps[0];
        for (id, data) in &dumps[1..] {
            assert_eq!(data, first, "{id} differs from {first_id}");
        }
        first.clone()
    }
}

/// Runs `body` in fresh transactions until one commits; returns the commit
/// seqno and the number of conflicts on the way. Bounded: a transaction that
/// conflicts 10,000 times in a row fails the test.
pub(crate) async fn retry<T>(
    store: &KvStore,
    mut body: impl FnMut(&mut KvTransaction) -> Result<T, KvError>,
) -> (Seqno, T, u32) {
    for conflicts in 0..10_000 {
        let mut txn = store.begin().await.unwrap();
        let value = body(&mut txn).unwrap();
        match txn.commit().await.unwrap() {
            CommitOutcome::Committed { seqno } => return (seqno, value, conflicts),
            CommitOutcome::Conflict(conflict) => assert!(conflict.is_retryable(), "{conflict:?}"),
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    panic!("transaction never committed");
}

/// Parses a stored decimal integer (absent means zero).
pub(crate) fn int(value: Option<Bytes>) -> i64 {
    value.map_or(0, |v| std::str::from_utf8(&v).unwrap().parse().unwrap())
}

/// A small deterministic generator for workloads (xorshift64*).
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub(crate) fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % bound
    }
}

/// Node 3 stops while the others commit, restarts from its own engine (it
/// keeps what it had applied), rejoins and catches up, and its rebuilt
/// certifier agrees with the others: a stale write from it conflicts
/// exactly as it would elsewhere.
pub(crate) async fn restart_recovers_and_catches_up(cluster: &mut Cluster) {
    for i in 0..40 {
        retry(cluster.store(i % 3), |txn| {
            txn.put(format!("k{}", i % 7), i.to_string())
        })
        .await;
    }
    let before = cluster.store(2).node().last_visible();
    cluster.hub.isolate(cluster.ids[2]).unwrap();
    cluster.stop(2).await;
    for i in 40..80 {
        retry(cluster.store(i % 2), |txn| {
            txn.put(format!("k{}", i % 7), i.to_string())
        })
        .await;
    }
    cluster.restart(2).await;
    let restarted = cluster.store(2).node().status();
    assert!(
        restarted.last_visible >= before,
        "restart lost applied state: {restarted:?}"
    );
    cluster.hub.heal(cluster.ids[2]).unwrap();
    cluster.assert_identical().await;
    let store = cluster.store(2).clone();
    let mut stale = store.begin().await.unwrap();
    stale.put("k0", "stale").unwrap();
    retry(cluster.store(0), |txn| txn.put("k0", "fresh")).await;
    assert!(matches!(
        stale.commit().await.unwrap(),
        CommitOutcome::Conflict(_)
    ));
    cluster.assert_identical().await;
}
