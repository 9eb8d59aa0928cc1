//! Local clients waiting for the verdict on their write-sets.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

use super::error::Error;
use super::outcome::CommitOutcome;
use crate::ids::TxnId;

pub(crate) type Verdict = Result<CommitOutcome, Error>;

/// Transaction id to the channel its client waits on. Bounded by the node's
/// in-flight commit permits: a client registers only while holding one.
#[derive(Debug, Default)]
pub(crate) struct Waiters {
    waiting: Mutex<BTreeMap<TxnId, oneshot::Sender<Verdict>>>,
}

impl Waiters {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<TxnId, oneshot::Sender<Verdict>>> {
        // Insert and remove cannot panic half-way; the map stays consistent.
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn register(&self, txn_id: TxnId) -> oneshot::Receiver<Verdict> {
        let (tx, rx) = oneshot::channel();
        let previous = self.lock().insert(txn_id, tx);
        assert!(previous.is_none(), "transaction {txn_id} registered twice");
        rx
    }

    pub(crate) fn remove(&self, txn_id: TxnId) {
        self.lock().remove(&txn_id);
    }

    /// Delivers a verdict; a client that already gave up is ignored.
    pub(crate) fn resolve(&self, txn_id: TxnId, verdict: Verdict) {
        if let Some(tx) = self.lock().remove(&txn_id) {
            // The client may have been dropped meanwhile; nothing to tell.
            let _ = tx.send(verdict);
        }
    }

    /// Fails every waiting client with `error`, oldest transaction first.
    pub(crate) fn abandon(&self, error: &Error) {
        for (_, tx) in std::mem::take(&mut *self.lock()) {
            let _ = tx.send(Err(error.clone()));
        }
    }
}
