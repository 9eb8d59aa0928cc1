//! Ordering-layer errors.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::Cause;

use crate::ids::{NodeId, Seqno};

/// Why the ordering layer could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum OrderError {
    /// This node is not in the primary component; nothing was ordered.
    #[error("not in primary component")]
    NotPrimary,
    /// The submission may or may not have been ordered (for example the
    /// leader changed while it was in flight). Never retry blindly.
    #[error("outcome unknown: the submission may or may not have been ordered")]
    OutcomeUnknown,
    /// The entry is larger than the layer accepts.
    #[error("entry of {len} bytes exceeds the ordering limit of {max} bytes")]
    TooLarge {
        /// Entry size.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// Positions after `requested` are no longer retained; the node needs a
    /// full state transfer.
    #[error(
        "positions after {requested} are gone (first retained is {first_retained}): state transfer required"
    )]
    StateTransferRequired {
        /// Where the node asked to resume.
        requested: Seqno,
        /// The oldest retained position.
        first_retained: Seqno,
    },
    /// The node asked to resume from a position the cluster never reached.
    #[error("position {requested} is beyond the cluster's last position {last}")]
    UnknownPosition {
        /// Where the node asked to resume.
        requested: Seqno,
        /// The cluster's last position.
        last: Seqno,
    },
    /// Flow control held the submission back for its whole allowed time
    /// while a lagging node caught up. Nothing was ordered.
    #[error(
        "flow control paused admission for {waited:?} while a node caught up; nothing was ordered"
    )]
    Paused {
        /// How long it waited.
        waited: std::time::Duration,
    },
    /// A request to another node's peer service failed.
    #[error("peer request to {node} failed: {source}")]
    Peer {
        /// The node asked.
        node: NodeId,
        /// Why.
        #[source]
        source: PeerError,
    },
    /// A membership change (join, leave) could not be made.
    #[error("membership change failed: {0}")]
    Membership(#[source] PeerError),
    /// The node is not a member of this cluster.
    #[error("{node} is not a member of this cluster")]
    UnknownMember {
        /// The node.
        node: NodeId,
    },
    /// The ordering layer shut down, or a newer subscription replaced this one.
    #[error("ordering layer closed")]
    Closed,
    /// The frame is of a kind only the ordering layer orders (a change of
    /// the cluster protocol); nothing was ordered.
    #[error("frames of kind {kind:?} are the ordering layer's own; nothing was ordered")]
    Reserved {
        /// The frame's kind.
        kind: crate::frame::FrameKind,
    },
    /// The ordering layer's own storage failed.
    #[error("the ordering layer's storage failed: {0}")]
    Storage(#[source] Cause),
    /// The ordering core stopped after a fatal error (its log could not be
    /// written or synced, say). Nothing more is ordered here; only a
    /// restart, from what is durable, brings the node back.
    #[error("the ordering core stopped: {0}")]
    Stopped(#[source] Cause),
}

/// Why a request to another node (a peer call, a membership change passed
/// to the leader) failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PeerError {
    /// The node could not be reached.
    #[error("unreachable: {0}")]
    Unreachable(#[source] Cause),
    /// The node did not answer in time.
    #[error("no answer in {after:?}")]
    TimedOut {
        /// How long the caller waited.
        after: Duration,
    },
    /// A partition cuts the node off from this one.
    #[error("cut off from this node")]
    Disconnected,
    /// No leader is known to pass the request to.
    #[error("no leader is known")]
    NoLeader,
    /// The answer is not one the request can have.
    #[error("answered with a malformed response")]
    Malformed,
    /// The node has no peer service registered.
    #[error("serves no peer requests")]
    NoService,
    /// The node refused the request from this one (it is not a member, or
    /// may not ask this); nothing was done.
    #[error("refused: {0}")]
    Refused(String),
    /// The node handled the request and failed; its reason is the source.
    #[error("{0}")]
    Remote(#[source] RemoteError),
    /// This node's own raft refused the change.
    #[error("{0}")]
    Raft(#[source] Cause),
    /// Removing the node would leave fewer reachable voters than a
    /// majority of those that remain: the cluster could never commit
    /// again. Nothing was changed.
    #[error(
        "removing {node} would leave {reachable} of the {voters} remaining voters reachable, \
         not a majority: bring a voter back first"
    )]
    WouldLoseQuorum {
        /// The node asked to be removed.
        node: NodeId,
        /// Remaining voters the leader heard from lately.
        reachable: usize,
        /// Voters that would remain.
        voters: usize,
    },
}

/// An error another node reported, as the text it sent: it crossed the
/// network, so it is shown, never interpreted.
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize, Deserialize)]
#[error("{message}")]
pub struct RemoteError {
    message: String,
}

impl RemoteError {
    /// The text of `err`, to send back to the node that asked.
    pub fn new(err: &(dyn std::error::Error + 'static)) -> RemoteError {
        RemoteError {
            message: err.to_string(),
        }
    }

    /// What the other node said.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }
}
