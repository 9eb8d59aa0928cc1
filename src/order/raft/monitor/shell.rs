//! The heartbeat task of the ordering layer: every tick it samples raft,
//! publishes whether this node is in the primary component, asks for flow
//! control when this node lags, and (on the leader) promotes learners that
//! caught up and raises the cluster protocol once every member speaks a
//! newer one.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::time::Duration;

use openraft::ServerState;
use openraft::async_runtime::WatchReceiver;
use tokio::sync::watch;

use super::rule::{Sample, is_primary, ready_to_promote};
use crate::Cause;
use crate::ids::NodeId;
use crate::order::raft::config::RaftOrderConfig;
use crate::order::raft::delivery::{DeliveryShared, Raft};
use crate::order::raft::flow::{FlowControl, Request as FlowRequest};
use crate::order::raft::log::LogStore;
use crate::order::raft::membership;
use crate::order::raft::messages::PeerRequest;
use crate::order::raft::network::{Peers, leader_addr};
use crate::order::raft::service::LeaderContact;
use crate::order::raft::stream::Standing;
use crate::order::raft::types::TypeConfig;
use crate::order::raft::upgrade::Upgrader;

/// Samples raft every heartbeat: publishes this node's standing and asks
/// for flow control when this node lags.
pub(crate) struct Monitor {
    raft: Raft,
    /// On the leader: raises the cluster protocol when every member can.
    upgrader: Option<Upgrader>,
    contact: Arc<LeaderContact>,
    standing: watch::Sender<Standing>,
    flow: Arc<FlowControl>,
    delivery: Arc<DeliveryShared>,
    peers: Arc<Peers>,
    /// Its fault stops the ordering core.
    log: LogStore,
    every: Duration,
    lease: Duration,
    /// Learners within this many entries of the log's end are promoted.
    promotion_lag: u64,
    /// A promotion is being committed.
    promoting: Arc<AtomicBool>,
    /// Bytes of log kept at most.
    retention_bytes: u64,
}

impl Monitor {
    /// A monitor for this node, and the standing it will publish.
    pub(crate) fn new(
        config: &RaftOrderConfig,
        raft: Raft,
        contact: Arc<LeaderContact>,
        flow: Arc<FlowControl>,
        delivery: Arc<DeliveryShared>,
        peers: Arc<Peers>,
        log: LogStore,
    ) -> (Monitor, watch::Receiver<Standing>) {
        let (standing, receiver) = watch::channel(Standing::default());
        let monitor = Monitor {
            raft,
            upgrader: None,
            contact,
            standing,
            flow,
            delivery,
            peers,
            log,
            every: config.heartbeat,
            lease: config.primary_lease,
            promotion_lag: config.fc_limit,
            promoting: Arc::new(AtomicBool::new(false)),
            retention_bytes: config.log_retention_bytes,
        };
        (monitor, receiver)
    }

    /// This monitor, raising the cluster protocol through `upgrader`
    /// while its node leads.
    pub(crate) fn upgrading(mut self, upgrader: Upgrader) -> Self {
        self.upgrader = Some(upgrader);
        self
    }

    pub(crate) async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.wait_for(|stop| *stop) => return,
                _ = tick.tick() => {}
            }
            let metrics = self.raft.metrics().borrow_watched().clone();
            if let Some(cause) = self.stop_cause(&metrics) {
                self.publish_stop(cause);
                return;
            }
            let voter = metrics
                .membership_config
                .membership()
                .voter_ids()
                .any(|id| id == metrics.id);
            self.publish_standing(&metrics, voter);
            self.retention_tick(&metrics);
            if voter {
                self.flow_tick(&metrics);
            }
            if metrics.state == ServerState::Leader {
                self.promotion_tick();
                if let Some(upgrader) = &self.upgrader {
                    let membership = metrics.membership_config.membership();
                    upgrader.tick(membership.nodes().map(|(id, _)| *id));
                }
            }
        }
    }

    /// Why the ordering core can no longer work, if it cannot: raft
    /// stopped on a fatal error, or the log kept a failed write or fsync
    /// (raft would stop at its next append; it must not go on voting and
    /// acknowledging meanwhile).
    fn stop_cause(&self, metrics: &openraft::RaftMetrics<TypeConfig>) -> Option<Cause> {
        match &metrics.running_state {
            Err(openraft::error::Fatal::Stopped) => None,
            Err(fatal) => Some(Cause::new(fatal.clone())),
            Ok(()) => self.log.fault().map(Cause::new),
        }
    }

    /// The ordering core stopped for good: this node leaves the primary
    /// component, says why, and stops raft if it still runs.
    fn publish_stop(&self, cause: Cause) {
        tracing::error!(error = %cause, "the ordering core stopped: this node leaves the primary component and must restart");
        self.standing.send_modify(|now| {
            now.primary = false;
            now.stopped = Some(cause);
        });
        let raft = self.raft.clone();
        tokio::spawn(async move {
            let _ = raft.shutdown().await;
        });
    }

    fn publish_standing(&self, metrics: &openraft::RaftMetrics<TypeConfig>, voter: bool) {
        let lease_ms = u64::try_from(self.lease.as_millis()).unwrap_or(u64::MAX);
        let sample = Sample {
            leader: metrics.state == ServerState::Leader,
            voter,
            leader_known: metrics.current_leader.is_some(),
            since_quorum_ack_ms: metrics.last_quorum_acked.as_ref().map(|at| {
                u64::try_from(openraft::Instant::elapsed(&**at).as_millis()).unwrap_or(u64::MAX)
            }),
            since_leader_contact_ms: self.contact.since_ms(),
        };
        let mut voters: Vec<u64> = metrics.membership_config.membership().voter_ids().collect();
        voters.sort_unstable();
        let next = Standing {
            primary: is_primary(&sample, lease_ms),
            voters,
            // A restarted follower's raft knows only the commits its own
            // log reaches; the leader's announcement tells how far the
            // cluster is, so its first view does not count it as synced.
            committed: metrics
                .cluster_committed
                .as_ref()
                .map_or(0, |id| id.index)
                .max(self.contact.leader_commit()),
            stopped: None,
        };
        self.standing.send_if_modified(|now| {
            let changed = now.primary != next.primary || now.voters != next.voters;
            now.committed = next.committed;
            if changed {
                now.primary = next.primary;
                now.voters = next.voters;
            }
            changed
        });
    }

    /// Keeps the log within its bytes: asks raft for a snapshot point past
    /// the entries over the limit (a snapshot carries no data here), then
    /// to purge up to it. The log store still keeps what this node needs
    /// to restart.
    fn retention_tick(&self, metrics: &openraft::RaftMetrics<TypeConfig>) {
        let Some(cut) = self.log.retention_cut(self.retention_bytes) else {
            return;
        };
        let snapshot = metrics.snapshot.as_ref().map_or(0, |id| id.index);
        let applied = metrics.last_applied.as_ref().map_or(0, |id| id.index);
        let raft = self.raft.clone();
        let snap = snapshot < cut.min(applied);
        tokio::spawn(async move {
            let done = if snap {
                raft.trigger().snapshot().await
            } else {
                raft.trigger().purge_log(cut).await
            };
            if let Err(err) = done {
                tracing::debug!(error = %err, "log retention by bytes not carried out");
            }
        });
    }

    /// On the leader: promotes the learners that caught up, one change at a
    /// time.
    fn promotion_tick(&self) {
        let (learners, last_log) = membership::learner_progress(&self.raft);
        let ready = ready_to_promote(&learners, last_log, self.promotion_lag);
        if ready.is_empty() || self.promoting.swap(true, AtomicOrdering::AcqRel) {
            return;
        }
        let (raft, promoting) = (self.raft.clone(), self.promoting.clone());
        tokio::spawn(async move {
            if let Err(err) = membership::promote(&raft, ready).await {
                tracing::warn!(error = %err, "promotion failed; retrying next tick");
            }
            promoting.store(false, AtomicOrdering::Release);
        });
    }

    /// Measures how far this node's consumption trails the commit index and
    /// tells the leader when flow control should hold or release.
    fn flow_tick(&self, metrics: &openraft::RaftMetrics<TypeConfig>) {
        let committed = metrics.cluster_committed.as_ref().map_or(0, |id| id.index);
        let lag = committed.saturating_sub(self.delivery.consumed_index());
        let Some(request) = self.flow.on_lag(lag) else {
            return;
        };
        if metrics.current_leader == Some(metrics.id) {
            self.flow.on_request(NodeId::new(metrics.id), request);
            return;
        }
        let Ok((leader, addr)) = leader_addr(metrics) else {
            return;
        };
        let client = self.peers.client(leader, &addr);
        let message = PeerRequest::FlowControl {
            pause: request == FlowRequest::Pause,
        };
        let timeout = self.every;
        // Refreshed every tick while pausing, so a lost message only delays.
        tokio::spawn(async move {
            if let Err(err) = client.call(&message, timeout).await {
                tracing::debug!(error = %err, "flow-control message not delivered");
            }
        });
    }
}
