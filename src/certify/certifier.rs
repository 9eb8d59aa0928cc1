//! The certifier: a deterministic function from the ordered log prefix to a
//! [`Verdict`] per write-set. No I/O, no clock, no randomness.

use serde::{Deserialize, Serialize};

use super::dedup::{DedupRecord, DedupTable};
use super::digest::CertDigest;
use super::index::{KeyHash, KeyIndex};
use super::matrix::{Relation, relation};
use super::verdict::{AbortReason, FirstOutcome, Verdict};
use bytes::Bytes;

use crate::ids::{ClusterTime, NodeId, Seqno, TxnId};
use crate::writeset::{Isolation, KeyEntry, Operation, Scope, WriteSet};

/// Cluster-wide certification settings. Every node must use the same values,
/// because they take part in every verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertConfig {
    /// How far behind its own seqno a write-set's read view may be. Older
    /// read views abort with [`AbortReason::ReadViewTooOld`]; the index and
    /// the duplicate table only keep this many seqnos of history.
    pub window: u64,
    /// Bytes the index and the duplicate table may hold together. Past it
    /// the oldest history is forgotten until a quarter of it is free, and
    /// read views older than what is kept abort as they do past the
    /// window: the window shrinks while keys are large, memory does not
    /// grow.
    pub index_bytes: u64,
}

impl Default for CertConfig {
    fn default() -> Self {
        CertConfig {
            window: 1 << 18,
            index_bytes: 256 << 20,
        }
    }
}

/// Buckets of seqnos the history is split into when it is over
/// [`CertConfig::index_bytes`]: the floor is raised a whole bucket at a
/// time, found in one pass without sorting.
const SHRINK_BUCKETS: u64 = 4096;

/// Counts of verdicts since the certifier was created or restored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CertStats {
    /// Write-sets that committed.
    pub committed: u64,
    /// Write-sets that aborted.
    pub aborted: u64,
    /// Deliveries recognised as duplicates.
    pub duplicates: u64,
    /// Positions that carried no write-set.
    pub skipped: u64,
}

/// Certifies write-sets in delivery order.
///
/// The state after seqno `s` depends only on the write-sets delivered at
/// `1..=s`, so two nodes (or one node before and after a restart, restored
/// from a [`super::CertCheckpoint`]) decide identically.
#[derive(Clone, Debug)]
pub struct Certifier {
    pub(super) config: CertConfig,
    pub(super) last_seqno: Seqno,
    /// Index entries at or below this seqno have been purged, so every
    /// dependency is raised to at least it.
    pub(super) purge_floor: Seqno,
    pub(super) index: KeyIndex,
    pub(super) dedup: DedupTable,
    /// The digest of every verdict up to `last_seqno`; `None` when the
    /// certifier was restored from a checkpoint that predates digests.
    pub(super) digest: Option<CertDigest>,
    /// The cluster time at `last_seqno`: the largest stamp so far.
    pub(super) time: ClusterTime,
    /// The last committed operation that wrote every key
    /// ([`Scope::WritesAll`]): everything after depends on it, and a read
    /// view older than it conflicts with it.
    pub(super) write_all: Seqno,
    stats: CertStats,
}

/// What an operation or a write-set asks certification to check and record,
/// in one shape.
struct Candidate<'a> {
    origin: NodeId,
    txn_id: TxnId,
    /// Declared keys, checked for conflicts after `key_view`.
    keys: &'a [KeyEntry],
    key_view: Seqno,
    /// Keys that must not have been written after `read_view`.
    reads: &'a [Bytes],
    read_view: Seqno,
    /// Record only the declared keys that are writes (an operation's reads
    /// conflict with nothing later).
    record_writes_only: bool,
    scope: Scope,
}

impl Certifier {
    /// A certifier for an empty cluster (nothing delivered yet).
    ///
    /// # Panics
    /// Panics if `config.window` is zero.
    #[must_use]
    pub fn new(config: CertConfig) -> Self {
        Self::from_parts(
            config,
            Seqno::ZERO,
            Seqno::ZERO,
            KeyIndex::default(),
            DedupTable::default(),
            Some(CertDigest::EMPTY),
            (ClusterTime::ZERO, Seqno::ZERO),
        )
    }

    /// A fresh certifier whose cluster time starts at `time`: a cluster
    /// seeded from a backup continues the old cluster's time, so the
    /// deadlines its rows carry keep their meaning from the first read.
    ///
    /// # Panics
    /// Panics if `config.window` is zero.
    #[must_use]
    pub fn starting_at(config: CertConfig, time: ClusterTime) -> Self {
        let mut certifier = Self::new(config);
        certifier.time = time;
        certifier
    }

    pub(super) fn from_parts(
        config: CertConfig,
        last_seqno: Seqno,
        purge_floor: Seqno,
        index: KeyIndex,
        dedup: DedupTable,
        digest: Option<CertDigest>,
        (time, write_all): (ClusterTime, Seqno),
    ) -> Self {
        assert!(config.window > 0, "certification window must be positive");
        assert!(
            purge_floor <= last_seqno,
            "purge floor {purge_floor} beyond {last_seqno}"
        );
        Certifier {
            config,
            last_seqno,
            purge_floor,
            index,
            dedup,
            digest,
            time,
            write_all,
            stats: CertStats::default(),
        }
    }

    /// The cluster time at [`Certifier::last_seqno`].
    #[must_use]
    pub fn time(&self) -> ClusterTime {
        self.time
    }

    /// The next position was stamped `stamp` by the leader that ordered it:
    /// the cluster time moves to it if it is later. Call it before
    /// certifying or skipping the position.
    pub fn observe_time(&mut self, stamp: ClusterTime) {
        if stamp > self.time {
            self.time = stamp;
            self.digest = self.digest.map(|d| d.timed(self.last_seqno.next(), stamp));
        }
    }

    /// The last seqno certified or skipped.
    #[must_use]
    pub fn last_seqno(&self) -> Seqno {
        self.last_seqno
    }

    /// The digest of everything certified up to [`Certifier::last_seqno`]:
    /// equal on every node at the same seqno. `None` after a restore from a
    /// checkpoint written before digests existed.
    #[must_use]
    pub fn digest(&self) -> Option<CertDigest> {
        self.digest
    }

    /// The settings in force.
    #[must_use]
    pub fn config(&self) -> CertConfig {
        self.config
    }

    /// Verdict counts.
    #[must_use]
    pub fn stats(&self) -> CertStats {
        self.stats
    }

    /// Number of keys in the index and of transactions in the duplicate table.
    #[must_use]
    pub fn sizes(&self) -> (usize, usize) {
        (self.index.len(), self.dedup.len())
    }

    /// The bytes the index and the duplicate table are counted as, held
    /// at most to [`CertConfig::index_bytes`].
    #[must_use]
    pub fn bytes(&self) -> u64 {
        self.index.bytes() + self.dedup.bytes()
    }

    /// The oldest read view still certifiable at the next seqno.
    #[must_use]
    pub fn oldest_view(&self) -> Seqno {
        self.oldest_allowed(self.last_seqno.next())
    }

    fn oldest_allowed(&self, seqno: Seqno) -> Seqno {
        seqno
            .saturating_sub(self.config.window)
            .max(self.purge_floor)
    }

    /// Certifies the write-set delivered at `seqno`.
    ///
    /// # Panics
    /// Panics unless `seqno` is exactly the next position: the total order
    /// delivers every position once, in order.
    pub fn certify(&mut self, seqno: Seqno, ws: &WriteSet) -> Verdict {
        let serializable = ws.isolation() == Isolation::Serializable;
        let candidate = Candidate {
            origin: ws.origin(),
            txn_id: ws.txn_id(),
            keys: ws.keys(),
            key_view: ws.read_view(),
            reads: if serializable { ws.read_keys() } else { &[] },
            read_view: ws.read_view(),
            record_writes_only: false,
            scope: Scope::Keys,
        };
        let verdict = self.decide(seqno, &candidate);
        self.digest = self.digest.map(|h| h.certified(seqno, ws, &verdict));
        verdict
    }

    /// Certifies the operation delivered at `seqno`. It reads the state just
    /// before `seqno`, so its keys conflict with nothing: it commits unless
    /// a key it watches was written after its view, or its view is older
    /// than the window (a late copy of a retried submission), and depends
    /// on the last commit that touched any of its keys.
    ///
    /// # Panics
    /// Panics unless `seqno` is exactly the next position.
    pub fn certify_operation(&mut self, seqno: Seqno, op: &Operation) -> Verdict {
        let candidate = Candidate {
            origin: op.origin(),
            txn_id: op.txn_id(),
            keys: op.keys(),
            key_view: seqno.saturating_sub(1),
            reads: op.watched(),
            read_view: op.view(),
            record_writes_only: true,
            scope: op.scope(),
        };
        let verdict = self.decide(seqno, &candidate);
        self.digest = self
            .digest
            .map(|h| h.certified_operation(seqno, op, &verdict));
        verdict
    }

    fn decide(&mut self, seqno: Seqno, candidate: &Candidate<'_>) -> Verdict {
        self.advance(seqno);
        if let Some(first) = self.dedup.lookup(candidate.origin, candidate.txn_id) {
            self.stats.duplicates += 1;
            return Verdict::Duplicate {
                first_seqno: first.seqno,
                first: first.outcome.clone(),
            };
        }
        let (verdict, outcome) = match self.test(seqno, candidate) {
            Ok(depends_on) => {
                for entry in candidate.keys {
                    if !candidate.record_writes_only || entry.kind.is_write() {
                        self.index
                            .record(KeyHash::of(&entry.key), entry.kind, seqno);
                    }
                }
                if candidate.scope == Scope::WritesAll {
                    self.write_all = seqno;
                }
                self.stats.committed += 1;
                (Verdict::Commit { depends_on }, FirstOutcome::Committed)
            }
            Err(reason) => {
                self.stats.aborted += 1;
                (
                    Verdict::Abort {
                        reason: reason.clone(),
                    },
                    FirstOutcome::Aborted(reason),
                )
            }
        };
        self.dedup.record(DedupRecord {
            seqno,
            origin: candidate.origin,
            txn_id: candidate.txn_id,
            outcome,
        });
        self.bound_bytes();
        verdict
    }

    /// Past [`CertConfig::index_bytes`], forgets the oldest history until
    /// a quarter of the bound is free. The purge floor rises with it, so a
    /// read view older than what is kept aborts as too old, and every
    /// dependency is raised to the floor, exactly as past the window.
    fn bound_bytes(&mut self) {
        let bound = self.config.index_bytes;
        if self.bytes() <= bound {
            return;
        }
        let floor = self.floor_keeping(bound - bound / 4);
        self.index.purge(floor);
        self.dedup.purge(floor);
        self.purge_floor = floor;
        assert!(
            self.bytes() <= bound,
            "certification history still holds {} bytes over its bound {bound} after a purge to {floor}",
            self.bytes()
        );
    }

    /// The lowest floor that leaves at most `target` bytes above it, a
    /// whole bucket of seqnos at a time. Deterministic: the same history
    /// gives the same floor on every node.
    fn floor_keeping(&self, target: u64) -> Seqno {
        let low = self.purge_floor.get();
        let span = self.last_seqno.get() - low;
        let width = span.div_ceil(SHRINK_BUCKETS).max(1);
        // At most SHRINK_BUCKETS buckets, so every index below fits a usize.
        let mut buckets = vec![0u64; span.div_ceil(width) as usize];
        for (seqno, bytes) in self.index.sizes().chain(self.dedup.sizes()) {
            assert!(
                seqno.get() > low && seqno <= self.last_seqno,
                "certification history at {seqno} outside ({low}, {}]",
                self.last_seqno
            );
            buckets[((seqno.get() - low - 1) / width) as usize] += bytes;
        }
        let mut kept = 0;
        for (bucket, bytes) in buckets.iter().enumerate().rev() {
            kept += bytes;
            if kept > target {
                let top = low + (bucket as u64 + 1) * width;
                return Seqno::new(top.min(self.last_seqno.get()));
            }
        }
        unreachable!("{kept} bytes of history over the bound, yet within {target}")
    }

    /// Consumes a position that carries no certifiable write-set (a barrier,
    /// or bytes that do not decode).
    ///
    /// # Panics
    /// Panics unless `seqno` is exactly the next position.
    pub fn skip(&mut self, seqno: Seqno) {
        self.advance(seqno);
        self.digest = self.digest.map(|h| h.skipped(seqno));
        self.stats.skipped += 1;
    }

    fn advance(&mut self, seqno: Seqno) {
        assert_eq!(
            seqno,
            self.last_seqno.next(),
            "certification input out of order: got seqno {seqno} after {}",
            self.last_seqno
        );
        self.last_seqno = seqno;
        // Nothing at or below `floor` can conflict with a write-set at or after
        // `seqno`: any read view it may have without aborting is >= floor.
        let floor = seqno.saturating_sub(self.config.window);
        self.dedup.purge(floor);
        let sweep_every = (self.config.window / 4).max(1);
        if seqno.get().is_multiple_of(sweep_every) && floor > self.purge_floor {
            self.index.purge(floor);
            self.purge_floor = floor;
        }
    }

    /// The rule itself, with no side effects: the dependency to commit with,
    /// or the reason to abort.
    fn test(&self, seqno: Seqno, candidate: &Candidate<'_>) -> Result<Seqno, AbortReason> {
        let read_view = candidate.read_view.min(candidate.key_view);
        if read_view >= seqno {
            return Err(AbortReason::InvalidReadView { read_view });
        }
        let oldest_allowed = self.oldest_allowed(seqno);
        if read_view < oldest_allowed {
            return Err(AbortReason::ReadViewTooOld {
                read_view,
                oldest_allowed,
            });
        }
        let mut depends_on = self.purge_floor.max(self.write_all);
        for entry in candidate.keys {
            let Some(found) = self.index.get(KeyHash::of(&entry.key)) else {
                continue;
            };
            let mut conflicting = Seqno::ZERO;
            for found_kind in crate::writeset::KeyKind::ALL {
                let at = found.get(found_kind);
                if at == Seqno::ZERO {
                    continue;
                }
                match relation(found_kind, entry.kind) {
                    Relation::Conflict if at > candidate.key_view => {
                        conflicting = conflicting.max(at);
                    }
                    Relation::Conflict | Relation::Dependency => depends_on = depends_on.max(at),
                    Relation::Independent => {}
                }
            }
            if conflicting > Seqno::ZERO {
                return Err(AbortReason::KeyConflict {
                    key: entry.key.clone(),
                    kind: entry.kind,
                    conflicting_seqno: conflicting,
                });
            }
        }
        if self.write_all > candidate.key_view
            && let Some(entry) = candidate.keys.first()
        {
            return Err(AbortReason::KeyConflict {
                key: entry.key.clone(),
                kind: entry.kind,
                conflicting_seqno: self.write_all,
            });
        }
        self.test_reads(candidate)?;
        if candidate.scope != Scope::Keys {
            depends_on = seqno.saturating_sub(1);
        }
        assert!(
            depends_on < seqno,
            "dependency {depends_on} not before seqno {seqno}"
        );
        Ok(depends_on)
    }

    /// Serializable reads and watched keys: none may have been written
    /// after the read view.
    fn test_reads(&self, candidate: &Candidate<'_>) -> Result<(), AbortReason> {
        for key in candidate.reads {
            let written = self
                .index
                .get(KeyHash::of(key))
                .map_or(Seqno::ZERO, |f| f.newest_write())
                .max(self.write_all);
            if written > candidate.read_view {
                return Err(AbortReason::ReadConflict {
                    key: key.clone(),
                    conflicting_seqno: written,
                });
            }
        }
        Ok(())
    }
}
