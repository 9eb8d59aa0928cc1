//! Ordering-layer errors.

use thiserror::Error;

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
    #[error("peer request failed: {0}")]
    Peer(String),
    /// A membership change (join, leave) could not be made.
    #[error("membership change failed: {0}")]
    Membership(String),
    /// The node is not a member of this cluster.
    #[error("{node} is not a member of this cluster")]
    UnknownMember {
        /// The node.
        node: NodeId,
    },
    /// The ordering layer shut down, or a newer subscription replaced this one.
    #[error("ordering layer closed")]
    Closed,
}
