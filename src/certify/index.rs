//! The certification index: for each key, the seqno of the last committed
//! write-set that declared it, per key kind.
//!
//! Keys are held by a 128-bit hash of their bytes ([`KeyHash`]), as
//! Galera's certification index holds them (its FLAT16 key hashes): an
//! entry is a fixed 48 bytes in the map itself, so a lookup is one probe
//! with no pointer to follow and no key bytes to compare, and the index
//! keeps no part of a write-set's frame alive. Two keys that share a hash
//! share an entry, which can only add a conflict or a dependency, never
//! hide one: the rule stays safe, and every node, hashing alike, decides
//! alike.

use std::collections::HashMap;

use rustc_hash::FxBuildHasher;
use serde::{Deserialize, Serialize};

use crate::ids::Seqno;
use crate::writeset::KeyKind;

/// A key as the index holds it: XXH3-128 of its bytes, with seed 0. The
/// function is fixed (its output is in checkpoints and takes part in
/// verdicts), so it never changes within a checkpoint format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub(crate) struct KeyHash(u128);

impl KeyHash {
    pub(crate) fn of(key: &[u8]) -> Self {
        KeyHash(xxhash_rust::xxh3::xxh3_128(key))
    }
}

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

    /// The newer seqno of each kind: two entries merged into one.
    fn merge(&mut self, other: &KindSeqnos) {
        for (mine, theirs) in self.0.iter_mut().zip(other.0) {
            *mine = (*mine).max(theirs);
        }
    }
}

/// Bytes an entry is counted as: its map slot (a 16-byte hash, four
/// seqnos and a control byte) at the map's average load. The same on
/// every node, so the bound it feeds decides identically everywhere.
const ENTRY_BYTES: u64 = 80;

/// Key hash to per-kind last seqno. Entries that can no longer influence
/// any verdict are swept by [`KeyIndex::purge`].
#[derive(Clone, Debug, Default)]
pub(crate) struct KeyIndex {
    entries: HashMap<KeyHash, KindSeqnos, FxBuildHasher>,
}

impl KeyIndex {
    pub(crate) fn get(&self, key: KeyHash) -> Option<&KindSeqnos> {
        self.entries.get(&key)
    }

    /// Records that the write-set at `seqno` committed holding `key` as `kind`.
    pub(crate) fn record(&mut self, key: KeyHash, kind: KeyKind, seqno: Seqno) {
        let slot = self.entries.entry(key).or_default();
        // Equal is allowed: two keys of one write-set may share a hash.
        assert!(
            slot.get(kind) <= seqno,
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

    /// The bytes the entries are counted as.
    pub(crate) fn bytes(&self) -> u64 {
        self.entries.len() as u64 * ENTRY_BYTES
    }

    /// Each entry's newest seqno and its bytes, in no particular order.
    pub(crate) fn sizes(&self) -> impl Iterator<Item = (Seqno, u64)> + '_ {
        self.entries
            .values()
            .map(|seqnos| (seqnos.newest(), ENTRY_BYTES))
    }

    /// All entries sorted by key hash, for a deterministic checkpoint.
    pub(crate) fn sorted_entries(&self) -> Vec<(KeyHash, KindSeqnos)> {
        let mut entries: Vec<_> = self.entries.iter().map(|(k, v)| (*k, *v)).collect();
        entries.sort_unstable_by_key(|entry| entry.0);
        entries
    }

    /// An index holding `entries`; entries that share a hash (keys of a
    /// checkpoint written before keys were hashed) merge, newest seqno per
    /// kind, as recording them one after the other would.
    pub(crate) fn from_entries(entries: impl IntoIterator<Item = (KeyHash, KindSeqnos)>) -> Self {
        let mut index = KeyIndex::default();
        for (key, seqnos) in entries {
            index.entries.entry(key).or_default().merge(&seqnos);
        }
        index
    }
}
