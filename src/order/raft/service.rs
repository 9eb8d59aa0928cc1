//! Answers peers' requests: raft RPCs, forwarded write-sets, read indexes.

use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use futures_util::future::join_all;
use openraft::ReadPolicy;
use openraft::error::{ClientWriteError, RaftError};
use openraft::raft::AppendEntriesResponse;
use openraft::storage::Snapshot;

use super::admission::{self, Ask};
use super::config::RaftOrderConfig;
use super::delivery::Raft;
use super::flow::{FlowControl, Request};
use super::membership;
use super::messages::{Forwarded, PeerRequest, PeerResponse, Redirect};
use super::network::Peers;
use super::types::{Submission, Vote};
use super::upgrade;
use crate::ids::NodeId;
use crate::net::{Caller, Handler};
use crate::order::{PeerError, PeerService, RemoteError};
use openraft::vote::RaftLeaderId;

/// When the leader last reached this node, and the commit index it
/// announced, read by the monitor's tick.
#[derive(Default)]
pub(crate) struct LeaderContact {
    last: Mutex<Option<Instant>>,
    /// The highest commit index a leader announced in an append this node
    /// took: the cluster's position even while this node's own log is far
    /// behind it (raft's own commit index is capped by the local log).
    leader_commit: AtomicU64,
}

impl LeaderContact {
    /// The leader's append, announcing `leader_commit`, succeeded.
    pub(crate) fn touch(&self, leader_commit: u64) {
        self.leader_commit
            .fetch_max(leader_commit, AtomicOrdering::AcqRel);
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
    }

    /// The highest commit index a leader announced to this node.
    pub(crate) fn leader_commit(&self) -> u64 {
        self.leader_commit.load(AtomicOrdering::Acquire)
    }

    pub(crate) fn since_ms(&self) -> Option<u64> {
        self.last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .map(|at| u64::try_from(at.elapsed().as_millis()).unwrap_or(u64::MAX))
    }
}

/// The inbound side of the ordering layer.
pub(crate) struct Service {
    /// This node, whose clock stamps what it orders as leader.
    pub(crate) node: NodeId,
    pub(crate) raft: Raft,
    pub(crate) contact: Arc<LeaderContact>,
    pub(crate) flow: Arc<FlowControl>,
    /// How long a forwarded batch waits for flow control to reopen.
    pub(crate) admit_wait: Duration,
    /// Largest entry ordered, in bytes.
    pub(crate) max_entry_bytes: usize,
    /// A voter heard from within this counts as reachable when a removal
    /// is checked ([`super::config::RaftOrderConfig::reachable_within`]).
    pub(crate) reachable_within: Duration,
    pub(crate) peers: Arc<Peers>,
    pub(crate) app: Arc<OnceLock<Arc<dyn PeerService>>>,
}

impl Service {
    /// The service of the node `config` describes.
    pub(crate) fn new(
        config: &RaftOrderConfig,
        raft: Raft,
        contact: Arc<LeaderContact>,
        flow: Arc<FlowControl>,
        peers: Arc<Peers>,
        app: Arc<OnceLock<Arc<dyn PeerService>>>,
    ) -> Self {
        Service {
            node: config.node_id,
            raft,
            contact,
            flow,
            admit_wait: config.primary_lease,
            max_entry_bytes: config.max_entry_bytes,
            reachable_within: config.reachable_within(),
            peers,
            app,
        }
    }

    async fn redirect(&self) -> Redirect {
        Redirect {
            leader: self.raft.current_leader().await,
        }
    }

    /// Orders forwarded frames, in order. A frame over the entry size limit
    /// is refused, not appended: openraft stops for good on an entry its
    /// log cannot store; so is a protocol change, which only a leader
    /// orders for itself.
    async fn forward(&self, frames: Vec<bytes::Bytes>) -> Vec<Forwarded> {
        if !self.raft.is_leader() {
            let redirect = self.redirect().await;
            return vec![Forwarded::NotLeader(redirect); frames.len()];
        }
        if !self.flow.admit(self.admit_wait).await {
            return vec![Forwarded::Paused; frames.len()];
        }
        let max = self.max_entry_bytes;
        let refused = |frame: &bytes::Bytes| frame.len() > max || upgrade::is_change(frame);
        let writes = frames.iter().filter(|frame| !refused(frame)).map(|frame| {
            self.raft
                .client_write(Submission::stamped(frame.clone(), self.node))
        });
        let mut results = join_all(writes).await.into_iter();
        let mut out = Vec::with_capacity(frames.len());
        for frame in &frames {
            if frame.len() > max {
                out.push(Forwarded::TooLarge {
                    len: frame.len(),
                    max,
                });
                continue;
            }
            if refused(frame) {
                let kind = crate::frame::FrameKind::ClusterProtocol;
                let reserved = crate::order::OrderError::Reserved { kind };
                out.push(Forwarded::Failed(RemoteError::new(&reserved)));
                continue;
            }
            out.push(match results.next() {
                Some(Ok(_)) => Forwarded::Ordered,
                Some(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
                    Forwarded::NotLeader(Redirect {
                        leader: f.leader_id,
                    })
                }
                Some(Err(RaftError::APIError(ClientWriteError::LogEntryDiscarded(f)))) => {
                    Forwarded::Discarded(Redirect {
                        leader: f.leader_id,
                    })
                }
                Some(Err(other)) => Forwarded::Failed(RemoteError::new(&other)),
                None => Forwarded::Failed(RemoteError::new(&PeerError::Malformed)),
            });
        }
        out
    }

    /// A membership change: made here on the leader, else passed on to it.
    async fn membership(&self, request: PeerRequest) -> Result<(), PeerError> {
        if !self.raft.is_leader() {
            let timeout = self.admit_wait;
            return membership::to_leader(&self.raft, &self.peers, &request, timeout).await;
        }
        match request {
            PeerRequest::Join { node, addr } => {
                membership::add_learner(&self.raft, node, addr).await
            }
            PeerRequest::Leave { node } => {
                membership::remove(&self.raft, node, self.reachable_within).await
            }
            _ => Err(PeerError::Malformed),
        }
    }

    async fn read_index(&self) -> Result<u64, Redirect> {
        if !self.raft.is_leader() {
            return Err(self.redirect().await);
        }
        match self.raft.ensure_linearizable(ReadPolicy::ReadIndex).await {
            Ok(read) => Ok(read.index()),
            Err(_) => Err(self.redirect().await),
        }
    }
}

/// Decodes `body` as a peer request, as the peer port does, and judges it
/// from a few callers against a three-voter membership with one learner;
/// for the fuzz targets. Never panics.
pub(crate) fn judge_request(body: &[u8]) {
    use crate::frame::{FrameKind, decode_body};
    let Ok(tagged) = decode_body::<crate::net::Tagged<PeerRequest>>(FrameKind::Peer, body) else {
        return;
    };
    let ask = ask(&tagged.body);
    let members = admission::Members {
        voters: [1, 2, 3].into(),
        learners: [4].into(),
    };
    for (node, seed) in [(1, false), (4, false), (9, false), (9, true)] {
        let caller = Caller {
            node: NodeId::new(node),
            seed,
        };
        let _ = admission::admit(caller, ask, || members.clone());
    }
}

/// What `req` asks, for the admission rule.
fn ask(req: &PeerRequest) -> Ask {
    let leader = |vote: &Vote| *vote.leader_id().node_id();
    let replicate = |vote: &Vote| Ask::Replicate {
        sender: leader(vote),
        committed: vote.is_committed(),
    };
    match req {
        PeerRequest::Append(rpc) => replicate(&rpc.vote),
        PeerRequest::Snapshot { vote, .. } => replicate(vote),
        PeerRequest::Vote(rpc) | PeerRequest::PreVote(rpc) => Ask::Vote {
            candidate: leader(&rpc.vote),
        },
        PeerRequest::Forward(_) => Ask::Forward,
        PeerRequest::ReadIndex => Ask::ReadIndex,
        PeerRequest::FlowControl { pause } => Ask::FlowControl { pause: *pause },
        PeerRequest::Join { node, .. } => Ask::Join { node: *node },
        PeerRequest::Leave { node } => Ask::Leave { node: *node },
        PeerRequest::Service(_) => Ask::Service,
    }
}

impl Handler<PeerRequest, PeerResponse> for Service {
    async fn handle(&self, caller: Caller, req: PeerRequest) -> PeerResponse {
        let ask = ask(&req);
        if let Err(reason) = admission::admit(caller, ask, || membership::known(&self.raft)) {
            tracing::warn!(from = %caller.node, ?ask, %reason, "refused a peer request");
            return PeerResponse::Refused(reason);
        }
        let from = caller.node;
        match req {
            PeerRequest::Append(rpc) => {
                let leader_commit = rpc.leader_commit.map_or(0, |id| id.index);
                let result = self.raft.append_entries(rpc).await;
                if matches!(
                    result,
                    Ok(AppendEntriesResponse::Success | AppendEntriesResponse::PartialSuccess(_))
                ) {
                    self.contact.touch(leader_commit);
                }
                PeerResponse::Append(result.map_err(|e| RemoteError::new(&e)))
            }
            PeerRequest::Vote(rpc) => {
                PeerResponse::Vote(self.raft.vote(rpc).await.map_err(|e| RemoteError::new(&e)))
            }
            PeerRequest::PreVote(rpc) => PeerResponse::Vote(
                self.raft
                    .pre_vote(rpc)
                    .await
                    .map_err(|e| RemoteError::new(&e)),
            ),
            PeerRequest::Snapshot { vote, meta } => {
                let snapshot = Snapshot { meta, snapshot: () };
                let result = self.raft.install_full_snapshot(vote, snapshot).await;
                PeerResponse::Snapshot(result.map_err(|e| RemoteError::new(&e)))
            }
            PeerRequest::Forward(frames) => PeerResponse::Forward(self.forward(frames).await),
            PeerRequest::ReadIndex => PeerResponse::ReadIndex(self.read_index().await),
            PeerRequest::FlowControl { pause } => {
                let request = if pause {
                    Request::Pause
                } else {
                    Request::Resume
                };
                self.flow.on_request(from, request);
                PeerResponse::FlowControl
            }
            PeerRequest::Service(body) => PeerResponse::Service(match self.app.get() {
                Some(app) => Some(app.handle(from, body).await),
                None => None,
            }),
            request @ (PeerRequest::Join { .. } | PeerRequest::Leave { .. }) => {
                let result = self.membership(request).await;
                PeerResponse::Membership(result.map_err(|e| RemoteError::new(&e)))
            }
        }
    }
}
