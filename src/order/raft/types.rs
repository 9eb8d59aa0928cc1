//! The openraft type configuration. Nothing here leaves the `raft` module.

use std::fmt;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// One submitted write-set frame: the application data of a log entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Submission(pub(crate) Bytes);

impl fmt::Display for Submission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "write-set({} bytes)", self.0.len())
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

pub(crate) type LogEntry = openraft::alias::EntryOf<TypeConfig>;
pub(crate) type LogId = openraft::alias::LogIdOf<TypeConfig>;
pub(crate) type Vote = openraft::alias::VoteOf<TypeConfig>;
pub(crate) type Membership = openraft::alias::StoredMembershipOf<TypeConfig>;
pub(crate) type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;
