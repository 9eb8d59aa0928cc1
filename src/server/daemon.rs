//! [`Daemon`]: one complete node of the reference store, as `certusd` runs
//! it: the ordering layer on its peer port, the store on its engine, the
//! Redis-protocol port and the health check.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::acl::{Acl, AclError};
use super::clients::Clients;
use super::config::{DaemonConfig, DaemonConfigError, EngineKind};
use super::connection::{self, RespSettings};
use super::executor::RedisExecutor;
use super::health;
use super::metrics::Metrics;
use super::params::ServerFacts;
use super::reaper;
use super::resp::Limits;
use super::session::SessionSettings;
use super::supervisor::{EngineOpener, StoreSlot, Supervisor, open_store};
use super::tls::ClientTls;
use crate::Cause;

use crate::ids::NodeId;
use crate::kv::{Engine, Executor, KvError, KvStore, MemoryEngine, RedbEngine};
use crate::net::{BoxListener, Connector, PeerSecurity, PeerTls, Tcp, TlsError};
use crate::order::{Cluster, RaftOrder, StartError, SyncMode};
use crate::transfer::Donor;

/// Why a daemon could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// A setting is unusable.
    #[error("invalid configuration: {0}")]
    Config(#[from] DaemonConfigError),
    /// A port could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The data directory or the engine could not be opened.
    #[error("storage at {path}: {source}")]
    Storage {
        /// The path.
        path: String,
        /// Why.
        #[source]
        source: Cause,
    },
    /// The ordering layer did not start.
    #[error(transparent)]
    Order(#[from] StartError),
    /// The store did not start.
    #[error(transparent)]
    Store(#[from] KvError),
    /// The peer certificates could not be loaded.
    #[error("peer TLS: {0}")]
    Tls(#[from] TlsError),
    /// A client user definition is unusable.
    #[error(transparent)]
    Acl(#[from] AclError),
}

/// A running node with its client and health ports.
pub struct Daemon {
    slot: Arc<StoreSlot>,
    order: Arc<RaftOrder>,
    client_addr: SocketAddr,
    client_tls_addr: Option<SocketAddr>,
    health_addr: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("node", &self.order.config().node_id)
            .field("client_addr", &self.client_addr)
            .field("health_addr", &self.health_addr)
            .finish_non_exhaustive()
    }
}

async fn bind(addr: &str) -> Result<BoxListener, DaemonError> {
    Tcp::bind(addr).await.map_err(|source| DaemonError::Listen {
        addr: addr.to_string(),
        source,
    })
}

fn storage_error(
    path: &std::path::Path,
    source: impl std::error::Error + Send + Sync + 'static,
) -> DaemonError {
    DaemonError::Storage {
        path: path.display().to_string(),
        source: Cause::new(source),
    }
}

/// An opener of the configured engine under the data directory, for
/// [`Daemon::start_with_engine`] callers that wrap the engine (a
/// fault-injecting one, say). The in-memory engine is the same one at every
/// call; a durable one is opened again from disk.
#[must_use]
pub fn engine_opener(config: &DaemonConfig) -> EngineOpener {
    if config.engine == EngineKind::Memory {
        let kept: Arc<dyn Engine> = Arc::new(MemoryEngine::new());
        return Arc::new(move || Ok(kept.clone()));
    }
    let config = config.clone();
    Arc::new(move || open_engine(&config).map_err(Cause::new))
}

/// Opens the configured engine under the data directory, with the opener
/// each in-process restart uses ([`engine_opener`]). A durable engine's
/// first opening reports its own error, naming its file.
fn configured_engine(
    config: &DaemonConfig,
) -> Result<(Arc<dyn Engine>, EngineOpener), DaemonError> {
    let opener = engine_opener(config);
    let engine = match config.engine {
        EngineKind::Memory => opener().map_err(|e| storage_error(&config.data_dir, e))?,
        _ => open_engine(config)?,
    };
    Ok((engine, opener))
}

/// Opens the configured engine under the data directory.
pub(crate) fn open_engine(config: &DaemonConfig) -> Result<Arc<dyn Engine>, DaemonError> {
    match config.engine {
        EngineKind::Memory => Ok(Arc::new(MemoryEngine::new())),
        EngineKind::Redb => {
            let path = config.data_dir.join("data.redb");
            let engine = RedbEngine::open_with_cache(&path, config.redb_cache_bytes)
                .map_err(|e| storage_error(&path, e))?;
            Ok(Arc::new(engine))
        }
        EngineKind::Fjall => {
            let path = config.data_dir.join("data.fjall");
            let engine = crate::kv::FjallEngine::open_with_cache(&path, config.fjall_cache_bytes)
                .map_err(|e| storage_error(&path, e))?;
            Ok(Arc::new(engine))
        }
        #[cfg(feature = "rocksdb")]
        EngineKind::Rocksdb => {
            let path = config.data_dir.join("data");
            let engine =
                crate::kv::RocksEngine::open(&path).map_err(|e| storage_error(&path, e))?;
            Ok(Arc::new(engine))
        }
        #[cfg(not(feature = "rocksdb"))]
        EngineKind::Rocksdb => Err(DaemonConfigError::NoRocksdb.into()),
    }
}

/// Ports already bound, and how peers are reached, for
/// [`Daemon::start_on`].
#[derive(Debug)]
pub struct Listeners {
    /// The peer (replication) port.
    pub peer: BoxListener,
    /// The Redis-protocol port.
    pub client: BoxListener,
    /// The health-check port.
    pub health: Option<BoxListener>,
    /// The Redis-protocol port that speaks TLS (`tls_listen`).
    pub client_tls: Option<BoxListener>,
    /// Opens connections to the other nodes.
    pub connector: Arc<dyn Connector>,
}

impl Listeners {
    /// Binds the addresses `config` names.
    ///
    /// # Errors
    /// [`DaemonError::Listen`].
    pub async fn bind(config: &DaemonConfig) -> Result<Listeners, DaemonError> {
        Ok(Listeners {
            peer: bind(&config.peer_listen).await?,
            client: bind(&config.client_listen).await?,
            health: match &config.health_listen {
                Some(addr) => Some(bind(addr).await?),
                None => None,
            },
            client_tls: match &config.tls_listen {
                Some(addr) => Some(bind(addr).await?),
                None => None,
            },
            connector: Tcp::connector(),
        })
    }
}

/// The TLS client port and its acceptor, when one is configured; both
/// halves (the bound port, the settings) must be there or neither.
fn client_tls_port(
    listener: Option<BoxListener>,
    config: &DaemonConfig,
) -> Result<Option<(BoxListener, Arc<ClientTls>)>, DaemonError> {
    let reason = match (listener, config.client_tls()?) {
        (Some(listener), Some(files)) => {
            let tls = ClientTls::from_files(files.cert, files.key, files.ca, files.auth)?;
            return Ok(Some((listener, Arc::new(tls))));
        }
        (None, None) => return Ok(None),
        (Some(_), None) => "a TLS client port was given but tls_listen is not set",
        (None, Some(_)) => "tls_listen is set but no TLS client port was given",
    };
    Err(DaemonConfigError::ClientTls(reason).into())
}

/// The client-facing ports a node serves.
struct Ports {
    client: BoxListener,
    client_tls: Option<(BoxListener, Arc<ClientTls>)>,
    health: Option<BoxListener>,
}

/// Where the ports ended up.
struct Addrs {
    client: SocketAddr,
    client_tls: Option<SocketAddr>,
    health: Option<SocketAddr>,
}

/// What the node runs above the ordering layer.
struct Services<'a> {
    config: &'a DaemonConfig,
    order: &'a Arc<RaftOrder>,
    slot: &'a Arc<StoreSlot>,
    engine: Arc<dyn Engine>,
    open_engine: EngineOpener,
    executor: Arc<dyn Executor>,
    /// The same executor, for the state it shares with the sessions.
    redis: Arc<RedisExecutor>,
    acl: Arc<Acl>,
    stop: watch::Receiver<bool>,
}

impl Services<'_> {
    /// Starts the client ports, the supervisor, the reaper and the health
    /// check.
    fn spawn(self, ports: Ports) -> Result<(Addrs, Vec<JoinHandle<()>>), DaemonError> {
        let config = self.config;
        let cluster: Arc<dyn Cluster> = self.order.clone();
        let addrs = Addrs {
            client: local_addr(&ports.client, &config.client_listen)?,
            client_tls: match &ports.client_tls {
                Some((listener, _)) => Some(local_addr(listener, "tls")?),
                None => None,
            },
            health: match &ports.health {
                Some(listener) => Some(local_addr(listener, "health")?),
                None => None,
            },
        };
        let facts = facts(config, addrs.client, self.order.config().sync);
        let expired_keys = self.redis.expired_keys.clone();
        let settings = resp_settings(config, cluster.clone(), facts, &self.redis, self.acl);
        let metrics = Arc::new(Metrics::new(
            self.slot.subscribe(),
            self.order.clone(),
            settings.session.clients.clone(),
            expired_keys,
        ));
        let settings = Arc::new(settings);
        let stop = self.stop;
        let accept = |listener, tls| {
            let subscribe = self.slot.subscribe();
            connection::accept_loop(listener, subscribe, settings.clone(), stop.clone(), tls)
        };
        let mut tasks = vec![tokio::spawn(accept(ports.client, None))];
        if let Some((listener, tls)) = ports.client_tls {
            tasks.push(tokio::spawn(accept(listener, Some(tls))));
        }
        let supervisor = Supervisor {
            slot: self.slot.clone(),
            config: config.store_config(),
            engine: Some(self.engine),
            open_engine: self.open_engine,
            order: cluster.clone(),
            executor: self.executor,
            shutdown: stop.clone(),
        };
        tasks.push(tokio::spawn(supervisor.run()));
        let reaper = reaper::run(config.id(), self.slot.subscribe(), cluster, stop.clone());
        tasks.push(tokio::spawn(reaper));
        if let Some(listener) = ports.health {
            let stores = self.slot.subscribe();
            let health = health::accept_loop(listener, stores, metrics, stop);
            tasks.push(tokio::spawn(health));
        }
        Ok((addrs, tasks))
    }
}

/// How the node's peer links are secured, with its certificates loaded.
fn peer_security(config: &DaemonConfig) -> Result<PeerSecurity, DaemonError> {
    let Some([ca, cert, key]) = config.peer_files()? else {
        return Ok(PeerSecurity::Insecure);
    };
    let mut tls = PeerTls::from_files(ca, cert, key)?;
    if let Some(allowed) = &config.allowed_peers {
        tls = tls.allow_only(allowed.iter().copied().map(NodeId::new));
    }
    Ok(PeerSecurity::Tls(Arc::new(tls)))
}

impl Daemon {
    /// Binds the ports, opens the log and the engine, joins the cluster and
    /// starts serving clients. A node whose gap is gone from every log
    /// starts without a store ([`Daemon::store`] is `None`, clients get
    /// `-LOADING`) and receives a full state transfer as soon as a donor can
    /// give one.
    ///
    /// # Errors
    /// [`DaemonError`] naming what could not start.
    pub async fn start(config: DaemonConfig) -> Result<Daemon, DaemonError> {
        let listeners = Listeners::bind(&config).await?;
        Daemon::start_on(config, listeners).await
    }

    /// As [`Daemon::start`], on ports the caller bound (the `*_listen`
    /// addresses of `config` are then not used).
    ///
    /// # Errors
    /// [`DaemonError`] naming what could not start.
    pub async fn start_on(
        config: DaemonConfig,
        listeners: Listeners,
    ) -> Result<Daemon, DaemonError> {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| storage_error(&config.data_dir, e))?;
        let engine = configured_engine(&config)?;
        Daemon::start_engine(config, listeners, engine).await
    }

    /// As [`Daemon::start_on`], on the engine `open` opens (the `engine`
    /// setting is then not used): at start, and again each time the node
    /// restarts in-process after its engine failed. Tests give an engine
    /// that fails on command ([`crate::kv::FaultyEngine`]).
    ///
    /// # Errors
    /// [`DaemonError`] naming what could not start.
    pub async fn start_with_engine(
        config: DaemonConfig,
        listeners: Listeners,
        open: EngineOpener,
    ) -> Result<Daemon, DaemonError> {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| storage_error(&config.data_dir, e))?;
        let engine = open().map_err(|source| DaemonError::Storage {
            path: config.data_dir.display().to_string(),
            source,
        })?;
        Daemon::start_engine(config, listeners, (engine, open)).await
    }

    async fn start_engine(
        config: DaemonConfig,
        listeners: Listeners,
        (engine, open_engine): (Arc<dyn Engine>, EngineOpener),
    ) -> Result<Daemon, DaemonError> {
        let Listeners {
            peer: peer_listener,
            client,
            health,
            client_tls,
            connector,
        } = listeners;
        let peer_addr = local_addr(&peer_listener, &config.peer_listen)?;
        let mut order_config = config.order_config(&peer_addr.to_string())?;
        order_config.security = Some(peer_security(&config)?);
        let acl = Acl::from_config(config.requirepass.as_deref(), &config.users)?;
        let client_tls = client_tls_port(client_tls, &config)?;
        let order = Arc::new(RaftOrder::start(order_config, peer_listener, connector).await?);
        // Everything above the ordering layer sees only its traits.
        let cluster: Arc<dyn Cluster> = order.clone();
        let slot = Arc::new(watch::channel(None).0);
        cluster.set_peer_service(Donor::start(slot.subscribe()));
        // A store whose gap left every log starts empty: the supervisor
        // fills it by state transfer while the ports answer LOADING.
        let redis = Arc::new(RedisExecutor::default());
        let executor: Arc<dyn Executor> = redis.clone();
        let store = match open_store(&config.store_config(), &engine, &cluster, &executor).await {
            Ok(store) => store,
            Err(err) => {
                order.shutdown().await;
                return Err(err.into());
            }
        };
        slot.send_replace(store);
        let (shutdown, stop) = watch::channel(false);
        let ports = Ports {
            client,
            client_tls,
            health,
        };
        let services = Services {
            config: &config,
            order: &order,
            slot: &slot,
            engine,
            open_engine,
            executor,
            redis,
            acl: Arc::new(acl),
            stop,
        };
        let (addrs, tasks) = services.spawn(ports)?;
        tracing::info!(node = config.node_id, client_addr = %addrs.client, tls_addr = ?addrs.client_tls, health_addr = ?addrs.health, %peer_addr, "certusd serving");
        Ok(Daemon {
            slot,
            order,
            client_addr: addrs.client,
            client_tls_addr: addrs.client_tls,
            health_addr: addrs.health,
            shutdown,
            tasks: Mutex::new(tasks),
        })
    }

    /// The Redis-protocol address.
    #[must_use]
    pub fn client_addr(&self) -> SocketAddr {
        self.client_addr
    }

    /// The Redis-protocol address that speaks TLS, if the node has one.
    #[must_use]
    pub fn client_tls_addr(&self) -> Option<SocketAddr> {
        self.client_tls_addr
    }

    /// The health-check address, when configured.
    #[must_use]
    pub fn health_addr(&self) -> Option<SocketAddr> {
        self.health_addr
    }

    /// The peer address the ordering layer listens on.
    #[must_use]
    pub fn peer_addr(&self) -> SocketAddr {
        self.order.local_addr()
    }

    /// The store this daemon serves; `None` while a full state transfer
    /// replaces it.
    #[must_use]
    pub fn store(&self) -> Option<KvStore> {
        self.slot.borrow().clone()
    }

    /// A receiver that sees the store replaced.
    #[must_use]
    pub fn watch_store(&self) -> watch::Receiver<Option<KvStore>> {
        self.slot.subscribe()
    }

    /// The ordering layer (membership, leave).
    #[must_use]
    pub fn order(&self) -> &Arc<RaftOrder> {
        &self.order
    }

    /// Waits until this node cannot go on in this process (its ordering
    /// core stopped: raft's fatal error, a failed write or fsync of its
    /// log) and returns why; meanwhile it answers as failed. `certusd`
    /// then shuts down and exits non-zero, so that its service manager
    /// restarts it from what is durable. Pending while the node runs.
    pub async fn failed(&self) -> Cause {
        self.order.failed().await
    }

    /// Stops serving clients, then stops the store and the ordering layer
    /// (the log is closed cleanly).
    pub async fn shutdown(&self) {
        let _ = self.shutdown.send(true);
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(PoisonError::into_inner));
        for task in tasks {
            crate::task::join(task).await;
        }
        if let Some(store) = self.slot.send_replace(None) {
            store.shutdown().await;
        }
        self.order.shutdown().await;
    }
}

fn local_addr(listener: &BoxListener, what: &str) -> Result<SocketAddr, DaemonError> {
    listener.local_addr().map_err(|source| DaemonError::Listen {
        addr: what.to_string(),
        source,
    })
}

/// What `CONFIG GET` and `INFO` report about this node.
fn facts(config: &DaemonConfig, client_addr: SocketAddr, sync: SyncMode) -> ServerFacts {
    ServerFacts {
        bind: client_addr.ip().to_string(),
        port: client_addr.port(),
        dir: config.data_dir.display().to_string(),
        max_clients: config.max_clients,
        fsync_always: sync == SyncMode::Always,
        max_bulk: Limits::default().max_bulk,
    }
}

fn resp_settings(
    config: &DaemonConfig,
    order: Arc<dyn Cluster>,
    facts: ServerFacts,
    redis: &RedisExecutor,
    acl: Arc<Acl>,
) -> RespSettings {
    let limits = Limits::default();
    // An operation's payload must fit a write-set; keep every batch of
    // commands well inside it.
    let max_write_set = config.store_config().node.max_write_set_bytes;
    RespSettings {
        limits,
        max_request_bytes: limits.max_bulk + (1 << 20),
        slots: Arc::new(tokio::sync::Semaphore::new(config.max_clients)),
        max_pubsub_bytes: 32 << 20,
        session: Arc::new(SessionSettings {
            isolation: config.isolation(),
            max_attempts: 100,
            max_queued: 100_000,
            max_queued_bytes: max_write_set / 2,
            max_run: 1024,
            max_run_bytes: (max_write_set / 4).min(4 << 20),
            order: Some(order),
            clients: Clients::new(),
            facts,
            expired_keys: redis.expired_keys.clone(),
            waiters: redis.waiters.clone(),
            channels: redis.channels.clone(),
            scripts: redis.scripts.clone(),
            started: std::time::Instant::now(),
            acl,
            max_output_bytes: config.client_output_limit_bytes,
        }),
    }
}
