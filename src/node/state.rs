//! Node states and the membership rules that move between them (sans-IO).

use crate::ids::{NodeId, Seqno};
use crate::order::View;

/// Where a node stands, after Galera's node states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeState {
    /// Started, not yet in a primary view (recovering or connecting).
    Joining,
    /// In the primary component, still applying up to the point it joined.
    Joined,
    /// In the primary component and caught up to the point it joined.
    Synced,
    /// Synced, and providing a full state transfer to a joining node. It
    /// keeps serving clients meanwhile.
    Donor,
    /// Outside the primary component: refuses commits and causal reads.
    NonPrimary,
    /// Stopped applying after a fatal error; refuses all work.
    Failed,
    /// The ordering layer closed.
    Closed,
}

impl NodeState {
    /// Whether the node accepts commits in this state.
    #[must_use]
    pub fn accepts_writes(self) -> bool {
        matches!(
            self,
            NodeState::Joined | NodeState::Synced | NodeState::Donor
        )
    }

    /// Whether the state can never change again.
    #[must_use]
    pub fn is_terminal(self) -> bool {
        matches!(self, NodeState::Failed | NodeState::Closed)
    }
}

/// The membership state machine of one node.
#[derive(Clone, Debug)]
pub(crate) struct Membership {
    node_id: NodeId,
    state: NodeState,
    view: Option<View>,
    /// The position of the primary view this node joined.
    join_point: Seqno,
    /// State transfers this node is providing.
    donating: usize,
}

impl Membership {
    pub(crate) fn new(node_id: NodeId) -> Self {
        Membership {
            node_id,
            state: NodeState::Joining,
            view: None,
            join_point: Seqno::ZERO,
            donating: 0,
        }
    }

    /// The node's state; a synced node providing a transfer is a donor.
    pub(crate) fn state(&self) -> NodeState {
        if self.state == NodeState::Synced && self.donating > 0 {
            NodeState::Donor
        } else {
            self.state
        }
    }

    /// How many state transfers this node is providing now.
    pub(crate) fn set_donating(&mut self, transfers: usize) {
        self.donating = transfers;
    }

    pub(crate) fn view(&self) -> Option<&View> {
        self.view.as_ref()
    }

    /// A new view arrived. Returns true when the node just left the primary
    /// component, so in-flight submissions have unknown outcomes.
    pub(crate) fn on_view(&mut self, view: View, last_visible: Seqno) -> bool {
        if self.state.is_terminal() {
            return false;
        }
        let was_writable = self.state().accepts_writes();
        if view.primary && view.contains(self.node_id) {
            self.join_point = view.seqno;
            self.state = if last_visible >= view.seqno {
                NodeState::Synced
            } else {
                NodeState::Joined
            };
        } else {
            self.state = NodeState::NonPrimary;
        }
        self.view = Some(view);
        was_writable && !self.state().accepts_writes()
    }

    /// The commit watermark moved.
    pub(crate) fn on_visible(&mut self, last_visible: Seqno) {
        if self.state == NodeState::Joined && last_visible >= self.join_point {
            self.state = NodeState::Synced;
        }
    }

    pub(crate) fn fail(&mut self) {
        self.state = NodeState::Failed;
    }

    pub(crate) fn close(&mut self) {
        if self.state != NodeState::Failed {
            self.state = NodeState::Closed;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(id: u64, members: &[u64], primary: bool, seqno: u64) -> View {
        View {
            id,
            members: members.iter().copied().map(NodeId::new).collect(),
            primary,
            seqno: Seqno::new(seqno),
        }
    }

    #[test]
    fn joins_then_syncs_when_caught_up() {
        let mut m = Membership::new(NodeId::new(2));
        assert_eq!(m.state(), NodeState::Joining);
        assert!(!m.on_view(view(1, &[1, 2, 3], true, 10), Seqno::new(4)));
        assert_eq!(m.state(), NodeState::Joined);
        m.on_visible(Seqno::new(9));
        assert_eq!(m.state(), NodeState::Joined);
        m.on_visible(Seqno::new(10));
        assert_eq!(m.state(), NodeState::Synced);
    }

    #[test]
    fn leaving_the_primary_component_is_reported_once() {
        let mut m = Membership::new(NodeId::new(2));
        m.on_view(view(1, &[1, 2, 3], true, 1), Seqno::new(1));
        assert!(m.on_view(view(2, &[2], false, 5), Seqno::new(5)));
        assert_eq!(m.state(), NodeState::NonPrimary);
        assert!(!m.on_view(view(3, &[2], false, 5), Seqno::new(5)));
        // A primary view that does not include this node is not membership.
        assert!(!m.on_view(view(4, &[1, 3], true, 6), Seqno::new(5)));
        assert_eq!(m.state(), NodeState::NonPrimary);
    }

    #[test]
    fn a_synced_node_providing_a_transfer_is_a_donor() {
        let mut m = Membership::new(NodeId::new(1));
        m.set_donating(1);
        assert_eq!(m.state(), NodeState::Joining, "only a synced node donates");
        m.on_view(view(1, &[1, 2], true, 1), Seqno::new(1));
        assert_eq!(m.state(), NodeState::Donor);
        assert!(m.state().accepts_writes());
        m.set_donating(0);
        assert_eq!(m.state(), NodeState::Synced);
    }

    #[test]
    fn failure_is_terminal() {
        let mut m = Membership::new(NodeId::new(1));
        m.fail();
        m.on_view(view(1, &[1], true, 1), Seqno::new(1));
        m.close();
        assert_eq!(m.state(), NodeState::Failed);
    }
}
