//! [`Daemon`]: one complete node of the reference store, as `certusd` runs
//! it: the ordering layer on its peer port, the store on its engine, the
//! Redis-protocol port and the health check.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::config::{DaemonConfig, DaemonConfigError, EngineKind};
use super::connection::{self, RespSettings};
use super::health;
use super::resp::Limits;
use super::session::SessionSettings;
use super::supervisor::{StoreSlot, Supervisor, open_store};
use crate::Cause;
use crate::kv::{Engine, KvError, KvStore, MemoryEngine, RedbEngine};
use crate::net::{BoxListener, Connector, Tcp};
use crate::order::{Cluster, RaftOrder, StartError};
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
}

/// A running node with its client and health ports.
pub struct Daemon {
    slot: Arc<StoreSlot>,
    order: Arc<RaftOrder>,
    client_addr: SocketAddr,
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

/// Opens the configured engine under the data directory.
fn open_engine(config: &DaemonConfig) -> Result<Arc<dyn Engine>, DaemonError> {
    match config.engine {
        EngineKind::Memory => Ok(Arc::new(MemoryEngine::new())),
        EngineKind::Redb => {
            let path = config.data_dir.join("data.redb");
            let engine = RedbEngine::open(&path).map_err(|e| storage_error(&path, e))?;
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
            connector: Tcp::connector(),
        })
    }
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
        let Listeners {
            peer: peer_listener,
            client: client_listener,
            health: health_listener,
            connector,
        } = listeners;
        let peer_addr = peer_listener
            .local_addr()
            .map_err(|source| DaemonError::Listen {
                addr: config.peer_listen.clone(),
                source,
            })?;
        let order_config = config.order_config(&peer_addr.to_string())?;
        let engine = open_engine(&config)?;
        let order = Arc::new(RaftOrder::start(order_config, peer_listener, connector).await?);
        // Everything above the ordering layer sees only its traits.
        let cluster: Arc<dyn Cluster> = order.clone();
        let slot = Arc::new(watch::channel(None).0);
        cluster.set_peer_service(Donor::start(slot.subscribe()));
        // A store whose gap left every log starts empty: the supervisor
        // fills it by state transfer while the ports answer LOADING.
        let store = match open_store(&config.store_config(), &engine, &cluster).await {
            Ok(store) => store,
            Err(err) => {
                order.shutdown().await;
                return Err(err.into());
            }
        };
        slot.send_replace(store);
        let client_addr = local_addr(&client_listener, &config.client_listen)?;
        let health_addr = match &health_listener {
            Some(listener) => Some(local_addr(listener, "health")?),
            None => None,
        };
        let (shutdown, stop) = watch::channel(false);
        let settings = Arc::new(resp_settings(&config, cluster.clone()));
        let mut tasks = vec![
            tokio::spawn(connection::accept_loop(
                client_listener,
                slot.subscribe(),
                settings,
                stop.clone(),
            )),
            tokio::spawn(
                Supervisor {
                    slot: slot.clone(),
                    config: config.store_config(),
                    engine,
                    order: cluster,
                    shutdown: stop.clone(),
                }
                .run(),
            ),
        ];
        if let Some(listener) = health_listener {
            let stores = slot.subscribe();
            tasks.push(tokio::spawn(health::accept_loop(listener, stores, stop)));
        }
        tracing::info!(node = config.node_id, %client_addr, ?health_addr, %peer_addr, "certusd serving");
        Ok(Daemon {
            slot,
            order,
            client_addr,
            health_addr,
            shutdown,
            tasks: Mutex::new(tasks),
        })
    }

    /// The Redis-protocol address.
    #[must_use]
    pub fn client_addr(&self) -> SocketAddr {
        self.client_addr
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

fn resp_settings(config: &DaemonConfig, order: Arc<dyn Cluster>) -> RespSettings {
    let limits = Limits::default();
    RespSettings {
        limits,
        max_request_bytes: limits.max_bulk + (1 << 20),
        max_clients: config.max_clients,
        session: Arc::new(SessionSettings {
            isolation: config.isolation(),
            max_attempts: 100,
            max_queued: 100_000,
            // A transaction's write-set is capped anyway; keep its queue
            // within twice that.
            max_queued_bytes: 2 * config.store_config().node.max_write_set_bytes,
            order: Some(order),
            next_client_id: std::sync::atomic::AtomicU64::new(1),
        }),
    }
}
