//! Errors from the node's public API.

use std::time::Duration;

use thiserror::Error;

use crate::apply::ApplyError;
use crate::frame::FrameError;
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
    Failed(String),
    /// The node was shut down.
    #[error("node is shut down")]
    ShutDown,
    /// A setting is unusable.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The ordering layer reported an error the node cannot handle.
    #[error(transparent)]
    Order(OrderError),
    /// The storage engine failed during start-up.
    #[error(transparent)]
    Apply(#[from] ApplyError),
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
