//! The read views of open transactions, so that garbage collection never
//! removes a version an open transaction can still read.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::watch;

use super::status::Status;
use crate::ids::{ClusterTime, Seqno};

/// Counts of open transactions per read view. The visible watermark they
/// start at is the one the runtime publishes in [`Status`]; taking a read
/// view and computing the horizon both read it under one lock, so a
/// transaction that begins while a collection runs is either seen by it or
/// reads at a view at or after its horizon.
#[derive(Debug)]
pub(crate) struct ReadViews {
    open: Mutex<BTreeMap<Seqno, usize>>,
    status: watch::Receiver<Status>,
}

impl ReadViews {
    pub(crate) fn new(status: watch::Receiver<Status>) -> Self {
        ReadViews {
            open: Mutex::default(),
            status,
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<Seqno, usize>> {
        // Counter updates cannot panic half-way; the map stays consistent.
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn last_visible(&self) -> Seqno {
        self.status.borrow().last_visible
    }

    /// Opens a read view at the current visible watermark.
    pub(crate) fn open(self: &Arc<Self>) -> ReadViewGuard {
        let mut open = self.lock();
        let (seqno, time) = {
            let status = self.status.borrow();
            (status.last_visible, status.visible_time)
        };
        *open.entry(seqno).or_default() += 1;
        ReadViewGuard {
            views: self.clone(),
            seqno,
            time,
        }
    }

    /// The oldest read view any open transaction holds, or the visible
    /// watermark when none is open.
    pub(crate) fn horizon(&self) -> Seqno {
        let open = self.lock();
        let last_visible = self.last_visible();
        open.keys()
            .next()
            .map_or(last_visible, |oldest| (*oldest).min(last_visible))
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
    time: ClusterTime,
}

impl ReadViewGuard {
    pub(crate) fn seqno(&self) -> Seqno {
        self.seqno
    }

    /// The cluster time at the read view.
    pub(crate) fn time(&self) -> ClusterTime {
        self.time
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
    use crate::certify::{CertConfig, Certifier};
    use crate::ids::NodeId;
    use crate::node::core::{CoreConfig, NodeCore};

    fn status_at(node_id: NodeId, last_visible: Seqno) -> Status {
        let config = CoreConfig {
            node_id,
            apply_slots: 1,
            apply_queue: 1,
            max_write_set_bytes: 1 << 10,
            checkpoint_interval: 1,
            checkpoint_bytes: u64::MAX,
            apply_queue_bytes: usize::MAX,
            max_inflight_commits: 1,
            protocol: crate::protocol::Protocol::CURRENT,
        };
        NodeCore::new(config, Certifier::new(CertConfig::default()), last_visible).status()
    }

    #[test]
    fn horizon_is_the_oldest_open_view() {
        let (status, rx) = watch::channel(status_at(NodeId::new(1), Seqno::new(5)));
        let views = Arc::new(ReadViews::new(rx));
        let visible = |seqno| status.send_modify(|s| s.last_visible = Seqno::new(seqno));
        let a = views.open();
        visible(9);
        let b = views.open();
        assert_eq!((a.seqno(), b.seqno()), (Seqno::new(5), Seqno::new(9)));
        assert_eq!(views.horizon(), Seqno::new(5));
        drop(a);
        assert_eq!(views.horizon(), Seqno::new(9));
        drop(b);
        visible(12);
        assert_eq!(views.horizon(), Seqno::new(12));
    }
}
