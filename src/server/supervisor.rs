//! Keeps a daemon's store serving: opens it, and replaces its data with a
//! full state transfer whenever the node finds that the positions it lacks
//! are gone from every log (at start, or after a long partition).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::daemon::DaemonError;
use crate::kv::{Engine, KvError, KvStore, StoreConfig};
use crate::node;
use crate::order::{OrderError, RaftOrder};
use crate::transfer;

/// Transfers tried in a row before giving up: a transfer can land before
/// the start of this node's log (its snapshot point moved meanwhile), and
/// the next one then starts later.
const ATTEMPTS: usize = 5;

/// The store the daemon serves; `None` while a state transfer replaces it.
pub(crate) type StoreSlot = watch::Sender<Option<KvStore>>;

/// Opens the store on `engine`, after full state transfers while the
/// ordering layer no longer holds what it needs.
pub(crate) async fn open_store(
    config: &StoreConfig,
    engine: &Arc<dyn Engine>,
    order: &Arc<RaftOrder>,
) -> Result<KvStore, DaemonError> {
    for _ in 0..ATTEMPTS {
        match KvStore::open(config.clone(), engine.clone(), order.clone()).await {
            Err(KvError::Node(node::Error::Order(OrderError::StateTransferRequired {
                requested,
                first_retained,
            }))) => {
                tracing::warn!(%requested, %first_retained, "the log no longer holds this node's gap: full state transfer");
                transfer::fetch(order, engine.clone()).await?;
            }
            other => return Ok(other?),
        }
    }
    Err(DaemonError::Config(format!(
        "{ATTEMPTS} state transfers in a row ended before this node's log begins"
    )))
}

/// Watches the served store; when its node needs a full state transfer,
/// takes it out of service, transfers, and serves the new one.
pub(crate) async fn supervise(
    slot: Arc<StoreSlot>,
    config: StoreConfig,
    engine: Arc<dyn Engine>,
    order: Arc<RaftOrder>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let Some(store) = slot.borrow().clone() else {
            return;
        };
        let mut status = store.node().watch_status();
        tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => return,
            needed = status.wait_for(|s| s.needs_state_transfer) => {
                if needed.is_err() {
                    return;
                }
            }
        }
        slot.send_replace(None);
        store.shutdown().await;
        drop(store);
        loop {
            match open_store(&config, &engine, &order).await {
                Ok(store) => {
                    slot.send_replace(Some(store));
                    break;
                }
                Err(err) => {
                    tracing::error!(error = %err, "the store could not be restored; retrying")
                }
            }
            tokio::select! {
                biased;
                _ = shutdown.wait_for(|stop| *stop) => return,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }
}
