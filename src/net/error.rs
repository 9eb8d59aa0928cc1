//! Transport errors.

use thiserror::Error;

use crate::frame::FrameError;

/// Why a message could not be exchanged with a peer.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum NetError {
    /// No connection to the peer right now; nothing was sent.
    #[error("peer {addr} unreachable: {reason}")]
    Unreachable {
        /// The peer's address.
        addr: String,
        /// What failed.
        reason: String,
    },
    /// The connection broke after the request was sent; the peer may or may
    /// not have acted on it.
    #[error("connection to {addr} lost with the request in flight")]
    Disconnected {
        /// The peer's address.
        addr: String,
    },
    /// No answer within the deadline; the peer may or may not have acted.
    #[error("no answer from {addr} within the deadline")]
    Timeout {
        /// The peer's address.
        addr: String,
    },
    /// The peer refused the handshake (another cluster, another node id).
    #[error("peer {addr} refused the connection: {reason}")]
    Refused {
        /// The peer's address.
        addr: String,
        /// The peer's reason.
        reason: String,
    },
    /// A frame failed its checks.
    #[error("bad frame: {0}")]
    Frame(#[from] FrameError),
    /// The transport was shut down.
    #[error("transport closed")]
    Closed,
}

impl NetError {
    /// Whether the peer certainly did not receive the request.
    #[must_use]
    pub fn not_sent(&self) -> bool {
        matches!(
            self,
            NetError::Unreachable { .. } | NetError::Refused { .. } | NetError::Closed
        )
    }
}
