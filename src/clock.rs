//! The wall clock, read only where the cluster needs a time: the leader
//! stamping what it orders, and the expiry reaper deciding when a key is
//! due. Nothing that decides reads it: decisions read the cluster time of
//! a position ([`ClusterTime`]), which the stamps define.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::ids::{ClusterTime, NodeId};

/// `node`'s clock now: the system's, or in [`crate::simulation`] the
/// simulated time with that node's skew.
#[must_use]
pub fn now(node: NodeId) -> ClusterTime {
    if let Some(time) = crate::simulation::clock(node) {
        return time;
    }
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    ClusterTime::from_millis(millis)
}
