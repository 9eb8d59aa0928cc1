//! The event feed of one node: committed log entries in index order, read
//! from the log store, with membership views interleaved whenever this
//! node's standing changes.

use std::collections::VecDeque;
use std::sync::Arc;

use openraft::EntryPayload;
use tokio::sync::watch;

use super::delivery::DeliveryShared;
use super::log::{LogStore, ReadError};
use super::upgrade;
use crate::ids::{ClusterTime, NodeId, Seqno};
use crate::order::{Entry, Event, EventStream, OrderError, OrderFuture, View};

/// Entries read from the log store at once.
const READ_BATCH: u64 = 256;

/// This node's standing, published by the monitor's tick.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Standing {
    pub(crate) primary: bool,
    /// The current voters, sorted.
    pub(crate) voters: Vec<u64>,
    /// The commit index this node knows of.
    pub(crate) committed: u64,
    /// Why the ordering core stopped for good, once it did.
    pub(crate) stopped: Option<crate::Cause>,
}

pub(crate) struct RaftEventStream {
    pub(crate) store: LogStore,
    pub(crate) delivery: Arc<DeliveryShared>,
    pub(crate) watermark: watch::Receiver<u64>,
    pub(crate) standing: watch::Receiver<Standing>,
    /// The next index to deliver.
    pub(crate) next: u64,
    pub(crate) pending: VecDeque<Event>,
    pub(crate) view_id: u64,
    pub(crate) shown: Option<Standing>,
}

impl RaftEventStream {
    /// Queues a view when this node's standing or the voters changed.
    fn check_standing(&mut self) {
        // Compared in place: this runs once per event, and cloning the
        // standing is only worth it when a view is due. (The watch's own
        // change flag cannot tell, because waiting on it clears it.)
        let now = {
            let now = self.standing.borrow_and_update();
            let unchanged = self
                .shown
                .as_ref()
                .is_some_and(|s| s.primary == now.primary && s.voters == now.voters);
            if unchanged {
                return;
            }
            now.clone()
        };
        self.view_id += 1;
        let delivered = self.next.saturating_sub(1);
        let view = View {
            id: self.view_id,
            members: now.voters.iter().copied().map(NodeId::new).collect(),
            primary: now.primary,
            seqno: Seqno::new(if now.primary {
                now.committed.max(delivered)
            } else {
                delivered
            }),
        };
        self.pending.push_back(Event::View(view));
        self.shown = Some(now);
    }

    /// Queues the committed entries that are ready.
    fn read_ready(&mut self) -> Result<bool, OrderError> {
        let applied = *self.watermark.borrow_and_update();
        if self.next > applied {
            return Ok(false);
        }
        let end = applied.saturating_add(1).min(self.next + READ_BATCH);
        let purged = |first_retained: u64| OrderError::StateTransferRequired {
            requested: Seqno::new(self.next.saturating_sub(1)),
            first_retained: Seqno::new(first_retained),
        };
        let entries = match self.store.read(self.next, end) {
            Ok(entries) => entries,
            Err(ReadError::Purged(p)) => return Err(purged(p.first_retained)),
            // The log's fault now: the ordering core stops on it.
            Err(ReadError::Io(err)) => return Err(OrderError::Stopped(crate::Cause::new(err))),
        };
        if entries.is_empty() {
            return Err(purged(self.next + 1));
        }
        for entry in entries {
            let index = entry.log_id.index;
            assert_eq!(index, self.next, "log store returned entries out of order");
            let (entry, stamp) = match entry.payload {
                EntryPayload::Normal(submission) if upgrade::is_change(&submission.frame) => {
                    (Entry::Barrier, submission.stamp)
                }
                EntryPayload::Normal(submission) => {
                    (Entry::Submitted(submission.frame), submission.stamp)
                }
                EntryPayload::Blank | EntryPayload::Membership(_) => {
                    (Entry::Barrier, ClusterTime::ZERO)
                }
            };
            self.pending.push_back(Event::Ordered {
                seqno: Seqno::new(index),
                entry,
                stamp,
            });
            self.next += 1;
        }
        Ok(true)
    }

    async fn next_event(&mut self) -> Result<Event, OrderError> {
        loop {
            if let Some(cause) = self.standing.borrow().stopped.clone() {
                return Err(OrderError::Stopped(cause));
            }
            if let Some(event) = self.pending.pop_front() {
                if let Event::Ordered { seqno, .. } = &event {
                    self.delivery.consumed(seqno.get());
                }
                return Ok(event);
            }
            self.check_standing();
            if !self.pending.is_empty() || self.read_ready()? {
                continue;
            }
            tokio::select! {
                biased;
                changed = self.watermark.changed() => changed.map_err(|_| OrderError::Closed)?,
                changed = self.standing.changed() => changed.map_err(|_| OrderError::Closed)?,
            }
        }
    }
}

impl EventStream for RaftEventStream {
    fn next(&mut self) -> OrderFuture<'_, Event> {
        Box::pin(self.next_event())
    }
}
