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

/// Key to per-kind last seqno. Entries that can no longer influence any
/// verdict are swept by [`KeyIndex::purge`].
#[derive(Clone, Debug, Default)]
pub(crate) struct KeyIndex {
    entries: HashMap<Bytes, KindSeqnos>,
}

impl KeyIndex {
    pub(crate) fn get(&self, key: &[u8]) -> Option<&KindSeqnos> {
        self.entries.get(key)
    }

    /// Records that the write-set at `seqno` committed holding `key` as `kind`.
    pub(crate) fn record(&mut self, key: &Bytes, kind: KeyKind, seqno: Seqno) {
        let slot = self.entries.entry(key.clone()).or_default();
        assert!(
            slot.get(kind) < seqno,
            "certification index regressed: key {key:?} {kind:?} at {} then {seqno}",
            slot.get(kind)
        );
        slot.set(kind, seqno);
    }

    /// Drops every key whose newest seqno is at or below `floor`.
    pub(crate) fn purge(&mut self, floor: Seqno) {
        self.entries.retain(|_, seqnos| seqnos.newest() > floor);
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// All entries sorted by key, for a deterministic checkpoint.
    pub(crate) fn sorted_entries(&self) -> Vec<(Bytes, KindSeqnos)> {
        let mut entries: Vec<_> = self.entries.iter().map(|(k, v)| (k.clone(), *v)).collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        entries
    }

    pub(crate) fn from_entries(entries: impl IntoIterator<Item = (Bytes, KindSeqnos)>) -> Self {
        KeyIndex {
            entries: entries.into_iter().collect(),
        }
    }
}
