//! Keeps a daemon's store serving: replaces its data with a full state
//! transfer whenever the node finds that the positions it lacks are gone
//! from every log (at start, or after a long partition), and keeps trying
//! until a donor can give one. A node that failed (its engine could not
//! apply: a full disk, an I/O error) is restarted in-process from what its
//! engine made durable, with the engine opened again, until the fault is
//! gone; meanwhile it is out of the primary component and asks nobody for
//! flow control, so the cluster goes on without it. A node whose ordering
//! core stopped cannot be restarted here: the daemon exits.
//!
//! A transfer that finds no donor is not an error of this node: the other
//! members may be recovering from a crash themselves, or outside the primary
//! component, and become donors once they are synced again. So, as Galera's
//! joiner does ("will keep retrying"), the supervisor retries while the
//! daemon serves `-LOADING` and its health check answers 503; a daemon that
//! gave up would turn a fault the cluster heals by itself into an outage
//! that needs an operator.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::Cause;
use crate::kv::{Engine, Executor, KvError, KvStore, StoreConfig};
use crate::node::{self, Failure, NodeState, Status};
use crate::order::{Cluster, OrderError};
use crate::transfer::{self, TransferError};

/// The first pause after a failed transfer; it doubles up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(100);
/// The longest pause between two transfer attempts.
const RETRY_MAX: Duration = Duration::from_secs(1);
/// The longest pause before restarting a node that keeps failing.
const RESTART_MAX: Duration = Duration::from_secs(5);
/// A failure this long after the last restart starts the pauses afresh.
const RESTART_QUIET: Duration = Duration::from_secs(30);

/// The store the daemon serves; `None` while a state transfer replaces it.
pub(crate) type StoreSlot = watch::Sender<Option<KvStore>>;

/// Opens the store on `engine`; `None` when the ordering layer no longer
/// holds the positions after the store's data, so that a full state
/// transfer must replace it first.
///
/// # Errors
/// Any other [`KvError`] of opening the store.
pub(crate) async fn open_store(
    config: &StoreConfig,
    engine: &Arc<dyn Engine>,
    order: &Arc<dyn Cluster>,
    executor: &Arc<dyn Executor>,
) -> Result<Option<KvStore>, KvError> {
    let opened = KvStore::open_with(
        config.clone(),
        engine.clone(),
        order.clone(),
        executor.clone(),
    );
    match opened.await {
        Err(KvError::Node(node::Error::Order(OrderError::StateTransferRequired {
            requested,
            first_retained,
        }))) => {
            tracing::warn!(%requested, %first_retained, "the log no longer holds this node's gap: full state transfer");
            Ok(None)
        }
        other => other.map(Some),
    }
}

/// Opens the node's storage engine: at start, and again when the node
/// restarts from what is durable after its engine failed.
pub type EngineOpener = Arc<dyn Fn() -> Result<Arc<dyn Engine>, Cause> + Send + Sync>;

/// Why one attempt to restore the store failed; the supervisor retries.
#[derive(Debug, thiserror::Error)]
enum RestoreError {
    /// No donor gave a full state transfer.
    #[error(transparent)]
    Transfer(#[from] TransferError),
    /// The store did not open.
    #[error(transparent)]
    Store(#[from] KvError),
    /// The engine did not open again.
    #[error("the engine did not open: {0}")]
    Engine(#[source] Cause),
}

/// What the served store's node needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Need {
    /// Its gap is gone from every log: a full state transfer.
    Transfer,
    /// It failed (its engine could not apply, say): a restart from what
    /// its engine holds, with the engine opened again.
    Restart,
    /// Its ordering core stopped: nothing in this process can bring it
    /// back, the daemon exits ([`super::Daemon::failed`]).
    Exit,
}

impl Need {
    /// What `status` needs, if anything.
    fn of(status: &Status) -> Option<Need> {
        if status.needs_state_transfer {
            return Some(Need::Transfer);
        }
        if status.state != NodeState::Failed {
            return None;
        }
        match &status.failure {
            Some(Failure::Order(OrderError::Stopped(_))) => Some(Need::Exit),
            _ => Some(Need::Restart),
        }
    }
}

/// The task that keeps the daemon's store slot filled.
pub(crate) struct Supervisor {
    pub(crate) slot: Arc<StoreSlot>,
    pub(crate) config: StoreConfig,
    /// The open engine; `None` while a restart reopens it.
    pub(crate) engine: Option<Arc<dyn Engine>>,
    pub(crate) open_engine: EngineOpener,
    pub(crate) order: Arc<dyn Cluster>,
    /// Runs the Redis operations of every store it opens.
    pub(crate) executor: Arc<dyn Executor>,
    pub(crate) shutdown: watch::Receiver<bool>,
}

impl Supervisor {
    /// Serves the slot's store; when its node needs a full state transfer
    /// (or the slot starts empty) or failed, takes it out of service,
    /// transfers or restarts it, and serves the new one. Returns at
    /// shutdown, or when the node's ordering core stopped.
    pub(crate) async fn run(mut self) {
        let mut need = Need::Transfer;
        let mut restarts = Restarts::default();
        loop {
            let served = self.slot.borrow().clone();
            if let Some(store) = served {
                let Some(next) = self.wait_for_need(&store).await else {
                    return;
                };
                need = next;
                self.slot.send_replace(None);
                store.shutdown().await;
                drop(store);
            }
            let pause = match need {
                Need::Exit => return,
                Need::Transfer => Duration::ZERO,
                Need::Restart => restarts.next(),
            };
            match self.restore(need, pause).await {
                Some(store) => {
                    self.slot.send_replace(Some(store));
                }
                None => return,
            }
        }
    }

    /// Waits until `store`'s node needs something; `None` at shutdown or
    /// when the node is gone.
    async fn wait_for_need(&mut self, store: &KvStore) -> Option<Need> {
        let mut status = store.node().watch_status();
        tokio::select! {
            biased;
            _ = self.shutdown.wait_for(|stop| *stop) => None,
            status = status.wait_for(|s| Need::of(s).is_some()) => {
                let status = status.ok()?;
                let need = Need::of(&status);
                match need {
                    Some(Need::Restart) => tracing::error!(failure = ?status.failure, "the node failed: restarting it in-process from what its engine holds"),
                    Some(Need::Exit) => tracing::error!(failure = ?status.failure, "the node's ordering core stopped: the daemon exits"),
                    _ => {}
                }
                need
            }
        }
    }

    /// The engine, opened again if a restart closed it.
    fn engine(&mut self) -> Result<Arc<dyn Engine>, RestoreError> {
        if let Some(engine) = &self.engine {
            return Ok(engine.clone());
        }
        let engine = (self.open_engine)().map_err(RestoreError::Engine)?;
        self.engine = Some(engine.clone());
        Ok(engine)
    }

    /// One attempt: for a restart, the engine opened again and the store
    /// on it (a full state transfer after all when its gap left the log);
    /// for a transfer, a copy from a donor and the store on it.
    async fn attempt(&mut self, need: Need) -> Result<Option<KvStore>, RestoreError> {
        if need == Need::Restart {
            let engine = self.engine()?;
            let opened = open_store(&self.config, &engine, &self.order, &self.executor).await?;
            if opened.is_some() {
                return Ok(opened);
            }
        }
        let engine = self.engine()?;
        transfer::fetch(&*self.order, engine.clone()).await?;
        Ok(open_store(&self.config, &engine, &self.order, &self.executor).await?)
    }

    /// Transfers or restarts and opens a store, as many times as it takes,
    /// after `pause`; `None` at shutdown.
    async fn restore(&mut self, need: Need, mut pause: Duration) -> Option<KvStore> {
        if need == Need::Restart {
            // What the failed engine holds in memory is not trusted: it
            // is opened again from what it made durable.
            self.engine = None;
        }
        loop {
            if !pause.is_zero() {
                tokio::select! {
                    biased;
                    _ = self.shutdown.wait_for(|stop| *stop) => return None,
                    () = tokio::time::sleep(pause) => {}
                }
            }
            let mut shutdown = self.shutdown.clone();
            let outcome = tokio::select! {
                biased;
                _ = shutdown.wait_for(|stop| *stop) => return None,
                outcome = self.attempt(need) => outcome,
            };
            match outcome {
                Ok(Some(store)) => return Some(store),
                // The copy ends before this node's log begins (its snapshot
                // point moved meanwhile): the next copy is later.
                Ok(None) => pause = RETRY_FIRST,
                Err(err) => {
                    tracing::warn!(error = %err, retry_in = ?pause.max(RETRY_FIRST), "the store cannot be restored yet; retrying");
                    pause = (pause * 2).clamp(RETRY_FIRST, RETRY_MAX);
                    // A failure may have left the engine refusing all work
                    // until it is reopened (redb after an I/O error): the
                    // next attempt opens it again.
                    self.engine = None;
                }
            }
        }
    }
}

/// How long a restart of a failed node waits: a node that fails again soon
/// after its last restart waits twice as long as before (up to
/// [`RESTART_MAX`]), so a fault that persists (a full disk) costs a few
/// restarts a minute, not a busy loop.
#[derive(Debug, Default)]
struct Restarts {
    last: Option<tokio::time::Instant>,
    pause: Duration,
}

impl Restarts {
    fn next(&mut self) -> Duration {
        let now = tokio::time::Instant::now();
        let recent = self
            .last
            .is_some_and(|at| now.duration_since(at) < RESTART_QUIET);
        self.pause = if recent {
            (self.pause * 2).clamp(RETRY_FIRST, RESTART_MAX)
        } else {
            RETRY_FIRST
        };
        self.last = Some(now);
        self.pause
    }
}
