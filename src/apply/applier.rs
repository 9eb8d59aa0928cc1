//! The interface a storage engine implements to receive replicated changes.

use thiserror::Error;

use crate::Cause;
use crate::certify::CertCheckpoint;
use bytes::Bytes;

use crate::ids::{ClusterTime, Seqno};
use crate::writeset::{Operation, WriteSet};

/// A storage engine's failure to apply or persist replicated state. The node
/// treats it as fatal: a replica that cannot apply what the cluster committed
/// would diverge, so it stops serving (see [`crate::node::NodeState::Failed`]).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ApplyError {
    /// The engine could not read or write.
    #[error("storage engine failed: {0}")]
    Storage(#[source] Cause),
    /// Stored replication state is damaged.
    #[error("stored replication state is corrupt: {0}")]
    Corrupt(#[source] Cause),
    /// The engine's certification checkpoint is ahead of its visible data,
    /// which no correct engine stores.
    #[error("stored checkpoint at {checkpoint} is ahead of the visible data at {visible}")]
    CheckpointAhead {
        /// The checkpoint's seqno.
        checkpoint: Seqno,
        /// The engine's visible watermark.
        visible: Seqno,
    },
    /// The node shut down while the engine was working; what it was doing
    /// may not have finished.
    #[error("the node shut down while the storage engine was working")]
    Interrupted,
    /// An ordered operation was committed, and this engine does not
    /// execute operations ([`Applier::execute`]).
    #[error("the storage engine cannot execute ordered operations")]
    Unsupported,
}

/// What an engine found on disk when the node starts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Every write-set at or below this seqno is applied and visible.
    pub last_visible: Seqno,
    /// The last certification checkpoint stored by [`Applier::make_visible`];
    /// its seqno is at or below `last_visible`. `None` for an empty store.
    pub checkpoint: Option<CertCheckpoint>,
}

/// Implemented by a storage engine that embeds certus.
///
/// The node calls [`Applier::apply`] from several worker tasks at once, for
/// write-sets whose dependencies are already applied, then
/// [`Applier::make_visible`] from one task with a watermark that only grows.
/// Changes applied at seqno `s` must stay invisible to readers until
/// `make_visible` with `upto >= s`, and visible only to read views at or
/// after `s`. `apply` must be idempotent: after a crash the node applies
/// again everything after the last visible watermark. `make_visible` must be
/// durable when it carries a checkpoint; otherwise it may be lazy (the
/// node's log keeps every position after the last stored checkpoint), as
/// long as what survives a crash is a prefix of the writes.
pub trait Applier: Send + Sync + 'static {
    /// Reports the durable replication state at start-up.
    ///
    /// # Errors
    /// [`ApplyError`] when the stored state cannot be read.
    fn recover(&self) -> Result<Recovered, ApplyError>;

    /// Applies the row changes of a write-set certification committed.
    ///
    /// # Errors
    /// [`ApplyError`]; the node stops applying and fails.
    fn apply(&self, seqno: Seqno, ws: &WriteSet) -> Result<(), ApplyError>;

    /// Applies several certified write-sets whose dependencies are all
    /// applied already; an engine overrides it to write them together.
    ///
    /// # Errors
    /// [`ApplyError`]; the node stops applying and fails.
    fn apply_batch(&self, batch: &[(Seqno, &WriteSet)]) -> Result<(), ApplyError> {
        batch
            .iter()
            .try_for_each(|(seqno, ws)| self.apply(*seqno, ws))
    }

    /// Executes an ordered operation certification committed at `seqno`
    /// and writes its effect at `seqno`, invisible until `make_visible`, as
    /// `apply` does; returns its output (the reply its origin's client
    /// gets). Every node executes every operation, so the effect and the
    /// output must depend only on `op`'s payload, on `time` (the cluster
    /// time at `seqno`) and on the state just before `seqno`: what was
    /// applied at positions below `seqno`, which for the keys `op` declared
    /// (or every key, for a wider [`crate::writeset::Scope`]) is applied
    /// before this is called. Like `apply`, it must be idempotent. A
    /// failure of the operation itself (a command error) belongs in the
    /// output; an `Err` fails the node. Engines that never submit
    /// operations keep the default, which fails it.
    ///
    /// # Errors
    /// [`ApplyError`]; the node stops applying and fails.
    fn execute(
        &self,
        seqno: Seqno,
        time: ClusterTime,
        op: &Operation,
    ) -> Result<Bytes, ApplyError> {
        let _ = (seqno, time, op);
        Err(ApplyError::Unsupported)
    }

    /// Executes several committed operations whose dependencies are all
    /// applied already (none depends on another); an engine overrides it to
    /// write them together. Returns the outputs in order.
    ///
    /// # Errors
    /// [`ApplyError`]; the node stops applying and fails.
    fn execute_batch(
        &self,
        batch: &[(Seqno, ClusterTime, &Operation)],
    ) -> Result<Vec<Bytes>, ApplyError> {
        batch
            .iter()
            .map(|(seqno, time, op)| self.execute(*seqno, *time, op))
            .collect()
    }

    /// Makes everything at or below `upto` visible and records `upto` as the
    /// last applied seqno, together with `checkpoint` when one is given, in
    /// one atomic step.
    ///
    /// # Errors
    /// [`ApplyError`]; the node stops applying and fails.
    fn make_visible(
        &self,
        upto: Seqno,
        checkpoint: Option<&CertCheckpoint>,
    ) -> Result<(), ApplyError>;

    /// Whether the next [`Applier::make_visible`] (with a checkpoint when
    /// `checkpoint`) returns without waiting for the disk: the node then
    /// runs it on its own task instead of handing it to a blocking thread
    /// and back. `false` by default.
    fn make_visible_is_quick(&self, checkpoint: bool) -> bool {
        let _ = checkpoint;
        false
    }
}
