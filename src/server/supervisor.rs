//! Keeps a daemon's store serving: replaces its data with a full state
//! transfer whenever the node finds that the positions it lacks are gone
//! from every log (at start, or after a long partition), and keeps trying
//! until a donor can give one.
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

use crate::kv::{Engine, Executor, KvError, KvStore, StoreConfig};
use crate::node;
use crate::order::{Cluster, OrderError};
use crate::transfer::{self, TransferError};

/// The first pause after a failed transfer; it doubles up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(100);
/// The longest pause between two transfer attempts.
const RETRY_MAX: Duration = Duration::from_secs(1);

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

/// Why one attempt to restore the store failed; the supervisor retries.
#[derive(Debug, thiserror::Error)]
enum RestoreError {
    /// No donor gave a full state transfer.
    #[error(transparent)]
    Transfer(#[from] TransferError),
    /// The transferred store did not open.
    #[error(transparent)]
    Store(#[from] KvError),
}

/// The task that keeps the daemon's store slot filled.
pub(crate) struct Supervisor {
    pub(crate) slot: Arc<StoreSlot>,
    pub(crate) config: StoreConfig,
    pub(crate) engine: Arc<dyn Engine>,
    pub(crate) order: Arc<dyn Cluster>,
    /// Runs the Redis operations of every store it opens.
    pub(crate) executor: Arc<dyn Executor>,
    pub(crate) shutdown: watch::Receiver<bool>,
}

impl Supervisor {
    /// Serves the slot's store; when its node needs a full state transfer
    /// (or the slot starts empty), takes it out of service, transfers, and
    /// serves the new one. Returns at shutdown.
    pub(crate) async fn run(mut self) {
        loop {
            let served = self.slot.borrow().clone();
            if let Some(store) = served {
                if !self.wait_for_transfer_need(&store).await {
                    return;
                }
                self.slot.send_replace(None);
                store.shutdown().await;
                drop(store);
            }
            match self.restore().await {
                Some(store) => {
                    self.slot.send_replace(Some(store));
                }
                None => return,
            }
        }
    }

    /// Waits until `store`'s node needs a full state transfer; false at
    /// shutdown or when the node is gone.
    async fn wait_for_transfer_need(&mut self, store: &KvStore) -> bool {
        let mut status = store.node().watch_status();
        tokio::select! {
            biased;
            _ = self.shutdown.wait_for(|stop| *stop) => false,
            needed = status.wait_for(|s| s.needs_state_transfer) => needed.is_ok(),
        }
    }

    /// Transfers and opens a store, as many times as it takes; `None` at
    /// shutdown.
    async fn restore(&mut self) -> Option<KvStore> {
        let mut pause = RETRY_FIRST;
        loop {
            let attempt = async {
                transfer::fetch(&*self.order, self.engine.clone()).await?;
                let opened = open_store(&self.config, &self.engine, &self.order, &self.executor);
                Ok::<_, RestoreError>(opened.await?)
            };
            let outcome = tokio::select! {
                biased;
                _ = self.shutdown.wait_for(|stop| *stop) => return None,
                outcome = attempt => outcome,
            };
            match outcome {
                Ok(Some(store)) => return Some(store),
                // The copy ends before this node's log begins (its snapshot
                // point moved meanwhile): the next copy is later.
                Ok(None) => pause = RETRY_FIRST,
                Err(err) => {
                    tracing::warn!(error = %err, retry_in = ?pause, "state transfer not possible yet; retrying");
                }
            }
            tokio::select! {
                biased;
                _ = self.shutdown.wait_for(|stop| *stop) => return None,
                () = tokio::time::sleep(pause) => {}
            }
            pause = (pause * 2).min(RETRY_MAX);
        }
    }
}
