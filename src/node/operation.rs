//! [`OperationHandle`]: an ordered operation on its way from the engine to
//! every node's applier.

use std::sync::Arc;

use bytes::Bytes;

use super::error::Error;
use super::outcome::Conflict;
use super::shared::Shared;
use super::transaction::{encode_error, settle};
use crate::ids::{Seqno, TxnId};
use crate::node::CommitOutcome;
use crate::writeset::{KeyKind, OperationBuilder, Scope};

/// How an operation ended. Both variants are normal outcomes.
#[must_use = "a conflict means the operation did not execute"]
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OperationOutcome {
    /// Every node executed it at `seqno`, this one included (it is
    /// visible here), and `output` is what it returned here.
    Executed {
        /// Its position in the global order.
        seqno: Seqno,
        /// The applier's output ([`crate::apply::Applier::execute`]).
        output: Bytes,
    },
    /// A watched key was written after the operation's view, or it was
    /// delivered more than the certification window after it: nothing was
    /// executed anywhere.
    Conflict(Conflict),
}

/// An operation being declared: its payload and the keys it reads and
/// writes. [`OperationHandle::submit`] orders it; every node's applier then
/// executes the payload at its position ([`crate::apply::Applier::execute`])
/// and this node returns the output. Declare every key the payload may read
/// or write (or widen the [`Scope`]): apply runs operations in parallel
/// where their declared keys are independent.
#[derive(Debug)]
pub struct OperationHandle {
    shared: Arc<Shared>,
    txn_id: TxnId,
    builder: OperationBuilder,
    payload: Bytes,
}

impl OperationHandle {
    pub(super) fn new(shared: Arc<Shared>, txn_id: TxnId, payload: Bytes) -> Self {
        OperationHandle {
            shared,
            txn_id,
            builder: OperationBuilder::new(),
            payload,
        }
    }

    /// Its id on this node.
    #[must_use]
    pub fn id(&self) -> TxnId {
        self.txn_id
    }

    /// Declares `key` as read.
    pub fn read(&mut self, key: impl Into<Bytes>) {
        self.builder.read(key.into());
    }

    /// Declares `key` as written.
    pub fn write(&mut self, key: impl Into<Bytes>) {
        self.builder.write(key.into());
    }

    /// Declares `key` with `kind`.
    pub fn declare(&mut self, key: impl Into<Bytes>, kind: KeyKind) {
        self.builder.declare(key.into(), kind);
    }

    /// Widens what it may read or write beyond its declared keys.
    pub fn cover(&mut self, scope: Scope) {
        self.builder.cover(scope);
    }

    /// Makes it abort when `key` was written after `view` (a position this
    /// node had made visible when the key was observed): Redis's `WATCH`.
    pub fn watch(&mut self, view: Seqno, key: impl Into<Bytes>) {
        self.builder.watch(view, key.into());
    }

    /// Orders the operation and waits until it executed and is visible
    /// here.
    ///
    /// # Errors
    /// As [`super::Transaction::commit`]: [`Error::NotPrimary`] (nothing was
    /// ordered), [`Error::OutcomeUnknown`] (it may have executed),
    /// [`Error::WriteSetTooLarge`], [`Error::Failed`], [`Error::ShutDown`].
    pub async fn submit(self) -> Result<OperationOutcome, Error> {
        let shared = self.shared;
        shared.check_serving()?;
        let visible = {
            let status = shared.published.status.borrow();
            if !status.state.accepts_writes() {
                return Err(Error::NotPrimary);
            }
            status.last_visible
        };
        let max = shared.config.max_write_set_bytes;
        let op = self
            .builder
            .build(shared.config.node_id, self.txn_id, visible, self.payload);
        let frame = op
            .encode_at(shared.order.protocols().cluster, max)
            .map_err(|err| encode_error(err, max))?;
        let _permit = shared
            .inflight
            .acquire()
            .await
            .map_err(|_| Error::ShutDown)?;
        let settled = settle(&shared, self.txn_id, frame).await?;
        match (settled.outcome, settled.output) {
            (CommitOutcome::Committed { seqno }, Some(output)) => {
                Ok(OperationOutcome::Executed { seqno, output })
            }
            (CommitOutcome::Conflict(conflict), None) => Ok(OperationOutcome::Conflict(conflict)),
            (outcome, output) => panic!(
                "operation {} settled as {outcome:?} with output {output:?}",
                self.txn_id
            ),
        }
    }
}
