//! Membership views.

use crate::ids::{NodeId, Seqno};

/// A membership view as the ordering layer reports it to one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct View {
    /// Increases with every view change the ordering layer makes.
    pub id: u64,
    /// The members that can reach each other, sorted.
    pub members: Vec<NodeId>,
    /// Whether these members form the primary component (a majority of the
    /// configured cluster), the only one that may order write-sets.
    pub primary: bool,
    /// The last ordered position when the view was installed. A node that
    /// joins the view is caught up once it has applied this position.
    pub seqno: Seqno,
}

impl View {
    /// Whether `node` is a member.
    #[must_use]
    pub fn contains(&self, node: NodeId) -> bool {
        self.members.binary_search(&node).is_ok()
    }
}
