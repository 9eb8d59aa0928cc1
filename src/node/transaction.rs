//! [`Transaction`]: one unit of work against a snapshot, certified at commit.

use std::sync::Arc;

use bytes::Bytes;

use super::error::Error;
use super::handle::Shared;
use super::outcome::CommitOutcome;
use super::read_views::ReadViewGuard;
use crate::ids::{Seqno, TxnId};
use crate::writeset::{Isolation, KeyKind, WriteSetBuilder};

/// How to begin a transaction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TxnOptions {
    /// What certification enforces.
    pub isolation: Isolation,
    /// Whether to wait for cluster-wide commits before reading; `None` uses
    /// the node's [`super::NodeConfig::causal_reads`].
    pub causal: Option<bool>,
}

impl TxnOptions {
    /// Options with the given isolation and the node's default read mode.
    #[must_use]
    pub fn isolation(isolation: Isolation) -> Self {
        TxnOptions {
            isolation,
            causal: None,
        }
    }

    /// Overrides the node's causal-read default.
    #[must_use]
    pub fn causal(mut self, causal: bool) -> Self {
        self.causal = Some(causal);
        self
    }
}

/// A transaction. The storage engine reads at [`Transaction::read_view`],
/// records its changes and the keys it touched here, and calls
/// [`Transaction::commit`]. Dropping it rolls it back.
#[derive(Debug)]
pub struct Transaction {
    shared: Arc<Shared>,
    txn_id: TxnId,
    builder: WriteSetBuilder,
    read_view: ReadViewGuard,
}

impl Transaction {
    pub(super) fn new(
        shared: Arc<Shared>,
        txn_id: TxnId,
        read_view: ReadViewGuard,
        isolation: Isolation,
    ) -> Self {
        let builder =
            WriteSetBuilder::new(shared.config.node_id, txn_id, read_view.seqno(), isolation);
        Transaction {
            shared,
            txn_id,
            builder,
            read_view,
        }
    }

    /// The snapshot to read: every commit at or below it, nothing after.
    #[must_use]
    pub fn read_view(&self) -> Seqno {
        self.read_view.seqno()
    }

    /// The transaction's id on this node.
    #[must_use]
    pub fn id(&self) -> TxnId {
        self.txn_id
    }

    /// Sets an existing row.
    ///
    /// # Errors
    /// [`Error::WriteSetTooLarge`]; the transaction can then no longer commit.
    pub fn put(&mut self, key: impl Into<Bytes>, value: impl Into<Bytes>) -> Result<(), Error> {
        self.builder.put(key.into(), value.into());
        self.check_size()
    }

    /// Creates a row.
    ///
    /// # Errors
    /// [`Error::WriteSetTooLarge`]; the transaction can then no longer commit.
    pub fn insert(&mut self, key: impl Into<Bytes>, value: impl Into<Bytes>) -> Result<(), Error> {
        self.builder.insert(key.into(), value.into());
        self.check_size()
    }

    /// Removes a row.
    ///
    /// # Errors
    /// [`Error::WriteSetTooLarge`]; the transaction can then no longer commit.
    pub fn delete(&mut self, key: impl Into<Bytes>) -> Result<(), Error> {
        self.builder.delete(key.into());
        self.check_size()
    }

    /// Declares a key without changing a row (for example a table as
    /// [`KeyKind::Shared`], or a foreign-key parent as
    /// [`KeyKind::Reference`]).
    ///
    /// # Errors
    /// [`Error::WriteSetTooLarge`]; the transaction can then no longer commit.
    pub fn append_key(&mut self, key: impl Into<Bytes>, kind: KeyKind) -> Result<(), Error> {
        self.builder.append_key(key.into(), kind);
        self.check_size()
    }

    /// Records a key the transaction read; serializable transactions are
    /// certified against it, snapshot ones ignore it.
    ///
    /// # Errors
    /// [`Error::WriteSetTooLarge`]; the transaction can then no longer commit.
    pub fn record_read(&mut self, key: impl Into<Bytes>) -> Result<(), Error> {
        self.builder.read(key.into());
        self.check_size()
    }

    /// This transaction's own pending write to `key`: `Some(Some(v))` for a
    /// put, `Some(None)` for a delete, `None` when it did not write `key`.
    #[must_use]
    pub fn pending_write(&self, key: &[u8]) -> Option<Option<&Bytes>> {
        self.builder.pending_write(key)
    }

    fn check_size(&self) -> Result<(), Error> {
        let len = self.builder.approx_encoded_len();
        let max = self.shared.config.max_write_set_bytes;
        if len > max {
            return Err(Error::WriteSetTooLarge { len, max });
        }
        Ok(())
    }

    /// Replicates the write-set, waits for its verdict, and for a commit
    /// waits until this node applied it, so the caller reads its own writes.
    /// A transaction that declared no keys commits at its read view without
    /// replicating anything.
    ///
    /// # Errors
    /// [`Error::NotPrimary`] (nothing was committed),
    /// [`Error::OutcomeUnknown`] (it may have committed),
    /// [`Error::WriteSetTooLarge`], [`Error::Failed`], [`Error::ShutDown`].
    pub async fn commit(self) -> Result<CommitOutcome, Error> {
        let shared = self.shared.clone();
        if self.builder.is_key_free() {
            return Ok(CommitOutcome::Committed {
                seqno: self.read_view(),
            });
        }
        shared.check_serving()?;
        if !shared.published.status.borrow().state.accepts_writes() {
            return Err(Error::NotPrimary);
        }
        let max = shared.config.max_write_set_bytes;
        let frame = self.builder.build().encode(max).map_err(|err| match err {
            crate::frame::FrameError::TooLarge { len, .. } => Error::WriteSetTooLarge {
                len: usize::try_from(len).unwrap_or(usize::MAX),
                max,
            },
            other => Error::Failed(format!("encoding a write-set failed: {other}")),
        })?;
        let _permit = shared
            .inflight
            .acquire()
            .await
            .map_err(|_| Error::ShutDown)?;
        let outcome = settle(&shared, self.txn_id, frame).await?;
        if let Some(seqno) = outcome.committed_seqno() {
            shared.wait_applied(seqno, false).await?;
        }
        Ok(outcome)
    }
}

/// Submits `frame` for `txn_id` and waits for its verdict.
async fn settle(shared: &Shared, txn_id: TxnId, frame: Bytes) -> Result<CommitOutcome, Error> {
    let mut verdict = shared.published.waiters.register(txn_id);
    // The verdict can arrive while the submission is still retrying (an
    // attempt got in, but its answer was lost with a connection): then
    // the verdict settles the commit at once, and the submission is
    // dropped. A copy it may still have sent is a duplicate, which
    // certification recognises and nobody applies.
    let submitted = tokio::select! {
        biased;
        early = &mut verdict => Some(early),
        submitted = shared.order.submit(frame) => {
            if let Err(err) = submitted {
                shared.published.waiters.remove(txn_id);
                return Err(err.into());
            }
            None
        }
    };
    match submitted {
        Some(Ok(early)) => early,
        Some(Err(_)) => Err(Error::ShutDown),
        None => {
            shared.published.waiters.ordered(txn_id);
            match tokio::time::timeout(shared.config.wait_timeout, verdict).await {
                Err(_) => {
                    shared.published.waiters.remove(txn_id);
                    Err(Error::OutcomeUnknown)
                }
                Ok(Err(_)) => Err(Error::ShutDown),
                Ok(Ok(verdict)) => verdict,
            }
        }
    }
}
