//! Identifiers shared by every layer: positions in the total order, nodes and
//! transactions.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A position in the global total order.
///
/// Seqno 1 is the first position ever delivered; [`Seqno::ZERO`] means "nothing
/// yet" (an empty store, or a read view taken before any commit).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Seqno(u64);

impl Seqno {
    /// The position before the first one.
    pub const ZERO: Seqno = Seqno(0);

    /// Wraps a raw position.
    #[must_use]
    pub const fn new(raw: u64) -> Self {
        Seqno(raw)
    }

    /// The raw position.
    #[must_use]
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The next position.
    ///
    /// # Panics
    /// Panics when the 64-bit seqno space is exhausted, which at a billion
    /// write-sets per second takes 584 years.
    #[must_use]
    pub fn next(self) -> Self {
        Seqno(self.0.checked_add(1).expect("seqno space exhausted"))
    }

    /// The number of positions from `earlier` to `self`, or zero when
    /// `earlier` is not before `self`.
    #[must_use]
    pub const fn distance_from(self, earlier: Seqno) -> u64 {
        self.0.saturating_sub(earlier.0)
    }

    /// `self` moved back by `count` positions, stopping at [`Seqno::ZERO`].
    #[must_use]
    pub const fn saturating_sub(self, count: u64) -> Self {
        Seqno(self.0.saturating_sub(count))
    }
}

impl fmt::Display for Seqno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The identity of a node in a cluster. Unique within the cluster and stable
/// across restarts.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct NodeId(u64);

impl NodeId {
    /// Wraps a raw node id.
    #[must_use]
    pub const fn new(raw: u64) -> Self {
        NodeId(raw)
    }

    /// The raw node id.
    #[must_use]
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node-{}", self.0)
    }
}

/// A transaction's identity on its origin node.
///
/// `epoch` changes every time a node process starts, so counters that restart
/// at zero never collide with transactions an earlier incarnation submitted
/// and which may still be delivered; `counter` increases within one epoch.
/// Together with the origin [`NodeId`] it lets certification recognise a
/// retried submission of the same transaction.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct TxnId {
    /// The origin process's incarnation.
    pub epoch: u64,
    /// The transaction's number within that incarnation.
    pub counter: u64,
}

impl TxnId {
    /// Builds a transaction id.
    #[must_use]
    pub const fn new(epoch: u64, counter: u64) -> Self {
        TxnId { epoch, counter }
    }
}

impl fmt::Display for TxnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.epoch, self.counter)
    }
}

/// Time as the cluster agrees on it: milliseconds since the Unix epoch.
///
/// The ordering layer's leader stamps every entry it orders with its clock;
/// the cluster time at a position is the largest stamp at or before it, so
/// it never runs backwards and every node computes the same value for the
/// same position, whatever its own clock says. Decisions that depend on
/// time (key expiry) read it, never a node's clock. [`ClusterTime::ZERO`]
/// is "no time yet" (an empty log, or an entry nobody stamped).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct ClusterTime(u64);

impl ClusterTime {
    /// Before any stamp.
    pub const ZERO: ClusterTime = ClusterTime(0);

    /// Wraps milliseconds since the Unix epoch.
    #[must_use]
    pub const fn from_millis(millis: u64) -> Self {
        ClusterTime(millis)
    }

    /// Milliseconds since the Unix epoch.
    #[must_use]
    pub const fn as_millis(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ClusterTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seqno_arithmetic_saturates_at_zero() {
        assert_eq!(Seqno::new(5).distance_from(Seqno::new(2)), 3);
        assert_eq!(Seqno::new(2).distance_from(Seqno::new(5)), 0);
        assert_eq!(Seqno::new(2).saturating_sub(5), Seqno::ZERO);
        assert_eq!(Seqno::ZERO.next(), Seqno::new(1));
    }
}
