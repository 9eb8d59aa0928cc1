//! [`RaftOrder`]: total order and membership on openraft, over TCP.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use openraft::BasicNode;
use openraft::async_runtime::WatchReceiver;
use openraft::error::{ClientWriteError, RaftError};
use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::config::RaftOrderConfig;
use super::delivery::Raft;
use super::delivery::{Delivery, DeliveryShared};
use super::flow::FlowControl;
use super::forwarder::Forwarder;
use super::log::{LogLimits, LogStore, ReadError, read_state_file, write_state_file};

/// The last incarnation number given to this node (see
/// [`TotalOrder::next_epoch`]).
const EPOCH_FILE: &str = "epoch";
use super::membership;
use super::messages::{Forwarded, PeerRequest, PeerResponse};
use super::monitor::Monitor;
use super::network::{Network, Peers, append_bytes};
use super::service::{LeaderContact, Service};
use super::stream::{RaftEventStream, Standing};
use super::sync_points::{ReadIndex, SyncPoints};
use super::types::{Runtime, Submission};
use super::upgrade::{self, Upgrader};
use crate::Cause;
use crate::ids::{NodeId, Seqno};
use crate::net::{
    self, BoxListener, ClientConfig, Connector, Identity, PeerSecurity, ProtocolBook, ServerConfig,
};
use crate::order::{
    Cluster, ConsumerState, EventStream, FlowControlStats, Member, OrderError, OrderFuture,
    PeerError, PeerService, TotalOrder,
};
use crate::protocol::{Protocol, Protocols};

/// Why the networked ordering layer could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// A setting is unusable.
    #[error("invalid ordering configuration: {0}")]
    Config(#[source] openraft::ConfigError),
    /// A setting cannot work ([`RaftOrderConfig::check`]).
    #[error("invalid ordering setting {setting}: {problem}")]
    Setting {
        /// The setting's name.
        setting: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The log, vote or snapshot point could not be read or written.
    #[error("ordering log at {path}: {source}")]
    Storage {
        /// The log directory.
        path: String,
        /// The failure.
        source: std::io::Error,
    },
    /// Raft refused to start.
    #[error("raft failed to start: {0}")]
    Raft(#[source] Cause),
    /// The log records a cluster protocol newer than this node speaks: it
    /// was downgraded past its cluster (see [`crate::protocol`]).
    #[error(
        "the log at {path} records cluster protocol {cluster}, newer than the {own} this node speaks: a node cannot be downgraded past its cluster"
    )]
    Downgraded {
        /// The log directory.
        path: String,
        /// The cluster protocol recorded.
        cluster: Protocol,
        /// The protocol this node speaks.
        own: Protocol,
    },
    /// No [`RaftOrderConfig::security`] was chosen.
    #[error(
        "peer links are not secured: give the node its certificates (PeerSecurity::Tls) or declare the peer network trusted (PeerSecurity::Insecure)"
    )]
    NoPeerSecurity,
}

/// What one submission attempt came to.
enum Attempt {
    /// Committed: every member will deliver it.
    Ordered,
    /// Certainly not appended anywhere; safe to retry.
    NotOrdered,
    /// Possibly appended; a retry is safe only because certification drops
    /// a second copy of the same transaction.
    MaybeOrdered,
    /// Held back by flow control; not appended.
    Paused,
}

/// Total-order broadcast on openraft: one raft log whose index is the
/// global seqno, replicated over TCP between the nodes of one cluster.
///
/// Write-sets submitted on a follower are forwarded to the leader in
/// batches; a submission interrupted by a leader change is retried (the
/// certifier drops a second copy by its transaction id) until
/// [`RaftOrderConfig::submit_timeout`], then reported as
/// [`OrderError::OutcomeUnknown`]. Sync points are raft read indexes taken
/// by the leader. A node that cannot hear a quorum gets a non-primary view.
pub struct RaftOrder {
    config: RaftOrderConfig,
    raft: Raft,
    store: LogStore,
    delivery: Arc<DeliveryShared>,
    peers: Arc<Peers>,
    forwarder: Forwarder,
    sync_points: SyncPoints,
    standing: watch::Receiver<Standing>,
    flow: Arc<FlowControl>,
    app: Arc<OnceLock<Arc<dyn PeerService>>>,
    shutdown: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    local_addr: std::net::SocketAddr,
    protocols: Arc<ProtocolBook>,
}

impl std::fmt::Debug for RaftOrder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftOrder")
            .field("node_id", &self.config.node_id)
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl RaftOrder {
    /// Opens the log under `config.dir`, serves peers on `listener`, reaches
    /// them through `connector` ([`crate::net::Tcp`] outside simulation), and
    /// joins the cluster (bootstrapping it from `config.initial_members`
    /// when this node has never run).
    ///
    /// # Errors
    /// [`StartError`] for bad settings, an unreadable log, or a raft failure.
    pub async fn start(
        config: RaftOrderConfig,
        listener: BoxListener,
        connector: Arc<dyn Connector>,
    ) -> Result<Self, StartError> {
        let raft_config = Arc::new(config.raft_config()?);
        let storage_err = |source| StartError::Storage {
            path: config.dir.display().to_string(),
            source,
        };
        let local_addr = listener.local_addr().map_err(storage_err)?;
        let protocols = protocol_book(&config)?;
        let identity = Arc::new(identity(&config, local_addr)?.speaking(protocols.clone()));
        let (store, delivery, shared) = open_log(&config, protocols.clone())
            .await
            .map_err(storage_err)?;
        let peers = peers(&config, connector, identity.clone());
        let raft = new_raft(&config, raft_config, peers.clone(), &store, delivery).await?;
        let contact = Arc::new(LeaderContact::default());
        let flow = Arc::new(FlowControl::new(config.fc_limit, config.primary_lease));
        let app: Arc<OnceLock<Arc<dyn PeerService>>> = Arc::default();
        let (shutdown, shutdown_rx) = watch::channel(false);
        let server = tokio::spawn(net::serve(
            listener,
            Arc::new(server_config(&config, identity.clone())),
            Arc::new(Service::new(
                &config,
                raft.clone(),
                contact.clone(),
                flow.clone(),
                peers.clone(),
                app.clone(),
            )),
            shutdown_rx.clone(),
        ));
        let mut tasks = vec![server];
        if bootstrap(&raft, &config, &identity).await? {
            let join = membership::join(&config, peers.clone(), shutdown_rx.clone());
            tasks.push(tokio::spawn(join));
        }
        let upgrader = Upgrader::new(raft.clone(), protocols.clone(), config.node_id);
        let (monitor, standing) = Monitor::new(
            &config,
            raft.clone(),
            contact,
            flow.clone(),
            shared.clone(),
            peers.clone(),
            store.clone(),
        );
        let reader = ReadIndex::new(&config, &raft, &peers, &standing, &shutdown_rx);
        let (sync_points, task) = SyncPoints::start(reader);
        tasks.push(task);
        tasks.push(tokio::spawn(monitor.upgrading(upgrader).run(shutdown_rx)));
        let forwarder = forwarder(&config);
        Ok(RaftOrder {
            config,
            raft,
            store,
            delivery: shared,
            peers,
            forwarder,
            sync_points,
            standing,
            flow,
            app,
            shutdown,
            tasks: Mutex::new(tasks),
            local_addr,
            protocols,
        })
    }

    /// The address peers reach this node on.
    #[must_use]
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.local_addr
    }

    /// The settings this node runs with.
    #[must_use]
    pub fn config(&self) -> &RaftOrderConfig {
        &self.config
    }

    /// openraft itself, for tests that watch its metrics.
    #[cfg(all(test, feature = "certs"))]
    pub(super) fn raft(&self) -> &Raft {
        &self.raft
    }

    /// The log, for tests that make it fail.
    #[cfg(all(test, feature = "certs"))]
    pub(super) fn log(&self) -> &LogStore {
        &self.store
    }

    /// Waits until this node is in the primary component, for at most
    /// `timeout`; whether it is.
    #[cfg(all(test, feature = "certs"))]
    pub(super) async fn wait_primary(&self, timeout: Duration) -> bool {
        self.primary_again(Instant::now() + timeout).await
    }

    /// The traffic of this node's links to each peer (its requests and
    /// their answers), for operators.
    #[must_use]
    pub fn peer_traffic(&self) -> Vec<(NodeId, crate::net::PeerTraffic)> {
        let traffic = self.peers.traffic();
        traffic
            .into_iter()
            .map(|(id, t)| (NodeId::new(id), t))
            .collect()
    }

    /// How this node's log and its disk are doing, for operators.
    #[must_use]
    pub fn log_stats(&self) -> super::LogStats {
        self.store.stats()
    }

    /// Why the ordering core stopped for good (raft's fatal error, a failed
    /// write or fsync of the log), once it did: nothing more is ordered
    /// here, and only a restart from what is durable brings the node back.
    #[must_use]
    pub fn failure(&self) -> Option<Cause> {
        self.standing.borrow().stopped.clone()
    }

    /// Waits until the ordering core stops for good and returns why;
    /// pending for as long as it runs (a clean shutdown is not a failure).
    pub async fn failed(&self) -> Cause {
        let mut standing = self.standing.clone();
        loop {
            if let Some(cause) = self.failure() {
                return cause;
            }
            if standing.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    /// Whether this node currently leads the ordering layer.
    #[must_use]
    pub fn is_leader(&self) -> bool {
        self.raft.is_leader()
    }

    /// Stops raft, the peer server and every background task. The log
    /// directory can be opened again once this returns.
    pub async fn shutdown(&self) {
        let _ = self.shutdown.send(true);
        if let Err(err) = self.raft.shutdown().await {
            tracing::warn!(error = %err, "raft shut down with an error");
        }
        let tasks: Vec<JoinHandle<()>> = self.tasks.lock().await.drain(..).collect();
        for task in tasks {
            crate::task::join(task).await;
        }
    }

    /// The connection to the leader this node knows of, read from one look
    /// at raft's metrics (no copy of them).
    fn leader_client(&self) -> Option<super::network::Client> {
        self.peers.leader(&self.raft).ok()
    }

    /// One attempt to get `frame` ordered.
    async fn submit_once(&self, frame: &Bytes) -> Attempt {
        if self.raft.is_leader() {
            if !self.flow.admit(self.config.primary_lease).await {
                return Attempt::Paused;
            }
            return match self
                .raft
                .client_write(Submission::stamped(frame.clone(), self.config.node_id))
                .await
            {
                Ok(_) => Attempt::Ordered,
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {
                    Attempt::NotOrdered
                }
                Err(_) => Attempt::MaybeOrdered,
            };
        }
        let Some(client) = self.leader_client() else {
            return Attempt::NotOrdered;
        };
        match self.forwarder.forward(client, frame.clone()).await {
            Ok(Forwarded::Ordered) => Attempt::Ordered,
            // Never sent by a leader that agreed this node's terms: the
            // limit is a shared setting, checked here before sending.
            Ok(Forwarded::NotLeader(_) | Forwarded::TooLarge { .. }) => Attempt::NotOrdered,
            Ok(Forwarded::Discarded(_) | Forwarded::Failed(_)) => Attempt::MaybeOrdered,
            Ok(Forwarded::Paused) => Attempt::Paused,
            Err(err) if err.not_sent() => Attempt::NotOrdered,
            Err(_) => Attempt::MaybeOrdered,
        }
    }

    /// Waits until this node is in the primary component again; false at
    /// `deadline` or shutdown.
    async fn primary_again(&self, deadline: Instant) -> bool {
        let mut standing = self.standing.clone();
        let mut shutdown = self.shutdown.subscribe();
        tokio::select! {
            primary = tokio::time::timeout_at(deadline, standing.wait_for(|s| s.primary)) => {
                matches!(primary, Ok(Ok(_)))
            }
            _ = shutdown.wait_for(|closed| *closed) => false,
        }
    }

    async fn submit_frame(&self, frame: Bytes) -> Result<(), OrderError> {
        if upgrade::is_change(&frame) {
            return Err(OrderError::Reserved {
                kind: crate::frame::FrameKind::ClusterProtocol,
            });
        }
        if frame.len() > self.config.max_entry_bytes {
            return Err(OrderError::TooLarge {
                len: frame.len(),
                max: self.config.max_entry_bytes,
            });
        }
        let deadline = Instant::now() + self.config.submit_timeout;
        let mut maybe_ordered = false;
        let mut paused = false;
        let gave_up = |maybe_ordered: bool, paused: bool| {
            if maybe_ordered {
                OrderError::OutcomeUnknown
            } else if paused {
                OrderError::Paused {
                    waited: self.config.submit_timeout,
                }
            } else {
                OrderError::NotPrimary
            }
        };
        let mut pause = Duration::from_millis(5);
        loop {
            if !self.standing.borrow().primary {
                // Nothing sent: certainly not ordered. Perhaps ordered: only
                // a retry once back in the primary component tells, answered
                // by the certifier's duplicate check if the first got in.
                if !maybe_ordered || !self.primary_again(deadline).await {
                    return Err(gave_up(maybe_ordered, false));
                }
            }
            match self.submit_once(&frame).await {
                Attempt::Ordered => return Ok(()),
                Attempt::NotOrdered => {}
                Attempt::MaybeOrdered => maybe_ordered = true,
                Attempt::Paused => paused = true,
            }
            if *self.shutdown.borrow() {
                return Err(OrderError::Closed);
            }
            if Instant::now() + pause >= deadline {
                return Err(gave_up(maybe_ordered, paused));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(self.config.heartbeat);
        }
    }
}

/// This node's identity on peer links, its cluster id read from the log
/// directory. Insecure peer links are logged loudly.
fn identity(
    config: &RaftOrderConfig,
    local_addr: std::net::SocketAddr,
) -> Result<Identity, StartError> {
    let security = config.security.as_ref().ok_or(StartError::NoPeerSecurity)?;
    if matches!(security, PeerSecurity::Insecure) {
        tracing::warn!(node = %config.node_id, %local_addr, "PEER LINKS ARE INSECURE: neither authenticated nor encrypted; anyone who reaches the peer port can act as any node and read all data");
    }
    let identity = Identity::open(
        &config.cluster,
        config.node_id,
        config.settings(),
        security,
        Some(&config.dir),
    );
    identity.map_err(|source| StartError::Storage {
        path: config.dir.display().to_string(),
        source,
    })
}

/// This node's protocol versions: its own, and the cluster protocol its
/// log reached (the first that negotiates for a new node).
fn protocol_book(config: &RaftOrderConfig) -> Result<Arc<ProtocolBook>, StartError> {
    let path = || config.dir.display().to_string();
    let kept = upgrade::load(&config.dir).map_err(|source| StartError::Storage {
        path: path(),
        source,
    })?;
    let own = config.protocol;
    let cluster = kept.unwrap_or(Protocol::FIRST).min(own);
    if let Some(kept) = kept.filter(|kept| *kept > own) {
        return Err(StartError::Downgraded {
            path: path(),
            cluster: kept,
            own,
        });
    }
    Ok(Arc::new(ProtocolBook::new(Protocols::new(own, cluster))))
}

/// Room in a log record beyond the frame it carries: the log id, the
/// stamp and postcard's lengths. Without it a frame just under
/// `max_entry_bytes` made a record over the log's limit, and openraft stops
/// for good on an entry its log cannot store.
const RECORD_OVERHEAD: usize = 4096;

/// Opens the log and the state machine over it, agreeing on the snapshot
/// point.
async fn open_log(
    config: &RaftOrderConfig,
    protocols: Arc<ProtocolBook>,
) -> std::io::Result<(LogStore, Delivery, Arc<DeliveryShared>)> {
    let max_record = config.max_entry_bytes + RECORD_OVERHEAD;
    let limits = LogLimits {
        // A quarter of the retained bytes, so that purging whole segments
        // keeps the log within a quarter over its bound.
        segment: (config.log_retention_bytes / 4).clamp(1 << 20, 64 << 20),
        entry: max_record,
        cache: config.log_cache_bytes,
    };
    let store = LogStore::open(&config.dir, config.sync, limits)?;
    let (delivery, shared) = Delivery::open(
        &config.dir,
        config.max_delivery_lag,
        store.clone(),
        protocols,
    )?;
    delivery.settle().await?;
    Ok((store, delivery, shared))
}

/// The forwarder of write-sets to the leader. Its batches hold at most
/// twice the largest entry: any one frame fits, and a batch stays well
/// inside the peer frame limit (four times the largest entry).
fn forwarder(config: &RaftOrderConfig) -> Forwarder {
    let limits = (config.forward_batch, config.max_entry_bytes * 2);
    Forwarder::start(limits, 4096, config.submit_timeout)
}

/// Starts raft, its random choices seeded from the simulation or from the
/// machine.
async fn new_raft(
    config: &RaftOrderConfig,
    raft_config: Arc<openraft::Config>,
    peers: Arc<Peers>,
    store: &LogStore,
    delivery: Delivery,
) -> Result<Raft, StartError> {
    let network = Network {
        me: config.node_id.get(),
        peers,
        append_bytes: append_bytes(config.max_entry_bytes),
    };
    let seed = crate::simulation::next_seed().unwrap_or_else(machine_seed);
    let raft = Raft::new(
        config.node_id.get(),
        raft_config,
        network,
        store.clone(),
        delivery,
    );
    Runtime::scope(seed, raft)
        .await
        .map_err(|e| StartError::Raft(Cause::new(e)))
}

/// A seed no other start on this machine shares: std's hash keys are
/// drawn from the operating system's randomness.
fn machine_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

/// This node's connections to its peers.
fn peers(
    config: &RaftOrderConfig,
    connector: Arc<dyn Connector>,
    identity: Arc<Identity>,
) -> Arc<Peers> {
    Arc::new(Peers::new(ClientConfig {
        connector,
        identity,
        max_frame: config.max_entry_bytes.saturating_mul(4),
        queue: 1024,
        connect_timeout: config.election_timeout.0,
        backoff: (Duration::from_millis(20), Duration::from_secs(1)),
        // Long enough for any one answer (a state-transfer chunk included),
        // short next to how long a silent link would otherwise stay in use.
        dead_after: config.election_timeout.1 * 2,
    }))
}

/// How this node serves its peers.
fn server_config(config: &RaftOrderConfig, identity: Arc<Identity>) -> ServerConfig {
    ServerConfig {
        identity,
        max_frame: config.max_entry_bytes.saturating_mul(4),
        concurrency: 256,
        handshake_timeout: config.election_timeout.0,
        // Members speak at least every heartbeat; a link silent this long
        // is dead or a stranger's.
        idle_timeout: config.election_timeout.1 * 50,
        // Three nodes open a few connections each; strangers cannot hold
        // more than this many handshakes open at once.
        max_connections: 256,
    }
}

/// Bootstraps a new cluster when this node is one of its initial members
/// and has never run; the lowest-id initial member makes the cluster id,
/// which the others adopt when they first meet a member that has it.
/// Returns whether the node must instead join an existing cluster through
/// `config.join`.
async fn bootstrap(
    raft: &Raft,
    config: &RaftOrderConfig,
    identity: &Identity,
) -> Result<bool, StartError> {
    let initialized = raft
        .is_initialized()
        .await
        .map_err(|e| StartError::Raft(Cause::new(e)))?;
    if initialized {
        return Ok(false);
    }
    if !config.initial_members.contains_key(&config.node_id) {
        return Ok(!config.join.is_empty());
    }
    let members: BTreeMap<u64, BasicNode> = config
        .initial_members
        .iter()
        .map(|(id, addr)| (id.get(), BasicNode { addr: addr.clone() }))
        .collect();
    if config.initial_members.keys().next() == Some(&config.node_id) {
        identity.create().map_err(|source| StartError::Storage {
            path: config.dir.display().to_string(),
            source,
        })?;
    }
    tracing::info!(node = %config.node_id, ?members, "bootstrapping a new cluster");
    match raft.initialize(members).await {
        Ok(()) => Ok(false),
        Err(RaftError::APIError(openraft::error::InitializeError::NotAllowed(_))) => Ok(false),
        Err(err) => Err(StartError::Raft(Cause::new(err))),
    }
}

impl Cluster for RaftOrder {
    fn members(&self) -> Vec<Member> {
        membership::members(&self.raft)
    }

    fn leader(&self) -> Option<NodeId> {
        self.raft
            .metrics()
            .borrow_watched()
            .current_leader
            .map(NodeId::new)
    }

    /// The leader commits a membership without this node. Stop it
    /// afterwards.
    fn leave(&self) -> OrderFuture<'_, ()> {
        self.remove(self.config.node_id)
    }

    /// The leader commits a membership without `node`, if the voters left
    /// have a reachable majority.
    fn remove(&self, node: NodeId) -> OrderFuture<'_, ()> {
        Box::pin(async move {
            if !self.members().iter().any(|m| m.id == node) {
                return Err(OrderError::UnknownMember { node });
            }
            let result = if self.raft.is_leader() {
                membership::remove(&self.raft, node.get(), self.config.reachable_within()).await
            } else {
                let request = PeerRequest::Leave { node: node.get() };
                let timeout = self.config.submit_timeout;
                membership::to_leader(&self.raft, &self.peers, &request, timeout).await
            };
            result.map_err(OrderError::Membership)
        })
    }

    fn set_peer_service(&self, service: Arc<dyn PeerService>) -> bool {
        self.app.set(service).is_ok()
    }

    fn call_peer(&self, node: NodeId, request: Bytes, timeout: Duration) -> OrderFuture<'_, Bytes> {
        Box::pin(async move {
            let addr = self
                .members()
                .into_iter()
                .find(|m| m.id == node)
                .ok_or(OrderError::UnknownMember { node })?
                .addr;
            let client = self.peers.client(node.get(), &addr);
            let source = match client.call(&PeerRequest::Service(request), timeout).await {
                Ok(PeerResponse::Service(Some(Ok(answer)))) => return Ok(answer),
                Ok(PeerResponse::Service(Some(Err(remote)))) => PeerError::Remote(remote),
                Ok(PeerResponse::Service(None)) => PeerError::NoService,
                Ok(PeerResponse::Refused(reason)) => PeerError::Refused(reason),
                Ok(_) => PeerError::Malformed,
                Err(err) => PeerError::Unreachable(Cause::new(err)),
            };
            Err(OrderError::Peer { node, source })
        })
    }
}

impl TotalOrder for RaftOrder {
    fn node_id(&self) -> NodeId {
        self.config.node_id
    }

    fn submit(&self, frame: Bytes) -> OrderFuture<'_, ()> {
        Box::pin(self.submit_frame(frame))
    }

    fn sync_point(&self) -> OrderFuture<'_, Seqno> {
        Box::pin(self.sync_points.sync_point())
    }

    fn protocols(&self) -> Protocols {
        self.protocols.protocols()
    }

    fn flow_control(&self) -> FlowControlStats {
        self.flow.stats()
    }

    fn release(&self, upto: Seqno) {
        self.store.release(upto.get());
    }

    fn next_epoch(&self, floor: u64) -> Result<u64, OrderError> {
        let dir = &self.config.dir;
        let kept: Option<u64> =
            read_state_file(dir, EPOCH_FILE, 64).map_err(|e| OrderError::Storage(Cause::new(e)))?;
        let epoch = kept.map_or(floor, |kept| floor.max(kept.saturating_add(1)));
        write_state_file(dir, EPOCH_FILE, &epoch, 64)
            .map_err(|e| OrderError::Storage(Cause::new(e)))?;
        Ok(epoch)
    }

    fn set_consumer_state(&self, state: ConsumerState) {
        self.flow.set_synced(state == ConsumerState::Synced);
        self.delivery
            .set_consumer_stopped(state == ConsumerState::Stopped);
    }

    fn subscribe(&self, after: Seqno) -> Result<Box<dyn EventStream>, OrderError> {
        let next = after.get() + 1;
        if let Err(ReadError::Purged(purged)) = self.store.read(next, next) {
            return Err(OrderError::StateTransferRequired {
                requested: after,
                first_retained: Seqno::new(purged.first_retained),
            });
        }
        self.delivery.consumed(after.get());
        self.set_consumer_state(ConsumerState::CatchingUp);
        Ok(Box::new(RaftEventStream {
            store: self.store.clone(),
            watermark: self.delivery.watermark(),
            delivery: self.delivery.clone(),
            standing: self.standing.clone(),
            next,
            pending: VecDeque::new(),
            view_id: 0,
            shown: None,
        }))
    }
}
