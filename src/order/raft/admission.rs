//! Which peer may ask what: the rule every request passes before the
//! ordering layer acts on it. Pure: the caller (proved by its certificate
//! when peers use TLS), what it asks, and the membership as this node
//! knows it, in; a verdict out.

use std::collections::BTreeSet;

use crate::ids::NodeId;
use crate::net::Caller;
use crate::order::PeerError;

/// What a request asks, as far as the rule needs to know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ask {
    /// A raft append or snapshot from the leader `sender` its vote names;
    /// a leader's vote is always `committed` (openraft asserts it, so an
    /// uncommitted one would stop this node's raft).
    Replicate { sender: u64, committed: bool },
    /// A (pre-)vote for `candidate`.
    Vote { candidate: u64 },
    /// Write-sets for the leader to order.
    Forward,
    /// A sync point.
    ReadIndex,
    /// Flow control: pause (or resume) admission for the caller.
    FlowControl { pause: bool },
    /// Add `node` as a learner.
    Join { node: u64 },
    /// Remove `node`.
    Leave { node: u64 },
    /// The embedding program's peer service (state transfer).
    Service,
}

/// The membership as this node knows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Members {
    pub(crate) voters: BTreeSet<u64>,
    pub(crate) learners: BTreeSet<u64>,
}

impl Members {
    pub(crate) fn contains(&self, node: u64) -> bool {
        self.voters.contains(&node) || self.learners.contains(&node)
    }

    /// Whether removing `node` leaves a majority of the remaining voters
    /// among the `reachable` ones (etcd's strict reconfiguration check).
    /// Raft commits the change only with a majority of the new voters, and
    /// every later write needs them too: removing a live voter while
    /// another is down could leave a cluster that never commits again.
    /// Removing a learner or a node not in the membership changes no
    /// quorum.
    pub(crate) fn check_removal(
        &self,
        node: u64,
        reachable: &BTreeSet<u64>,
    ) -> Result<(), PeerError> {
        if !self.voters.contains(&node) {
            return Ok(());
        }
        let remaining: BTreeSet<u64> = self.voters.iter().copied().filter(|&v| v != node).collect();
        let alive = remaining.intersection(reachable).count();
        if remaining.is_empty() || alive * 2 <= remaining.len() {
            return Err(PeerError::WouldLoseQuorum {
                node: NodeId::new(node),
                reachable: alive,
                voters: remaining.len(),
            });
        }
        Ok(())
    }
}

/// Whether `caller` may `ask` this node, and if not, why.
///
/// - A seed connection (one that did not address this node) may only ask
///   to join.
/// - Raft messages speak for their sender only: an append's leader, a
///   vote's candidate, must be the caller, and a leader's vote must be
///   committed. Votes count only from voters this node knows of (a fresh
///   node, which knows none, answers any).
///   Appends are taken from any proved node of the cluster: a follower that
///   lags the membership must still hear a leader it has not heard of yet,
///   and raft's terms turn away a stale one.
/// - Forwarded write-sets, sync points and state transfer only for members.
/// - A pause counts only from a voter: a learner catching up must not stop
///   the cluster's writes.
/// - A node joins or leaves on its own credential (the caller is that
///   node), or through a voter that passes the request to the leader.
///
/// `members` is asked for only when the answer depends on it: never for
/// raft's appends, the hottest path.
pub(crate) fn admit(
    caller: Caller,
    ask: Ask,
    members: impl FnOnce() -> Members,
) -> Result<(), String> {
    let node = caller.node.get();
    let refuse = |why: &str| Err(format!("{} {why}", caller.node));
    if caller.seed && !matches!(ask, Ask::Join { .. }) {
        return refuse("may only ask to join on a connection to a seed");
    }
    if let Ask::Replicate { sender, committed } = ask {
        return if sender != node {
            refuse(&format!("sent a raft message of node-{sender}"))
        } else if !committed {
            refuse("sent a leader's message without a committed vote")
        } else {
            Ok(())
        };
    }
    let members = members();
    let voter = members.voters.contains(&node);
    match ask {
        Ask::Vote { candidate } if candidate != node => {
            refuse(&format!("asked for a vote for node-{candidate}"))
        }
        Ask::Vote { .. } if !members.voters.is_empty() && !voter => {
            refuse("is not a voter and may not campaign")
        }
        Ask::Forward | Ask::ReadIndex | Ask::Service if !members.contains(node) => {
            refuse("is not a member of this cluster")
        }
        Ask::FlowControl { pause: true } if !voter => refuse("is not a voter and may not pause"),
        Ask::Join { node: joiner } | Ask::Leave { node: joiner } if joiner != node && !voter => {
            refuse(&format!("may not change node-{joiner}'s membership"))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::NodeId;

    fn caller(node: u64) -> Caller {
        Caller {
            node: NodeId::new(node),
            seed: false,
        }
    }

    fn members() -> Members {
        Members {
            voters: BTreeSet::from([1, 2, 3]),
            learners: BTreeSet::from([4]),
        }
    }

    #[test]
    fn raft_messages_speak_only_for_their_sender() {
        let m = members();
        let replicate = |sender| Ask::Replicate {
            sender,
            committed: true,
        };
        assert_eq!(admit(caller(2), replicate(2), || m.clone()), Ok(()));
        // Appends never wait on the membership.
        let unasked = || -> Members { panic!("the membership was looked up") };
        assert_eq!(admit(caller(2), replicate(2), unasked), Ok(()));
        assert_eq!(admit(caller(9), replicate(9), || m.clone()), Ok(()));
        let uncommitted = Ask::Replicate {
            sender: 2,
            committed: false,
        };
        assert!(admit(caller(2), uncommitted, || m.clone()).is_err());
        let forged = admit(caller(9), replicate(1), || m.clone());
        assert_eq!(
            forged,
            Err("node-9 sent a raft message of node-1".to_string())
        );
        assert!(admit(caller(9), Ask::Vote { candidate: 1 }, || m.clone()).is_err());
        assert!(admit(caller(4), Ask::Vote { candidate: 4 }, || m.clone()).is_err());
        assert_eq!(
            admit(caller(3), Ask::Vote { candidate: 3 }, || m.clone()),
            Ok(())
        );
        assert_eq!(
            admit(caller(3), Ask::Vote { candidate: 3 }, Members::default),
            Ok(())
        );
    }

    #[test]
    fn strangers_get_no_service_and_learners_cannot_pause() {
        let m = members();
        for ask in [Ask::Forward, Ask::ReadIndex, Ask::Service] {
            assert!(admit(caller(9), ask, || m.clone()).is_err(), "{ask:?}");
            assert_eq!(admit(caller(4), ask, || m.clone()), Ok(()), "{ask:?}");
        }
        assert!(admit(caller(4), Ask::FlowControl { pause: true }, || m.clone()).is_err());
        assert!(admit(caller(9), Ask::FlowControl { pause: true }, || m.clone()).is_err());
        assert_eq!(
            admit(caller(2), Ask::FlowControl { pause: true }, || m.clone()),
            Ok(())
        );
        assert_eq!(
            admit(caller(4), Ask::FlowControl { pause: false }, || m.clone()),
            Ok(())
        );
    }

    #[test]
    fn membership_changes_need_the_node_itself_or_a_voter() {
        let m = members();
        assert_eq!(
            admit(caller(9), Ask::Join { node: 9 }, || m.clone()),
            Ok(())
        );
        assert!(admit(caller(9), Ask::Join { node: 8 }, || m.clone()).is_err());
        assert!(admit(caller(9), Ask::Leave { node: 1 }, || m.clone()).is_err());
        assert!(admit(caller(4), Ask::Leave { node: 1 }, || m.clone()).is_err());
        assert_eq!(
            admit(caller(4), Ask::Leave { node: 4 }, || m.clone()),
            Ok(())
        );
        assert_eq!(
            admit(caller(2), Ask::Join { node: 9 }, || m.clone()),
            Ok(())
        );
    }

    #[test]
    fn a_seed_connection_may_only_join() {
        let seed = Caller {
            seed: true,
            ..caller(9)
        };
        let m = members();
        assert_eq!(admit(seed, Ask::Join { node: 9 }, || m.clone()), Ok(()));
        let replicate = Ask::Replicate {
            sender: 9,
            committed: true,
        };
        assert!(admit(seed, replicate, || m.clone()).is_err());
        let voter_seed = Caller {
            seed: true,
            ..caller(1)
        };
        assert!(admit(voter_seed, Ask::Service, || m.clone()).is_err());
    }

    #[test]
    fn a_removal_must_leave_a_reachable_majority() {
        let voters = |ids: &[u64]| Members {
            voters: ids.iter().copied().collect(),
            learners: BTreeSet::from([9]),
        };
        let reachable = |ids: &[u64]| ids.iter().copied().collect::<BTreeSet<u64>>();
        // Four voters, node 4 dead: forgetting it leaves three of three.
        let four = voters(&[1, 2, 3, 4]);
        assert_eq!(four.check_removal(4, &reachable(&[1, 2, 3])), Ok(()));
        // Forgetting a live one instead leaves two of three: still a majority.
        assert_eq!(four.check_removal(3, &reachable(&[1, 2, 3])), Ok(()));
        // Three voters with node 3 dead: removing node 2 leaves {1, 3}, one
        // reachable of two, and a cluster that could never commit again.
        let three = voters(&[1, 2, 3]);
        assert_eq!(
            three.check_removal(2, &reachable(&[1, 2])),
            Err(PeerError::WouldLoseQuorum {
                node: NodeId::new(2),
                reachable: 1,
                voters: 2,
            })
        );
        assert_eq!(three.check_removal(3, &reachable(&[1, 2])), Ok(()));
        // Learners and strangers take no part in any quorum.
        assert_eq!(three.check_removal(9, &reachable(&[1])), Ok(()));
        assert_eq!(three.check_removal(7, &reachable(&[1])), Ok(()));
        // The last voter cannot be removed.
        assert!(voters(&[1]).check_removal(1, &reachable(&[1])).is_err());
    }
}
