//! Store errors.

use thiserror::Error;

use crate::Cause;
use crate::frame::FrameError;
use crate::node;

/// A storage engine failure.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The engine could not read or write.
    #[error("storage I/O failed: {0}")]
    Io(#[source] Cause),
    /// A stored version key does not have the layout's shape.
    #[error("stored data is corrupt: bad version key {key:02x?}")]
    BadVersionKey {
        /// The key as stored.
        key: Vec<u8>,
    },
    /// A stored version value has an unknown tag.
    #[error("stored data is corrupt: bad version value {value:02x?}")]
    BadVersionValue {
        /// The value as stored.
        value: Vec<u8>,
    },
    /// The stored visible watermark is not eight bytes.
    #[error("stored data is corrupt: the visible watermark has {len} bytes")]
    BadWatermark {
        /// Its length.
        len: usize,
    },
    /// The stored certification checkpoint does not decode.
    #[error("stored data is corrupt: certification checkpoint: {0}")]
    BadCheckpoint(#[source] FrameError),
    /// The node shut down before the engine's work ran.
    #[error("the store shut down")]
    ShutDown,
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
