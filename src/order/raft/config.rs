//! Settings of the networked ordering layer.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::log::SyncMode;
use super::order::StartError;
use crate::ids::NodeId;
use crate::net::PeerSecurity;
use crate::protocol::Protocol;

/// How one node takes part in the networked ordering layer.
/// [`RaftOrderConfig::new`] gives production defaults.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RaftOrderConfig {
    /// This node.
    pub node_id: NodeId,
    /// The cluster's name; peers naming another cluster are refused.
    pub cluster: String,
    /// The address peers use to reach this node.
    pub advertise: String,
    /// Where the log, vote and snapshot point are kept.
    pub dir: PathBuf,
    /// The members a new cluster starts with, and their addresses. A node
    /// listed here that has never run bootstraps the cluster with exactly
    /// this set (every listed node may do so; raft elects one leader).
    /// Empty for a node that joins an existing cluster.
    pub initial_members: BTreeMap<NodeId, String>,
    /// Peer addresses of members of an existing cluster. A node that has
    /// never run and is not in `initial_members` asks them to add it; it
    /// joins as a learner and is promoted to voter once its log caught up.
    pub join: Vec<String>,
    /// When the log is forced to disk.
    pub sync: SyncMode,
    /// Leader heartbeat period.
    pub heartbeat: Duration,
    /// Election timeout range: a follower that hears no leader for a random
    /// time in this range starts an election.
    pub election_timeout: (Duration, Duration),
    /// A node that has not heard from a quorum for this long leaves the
    /// primary component (refuses writes and causal reads).
    pub primary_lease: Duration,
    /// Log entries kept behind the applied point, so a restarted node can
    /// catch up incrementally (Galera's gcache). A node further behind
    /// needs a full state transfer.
    pub log_retention: u64,
    /// Bytes of log records kept at most (Galera's `gcache.size`): older
    /// entries are purged even within `log_retention`, except those the
    /// node still needs to restart (after its last checkpoint).
    pub log_retention_bytes: u64,
    /// How far the ordering layer may apply ahead of the node's delivery.
    pub max_delivery_lag: u64,
    /// Bytes of the newest log entries kept in memory; older entries are
    /// read from disk when a lagging node or follower needs them.
    pub log_cache_bytes: usize,
    /// Largest entry accepted, in bytes.
    pub max_entry_bytes: usize,
    /// How long a submission is retried (across leader changes) before its
    /// outcome is declared unknown.
    pub submit_timeout: Duration,
    /// Write-sets sent to the leader in one forwarding request, at most.
    pub forward_batch: usize,
    /// Flow control (Galera's `gcs.fc_limit`): when this node has more than
    /// this many committed positions it has not yet consumed, it asks the
    /// leader to pause admitting new write-sets until it is back under half.
    pub fc_limit: u64,
    /// How peer links are secured. `None` refuses to start: a node must
    /// be given certificates ([`PeerSecurity::Tls`]) or be told explicitly
    /// that its peer network is trusted ([`PeerSecurity::Insecure`]).
    pub security: Option<PeerSecurity>,
    /// Settings every member must share (certification window, isolation,
    /// write-set size limit...), by name: a peer whose values differ is
    /// refused at the handshake, with the setting named. The ordering
    /// layer adds its own (`max_entry_bytes`).
    pub shared_settings: BTreeMap<String, String>,
    /// The protocol version this node speaks: [`Protocol::CURRENT`], or a
    /// simulated next one with the feature `next-version` (see
    /// [`crate::protocol`]).
    pub protocol: Protocol,
}

impl RaftOrderConfig {
    /// How recently the leader must have heard from a voter for it to
    /// count as reachable when a removal is checked: three heartbeats. A
    /// voter that died just before still counts, so the check narrows the
    /// danger of a removal that loses quorum, and cannot close it.
    #[must_use]
    pub fn reachable_within(&self) -> Duration {
        self.heartbeat * 3
    }

    /// Defaults for node `node_id` of `cluster`, reachable at `advertise`,
    /// keeping its log under `dir`.
    #[must_use]
    pub fn new(node_id: NodeId, cluster: &str, advertise: &str, dir: PathBuf) -> Self {
        RaftOrderConfig {
            node_id,
            cluster: cluster.to_string(),
            advertise: advertise.to_string(),
            dir,
            initial_members: BTreeMap::new(),
            join: Vec::new(),
            sync: SyncMode::Always,
            heartbeat: Duration::from_millis(100),
            election_timeout: (Duration::from_millis(600), Duration::from_millis(1200)),
            primary_lease: Duration::from_millis(1000),
            log_retention: 100_000,
            log_retention_bytes: 1 << 30,
            max_delivery_lag: 8192,
            log_cache_bytes: 64 << 20,
            max_entry_bytes: 64 << 20,
            submit_timeout: Duration::from_secs(10),
            forward_batch: 256,
            fc_limit: 1024,
            security: None,
            shared_settings: BTreeMap::new(),
            protocol: Protocol::CURRENT,
        }
    }

    /// The settings peers must share: [`Self::shared_settings`] and this
    /// layer's own.
    pub(super) fn settings(&self) -> BTreeMap<String, String> {
        let mut settings = self.shared_settings.clone();
        settings.insert("max_entry_bytes".into(), self.max_entry_bytes.to_string());
        settings
    }

    /// The first setting that cannot work, named, with what is wrong.
    ///
    /// # Errors
    /// `(setting, problem)`.
    pub fn check(&self) -> Result<(), (&'static str, &'static str)> {
        let positive = [
            ("heartbeat", self.heartbeat.is_zero()),
            ("submit_timeout", self.submit_timeout.is_zero()),
            ("log_retention", self.log_retention == 0),
            ("log_retention_bytes", self.log_retention_bytes == 0),
            ("max_delivery_lag", self.max_delivery_lag == 0),
            ("max_entry_bytes", self.max_entry_bytes == 0),
            ("forward_batch", self.forward_batch == 0),
            ("fc_limit", self.fc_limit == 0),
        ];
        if let Some((setting, _)) = positive.iter().find(|(_, zero)| *zero) {
            return Err((setting, "must be positive"));
        }
        let (min, max) = self.election_timeout;
        if self.node_id.get() == 0 {
            Err(("node_id", "must not be 0"))
        } else if self.initial_members.keys().any(|id| id.get() == 0) {
            Err(("initial_members", "a member id must not be 0"))
        } else if min <= self.heartbeat {
            Err(("election_timeout", "its minimum must exceed the heartbeat"))
        } else if max <= min {
            Err(("election_timeout", "its maximum must exceed its minimum"))
        } else if self.primary_lease <= self.heartbeat {
            Err(("primary_lease", "must exceed the heartbeat"))
        } else if !Protocol::spoken().contains(&self.protocol) {
            Err(("protocol", "is not a version this build speaks"))
        } else {
            Ok(())
        }
    }

    /// openraft's settings, after [`Self::check`].
    pub(super) fn raft_config(&self) -> Result<openraft::Config, StartError> {
        self.check()
            .map_err(|(setting, problem)| StartError::Setting { setting, problem })?;
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let config = openraft::Config {
            cluster_name: self.cluster.clone(),
            heartbeat_interval: ms(self.heartbeat),
            election_timeout_min: ms(self.election_timeout.0),
            election_timeout_max: ms(self.election_timeout.1),
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(
                (self.log_retention / 4).max(1),
            ),
            max_in_snapshot_log_to_keep: self.log_retention,
            enable_pre_vote: Some(true),
            // A restarted leader must not take its leadership back from its
            // stored vote: it does not know how far the log was committed
            // (the committed position is not persisted), so its read index
            // would lag the commits clients were told about, and a causal
            // read right after a whole-cluster restart was stale (found by
            // the simulation, seed 1; see ARCHITECTURE.md). After an
            // election the new leader commits an entry of its own term
            // before it answers a read index.
            enable_leader_restore: Some(false),
            ..Default::default()
        };
        config.validate().map_err(StartError::Config)
    }
}
