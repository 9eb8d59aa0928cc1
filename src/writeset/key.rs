//! Certification keys and their kinds.

use serde::{Deserialize, Serialize};

/// How a transaction touches a key, with Galera's meaning.
///
/// The variants are ordered by strength: when one transaction declares the
/// same key twice, the stronger kind is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum KeyKind {
    /// A coarse resource many transactions use together, such as a table.
    Shared,
    /// A row that is read and must not change underneath, but is not itself
    /// modified (for example a foreign-key parent).
    Reference,
    /// A row that is modified.
    Update,
    /// A row that is created or deleted.
    Exclusive,
}

impl KeyKind {
    /// Every kind, weakest first.
    pub const ALL: [KeyKind; 4] = [
        KeyKind::Shared,
        KeyKind::Reference,
        KeyKind::Update,
        KeyKind::Exclusive,
    ];

    /// Whether a key of this kind records a write to the row.
    #[must_use]
    pub const fn is_write(self) -> bool {
        matches!(self, KeyKind::Update | KeyKind::Exclusive)
    }

    /// A dense index for per-kind tables.
    #[must_use]
    pub(crate) const fn index(self) -> usize {
        match self {
            KeyKind::Shared => 0,
            KeyKind::Reference => 1,
            KeyKind::Update => 2,
            KeyKind::Exclusive => 3,
        }
    }
}

/// The isolation level a transaction asks certification to enforce. It
/// travels in the write-set, so every node certifies it the same way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Isolation {
    /// Snapshot isolation with first-committer-wins: abort when a key this
    /// transaction writes was written by another commit after its read view.
    #[default]
    Snapshot,
    /// Serializable: additionally abort when a key this transaction read was
    /// written after its read view.
    Serializable,
}
