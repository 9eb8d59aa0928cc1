//! The read views of open transactions, so that garbage collection never
//! removes a version an open transaction can still read.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::ids::Seqno;

/// Counts of open transactions per read view, plus the node's applied
/// watermark. Taking a read view and computing the horizon both happen
/// under one lock, so a transaction that begins while a collection runs is
/// either seen by it or reads at a view at or after its horizon.
#[derive(Debug, Default)]
pub(crate) struct ReadViews {
    open: Mutex<BTreeMap<Seqno, usize>>,
    last_applied: AtomicU64,
}

impl ReadViews {
    pub(crate) fn new(last_applied: Seqno) -> Self {
        ReadViews {
            open: Mutex::default(),
            last_applied: AtomicU64::new(last_applied.get()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<Seqno, usize>> {
        // Counter updates cannot panic half-way; the map stays consistent.
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn last_applied(&self) -> Seqno {
        Seqno::new(self.last_applied.load(Ordering::Acquire))
    }

    /// Publishes a new applied watermark.
    pub(crate) fn set_last_applied(&self, seqno: Seqno) {
        let previous = self.last_applied.swap(seqno.get(), Ordering::AcqRel);
        assert!(
            previous <= seqno.get(),
            "applied watermark regressed from {previous} to {seqno}"
        );
    }

    /// Opens a read view at the current applied watermark.
    pub(crate) fn open(self: &Arc<Self>) -> ReadViewGuard {
        let mut open = self.lock();
        let seqno = self.last_applied();
        *open.entry(seqno).or_default() += 1;
        ReadViewGuard {
            views: self.clone(),
            seqno,
        }
    }

    /// The oldest read view any open transaction holds, or the applied
    /// watermark when none is open.
    pub(crate) fn horizon(&self) -> Seqno {
        let open = self.lock();
        let last_applied = self.last_applied();
        open.keys()
            .next()
            .map_or(last_applied, |oldest| (*oldest).min(last_applied))
    }

    fn close(&self, seqno: Seqno) {
        let mut open = self.lock();
        let count = open.get_mut(&seqno);
        let count = count.unwrap_or_else(|| panic!("closing read view {seqno} that is not open"));
        *count -= 1;
        if *count == 0 {
            open.remove(&seqno);
        }
    }
}

/// An open read view; closing it happens on drop.
#[derive(Debug)]
pub(crate) struct ReadViewGuard {
    views: Arc<ReadViews>,
    seqno: Seqno,
}

impl ReadViewGuard {
    pub(crate) fn seqno(&self) -> Seqno {
        self.seqno
    }
}

impl Drop for ReadViewGuard {
    fn drop(&mut self) {
        self.views.close(self.seqno);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn horizon_is_the_oldest_open_view() {
        let views = Arc::new(ReadViews::new(Seqno::new(5)));
        let a = views.open();
        views.set_last_applied(Seqno::new(9));
        let b = views.open();
        assert_eq!((a.seqno(), b.seqno()), (Seqno::new(5), Seqno::new(9)));
        assert_eq!(views.horizon(), Seqno::new(5));
        drop(a);
        assert_eq!(views.horizon(), Seqno::new(9));
        drop(b);
        views.set_last_applied(Seqno::new(12));
        assert_eq!(views.horizon(), Seqno::new(12));
    }
}
