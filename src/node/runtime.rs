//! The node's async shell: feeds ordering-layer events and worker reports
//! into the core, and carries out the commands it emits.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

use super::commits::Completion;
use super::core::{Command, NodeCore};
use super::error::Error;
use super::read_views::ReadViews;
use super::state::NodeState;
use super::status::Status;
use crate::apply::pool::{ApplyDone, ApplyJob, ApplyPool};
use crate::apply::{Applier, ApplyError};
use crate::certify::CertCheckpoint;
use crate::ids::{Seqno, TxnId};
use crate::order::{ConsumerState, EventStream, OrderError, TotalOrder};

/// A request from the node's handles to its runtime.
#[derive(Debug)]
pub(crate) enum NodeRequest {
    /// The certification state now, for a state transfer.
    TransferCheckpoint(oneshot::Sender<Result<CertCheckpoint, Error>>),
}

/// What a local commit's client reports to the core, in this order: it
/// registers before it submits, so no verdict can arrive for a commit the
/// core does not know.
#[derive(Debug)]
pub(crate) enum CommitEvent {
    /// The client is about to submit `txn_id`'s write-set; its wait ends
    /// with what `reply` receives.
    Submitted {
        txn_id: TxnId,
        reply: oneshot::Sender<Completion>,
    },
    /// The submission returned.
    SubmissionEnded {
        txn_id: TxnId,
        result: Result<(), OrderError>,
    },
    /// The client waited this long after its submission and stops.
    GaveUp { txn_id: TxnId, waited: Duration },
}

/// Commit events the runtime takes per step.
const COMMIT_EVENT_BATCH: usize = 256;

/// What the runtime shares with the node's client-facing handles.
#[derive(Debug)]
pub(crate) struct Published {
    /// The one publication of the node's watermarks and state.
    pub(crate) status: watch::Sender<Status>,
    pub(crate) read_views: Arc<ReadViews>,
    /// State transfers this node is providing (changed by donor guards).
    pub(crate) donating: watch::Sender<usize>,
}

/// A visibility request the engine is carrying out: its watermark, the
/// checkpoint it stores, and how it went.
type MakingVisible = Pin<Box<dyn Future<Output = VisibleDone> + Send>>;

struct VisibleDone {
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
    pub(crate) commit_events: mpsc::Receiver<CommitEvent>,
    /// Where each tracked commit's completion goes (the core decides it).
    pub(crate) replies: HashMap<TxnId, oneshot::Sender<Completion>>,
    pub(crate) max_inflight_commits: usize,
    /// Told when a checkpoint is stored, so it may drop older positions.
    pub(crate) order: Arc<dyn TotalOrder>,
    pub(crate) donating: watch::Receiver<usize>,
    /// What the ordering layer was last told of this node.
    pub(crate) consumer: Option<ConsumerState>,
}

impl Runtime {
    /// Runs until shutdown is signalled or every node handle is dropped.
    pub(crate) async fn run(mut self) {
        // The visibility request in flight: the scheduler releases one at a
        // time, and applies and deliveries go on while the engine works.
        let mut making_visible: Option<MakingVisible> = None;
        let mut commit_events = Vec::with_capacity(COMMIT_EVENT_BATCH);
        loop {
            self.execute(&mut making_visible);
            self.publish();
            self.complete();
            tokio::select! {
                biased;
                changed = self.shutdown.changed() => {
                    if changed.is_err() || *self.shutdown.borrow() {
                        break;
                    }
                }
                done = made_visible(&mut making_visible) => self.finish_making_visible(done),
                Some(done) = self.done.recv() => {
                    if let Ok(Some(output)) = &done.result {
                        crate::simulation::witness_output(self.core.node_id(), done.seqno, output);
                    }
                    self.core.handle_applied(done.seqno, done.result);
                }
                Some(request) = self.requests.recv() => match request {
                    NodeRequest::TransferCheckpoint(reply) => {
                        let _ = reply.send(self.core.transfer_checkpoint());
                    }
                },
                Ok(()) = self.donating.changed() => {
                    let transfers = *self.donating.borrow_and_update();
                    self.core.set_donating(transfers);
                }
                received = self.commit_events.recv_many(&mut commit_events, COMMIT_EVENT_BATCH) => {
                    if received > 0 {
                        commit_events.drain(..).for_each(|event| self.on_commit_event(event));
                    }
                }
                event = self.events.next(), if self.core.wants_delivery() => match event {
                    Ok(event) => {
                        // A client registers its commit before it submits,
                        // so its registration is queued before its write-set
                        // can be delivered; the queue may still look empty
                        // to the select above (tokio's cooperative budget),
                        // so take what is queued before the verdict.
                        self.drain_commit_events();
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
        // A request in flight finishes, so the engine is idle once this ends.
        if let Some(request) = making_visible.take() {
            request.await;
        }
        self.core.handle_shutdown();
        self.publish();
        self.complete();
        tracing::debug!(status = ?self.core.status(), "node runtime stopped");
        let Runtime { pool, done, .. } = self;
        pool.close(done).await;
    }

    fn execute(&mut self, making_visible: &mut Option<MakingVisible>) {
        while let Some(command) = self.core.poll_command() {
            match command {
                Command::Apply { seqno, work } => self.pool.dispatch(ApplyJob { seqno, work }),
                Command::MakeVisible { upto, checkpoint } => {
                    assert!(
                        making_visible.is_none(),
                        "visibility up to {upto} released while another request is in flight"
                    );
                    *making_visible = Some(self.start_making_visible(upto, checkpoint));
                }
            }
        }
    }

    fn drain_commit_events(&mut self) {
        while let Ok(event) = self.commit_events.try_recv() {
            self.on_commit_event(event);
        }
    }

    fn on_commit_event(&mut self, event: CommitEvent) {
        match event {
            CommitEvent::Submitted { txn_id, reply } => {
                if self.replies.len() >= self.max_inflight_commits {
                    self.forget_departed();
                }
                self.core.handle_submitted(txn_id);
                self.replies.insert(txn_id, reply);
            }
            CommitEvent::SubmissionEnded { txn_id, result } => {
                self.core.handle_submission_ended(txn_id, result);
            }
            CommitEvent::GaveUp { txn_id, waited } => self.core.handle_gave_up(txn_id, waited),
        }
    }

    /// Drops the commits whose clients are gone (their task was cancelled):
    /// every live client holds one of the node's commit permits, so after
    /// this at most that many are tracked.
    fn forget_departed(&mut self) {
        let departed: Vec<TxnId> = self
            .replies
            .iter()
            .filter(|(_, reply)| reply.is_closed())
            .map(|(txn_id, _)| *txn_id)
            .collect();
        for txn_id in departed {
            self.replies.remove(&txn_id);
            self.core.handle_forgotten(txn_id);
        }
    }

    /// Hands the core's completions to their clients. Called after
    /// [`Self::publish`], so what a completion promises (a visible commit)
    /// is already in the published status when the client wakes.
    fn complete(&mut self) {
        for (txn_id, completion) in self.core.take_completions() {
            let reply = self.replies.remove(&txn_id);
            let reply =
                reply.unwrap_or_else(|| panic!("completion for {txn_id}, which has no client"));
            // A client that was cancelled meanwhile has nothing to hear.
            let _ = reply.send(completion);
        }
        assert_eq!(
            self.replies.len(),
            self.core.commits_in_flight(),
            "the runtime's clients and the core's commits disagree"
        );
    }

    /// The engine makes `upto` visible: off the async threads when it may
    /// fsync, on this task when the engine says it will not.
    fn start_making_visible(
        &self,
        upto: Seqno,
        checkpoint: Option<CertCheckpoint>,
    ) -> MakingVisible {
        let stored = checkpoint.as_ref().map(CertCheckpoint::seqno);
        if self.applier.make_visible_is_quick(checkpoint.is_some()) {
            let result = self.applier.make_visible(upto, checkpoint.as_ref());
            return Box::pin(std::future::ready(VisibleDone {
                upto,
                stored,
                result,
            }));
        }
        let applier = self.applier.clone();
        let request = move || applier.make_visible(upto, checkpoint.as_ref());
        Box::pin(async move {
            let result = crate::task::blocking(request)
                .await
                .unwrap_or(Err(ApplyError::Interrupted));
            VisibleDone {
                upto,
                stored,
                result,
            }
        })
    }

    fn finish_making_visible(&mut self, done: VisibleDone) {
        match done.result {
            Ok(()) => {
                if let Some(seqno) = done.stored {
                    self.order.release(seqno);
                }
                self.core.handle_visible(done.upto);
            }
            Err(err) => self.core.handle_visibility_failed(done.upto, &err),
        }
    }

    fn publish(&mut self) {
        let status = self.core.status();
        let consumer = match status.state {
            NodeState::Synced => ConsumerState::Synced,
            NodeState::Failed | NodeState::Closed => ConsumerState::Stopped,
            _ => ConsumerState::CatchingUp,
        };
        if self.consumer != Some(consumer) {
            self.consumer = Some(consumer);
            self.order.set_consumer_state(consumer);
        }
        self.published.status.send_if_modified(|current| {
            if *current == status {
                return false;
            }
            assert!(
                current.last_visible <= status.last_visible,
                "visible watermark regressed from {} to {}",
                current.last_visible,
                status.last_visible
            );
            *current = status;
            true
        });
    }
}

/// The end of the visibility request in flight; pending forever when there
/// is none.
async fn made_visible(making_visible: &mut Option<MakingVisible>) -> VisibleDone {
    match making_visible {
        Some(request) => {
            let done = request.await;
            *making_visible = None;
            done
        }
        None => std::future::pending().await,
    }
}
