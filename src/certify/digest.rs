//! The certification digest: one number that names everything certified up to a
//! seqno, so two nodes can tell in a comparison whether they decided the
//! same history.

use serde::{Deserialize, Serialize};

use super::verdict::{AbortReason, FirstOutcome, Verdict};
use crate::ids::{ClusterTime, NodeId, Seqno, TxnId};
use crate::writeset::{Operation, WriteSet};

/// A chained digest over every position certified so far: for each seqno,
/// what it carried (a barrier, or which transaction or operation: origin
/// and transaction id), the verdict (commit and its dependency, abort and
/// its reason, duplicate of which seqno), and where the cluster time
/// moved.
///
/// Certification is a pure function of the log prefix, so every node that
/// certified the prefix `1..=s` holds the same digest at `s`; a replica
/// that decided one position differently, or saw another write-set there,
/// differs from then on. The digest travels in certification checkpoints,
/// so a restarted node and a node that received a state transfer continue
/// the same chain.
///
/// Each step is XXH3-64 of the position's 41 bytes seeded with the digest
/// before it (two CRC-32 chains until checkpoint format 5, at a seventh of
/// certification's time); this is a detector for bugs, not a defence
/// against forgery.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CertDigest(u64);

/// What one position contributes, before hashing.
struct Step {
    seqno: u64,
    tag: u8,
    origin: u64,
    epoch: u64,
    counter: u64,
    detail: u64,
}

impl CertDigest {
    /// The digest before the first position.
    pub const EMPTY: CertDigest = CertDigest(0);

    /// The raw value.
    #[must_use]
    pub fn get(self) -> u64 {
        self.0
    }

    /// The digest after `ws` was certified at `seqno` with `verdict`.
    #[must_use]
    pub fn certified(self, seqno: Seqno, ws: &WriteSet, verdict: &Verdict) -> Self {
        self.decided(seqno, 0, (ws.origin(), ws.txn_id()), verdict)
    }

    /// The digest after `op` was certified at `seqno` with `verdict`.
    #[must_use]
    pub fn certified_operation(self, seqno: Seqno, op: &Operation, verdict: &Verdict) -> Self {
        self.decided(seqno, 8, (op.origin(), op.txn_id()), verdict)
    }

    /// The digest after the cluster time moved to `time` at `seqno`.
    #[must_use]
    pub fn timed(self, seqno: Seqno, time: ClusterTime) -> Self {
        self.step(&Step {
            seqno: seqno.get(),
            tag: 6,
            origin: 0,
            epoch: 0,
            counter: 0,
            detail: time.as_millis(),
        })
    }

    /// One transaction's step: `base` tells write-sets (0) and operations
    /// (8) apart.
    fn decided(
        self,
        seqno: Seqno,
        base: u8,
        (origin, txn_id): (NodeId, TxnId),
        verdict: &Verdict,
    ) -> Self {
        let (tag, detail) = match verdict {
            Verdict::Commit { depends_on } => (1, depends_on.get()),
            Verdict::Abort { reason } => (2, reason_code(reason)),
            Verdict::Duplicate { first_seqno, first } => {
                let tag = match first {
                    FirstOutcome::Committed => 3,
                    FirstOutcome::Aborted(_) => 4,
                };
                (tag, first_seqno.get())
            }
        };
        self.step(&Step {
            seqno: seqno.get(),
            tag: base + tag,
            origin: origin.get(),
            epoch: txn_id.epoch,
            counter: txn_id.counter,
            detail,
        })
    }

    /// The digest after `seqno` carried no write-set.
    #[must_use]
    pub fn skipped(self, seqno: Seqno) -> Self {
        self.step(&Step {
            seqno: seqno.get(),
            tag: 0,
            origin: 0,
            epoch: 0,
            counter: 0,
            detail: 0,
        })
    }

    fn step(self, step: &Step) -> Self {
        let mut bytes = [0u8; 41];
        bytes[..8].copy_from_slice(&step.seqno.to_be_bytes());
        bytes[8] = step.tag;
        bytes[9..17].copy_from_slice(&step.origin.to_be_bytes());
        bytes[17..25].copy_from_slice(&step.epoch.to_be_bytes());
        bytes[25..33].copy_from_slice(&step.counter.to_be_bytes());
        bytes[33..41].copy_from_slice(&step.detail.to_be_bytes());
        // The previous digest seeds the hash of this step: a chain.
        CertDigest(xxhash_rust::xxh3::xxh3_64_with_seed(&bytes, self.0))
    }
}

/// The reason's kind and the seqno it names, in one number.
fn reason_code(reason: &AbortReason) -> u64 {
    let (kind, seqno) = match reason {
        AbortReason::KeyConflict {
            conflicting_seqno, ..
        } => (1, *conflicting_seqno),
        AbortReason::ReadConflict {
            conflicting_seqno, ..
        } => (2, *conflicting_seqno),
        AbortReason::ReadViewTooOld { read_view, .. } => (3, *read_view),
        AbortReason::InvalidReadView { read_view } => (4, *read_view),
        AbortReason::Malformed { .. } => (5, Seqno::ZERO),
    };
    (kind << 56) ^ seqno.get()
}

impl std::fmt::Display for CertDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::writeset::{Isolation, OperationBuilder, WriteSetBuilder};

    fn ws(counter: u64) -> WriteSet {
        let mut builder = WriteSetBuilder::new(
            NodeId::new(1),
            TxnId::new(7, counter),
            Seqno::ZERO,
            Isolation::Snapshot,
        );
        builder.put("k".into(), "v".into());
        builder.build()
    }

    fn commit(depends_on: u64) -> Verdict {
        Verdict::Commit {
            depends_on: Seqno::new(depends_on),
        }
    }

    #[test]
    fn equal_histories_have_equal_digests() {
        let run = || {
            CertDigest::EMPTY
                .skipped(Seqno::new(1))
                .certified(Seqno::new(2), &ws(1), &commit(0))
        };
        assert_eq!(run(), run());
        assert_ne!(run(), CertDigest::EMPTY);
    }

    #[test]
    fn any_difference_at_one_position_shows_and_stays() {
        let base = CertDigest::EMPTY.skipped(Seqno::new(1));
        let a = base.certified(Seqno::new(2), &ws(1), &commit(0));
        let other_txn = base.certified(Seqno::new(2), &ws(2), &commit(0));
        let other_dependency = base.certified(Seqno::new(2), &ws(1), &commit(1));
        let aborted = base.certified(
            Seqno::new(2),
            &ws(1),
            &Verdict::Abort {
                reason: AbortReason::ReadViewTooOld {
                    read_view: Seqno::ZERO,
                    oldest_allowed: Seqno::new(1),
                },
            },
        );
        let skipped = base.skipped(Seqno::new(2));
        let op = OperationBuilder::new().build(
            NodeId::new(1),
            TxnId::new(7, 1),
            Seqno::ZERO,
            bytes::Bytes::new(),
        );
        let operation = base.certified_operation(Seqno::new(2), &op, &commit(0));
        let timed = base.timed(Seqno::new(2), ClusterTime::from_millis(5));
        let all = [
            a,
            other_txn,
            other_dependency,
            aborted,
            skipped,
            operation,
            timed,
        ];
        for (i, x) in all.iter().enumerate() {
            for y in &all[i + 1..] {
                assert_ne!(x, y);
            }
        }
        // The chain carries a difference forward.
        assert_ne!(a.skipped(Seqno::new(3)), aborted.skipped(Seqno::new(3)));
    }
}
