//! Model-based tests of certification.
//!
//! 1. The certifier (with its windowed index, sweeps, duplicate table and
//!    checkpoint/restore) reaches exactly the verdicts of a naive reference
//!    model that keeps the whole history.
//! 2. Random concurrent read-modify-write transactions certified by it lose no
//!    update under snapshot isolation, and under serializable isolation the
//!    committed history equals running the committed transactions one by one
//!    in seqno order; both also when some of them are ordered operations
//!    (which read at their position instead of a snapshot) on the same keys.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

use std::collections::BTreeMap;

use bytes::Bytes;
use certus::certify::{
    AbortReason, CertCheckpoint, CertConfig, Certifier, FirstOutcome, Relation, Verdict, relation,
};
use certus::writeset::{Isolation, KeyKind, OperationBuilder, WriteSet, WriteSetBuilder};
use certus::{NodeId, Seqno, TxnId};
use proptest::prelude::*;

const KEYS: u8 = 4;

fn key(index: u8) -> Bytes {
    Bytes::from(vec![b'k', index])
}

#[derive(Clone, Debug)]
struct TxnSpec {
    origin: u64,
    isolation: Isolation,
    keys: Vec<(u8, KeyKind)>,
    reads: Vec<u8>,
    lag: u64,
}

#[derive(Clone, Debug)]
enum Step {
    Deliver(TxnSpec),
    Barrier,
    /// Deliver again the write-set delivered at this (wrapped) index.
    Duplicate(usize),
    /// Replace one certifier with its own checkpoint, restored.
    Checkpoint,
}

fn kind() -> impl Strategy<Value = KeyKind> {
    prop::sample::select(KeyKind::ALL.to_vec())
}

fn txn_spec() -> impl Strategy<Value = TxnSpec> {
    (
        1..=3u64,
        prop::bool::ANY,
        prop::collection::vec((0..KEYS, kind()), 0..4),
        prop::collection::vec(0..KEYS, 0..3),
        0..12u64,
    )
        .prop_map(|(origin, serializable, keys, reads, lag)| TxnSpec {
            origin,
            isolation: if serializable {
                Isolation::Serializable
            } else {
                Isolation::Snapshot
            },
            keys,
            reads,
            lag,
        })
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => txn_spec().prop_map(Step::Deliver),
        1 => Just(Step::Barrier),
        1 => any::<usize>().prop_map(Step::Duplicate),
        1 => Just(Step::Checkpoint),
    ]
}

fn build(spec: &TxnSpec, counter: u64, seqno: Seqno) -> WriteSet {
    let read_view = Seqno::new(seqno.get() - 1).saturating_sub(spec.lag);
    let txn = TxnId::new(0, counter);
    let mut b = WriteSetBuilder::new(NodeId::new(spec.origin), txn, read_view, spec.isolation);
    for (index, kind) in &spec.keys {
        b.append_key(key(*index), *kind);
    }
    for index in &spec.reads {
        b.read(key(*index));
    }
    b.build()
}

/// The rule, evaluated against the full history with no index at all.
struct Reference {
    window: u64,
    /// (seqno, write-set, first outcome) of every non-duplicate delivery.
    history: Vec<(Seqno, WriteSet, FirstOutcome)>,
}

impl Reference {
    fn certify(&mut self, seqno: Seqno, ws: &WriteSet) -> Verdict {
        let floor = seqno.saturating_sub(self.window);
        let first = self.history.iter().find(|(s, prior, _)| {
            *s > floor && prior.origin() == ws.origin() && prior.txn_id() == ws.txn_id()
        });
        if let Some((first_seqno, _, first)) = first {
            return Verdict::Duplicate {
                first_seqno: *first_seqno,
                first: first.clone(),
            };
        }
        let verdict = self.rule(seqno, ws);
        let outcome = match &verdict {
            Verdict::Abort { reason } => FirstOutcome::Aborted(reason.clone()),
            _ => FirstOutcome::Committed,
        };
        self.history.push((seqno, ws.clone(), outcome));
        verdict
    }

    fn committed(&self) -> impl Iterator<Item = &(Seqno, WriteSet, FirstOutcome)> {
        self.history
            .iter()
            .filter(|(_, _, o)| *o == FirstOutcome::Committed)
    }

    fn rule(&self, seqno: Seqno, ws: &WriteSet) -> Verdict {
        let rv = ws.read_view();
        let abort = |reason| Verdict::Abort { reason };
        if rv >= seqno {
            return abort(AbortReason::InvalidReadView { read_view: rv });
        }
        if seqno.get() - rv.get() > self.window {
            let oldest_allowed = seqno.saturating_sub(self.window);
            return abort(AbortReason::ReadViewTooOld {
                read_view: rv,
                oldest_allowed,
            });
        }
        let mut depends_on = Seqno::ZERO;
        for entry in ws.keys() {
            let mut conflicting = Seqno::ZERO;
            for (s, prior, _) in self.committed() {
                for found in prior.keys().iter().filter(|f| f.key == entry.key) {
                    match relation(found.kind, entry.kind) {
                        Relation::Conflict if *s > rv => conflicting = conflicting.max(*s),
                        Relation::Conflict | Relation::Dependency => {
                            depends_on = depends_on.max(*s)
                        }
                        Relation::Independent => {}
                    }
                }
            }
            if conflicting > Seqno::ZERO {
                let (key, kind) = (entry.key.clone(), entry.kind);
                return abort(AbortReason::KeyConflict {
                    key,
                    kind,
                    conflicting_seqno: conflicting,
                });
            }
        }
        for read in ws.read_keys() {
            let written = self
                .committed()
                .filter(|(s, prior, _)| {
                    *s > rv
                        && prior
                            .keys()
                            .iter()
                            .any(|f| f.key == *read && f.kind.is_write())
                })
                .map(|(s, _, _)| *s)
                .max();
            if let Some(conflicting_seqno) = written {
                return abort(AbortReason::ReadConflict {
                    key: read.clone(),
                    conflicting_seqno,
                });
            }
        }
        Verdict::Commit { depends_on }
    }
}

fn restore_through_bytes(certifier: &Certifier) -> Certifier {
    let checkpoint = certifier.checkpoint().unwrap();
    let stored = CertCheckpoint::from_bytes(Bytes::copy_from_slice(checkpoint.as_bytes())).unwrap();
    Certifier::restore(certifier.config(), &stored).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn certifier_matches_the_reference_model(
        window in prop::sample::select(vec![1u64, 2, 3, 5, 8, 64]),
        steps in prop::collection::vec(step(), 1..80),
    ) {
        let config = CertConfig { window, ..CertConfig::default() };
        let mut live = Certifier::new(config);
        let mut restarted = Certifier::new(config);
        let mut reference = Reference { window, history: Vec::new() };
        let mut delivered: Vec<WriteSet> = Vec::new();
        let mut seqno = Seqno::ZERO;
        for (counter, step) in steps.iter().enumerate() {
            let ws = match step {
                Step::Checkpoint => {
                    restarted = restore_through_bytes(&restarted);
                    continue;
                }
                Step::Barrier => {
                    seqno = seqno.next();
                    live.skip(seqno);
                    restarted.skip(seqno);
                    continue;
                }
                Step::Duplicate(_) if delivered.is_empty() => continue,
                Step::Duplicate(at) => delivered[at % delivered.len()].clone(),
                Step::Deliver(spec) => build(spec, counter as u64, seqno.next()),
            };
            seqno = seqno.next();
            let verdict = live.certify(seqno, &ws);
            prop_assert_eq!(&restarted.certify(seqno, &ws), &verdict, "restored certifier diverged");
            let expected = reference.certify(seqno, &ws);
            match (&verdict, &expected) {
                (Verdict::Commit { depends_on }, Verdict::Commit { depends_on: needed }) => {
                    // Sweeping the index may only raise a dependency, and only
                    // up to the window's floor.
                    prop_assert!(depends_on >= needed, "{depends_on} < {needed}");
                    let ceiling = (*needed).max(seqno.saturating_sub(window));
                    prop_assert!(*depends_on <= ceiling, "{depends_on} > {ceiling}");
                }
                _ => prop_assert_eq!(&verdict, &expected),
            }
            delivered.push(ws);
        }
    }
}

/// One transaction of the value-level simulation: increments `rmw` keys and
/// reads `reads` keys; as an ordered operation when `operation` (it then
/// reads at its own position, not at a snapshot taken when it began).
#[derive(Clone, Debug)]
struct Increment {
    origin: u64,
    rmw: Vec<u8>,
    reads: Vec<u8>,
    operation: bool,
}

fn increment() -> impl Strategy<Value = Increment> {
    (
        1..=3u64,
        prop::collection::btree_set(0..3u8, 1..=2),
        prop::collection::btree_set(0..3u8, 0..=2),
        prop::bool::weighted(0.3),
    )
        .prop_map(|(origin, rmw, reads, operation)| Increment {
            origin,
            rmw: rmw.into_iter().collect(),
            reads: reads.into_iter().collect(),
            operation,
        })
}

/// Transactions plus a schedule in which each index appears twice: its first
/// appearance begins the transaction, its second commits it.
fn workload() -> impl Strategy<Value = (Vec<Increment>, Vec<usize>)> {
    prop::collection::vec(increment(), 1..25).prop_flat_map(|txns| {
        let schedule: Vec<usize> = (0..txns.len()).flat_map(|i| [i, i]).collect();
        (Just(txns), Just(schedule).prop_shuffle())
    })
}

/// Committed values per key, by seqno.
#[derive(Default)]
struct Versions(BTreeMap<u8, BTreeMap<Seqno, i64>>);

impl Versions {
    fn read(&self, key: u8, at: Seqno) -> i64 {
        self.0
            .get(&key)
            .and_then(|v| v.range(..=at).next_back())
            .map_or(0, |(_, value)| *value)
    }
}

struct Observed {
    seqno: Seqno,
    reads: BTreeMap<u8, i64>,
}

/// Runs the schedule through a certifier; returns the committed
/// transactions' indexes with what they read, and the final versions.
fn run(
    txns: &[Increment],
    schedule: &[usize],
    isolation: Isolation,
) -> (Vec<(usize, Observed)>, Versions) {
    let mut certifier = Certifier::new(CertConfig::default());
    let mut versions = Versions::default();
    let mut seqno = Seqno::ZERO;
    let mut begun: BTreeMap<usize, (Seqno, BTreeMap<u8, i64>)> = BTreeMap::new();
    let mut committed = Vec::new();
    for &index in schedule {
        let txn = &txns[index];
        if txn.operation {
            // Submitted at its second appearance; it reads when it runs.
            if begun.insert(index, (seqno, BTreeMap::new())).is_none() {
                continue;
            }
            begun.remove(&index);
            seqno = seqno.next();
            let observed = execute(&mut certifier, &mut versions, seqno, index, txn);
            committed.push((index, observed));
            continue;
        }
        let Some((read_view, reads)) = begun.remove(&index) else {
            let reads = txn
                .rmw
                .iter()
                .chain(&txn.reads)
                .map(|k| (*k, versions.read(*k, seqno)))
                .collect();
            begun.insert(index, (seqno, reads));
            continue;
        };
        let txn_id = TxnId::new(0, index as u64);
        let mut b = WriteSetBuilder::new(NodeId::new(txn.origin), txn_id, read_view, isolation);
        for k in reads.keys() {
            b.read(key(*k));
        }
        for k in &txn.rmw {
            b.put(key(*k), Bytes::from((reads[k] + 1).to_string()));
        }
        seqno = seqno.next();
        if let Verdict::Commit { .. } = certifier.certify(seqno, &b.build()) {
            for k in &txn.rmw {
                versions
                    .0
                    .entry(*k)
                    .or_default()
                    .insert(seqno, reads[k] + 1);
            }
            committed.push((index, Observed { seqno, reads }));
        }
    }
    (committed, versions)
}

/// Certifies `txn` as an operation at `seqno` (it must commit: nothing can
/// come between what it reads and what it writes) and executes it there.
fn execute(
    certifier: &mut Certifier,
    versions: &mut Versions,
    seqno: Seqno,
    index: usize,
    txn: &Increment,
) -> Observed {
    let mut b = OperationBuilder::new();
    for k in &txn.reads {
        b.read(key(*k));
    }
    for k in &txn.rmw {
        b.read(key(*k));
        b.write(key(*k));
    }
    let view = seqno.saturating_sub(1);
    let op = b.build(
        NodeId::new(txn.origin),
        TxnId::new(1, index as u64),
        view,
        Bytes::new(),
    );
    let verdict = certifier.certify_operation(seqno, &op);
    assert!(matches!(verdict, Verdict::Commit { .. }), "{verdict:?}");
    let before = seqno.saturating_sub(1);
    let reads: BTreeMap<u8, i64> = txn
        .rmw
        .iter()
        .chain(&txn.reads)
        .map(|k| (*k, versions.read(*k, before)))
        .collect();
    for k in &txn.rmw {
        versions
            .0
            .entry(*k)
            .or_default()
            .insert(seqno, reads[k] + 1);
    }
    Observed { seqno, reads }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn snapshot_isolation_loses_no_update((txns, schedule) in workload()) {
        let (committed, versions) = run(&txns, &schedule, Isolation::Snapshot);
        prop_assert!(!committed.is_empty(), "the first committer always wins");
        let last = committed.iter().map(|(_, o)| o.seqno).max().unwrap_or_default();
        for k in 0..3u8 {
            let increments = committed.iter().filter(|(i, _)| txns[*i].rmw.contains(&k)).count();
            prop_assert_eq!(versions.read(k, last), increments as i64, "lost update on key {}", k);
        }
    }

    #[test]
    fn serializable_equals_serial_execution_in_seqno_order((txns, schedule) in workload()) {
        let (committed, versions) = run(&txns, &schedule, Isolation::Serializable);
        let mut serial: BTreeMap<u8, i64> = BTreeMap::new();
        for (index, observed) in &committed {
            for (k, value) in &observed.reads {
                let expected = serial.get(k).copied().unwrap_or(0);
                prop_assert_eq!(*value, expected, "txn {} read a value serial order would not show", index);
            }
            for k in &txns[*index].rmw {
                serial.insert(*k, observed.reads[k] + 1);
            }
        }
        let last = committed.iter().map(|(_, o)| o.seqno).max().unwrap_or_default();
        for (k, value) in serial {
            prop_assert_eq!(versions.read(k, last), value);
        }
    }
}
