//! What the benches share: a fixed random sequence and random write-sets.

use bytes::Bytes;
use certus::writeset::{Isolation, WriteSet, WriteSetBuilder};
use certus::{NodeId, Seqno, TxnId};

/// splitmix64: a fixed, dependency-free sequence.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Transaction `txn` of node `1 + txn % 3`, read at `read_view`, putting
/// `value` under `rows` keys drawn from `key_space`.
pub(crate) fn write_set(
    rng: &mut Rng,
    txn: u64,
    read_view: Seqno,
    rows: usize,
    key_space: u64,
    value: &Bytes,
) -> WriteSet {
    let origin = NodeId::new(1 + txn % 3);
    let mut builder =
        WriteSetBuilder::new(origin, TxnId::new(1, txn), read_view, Isolation::Snapshot);
    for _ in 0..rows {
        let key = format!("kv:{:012}", rng.next() % key_space);
        builder.put(Bytes::from(key), value.clone());
    }
    builder.build()
}
