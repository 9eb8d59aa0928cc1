//! Recognises a transaction delivered more than once, for example when a
//! submission is retried across a leader change.

use std::collections::{HashMap, VecDeque};

use rustc_hash::FxBuildHasher;
use serde::{Deserialize, Serialize};

use super::verdict::FirstOutcome;
use crate::ids::{NodeId, Seqno, TxnId};

/// Bytes a record is counted as beyond the bytes its abort reason holds:
/// its place in the queue and its map slot. An estimate, the same on every
/// node.
const RECORD_OVERHEAD: u64 = 128;

/// One transaction's first certification.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DedupRecord {
    pub(crate) seqno: Seqno,
    pub(crate) origin: NodeId,
    pub(crate) txn_id: TxnId,
    pub(crate) outcome: FirstOutcome,
}

/// (origin, transaction id) to first outcome, for the certifications inside
/// the window. A duplicate delivered later than the window carries a read
/// view older than the window too (it is the same write-set), so it aborts on
/// the window rule and is never applied twice.
#[derive(Clone, Debug, Default)]
pub(crate) struct DedupTable {
    /// Fx-hashed: the ids are chosen by the nodes, not by clients.
    by_id: HashMap<(NodeId, TxnId), usize, FxBuildHasher>,
    /// Records in seqno order; `by_id` indexes into it relative to `base`.
    records: VecDeque<DedupRecord>,
    /// How many records have been popped from the front, ever.
    base: usize,
    /// What the records are counted as: [`DedupRecord::bytes`] each.
    bytes: u64,
}

impl DedupRecord {
    /// The bytes the record is counted as.
    fn bytes(&self) -> u64 {
        let held = match &self.outcome {
            FirstOutcome::Committed => 0,
            FirstOutcome::Aborted(reason) => reason.held_bytes(),
        };
        RECORD_OVERHEAD + held as u64
    }
}

impl DedupTable {
    pub(crate) fn lookup(&self, origin: NodeId, txn_id: TxnId) -> Option<&DedupRecord> {
        let at = *self.by_id.get(&(origin, txn_id))?;
        self.records.get(at - self.base)
    }

    pub(crate) fn record(&mut self, record: DedupRecord) {
        if let Some(last) = self.records.back() {
            assert!(last.seqno < record.seqno, "dedup records out of order");
        }
        let position = self.base + self.records.len();
        let previous = self.by_id.insert((record.origin, record.txn_id), position);
        assert!(
            previous.is_none(),
            "transaction {} recorded twice",
            record.txn_id
        );
        self.bytes += record.bytes();
        self.records.push_back(record);
    }

    /// Forgets records at or below `floor`.
    pub(crate) fn purge(&mut self, floor: Seqno) {
        while self.records.front().is_some_and(|r| r.seqno <= floor) {
            if let Some(old) = self.records.pop_front() {
                self.by_id.remove(&(old.origin, old.txn_id));
                self.base += 1;
                self.bytes -= old.bytes();
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }

    pub(crate) fn records(&self) -> impl Iterator<Item = &DedupRecord> {
        self.records.iter()
    }

    /// The bytes the records are counted as.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Each record's seqno and its bytes, oldest first.
    pub(crate) fn sizes(&self) -> impl Iterator<Item = (Seqno, u64)> + '_ {
        self.records.iter().map(|r| (r.seqno, r.bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seqno: u64, counter: u64) -> DedupRecord {
        DedupRecord {
            seqno: Seqno::new(seqno),
            origin: NodeId::new(1),
            txn_id: TxnId::new(0, counter),
            outcome: FirstOutcome::Committed,
        }
    }

    #[test]
    fn lookup_survives_purging_older_records() {
        let mut table = DedupTable::default();
        for i in 1..=10 {
            table.record(record(i, 100 + i));
        }
        table.purge(Seqno::new(6));
        assert_eq!(table.len(), 4);
        assert!(table.lookup(NodeId::new(1), TxnId::new(0, 106)).is_none());
        assert_eq!(
            table
                .lookup(NodeId::new(1), TxnId::new(0, 107))
                .unwrap()
                .seqno,
            Seqno::new(7)
        );
        assert!(table.lookup(NodeId::new(2), TxnId::new(0, 107)).is_none());
    }
}
