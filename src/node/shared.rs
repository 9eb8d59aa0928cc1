//! What every handle of one node shares: its settings, the ordering
//! handle, the runtime's channels and publications, and the serving checks
//! that handles and transactions both make.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinHandle;

use super::config::NodeConfig;
use super::error::{Error, Failure};
use super::runtime::{CommitEvent, NodeRequest, Published};
use super::state::NodeState;
use crate::ids::Seqno;
use crate::order::TotalOrder;

/// The state behind every [`super::Node`] handle and transaction of a node.
pub(super) struct Shared {
    pub(super) config: NodeConfig,
    pub(super) epoch: u64,
    pub(super) next_txn: AtomicU64,
    pub(super) order: Arc<dyn TotalOrder>,
    pub(super) published: Arc<Published>,
    pub(super) requests: mpsc::Sender<NodeRequest>,
    pub(super) commit_events: mpsc::Sender<CommitEvent>,
    pub(super) inflight: Arc<Semaphore>,
    pub(super) shutdown: watch::Sender<bool>,
    pub(super) task: Mutex<Option<JoinHandle<()>>>,
    /// How long local commits and applies take, for operators.
    pub(super) timings: Arc<Timings>,
}

/// What the node's shell times.
#[derive(Debug, Default)]
pub(super) struct Timings {
    /// A local commit or operation, from submission to its outcome here.
    pub(super) commit: crate::Histogram,
    /// One batch of write-sets or operations applied by the engine.
    pub(super) apply: Arc<crate::Histogram>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("node_id", &self.config.node_id)
            .finish_non_exhaustive()
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

impl Shared {
    pub(super) fn check_serving(&self) -> Result<(), Error> {
        let status = self.published.status.borrow();
        match status.state {
            NodeState::Failed => Err(failed(status.failure.clone())),
            NodeState::Closed => Err(Error::ShutDown),
            _ if *self.shutdown.borrow() => Err(Error::ShutDown),
            _ => Ok(()),
        }
    }

    /// Waits for the visible watermark to reach `seqno`. With
    /// `needs_primary`, leaving the primary component ends the wait: the
    /// positions awaited may never arrive here.
    pub(super) async fn wait_visible(
        &self,
        seqno: Seqno,
        needs_primary: bool,
    ) -> Result<(), Error> {
        let mut status = self.published.status.subscribe();
        let waited = self.config.wait_timeout;
        let reached = status.wait_for(|s| {
            s.last_visible >= seqno
                || s.state.is_terminal()
                || (needs_primary && s.state == NodeState::NonPrimary)
        });
        let status = match tokio::time::timeout(waited, reached).await {
            Err(_) => {
                return Err(Error::Timeout {
                    what: "the node to apply",
                    waited,
                });
            }
            Ok(Err(_)) => return Err(Error::ShutDown),
            Ok(Ok(status)) => status.clone(),
        };
        if status.last_visible >= seqno {
            return Ok(());
        }
        match status.state {
            NodeState::NonPrimary => Err(Error::NotPrimary),
            NodeState::Failed => Err(failed(status.failure)),
            _ => Err(Error::ShutDown),
        }
    }
}

/// The error for a failed node; the reason is published with the state.
fn failed(failure: Option<Failure>) -> Error {
    let failure = failure.unwrap_or(Failure::Order(crate::order::OrderError::Closed));
    Error::Failed(failure)
}
