//! A snapshot of a node's replication state, for operators and waiters.

use super::error::Failure;
use super::state::NodeState;
use crate::certify::{CertDigest, CertStats};
use crate::ids::{ClusterTime, NodeId, Seqno};
use crate::order::View;

/// Replication status, published after every step of the node's core.
///
/// The watermarks satisfy `last_visible <= last_applied <= last_certified
/// <= last_delivered`, except while a restarted node re-certifies
/// positions its engine had already made visible (then `last_visible` is
/// ahead and `recovering` is set). docs/glossary.md maps them to Galera's
/// `wsrep_*` names.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Status {
    /// This node.
    pub node_id: NodeId,
    /// Where the node stands.
    pub state: NodeState,
    /// The last view received.
    pub view: Option<View>,
    /// The last position received from the ordering layer.
    pub last_delivered: Seqno,
    /// The last position certified: its verdict (commit or abort) is decided.
    pub last_certified: Seqno,
    /// Every position at or below this is applied here (or had nothing to
    /// apply), not necessarily visible yet.
    pub last_applied: Seqno,
    /// Every position at or below this is applied and visible to readers
    /// here: new read views start at it.
    pub last_visible: Seqno,
    /// The cluster time at `last_visible`: "now" for a read view taken at
    /// it.
    pub visible_time: ClusterTime,
    /// Positions between delivery and the visible watermark.
    pub apply_queue: usize,
    /// The digest of every verdict up to `last_certified`: two nodes at the
    /// same `last_certified` with different digests decided different
    /// histories. `None` when it is unknown here (restored from a
    /// checkpoint written before digests existed).
    pub cert_digest: Option<CertDigest>,
    /// Certification verdict counts on this node, for all origins.
    pub cert: CertStats,
    /// Local transactions certification committed.
    pub local_commits: u64,
    /// Local transactions that certification aborted.
    pub local_cert_failures: u64,
    /// Delivered entries that were not valid write-sets.
    pub malformed: u64,
    /// Keys in the certification index.
    pub cert_index_keys: usize,
    /// Bytes the certification index and duplicate table are counted as
    /// (bounded by [`crate::certify::CertConfig::index_bytes`]).
    pub cert_index_bytes: u64,
    /// Whether the node is re-certifying positions it had already applied.
    pub recovering: bool,
    /// Why the node failed, when it did.
    pub failure: Option<Failure>,
    /// The node failed because the positions it lacks are gone from every
    /// log: only a full state transfer (SST) can bring it back.
    pub needs_state_transfer: bool,
}
