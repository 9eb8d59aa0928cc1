//! The shell around flow control's rules ([`super::rule`]): the clock, the
//! lock, and waking submitters when admission reopens.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::rule::{Gate, Request, Requester};
use crate::ids::NodeId;
use crate::order::FlowControlStats;

/// Flow-control state shared by the monitor, the peer service and submit.
pub(crate) struct FlowControl {
    gate: Mutex<Gate>,
    requester: Mutex<Requester>,
    reopened: Notify,
    /// This node's consumer is synced: only then does its lag count.
    synced: AtomicBool,
    /// How long a pause request stays in force unless refreshed.
    expiry: Duration,
    /// The clock's origin: the rules see time as the duration since it.
    epoch: Instant,
}

impl FlowControl {
    pub(crate) fn new(limit: u64, expiry: Duration) -> Self {
        FlowControl {
            gate: Mutex::new(Gate::default()),
            requester: Mutex::new(Requester::new(limit)),
            reopened: Notify::new(),
            synced: AtomicBool::new(false),
            expiry,
            epoch: Instant::now(),
        }
    }

    fn now(&self) -> Duration {
        Instant::now().saturating_duration_since(self.epoch)
    }

    fn gate(&self) -> MutexGuard<'_, Gate> {
        self.gate.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn requester(&self) -> MutexGuard<'_, Requester> {
        self.requester
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether this node's consumer is synced (see
    /// [`crate::order::TotalOrder::set_synced`]).
    pub(crate) fn set_synced(&self, synced: bool) {
        self.synced.store(synced, Ordering::Release);
    }

    /// This node lags `lag` positions; the request to send, if any. A node
    /// that is not synced lags by nothing that may hold the cluster back:
    /// a pause it asked for is released.
    pub(crate) fn on_lag(&self, lag: u64) -> Option<Request> {
        let lag = if self.synced.load(Ordering::Acquire) {
            lag
        } else {
            0
        };
        self.requester().on_lag(lag)
    }

    /// A node's request arrived (or this node's own, on the leader).
    pub(crate) fn on_request(&self, from: NodeId, request: Request) {
        let now = self.now();
        match request {
            Request::Pause => self.gate().hold(from, now + self.expiry, now),
            Request::Resume => {
                self.gate().release(from, now);
                self.reopened.notify_waiters();
            }
        }
    }

    /// Waits until admission is open, for at most `max_wait`. Returns
    /// whether it is open.
    pub(crate) async fn admit(&self, max_wait: Duration) -> bool {
        let deadline = self.now() + max_wait;
        loop {
            let reopened = self.reopened.notified();
            let now = self.now();
            let wake = {
                let mut gate = self.gate();
                if !gate.is_closed(now) {
                    return true;
                }
                gate.next_expiry().unwrap_or(deadline).min(deadline)
            };
            if now >= deadline {
                return false;
            }
            let _ = tokio::time::timeout_at(self.epoch + wake, reopened).await;
        }
    }

    pub(crate) fn stats(&self) -> FlowControlStats {
        let now = self.now();
        let mut gate = self.gate();
        let requester = self.requester();
        FlowControlStats {
            active: gate.is_closed(now) || requester.is_pausing(),
            paused: gate.paused(now),
            pauses_sent: requester.pauses_sent(),
        }
    }
}
