//! Garbage collection of versions no open transaction can read.
//!
//! Every applied write queues a [`Garbage`] entry: its seqno, its key, and
//! the version it hid when the write knows it. Once the read horizon (the
//! oldest open read view) reaches that seqno, the hidden version is
//! unreachable and is removed. Each write removes the version just below
//! it, so the chain of a key's writes removes all its old versions without
//! reading past them: a scan over a key's versions would step over the
//! engine's tombstones of every version removed before, which on a hot key
//! is thousands (an LSM engine keeps them until compaction). A write that
//! deletes the key removes, once at the horizon, every version of it and its
//! own tombstone, since "no version" reads the same as "deleted". The queue
//! is bounded: when it overflows, entries are dropped and a resumable full
//! scan takes over until it has covered every key.

use std::collections::VecDeque;

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

/// The version a write hid: the newest version of its key below it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hidden {
    /// The write did not read its key: found by a scan when collected.
    Unknown,
    /// The key had no version below the write.
    Nothing,
    /// The version at this seqno.
    At(Seqno),
}

/// One applied write, queued for collection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Garbage {
    /// The write's position.
    pub(crate) seqno: Seqno,
    /// The user key it wrote.
    pub(crate) key: Bytes,
    /// The version it hid.
    pub(crate) hidden: Hidden,
    /// Whether it deleted the key (its version is a tombstone).
    pub(crate) tombstone: bool,
}

impl Garbage {
    /// Whether collecting it can remove anything.
    fn leaves_garbage(&self) -> bool {
        self.tombstone || self.hidden != Hidden::Nothing
    }
}

/// Writes whose hidden versions become garbage once the horizon passes.
#[derive(Debug)]
pub(crate) struct GcQueue {
    capacity: usize,
    entries: VecDeque<Garbage>,
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

    pub(crate) fn push(&mut self, garbage: Garbage) {
        if !garbage.leaves_garbage() {
            return;
        }
        if self.entries.len() < self.capacity {
            self.entries.push_back(garbage);
        } else if self.full_scan.is_some() {
            self.overflowed_during_scan = true;
        } else {
            self.full_scan = Some(Bytes::from_static(super::layout::DATA_START));
        }
    }

    /// Up to `budget` queued writes at or below the horizon. Entries arrive
    /// nearly in seqno order (parallel apply may swap neighbours), so
    /// stopping at the first newer entry delays a few writes by one step at
    /// most.
    pub(crate) fn take_ready(&mut self, horizon: Seqno, budget: usize) -> Vec<Garbage> {
        let mut ready = Vec::new();
        while ready.len() < budget {
            match self.entries.front() {
                Some(garbage) if garbage.seqno <= horizon => {}
                _ => break,
            }
            ready.extend(self.entries.pop_front());
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

    fn write(seqno: u64, key: &'static str) -> Garbage {
        Garbage {
            seqno: Seqno::new(seqno),
            key: Bytes::from_static(key.as_bytes()),
            hidden: Hidden::Unknown,
            tombstone: false,
        }
    }

    #[test]
    fn overflow_switches_to_a_full_scan_and_reschedules_it() {
        let mut queue = GcQueue::new(2, false);
        queue.push(write(1, "a"));
        queue.push(write(2, "a"));
        assert!(queue.scan_cursor().is_none());
        queue.push(write(3, "b"));
        assert!(queue.scan_cursor().is_some());
        queue.push(write(4, "c"));
        queue.set_scan_cursor(None);
        assert!(
            queue.scan_cursor().is_some(),
            "a drop during the scan needs another scan"
        );
        queue.set_scan_cursor(None);
        assert!(queue.scan_cursor().is_none());
    }

    #[test]
    fn ready_writes_are_at_or_below_the_horizon_within_the_budget() {
        let mut queue = GcQueue::new(10, false);
        for (seqno, key) in [(1, "a"), (2, "a"), (3, "b"), (5, "c")] {
            queue.push(write(seqno, key));
        }
        assert_eq!(
            queue.take_ready(Seqno::new(4), 2),
            [write(1, "a"), write(2, "a")]
        );
        assert_eq!(queue.take_ready(Seqno::new(4), 10), [write(3, "b")]);
        assert_eq!(queue.len(), 1);
        assert!(queue.take_ready(Seqno::new(4), 10).is_empty());
    }

    #[test]
    fn a_write_that_hid_nothing_is_not_queued() {
        let mut queue = GcQueue::new(10, false);
        let first = Garbage {
            hidden: Hidden::Nothing,
            ..write(1, "a")
        };
        queue.push(first.clone());
        assert_eq!(queue.len(), 0, "a first write leaves nothing to collect");
        queue.push(Garbage {
            tombstone: true,
            ..first
        });
        assert_eq!(queue.len(), 1, "a delete removes its own tombstone later");
    }
}
