//! The node's sans-IO core: certification, apply scheduling, membership,
//! and every local commit from submission to visibility.
//!
//! Events go in (`handle_*`), commands ([`NodeCore::poll_command`]) and
//! completions ([`NodeCore::take_completions`]) come out. The core never
//! blocks, reads a clock or touches I/O; the runtime carries out its
//! commands and reports their results back as events.
//!
//! ```text
//!   clients ───────handle_submitted, _submission_ended, _gave_up──▶ commits
//!   ordering layer ──Event::Ordered──▶ decode ─▶ certify ─▶ scheduler.admit
//!                  ──Event::View────▶ membership          │     (commits: verdict)
//!   workers ◀──────Command::Apply──────────────── scheduler.next_apply
//!   workers ───────handle_applied─────────────▶ scheduler.applied
//!   engine  ◀──────Command::MakeVisible{upto}──── scheduler.next_visible
//!   engine  ───────handle_visible─────────────▶ last_visible, membership, commits
//!   clients ◀──────completions (once each, after the status is published)
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use super::commits::{Commits, Completion};
use super::error::{Error, Failure};
use super::outcome::{CommitOutcome, Conflict};
use super::state::{Membership, NodeState};
use super::status::Status;
use bytes::Bytes;

use crate::apply::pool::Work;
use crate::apply::{ApplyError, ApplyScheduler, Job};
use crate::certify::{CertCheckpoint, Certifier, FirstOutcome, Verdict};
use crate::frame::FrameKind;
use crate::ids::{ClusterTime, NodeId, Seqno, TxnId};
use crate::order::{Entry, Event, OrderError, View};
use crate::writeset::{Operation, WriteSet};

/// Something the runtime must do.
#[derive(Debug)]
pub(crate) enum Command {
    /// Hand a committed position to an apply worker.
    Apply { seqno: Seqno, work: Work },
    /// Make everything at or below `upto` visible, storing the checkpoint.
    MakeVisible {
        upto: Seqno,
        checkpoint: Option<CertCheckpoint>,
    },
}

/// What a submitted frame held.
#[derive(Debug)]
enum Delivered {
    WriteSet(Arc<WriteSet>),
    Operation(Arc<Operation>),
}

impl Delivered {
    fn origin(&self) -> NodeId {
        match self {
            Delivered::WriteSet(ws) => ws.origin(),
            Delivered::Operation(op) => op.origin(),
        }
    }

    fn txn_id(&self) -> TxnId {
        match self {
            Delivered::WriteSet(ws) => ws.txn_id(),
            Delivered::Operation(op) => op.txn_id(),
        }
    }

    /// What applying it at a position whose cluster time is `time` takes.
    fn work(&self, time: ClusterTime) -> Work {
        match self {
            Delivered::WriteSet(ws) => Work::Rows(ws.clone()),
            Delivered::Operation(op) => Work::Execute {
                op: op.clone(),
                time,
            },
        }
    }
}

/// Static settings of the core.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CoreConfig {
    pub(crate) node_id: NodeId,
    pub(crate) apply_slots: usize,
    pub(crate) apply_queue: usize,
    /// Bytes of committed write-sets that may wait to become visible.
    pub(crate) apply_queue_bytes: usize,
    pub(crate) max_write_set_bytes: usize,
    pub(crate) checkpoint_interval: u64,
    /// Delivered bytes that also call for a checkpoint.
    pub(crate) checkpoint_bytes: u64,
    pub(crate) max_inflight_commits: usize,
    /// The protocol this node speaks: the formats it reads.
    pub(crate) protocol: crate::protocol::Protocol,
}

#[derive(Debug)]
pub(crate) struct NodeCore {
    config: CoreConfig,
    certifier: Certifier,
    scheduler: ApplyScheduler,
    membership: Membership,
    commits: Commits,
    last_delivered: Seqno,
    /// Positions at or below this are already applied in the engine: after a
    /// restart they are certified again (to rebuild the index) but not applied.
    replay_upto: Seqno,
    /// Committed positions admitted to the scheduler, not yet dispatched.
    pending: BTreeMap<Seqno, Work>,
    /// The size of every committed write-set admitted and not yet
    /// visible, in seqno order, and their sum.
    held: VecDeque<(Seqno, usize)>,
    held_bytes: usize,
    /// Bytes delivered since the last checkpoint was taken.
    since_checkpoint: u64,
    /// The cluster time at every position in `(last_visible,
    /// last_delivered]` where it moved, oldest first.
    times: VecDeque<(Seqno, ClusterTime)>,
    /// The cluster time at `last_visible`.
    visible_time: ClusterTime,
    /// A checkpoint taken at certification, stored by the first
    /// `MakeVisible` whose watermark reaches it.
    checkpoint: Option<CertCheckpoint>,
    next_checkpoint: Seqno,
    commands: VecDeque<Command>,
    local_commits: u64,
    local_cert_failures: u64,
    malformed: u64,
    failure: Option<Failure>,
    needs_state_transfer: bool,
}

impl NodeCore {
    /// A core resuming from an engine whose data is visible up to
    /// `last_visible` and a certifier restored to its checkpoint at or below
    /// it.
    pub(crate) fn new(config: CoreConfig, certifier: Certifier, last_visible: Seqno) -> Self {
        assert!(
            certifier.last_seqno() <= last_visible,
            "checkpoint at {} is ahead of the visible data at {last_visible}",
            certifier.last_seqno()
        );
        let next_checkpoint = Seqno::new(certifier.last_seqno().get() + config.checkpoint_interval);
        NodeCore {
            last_delivered: certifier.last_seqno(),
            scheduler: ApplyScheduler::new(config.apply_slots, config.apply_queue, last_visible),
            membership: Membership::new(config.node_id),
            commits: Commits::new(config.max_inflight_commits),
            replay_upto: last_visible,
            pending: BTreeMap::new(),
            held: VecDeque::new(),
            held_bytes: 0,
            since_checkpoint: 0,
            times: VecDeque::new(),
            visible_time: certifier.time(),
            checkpoint: None,
            next_checkpoint,
            commands: VecDeque::new(),
            local_commits: 0,
            local_cert_failures: 0,
            malformed: 0,
            failure: None,
            needs_state_transfer: false,
            certifier,
            config,
        }
    }

    /// Whether the core can take another delivery now. When it cannot, the
    /// runtime stops reading the ordering layer, which pushes back on every
    /// submitter through the layer's flow control.
    pub(crate) fn wants_delivery(&self) -> bool {
        let room = self.held.is_empty() || self.held_bytes < self.config.apply_queue_bytes;
        !self.membership.state().is_terminal() && self.scheduler.has_room() && room
    }

    pub(crate) fn poll_command(&mut self) -> Option<Command> {
        self.commands.pop_front()
    }

    /// The completions decided since the last call: each local commit's
    /// client is told exactly once. The runtime delivers them after it
    /// published the status, so a client that is told its commit is visible
    /// begins its next transaction at or after it.
    pub(crate) fn take_completions(&mut self) -> impl Iterator<Item = (TxnId, Completion)> + '_ {
        self.commits.take_completed()
    }

    /// Local commits being tracked.
    pub(crate) fn commits_in_flight(&self) -> usize {
        self.commits.len()
    }

    pub(crate) fn last_visible(&self) -> Seqno {
        self.scheduler.last_visible()
    }

    /// A local client starts submitting `txn_id`'s write-set.
    pub(crate) fn handle_submitted(&mut self, txn_id: TxnId) {
        self.commits.submitted(txn_id);
    }

    /// The submission of `txn_id` ended. Only an ambiguous failure leaves
    /// the outcome unknown; any other failure ordered nothing.
    pub(crate) fn handle_submission_ended(
        &mut self,
        txn_id: TxnId,
        result: Result<(), OrderError>,
    ) {
        match result {
            Ok(()) => self.commits.ordered(txn_id),
            Err(OrderError::OutcomeUnknown) => self.commits.maybe_ordered(txn_id),
            Err(err) => self.commits.not_ordered(txn_id, err.into()),
        }
    }

    /// The client of `txn_id` stopped waiting after `waited`.
    pub(crate) fn handle_gave_up(&mut self, txn_id: TxnId, waited: std::time::Duration) {
        self.commits.gave_up(txn_id, waited);
    }

    /// The client of `txn_id` is gone without waiting for its end.
    pub(crate) fn handle_forgotten(&mut self, txn_id: TxnId) {
        self.commits.forgotten(txn_id);
    }

    /// The node is shutting down: every waiting client is told so.
    pub(crate) fn handle_shutdown(&mut self) {
        self.commits.abandon(&Error::ShutDown);
    }

    pub(crate) fn handle_event(&mut self, event: Event) {
        match event {
            Event::Ordered {
                seqno,
                entry,
                stamp,
            } => self.handle_ordered(seqno, entry, stamp),
            Event::View(view) => self.handle_view(view),
        }
        self.check_invariants();
    }

    fn handle_ordered(&mut self, seqno: Seqno, entry: Entry, stamp: ClusterTime) {
        assert!(
            self.wants_delivery(),
            "delivery of {seqno} while the core cannot take it"
        );
        assert_eq!(
            seqno,
            self.last_delivered.next(),
            "ordering layer skipped or repeated"
        );
        if let Entry::Submitted(frame) = &entry
            && let Some(failure) = self.newer_format(seqno, frame)
        {
            // Skipping it would skip what every other member applies.
            self.fail(failure);
            return;
        }
        self.last_delivered = seqno;
        self.certifier.observe_time(stamp);
        let size = match &entry {
            Entry::Submitted(frame) => frame.len(),
            Entry::Barrier => 0,
        };
        self.since_checkpoint = self.since_checkpoint.saturating_add(size as u64);
        let certified = match entry {
            Entry::Submitted(frame) => self.certify(seqno, &frame),
            Entry::Barrier => {
                self.certifier.skip(seqno);
                None
            }
        };
        self.maybe_checkpoint(seqno);
        let time = self.certifier.time();
        if seqno <= self.replay_upto {
            self.visible_time = time;
            return;
        }
        if self.times.back().map_or(self.visible_time, |(_, t)| *t) != time {
            self.times.push_back((seqno, time));
        }
        let job = match &certified {
            Some((delivered, Verdict::Commit { depends_on })) => {
                self.pending.insert(seqno, delivered.work(time));
                self.held.push_back((seqno, size));
                self.held_bytes += size;
                Job::Apply {
                    depends_on: *depends_on,
                }
            }
            _ => Job::Skip,
        };
        self.scheduler.admit(seqno, job);
        if let Some((delivered, verdict)) = certified
            && delivered.origin() == self.config.node_id
        {
            self.resolve_local(seqno, &delivered, verdict);
        }
        self.pump();
    }

    /// The failure for a frame in a format newer than this node's protocol
    /// reads: the cluster was upgraded past this node (see
    /// [`crate::protocol`]). Malformed frames are not this; every member
    /// skips those alike.
    fn newer_format(&self, seqno: Seqno, frame: &[u8]) -> Option<Failure> {
        let (kind, version) = match crate::frame::peek_header(frame, usize::MAX) {
            Ok(Some(header)) => (header.kind, header.version),
            Err(crate::frame::FrameError::UnsupportedVersion { kind, version, .. }) => {
                (kind, version)
            }
            _ => return None,
        };
        let protocol = self.config.protocol;
        (version > 0 && !protocol.reads(kind, version)).then_some(Failure::NewerFormat {
            seqno,
            kind,
            version,
            protocol,
        })
    }

    /// Decodes and certifies a submitted frame: a write-set or an
    /// operation. Bytes that are neither are skipped.
    fn certify(&mut self, seqno: Seqno, frame: &[u8]) -> Option<(Delivered, Verdict)> {
        let max = self.config.max_write_set_bytes;
        let decoded = match crate::frame::peek_header(frame, max) {
            Ok(Some(header)) if header.kind == FrameKind::Operation => {
                Operation::decode(frame, max).map(|op| Delivered::Operation(Arc::new(op)))
            }
            _ => WriteSet::decode(frame, max).map(|ws| Delivered::WriteSet(Arc::new(ws))),
        };
        match decoded {
            Ok(delivered) => {
                let verdict = match &delivered {
                    Delivered::WriteSet(ws) => self.certifier.certify(seqno, ws),
                    Delivered::Operation(op) => self.certifier.certify_operation(seqno, op),
                };
                Some((delivered, verdict))
            }
            Err(err) => {
                // Every member received the same bytes, so every member
                // skips this position the same way.
                tracing::warn!(%seqno, error = %err, "delivered entry is neither a write-set nor an operation");
                self.certifier.skip(seqno);
                self.malformed += 1;
                None
            }
        }
    }

    /// Hands the verdict to the local client's commit: an abort ends its
    /// wait now, a commit once it is visible here.
    fn resolve_local(&mut self, seqno: Seqno, delivered: &Delivered, verdict: Verdict) {
        let operation = matches!(delivered, Delivered::Operation(_));
        let outcome = match verdict {
            Verdict::Commit { .. } => {
                self.local_commits += 1;
                CommitOutcome::Committed { seqno }
            }
            Verdict::Abort { reason } => {
                self.local_cert_failures += 1;
                CommitOutcome::Conflict(Conflict { seqno, reason })
            }
            Verdict::Duplicate { first_seqno, first } => match first {
                FirstOutcome::Committed => CommitOutcome::Committed { seqno: first_seqno },
                FirstOutcome::Aborted(reason) => CommitOutcome::Conflict(Conflict {
                    seqno: first_seqno,
                    reason,
                }),
            },
        };
        let last_visible = self.last_visible();
        let txn_id = delivered.txn_id();
        self.commits
            .certified(txn_id, outcome, last_visible, operation);
    }

    fn handle_view(&mut self, view: View) {
        let left_primary = self.membership.on_view(view, self.last_visible());
        if left_primary {
            self.commits.left_primary();
        }
    }

    /// A worker finished `seqno`; an operation's output comes with it.
    pub(crate) fn handle_applied(
        &mut self,
        seqno: Seqno,
        result: Result<Option<Bytes>, ApplyError>,
    ) {
        if self.failure.is_some() {
            return;
        }
        match result {
            Ok(output) => {
                if let Some(output) = output {
                    self.commits.executed(seqno, output);
                }
                self.scheduler.applied(seqno);
                self.pump();
            }
            Err(source) => self.fail(Failure::Apply { seqno, source }),
        }
        self.check_invariants();
    }

    /// The engine made everything at or below `upto` visible.
    pub(crate) fn handle_visible(&mut self, upto: Seqno) {
        self.scheduler.visible(upto);
        while let Some(&(seqno, size)) = self.held.front() {
            if seqno > upto {
                break;
            }
            self.held_bytes -= size;
            self.held.pop_front();
        }
        while let Some(&(seqno, time)) = self.times.front() {
            if seqno > upto {
                break;
            }
            self.visible_time = time;
            self.times.pop_front();
        }
        self.membership.on_visible(upto);
        self.commits.visible(upto);
        self.pump();
        self.check_invariants();
    }

    pub(crate) fn handle_visibility_failed(&mut self, upto: Seqno, err: &ApplyError) {
        let source = err.clone();
        self.fail(Failure::MakeVisible { upto, source });
    }

    pub(crate) fn handle_order_error(&mut self, err: &OrderError) {
        match err {
            OrderError::Closed => {
                self.membership.close();
                let failure = Failure::Order(OrderError::Closed);
                self.commits.abandon(&Error::Failed(failure));
            }
            OrderError::StateTransferRequired { .. } => {
                self.needs_state_transfer = true;
                self.fail(Failure::Order(err.clone()));
            }
            other => self.fail(Failure::Order(other.clone())),
        }
    }

    /// The certification state after the last certified position, for a
    /// full state transfer whose data is read at that same position. Only a
    /// synced node (or one already donating) can provide it.
    pub(crate) fn transfer_checkpoint(&self) -> Result<CertCheckpoint, Error> {
        let state = self.membership.state();
        if !matches!(state, NodeState::Synced | NodeState::Donor) || self.is_recovering() {
            return Err(Error::NotSynced { state });
        }
        Ok(self.certifier.checkpoint()?)
    }

    /// How many state transfers this node is providing now.
    pub(crate) fn set_donating(&mut self, transfers: usize) {
        self.membership.set_donating(transfers);
    }

    fn fail(&mut self, reason: Failure) {
        tracing::error!(node = %self.config.node_id, %reason, "node failed");
        self.membership.fail();
        self.pending.clear();
        self.held.clear();
        self.held_bytes = 0;
        self.commits.abandon(&Error::Failed(reason.clone()));
        self.failure = Some(reason);
    }

    /// Releases whatever the scheduler allows: applies to free workers, and
    /// the next visible watermark.
    fn pump(&mut self) {
        if self.failure.is_some() {
            return;
        }
        while let Some(seqno) = self.scheduler.next_apply() {
            let work = self.pending.remove(&seqno);
            let work = work.unwrap_or_else(|| panic!("scheduler released {seqno} without work"));
            self.commands.push_back(Command::Apply { seqno, work });
        }
        if let Some(upto) = self.scheduler.next_visible() {
            let checkpoint = match &self.checkpoint {
                Some(cp) if cp.seqno() <= upto => self.checkpoint.take(),
                _ => None,
            };
            self.commands
                .push_back(Command::MakeVisible { upto, checkpoint });
        }
    }

    fn maybe_checkpoint(&mut self, seqno: Seqno) {
        let due =
            seqno >= self.next_checkpoint || self.since_checkpoint >= self.config.checkpoint_bytes;
        if !due || self.checkpoint.is_some() {
            return;
        }
        match self.certifier.checkpoint() {
            Ok(checkpoint) => {
                self.checkpoint = Some(checkpoint);
                self.since_checkpoint = 0;
                self.next_checkpoint = Seqno::new(seqno.get() + self.config.checkpoint_interval);
            }
            // The previous checkpoint stays valid; recovery replays further.
            Err(err) => tracing::warn!(%seqno, error = %err, "certification checkpoint skipped"),
        }
    }

    pub(crate) fn node_id(&self) -> NodeId {
        self.config.node_id
    }

    /// The last certified position and the certification digest there.
    pub(crate) fn digest(&self) -> (Seqno, Option<crate::certify::CertDigest>) {
        (self.certifier.last_seqno(), self.certifier.digest())
    }

    pub(crate) fn status(&self) -> Status {
        Status {
            node_id: self.config.node_id,
            state: self.membership.state(),
            view: self.membership.view().cloned(),
            last_delivered: self.last_delivered,
            last_certified: self.certifier.last_seqno(),
            last_applied: self.scheduler.last_applied(),
            last_visible: self.last_visible(),
            visible_time: self.visible_time,
            cert_digest: self.certifier.digest(),
            apply_queue: self.scheduler.queued(),
            cert: self.certifier.stats(),
            local_commits: self.local_commits,
            local_cert_failures: self.local_cert_failures,
            malformed: self.malformed,
            cert_index_keys: self.certifier.sizes().0,
            cert_index_bytes: self.certifier.bytes(),
            recovering: self.is_recovering(),
            failure: self.failure.clone(),
            needs_state_transfer: self.needs_state_transfer,
        }
    }

    fn is_recovering(&self) -> bool {
        self.last_delivered < self.replay_upto
    }

    /// Asserts `last_visible <= last_applied <= last_certified ==
    /// last_delivered` and the bounds on every queue.
    ///
    /// # Panics
    /// Panics with the full status when an invariant is violated.
    pub(crate) fn check_invariants(&self) {
        let certified = self.certifier.last_seqno();
        assert_eq!(
            certified,
            self.last_delivered,
            "certification lags delivery: {:?}",
            self.status()
        );
        if !self.is_recovering() {
            assert!(
                self.scheduler.last_applied() <= certified,
                "applied beyond certified: {:?}",
                self.status()
            );
            assert_eq!(
                self.scheduler.last_admitted(),
                self.last_delivered,
                "{:?}",
                self.status()
            );
        }
        self.scheduler.check_invariants();
        assert!(
            self.pending.len() <= self.config.apply_queue,
            "pending write-sets unbounded"
        );
        assert_eq!(
            self.held.is_empty(),
            self.held_bytes == 0,
            "held bytes miscounted: {} over {} write-sets",
            self.held_bytes,
            self.held.len()
        );
        debug_assert_eq!(
            self.held_bytes,
            self.held.iter().map(|(_, size)| size).sum::<usize>(),
            "held bytes miscounted"
        );
        assert!(
            self.times.len() <= self.config.apply_queue,
            "cluster times unbounded"
        );
        let command_bound = self.config.apply_slots + 4;
        assert!(
            self.commands.len() <= command_bound,
            "{} commands queued",
            self.commands.len()
        );
    }

    #[cfg(test)]
    pub(crate) fn replay_upto(&self) -> Seqno {
        self.replay_upto
    }
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;
