//! The seam between the node and whatever provides total-order broadcast.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;

use super::error::{OrderError, RemoteError};
use super::view::View;
use crate::ids::{ClusterTime, NodeId, Seqno};

/// A boxed future returned by ordering-layer operations. Boxing keeps
/// [`TotalOrder`] object-safe, so the node holds any implementation behind
/// one pointer and no implementation's types reach the public API.
pub type OrderFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, OrderError>> + Send + 'a>>;

/// What occupies one ordered position.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Entry {
    /// A frame exactly as a node submitted it: a write-set or an ordered
    /// operation.
    Submitted(Bytes),
    /// A position the ordering layer used for itself (a membership change, a
    /// leader's no-op). It carries nothing to certify, but it is a position:
    /// watermarks move past it.
    Barrier,
}

/// One event delivered to a node, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The next position. Positions arrive exactly once each, contiguously
    /// from the one after the subscription point.
    Ordered {
        /// The position.
        seqno: Seqno,
        /// Its content.
        entry: Entry,
        /// When the leader ordered it, by the leader's clock;
        /// [`ClusterTime::ZERO`] for entries nobody stamped (barriers).
        /// The cluster time at this position is the largest stamp so far.
        stamp: ClusterTime,
    },
    /// This node's view of the membership changed.
    View(View),
}

/// Total-order broadcast and membership, as the node needs them.
///
/// Every member receives the same positions with the same entries in the
/// same order. A membership change that takes a position is announced as
/// [`Event::View`] (whose `seqno` is that position) just before the
/// position itself, so a node's state changes before its watermark passes
/// the view; a subscription that starts past the current view's position
/// announces that view first. A consensus-based implementation maps positions to log
/// indexes, forwards submissions from followers to its leader, answers
/// [`TotalOrder::sync_point`] with a read-index round, and lets learners
/// subscribe before they vote.
pub trait TotalOrder: Send + Sync + 'static {
    /// The node this handle belongs to.
    fn node_id(&self) -> NodeId;

    /// Submits an encoded write-set for ordering. `Ok` means it was accepted
    /// for ordering and will be delivered to every member of the primary
    /// component; the verdict comes with the delivery.
    ///
    /// An attempt that may have been ordered (the leader went away after
    /// the frame was sent) is retried once a leader is known again, until the
    /// submission times out; the certifier recognises a write-set delivered
    /// twice, so a retry settles the outcome instead of leaving it open.
    ///
    /// Errors: [`OrderError::NotPrimary`] (definitely not ordered),
    /// [`OrderError::OutcomeUnknown`] (maybe ordered), [`OrderError::TooLarge`],
    /// [`OrderError::Closed`].
    fn submit(&self, frame: Bytes) -> OrderFuture<'_, ()>;

    /// A position at or after every position ordered before this call began
    /// anywhere in the primary component (Galera's causal sync point).
    ///
    /// Errors: [`OrderError::NotPrimary`] when this node cannot know it.
    fn sync_point(&self) -> OrderFuture<'_, Seqno>;

    /// Starts delivering events for the positions after `after`.
    ///
    /// # Errors
    /// [`OrderError::StateTransferRequired`] when those positions are no
    /// longer retained; [`OrderError::UnknownPosition`] when `after` is
    /// beyond the cluster's last position.
    fn subscribe(&self, after: Seqno) -> Result<Box<dyn EventStream>, OrderError>;

    /// The node stored a checkpoint at `upto`: after a restart it rebuilds
    /// its state from the positions after it, so this node's copy of the
    /// positions at or below `upto` may be dropped. Until then the layer
    /// keeps them, whatever its own retention says.
    fn release(&self, upto: Seqno) {
        let _ = upto;
    }

    /// A number for this node's next incarnation, at least `floor` (the
    /// wall clock's) and larger than every number this layer gave before,
    /// kept durably: transaction ids stamped with it never repeat across
    /// restarts, even if the clock stepped back. By default `floor`, for a
    /// layer that keeps nothing.
    ///
    /// # Errors
    /// [`OrderError::Storage`] when the number cannot be kept.
    fn next_epoch(&self, floor: u64) -> Result<u64, OrderError> {
        Ok(floor)
    }

    /// Tells the ordering layer how its consumer (the node reading the
    /// subscription) stands. Only a [`ConsumerState::Synced`] node asks the
    /// others for flow control, so a node that is joining, catching up,
    /// receiving a state transfer, failed or gone never holds the cluster
    /// back (Galera's rule: only SYNCED nodes send flow control); and a
    /// [`ConsumerState::Stopped`] one holds back not even its own ordering
    /// layer. A new subscription starts [`ConsumerState::CatchingUp`].
    /// Ignored by default.
    fn set_consumer_state(&self, state: ConsumerState) {
        let _ = state;
    }

    /// The protocol this node speaks and the one its cluster runs at
    /// (see [`crate::protocol`]): the node writes its write-sets and
    /// operations in the cluster's formats, and fails on a position in a
    /// format newer than its own. By default both
    /// [`Protocol::CURRENT`](crate::protocol::Protocol::CURRENT), for a
    /// layer whose members all run one build.
    fn protocols(&self) -> crate::protocol::Protocols {
        crate::protocol::Protocols::default()
    }

    /// Flow-control counters for this node. Layers without flow control
    /// report zeros.
    fn flow_control(&self) -> FlowControlStats {
        FlowControlStats::default()
    }
}

/// Requests the embedding program's nodes send each other over the ordering
/// layer's connections, as opaque bytes (the reference store's state
/// transfer rides on it). Register one with the ordering layer.
pub trait PeerService: Send + Sync + 'static {
    /// Answers `request` from node `from`. An `Err` reaches the caller as
    /// [`OrderError::Peer`] with [`super::PeerError::Remote`].
    fn handle(&self, from: NodeId, request: Bytes) -> PeerFuture<'_>;
}

/// The boxed answer of a [`PeerService`].
pub type PeerFuture<'a> = Pin<Box<dyn Future<Output = Result<Bytes, RemoteError>> + Send + 'a>>;

/// How the consumer of an ordering layer's subscription stands (see
/// [`TotalOrder::set_consumer_state`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConsumerState {
    /// Caught up and applying as entries arrive: its lag may ask for flow
    /// control.
    Synced,
    /// Reading, but behind the point it joined (or outside the primary
    /// component): the ordering layer keeps within reach of it, but the
    /// cluster does not wait for it.
    CatchingUp,
    /// Not reading: failed, shut down, or being replaced by a state
    /// transfer. Nothing waits for it; if it falls out of the retained log
    /// it comes back by a full state transfer.
    Stopped,
}

/// Flow control as one node sees it (Galera's `wsrep_flow_control_%`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FlowControlStats {
    /// How long this node has held back new submissions because some member
    /// lagged too far behind, in total since it started.
    pub paused: Duration,
    /// Times this node asked the cluster to pause because it lagged.
    pub pauses_sent: u64,
    /// Whether admission is paused right now.
    pub active: bool,
}

/// The ordered event feed for one node.
pub trait EventStream: Send {
    /// The next event. Must be cancel-safe: dropping the future before it
    /// completes loses nothing.
    ///
    /// Errors: [`OrderError::Closed`], or
    /// [`OrderError::StateTransferRequired`] when the node fell further behind
    /// than the layer retains.
    fn next(&mut self) -> OrderFuture<'_, Event>;
}
