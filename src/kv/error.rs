//! Store errors.

use thiserror::Error;

use crate::node;

/// A storage engine failure.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The engine could not read or write.
    #[error("storage I/O failed: {0}")]
    Io(String),
    /// Stored bytes do not have the expected layout.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

/// Why a store operation failed. Certification conflicts are not errors but
/// [`node::CommitOutcome::Conflict`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum KvError {
    /// The replication node refused or failed.
    #[error(transparent)]
    Node(#[from] node::Error),
    /// The storage engine failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
}
