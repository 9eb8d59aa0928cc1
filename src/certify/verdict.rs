//! What certification decides for one delivered write-set.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::ids::Seqno;
use crate::writeset::KeyKind;

/// The decision for one write-set. Every node reaches the same verdict for
/// the same seqno.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// Commit. The write-set may start applying once every write-set at or
    /// below `depends_on` has been applied.
    Commit {
        /// The highest seqno this write-set must apply after.
        depends_on: Seqno,
    },
    /// Abort; nothing is applied.
    Abort {
        /// Why.
        reason: AbortReason,
    },
    /// The same transaction (origin and transaction id) was already certified
    /// at `first_seqno`; this delivery is ignored and reports that outcome.
    Duplicate {
        /// Where the transaction was first certified.
        first_seqno: Seqno,
        /// What was decided there.
        first: FirstOutcome,
    },
}

/// The recorded outcome of a transaction's first certification.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum FirstOutcome {
    /// It committed.
    Committed,
    /// It aborted.
    Aborted(AbortReason),
}

/// Why a write-set aborted. All of these are expected outcomes of optimistic
/// concurrency, except [`AbortReason::Malformed`] and
/// [`AbortReason::InvalidReadView`], which mean the submitter is broken.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum AbortReason {
    /// A key this write-set declares conflicts with a write-set committed
    /// after its read view (first-committer-wins).
    KeyConflict {
        /// The first conflicting key in key order.
        key: Bytes,
        /// How this write-set declared it.
        kind: KeyKind,
        /// The newest conflicting commit.
        conflicting_seqno: Seqno,
    },
    /// Serializable only: a key this transaction read was written by a
    /// write-set committed after its read view.
    ReadConflict {
        /// The first such key in key order.
        key: Bytes,
        /// The newest write to it.
        conflicting_seqno: Seqno,
    },
    /// The read view is older than the certification window, so the
    /// certification index no longer covers the interval to check.
    ReadViewTooOld {
        /// The write-set's read view.
        read_view: Seqno,
        /// The oldest read view certifiable at this seqno.
        oldest_allowed: Seqno,
    },
    /// The read view is not before the write-set's own seqno.
    InvalidReadView {
        /// The write-set's read view.
        read_view: Seqno,
    },
    /// The delivered bytes are not a valid write-set.
    Malformed {
        /// The decoder's message.
        reason: String,
    },
}

impl AbortReason {
    /// The bytes it holds beyond its own size (a key, a message).
    pub(crate) fn held_bytes(&self) -> usize {
        match self {
            AbortReason::KeyConflict { key, .. } | AbortReason::ReadConflict { key, .. } => {
                key.len()
            }
            AbortReason::Malformed { reason } => reason.len(),
            AbortReason::ReadViewTooOld { .. } | AbortReason::InvalidReadView { .. } => 0,
        }
    }

    /// Whether running the transaction again may succeed.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            AbortReason::KeyConflict { .. }
                | AbortReason::ReadConflict { .. }
                | AbortReason::ReadViewTooOld { .. }
        )
    }
}

impl std::fmt::Display for AbortReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |key: &Bytes| String::from_utf8_lossy(key).into_owned();
        match self {
            AbortReason::KeyConflict {
                key,
                kind,
                conflicting_seqno,
            } => write!(
                f,
                "key {:?} ({kind:?}) conflicts with the commit at seqno {conflicting_seqno}",
                show(key)
            ),
            AbortReason::ReadConflict {
                key,
                conflicting_seqno,
            } => write!(
                f,
                "key {:?} was read and then written by the commit at seqno {conflicting_seqno}",
                show(key)
            ),
            AbortReason::ReadViewTooOld {
                read_view,
                oldest_allowed,
            } => write!(
                f,
                "read view {read_view} is older than the certification window (oldest {oldest_allowed})"
            ),
            AbortReason::InvalidReadView { read_view } => {
                write!(
                    f,
                    "read view {read_view} is not before the write-set's seqno"
                )
            }
            AbortReason::Malformed { reason } => write!(f, "malformed write-set: {reason}"),
        }
    }
}
