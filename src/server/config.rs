//! [`DaemonConfig`]: everything one `certusd` node needs, as read from its
//! TOML file (every field name below is a key of that file).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::certify::CertConfig;
use crate::ids::NodeId;
use crate::kv::StoreConfig;
use crate::order::{RaftOrderConfig, SyncMode};
use crate::writeset::Isolation;

use super::tls::TlsAuthClients;

/// Where a node keeps its data.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum EngineKind {
    /// RocksDB (needs the `rocksdb` cargo feature).
    Rocksdb,
    /// redb: durable, pure Rust, a copy-on-write B-tree in one file.
    Redb,
    /// fjall: durable, pure Rust, a log-structured merge tree.
    Fjall,
    /// Memory only: everything is lost when the process stops. For tests.
    Memory,
}

impl Default for EngineKind {
    /// fjall: the fastest engine that builds with the Rust toolchain alone
    /// (docs/performance.md measures the three), whatever the build's
    /// features. RocksDB, a little faster still, is chosen explicitly.
    fn default() -> Self {
        EngineKind::Fjall
    }
}

/// When the ordering log is forced to disk.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum SyncSetting {
    /// fsync before a commit is acknowledged.
    #[default]
    Always,
    /// fsync every `sync_interval_ms`.
    Batch,
}

/// Isolation of client transactions.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum IsolationSetting {
    /// Snapshot isolation, first committer wins.
    #[default]
    Snapshot,
    /// Serializable: reads are certified too.
    Serializable,
}

/// One node's settings. Durations are in milliseconds.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct DaemonConfig {
    /// This node's id, unique in the cluster and never reused.
    pub node_id: u64,
    /// The cluster's name; nodes of other clusters are refused.
    #[serde(default = "default_cluster")]
    pub cluster: String,
    /// Where the log and the data live.
    pub data_dir: PathBuf,
    /// Address the peer (replication) port binds.
    pub peer_listen: String,
    /// Address peers reach this node at, when not `peer_listen`.
    #[serde(default)]
    pub peer_advertise: Option<String>,
    /// Address the Redis-protocol port binds.
    pub client_listen: String,
    /// Address the HTTP health check binds, if any.
    #[serde(default)]
    pub health_listen: Option<String>,
    /// The members a new cluster starts with: node id (as a string, TOML
    /// keys are strings) to peer address. Empty for a node that joins.
    #[serde(default)]
    pub initial_members: BTreeMap<String, String>,
    /// Peer addresses of members of a running cluster, for a new node that
    /// joins it (as a learner, promoted to voter once caught up).
    #[serde(default)]
    pub join: Vec<String>,
    /// Storage engine.
    #[serde(default)]
    pub engine: EngineKind,
    /// The redb engine's page cache, in bytes (most of a node's memory once
    /// its data outgrows it).
    #[serde(default = "default_redb_cache")]
    pub redb_cache_bytes: usize,
    /// The fjall engine's block cache, in bytes.
    #[serde(default = "default_fjall_cache")]
    pub fjall_cache_bytes: u64,
    /// When the log is fsynced.
    #[serde(default)]
    pub sync: SyncSetting,
    /// fsync period for `sync = "batch"`.
    #[serde(default = "default_sync_interval")]
    pub sync_interval_ms: u64,
    /// Isolation of transactions without `WATCH`.
    #[serde(default)]
    pub isolation: IsolationSetting,
    /// Whether transactions first wait for every commit made anywhere.
    #[serde(default = "default_true")]
    pub causal_reads: bool,
    /// Client connections at most.
    #[serde(default = "default_max_clients")]
    pub max_clients: usize,
    /// Leader heartbeat period.
    #[serde(default = "default_heartbeat")]
    pub heartbeat_ms: u64,
    /// Election timeout range.
    #[serde(default = "default_election")]
    pub election_timeout_ms: [u64; 2],
    /// Quorum silence after which the node leaves the primary component.
    #[serde(default = "default_lease")]
    pub primary_lease_ms: u64,
    /// How long a commit may take before its outcome is declared unknown.
    #[serde(default = "default_wait")]
    pub commit_timeout_ms: u64,
    /// Log entries kept for incremental state transfer.
    #[serde(default = "default_retention")]
    pub log_retention: u64,
    /// Bytes of log kept at most for incremental state transfer (Galera's
    /// `gcache.size`), whatever `log_retention` allows.
    #[serde(default = "default_retention_bytes")]
    pub log_retention_bytes: u64,
    /// Bytes of the newest log entries kept in memory; older ones are read
    /// from disk when a lagging node needs them.
    #[serde(default = "default_log_cache")]
    pub log_cache_bytes: usize,
    /// Reply bytes one client may have gathered at once; a client whose
    /// replies pass it is closed (Redis's `client-output-buffer-limit`).
    #[serde(default = "default_output_limit")]
    pub client_output_limit_bytes: usize,
    /// Apply lag (positions) at which this node asks the cluster to pause
    /// (Galera's `gcs.fc_limit`).
    #[serde(default = "default_fc_limit")]
    pub fc_limit: u64,
    /// Bytes the certification index and duplicate table may hold
    /// together; past it the oldest history is forgotten (older read views
    /// abort as too old). Cluster-wide and fixed for the cluster's life.
    #[serde(default = "default_certification_index")]
    pub certification_index_bytes: u64,
    /// The cluster CA's certificate (PEM): peers must present a certificate
    /// it signed. With `peer_cert` and `peer_key`, required unless
    /// `insecure_peers`. Make all three with `certusd certs`.
    #[serde(default)]
    pub peer_ca: Option<PathBuf>,
    /// This node's certificate (PEM), naming `node-<node_id>`.
    #[serde(default)]
    pub peer_cert: Option<PathBuf>,
    /// This node's private key (PEM).
    #[serde(default)]
    pub peer_key: Option<PathBuf>,
    /// Only these node ids may be peers, even with a valid certificate.
    #[serde(default)]
    pub allowed_peers: Option<Vec<u64>>,
    /// Plaintext, unauthenticated peer links: anyone who reaches the peer
    /// port can act as any node. Only for a network nothing else reaches.
    #[serde(default)]
    pub insecure_peers: bool,
    /// The default user's password (Redis's `requirepass`): clients must
    /// `AUTH` before anything else.
    #[serde(default)]
    pub requirepass: Option<String>,
    /// Client users in Redis's ACL file syntax, one per entry:
    /// `"user <name> on #<sha256 hex> ~* &* +@all -@dangerous"`.
    #[serde(default)]
    pub users: Vec<String>,
    /// Address of a client port that speaks TLS (Redis's `tls-port`);
    /// needs `tls_cert` and `tls_key`.
    #[serde(default)]
    pub tls_listen: Option<String>,
    /// The certificate the TLS client port presents (PEM).
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// The CA that signs clients' certificates (PEM).
    #[serde(default)]
    pub tls_ca: Option<PathBuf>,
    /// Whether clients must present a certificate: `yes` (the default
    /// when `tls_ca` is set), `optional` or `no`.
    #[serde(default)]
    pub tls_auth_clients: Option<TlsAuthClients>,
    /// The protocol version this node speaks: the simulated next version
    /// (`4`) for testing rolling upgrades. Only with the feature
    /// `next-version`.
    #[cfg(feature = "next-version")]
    #[serde(default)]
    pub protocol: Option<u16>,
}

fn default_redb_cache() -> usize {
    crate::kv::RedbEngine::DEFAULT_CACHE_BYTES
}
fn default_fjall_cache() -> u64 {
    crate::kv::FjallEngine::DEFAULT_CACHE_BYTES
}
fn default_retention_bytes() -> u64 {
    1 << 30
}
fn default_cluster() -> String {
    "certus".to_string()
}
fn default_sync_interval() -> u64 {
    10
}
fn default_true() -> bool {
    true
}
fn default_max_clients() -> usize {
    10_000
}
fn default_heartbeat() -> u64 {
    100
}
fn default_election() -> [u64; 2] {
    [600, 1200]
}
fn default_lease() -> u64 {
    1000
}
fn default_wait() -> u64 {
    30_000
}
fn default_retention() -> u64 {
    100_000
}
fn default_output_limit() -> usize {
    256 << 20
}
fn default_log_cache() -> usize {
    64 << 20
}
fn default_certification_index() -> u64 {
    CertConfig::default().index_bytes
}
fn default_fc_limit() -> u64 {
    1024
}

impl DaemonConfig {
    /// Settings for node `node_id` with every default, for programs that
    /// build a configuration in code.
    #[must_use]
    pub fn new(node_id: u64, data_dir: PathBuf, peer_listen: &str, client_listen: &str) -> Self {
        DaemonConfig {
            node_id,
            cluster: default_cluster(),
            data_dir,
            peer_listen: peer_listen.to_string(),
            peer_advertise: None,
            client_listen: client_listen.to_string(),
            health_listen: None,
            initial_members: BTreeMap::new(),
            join: Vec::new(),
            engine: EngineKind::default(),
            redb_cache_bytes: default_redb_cache(),
            fjall_cache_bytes: default_fjall_cache(),
            sync: SyncSetting::default(),
            sync_interval_ms: default_sync_interval(),
            isolation: IsolationSetting::default(),
            causal_reads: true,
            max_clients: default_max_clients(),
            heartbeat_ms: default_heartbeat(),
            election_timeout_ms: default_election(),
            primary_lease_ms: default_lease(),
            commit_timeout_ms: default_wait(),
            log_retention: default_retention(),
            log_retention_bytes: default_retention_bytes(),
            log_cache_bytes: default_log_cache(),
            client_output_limit_bytes: default_output_limit(),
            fc_limit: default_fc_limit(),
            certification_index_bytes: default_certification_index(),
            peer_ca: None,
            peer_cert: None,
            peer_key: None,
            allowed_peers: None,
            insecure_peers: false,
            requirepass: None,
            users: Vec::new(),
            tls_listen: None,
            tls_cert: None,
            tls_key: None,
            tls_ca: None,
            tls_auth_clients: None,
            #[cfg(feature = "next-version")]
            protocol: None,
        }
    }

    /// The TLS client port's files and client-certificate rule, when a
    /// TLS client port is configured.
    ///
    /// # Errors
    /// [`DaemonConfigError::ClientTls`] when the settings do not fit.
    pub fn client_tls(&self) -> Result<Option<ClientTlsFiles<'_>>, DaemonConfigError> {
        let bad = |reason| Err(DaemonConfigError::ClientTls(reason));
        let Some(_) = &self.tls_listen else {
            return Ok(None);
        };
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else {
            return bad("tls_listen needs tls_cert and tls_key");
        };
        let default = if self.tls_ca.is_some() {
            TlsAuthClients::Yes
        } else {
            TlsAuthClients::No
        };
        let auth = self.tls_auth_clients.unwrap_or(default);
        if auth != TlsAuthClients::No && self.tls_ca.is_none() {
            return bad("tls_auth_clients = \"yes\" or \"optional\" needs tls_ca");
        }
        Ok(Some(ClientTlsFiles {
            cert,
            key,
            ca: self.tls_ca.as_deref(),
            auth,
        }))
    }

    /// The certificate files, when all three are set.
    ///
    /// # Errors
    /// [`DaemonConfigError`] when only some are set, when none is and
    /// `insecure_peers` is off, or when both are chosen.
    pub fn peer_files(&self) -> Result<Option<[&PathBuf; 3]>, DaemonConfigError> {
        let files = [&self.peer_ca, &self.peer_cert, &self.peer_key];
        match (files, self.insecure_peers) {
            ([Some(ca), Some(cert), Some(key)], false) => Ok(Some([ca, cert, key])),
            ([None, None, None], true) => Ok(None),
            ([None, None, None], false) => Err(DaemonConfigError::NoPeerSecurity),
            (_, true) => Err(DaemonConfigError::PeerSecurityConflict),
            _ => Err(DaemonConfigError::PartialPeerTls),
        }
    }

    /// This node's id.
    #[must_use]
    pub fn id(&self) -> NodeId {
        NodeId::new(self.node_id)
    }

    /// The ordering layer's settings; `advertise` is the bound peer address
    /// when no `peer_advertise` is set.
    ///
    /// # Errors
    /// [`DaemonConfigError`] naming the bad setting.
    pub fn order_config(&self, bound_peer: &str) -> Result<RaftOrderConfig, DaemonConfigError> {
        if self.node_id == 0 {
            return Err(DaemonConfigError::NodeIdZero);
        }
        let advertise = self.peer_advertise.as_deref().unwrap_or(bound_peer);
        let mut config = RaftOrderConfig::new(
            self.id(),
            &self.cluster,
            advertise,
            self.data_dir.join("log"),
        );
        for (id, addr) in &self.initial_members {
            let id: u64 = id
                .parse()
                .map_err(|_| DaemonConfigError::BadMemberId { id: id.clone() })?;
            config.initial_members.insert(NodeId::new(id), addr.clone());
        }
        if !config.initial_members.is_empty() && !config.initial_members.contains_key(&self.id()) {
            return Err(DaemonConfigError::MissingSelf {
                node_id: self.node_id,
            });
        }
        config.join = self.join.clone();
        config.sync = match self.sync {
            SyncSetting::Always => SyncMode::Always,
            SyncSetting::Batch => SyncMode::Batch {
                interval: Duration::from_millis(self.sync_interval_ms.max(1)),
            },
        };
        let [min, max] = self.election_timeout_ms;
        config.heartbeat = Duration::from_millis(self.heartbeat_ms);
        config.election_timeout = (Duration::from_millis(min), Duration::from_millis(max));
        config.primary_lease = Duration::from_millis(self.primary_lease_ms);
        config.submit_timeout = Duration::from_millis(self.commit_timeout_ms);
        config.log_retention = self.log_retention;
        config.log_retention_bytes = self.log_retention_bytes;
        config.log_cache_bytes = self.log_cache_bytes;
        config.fc_limit = self.fc_limit;
        #[cfg(feature = "next-version")]
        if let Some(protocol) = self.protocol {
            config.protocol = crate::protocol::Protocol::new(protocol);
        }
        config
            .check()
            .map_err(|(setting, problem)| DaemonConfigError::Invalid {
                key: file_key(setting),
                problem,
            })?;
        self.check_sizes()?;
        config.shared_settings.extend(self.shared_settings());
        Ok(config)
    }

    /// Refuses a size of zero, naming its key.
    fn check_sizes(&self) -> Result<(), DaemonConfigError> {
        let sizes = [
            (
                "client_output_limit_bytes",
                self.client_output_limit_bytes as u64,
            ),
            ("redb_cache_bytes", self.redb_cache_bytes as u64),
            ("fjall_cache_bytes", self.fjall_cache_bytes),
            ("max_clients", self.max_clients as u64),
            ("certification_index_bytes", self.certification_index_bytes),
        ];
        match sizes.iter().find(|(_, value)| *value == 0) {
            Some(&(key, _)) => Err(DaemonConfigError::Invalid {
                key,
                problem: "must be positive",
            }),
            None => Ok(()),
        }
    }

    /// The settings that take part in every verdict, which peers must
    /// share.
    fn shared_settings(&self) -> [(String, String); 4] {
        let node = self.store_config().node;
        [
            ("isolation", format!("{:?}", self.isolation())),
            ("certification_window", node.cert.window.to_string()),
            (
                "certification_index_bytes",
                node.cert.index_bytes.to_string(),
            ),
            ("max_write_set_bytes", node.max_write_set_bytes.to_string()),
        ]
        .map(|(key, value)| (key.to_string(), value))
    }

    /// The store's settings.
    #[must_use]
    pub fn store_config(&self) -> StoreConfig {
        let mut config = StoreConfig::new(self.id());
        config.node.causal_reads = self.causal_reads;
        config.node.cert.index_bytes = self.certification_index_bytes;
        config.node.wait_timeout = Duration::from_millis(self.commit_timeout_ms);
        config
    }

    /// Isolation of transactions without `WATCH`.
    #[must_use]
    pub fn isolation(&self) -> Isolation {
        match self.isolation {
            IsolationSetting::Snapshot => Isolation::Snapshot,
            IsolationSetting::Serializable => Isolation::Serializable,
        }
    }
}

/// The configuration file's key for the ordering layer's `setting`.
fn file_key(setting: &'static str) -> &'static str {
    match setting {
        "heartbeat" => "heartbeat_ms",
        "election_timeout" => "election_timeout_ms",
        "primary_lease" => "primary_lease_ms",
        "submit_timeout" => "commit_timeout_ms",
        other => other,
    }
}

/// The TLS client port's settings, checked ([`DaemonConfig::client_tls`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientTlsFiles<'a> {
    /// The certificate the port presents.
    pub cert: &'a std::path::Path,
    /// Its key.
    pub key: &'a std::path::Path,
    /// The CA of clients' certificates.
    pub ca: Option<&'a std::path::Path>,
    /// Whether clients must present one.
    pub auth: TlsAuthClients,
}

/// A daemon setting that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonConfigError {
    /// `node_id = 0`.
    #[error("node_id must be positive")]
    NodeIdZero,
    /// A key of `initial_members` is not a number.
    #[error("initial_members: {id:?} is not a node id")]
    BadMemberId {
        /// The key.
        id: String,
    },
    /// `initial_members` leaves this node out.
    #[error("initial_members must include this node ({node_id})")]
    MissingSelf {
        /// This node.
        node_id: u64,
    },
    /// Neither certificates nor `insecure_peers`.
    #[error(
        "peer links need peer_ca, peer_cert and peer_key (make them with `certusd certs`), or insecure_peers = true on a network nothing else can reach"
    )]
    NoPeerSecurity,
    /// Only some of the certificate files.
    #[error("peer_ca, peer_cert and peer_key must be set together")]
    PartialPeerTls,
    /// Certificates and `insecure_peers` both.
    #[error("insecure_peers = true cannot be combined with peer_ca, peer_cert or peer_key")]
    PeerSecurityConflict,
    /// A setting's value cannot work.
    #[error("{key}: {problem}")]
    Invalid {
        /// The key in the configuration file.
        key: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The TLS client port's settings do not fit together.
    #[error("client TLS: {0}")]
    ClientTls(&'static str),
    /// `engine = "rocksdb"` in a build without it.
    #[error(
        "engine = \"rocksdb\" needs a build with the rocksdb feature; use \"fjall\" or \"redb\""
    )]
    NoRocksdb,
}

#[cfg(all(test, feature = "cli"))]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_file_parses_to_the_defaults_it_claims() {
        let text = include_str!("../../examples/certusd.toml");
        let config: DaemonConfig = toml::from_str(text).unwrap();
        let mut expected = DaemonConfig::new(
            1,
            PathBuf::from("/var/lib/certus"),
            "10.0.0.1:7001",
            "10.0.0.1:6379",
        );
        expected.health_listen = Some("10.0.0.1:9200".into());
        expected.engine = EngineKind::Fjall;
        expected.peer_ca = Some("/etc/certus/ca.pem".into());
        expected.peer_cert = Some("/etc/certus/node-1.pem".into());
        expected.peer_key = Some("/etc/certus/node-1.key".into());
        for id in 1..=3 {
            let addr = format!("10.0.0.{id}:7001");
            expected.initial_members.insert(id.to_string(), addr);
        }
        assert_eq!(config, expected);
        let order = config.order_config("10.0.0.1:7001").unwrap();
        assert_eq!(order.initial_members.len(), 3);
        assert_eq!(order.sync, SyncMode::Always);
    }

    #[test]
    fn bad_settings_are_named() {
        let mut config = DaemonConfig::new(2, PathBuf::from("d"), "a:1", "a:2");
        config.initial_members.insert("x".into(), "a:1".into());
        let err = config.order_config("a:1").unwrap_err();
        assert_eq!(err, DaemonConfigError::BadMemberId { id: "x".into() });
        assert!(err.to_string().contains("\"x\" is not a node id"), "{err}");
        config.initial_members.clear();
        config.initial_members.insert("1".into(), "a:1".into());
        let err = config.order_config("a:1").unwrap_err();
        assert_eq!(err, DaemonConfigError::MissingSelf { node_id: 2 });
        let unknown = toml::from_str::<DaemonConfig>("node_id = 1\nnode = 2");
        assert!(unknown.unwrap_err().to_string().contains("unknown field"));
    }

    #[test]
    fn nonsense_timeouts_and_ids_are_refused_by_their_key() {
        let base = || {
            let mut config = DaemonConfig::new(1, PathBuf::from("d"), "a:1", "a:2");
            config.initial_members.insert("1".into(), "a:1".into());
            config
        };
        assert!(base().order_config("a:1").is_ok());
        type Tweak = fn(&mut DaemonConfig);
        let cases: [(Tweak, &str); 10] = [
            (|c| c.heartbeat_ms = 0, "heartbeat_ms: must be positive"),
            (
                |c| c.certification_index_bytes = 0,
                "certification_index_bytes: must be positive",
            ),
            (
                |c| c.redb_cache_bytes = 0,
                "redb_cache_bytes: must be positive",
            ),
            (
                |c| c.log_retention_bytes = 0,
                "log_retention_bytes: must be positive",
            ),
            (
                |c| c.election_timeout_ms = [800, 600],
                "election_timeout_ms: its maximum must exceed its minimum",
            ),
            (
                |c| c.election_timeout_ms = [50, 1200],
                "election_timeout_ms: its minimum must exceed the heartbeat",
            ),
            (
                |c| c.primary_lease_ms = 100,
                "primary_lease_ms: must exceed the heartbeat",
            ),
            (
                |c| c.commit_timeout_ms = 0,
                "commit_timeout_ms: must be positive",
            ),
            (|c| c.fc_limit = 0, "fc_limit: must be positive"),
            (
                |c| {
                    c.initial_members.insert("0".into(), "a:3".into());
                },
                "initial_members: a member id must not be 0",
            ),
        ];
        for (tweak, expected) in cases {
            let mut config = base();
            tweak(&mut config);
            let err = config.order_config("a:1").expect_err(expected);
            assert_eq!(err.to_string(), expected);
        }
    }

    #[test]
    fn peer_links_are_secured_or_declared_insecure_never_by_omission() {
        let mut config = DaemonConfig::new(1, PathBuf::from("d"), "a:1", "a:2");
        assert_eq!(config.peer_files(), Err(DaemonConfigError::NoPeerSecurity));
        let err = DaemonConfigError::NoPeerSecurity.to_string();
        assert!(
            err.contains("certusd certs") && err.contains("insecure_peers"),
            "{err}"
        );
        config.peer_ca = Some("ca.pem".into());
        assert_eq!(config.peer_files(), Err(DaemonConfigError::PartialPeerTls));
        config.peer_cert = Some("n.pem".into());
        config.peer_key = Some("n.key".into());
        assert!(matches!(config.peer_files(), Ok(Some(_))));
        config.insecure_peers = true;
        assert_eq!(
            config.peer_files(),
            Err(DaemonConfigError::PeerSecurityConflict)
        );
        let insecure = DaemonConfig {
            peer_ca: None,
            peer_cert: None,
            peer_key: None,
            ..config
        };
        assert_eq!(insecure.peer_files(), Ok(None));
        let order = insecure.order_config("a:1").unwrap();
        assert_eq!(order.shared_settings["isolation"], "Snapshot");
        assert_eq!(
            order.shared_settings["certification_index_bytes"],
            (256u64 << 20).to_string()
        );
        let bounded = DaemonConfig {
            certification_index_bytes: 1 << 20,
            ..insecure
        };
        assert_eq!(bounded.store_config().node.cert.index_bytes, 1 << 20);
    }
}
