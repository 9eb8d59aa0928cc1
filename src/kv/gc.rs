//! Garbage collection of versions no open transaction can read.
//!
//! Every applied write queues (seqno, key). Once the read horizon (the
//! oldest open read view) reaches that seqno, the key's versions older than
//! the one visible at the horizon are unreachable and are removed; so is a
//! tombstone visible at the horizon, since "no version" reads the same as
//! "deleted". The queue is bounded: when it overflows, entries are dropped
//! and a resumable full scan takes over until it has covered every key.

use std::collections::{HashSet, VecDeque};

use bytes::Bytes;

use crate::ids::Seqno;

/// What a collection step did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GcStats {
    /// Keys whose versions were examined.
    pub keys_examined: usize,
    /// Versions (including tombstones) removed.
    pub versions_removed: usize,
    /// Whether a full scan is still in progress after this step.
    pub full_scan_pending: bool,
}

/// Keys with versions that become garbage once the horizon passes.
#[derive(Debug)]
pub(crate) struct GcQueue {
    capacity: usize,
    entries: VecDeque<(Seqno, Bytes)>,
    /// `Some(cursor)`: a full scan is due or running, resuming at `cursor`
    /// (an engine key).
    full_scan: Option<Bytes>,
    /// Entries were dropped while a full scan was running: run another.
    overflowed_during_scan: bool,
}

impl GcQueue {
    /// A queue holding at most `capacity` keys. `full_scan` starts with a scan
    /// (after a restart, when the queue's contents were lost).
    pub(crate) fn new(capacity: usize, full_scan: bool) -> Self {
        assert!(capacity > 0, "GC queue capacity must be positive");
        GcQueue {
            capacity,
            entries: VecDeque::new(),
            full_scan: full_scan.then(|| Bytes::from_static(super::layout::DATA_START)),
            overflowed_during_scan: false,
        }
    }

    pub(crate) fn push(&mut self, seqno: Seqno, key: Bytes) {
        if self.entries.len() < self.capacity {
            self.entries.push_back((seqno, key));
        } else if self.full_scan.is_some() {
            self.overflowed_during_scan = true;
        } else {
            self.full_scan = Some(Bytes::from_static(super::layout::DATA_START));
        }
    }

    /// Up to `budget` distinct keys whose queued writes are at or below the
    /// horizon. Entries arrive nearly in seqno order (parallel apply may
    /// swap neighbours), so stopping at the first newer entry delays a few
    /// keys by one step at most.
    pub(crate) fn take_ready(&mut self, horizon: Seqno, budget: usize) -> Vec<Bytes> {
        let mut seen = HashSet::new();
        let mut ready = Vec::new();
        while ready.len() < budget {
            match self.entries.front() {
                Some((seqno, _)) if *seqno <= horizon => {}
                _ => break,
            }
            if let Some((_, key)) = self.entries.pop_front()
                && seen.insert(key.clone())
            {
                ready.push(key);
            }
        }
        ready
    }

    pub(crate) fn scan_cursor(&self) -> Option<&Bytes> {
        self.full_scan.as_ref()
    }

    /// Moves the full scan forward, or ends it at `None`.
    pub(crate) fn set_scan_cursor(&mut self, cursor: Option<Bytes>) {
        self.full_scan = match cursor {
            None if self.overflowed_during_scan => {
                self.overflowed_during_scan = false;
                Some(Bytes::from_static(super::layout::DATA_START))
            }
            other => other,
        };
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflow_switches_to_a_full_scan_and_reschedules_it() {
        let mut queue = GcQueue::new(2, false);
        queue.push(Seqno::new(1), Bytes::from_static(b"a"));
        queue.push(Seqno::new(2), Bytes::from_static(b"a"));
        assert!(queue.scan_cursor().is_none());
        queue.push(Seqno::new(3), Bytes::from_static(b"b"));
        assert!(queue.scan_cursor().is_some());
        queue.push(Seqno::new(4), Bytes::from_static(b"c"));
        queue.set_scan_cursor(None);
        assert!(
            queue.scan_cursor().is_some(),
            "a drop during the scan needs another scan"
        );
        queue.set_scan_cursor(None);
        assert!(queue.scan_cursor().is_none());
    }

    #[test]
    fn ready_keys_are_distinct_and_at_or_below_the_horizon() {
        let mut queue = GcQueue::new(10, false);
        for (seqno, key) in [(1, "a"), (2, "a"), (3, "b"), (5, "c")] {
            queue.push(Seqno::new(seqno), Bytes::copy_from_slice(key.as_bytes()));
        }
        assert_eq!(queue.take_ready(Seqno::new(4), 10), ["a", "b"]);
        assert_eq!(queue.len(), 1);
        assert!(queue.take_ready(Seqno::new(4), 10).is_empty());
    }
}
