//! The value a commit returns.

use crate::certify::AbortReason;
use crate::ids::Seqno;

/// How a transaction ended. Both variants are normal outcomes.
#[must_use = "a conflict means the transaction did not commit"]
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CommitOutcome {
    /// Committed at `seqno`, and applied on this node. For a transaction with
    /// no writes nothing is replicated and `seqno` is its read view: it
    /// serializes there.
    Committed {
        /// The commit's position in the global order.
        seqno: Seqno,
    },
    /// Certification aborted it; nothing was applied anywhere.
    Conflict(Conflict),
}

/// A certification abort.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The position where the write-set was certified.
    pub seqno: Seqno,
    /// Why it aborted.
    pub reason: AbortReason,
}

impl Conflict {
    /// Whether running the transaction again may succeed.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        self.reason.is_retryable()
    }
}

impl CommitOutcome {
    /// The commit seqno, if it committed.
    #[must_use]
    pub fn committed_seqno(&self) -> Option<Seqno> {
        match self {
            CommitOutcome::Committed { seqno } => Some(*seqno),
            CommitOutcome::Conflict(_) => None,
        }
    }

    /// Whether it committed.
    #[must_use]
    pub fn is_committed(&self) -> bool {
        matches!(self, CommitOutcome::Committed { .. })
    }
}
