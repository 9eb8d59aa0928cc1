//! [`Transaction`]: one unit of work against a snapshot, certified at commit.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::oneshot;

use super::commits::Settled;
use super::error::Error;
use super::outcome::CommitOutcome;
use super::read_views::ReadViewGuard;
use super::runtime::CommitEvent;
use super::shared::Shared;
use crate::ids::{ClusterTime, Seqno, TxnId};
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

    /// The cluster time at the read view: when reads decide whether
    /// something has expired, this is "now" for them, on every node alike.
    #[must_use]
    pub fn read_time(&self) -> ClusterTime {
        self.read_view.time()
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

    /// Every pending write, `None` for a delete.
    pub(crate) fn pending_writes(&self) -> &std::collections::BTreeMap<Bytes, Option<Bytes>> {
        self.builder.pending_writes()
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
    /// waits until it is visible here, so the caller reads its own writes.
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
        let frame = self
            .builder
            .build()
            .encode_at(shared.order.protocols().cluster, max)
            .map_err(|err| encode_error(err, max))?;
        let _permit = shared
            .inflight
            .acquire()
            .await
            .map_err(|_| Error::ShutDown)?;
        Ok(settle(&shared, self.txn_id, frame).await?.outcome)
    }
}

/// The error for a write-set or operation that did not encode.
pub(super) fn encode_error(err: crate::frame::FrameError, max: usize) -> Error {
    match err {
        crate::frame::FrameError::TooLarge { len, .. } => Error::WriteSetTooLarge {
            len: usize::try_from(len).unwrap_or(usize::MAX),
            max,
        },
        other => Error::Encode(other),
    }
}

/// Registers the commit with the core, submits `frame`, and waits for the
/// one completion the core sends: the verdict, and for a commit its
/// visibility here. The verdict can arrive while the submission is still
/// retrying (an attempt got in, but its answer was lost with a
/// connection): then it settles the commit at once and the submission is
/// dropped. A copy it may still have sent is a duplicate, which
/// certification recognises and nobody applies.
pub(super) async fn settle(shared: &Shared, txn_id: TxnId, frame: Bytes) -> Result<Settled, Error> {
    let started = std::time::Instant::now();
    let settled = settle_untimed(shared, txn_id, frame).await;
    shared.timings.commit.observe(started.elapsed());
    settled
}

async fn settle_untimed(shared: &Shared, txn_id: TxnId, frame: Bytes) -> Result<Settled, Error> {
    let (reply, mut completion) = oneshot::channel();
    let report = |event| async {
        shared
            .commit_events
            .send(event)
            .await
            .map_err(|_| Error::ShutDown)
    };
    report(CommitEvent::Submitted { txn_id, reply }).await?;
    let result = tokio::select! {
        biased;
        done = &mut completion => return done.unwrap_or(Err(Error::ShutDown)),
        result = shared.order.submit(frame) => result,
    };
    report(CommitEvent::SubmissionEnded { txn_id, result }).await?;
    let waited = shared.config.wait_timeout;
    if let Ok(done) = tokio::time::timeout(waited, &mut completion).await {
        return done.unwrap_or(Err(Error::ShutDown));
    }
    report(CommitEvent::GaveUp { txn_id, waited }).await?;
    completion.await.unwrap_or(Err(Error::ShutDown))
}
