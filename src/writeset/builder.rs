//! Accumulates a transaction's keys and row changes into a canonical
//! [`WriteSet`].

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use super::key::{Isolation, KeyKind};
use super::write_set::{KeyEntry, RowOp, WriteSet};
use crate::ids::{NodeId, Seqno, TxnId};

/// Per-entry allowance for postcard's length prefixes and tags in
/// [`WriteSetBuilder::approx_encoded_len`]: generous so the estimate never
/// undercounts.
const ENTRY_OVERHEAD: usize = 12;

/// Builds a write-set. Later writes to a key replace earlier ones; a key
/// declared twice keeps its stronger kind.
#[derive(Clone, Debug)]
pub struct WriteSetBuilder {
    origin: NodeId,
    txn_id: TxnId,
    read_view: Seqno,
    isolation: Isolation,
    keys: BTreeMap<Bytes, KeyKind>,
    ops: BTreeMap<Bytes, Option<Bytes>>,
    read_keys: BTreeSet<Bytes>,
    approx_len: usize,
}

impl WriteSetBuilder {
    /// Starts an empty write-set for a transaction that read at `read_view`.
    #[must_use]
    pub fn new(origin: NodeId, txn_id: TxnId, read_view: Seqno, isolation: Isolation) -> Self {
        WriteSetBuilder {
            origin,
            txn_id,
            read_view,
            isolation,
            keys: BTreeMap::new(),
            ops: BTreeMap::new(),
            read_keys: BTreeSet::new(),
            approx_len: 64,
        }
    }

    /// Declares `key` with `kind`, keeping the stronger kind if it is already
    /// declared.
    pub fn append_key(&mut self, key: Bytes, kind: KeyKind) {
        let key_len = key.len();
        match self.keys.entry(key) {
            std::collections::btree_map::Entry::Vacant(slot) => {
                slot.insert(kind);
                self.approx_len += key_len + ENTRY_OVERHEAD;
            }
            std::collections::btree_map::Entry::Occupied(mut slot) => {
                let stronger = (*slot.get()).max(kind);
                slot.insert(stronger);
            }
        }
    }

    /// Sets an existing row (declares the key [`KeyKind::Update`]).
    pub fn put(&mut self, key: Bytes, value: Bytes) {
        self.write(key, Some(value), KeyKind::Update);
    }

    /// Creates a row (declares the key [`KeyKind::Exclusive`]).
    pub fn insert(&mut self, key: Bytes, value: Bytes) {
        self.write(key, Some(value), KeyKind::Exclusive);
    }

    /// Removes a row (declares the key [`KeyKind::Exclusive`]).
    pub fn delete(&mut self, key: Bytes) {
        self.write(key, None, KeyKind::Exclusive);
    }

    /// Records a key the transaction read. Only serializable transactions
    /// carry read keys; under snapshot isolation this does nothing.
    pub fn read(&mut self, key: Bytes) {
        if self.isolation != Isolation::Serializable {
            return;
        }
        let key_len = key.len();
        if self.read_keys.insert(key) {
            self.approx_len += key_len + ENTRY_OVERHEAD;
        }
    }

    fn write(&mut self, key: Bytes, value: Option<Bytes>, kind: KeyKind) {
        self.append_key(key.clone(), kind);
        let key_len = key.len();
        let value_len = value.as_ref().map_or(0, Bytes::len);
        match self.ops.insert(key, value) {
            None => self.approx_len += key_len + value_len + ENTRY_OVERHEAD,
            Some(old) => {
                self.approx_len += value_len;
                self.approx_len -= old.as_ref().map_or(0, Bytes::len);
            }
        }
    }

    /// Whether no key was declared or written (the transaction only read):
    /// such a transaction has nothing to certify or replicate.
    #[must_use]
    pub fn is_key_free(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether any row operation was recorded.
    #[must_use]
    pub fn has_writes(&self) -> bool {
        !self.ops.is_empty()
    }

    /// An upper bound on the encoded body size, kept up to date as entries
    /// are added so oversized transactions are refused early.
    #[must_use]
    pub fn approx_encoded_len(&self) -> usize {
        self.approx_len
    }

    /// The read view the write-set will carry.
    #[must_use]
    pub fn read_view(&self) -> Seqno {
        self.read_view
    }

    /// The pending value of `key` written by this transaction: `Some(None)`
    /// for a delete, `None` when the transaction did not write it.
    #[must_use]
    pub fn pending_write(&self, key: &[u8]) -> Option<Option<&Bytes>> {
        self.ops.get(key).map(Option::as_ref)
    }

    /// Every pending write, `None` for a delete.
    pub(crate) fn pending_writes(&self) -> &BTreeMap<Bytes, Option<Bytes>> {
        &self.ops
    }

    /// Finishes the canonical write-set.
    #[must_use]
    pub fn build(self) -> WriteSet {
        let keys = self
            .keys
            .into_iter()
            .map(|(key, kind)| KeyEntry { key, kind })
            .collect();
        let ops = self
            .ops
            .into_iter()
            .map(|(key, value)| match value {
                Some(value) => RowOp::Put { key, value },
                None => RowOp::Delete { key },
            })
            .collect();
        let ws = WriteSet {
            origin: self.origin,
            txn_id: self.txn_id,
            read_view: self.read_view,
            isolation: self.isolation,
            keys,
            ops,
            read_keys: self.read_keys.into_iter().collect(),
        };
        debug_assert_eq!(
            ws.validate(),
            Ok(()),
            "builder produced a non-canonical write-set"
        );
        ws
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builder(isolation: Isolation) -> WriteSetBuilder {
        WriteSetBuilder::new(NodeId::new(1), TxnId::new(1, 1), Seqno::new(3), isolation)
    }

    #[test]
    fn last_write_wins_and_strongest_kind_is_kept() {
        let mut b = builder(Isolation::Snapshot);
        b.append_key(Bytes::from_static(b"k"), KeyKind::Reference);
        b.put(Bytes::from_static(b"k"), Bytes::from_static(b"1"));
        b.delete(Bytes::from_static(b"k"));
        b.put(Bytes::from_static(b"k"), Bytes::from_static(b"2"));
        let ws = b.build();
        assert_eq!(ws.keys().len(), 1);
        assert_eq!(ws.keys()[0].kind, KeyKind::Exclusive);
        assert_eq!(
            ws.ops(),
            &[RowOp::Put {
                key: Bytes::from_static(b"k"),
                value: Bytes::from_static(b"2")
            }]
        );
    }

    #[test]
    fn reads_are_recorded_only_when_serializable() {
        let mut b = builder(Isolation::Snapshot);
        b.read(Bytes::from_static(b"r"));
        assert!(b.build().read_keys().is_empty());
        let mut b = builder(Isolation::Serializable);
        b.read(Bytes::from_static(b"r"));
        b.read(Bytes::from_static(b"r"));
        assert_eq!(b.build().read_keys(), &[Bytes::from_static(b"r")]);
    }

    #[test]
    fn size_estimate_bounds_the_encoding() {
        let mut b = builder(Isolation::Serializable);
        for i in 0..200u32 {
            b.put(
                Bytes::from(i.to_be_bytes().to_vec()),
                Bytes::from(vec![7; i as usize]),
            );
            b.read(Bytes::from(format!("read-{i}")));
        }
        b.put(
            Bytes::from(0u32.to_be_bytes().to_vec()),
            Bytes::from_static(b"shorter"),
        );
        let estimate = b.approx_encoded_len();
        let encoded = b.build().encode(usize::MAX).unwrap();
        assert!(
            encoded.len() <= estimate,
            "estimate {estimate} < encoded {}",
            encoded.len()
        );
    }
}
