//! certusd nodes as turmoil hosts: the real `Daemon` (ordering on openraft,
//! certification, apply, state transfer, the RESP server), its log on a
//! simulated disk ([`certus::simulation::SimDisk`]), its engine redb on a
//! second one (or, on some nodes, the in-memory engine), every byte it
//! sends on turmoil's network.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use certus::Cause;
use certus::kv::{Engine, FaultSwitch, FaultyEngine, MemoryEngine, RedbEngine};
use certus::net::{BoxFuture, BoxStream, Connector, Listener};
use certus::server::{Daemon, DaemonConfig, EngineKind, EngineOpener, Listeners};
use certus::simulation::SimDisk;

pub(crate) const PEER_PORT: u16 = 7000;
pub(crate) const CLIENT_PORT: u16 = 6379;

/// Host name of node `index` (0-based).
pub(crate) fn host(index: usize) -> String {
    format!("n{}", index + 1)
}

/// The Redis-protocol address of node `index`.
pub(crate) fn client_addr(index: usize) -> String {
    format!("{}:{CLIENT_PORT}", host(index))
}

/// Connections over turmoil's network.
#[derive(Debug)]
struct SimConnector;

impl Connector for SimConnector {
    fn connect<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, io::Result<BoxStream>> {
        Box::pin(async move {
            let stream = turmoil::net::TcpStream::connect(addr).await?;
            Ok(Box::new(stream) as BoxStream)
        })
    }
}

/// A listener on turmoil's network.
struct SimListener(turmoil::net::TcpListener);

impl std::fmt::Debug for SimListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SimListener")
            .field(&self.0.local_addr())
            .finish()
    }
}

impl Listener for SimListener {
    fn accept(&self) -> BoxFuture<'_, io::Result<(BoxStream, SocketAddr)>> {
        Box::pin(async move {
            let (stream, from) = self.0.accept().await?;
            Ok((Box::new(stream) as BoxStream, from))
        })
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

async fn bind(port: u16) -> io::Result<Box<dyn Listener>> {
    let listener = turmoil::net::TcpListener::bind(("0.0.0.0", port)).await?;
    Ok(Box::new(SimListener(listener)))
}

/// The settings of node `index` of `nodes`, its data under `dir`.
pub(crate) fn config(index: usize, nodes: usize, dir: &Path, serializable: bool) -> DaemonConfig {
    let id = index as u64 + 1;
    let mut config = DaemonConfig::new(
        id,
        dir.join(host(index)),
        &format!("0.0.0.0:{PEER_PORT}"),
        &format!("0.0.0.0:{CLIENT_PORT}"),
    );
    config.cluster = "certus-sim".into();
    // Plaintext: the simulated network is the test's own, and the
    // simulation replays byte for byte only without TLS's randomness.
    config.insecure_peers = true;
    config.peer_advertise = Some(format!("{}:{PEER_PORT}", host(index)));
    config.engine = EngineKind::Memory;
    config.heartbeat_ms = 50;
    config.election_timeout_ms = [400, 800];
    config.primary_lease_ms = 800;
    config.commit_timeout_ms = 5_000;
    // Small, so a node that was down a while needs a full state transfer.
    config.log_retention = 500;
    if serializable {
        config.isolation = certus::server::IsolationSetting::Serializable;
    }
    for other in 0..nodes {
        config.initial_members.insert(
            (other as u64 + 1).to_string(),
            format!("{}:{PEER_PORT}", host(other)),
        );
    }
    config
}

/// A node's storage engine.
#[derive(Clone, Debug)]
pub(crate) enum NodeEngine {
    /// In memory: lost when the host crashes, so the node comes back by a
    /// state transfer. Writes fail while the switch says so.
    Memory(FaultSwitch),
    /// redb on the node's engine disk, kept across crashes (less what was
    /// not synced), so the node comes back by replaying its log.
    Redb(Arc<SimDisk>),
}

impl NodeEngine {
    /// How the daemon opens it, at start and at each in-process restart.
    fn opener(&self, dir: &Path) -> EngineOpener {
        match self {
            NodeEngine::Memory(fault) => {
                let engine: Arc<dyn Engine> = Arc::new(FaultyEngine::new(
                    Arc::new(MemoryEngine::new()),
                    fault.clone(),
                ));
                Arc::new(move || Ok(engine.clone()))
            }
            NodeEngine::Redb(disk) => {
                let disk = disk.clone();
                let path = dir.join("data.redb");
                Arc::new(move || {
                    let file = disk.open_in_place(&path).map_err(Cause::new)?;
                    let engine = RedbEngine::open_backend(file, 4 << 20).map_err(Cause::new)?;
                    Ok(Arc::new(engine) as Arc<dyn Engine>)
                })
            }
        }
    }
}

/// The software of one host: start the daemon on the simulated network,
/// on `engine`, and serve until the host is crashed. A daemon whose
/// ordering core stopped (its log's disk failed) shuts down, as certusd
/// exits; the host stays down until the schedule restarts it.
pub(crate) async fn node(config: DaemonConfig, engine: NodeEngine) -> turmoil::Result {
    let listeners = Listeners {
        peer: bind(PEER_PORT).await?,
        client: bind(CLIENT_PORT).await?,
        health: None,
        client_tls: None,
        connector: Arc::new(SimConnector),
    };
    let open = engine.opener(&config.data_dir);
    let daemon = Daemon::start_with_engine(config, listeners, open).await?;
    let cause = daemon.failed().await;
    tracing::warn!(error = %cause, "the ordering core stopped: the daemon exits");
    daemon.shutdown().await;
    std::future::pending::<()>().await;
    Ok(())
}
