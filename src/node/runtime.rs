//! The node's async shell: feeds ordering-layer events and worker reports
//! into the core, and carries out the commands it emits.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};

use super::core::{Abandon, Command, NodeCore};
use super::error::Error;
use super::read_views::ReadViews;
use super::status::Status;
use super::waiters::Waiters;
use crate::apply::pool::{ApplyDone, ApplyJob, ApplyPool};
use crate::apply::{Applier, ApplyError};
use crate::certify::CertCheckpoint;
use crate::ids::Seqno;
use crate::order::{EventStream, TotalOrder};

/// A request from the node's handles to its runtime.
#[derive(Debug)]
pub(crate) enum NodeRequest {
    /// The certification state now, for a state transfer.
    TransferCheckpoint(oneshot::Sender<Result<CertCheckpoint, String>>),
}

/// What the runtime shares with the node's client-facing handles.
#[derive(Debug)]
pub(crate) struct Published {
    pub(crate) status: watch::Sender<Status>,
    pub(crate) read_views: Arc<ReadViews>,
    pub(crate) waiters: Waiters,
    /// State transfers this node is providing (changed by donor guards).
    pub(crate) donating: watch::Sender<usize>,
}

/// A commit the engine is carrying out: its watermark, the checkpoint it
/// stores, and how it went.
type Committing = Pin<Box<dyn Future<Output = CommitDone> + Send>>;

struct CommitDone {
    upto: Seqno,
    stored: Option<Seqno>,
    result: Result<(), ApplyError>,
}

/// Owns the core and everything that performs its commands.
pub(crate) struct Runtime {
    pub(crate) core: NodeCore,
    pub(crate) applier: Arc<dyn Applier>,
    pub(crate) events: Box<dyn EventStream>,
    pub(crate) pool: ApplyPool,
    pub(crate) done: mpsc::Receiver<ApplyDone>,
    pub(crate) published: Arc<Published>,
    pub(crate) shutdown: watch::Receiver<bool>,
    pub(crate) requests: mpsc::Receiver<NodeRequest>,
    /// Told when a checkpoint is stored, so it may drop older positions.
    pub(crate) order: Arc<dyn TotalOrder>,
    pub(crate) donating: watch::Receiver<usize>,
}

impl Runtime {
    /// Runs until shutdown is signalled or every node handle is dropped.
    pub(crate) async fn run(mut self) {
        // The commit in flight: the scheduler releases one at a time, and
        // applies and deliveries go on while the engine commits.
        let mut committing: Option<Committing> = None;
        loop {
            self.execute(&mut committing);
            self.publish();
            tokio::select! {
                biased;
                changed = self.shutdown.changed() => {
                    if changed.is_err() || *self.shutdown.borrow() {
                        break;
                    }
                }
                done = committed(&mut committing) => self.finish_commit(done),
                Some(done) = self.done.recv() => self.core.handle_applied(done.seqno, done.result),
                Some(request) = self.requests.recv() => match request {
                    NodeRequest::TransferCheckpoint(reply) => {
                        let _ = reply.send(self.core.transfer_checkpoint());
                    }
                },
                Ok(()) = self.donating.changed() => {
                    let transfers = *self.donating.borrow_and_update();
                    self.core.set_donating(transfers);
                }
                event = self.events.next(), if self.core.wants_delivery() => match event {
                    Ok(event) => {
                        let ordered = matches!(event, crate::order::Event::Ordered { .. });
                        self.core.handle_event(event);
                        if ordered {
                            let (seqno, digest) = self.core.digest();
                            if let Some(digest) = digest {
                                crate::simulation::witness(self.core.node_id(), seqno, digest);
                            }
                        }
                    }
                    Err(err) => self.core.handle_order_error(&err),
                },
            }
        }
        // A commit in flight finishes, so the engine is idle once this ends.
        if let Some(commit) = committing.take() {
            commit.await;
        }
        self.published.waiters.abandon(&Error::ShutDown);
        tracing::debug!(status = ?self.core.status(), "node runtime stopped");
        let Runtime { pool, done, .. } = self;
        pool.close(done).await;
    }

    fn execute(&mut self, committing: &mut Option<Committing>) {
        while let Some(command) = self.core.poll_command() {
            match command {
                Command::Apply { seqno, ws } => self.pool.dispatch(ApplyJob { seqno, ws }),
                Command::Commit { upto, checkpoint } => {
                    assert!(
                        committing.is_none(),
                        "commit to {upto} released while another is in flight"
                    );
                    *committing = Some(self.start_commit(upto, checkpoint));
                }
                Command::Resolve { txn_id, outcome } => {
                    self.published.waiters.resolve(txn_id, Ok(outcome));
                }
                Command::Abandon {
                    failure: Abandon::OutcomeUnknown,
                } => self
                    .published
                    .waiters
                    .abandon_ordered(&Error::OutcomeUnknown),
                Command::Abandon {
                    failure: Abandon::Failed(reason),
                } => self.published.waiters.abandon(&Error::Failed(reason)),
            }
        }
    }

    /// The engine commits `upto` (it may fsync): off the async threads.
    fn start_commit(&self, upto: Seqno, checkpoint: Option<CertCheckpoint>) -> Committing {
        let stored = checkpoint.as_ref().map(CertCheckpoint::seqno);
        let applier = self.applier.clone();
        let commit = move || applier.commit(upto, checkpoint.as_ref());
        Box::pin(async move {
            let result = crate::task::blocking(commit)
                .await
                .unwrap_or(Err(ApplyError::Storage(
                    "the runtime shut down during a commit".into(),
                )));
            CommitDone {
                upto,
                stored,
                result,
            }
        })
    }

    fn finish_commit(&mut self, done: CommitDone) {
        match done.result {
            Ok(()) => {
                if let Some(seqno) = done.stored {
                    self.order.release(seqno);
                }
                self.published.read_views.set_last_applied(done.upto);
                self.core.handle_committed(done.upto);
            }
            Err(err) => self.core.handle_commit_failed(done.upto, &err),
        }
    }

    fn publish(&self) {
        let status = self.core.status();
        self.published.status.send_if_modified(|current| {
            if *current == status {
                return false;
            }
            *current = status;
            true
        });
    }
}

/// The end of the commit in flight; pending forever when there is none.
async fn committed(committing: &mut Option<Committing>) -> CommitDone {
    match committing {
        Some(commit) => {
            let done = commit.await;
            *committing = None;
            done
        }
        None => std::future::pending().await,
    }
}
