//! What a node knows of protocol versions (see [`crate::protocol`]): its
//! own, its cluster's, and the one each peer stated at its last handshake.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::PoisonError;
use std::sync::atomic::{AtomicU16, Ordering};

use crate::ids::NodeId;
use crate::protocol::{Protocol, Protocols};

/// The protocol versions one node knows, shared by its handshakes (which
/// record peers and refuse the ones too old), its leader's upgrade tick
/// (which reads them) and its log's application (which raises the
/// cluster's).
#[derive(Debug)]
pub(crate) struct ProtocolBook {
    own: Protocol,
    cluster: AtomicU16,
    /// Bounded by the nodes that completed a handshake with this one:
    /// members, and joiners that proved a certificate of the cluster's CA.
    peers: Mutex<BTreeMap<NodeId, Protocol>>,
}

impl ProtocolBook {
    /// A node speaking `own` in a cluster at `cluster` (at most `own`).
    pub(crate) fn new(protocols: Protocols) -> Self {
        ProtocolBook {
            own: protocols.own,
            cluster: AtomicU16::new(protocols.cluster.get()),
            peers: Mutex::new(BTreeMap::new()),
        }
    }

    pub(crate) fn protocols(&self) -> Protocols {
        Protocols::new(self.own, self.cluster())
    }

    pub(crate) fn own(&self) -> Protocol {
        self.own
    }

    pub(crate) fn cluster(&self) -> Protocol {
        Protocol::new(self.cluster.load(Ordering::Acquire))
    }

    /// The cluster moved to `to` (an ordered protocol change). Returns
    /// whether that raised it here. Never above this node's own version:
    /// a node left behind fails on the first frame it cannot read.
    pub(crate) fn raise(&self, to: Protocol) -> bool {
        let to = to.min(self.own);
        self.cluster.fetch_max(to.get(), Ordering::AcqRel) < to.get()
    }

    /// `peer` stated `protocol` at a handshake that succeeded.
    pub(crate) fn record(&self, peer: NodeId, protocol: Protocol) {
        self.peers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(peer, protocol);
    }

    /// What `peer` stated at its last handshake with this node.
    pub(crate) fn of(&self, peer: NodeId) -> Option<Protocol> {
        self.peers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&peer)
            .copied()
    }

    /// Why a peer speaking `protocol` must be refused now.
    pub(crate) fn refusal(&self, protocol: Protocol) -> Option<String> {
        self.own.refusal(self.cluster(), protocol)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cluster_protocol_only_rises_and_never_past_the_node() {
        let own = Protocol::new(4);
        let book = ProtocolBook::new(Protocols::new(own, Protocol::new(3)));
        assert!(book.raise(Protocol::new(4)));
        assert!(!book.raise(Protocol::new(3)));
        assert_eq!(book.cluster(), Protocol::new(4));
        assert!(!book.raise(Protocol::new(5)));
        assert_eq!(book.protocols().cluster, own);
        assert!(book.refusal(Protocol::new(3)).is_some());
        book.record(NodeId::new(2), Protocol::new(4));
        assert_eq!(book.of(NodeId::new(2)), Some(Protocol::new(4)));
        assert_eq!(book.of(NodeId::new(3)), None);
    }
}
