//! Membership changes: a new node joins as a learner through any member,
//! the leader promotes learners to voters once their logs have caught up,
//! and a node leaves by asking the leader to remove it.
//!
//! The promotion rule is pure ([`ready_to_promote`]); the rest is the
//! shell that carries requests to the leader.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use openraft::{BasicNode, ChangeMembers};
use tokio::sync::watch;

use super::config::RaftOrderConfig;
use super::messages::{PeerRequest, PeerResponse};
use super::network::Peers;
use super::types::Raft;
use crate::ids::NodeId;

/// One node of the cluster's membership.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Member {
    /// The node.
    pub id: NodeId,
    /// Its peer address.
    pub addr: String,
    /// Whether it votes (else it is a learner, catching up).
    pub voter: bool,
}

/// The membership as this node knows it, in id order.
pub(crate) fn members(raft: &Raft) -> Vec<Member> {
    let metrics = raft.metrics();
    let metrics = metrics.borrow_watched();
    let membership = metrics.membership_config.membership();
    let voters: BTreeSet<u64> = membership.voter_ids().collect();
    membership
        .nodes()
        .map(|(id, node)| Member {
            id: NodeId::new(*id),
            addr: node.addr.clone(),
            voter: voters.contains(id),
        })
        .collect()
}

/// Learners whose replicated log is within `max_lag` entries of the
/// leader's last log index: they can vote without slowing commits.
#[must_use]
pub(crate) fn ready_to_promote(
    learners: &BTreeMap<u64, Option<u64>>,
    last_log_index: u64,
    max_lag: u64,
) -> BTreeSet<u64> {
    learners
        .iter()
        .filter(|(_, matched)| matched.is_some_and(|m| m.saturating_add(max_lag) >= last_log_index))
        .map(|(id, _)| *id)
        .collect()
}

/// On the leader: the learners and how far each one's log matches.
pub(crate) fn learner_progress(raft: &Raft) -> (BTreeMap<u64, Option<u64>>, u64) {
    let metrics = raft.metrics().borrow_watched().clone();
    let membership = metrics.membership_config.membership();
    let replication = metrics.replication.clone().unwrap_or_default();
    let learners = membership
        .learner_ids()
        .map(|id| {
            let matched = replication.get(&id).cloned().flatten().map(|log| log.index);
            (id, matched)
        })
        .collect();
    (learners, metrics.last_log_index.unwrap_or(0))
}

/// Promotes `learners` to voters (on the leader).
pub(crate) async fn promote(raft: &Raft, learners: BTreeSet<u64>) -> Result<(), String> {
    tracing::info!(?learners, "promoting caught-up learners to voters");
    raft.change_membership(ChangeMembers::AddVoterIds(learners), false)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Adds `node` at `addr` as a learner (on the leader). A node already in
/// the membership at that address is left as it is.
pub(crate) async fn add_learner(raft: &Raft, node: u64, addr: String) -> Result<(), String> {
    let known = {
        let metrics = raft.metrics();
        let metrics = metrics.borrow_watched();
        metrics
            .membership_config
            .membership()
            .get_node(&node)
            .is_some_and(|n| n.addr == addr)
    };
    if known {
        return Ok(());
    }
    tracing::info!(node, %addr, "adding a joining node as a learner");
    raft.add_learner(node, BasicNode { addr }, false)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Removes `node` from the cluster (on the leader).
pub(crate) async fn remove(raft: &Raft, node: u64) -> Result<(), String> {
    let voter = {
        let metrics = raft.metrics();
        let metrics = metrics.borrow_watched();
        let membership = metrics.membership_config.membership();
        if membership.get_node(&node).is_none() {
            return Ok(());
        }
        membership.voter_ids().any(|id| id == node)
    };
    tracing::info!(node, "removing a node from the cluster");
    let change = if voter {
        ChangeMembers::RemoveVoters(BTreeSet::from([node]))
    } else {
        ChangeMembers::RemoveNodes(BTreeSet::from([node]))
    };
    raft.change_membership(change, false)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Sends a membership request to the leader this node knows of.
pub(crate) async fn to_leader(
    raft: &Raft,
    peers: &Peers,
    request: &PeerRequest,
    timeout: Duration,
) -> Result<(), String> {
    let client = peers.leader(raft)?;
    match client.call(request, timeout).await {
        Ok(PeerResponse::Membership(result)) => result,
        Ok(_) => Err("the leader answered with a malformed response".into()),
        Err(err) => Err(format!("the leader is unreachable: {err}")),
    }
}

/// Asks the seeds (`config.join`), in turn, to add this node as a
/// learner, until one accepts or the node shuts down.
pub(crate) fn join(
    config: &RaftOrderConfig,
    peers: Arc<Peers>,
    shutdown: watch::Receiver<bool>,
) -> impl Future<Output = ()> + Send + 'static {
    let (seeds, retry) = (config.join.clone(), config.primary_lease);
    let request = PeerRequest::Join {
        node: config.node_id.get(),
        addr: config.advertise.clone(),
    };
    join_through(seeds, request, retry, peers, shutdown)
}

async fn join_through(
    seeds: Vec<String>,
    request: PeerRequest,
    retry: Duration,
    peers: Arc<Peers>,
    mut shutdown: watch::Receiver<bool>,
) {
    for seed in seeds.iter().cycle() {
        let answer = peers.seed(seed).call(&request, retry).await;
        match answer {
            Ok(PeerResponse::Membership(Ok(()))) => {
                tracing::info!(%seed, "joined the cluster as a learner");
                return;
            }
            Ok(PeerResponse::Membership(Err(reason))) => {
                tracing::warn!(%seed, %reason, "join refused; retrying");
            }
            Ok(_) => tracing::warn!(%seed, "malformed answer to a join"),
            Err(err) => tracing::debug!(%seed, error = %err, "seed unreachable"),
        }
        tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => return,
            () = tokio::time::sleep(retry) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_caught_up_learners_are_promoted() {
        let learners = BTreeMap::from([(4, Some(990)), (5, Some(10)), (6, None), (7, Some(1000))]);
        assert_eq!(
            ready_to_promote(&learners, 1000, 64),
            BTreeSet::from([4, 7])
        );
        assert!(ready_to_promote(&BTreeMap::new(), 1000, 64).is_empty());
    }
}
