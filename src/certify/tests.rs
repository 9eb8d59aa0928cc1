//! Certifier unit tests: the key-kind matrix as verdicts, the window,
//! duplicates, serializable reads and checkpoints.

use bytes::Bytes;

use super::*;
use crate::ids::{NodeId, Seqno, TxnId};
use crate::writeset::{Isolation, KeyKind, WriteSet, WriteSetBuilder};

fn ws(origin: u64, counter: u64, read_view: u64, keys: &[(&str, KeyKind)]) -> WriteSet {
    let mut b = WriteSetBuilder::new(
        NodeId::new(origin),
        TxnId::new(0, counter),
        Seqno::new(read_view),
        Isolation::Snapshot,
    );
    for (key, kind) in keys {
        b.append_key(Bytes::copy_from_slice(key.as_bytes()), *kind);
    }
    b.build()
}

fn commit(depends_on: u64) -> Verdict {
    Verdict::Commit {
        depends_on: Seqno::new(depends_on),
    }
}

/// Every row of the matrix, run through certification twice: once with the
/// indexed write-set concurrent (committed after the read view), once with it
/// visible (committed at or before the read view).
#[test]
fn matrix_rows_become_verdicts() {
    for found in KeyKind::ALL {
        for new in KeyKind::ALL {
            for read_view in [0, 1] {
                let mut c = Certifier::new(CertConfig { window: 100 });
                assert_eq!(
                    c.certify(Seqno::new(1), &ws(1, 1, 0, &[("k", found)])),
                    commit(0)
                );
                let verdict = c.certify(Seqno::new(2), &ws(2, 1, read_view, &[("k", new)]));
                let expected = match (relation(found, new), read_view) {
                    (Relation::Conflict, 0) => Verdict::Abort {
                        reason: AbortReason::KeyConflict {
                            key: Bytes::from_static(b"k"),
                            kind: new,
                            conflicting_seqno: Seqno::new(1),
                        },
                    },
                    (Relation::Conflict | Relation::Dependency, _) => commit(1),
                    (Relation::Independent, _) => commit(0),
                };
                assert_eq!(
                    verdict, expected,
                    "found {found:?}, new {new:?}, read view {read_view}"
                );
            }
        }
    }
}

#[test]
fn own_node_commits_conflict_too() {
    // Galera exempts write-sets from the same node; first-committer-wins does not.
    let mut c = Certifier::new(CertConfig::default());
    assert_eq!(
        c.certify(Seqno::new(1), &ws(1, 1, 0, &[("k", KeyKind::Update)])),
        commit(0)
    );
    let second = c.certify(Seqno::new(2), &ws(1, 2, 0, &[("k", KeyKind::Update)]));
    assert!(matches!(
        second,
        Verdict::Abort {
            reason: AbortReason::KeyConflict { .. }
        }
    ));
}

#[test]
fn aborted_write_sets_leave_no_trace_in_the_index() {
    let mut c = Certifier::new(CertConfig::default());
    c.certify(Seqno::new(1), &ws(1, 1, 0, &[("a", KeyKind::Update)]));
    let aborted = c.certify(
        Seqno::new(2),
        &ws(2, 1, 0, &[("a", KeyKind::Update), ("b", KeyKind::Update)]),
    );
    assert!(matches!(aborted, Verdict::Abort { .. }));
    // "b" was never written by a committed write-set, so a concurrent writer of it commits.
    assert_eq!(
        c.certify(Seqno::new(3), &ws(3, 1, 0, &[("b", KeyKind::Update)])),
        commit(0)
    );
}

#[test]
fn read_view_outside_the_window_aborts_with_its_own_reason() {
    let mut c = Certifier::new(CertConfig { window: 3 });
    for s in 1..=4 {
        c.skip(Seqno::new(s));
    }
    // Seqno 5: a read view of 2 is exactly the window; 1 is beyond it.
    assert_eq!(
        c.certify(Seqno::new(5), &ws(1, 1, 2, &[("k", KeyKind::Update)])),
        commit(2)
    );
    let old = c.certify(Seqno::new(6), &ws(1, 2, 2, &[("x", KeyKind::Update)]));
    let expected = AbortReason::ReadViewTooOld {
        read_view: Seqno::new(2),
        oldest_allowed: Seqno::new(3),
    };
    assert_eq!(old, Verdict::Abort { reason: expected });
    let future = c.certify(Seqno::new(7), &ws(1, 3, 7, &[("x", KeyKind::Update)]));
    let expected = AbortReason::InvalidReadView {
        read_view: Seqno::new(7),
    };
    assert_eq!(future, Verdict::Abort { reason: expected });
}

#[test]
fn duplicates_report_the_first_verdict_and_change_nothing() {
    let mut c = Certifier::new(CertConfig::default());
    let first = ws(1, 7, 0, &[("k", KeyKind::Update)]);
    assert_eq!(c.certify(Seqno::new(1), &first), commit(0));
    let again = c.certify(Seqno::new(2), &first);
    assert_eq!(
        again,
        Verdict::Duplicate {
            first_seqno: Seqno::new(1),
            first: FirstOutcome::Committed
        }
    );
    // The duplicate did not move the index: a write-set that saw seqno 1 still commits.
    assert_eq!(
        c.certify(Seqno::new(3), &ws(2, 1, 1, &[("k", KeyKind::Update)])),
        commit(1)
    );
    assert_eq!(c.stats().duplicates, 1);
}

#[test]
fn serializable_read_keys_are_certified() {
    let mut c = Certifier::new(CertConfig::default());
    c.certify(Seqno::new(1), &ws(1, 1, 0, &[("x", KeyKind::Update)]));
    let mut b = WriteSetBuilder::new(
        NodeId::new(2),
        TxnId::new(0, 1),
        Seqno::ZERO,
        Isolation::Serializable,
    );
    b.read(Bytes::from_static(b"x"));
    b.put(Bytes::from_static(b"y"), Bytes::from_static(b"1"));
    let verdict = c.certify(Seqno::new(2), &b.build());
    let expected = AbortReason::ReadConflict {
        key: Bytes::from_static(b"x"),
        conflicting_seqno: Seqno::new(1),
    };
    assert_eq!(verdict, Verdict::Abort { reason: expected });
    // The same shape under snapshot isolation commits (write skew is allowed there).
    let mut b = WriteSetBuilder::new(
        NodeId::new(2),
        TxnId::new(0, 2),
        Seqno::ZERO,
        Isolation::Snapshot,
    );
    b.read(Bytes::from_static(b"x"));
    b.put(Bytes::from_static(b"y"), Bytes::from_static(b"1"));
    assert_eq!(c.certify(Seqno::new(3), &b.build()), commit(0));
}

#[test]
fn purged_history_still_orders_apply() {
    let mut c = Certifier::new(CertConfig { window: 4 });
    c.certify(Seqno::new(1), &ws(1, 1, 0, &[("k", KeyKind::Update)]));
    for s in 2..=8 {
        c.skip(Seqno::new(s));
    }
    assert_eq!(c.sizes().0, 0, "the entry for k should have been swept");
    // k's last writer (1) is gone from the index; the floor keeps apply after it.
    let verdict = c.certify(Seqno::new(9), &ws(2, 1, 8, &[("k", KeyKind::Update)]));
    let Verdict::Commit { depends_on } = verdict else {
        panic!("{verdict:?}")
    };
    assert!(depends_on >= Seqno::new(1));
}

#[test]
fn checkpoint_restores_identical_decisions() {
    let config = CertConfig { window: 8 };
    let mut live = Certifier::new(config);
    for s in 1..=20u64 {
        live.certify(
            Seqno::new(s),
            &ws(s % 3, s, s.saturating_sub(3), &[("k", KeyKind::Update)]),
        );
    }
    let checkpoint = live.checkpoint().unwrap();
    assert_eq!(checkpoint.seqno(), Seqno::new(20));
    let stored = CertCheckpoint::from_bytes(checkpoint.as_bytes().clone()).unwrap();
    let mut restored = Certifier::restore(config, &stored).unwrap();
    // A duplicate of a transaction certified before the checkpoint is still recognised.
    let old = ws(19 % 3, 19, 16, &[("k", KeyKind::Update)]);
    let verdict = restored.certify(Seqno::new(21), &old);
    assert!(
        matches!(verdict, Verdict::Duplicate { first_seqno, .. } if first_seqno == Seqno::new(19))
    );
    assert_eq!(live.certify(Seqno::new(21), &old), verdict);
    for s in 22..=40u64 {
        let next = ws(s % 3, s, s.saturating_sub(s % 5), &[("k", KeyKind::Update)]);
        assert_eq!(
            live.certify(Seqno::new(s), &next),
            restored.certify(Seqno::new(s), &next)
        );
    }
    // Past the window the same duplicate falls to the window rule, on both.
    let verdict = restored.certify(Seqno::new(41), &old);
    assert!(matches!(
        verdict,
        Verdict::Abort {
            reason: AbortReason::ReadViewTooOld { .. }
        }
    ));
    assert_eq!(live.certify(Seqno::new(41), &old), verdict);
}

#[test]
fn checkpoint_for_another_window_or_damaged_is_refused() {
    let checkpoint = Certifier::new(CertConfig { window: 8 })
        .checkpoint()
        .unwrap();
    let err = Certifier::restore(CertConfig { window: 9 }, &checkpoint).unwrap_err();
    assert!(err.to_string().contains("window"), "{err}");
    let mut damaged = checkpoint.as_bytes().to_vec();
    let last = damaged.len() - 1;
    damaged[last] ^= 0x40;
    assert!(CertCheckpoint::from_bytes(Bytes::from(damaged)).is_err());
}

#[test]
#[should_panic(expected = "certification input out of order")]
fn gaps_in_the_order_are_a_bug() {
    let mut c = Certifier::new(CertConfig::default());
    c.skip(Seqno::new(2));
}
