//! Errors from the node's public API.

use std::time::Duration;

use thiserror::Error;

use super::state::NodeState;
use crate::apply::ApplyError;
use crate::frame::FrameError;
use crate::ids::{NodeId, Seqno};
use crate::order::OrderError;

/// Why a node operation failed. A certification conflict is not an error:
/// it is [`super::CommitOutcome::Conflict`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Error {
    /// This node is not in the primary component, so it cannot commit or
    /// serve a causal read. Nothing was committed.
    #[error("not in primary component")]
    NotPrimary,
    /// The transaction was submitted but its outcome could not be learned: it
    /// may or may not have committed. Do not retry blindly.
    #[error("outcome unknown: the transaction may or may not have committed")]
    OutcomeUnknown,
    /// A causal wait took longer than the configured timeout.
    #[error("timed out after {waited:?} waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: &'static str,
        /// For how long.
        waited: Duration,
    },
    /// The transaction's write-set is larger than the configured maximum.
    #[error("write-set of at least {len} bytes exceeds the maximum of {max} bytes")]
    WriteSetTooLarge {
        /// Size reached.
        len: usize,
        /// Configured maximum.
        max: usize,
    },
    /// The node stopped applying and refuses all work.
    #[error("node failed: {0}")]
    Failed(#[source] Failure),
    /// Only a synced node can do this (for example provide a state
    /// transfer); this one is elsewhere.
    #[error("this node is {state:?}, not synced")]
    NotSynced {
        /// Where the node stands.
        state: NodeState,
    },
    /// The node was shut down.
    #[error("node is shut down")]
    ShutDown,
    /// A setting is unusable.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// The ordering layer reported an error the node cannot handle.
    #[error(transparent)]
    Order(OrderError),
    /// The storage engine failed during start-up.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// The write-set could not be encoded (other than for its size).
    #[error("encoding a write-set failed: {0}")]
    Encode(#[source] FrameError),
    /// Stored replication state (a certification checkpoint) is damaged.
    #[error("stored certification checkpoint is unusable: {0}")]
    Checkpoint(#[from] FrameError),
}

impl From<OrderError> for Error {
    fn from(err: OrderError) -> Self {
        match err {
            OrderError::NotPrimary => Error::NotPrimary,
            OrderError::OutcomeUnknown => Error::OutcomeUnknown,
            OrderError::TooLarge { len, max } => Error::WriteSetTooLarge { len, max },
            OrderError::Closed => Error::ShutDown,
            other => Error::Order(other),
        }
    }
}

/// Why a node failed: it stops applying and refuses all work from then on,
/// because a replica that cannot follow what the cluster decided would
/// diverge ([`super::NodeState::Failed`]).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Failure {
    /// The engine could not apply a certified write-set.
    #[error("applying seqno {seqno} failed: {source}")]
    Apply {
        /// The write-set's position.
        seqno: Seqno,
        /// The engine's error.
        #[source]
        source: ApplyError,
    },
    /// The engine could not make applied positions visible.
    #[error("making seqno {upto} visible failed: {source}")]
    MakeVisible {
        /// The watermark it was asked to reach.
        upto: Seqno,
        /// The engine's error.
        #[source]
        source: ApplyError,
    },
    /// The ordering layer failed in a way the node cannot recover from.
    #[error("ordering layer: {0}")]
    Order(#[source] OrderError),
    /// A position holds a frame in a format newer than this node's
    /// protocol reads: the cluster was upgraded past this build.
    #[error(
        "seqno {seqno} holds a {kind:?} in format {version}, newer than protocol {protocol} reads: the cluster was upgraded past this node; run the cluster's build"
    )]
    NewerFormat {
        /// The position.
        seqno: Seqno,
        /// What the frame holds.
        kind: crate::frame::FrameKind,
        /// Its format version.
        version: u16,
        /// The protocol this node speaks.
        protocol: crate::protocol::Protocol,
    },
}

impl ConfigError {
    /// [`ConfigError::NotPositive`] for the first of `settings` that is
    /// zero.
    pub(crate) fn require_positive(settings: &[(&'static str, u64)]) -> Result<(), ConfigError> {
        match settings.iter().find(|(_, value)| *value == 0) {
            Some(&(setting, _)) => Err(ConfigError::NotPositive { setting }),
            None => Ok(()),
        }
    }
}

/// A setting of a node or store that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A count, size or duration is zero.
    #[error("{setting} must be positive")]
    NotPositive {
        /// The setting.
        setting: &'static str,
    },
    /// A setting exceeds what the format can carry.
    #[error("{setting} must be at most {max}")]
    AboveMax {
        /// The setting.
        setting: &'static str,
        /// Its largest usable value.
        max: u64,
    },
    /// Fewer queue slots than apply workers would leave workers idle forever.
    #[error("apply_queue must be at least apply_workers")]
    QueueBelowWorkers,
    /// The ordering handle was started for another node.
    #[error("ordering handle belongs to {order}, not {node}")]
    ForeignOrder {
        /// The handle's node.
        order: NodeId,
        /// This node.
        node: NodeId,
    },
}
