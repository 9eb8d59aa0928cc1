//! Membership changes: a new node joins as a learner through any member,
//! the leader promotes learners to voters once their logs have caught up,
//! and a node leaves by asking the leader to remove it.
//!
//! This is a shell: it carries requests to the leader. The promotion rule
//! is pure and lives in [`super::monitor`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use openraft::Instant as _;
use openraft::async_runtime::WatchReceiver;
use openraft::{BasicNode, ChangeMembers};
use tokio::sync::watch;

use super::admission::Members;
use super::config::RaftOrderConfig;
use super::delivery::Raft;
use super::messages::{PeerRequest, PeerResponse};
use super::network::Peers;
use crate::Cause;
use crate::ids::NodeId;
use crate::order::{Member, PeerError};

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

/// The voters and learners this node knows of, for the admission rule.
pub(crate) fn known(raft: &Raft) -> Members {
    let metrics = raft.metrics();
    let metrics = metrics.borrow_watched();
    let membership = metrics.membership_config.membership();
    Members {
        voters: membership.voter_ids().collect(),
        learners: membership.learner_ids().collect(),
    }
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
pub(crate) async fn promote(raft: &Raft, learners: BTreeSet<u64>) -> Result<(), PeerError> {
    tracing::info!(?learners, "promoting caught-up learners to voters");
    raft.change_membership(ChangeMembers::AddVoterIds(learners), false)
        .await
        .map(|_| ())
        .map_err(raft_error)
}

/// Adds `node` at `addr` as a learner (on the leader). A node already in
/// the membership at that address is left as it is.
pub(crate) async fn add_learner(raft: &Raft, node: u64, addr: String) -> Result<(), PeerError> {
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
        .map_err(raft_error)
}

/// On the leader: itself and the nodes that acknowledged a heartbeat or
/// a replication within `fresh`.
fn reachable(raft: &Raft, fresh: Duration) -> BTreeSet<u64> {
    let metrics = raft.metrics();
    let metrics = metrics.borrow_watched();
    let heard = metrics.heartbeat.iter().flatten();
    heard
        .filter(|(_, at)| at.as_ref().is_some_and(|at| at.elapsed() < fresh))
        .map(|(id, _)| *id)
        .chain([metrics.id])
        .collect()
}

/// Removes `node` from the cluster (on the leader), unless the voters
/// left would not have a reachable majority: a voter heard from within
/// `fresh` counts as reachable.
pub(crate) async fn remove(raft: &Raft, node: u64, fresh: Duration) -> Result<(), PeerError> {
    let members = known(raft);
    if !members.contains(node) {
        return Ok(());
    }
    members.check_removal(node, &reachable(raft, fresh))?;
    tracing::info!(node, "removing a node from the cluster");
    let change = if members.voters.contains(&node) {
        ChangeMembers::RemoveVoters(BTreeSet::from([node]))
    } else {
        ChangeMembers::RemoveNodes(BTreeSet::from([node]))
    };
    raft.change_membership(change, false)
        .await
        .map(|_| ())
        .map_err(raft_error)
}

fn raft_error(err: impl std::error::Error + Send + Sync + 'static) -> PeerError {
    PeerError::Raft(Cause::new(err))
}

/// Sends a membership request to the leader this node knows of.
pub(crate) async fn to_leader(
    raft: &Raft,
    peers: &Peers,
    request: &PeerRequest,
    timeout: Duration,
) -> Result<(), PeerError> {
    let client = peers.leader(raft).map_err(|_| PeerError::NoLeader)?;
    match client.call(request, timeout).await {
        Ok(PeerResponse::Membership(result)) => result.map_err(PeerError::Remote),
        Ok(PeerResponse::Refused(reason)) => Err(PeerError::Refused(reason)),
        Ok(_) => Err(PeerError::Malformed),
        Err(err) => Err(PeerError::Unreachable(Cause::new(err))),
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
            Ok(PeerResponse::Refused(reason)) => {
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
