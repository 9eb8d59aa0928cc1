//! Flow control's rules, after Galera's: a node that falls too far behind
//! asks the cluster to stop admitting write-sets until it has caught up.
//!
//! - [`Requester`] runs on every voter. It measures how many committed
//!   positions this node has not yet handed to its engine and, with
//!   hysteresis, decides to ask for a pause (over `limit`) or to release it
//!   (at or under half of `limit`, Galera's `fc_factor`).
//! - [`Gate`] runs on every node and is consulted by the leader before it
//!   appends: closed while any node's pause request is in force. A request
//!   expires unless refreshed, so a lagging node that crashes or is cut off
//!   cannot stop the cluster for longer than one expiry.
//!
//! Time is an input: `now` is how long the shell's clock has run, never
//! read here.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::ids::NodeId;

/// What a node's own lag asks of the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Request {
    Pause,
    Resume,
}

/// Decides when this node asks for a pause.
#[derive(Debug)]
pub(crate) struct Requester {
    limit: u64,
    pausing: bool,
    sent: u64,
}

impl Requester {
    pub(crate) fn new(limit: u64) -> Self {
        Requester {
            limit,
            pausing: false,
            sent: 0,
        }
    }

    /// The node lags `lag` positions. Returns the request to send now:
    /// `Pause` again on every call while pausing (a refresh), `Resume` once.
    pub(crate) fn on_lag(&mut self, lag: u64) -> Option<Request> {
        if self.pausing && lag <= self.limit / 2 {
            self.pausing = false;
            return Some(Request::Resume);
        }
        if !self.pausing && lag > self.limit {
            self.pausing = true;
            self.sent += 1;
        }
        self.pausing.then_some(Request::Pause)
    }

    /// Times this node started asking for a pause.
    pub(crate) fn pauses_sent(&self) -> u64 {
        self.sent
    }

    pub(crate) fn is_pausing(&self) -> bool {
        self.pausing
    }
}

/// The pause requests in force, and how long admission has been held.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    /// Node to the time its request expires.
    holds: BTreeMap<NodeId, Duration>,
    closed_since: Option<Duration>,
    paused: Duration,
}

impl Gate {
    /// `node` asks for a pause until `until` (or until it resumes).
    pub(crate) fn hold(&mut self, node: NodeId, until: Duration, now: Duration) {
        self.holds.insert(node, until);
        self.update(now);
    }

    /// `node` caught up.
    pub(crate) fn release(&mut self, node: NodeId, now: Duration) {
        self.holds.remove(&node);
        self.update(now);
    }

    /// Whether admission is paused at `now`; expired requests are dropped.
    pub(crate) fn is_closed(&mut self, now: Duration) -> bool {
        self.update(now);
        self.closed_since.is_some()
    }

    /// When the earliest request in force expires.
    pub(crate) fn next_expiry(&self) -> Option<Duration> {
        self.holds.values().min().copied()
    }

    /// Total time admission has been paused, up to `now`.
    pub(crate) fn paused(&self, now: Duration) -> Duration {
        self.paused
            + self
                .closed_since
                .map_or(Duration::ZERO, |at| now.saturating_sub(at))
    }

    fn update(&mut self, now: Duration) {
        self.holds.retain(|_, until| *until > now);
        match (self.closed_since, self.holds.is_empty()) {
            (None, false) => self.closed_since = Some(now),
            (Some(at), true) => {
                self.paused += now.saturating_sub(at);
                self.closed_since = None;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requester_pauses_over_the_limit_and_resumes_at_half() {
        let mut r = Requester::new(100);
        assert_eq!(r.on_lag(100), None);
        assert_eq!(r.on_lag(101), Some(Request::Pause));
        // Still over half: the pause is refreshed, not counted again.
        assert_eq!(r.on_lag(51), Some(Request::Pause));
        assert_eq!(r.pauses_sent(), 1);
        assert_eq!(r.on_lag(50), Some(Request::Resume));
        assert_eq!(r.on_lag(50), None);
        assert!(!r.is_pausing());
        assert_eq!(r.on_lag(1000), Some(Request::Pause));
        assert_eq!(r.pauses_sent(), 2);
    }

    #[test]
    fn gate_closes_while_any_request_is_in_force_and_counts_the_time() {
        let t0 = Duration::from_secs(100);
        let s = Duration::from_secs;
        let (a, b) = (NodeId::new(1), NodeId::new(2));
        let mut gate = Gate::default();
        assert!(!gate.is_closed(t0));
        gate.hold(a, t0 + s(10), t0);
        gate.hold(b, t0 + s(10), t0 + s(1));
        gate.release(a, t0 + s(2));
        assert!(gate.is_closed(t0 + s(3)));
        gate.release(b, t0 + s(4));
        assert!(!gate.is_closed(t0 + s(5)));
        assert_eq!(gate.paused(t0 + s(5)), s(4));
    }

    #[test]
    fn an_unrefreshed_request_expires() {
        let t0 = Duration::from_secs(100);
        let s = Duration::from_secs;
        let mut gate = Gate::default();
        gate.hold(NodeId::new(3), t0 + s(2), t0);
        assert_eq!(gate.next_expiry(), Some(t0 + s(2)));
        assert!(gate.is_closed(t0 + s(1)));
        assert!(!gate.is_closed(t0 + s(2)));
        assert_eq!(gate.paused(t0 + s(9)), s(2));
        assert_eq!(gate.next_expiry(), None);
    }
}
