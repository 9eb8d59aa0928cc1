//! Local clients waiting for the verdict on their write-sets.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

use super::error::Error;
use super::outcome::CommitOutcome;
use crate::ids::TxnId;

pub(crate) type Verdict = Result<CommitOutcome, Error>;

/// One waiting client.
#[derive(Debug)]
struct Waiter {
    tx: oneshot::Sender<Verdict>,
    /// The ordering layer accepted its write-set. Until then the submission
    /// itself decides the outcome: it retries through a leader change, and
    /// the certifier's duplicate check makes a retried write-set count once.
    ordered: bool,
}

/// Transaction id to the channel its client waits on. Bounded by the node's
/// in-flight commit permits: a client registers only while holding one.
#[derive(Debug, Default)]
pub(crate) struct Waiters {
    waiting: Mutex<BTreeMap<TxnId, Waiter>>,
}

impl Waiters {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<TxnId, Waiter>> {
        // Insert and remove cannot panic half-way; the map stays consistent.
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn register(&self, txn_id: TxnId) -> oneshot::Receiver<Verdict> {
        let (tx, rx) = oneshot::channel();
        let waiter = Waiter { tx, ordered: false };
        let previous = self.lock().insert(txn_id, waiter);
        assert!(previous.is_none(), "transaction {txn_id} registered twice");
        rx
    }

    pub(crate) fn remove(&self, txn_id: TxnId) {
        self.lock().remove(&txn_id);
    }

    /// The ordering layer accepted `txn_id`'s write-set.
    pub(crate) fn ordered(&self, txn_id: TxnId) {
        if let Some(waiter) = self.lock().get_mut(&txn_id) {
            waiter.ordered = true;
        }
    }

    /// Delivers a verdict; a client that already gave up is ignored.
    pub(crate) fn resolve(&self, txn_id: TxnId, verdict: Verdict) {
        if let Some(waiter) = self.lock().remove(&txn_id) {
            // The client may have been dropped meanwhile; nothing to tell.
            let _ = waiter.tx.send(verdict);
        }
    }

    /// Fails every waiting client with `error`, oldest transaction first.
    pub(crate) fn abandon(&self, error: &Error) {
        for (_, waiter) in std::mem::take(&mut *self.lock()) {
            let _ = waiter.tx.send(Err(error.clone()));
        }
    }

    /// Fails with `error` the clients whose write-sets were ordered; those
    /// still being submitted stay, for their submission to settle.
    pub(crate) fn abandon_ordered(&self, error: &Error) {
        let mut waiting = self.lock();
        let ordered: Vec<TxnId> = waiting
            .iter()
            .filter(|(_, waiter)| waiter.ordered)
            .map(|(txn_id, _)| *txn_id)
            .collect();
        for txn_id in ordered {
            if let Some(waiter) = waiting.remove(&txn_id) {
                let _ = waiter.tx.send(Err(error.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Seqno;

    fn committed() -> Verdict {
        Ok(CommitOutcome::Committed {
            seqno: Seqno::new(7),
        })
    }

    #[test]
    fn leaving_the_primary_component_releases_only_ordered_write_sets() {
        let waiters = Waiters::default();
        let mut submitting = waiters.register(TxnId::new(1, 1));
        let mut ordered = waiters.register(TxnId::new(1, 2));
        waiters.ordered(TxnId::new(1, 2));
        waiters.abandon_ordered(&Error::OutcomeUnknown);
        assert!(matches!(ordered.try_recv(), Ok(Err(Error::OutcomeUnknown))));
        assert!(submitting.try_recv().is_err(), "still waiting");
        waiters.resolve(TxnId::new(1, 1), committed());
        assert!(matches!(
            submitting.try_recv(),
            Ok(Ok(CommitOutcome::Committed { .. }))
        ));
    }

    #[test]
    fn a_failed_node_releases_every_waiter() {
        let waiters = Waiters::default();
        let mut submitting = waiters.register(TxnId::new(1, 1));
        let mut ordered = waiters.register(TxnId::new(1, 2));
        waiters.ordered(TxnId::new(1, 2));
        waiters.abandon(&Error::ShutDown);
        assert!(matches!(submitting.try_recv(), Ok(Err(Error::ShutDown))));
        assert!(matches!(ordered.try_recv(), Ok(Err(Error::ShutDown))));
    }
}
