//! The ordered operation: work whose keys are known when it is submitted,
//! ordered first and then executed deterministically by every node's
//! applier at its position (the deterministic-database design: Thomson et
//! al., "Calvin", SIGMOD 2012).
//!
//! A transaction reads a snapshot and then competes in certification; an
//! operation reads nothing before it is ordered. It carries an opaque
//! payload and the keys it will read and write, and every node executes
//! the payload against the state just before its own position, so no
//! write can come between what it read and what it writes: certification
//! never aborts it, unless a key it watches (Redis's `WATCH`) was written
//! after its view.
//!
//! The view also bounds how long a copy of the operation stays
//! executable: one delivered more than the certification window after its
//! view aborts, as a transaction with so old a read view does, so a copy a
//! retry sent is either recognised as a duplicate or aborts, and an
//! operation never executes twice.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::key::KeyKind;
use super::write_set::KeyEntry;
use crate::frame::{self, FrameError, FrameKind};
use crate::ids::{NodeId, Seqno, TxnId};
use crate::protocol::Protocol;

/// Which keys an operation covers beyond the ones it declares.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Scope {
    /// Only its declared keys.
    #[default]
    Keys,
    /// It may read any key (a scan): it executes after everything ordered
    /// before it was applied.
    ReadsAll,
    /// It may write any key (a flush): it executes after everything before
    /// it, everything after it executes after it, and every transaction
    /// whose read view is older conflicts with it.
    WritesAll,
}

/// An operation in canonical form: declared keys sorted and unique, watched
/// keys sorted and unique. The field layout is the version 1 wire format
/// (postcard), pinned by the golden test below.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    origin: NodeId,
    txn_id: TxnId,
    view: Seqno,
    keys: Vec<KeyEntry>,
    scope: Scope,
    watched: Vec<Bytes>,
    payload: Bytes,
}

impl Operation {
    /// The node it was submitted on.
    #[must_use]
    pub fn origin(&self) -> NodeId {
        self.origin
    }

    /// Its id on the origin, from the same sequence as transactions.
    #[must_use]
    pub fn txn_id(&self) -> TxnId {
        self.txn_id
    }

    /// The position its origin had made visible when it was built, or the
    /// older one its watched keys were observed at: the operation aborts
    /// when it is delivered more than the certification window after it.
    #[must_use]
    pub fn view(&self) -> Seqno {
        self.view
    }

    /// The declared keys, sorted: writes as [`KeyKind::Exclusive`] or
    /// [`KeyKind::Update`], reads as [`KeyKind::Reference`].
    #[must_use]
    pub fn keys(&self) -> &[KeyEntry] {
        &self.keys
    }

    /// What it covers beyond its keys.
    #[must_use]
    pub fn scope(&self) -> Scope {
        self.scope
    }

    /// The keys that must not have been written after [`Self::view`],
    /// sorted.
    #[must_use]
    pub fn watched(&self) -> &[Bytes] {
        &self.watched
    }

    /// What the applier executes, opaque to certus.
    #[must_use]
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// Encodes the operation as a [`FrameKind::Operation`] frame.
    ///
    /// # Errors
    /// [`FrameError::TooLarge`] when the encoding exceeds `max_bytes`.
    pub fn encode(&self, max_bytes: usize) -> Result<Bytes, FrameError> {
        self.encode_at(Protocol::CURRENT, max_bytes)
    }

    /// Encodes the operation in the format of a cluster running at
    /// `protocol` (see [`crate::protocol`]).
    ///
    /// # Errors
    /// As [`Operation::encode`].
    pub fn encode_at(&self, protocol: Protocol, max_bytes: usize) -> Result<Bytes, FrameError> {
        let kind = FrameKind::Operation;
        frame::encode_version(kind, protocol.frame_version(kind), self, max_bytes)
    }

    /// Decodes and validates an operation frame.
    ///
    /// # Errors
    /// Any [`FrameError`], as for [`super::WriteSet::decode`].
    pub fn decode(input: &[u8], max_bytes: usize) -> Result<Operation, FrameError> {
        let (header, body) = frame::decode(input, max_bytes)?;
        if header.kind != FrameKind::Operation {
            return Err(invalid(format!(
                "frame holds {:?}, not an operation",
                header.kind
            )));
        }
        let op: Operation = frame::decode_body(FrameKind::Operation, body)?;
        op.validate()
            .map_err(|reason| invalid(reason.to_string()))?;
        Ok(op)
    }

    fn validate(&self) -> Result<(), &'static str> {
        if !self.keys.windows(2).all(|w| w[0].key < w[1].key) {
            return Err("keys are not sorted and unique");
        }
        if !self.watched.windows(2).all(|w| w[0] < w[1]) {
            return Err("watched keys are not sorted and unique");
        }
        Ok(())
    }
}

fn invalid(reason: String) -> FrameError {
    FrameError::Invalid {
        kind: FrameKind::Operation,
        reason,
    }
}

/// Accumulates an operation's keys; a key declared twice keeps its
/// stronger kind.
#[derive(Clone, Debug, Default)]
pub struct OperationBuilder {
    keys: BTreeMap<Bytes, KeyKind>,
    scope: Scope,
    /// The view watched keys were observed at, and the keys.
    watch_view: Option<Seqno>,
    watched: BTreeMap<Bytes, ()>,
    key_bytes: usize,
}

/// Per-key allowance for postcard's prefixes, as in the write-set builder.
const ENTRY_OVERHEAD: usize = 12;

impl OperationBuilder {
    /// An operation with no keys yet.
    #[must_use]
    pub fn new() -> Self {
        OperationBuilder::default()
    }

    /// Declares `key` as read.
    pub fn read(&mut self, key: Bytes) {
        self.declare(key, KeyKind::Reference);
    }

    /// Declares `key` as written (created, changed or removed).
    pub fn write(&mut self, key: Bytes) {
        self.declare(key, KeyKind::Exclusive);
    }

    /// Declares `key` with `kind`, keeping the stronger kind.
    pub fn declare(&mut self, key: Bytes, kind: KeyKind) {
        let len = key.len();
        let slot = self.keys.entry(key).or_insert_with(|| {
            self.key_bytes += len + ENTRY_OVERHEAD;
            kind
        });
        *slot = (*slot).max(kind);
    }

    /// Widens what it covers (the widest scope asked for wins).
    pub fn cover(&mut self, scope: Scope) {
        self.scope = self.scope.max(scope);
    }

    /// Aborts the operation when `key` was written after `view`. Every
    /// watched key shares one view, the oldest given.
    pub fn watch(&mut self, view: Seqno, key: Bytes) {
        let len = key.len();
        self.watch_view = Some(self.watch_view.map_or(view, |v| v.min(view)));
        if self.watched.insert(key, ()).is_none() {
            self.key_bytes += len + ENTRY_OVERHEAD;
        }
    }

    /// An upper bound on the encoded size without the payload.
    #[must_use]
    pub fn approx_encoded_len(&self) -> usize {
        64 + self.key_bytes
    }

    /// The canonical operation, submitted on `origin` when it had made
    /// `visible` visible (its view, unless a watched key's is older).
    #[must_use]
    pub fn build(self, origin: NodeId, txn_id: TxnId, visible: Seqno, payload: Bytes) -> Operation {
        let op = Operation {
            origin,
            txn_id,
            view: self.watch_view.map_or(visible, |v| v.min(visible)),
            keys: self
                .keys
                .into_iter()
                .map(|(key, kind)| KeyEntry { key, kind })
                .collect(),
            scope: self.scope,
            watched: self.watched.into_keys().collect(),
            payload,
        };
        debug_assert_eq!(
            op.validate(),
            Ok(()),
            "builder made a non-canonical operation"
        );
        op
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Operation {
        let mut builder = OperationBuilder::new();
        builder.write(Bytes::from_static(b"b"));
        builder.read(Bytes::from_static(b"a"));
        builder.read(Bytes::from_static(b"b"));
        builder.watch(Seqno::new(7), Bytes::from_static(b"w"));
        builder.build(
            NodeId::new(2),
            TxnId::new(9, 41),
            Seqno::new(12),
            Bytes::from_static(b"go"),
        )
    }

    /// Pins the version 1 wire format.
    #[test]
    fn golden_version_1_encoding() {
        let frame = sample().encode(1 << 20).unwrap();
        let hex: String = frame.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "4345525400010700000000121bac1cf5020929070201610101620300010177\
             02676f"
        );
        assert_eq!(Operation::decode(&frame, 1 << 20).unwrap(), sample());
    }

    #[test]
    fn a_key_read_and_written_is_declared_once_as_written() {
        let op = sample();
        assert_eq!(op.keys().len(), 2);
        assert_eq!(op.keys()[1].kind, KeyKind::Exclusive);
        assert_eq!(op.view(), Seqno::new(7), "the watched view is older");
        assert_eq!(op.watched(), [Bytes::from_static(b"w")]);
    }

    #[test]
    fn unsorted_keys_and_foreign_frames_are_rejected() {
        let mut op = sample();
        op.keys.reverse();
        let frame = frame::encode(FrameKind::Operation, &op, 1 << 20).unwrap();
        assert!(Operation::decode(&frame, 1 << 20).is_err());
        let frame = frame::encode(FrameKind::WriteSet, &sample(), 1 << 20).unwrap();
        assert!(Operation::decode(&frame, 1 << 20).is_err());
    }
}
