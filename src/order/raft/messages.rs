//! What the ordering layer's nodes say to each other.

use bytes::Bytes;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};

use super::types::{SnapshotMeta, TypeConfig, Vote};
use crate::order::RemoteError;

/// A request from one node to another.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum PeerRequest {
    Append(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<TypeConfig>),
    PreVote(VoteRequest<TypeConfig>),
    /// A snapshot point (a raft snapshot carries no data here).
    Snapshot {
        vote: Vote,
        meta: SnapshotMeta,
    },
    /// Write-set frames a follower forwards to the leader, in submit order.
    Forward(Vec<Bytes>),
    /// A follower asks the leader for a sync point.
    ReadIndex,
    /// Flow control: the sender lags too far (`pause`) or caught up.
    FlowControl {
        pause: bool,
    },
    /// Add `node`, reachable at `addr`, as a learner (sent to any member,
    /// which passes it to the leader).
    Join {
        node: u64,
        addr: String,
    },
    /// Remove `node` from the cluster (passed to the leader likewise).
    Leave {
        node: u64,
    },
    /// A request for the embedding program's peer service.
    Service(Bytes),
}

/// The answer to a [`PeerRequest`] of the same name. `Err` carries a
/// remote failure as its text ([`RemoteError`]): reported, never
/// interpreted.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum PeerResponse {
    Append(Result<AppendEntriesResponse<TypeConfig>, RemoteError>),
    Vote(Result<VoteResponse<TypeConfig>, RemoteError>),
    Snapshot(Result<SnapshotResponse<TypeConfig>, RemoteError>),
    Forward(Vec<Forwarded>),
    ReadIndex(Result<u64, Redirect>),
    FlowControl,
    Membership(Result<(), RemoteError>),
    /// `None` when the node has no peer service.
    Service(Option<Result<Bytes, RemoteError>>),
    /// The caller may not ask this (see `admission`); nothing was done.
    Refused(String),
}

/// What became of one forwarded frame.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Forwarded {
    /// Committed by the leader: every member will deliver it.
    Ordered,
    /// Not appended anywhere: the receiver is not the leader.
    NotLeader(Redirect),
    /// Appended, then discarded by a leader change: it may still commit.
    Discarded(Redirect),
    /// The leader failed; the frame may or may not be ordered.
    Failed(RemoteError),
    /// Flow control held it back while a node caught up: not appended.
    Paused,
    /// Larger than the leader's entry size limit: not appended.
    TooLarge { len: usize, max: usize },
}

/// Where the leader is, as far as the answering node knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Redirect {
    pub(crate) leader: Option<u64>,
}
