//! The certification index: for each key, the seqno of the last committed
//! write-set that declared it, per key kind.

use std::collections::HashMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::ids::Seqno;
use crate::writeset::KeyKind;

/// Last committing seqno per kind for one key; `Seqno::ZERO` means none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct KindSeqnos([Seqno; 4]);

impl KindSeqnos {
    pub(crate) fn get(&self, kind: KeyKind) -> Seqno {
        self.0[kind.index()]
    }

    fn set(&mut self, kind: KeyKind, seqno: Seqno) {
        self.0[kind.index()] = seqno;
    }

    /// The newest seqno of any kind.
    pub(crate) fn newest(&self) -> Seqno {
        self.0.iter().copied().max().unwrap_or(Seqno::ZERO)
    }

    /// The newest seqno that wrote the row (update or exclusive).
    pub(crate) fn newest_write(&self) -> Seqno {
        self.get(KeyKind::Update).max(self.get(KeyKind::Exclusive))
    }
}

/// Bytes an entry is counted as beyond its key: its map slot (the key's
/// handle and four seqnos, at the map's load factor) and the key's own
/// allocation. An estimate, the same on every node, so the bound it feeds
/// decides identically everywhere.
const ENTRY_OVERHEAD: u64 = 128;

/// Key to per-kind last seqno. Entries that can no longer influence any
/// verdict are swept by [`KeyIndex::purge`].
#[derive(Clone, Debug, Default)]
pub(crate) struct KeyIndex {
    entries: HashMap<Bytes, KindSeqnos>,
    /// What the entries are counted as: [`KeyIndex::entry_bytes`] each.
    bytes: u64,
}

impl KeyIndex {
    pub(crate) fn get(&self, key: &[u8]) -> Option<&KindSeqnos> {
        self.entries.get(key)
    }

    /// Records that the write-set at `seqno` committed holding `key` as `kind`.
    pub(crate) fn record(&mut self, key: &Bytes, kind: KeyKind, seqno: Seqno) {
        let slot = self.entries.entry(key.clone()).or_insert_with(|| {
            self.bytes += Self::entry_bytes(key);
            KindSeqnos::default()
        });
        assert!(
            slot.get(kind) < seqno,
            "certification index regressed: key {key:?} {kind:?} at {} then {seqno}",
            slot.get(kind)
        );
        slot.set(kind, seqno);
    }

    /// Drops every key whose newest seqno is at or below `floor`.
    pub(crate) fn purge(&mut self, floor: Seqno) {
        let mut freed = 0;
        self.entries.retain(|key, seqnos| {
            let keep = seqnos.newest() > floor;
            if !keep {
                freed += Self::entry_bytes(key);
            }
            keep
        });
        self.bytes -= freed;
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The bytes the entries are counted as.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    fn entry_bytes(key: &[u8]) -> u64 {
        key.len() as u64 + ENTRY_OVERHEAD
    }

    /// Each entry's newest seqno and its bytes, in no particular order.
    pub(crate) fn sizes(&self) -> impl Iterator<Item = (Seqno, u64)> + '_ {
        self.entries
            .iter()
            .map(|(key, seqnos)| (seqnos.newest(), Self::entry_bytes(key)))
    }

    /// All entries sorted by key, for a deterministic checkpoint.
    pub(crate) fn sorted_entries(&self) -> Vec<(Bytes, KindSeqnos)> {
        let mut entries: Vec<_> = self.entries.iter().map(|(k, v)| (k.clone(), *v)).collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        entries
    }

    pub(crate) fn from_entries(entries: impl IntoIterator<Item = (Bytes, KindSeqnos)>) -> Self {
        let entries: HashMap<Bytes, KindSeqnos> = entries.into_iter().collect();
        let bytes = entries.keys().map(|key| Self::entry_bytes(key)).sum();
        KeyIndex { entries, bytes }
    }
}
