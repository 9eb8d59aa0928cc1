//! Protocol versions and the rules of a rolling upgrade.
//!
//! Every build speaks one **protocol version**: the formats of everything
//! one node hands another (peer messages, log entries, and the write-sets
//! and operations every member decodes). A node accepts peers one version
//! apart (never one older than [`Protocol::FIRST`], the first that
//! negotiates), and a cluster whose members speak different versions runs
//! at the **cluster protocol**: the version every member writes in.
//!
//! The cluster protocol only rises, and only through the total order, as
//! etcd's cluster version does: when the leader knows that every member of
//! the membership speaks a newer version, it orders a protocol change, and
//! each node writes in the new formats once it has applied that change. A
//! node older than the cluster protocol is refused at the handshake; one
//! that still meets a format newer than it reads (it was downgraded past
//! the cluster) fails rather than skip a position the others apply.
//!
//! The rules here are pure; the ordering layer carries them out.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::frame::FrameKind;

/// A protocol version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Protocol(u16);

impl Protocol {
    /// The oldest version that negotiates: peers older than it are refused
    /// (version 2 had no cluster protocol; 3 states each side's version in
    /// the terms of the handshake).
    pub const FIRST: Protocol = Protocol(3);

    /// The version this build speaks.
    pub const CURRENT: Protocol = Protocol(3);

    /// A simulated next version, for testing rolling upgrades (feature
    /// `next-version`): it writes write-sets and operations in format 2
    /// (the same body under a version that [`Protocol::CURRENT`] does not
    /// read), and reads both.
    #[cfg(feature = "next-version")]
    pub const NEXT: Protocol = Protocol(4);

    /// A version as a peer stated it.
    #[must_use]
    pub const fn new(version: u16) -> Protocol {
        Protocol(version)
    }

    /// The version number.
    #[must_use]
    pub const fn get(self) -> u16 {
        self.0
    }

    /// The versions this build can run as: [`Protocol::CURRENT`], and
    /// [`Protocol::NEXT`] with the feature `next-version`.
    #[must_use]
    pub fn spoken() -> &'static [Protocol] {
        #[cfg(feature = "next-version")]
        {
            &[Protocol::CURRENT, Protocol::NEXT]
        }
        #[cfg(not(feature = "next-version"))]
        {
            &[Protocol::CURRENT]
        }
    }

    /// The format version a node writes `kind` frames in when its cluster
    /// runs at this protocol.
    #[must_use]
    pub fn frame_version(self, kind: FrameKind) -> u16 {
        #[cfg(feature = "next-version")]
        if self >= Protocol::NEXT && matches!(kind, FrameKind::WriteSet | FrameKind::Operation) {
            return 2;
        }
        kind.current_version()
    }

    /// Whether a node speaking this protocol reads `kind` frames of format
    /// `version`.
    #[must_use]
    pub fn reads(self, kind: FrameKind, version: u16) -> bool {
        (1..=self.frame_version(kind)).contains(&version)
    }

    /// Why a node speaking this protocol, in a cluster at `cluster`, must
    /// refuse a peer speaking `peer`; `None` when it may talk to it.
    #[must_use]
    pub fn refusal(self, cluster: Protocol, peer: Protocol) -> Option<String> {
        if peer < Protocol::FIRST || self.0.abs_diff(peer.0) > 1 {
            Some(format!(
                "protocol {peer} is not supported (this node speaks {self} and accepts peers one version apart, {} at the oldest)",
                Protocol::FIRST.max(Protocol(self.0.saturating_sub(1)))
            ))
        } else if peer < cluster {
            Some(format!(
                "protocol {peer} is older than the cluster's protocol {cluster}: the cluster was upgraded; run a build that speaks {cluster}"
            ))
        } else {
            None
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A node's own protocol and its cluster's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Protocols {
    /// The version this node speaks: what it reads.
    pub own: Protocol,
    /// The version its cluster runs at: what it writes.
    pub cluster: Protocol,
}

impl Protocols {
    /// A node that speaks `own` in a cluster at `cluster`.
    ///
    /// # Panics
    /// When `cluster` is newer than `own`: a node never writes formats it
    /// cannot read.
    #[must_use]
    pub fn new(own: Protocol, cluster: Protocol) -> Self {
        assert!(
            cluster <= own,
            "cluster protocol {cluster} is newer than this node's {own}"
        );
        Protocols { own, cluster }
    }
}

impl Default for Protocols {
    fn default() -> Self {
        Protocols::new(Protocol::CURRENT, Protocol::CURRENT)
    }
}

/// The leader's decision: the protocol the cluster, now at `cluster`,
/// moves to, given the version each member of the membership speaks
/// (`None` for a member not heard from since this leader started). It
/// rises to the oldest member's version once every member is known to
/// speak a newer one; otherwise it stays (`None`).
#[must_use]
pub fn raised(
    cluster: Protocol,
    members: impl IntoIterator<Item = Option<Protocol>>,
) -> Option<Protocol> {
    let mut oldest: Option<Protocol> = None;
    for member in members {
        let member = member?;
        oldest = Some(oldest.map_or(member, |o| o.min(member)));
    }
    oldest.filter(|oldest| *oldest > cluster)
}

#[cfg(test)]
mod tests {
    use super::*;

    const V3: Protocol = Protocol(3);
    const V4: Protocol = Protocol(4);
    const V5: Protocol = Protocol(5);

    #[test]
    fn peers_one_version_apart_are_accepted_and_never_older_than_the_cluster() {
        assert_eq!(V3.refusal(V3, V3), None);
        assert_eq!(V3.refusal(V3, V4), None);
        assert_eq!(V4.refusal(V3, V3), None);
        let far = V3.refusal(V3, V5).unwrap();
        assert!(far.contains("protocol 5 is not supported"), "{far}");
        let too_old = V3.refusal(V3, Protocol(2)).unwrap();
        assert!(too_old.contains("3 at the oldest"), "{too_old}");
        let upgraded = V4.refusal(V4, V3).unwrap();
        assert!(
            upgraded.contains("older than the cluster's protocol 4"),
            "{upgraded}"
        );
    }

    #[test]
    fn the_cluster_rises_only_when_every_member_is_known_to_speak_newer() {
        assert_eq!(raised(V3, [Some(V4), Some(V4), Some(V4)]), Some(V4));
        assert_eq!(raised(V3, [Some(V4), Some(V3), Some(V4)]), None);
        assert_eq!(raised(V3, [Some(V4), None, Some(V4)]), None);
        assert_eq!(raised(V4, [Some(V4), Some(V4)]), None);
        assert_eq!(raised(V4, [Some(V5), Some(V4)]), None);
        assert_eq!(raised(V3, []), None);
    }

    #[test]
    fn a_node_reads_the_formats_of_its_own_protocol_and_older() {
        let kind = FrameKind::WriteSet;
        let newest = Protocol::CURRENT.frame_version(kind);
        assert!(Protocol::CURRENT.reads(kind, newest));
        assert!(!Protocol::CURRENT.reads(kind, newest + 1));
        assert!(!Protocol::CURRENT.reads(kind, 0));
    }

    #[cfg(feature = "next-version")]
    #[test]
    fn the_next_version_writes_write_sets_in_a_format_the_current_does_not_read() {
        let kind = FrameKind::WriteSet;
        let next = Protocol::NEXT.frame_version(kind);
        assert!(Protocol::NEXT.reads(kind, Protocol::CURRENT.frame_version(kind)));
        assert!(!Protocol::CURRENT.reads(kind, next));
    }

    #[test]
    #[should_panic(expected = "newer than this node's")]
    fn a_node_never_writes_what_it_cannot_read() {
        let _ = Protocols::new(V3, V4);
    }
}
