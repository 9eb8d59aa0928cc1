//! [`Node`]: the public handle a storage engine embeds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::{Semaphore, mpsc, watch};

use super::config::NodeConfig;
use super::core::{CoreConfig, NodeCore};
use super::error::{ConfigError, Error};
use super::operation::OperationHandle;
use super::read_views::ReadViews;
use super::runtime::{NodeRequest, Published, Runtime};
use super::shared::{Shared, Timings};
use super::status::Status;
use super::transaction::{Transaction, TxnOptions};
use crate::apply::Applier;
use crate::apply::pool::ApplyPool;
use crate::certify::{CertCheckpoint, Certifier};
use crate::ids::{NodeId, Seqno, TxnId};
use crate::order::TotalOrder;

/// A replica. Cheap to clone; the node stops when [`Node::shutdown`] is
/// called or the last handle (and transaction) is dropped.
#[derive(Clone, Debug)]
pub struct Node {
    pub(super) shared: Arc<Shared>,
}

impl Node {
    /// Recovers the engine's replication state, subscribes to the ordering
    /// layer after the last certification checkpoint, and starts the node's
    /// runtime on the current tokio runtime.
    ///
    /// # Errors
    /// [`Error::Config`] for bad settings or an ordering handle of another
    /// node; [`Error::Apply`] or [`Error::Checkpoint`] when the engine's
    /// stored state is unusable; [`Error::Order`] when the ordering layer no
    /// longer holds the positions after the checkpoint.
    pub async fn start(
        config: NodeConfig,
        order: Arc<dyn TotalOrder>,
        applier: Arc<dyn Applier>,
    ) -> Result<Node, Error> {
        config.validate()?;
        if order.node_id() != config.node_id {
            return Err(Error::Config(ConfigError::ForeignOrder {
                order: order.node_id(),
                node: config.node_id,
            }));
        }
        let epoch = incarnation(&config, &*order)?;
        let recovered = applier.recover()?;
        let certifier = restore_certifier(&config, &recovered)?;
        let events = order.subscribe(certifier.last_seqno())?;
        order.release(certifier.last_seqno());
        let core = NodeCore::new(
            core_config(&config, &*order),
            certifier,
            recovered.last_visible,
        );
        let (donating, donating_rx) = watch::channel(0);
        let (status, status_rx) = watch::channel(core.status());
        let published = Arc::new(Published {
            status,
            read_views: Arc::new(ReadViews::new(status_rx)),
            donating,
        });
        let (requests, requests_rx) = mpsc::channel(16);
        // Each client holding a commit permit sends at most three events.
        let (commit_events, commit_events_rx) = mpsc::channel(config.max_inflight_commits);
        let timings = Arc::new(Timings::default());
        let (pool, done) =
            ApplyPool::start(config.apply_workers, applier.clone(), timings.apply.clone());
        let (shutdown, shutdown_rx) = watch::channel(false);
        let runtime = Runtime {
            core,
            applier,
            events,
            pool,
            done,
            published: published.clone(),
            shutdown: shutdown_rx,
            requests: requests_rx,
            commit_events: commit_events_rx,
            replies: std::collections::HashMap::new(),
            max_inflight_commits: config.max_inflight_commits,
            order: order.clone(),
            donating: donating_rx,
            consumer: None,
        };
        let task = tokio::spawn(runtime.run());
        tracing::info!(node = %config.node_id, last_visible = %recovered.last_visible, "node started");
        let shared = Shared {
            inflight: Arc::new(Semaphore::new(config.max_inflight_commits)),
            config,
            epoch,
            next_txn: AtomicU64::new(1),
            order,
            published,
            requests,
            commit_events,
            shutdown,
            task: Mutex::new(Some(task)),
            timings,
        };
        Ok(Node {
            shared: Arc::new(shared),
        })
    }

    /// This node's id.
    #[must_use]
    pub fn id(&self) -> NodeId {
        self.shared.config.node_id
    }

    /// The configuration it runs with.
    #[must_use]
    pub fn config(&self) -> &NodeConfig {
        &self.shared.config
    }

    /// The current replication status.
    #[must_use]
    pub fn status(&self) -> Status {
        self.shared.published.status.borrow().clone()
    }

    /// How long this node's local commits (submission to outcome) and
    /// engine applies (one batch) took, for operators.
    #[must_use]
    pub fn timings(&self) -> NodeTimings {
        NodeTimings {
            commit: self.shared.timings.commit.snapshot(),
            apply: self.shared.timings.apply.snapshot(),
        }
    }

    /// Flow-control counters from the ordering layer (Galera's
    /// `wsrep_flow_control_paused` and `_sent`).
    #[must_use]
    pub fn flow_control(&self) -> crate::order::FlowControlStats {
        self.shared.order.flow_control()
    }

    /// The protocol this node speaks and the one its cluster runs at (see
    /// [`crate::protocol`]).
    #[must_use]
    pub fn protocols(&self) -> crate::protocol::Protocols {
        self.shared.order.protocols()
    }

    /// A receiver that sees every status change.
    #[must_use]
    pub fn watch_status(&self) -> watch::Receiver<Status> {
        self.shared.published.status.subscribe()
    }

    /// Every position at or below this is applied and visible here: a
    /// transaction begun now reads at it.
    #[must_use]
    pub fn last_visible(&self) -> Seqno {
        self.shared.published.status.borrow().last_visible
    }

    /// The oldest read view an open transaction may still read. Versions
    /// superseded at or before it are invisible to everyone and may be
    /// garbage-collected.
    #[must_use]
    pub fn read_horizon(&self) -> Seqno {
        self.shared.published.read_views.horizon()
    }

    /// Begins a transaction with the node's default isolation and read mode.
    ///
    /// # Errors
    /// See [`Node::begin_with`].
    pub async fn begin(&self) -> Result<Transaction, Error> {
        self.begin_with(TxnOptions::default()).await
    }

    /// Begins a transaction. With causal reads (the default) it first waits
    /// until this node has applied everything committed anywhere in the
    /// cluster when it was called, so it never reads stale data. Its read
    /// view is then this node's visible watermark.
    ///
    /// # Errors
    /// [`Error::NotPrimary`] for a causal read outside the primary component;
    /// [`Error::Timeout`], [`Error::Failed`] or [`Error::ShutDown`].
    pub async fn begin_with(&self, options: TxnOptions) -> Result<Transaction, Error> {
        self.check_serving()?;
        if options.causal.unwrap_or(self.shared.config.causal_reads) {
            self.sync_wait().await?;
        }
        let read_view = self.shared.published.read_views.open();
        let counter = self.shared.next_txn.fetch_add(1, Ordering::Relaxed);
        let txn_id = TxnId::new(self.shared.epoch, counter);
        Ok(Transaction::new(
            self.shared.clone(),
            txn_id,
            read_view,
            options.isolation,
        ))
    }

    /// Starts an ordered operation carrying `payload`: declare its keys on
    /// the handle, then [`OperationHandle::submit`] it. Unlike a
    /// transaction it reads nothing now, so it needs no causal wait and
    /// never conflicts: every node executes it at its position.
    ///
    /// # Errors
    /// [`Error::Failed`] or [`Error::ShutDown`].
    pub fn operation(&self, payload: impl Into<Bytes>) -> Result<OperationHandle, Error> {
        self.check_serving()?;
        let counter = self.shared.next_txn.fetch_add(1, Ordering::Relaxed);
        let txn_id = TxnId::new(self.shared.epoch, counter);
        Ok(OperationHandle::new(
            self.shared.clone(),
            txn_id,
            payload.into(),
        ))
    }

    /// Galera's sync wait: waits until every commit made in the primary
    /// component before the call is visible here, and returns that position.
    ///
    /// # Errors
    /// [`Error::NotPrimary`], [`Error::Timeout`], [`Error::Failed`],
    /// [`Error::ShutDown`].
    pub async fn sync_wait(&self) -> Result<Seqno, Error> {
        let point = self.shared.order.sync_point().await?;
        self.shared.wait_visible(point, true).await?;
        Ok(point)
    }

    /// Waits until `seqno` is visible here.
    ///
    /// # Errors
    /// [`Error::Timeout`], [`Error::Failed`], [`Error::ShutDown`].
    pub async fn wait_visible(&self, seqno: Seqno) -> Result<(), Error> {
        self.shared.wait_visible(seqno, false).await
    }

    /// Starts providing a full state transfer: the node reports itself as
    /// [`NodeState::Donor`] until the returned guard is dropped, and returns
    /// the certification state after its last certified position `P` (the
    /// checkpoint's seqno). The joiner needs the data as of `P` with it;
    /// read it at `P` once [`Node::wait_visible`] returned for it. Open a read
    /// view before calling this, so the versions visible at `P` are kept.
    ///
    /// # Errors
    /// [`Error::Failed`] when this node is not synced; [`Error::ShutDown`].
    pub async fn begin_donation(&self) -> Result<(CertCheckpoint, DonorGuard), Error> {
        let guard = DonorGuard::new(self.shared.published.clone());
        let (reply, answer) = tokio::sync::oneshot::channel();
        let request = NodeRequest::TransferCheckpoint(reply);
        self.shared
            .requests
            .send(request)
            .await
            .map_err(|_| Error::ShutDown)?;
        let checkpoint = answer.await.map_err(|_| Error::ShutDown)?;
        Ok((checkpoint?, guard))
    }

    /// Stops the node: waiting clients get [`Error::ShutDown`], and the
    /// runtime finishes before this returns.
    pub async fn shutdown(&self) {
        let _ = self.shared.shutdown.send(true);
        let task = self
            .shared
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            crate::task::join(task).await;
        }
    }

    fn check_serving(&self) -> Result<(), Error> {
        self.shared.check_serving()
    }
}

/// The core's settings: the node's, and the protocol its ordering layer
/// speaks.
fn core_config(config: &NodeConfig, order: &dyn TotalOrder) -> CoreConfig {
    CoreConfig {
        node_id: config.node_id,
        apply_slots: ApplyPool::slots(config.apply_workers),
        apply_queue: config.apply_queue,
        apply_queue_bytes: config.apply_queue_bytes,
        checkpoint_bytes: config.checkpoint_bytes,
        max_write_set_bytes: config.max_write_set_bytes,
        checkpoint_interval: config.checkpoint_interval,
        max_inflight_commits: config.max_inflight_commits,
        protocol: order.protocols().own,
    }
}

/// The certifier as of the engine's last checkpoint.
fn restore_certifier(
    config: &NodeConfig,
    recovered: &crate::apply::Recovered,
) -> Result<Certifier, Error> {
    match &recovered.checkpoint {
        Some(checkpoint) if checkpoint.seqno() > recovered.last_visible => {
            Err(Error::Apply(crate::apply::ApplyError::CheckpointAhead {
                checkpoint: checkpoint.seqno(),
                visible: recovered.last_visible,
            }))
        }
        Some(checkpoint) => Ok(Certifier::restore(config.cert, checkpoint)?),
        None => Ok(Certifier::new(config.cert)),
    }
}

/// Keeps a node in the donor state while a state transfer it provides
/// runs; dropping it ends that.
#[derive(Debug)]
pub struct DonorGuard {
    published: Arc<Published>,
}

impl DonorGuard {
    fn new(published: Arc<Published>) -> Self {
        published.donating.send_modify(|n| *n += 1);
        DonorGuard { published }
    }
}

impl Drop for DonorGuard {
    fn drop(&mut self) {
        self.published
            .donating
            .send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// This start's incarnation number: the configured one, or one the
/// ordering layer raises above every earlier one and the wall clock.
fn incarnation(config: &NodeConfig, order: &dyn TotalOrder) -> Result<u64, Error> {
    match config.epoch {
        Some(epoch) => Ok(epoch),
        None => Ok(order.next_epoch(epoch_from_clock())?),
    }
}

/// How long a node's work took (see [`Node::timings`]).
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct NodeTimings {
    /// Local commits and operations, from submission to outcome.
    pub commit: crate::HistogramSnapshot,
    /// Engine apply batches.
    pub apply: crate::HistogramSnapshot,
}

/// Microseconds since the Unix epoch: the floor of this start's
/// incarnation number, which the ordering layer raises above every earlier
/// one it kept ([`TotalOrder::next_epoch`]). In [`crate::simulation`], a
/// counter that no clock can disturb.
fn epoch_from_clock() -> u64 {
    if let Some(epoch) = crate::simulation::next_epoch() {
        return epoch;
    }
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}
