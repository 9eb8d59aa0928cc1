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
                let mut c = Certifier::new(CertConfig {
                    window: 100,
                    ..CertConfig::default()
                });
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
    let mut c = Certifier::new(CertConfig {
        window: 3,
        ..CertConfig::default()
    });
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
    let mut c = Certifier::new(CertConfig {
        window: 4,
        ..CertConfig::default()
    });
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
    let config = CertConfig {
        window: 8,
        ..CertConfig::default()
    };
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
    let checkpoint = Certifier::new(CertConfig {
        window: 8,
        ..CertConfig::default()
    })
    .checkpoint()
    .unwrap();
    let err = Certifier::restore(
        CertConfig {
            window: 9,
            ..CertConfig::default()
        },
        &checkpoint,
    )
    .unwrap_err();
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

/// An operation built on `origin` as transaction `counter`, when its node
/// had made `view` visible.
fn op(
    counter: u64,
    view: u64,
    reads: &[&str],
    writes: &[&str],
    scope: crate::writeset::Scope,
) -> crate::writeset::Operation {
    let mut b = crate::writeset::OperationBuilder::new();
    for key in reads {
        b.read(Bytes::copy_from_slice(key.as_bytes()));
    }
    for key in writes {
        b.write(Bytes::copy_from_slice(key.as_bytes()));
    }
    b.cover(scope);
    b.build(
        NodeId::new(3),
        TxnId::new(0, counter),
        Seqno::new(view),
        Bytes::new(),
    )
}

fn key_conflict(key: &'static str, kind: KeyKind, at: u64) -> Verdict {
    Verdict::Abort {
        reason: AbortReason::KeyConflict {
            key: Bytes::from_static(key.as_bytes()),
            kind,
            conflicting_seqno: Seqno::new(at),
        },
    }
}

/// An operation reads the state just before its own position, so a write
/// after its view is what it reads, not a conflict: it commits and applies
/// after that write. A transaction whose snapshot predates the operation's
/// write conflicts with it, first-committer-wins as with any write.
#[test]
fn operations_never_conflict_and_transactions_conflict_with_them() {
    use crate::writeset::Scope;
    let mut c = Certifier::new(CertConfig {
        window: 100,
        ..CertConfig::default()
    });
    let update = KeyKind::Update;
    assert_eq!(
        c.certify(Seqno::new(1), &ws(1, 1, 0, &[("k", update)])),
        commit(0)
    );
    let verdict = c.certify_operation(Seqno::new(2), &op(2, 0, &["k"], &["k"], Scope::Keys));
    assert_eq!(verdict, commit(1), "depends on the write it reads");
    let verdict = c.certify_operation(Seqno::new(3), &op(3, 0, &[], &["k"], Scope::Keys));
    assert_eq!(
        verdict,
        commit(2),
        "a second blind write never aborts either"
    );
    let late = c.certify(Seqno::new(4), &ws(1, 4, 2, &[("k", update)]));
    assert_eq!(late, key_conflict("k", update, 3));
    let current = c.certify(Seqno::new(5), &ws(1, 5, 3, &[("k", update)]));
    assert_eq!(current, commit(3));
}

/// What an operation only reads is not recorded: a later transaction
/// changing that key does not conflict with the read.
#[test]
fn an_operations_reads_conflict_with_nothing_later() {
    use crate::writeset::Scope;
    let mut c = Certifier::new(CertConfig {
        window: 100,
        ..CertConfig::default()
    });
    let read = c.certify_operation(Seqno::new(1), &op(1, 0, &["r"], &["w"], Scope::Keys));
    assert_eq!(read, commit(0));
    let exclusive = KeyKind::Exclusive;
    let delete = c.certify(Seqno::new(2), &ws(1, 2, 0, &[("r", exclusive)]));
    assert_eq!(delete, commit(0));
    let write = c.certify(Seqno::new(3), &ws(1, 3, 0, &[("w", exclusive)]));
    assert_eq!(write, key_conflict("w", exclusive, 1));
}

/// A watched key written after the view aborts the operation (Redis's
/// `WATCH`); one written before it does not.
#[test]
fn a_watched_key_written_after_the_view_aborts_the_operation() {
    let mut c = Certifier::new(CertConfig {
        window: 100,
        ..CertConfig::default()
    });
    c.certify(Seqno::new(1), &ws(1, 1, 0, &[("w", KeyKind::Update)]));
    let watching = |counter, view| {
        let mut b = crate::writeset::OperationBuilder::new();
        b.write(Bytes::from_static(b"x"));
        b.watch(Seqno::new(view), Bytes::from_static(b"w"));
        b.build(
            NodeId::new(3),
            TxnId::new(0, counter),
            Seqno::new(9),
            Bytes::new(),
        )
    };
    let verdict = c.certify_operation(Seqno::new(2), &watching(2, 0));
    assert_eq!(
        verdict,
        Verdict::Abort {
            reason: AbortReason::ReadConflict {
                key: Bytes::from_static(b"w"),
                conflicting_seqno: Seqno::new(1),
            }
        }
    );
    let verdict = c.certify_operation(Seqno::new(3), &watching(3, 1));
    assert_eq!(
        verdict,
        commit(0),
        "a watched key is a condition, not a read"
    );
}

/// A flush (an operation that writes every key) orders everything around
/// it and conflicts with every older snapshot; a scan waits for everything
/// before it.
#[test]
fn writing_every_key_orders_and_conflicts_with_everything() {
    use crate::writeset::Scope;
    let mut c = Certifier::new(CertConfig {
        window: 100,
        ..CertConfig::default()
    });
    c.certify(Seqno::new(1), &ws(1, 1, 0, &[("a", KeyKind::Update)]));
    c.skip(Seqno::new(2));
    let flush = c.certify_operation(Seqno::new(3), &op(3, 0, &[], &[], Scope::WritesAll));
    assert_eq!(flush, commit(2));
    let old = c.certify(Seqno::new(4), &ws(1, 4, 2, &[("b", KeyKind::Exclusive)]));
    assert_eq!(old, key_conflict("b", KeyKind::Exclusive, 3));
    let new = c.certify(Seqno::new(5), &ws(1, 5, 3, &[("b", KeyKind::Exclusive)]));
    assert_eq!(new, commit(3), "everything after depends on the flush");
    c.skip(Seqno::new(6));
    let scan = c.certify_operation(Seqno::new(7), &op(7, 6, &[], &[], Scope::ReadsAll));
    assert_eq!(scan, commit(6));
    let restored = Certifier::restore(c.config(), &c.checkpoint().unwrap()).unwrap();
    assert_eq!(restored.write_all, Seqno::new(3));
}

/// A copy of an operation delivered more than the window after its view
/// aborts, so a retried operation never executes twice; within the window
/// a copy is a duplicate.
#[test]
fn a_late_copy_of_an_operation_aborts_and_an_early_one_is_a_duplicate() {
    use crate::writeset::Scope;
    let mut c = Certifier::new(CertConfig {
        window: 4,
        ..CertConfig::default()
    });
    let first = op(1, 0, &[], &["k"], Scope::Keys);
    assert_eq!(c.certify_operation(Seqno::new(1), &first), commit(0));
    let copy = c.certify_operation(Seqno::new(2), &first);
    assert!(matches!(copy, Verdict::Duplicate { .. }), "{copy:?}");
    for s in 3..=4 {
        c.skip(Seqno::new(s));
    }
    let late = c.certify_operation(Seqno::new(5), &first);
    assert!(
        matches!(
            late,
            Verdict::Abort {
                reason: AbortReason::ReadViewTooOld { .. }
            }
        ),
        "{late:?}"
    );
}

/// The cluster time is the largest stamp so far, and a checkpoint keeps it.
#[test]
fn cluster_time_is_the_running_maximum_of_stamps() {
    use crate::ids::ClusterTime;
    let mut c = Certifier::new(CertConfig::default());
    for (s, stamp) in [(1, 50), (2, 40), (3, 0), (4, 70)] {
        c.observe_time(ClusterTime::from_millis(stamp));
        c.skip(Seqno::new(s));
        let expected = if s == 4 { 70 } else { 50 };
        assert_eq!(c.time(), ClusterTime::from_millis(expected));
    }
    let restored = Certifier::restore(c.config(), &c.checkpoint().unwrap()).unwrap();
    assert_eq!(restored.time(), ClusterTime::from_millis(70));
    assert_eq!(restored.digest(), c.digest());
}

/// Write-sets each writing one new 100-byte key, certified one after the
/// other under a 64 KiB bound.
fn bounded_history(count: u64) -> (Certifier, CertConfig) {
    let config = CertConfig {
        index_bytes: 64 << 10,
        ..CertConfig::default()
    };
    let mut c = Certifier::new(config);
    for s in 1..=count {
        let key = format!("{s:0100}");
        // A new key depends only on the floor of what is kept.
        let floor = c.oldest_view();
        let verdict = c.certify(
            Seqno::new(s),
            &ws(1, s, s - 1, &[(key.as_str(), KeyKind::Update)]),
        );
        assert_eq!(verdict, commit(floor.get()), "at {s}");
        assert!(
            c.bytes() <= config.index_bytes,
            "{} bytes at {s}",
            c.bytes()
        );
    }
    (c, config)
}

#[test]
fn the_history_stays_within_its_byte_bound() {
    let (mut c, _) = bounded_history(2_000);
    let oldest = c.oldest_view();
    assert!(
        oldest > Seqno::new(1_000) && oldest < Seqno::new(2_000),
        "the floor rose to {oldest}, far inside the window"
    );
    assert!(c.sizes().0 < 2_000 - 1_000);
    // Older than the kept history: too old, as past the window.
    let stale = ws(2, 1, oldest.get() - 1, &[("other", KeyKind::Update)]);
    assert_eq!(
        c.certify(Seqno::new(2_001), &stale),
        Verdict::Abort {
            reason: AbortReason::ReadViewTooOld {
                read_view: oldest.saturating_sub(1),
                oldest_allowed: oldest,
            }
        }
    );
    // A duplicate whose record was forgotten is not certified again.
    let first = format!("{:0100}", 1);
    let copy = ws(1, 1, 0, &[(first.as_str(), KeyKind::Update)]);
    assert!(matches!(
        c.certify(Seqno::new(2_002), &copy),
        Verdict::Abort {
            reason: AbortReason::ReadViewTooOld { .. }
        }
    ));
    // Inside the kept history conflicts are still found.
    let newest = format!("{:0100}", 2_000);
    let late = ws(2, 2, 1_999, &[(newest.as_str(), KeyKind::Update)]);
    assert!(matches!(
        c.certify(Seqno::new(2_003), &late),
        Verdict::Abort {
            reason: AbortReason::KeyConflict { conflicting_seqno, .. }
        } if conflicting_seqno == Seqno::new(2_000)
    ));
}

#[test]
fn a_bounded_history_restores_identical_decisions() {
    let (mut live, config) = bounded_history(1_500);
    let checkpoint = live.checkpoint().unwrap();
    let mut restored = Certifier::restore(config, &checkpoint).unwrap();
    assert_eq!(restored.bytes(), live.bytes());
    assert_eq!(restored.oldest_view(), live.oldest_view());
    for s in 1_501..=3_000u64 {
        let key = format!("{:0100}", s % 1_700);
        let next = ws(2, s, s - 1 - s % 300, &[(key.as_str(), KeyKind::Update)]);
        assert_eq!(
            live.certify(Seqno::new(s), &next),
            restored.certify(Seqno::new(s), &next),
            "at {s}"
        );
        assert_eq!(live.bytes(), restored.bytes());
    }
    assert_eq!(live.digest(), restored.digest());
    let other = CertConfig {
        index_bytes: 1 << 20,
        ..config
    };
    let err = Certifier::restore(other, &live.checkpoint().unwrap()).unwrap_err();
    assert!(err.to_string().contains("bound of 65536 bytes"), "{err}");
}
