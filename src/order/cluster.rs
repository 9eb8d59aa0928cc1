//! The seam for what an ordering layer knows about its members, beside
//! [`TotalOrder`]: who they are, leaving, and requests from one node's
//! program to another's over the layer's own connections.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::total_order::{OrderFuture, PeerService, TotalOrder};
use crate::ids::NodeId;

/// One node of the cluster's membership.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Member {
    /// The node.
    pub id: NodeId,
    /// Where peers reach it (a layer without addresses names itself).
    pub addr: String,
    /// Whether it votes (else it is a learner, catching up).
    pub voter: bool,
}

impl Member {
    /// A member.
    #[must_use]
    pub fn new(id: NodeId, addr: impl Into<String>, voter: bool) -> Self {
        Member {
            id,
            addr: addr.into(),
            voter,
        }
    }
}

/// Membership and peer calls of an ordering layer. State transfer, the
/// daemon's supervisor and `CERTUS MEMBERS`/`LEAVE` use only this, so they
/// run over any layer: raft across processes, or one in-process sequencer.
pub trait Cluster: TotalOrder + std::fmt::Debug {
    /// The cluster's members as this node knows them, in id order.
    fn members(&self) -> Vec<Member>;

    /// The member that orders submissions now, when the layer has one and
    /// this node knows it.
    fn leader(&self) -> Option<NodeId>;

    /// Removes this node from the cluster (Galera's graceful leave): after
    /// it the node is outside the primary component for good.
    ///
    /// Errors: [`super::OrderError::Membership`] when the change could not
    /// be made, [`super::OrderError::NotPrimary`] when this node cannot make
    /// it from where it stands.
    fn leave(&self) -> OrderFuture<'_, ()>;

    /// Removes member `node`, which may be down for good (etcd's `member
    /// remove`): the way to retire a node whose machine or data is lost.
    ///
    /// Errors: [`super::OrderError::UnknownMember`] for a node not in the
    /// membership; [`super::OrderError::Membership`] when the change could
    /// not be made, or would leave the remaining voters without a
    /// reachable majority ([`super::PeerError::WouldLoseQuorum`]).
    fn remove(&self, node: NodeId) -> OrderFuture<'_, ()>;

    /// Registers the service that answers other nodes' [`Cluster::call_peer`]
    /// requests. Returns false when one was registered already.
    fn set_peer_service(&self, service: Arc<dyn PeerService>) -> bool;

    /// Sends `request` to node `node`'s peer service and returns its answer.
    ///
    /// Errors: [`super::OrderError::UnknownMember`] for a node not in the
    /// membership; [`super::OrderError::Peer`] when it could not be reached
    /// in `timeout` or answered an error.
    fn call_peer(&self, node: NodeId, request: Bytes, timeout: Duration) -> OrderFuture<'_, Bytes>;
}
