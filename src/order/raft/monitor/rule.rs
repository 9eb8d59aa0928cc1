//! The heartbeat's pure decisions, taken by the shell on every tick:
//! whether this node is in the primary component, over a sample of raft's
//! state, and which learners have caught up enough to vote.

use std::collections::{BTreeMap, BTreeSet};

/// What the shell observed at one tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Sample {
    /// This node is the leader.
    pub(crate) leader: bool,
    /// This node votes in the current membership.
    pub(crate) voter: bool,
    /// A leader is known.
    pub(crate) leader_known: bool,
    /// Leader: time since a quorum last acknowledged it.
    pub(crate) since_quorum_ack_ms: Option<u64>,
    /// Follower: time since the leader last reached this node.
    pub(crate) since_leader_contact_ms: Option<u64>,
}

/// A node is in the primary component while it is a voter and hears from a
/// quorum within the lease: as leader, through acknowledgements; as
/// follower, through the leader's appends and heartbeats. A learner that
/// is still catching up is not yet part of it.
#[must_use]
pub(crate) fn is_primary(sample: &Sample, lease_ms: u64) -> bool {
    let fresh = |ms: Option<u64>| ms.is_some_and(|ms| ms <= lease_ms);
    if !sample.voter {
        return false;
    }
    if sample.leader {
        fresh(sample.since_quorum_ack_ms)
    } else {
        sample.leader_known && fresh(sample.since_leader_contact_ms)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn follower(contact: Option<u64>) -> Sample {
        Sample {
            leader: false,
            voter: true,
            leader_known: true,
            since_quorum_ack_ms: None,
            since_leader_contact_ms: contact,
        }
    }

    #[test]
    fn follower_is_primary_only_while_the_leader_reaches_it() {
        assert!(is_primary(&follower(Some(100)), 500));
        assert!(!is_primary(&follower(Some(501)), 500));
        assert!(!is_primary(&follower(None), 500));
        let no_leader = Sample {
            leader_known: false,
            ..follower(Some(1))
        };
        assert!(!is_primary(&no_leader, 500));
    }

    #[test]
    fn leader_needs_a_recent_quorum_and_learners_never_count() {
        let leader = Sample {
            leader: true,
            voter: true,
            leader_known: true,
            since_quorum_ack_ms: Some(20),
            since_leader_contact_ms: None,
        };
        assert!(is_primary(&leader, 500));
        let stale = Sample {
            since_quorum_ack_ms: Some(900),
            ..leader
        };
        assert!(!is_primary(&stale, 500));
        let learner = Sample {
            voter: false,
            ..follower(Some(1))
        };
        assert!(!is_primary(&learner, 500));
    }

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
