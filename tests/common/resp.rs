//! A cluster of `Daemon`s in one process (memory engines, real TCP on
//! loopback), driven from the test thread with the `redis` crate's
//! blocking client while the nodes run on a tokio runtime of their own.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use certus::net::{BoxListener, Tcp};
use certus::node::{NodeState, Status};
use certus::order::Cluster as _;
use certus::server::{Daemon, DaemonConfig, EngineKind, EngineOpener, Listeners};
use tokio::runtime::Runtime;

/// The longest any wait in these tests may take.
const BOUND: Duration = Duration::from_secs(60);

pub(crate) struct RespCluster {
    rt: Runtime,
    dir: tempfile::TempDir,
    configs: Vec<DaemonConfig>,
    /// The engines of nodes that do not open the configured one.
    engines: Vec<Option<EngineOpener>>,
    daemons: Vec<Option<Daemon>>,
}

async fn bind() -> BoxListener {
    Box::new(super::stable_tokio_listener())
}

/// A node's three ports on loopback, reached over plain TCP.
async fn loopback_ports() -> Listeners {
    Listeners {
        peer: bind().await,
        client: bind().await,
        health: Some(bind().await),
        client_tls: None,
        connector: Tcp::connector(),
    }
}

fn addr(listener: &BoxListener) -> String {
    listener.local_addr().unwrap().to_string()
}

impl RespCluster {
    /// Starts `nodes` nodes of one new cluster and waits until all are synced.
    pub(crate) fn start(nodes: u64) -> RespCluster {
        RespCluster::start_with(nodes, |_| {})
    }

    /// As [`RespCluster::start`], with `tweak` applied to every node's
    /// settings.
    pub(crate) fn start_with(nodes: u64, tweak: fn(&mut DaemonConfig)) -> RespCluster {
        RespCluster::start_engines(nodes, tweak, Vec::new())
    }

    /// As [`RespCluster::start_with`], node `i` on the engine `engines[i]`
    /// opens when there is one (at every start and in-process restart).
    pub(crate) fn start_engines(
        nodes: u64,
        tweak: fn(&mut DaemonConfig),
        engines: Vec<Option<EngineOpener>>,
    ) -> RespCluster {
        RespCluster::start_prepared(nodes, tweak, engines, &|_| {})
    }

    /// As [`RespCluster::start_engines`], with `prepare` run on every
    /// node's settings before any node starts (to seed a data directory).
    pub(crate) fn start_prepared(
        nodes: u64,
        tweak: fn(&mut DaemonConfig),
        mut engines: Vec<Option<EngineOpener>>,
        prepare: &dyn Fn(&DaemonConfig),
    ) -> RespCluster {
        engines.resize(nodes as usize, None);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        // Certificates for a few more nodes than start: tests add joiners.
        let tls = super::certificates(dir.path(), nodes + 3);
        let mut listeners = Vec::new();
        for _ in 0..nodes {
            listeners.push(rt.block_on(loopback_ports()));
        }
        let mut configs = Vec::new();
        for (index, l) in listeners.iter().enumerate() {
            let id = index as u64 + 1;
            let mut config = DaemonConfig::new(
                id,
                dir.path().join(format!("node-{id}")),
                &addr(&l.peer),
                &addr(&l.client),
            );
            config.cluster = "certus-resp-test".into();
            config.peer_ca = Some(tls.join("ca.pem"));
            config.peer_cert = Some(tls.join(format!("node-{id}.pem")));
            config.peer_key = Some(tls.join(format!("node-{id}.key")));
            config.health_listen = l.health.as_ref().map(addr);
            config.engine = EngineKind::Memory;
            config.heartbeat_ms = 50;
            config.election_timeout_ms = [400, 800];
            config.primary_lease_ms = 800;
            config.commit_timeout_ms = 20_000;
            tweak(&mut config);
            if config.tls_listen.is_some() {
                // The TLS client port presents the node's certificate, and
                // clients' certificates come from the test CA.
                config.tls_cert = config.peer_cert.clone();
                config.tls_key = config.peer_key.clone();
                config.tls_ca = config.peer_ca.clone();
            }
            for (other, ol) in listeners.iter().enumerate() {
                let other = (other as u64 + 1).to_string();
                config.initial_members.insert(other, addr(&ol.peer));
            }
            configs.push(config);
        }
        let mut cluster = RespCluster {
            rt,
            dir,
            configs,
            engines,
            daemons: Vec::new(),
        };
        for config in &cluster.configs {
            prepare(config);
        }
        for (index, mut listeners) in listeners.into_iter().enumerate() {
            let config = cluster.configs[index].clone();
            if config.tls_listen.is_some() {
                listeners.client_tls = Some(cluster.rt.block_on(bind()));
            }
            let daemon = cluster.start_daemon(index, config, listeners);
            cluster.daemons.push(Some(daemon));
        }
        for index in 0..cluster.daemons.len() {
            cluster.wait_state(index, NodeState::Synced);
        }
        cluster
    }

    /// Starts node `index` on its engine.
    fn start_daemon(&self, index: usize, config: DaemonConfig, listeners: Listeners) -> Daemon {
        self.try_start_daemon(index, config, listeners).unwrap()
    }

    /// As [`RespCluster::start_daemon`], for a start that may fail.
    fn try_start_daemon(
        &self,
        index: usize,
        config: DaemonConfig,
        listeners: Listeners,
    ) -> Result<Daemon, certus::server::DaemonError> {
        match self.engines.get(index).cloned().flatten() {
            Some(open) => self
                .rt
                .block_on(Daemon::start_with_engine(config, listeners, open)),
            None => self.rt.block_on(Daemon::start_on(config, listeners)),
        }
    }

    fn daemon(&self, index: usize) -> &Daemon {
        self.daemons[index].as_ref().expect("node is stopped")
    }

    /// A new client connection to node `index`.
    pub(crate) fn client(&self, index: usize) -> redis::Connection {
        let url = format!("redis://{}/", self.daemon(index).client_addr());
        redis::Client::open(url).unwrap().get_connection().unwrap()
    }

    /// Node `index`'s TLS client address.
    pub(crate) fn client_tls_addr(&self, index: usize) -> std::net::SocketAddr {
        self.daemon(index)
            .client_tls_addr()
            .expect("no TLS client port")
    }

    /// The directory of the test CA and certificates.
    pub(crate) fn tls_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("tls")
    }

    /// A new client connection to node `index` speaking RESP3 (the client
    /// sends `HELLO 3` first).
    pub(crate) fn client_resp3(&self, index: usize) -> redis::Connection {
        let url = format!(
            "redis://{}/?protocol=resp3",
            self.daemon(index).client_addr()
        );
        redis::Client::open(url).unwrap().get_connection().unwrap()
    }

    /// The store node `index` serves now.
    pub(crate) fn store(&self, index: usize) -> certus::kv::KvStore {
        self.try_store(index).expect("node is between stores")
    }

    /// The store node `index` serves now, if any (none while a state
    /// transfer or a restart replaces it).
    pub(crate) fn try_store(&self, index: usize) -> Option<certus::kv::KvStore> {
        self.daemon(index).store()
    }

    pub(crate) fn client_addr(&self, index: usize) -> std::net::SocketAddr {
        self.daemon(index).client_addr()
    }

    pub(crate) fn status(&self, index: usize) -> Status {
        self.store(index).node().status()
    }

    /// Waits until node `index` is in `state`, across replacements of its
    /// store by full state transfers.
    pub(crate) fn wait_state(&self, index: usize, state: NodeState) {
        let mut stores = self.daemon(index).watch_store();
        let reached = async move {
            loop {
                let store = stores.wait_for(Option::is_some).await.unwrap().clone();
                let mut status = store.unwrap().node().watch_status();
                if status.wait_for(|s| s.state == state).await.is_ok() {
                    return;
                }
                // That store was shut down: wait for its replacement.
            }
        };
        self.rt.block_on(async {
            tokio::time::timeout(BOUND, reached)
                .await
                .unwrap_or_else(|_| panic!("node {index} never reached {state:?}"));
        });
    }

    /// Starts a new node that joins the running cluster through node 0, with
    /// the settings of node 0 otherwise; returns its index. It is not waited
    /// for.
    pub(crate) fn join(&mut self) -> usize {
        let index = self.daemons.len();
        let id = index as u64 + 1;
        let listeners = self.rt.block_on(loopback_ports());
        let mut config = self.configs[0].clone();
        config.node_id = id;
        config.data_dir = self.dir.path().join(format!("node-{id}"));
        config.peer_listen = addr(&listeners.peer);
        config.client_listen = addr(&listeners.client);
        config.health_listen = listeners.health.as_ref().map(addr);
        config.initial_members.clear();
        config.join = vec![self.configs[0].peer_listen.clone()];
        let tls = self.dir.path().join("tls");
        config.peer_cert = Some(tls.join(format!("node-{id}.pem")));
        config.peer_key = Some(tls.join(format!("node-{id}.key")));
        let daemon = self
            .rt
            .block_on(Daemon::start_on(config.clone(), listeners));
        self.configs.push(config);
        self.engines.push(None);
        self.daemons.push(Some(daemon.unwrap()));
        index
    }

    /// Waits until node `index` serves a store (after a state transfer).
    pub(crate) fn wait_store(&self, index: usize) {
        let mut stores = self.daemon(index).watch_store();
        self.rt.block_on(async {
            let served = stores.wait_for(|s| s.is_some());
            tokio::time::timeout(BOUND, served)
                .await
                .unwrap_or_else(|_| panic!("node {index} never served a store"))
                .unwrap();
        });
    }

    /// The flow-control pauses node `index` asked for since it started.
    pub(crate) fn pauses_sent(&self, index: usize) -> u64 {
        use certus::order::TotalOrder as _;
        self.daemon(index).order().flow_control().pauses_sent
    }

    /// The voters and learners node `index` knows of.
    pub(crate) fn members(&self, index: usize) -> Vec<certus::order::Member> {
        self.daemon(index).order().members()
    }

    /// Polls node `index`'s view of the membership until `done` holds (it
    /// learns changes with the leader's next append), bounded.
    pub(crate) fn wait_members(
        &self,
        index: usize,
        done: impl Fn(&[certus::order::Member]) -> bool,
    ) -> Vec<certus::order::Member> {
        let deadline = std::time::Instant::now() + BOUND;
        loop {
            let members = self.members(index);
            if done(&members) {
                return members;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "membership never settled: {members:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops node `index` cleanly.
    pub(crate) fn stop(&mut self, index: usize) {
        let daemon = self.daemons[index].take().expect("node already stopped");
        self.rt.block_on(daemon.shutdown());
    }

    /// Node `index`'s settings, to change before it restarts.
    pub(crate) fn config_mut(&mut self, index: usize) -> &mut DaemonConfig {
        &mut self.configs[index]
    }

    /// Starts a stopped node on its old addresses and log, for a start
    /// that may fail.
    pub(crate) fn try_restart(&mut self, index: usize) -> Result<(), certus::server::DaemonError> {
        let config = self.configs[index].clone();
        let listeners = self.rt.block_on(Listeners::bind(&config)).unwrap();
        let daemon = self.try_start_daemon(index, config, listeners)?;
        self.daemons[index] = Some(daemon);
        Ok(())
    }

    /// Restarts a stopped node on its old addresses and log.
    pub(crate) fn restart(&mut self, index: usize) {
        self.try_restart(index).unwrap();
    }

    /// The HTTP status code node `index`'s health check answers.
    pub(crate) fn health(&self, index: usize) -> u16 {
        self.http_get(index, "/").0
    }

    /// Node `index`'s Prometheus metrics (`GET /metrics` on the health
    /// port): the status code and the body.
    pub(crate) fn metrics(&self, index: usize) -> (u16, String) {
        self.http_get(index, "/metrics")
    }

    /// `GET path` on node `index`'s health port: the status and the body.
    fn http_get(&self, index: usize, path: &str) -> (u16, String) {
        let addr = self.daemon(index).health_addr().unwrap();
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(BOUND)).unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let (head, body) = response
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
        let code = head.split(' ').nth(1).and_then(|c| c.parse().ok());
        let code = code.unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
        (code, body.to_string())
    }

    /// Polls node `index`'s health check until it answers `code` (bounded):
    /// a loaded machine can delay the heartbeats that keep a node primary.
    pub(crate) fn wait_health(&self, index: usize, code: u16) {
        let deadline = std::time::Instant::now() + BOUND;
        loop {
            let got = self.health(index);
            if got == code {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "health stayed {got}, not {code}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(crate) fn shutdown(mut self) {
        for index in 0..self.daemons.len() {
            if self.daemons[index].is_some() {
                self.stop(index);
            }
        }
    }
}

/// Sends `args` once.
pub(crate) fn query_once<T: redis::FromRedisValue>(
    con: &mut redis::Connection,
    args: &[&str],
) -> redis::RedisResult<T> {
    let mut command = redis::cmd(args[0]);
    for arg in &args[1..] {
        command.arg(*arg);
    }
    command.query(con)
}

/// Sends `args`, and again while the node answers NOTPRIMARY (bounded): a
/// loaded machine can delay the heartbeats that keep a node primary, and a
/// refused command certainly had no effect. EXEC is sent once, since a
/// refused EXEC discards its queue.
pub(crate) fn query<T: redis::FromRedisValue>(
    con: &mut redis::Connection,
    args: &[&str],
) -> redis::RedisResult<T> {
    let deadline = std::time::Instant::now() + BOUND;
    loop {
        match query_once(con, args) {
            Err(err)
                if err.code() == Some("NOTPRIMARY")
                    && args[0] != "EXEC"
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            reply => return reply,
        }
    }
}

/// Waits (bounded; never a timing assertion) until `check` holds.
pub(crate) fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + BOUND;
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} never happened"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

impl RespCluster {
    /// Node `node`'s applied position and every row it holds.
    pub(crate) fn dump(&self, node: usize) -> (certus::Seqno, Vec<(bytes::Bytes, bytes::Bytes)>) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(self.store(node).dump()).unwrap()
    }

    /// Every node holds the same rows once all have applied the same prefix.
    pub(crate) fn assert_nodes_equal(&self) {
        let mut con = self.client(0);
        // A write through node 0, then each node's causal read of it, puts
        // every node past the same position before the dumps.
        let _: () = query(&mut con, &["SET", "fence", "1"]).unwrap();
        for node in 0..3 {
            let mut con = self.client(node);
            let _: String = query(&mut con, &["GET", "fence"]).unwrap();
        }
        eventually("every node at one position", || {
            let positions: std::collections::BTreeSet<_> = (0..3).map(|n| self.dump(n).0).collect();
            positions.len() == 1
        });
        let first = self.dump(0).1;
        for node in 1..3 {
            assert_eq!(self.dump(node).1, first, "node {node} differs");
        }
    }
}

/// The `blocked_clients` count `INFO clients` reports.
pub(crate) fn blocked_clients(con: &mut redis::Connection) -> u64 {
    let info: String = query(con, &["INFO", "clients"]).unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix("blocked_clients:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap()
}
