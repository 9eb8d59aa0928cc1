//! openraft's state machine, reduced to what an ordering layer needs: it
//! publishes how far the log has been committed and applied, and lets the
//! subscription read those entries from the log store.
//!
//! The replicated data lives in the node's engine, not here, so a raft
//! snapshot carries no data: only its log id and membership. Installing one
//! tells this node that the positions it lacks are gone from the log, which
//! the subscription reports as [`OrderError::StateTransferRequired`].
//!
//! [`OrderError::StateTransferRequired`]: crate::order::OrderError::StateTransferRequired

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures_util::{Stream, StreamExt};
use openraft::storage::{EntryResponder, RaftStateMachine, Snapshot};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};
use tokio::sync::{Notify, watch};

use super::log::{LogStore, read_state_file, write_state_file};
use super::types::{LogId, Membership, SnapshotMeta, TypeConfig};
use super::upgrade;
use crate::net::ProtocolBook;

/// The raft node this state machine is driven by.
pub(crate) type Raft = openraft::Raft<TypeConfig, Delivery>;

const SNAPSHOT_FILE: &str = "raft-snapshot";
const SNAPSHOT_MAX: usize = 1 << 24;

pub(crate) type OrderSnapshot =
    Snapshot<openraft::alias::CommittedLeaderIdOf<TypeConfig>, u64, openraft::BasicNode, ()>;

struct Applied {
    log_id: Option<LogId>,
    membership: Membership,
    snapshot: Option<SnapshotMeta>,
}

/// What the delivery state machine shares with the subscription.
pub(crate) struct DeliveryShared {
    dir: PathBuf,
    applied: Mutex<Applied>,
    /// The last applied raft index, watched by the subscription.
    watermark: watch::Sender<u64>,
    /// The last index the subscription handed to the node.
    consumed: AtomicU64,
    consumed_moved: Notify,
    /// How far application may run ahead of the node's consumption.
    max_lag: u64,
    /// Nobody consumes (the node failed, or a state transfer replaces
    /// it): application does not wait for it.
    consumer_stopped: AtomicBool,
}

impl DeliveryShared {
    fn applied(&self) -> MutexGuard<'_, Applied> {
        self.applied.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn watermark(&self) -> watch::Receiver<u64> {
        self.watermark.subscribe()
    }

    /// The subscription handed everything up to `index` to the node.
    pub(crate) fn consumed(&self, index: u64) {
        self.consumed.fetch_max(index, Ordering::AcqRel);
        self.consumed_moved.notify_waiters();
    }

    /// Whether the node stopped consuming ([`ConsumerState::Stopped`]).
    ///
    /// [`ConsumerState::Stopped`]: crate::order::ConsumerState::Stopped
    pub(crate) fn set_consumer_stopped(&self, stopped: bool) {
        self.consumer_stopped.store(stopped, Ordering::Release);
        self.consumed_moved.notify_waiters();
    }

    /// The last index the subscription handed to the node.
    pub(crate) fn consumed_index(&self) -> u64 {
        self.consumed.load(Ordering::Acquire)
    }

    async fn wait_for_room(&self, index: u64) {
        loop {
            let notified = self.consumed_moved.notified();
            if self.consumer_stopped.load(Ordering::Acquire)
                || index
                    <= self
                        .consumed
                        .load(Ordering::Acquire)
                        .saturating_add(self.max_lag)
            {
                return;
            }
            notified.await;
        }
    }

    fn persist(&self, meta: &SnapshotMeta) -> io::Result<()> {
        write_state_file(&self.dir, SNAPSHOT_FILE, meta, SNAPSHOT_MAX)
    }
}

fn load_snapshot(dir: &Path) -> io::Result<Option<SnapshotMeta>> {
    read_state_file(dir, SNAPSHOT_FILE, SNAPSHOT_MAX)
}

/// The state machine handed to openraft.
pub(crate) struct Delivery {
    shared: Arc<DeliveryShared>,
    /// Raised by the protocol changes applied.
    book: Arc<ProtocolBook>,
    /// The log the node reads up to the watermark: checked against every
    /// snapshot point before the watermark moves to it.
    store: LogStore,
}

impl Delivery {
    /// Opens the state machine whose snapshot point is stored in `dir`,
    /// for the node that reads `store`; call [`Delivery::settle`] before
    /// anything reads it.
    pub(crate) fn open(
        dir: &Path,
        max_lag: u64,
        store: LogStore,
        book: Arc<ProtocolBook>,
    ) -> io::Result<(Self, Arc<DeliveryShared>)> {
        let snapshot = load_snapshot(dir)?;
        let (log_id, membership) = match &snapshot {
            Some(meta) => (meta.last_log_id, meta.last_membership.clone()),
            None => (None, Membership::default()),
        };
        let index = log_id.as_ref().map_or(0, |id| id.index);
        let shared = Arc::new(DeliveryShared {
            dir: dir.to_path_buf(),
            applied: Mutex::new(Applied {
                log_id,
                membership,
                snapshot,
            }),
            watermark: watch::channel(index).0,
            consumed: AtomicU64::new(index),
            consumed_moved: Notify::new(),
            max_lag,
            // Until the node subscribes, application waits for it as for
            // a consumer that has fallen behind.
            consumer_stopped: AtomicBool::new(false),
        });
        Ok((
            Delivery {
                shared: shared.clone(),
                book,
                store,
            },
            shared,
        ))
    }

    /// Makes the log agree with the stored snapshot point (see
    /// [`LogStore::settle_snapshot`]): a crash right after installing one
    /// may have left entries below it that are not the cluster's.
    pub(crate) async fn settle(&self) -> io::Result<()> {
        let point = self
            .shared
            .applied()
            .snapshot
            .as_ref()
            .and_then(|m| m.last_log_id);
        if let Some(point) = point {
            self.store.settle_snapshot(point).await?;
        }
        Ok(())
    }
}

/// Builds the data-less snapshot at the applied point.
pub(crate) struct SnapshotBuilder {
    shared: Arc<DeliveryShared>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = ();

    async fn build_snapshot(&mut self) -> Result<OrderSnapshot, io::Error> {
        let meta = {
            let applied = self.shared.applied();
            SnapshotMeta {
                last_log_id: applied.log_id,
                last_membership: applied.membership.clone(),
            }
        };
        self.shared.persist(&meta)?;
        self.shared.applied().snapshot = Some(meta.clone());
        Ok(Snapshot { meta, snapshot: () })
    }
}

impl RaftStateMachine<TypeConfig> for Delivery {
    type SnapshotData = ();
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, Membership), io::Error> {
        let applied = self.shared.applied();
        Ok((applied.log_id, applied.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        let mut last = None;
        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            let index = entry.log_id.index;
            self.shared.wait_for_room(index).await;
            if let EntryPayload::Normal(submission) = &entry.payload {
                upgrade::apply(&submission.frame, &self.book, &self.shared.dir)?;
            }
            {
                let mut applied = self.shared.applied();
                if let EntryPayload::Membership(membership) = &entry.payload {
                    applied.membership = Membership::new(Some(entry.log_id), membership.clone());
                }
                applied.log_id = Some(entry.log_id);
            }
            self.shared.watermark.send_replace(index);
            last = Some(index);
            if let Some(responder) = responder {
                responder.send(());
            }
        }
        if let Some(index) = last {
            tracing::trace!(index, "ordering layer applied");
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            shared: self.shared.clone(),
        }
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta, (): ()) -> Result<(), io::Error> {
        self.shared.persist(meta)?;
        // Before the watermark moves: the node reads the entries up to it.
        if let Some(point) = meta.last_log_id {
            self.store.settle_snapshot(point).await?;
        }
        let index = meta.last_log_id.as_ref().map_or(0, |id| id.index);
        {
            let mut applied = self.shared.applied();
            applied.log_id = meta.last_log_id;
            applied.membership = meta.last_membership.clone();
            applied.snapshot = Some(meta.clone());
        }
        tracing::info!(
            index,
            "ordering layer installed a snapshot point; positions before it are gone from this node's log"
        );
        self.shared.watermark.send_replace(index);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<OrderSnapshot>, io::Error> {
        Ok(self
            .shared
            .applied()
            .snapshot
            .clone()
            .map(|meta| Snapshot { meta, snapshot: () }))
    }
}
