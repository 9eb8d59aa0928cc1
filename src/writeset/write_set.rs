//! The write-set: everything certification and apply need to know about one
//! transaction, in a canonical form every node decodes identically.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::key::{Isolation, KeyKind};
use crate::frame::{self, FrameError, FrameKind};
use crate::ids::{NodeId, Seqno, TxnId};
use crate::protocol::Protocol;

/// A key a transaction declares to certification, with its kind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyEntry {
    /// The key bytes, as the storage engine names the row or resource.
    pub key: Bytes,
    /// How the transaction touches it.
    pub kind: KeyKind,
}

/// One row change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum RowOp {
    /// Set the row to a value.
    Put {
        /// Row key.
        key: Bytes,
        /// New value.
        value: Bytes,
    },
    /// Remove the row.
    Delete {
        /// Row key.
        key: Bytes,
    },
}

impl RowOp {
    /// The row this operation changes.
    #[must_use]
    pub fn key(&self) -> &Bytes {
        match self {
            RowOp::Put { key, .. } | RowOp::Delete { key } => key,
        }
    }
}

/// A transaction's write-set in canonical form: keys, row operations and read
/// keys each sorted and free of duplicates, and every row operation covered by
/// a write key. Build one with [`super::WriteSetBuilder`]; decoding checks the
/// same invariants, so a peer cannot hand certification a write it did not
/// declare.
///
/// The field layout is the version 1 wire format (postcard); a change to it
/// is a new format version, pinned by the golden test in this module.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteSet {
    pub(super) origin: NodeId,
    pub(super) txn_id: TxnId,
    pub(super) read_view: Seqno,
    pub(super) isolation: Isolation,
    pub(super) keys: Vec<KeyEntry>,
    pub(super) ops: Vec<RowOp>,
    pub(super) read_keys: Vec<Bytes>,
}

impl WriteSet {
    /// The node the transaction ran on.
    #[must_use]
    pub fn origin(&self) -> NodeId {
        self.origin
    }

    /// The transaction's id on its origin.
    #[must_use]
    pub fn txn_id(&self) -> TxnId {
        self.txn_id
    }

    /// The seqno of the snapshot the transaction read from.
    #[must_use]
    pub fn read_view(&self) -> Seqno {
        self.read_view
    }

    /// The isolation level to certify.
    #[must_use]
    pub fn isolation(&self) -> Isolation {
        self.isolation
    }

    /// Declared keys, sorted by key.
    #[must_use]
    pub fn keys(&self) -> &[KeyEntry] {
        &self.keys
    }

    /// Row operations, sorted by key.
    #[must_use]
    pub fn ops(&self) -> &[RowOp] {
        &self.ops
    }

    /// Keys read under serializable isolation, sorted.
    #[must_use]
    pub fn read_keys(&self) -> &[Bytes] {
        &self.read_keys
    }

    /// Encodes the write-set as a [`FrameKind::WriteSet`] frame.
    ///
    /// # Errors
    /// [`FrameError::TooLarge`] when the encoding exceeds `max_bytes`.
    pub fn encode(&self, max_bytes: usize) -> Result<Bytes, FrameError> {
        self.encode_at(Protocol::CURRENT, max_bytes)
    }

    /// Encodes the write-set in the format of a cluster running at
    /// `protocol` (see [`crate::protocol`]).
    ///
    /// # Errors
    /// As [`WriteSet::encode`].
    pub fn encode_at(&self, protocol: Protocol, max_bytes: usize) -> Result<Bytes, FrameError> {
        let kind = FrameKind::WriteSet;
        frame::encode_version(kind, protocol.frame_version(kind), self, max_bytes)
    }

    /// Decodes and validates a write-set frame.
    ///
    /// # Errors
    /// Any [`FrameError`]: a bad header, a body over `max_bytes` (rejected
    /// before allocation), a checksum mismatch, an undecodable body, or a body
    /// that is not in canonical form.
    pub fn decode(input: &[u8], max_bytes: usize) -> Result<WriteSet, FrameError> {
        let (header, body) = frame::decode(input, max_bytes)?;
        if header.kind != FrameKind::WriteSet {
            return Err(FrameError::Invalid {
                kind: FrameKind::WriteSet,
                reason: format!("frame holds {:?}, not a write-set", header.kind),
            });
        }
        // Every format this build reads has the same body (the next
        // version of the `next-version` feature only renumbers it);
        // `peek_header` rejected the others.
        let ws: WriteSet = frame::decode_body(FrameKind::WriteSet, body)?;
        ws.validate().map_err(|reason| FrameError::Invalid {
            kind: FrameKind::WriteSet,
            reason: reason.to_string(),
        })?;
        Ok(ws)
    }

    /// Checks the canonical-form invariants.
    pub(crate) fn validate(&self) -> Result<(), &'static str> {
        if !self.keys.windows(2).all(|w| w[0].key < w[1].key) {
            return Err("keys are not sorted and unique");
        }
        if !self.ops.windows(2).all(|w| w[0].key() < w[1].key()) {
            return Err("row operations are not sorted and unique by key");
        }
        if !self.read_keys.windows(2).all(|w| w[0] < w[1]) {
            return Err("read keys are not sorted and unique");
        }
        if self.isolation != Isolation::Serializable && !self.read_keys.is_empty() {
            return Err("read keys are only carried under serializable isolation");
        }
        for op in &self.ops {
            let declared = self
                .keys
                .binary_search_by(|entry| entry.key.as_ref().cmp(op.key().as_ref()))
                .ok()
                .map(|at| self.keys[at].kind);
            if !declared.is_some_and(KeyKind::is_write) {
                return Err("a row operation's key is not declared as a write key");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::writeset::WriteSetBuilder;

    fn sample() -> WriteSet {
        let mut builder = WriteSetBuilder::new(
            NodeId::new(2),
            TxnId::new(9, 41),
            Seqno::new(17),
            Isolation::Serializable,
        );
        builder.put(Bytes::from_static(b"b"), Bytes::from_static(b"v"));
        builder.delete(Bytes::from_static(b"a"));
        builder.append_key(Bytes::from_static(b"t"), KeyKind::Shared);
        builder.read(Bytes::from_static(b"r"));
        builder.build()
    }

    /// Pins the version 1 wire format: if this fails, a released format changed
    /// and needs a new version number instead.
    #[test]
    fn golden_version_1_encoding() {
        let frame = sample().encode(1 << 20).unwrap();
        let hex: String = frame.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "43455254000101000000001b2c0f3fb2020929110103016103016202017400\
             020101610001620176010172"
        );
        assert_eq!(WriteSet::decode(&frame, 1 << 20).unwrap(), sample());
    }

    #[test]
    fn undeclared_write_is_rejected() {
        let mut ws = sample();
        ws.keys.retain(|k| k.key.as_ref() != b"b");
        let frame = frame::encode(FrameKind::WriteSet, &ws, 1 << 20).unwrap();
        let err = WriteSet::decode(&frame, 1 << 20).unwrap_err();
        assert!(matches!(err, FrameError::Invalid { .. }), "{err}");
    }

    #[test]
    fn unsorted_keys_are_rejected() {
        let mut ws = sample();
        ws.keys.reverse();
        assert!(ws.validate().is_err());
        let mut ws = sample();
        ws.isolation = Isolation::Snapshot;
        assert_eq!(
            ws.validate(),
            Err("read keys are only carried under serializable isolation")
        );
    }

    #[test]
    fn frame_of_another_kind_is_not_a_write_set() {
        let frame = frame::encode(FrameKind::CertCheckpoint, &sample(), 1 << 20).unwrap();
        assert!(matches!(
            WriteSet::decode(&frame, 1 << 20),
            Err(FrameError::Invalid { .. })
        ));
    }
}
