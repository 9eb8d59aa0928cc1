//! The openraft type configuration. Nothing here leaves the `raft` module.

use std::fmt;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::ids::{ClusterTime, NodeId};

/// One submitted frame (a write-set or an operation), the application data
/// of a log entry, with the time the leader ordered it: the source of the
/// cluster time ([`ClusterTime`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Submission {
    pub(crate) frame: Bytes,
    pub(crate) stamp: ClusterTime,
}

impl Submission {
    /// `frame` as the leader orders it now, by this node's clock.
    pub(crate) fn stamped(frame: Bytes, node: NodeId) -> Self {
        Submission {
            frame,
            stamp: crate::clock::now(node),
        }
    }
}

impl fmt::Display for Submission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "frame({} bytes) at {}", self.frame.len(), self.stamp)
    }
}

/// The application data of a version 1 log record: a frame without a
/// stamp. Read only, to open logs written before stamps existed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SubmissionV1(pub(crate) Bytes);

impl fmt::Display for SubmissionV1 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "frame({} bytes)", self.0.len())
    }
}

/// Tokio, with raft's random choices (election timeouts, first ticks) drawn
/// from a seeded generator: [`RaftOrder::start`](super::RaftOrder::start)
/// seeds it from the machine, or from the seed of a [`crate::simulation`].
pub(crate) type Runtime =
    openraft::rt::deterministic_rng::DeterministicRng<openraft::impls::TokioRuntime>;

openraft::declare_raft_types!(
    pub(crate) TypeConfig:
        D = Submission,
        R = (),
        NodeId = u64,
        Node = openraft::BasicNode,
        AsyncRuntime = Runtime,
);

openraft::declare_raft_types!(
    /// The type configuration of version 1 log records, for reading them.
    pub(crate) TypeConfigV1:
        D = SubmissionV1,
        R = (),
        NodeId = u64,
        Node = openraft::BasicNode,
        AsyncRuntime = Runtime,
);

pub(crate) type LogEntry = openraft::alias::EntryOf<TypeConfig>;
pub(crate) type LogEntryV1 = openraft::alias::EntryOf<TypeConfigV1>;
pub(crate) type LogId = openraft::alias::LogIdOf<TypeConfig>;
pub(crate) type Vote = openraft::alias::VoteOf<TypeConfig>;
pub(crate) type Membership = openraft::alias::StoredMembershipOf<TypeConfig>;
pub(crate) type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;
