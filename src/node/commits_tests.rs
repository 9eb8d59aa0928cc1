//! The rule that ends each client's wait, without a runtime.

use std::time::Duration;

use super::*;
use crate::certify::AbortReason;
use crate::node::outcome::Conflict;

fn txn(n: u64) -> TxnId {
    TxnId::new(1, n)
}

fn committed(seqno: u64) -> CommitOutcome {
    CommitOutcome::Committed {
        seqno: Seqno::new(seqno),
    }
}

/// The completions of write-sets, which carry no output.
fn done(commits: &mut Commits) -> Vec<(TxnId, Result<CommitOutcome, Error>)> {
    let completed: Vec<(TxnId, Completion)> = commits.take_completed().collect();
    completed
        .into_iter()
        .map(|(txn_id, completion)| {
            let outcome = completion.map(|settled| {
                assert_eq!(settled.output, None, "a write-set has no output");
                settled.outcome
            });
            (txn_id, outcome)
        })
        .collect()
}

#[test]
fn an_operation_ends_once_visible_with_the_output_it_executed() {
    let mut commits = Commits::new(8);
    commits.submitted(txn(1));
    commits.ordered(txn(1));
    commits.certified(txn(1), committed(5), Seqno::new(3), true);
    commits.executed(Seqno::new(4), Bytes::from_static(b"not ours"));
    commits.executed(Seqno::new(5), Bytes::from_static(b"+OK"));
    assert!(commits.take_completed().next().is_none());
    commits.visible(Seqno::new(5));
    let completed: Vec<_> = commits.take_completed().collect();
    let settled = Settled {
        outcome: committed(5),
        output: Some(Bytes::from_static(b"+OK")),
    };
    assert_eq!(completed, [(txn(1), Ok(settled))]);
    assert!(commits.outputs.is_empty());
}

#[test]
#[should_panic(expected = "visible before it executed")]
fn an_operation_visible_without_its_output_is_a_broken_invariant() {
    let mut commits = Commits::new(8);
    commits.submitted(txn(1));
    commits.certified(txn(1), committed(5), Seqno::new(3), true);
    commits.visible(Seqno::new(5));
}

#[test]
fn a_commit_ends_when_visible_and_an_abort_at_once() {
    let mut commits = Commits::new(8);
    commits.submitted(txn(1));
    commits.submitted(txn(2));
    commits.ordered(txn(1));
    commits.ordered(txn(2));
    commits.certified(txn(1), committed(5), Seqno::new(3), false);
    let conflict = CommitOutcome::Conflict(Conflict {
        seqno: Seqno::new(6),
        reason: AbortReason::ReadConflict {
            key: bytes::Bytes::from_static(b"k"),
            conflicting_seqno: Seqno::new(5),
        },
    });
    commits.certified(txn(2), conflict.clone(), Seqno::new(3), false);
    assert_eq!(done(&mut commits), [(txn(2), Ok(conflict))]);
    commits.visible(Seqno::new(4));
    assert!(done(&mut commits).is_empty(), "5 is not visible yet");
    commits.visible(Seqno::new(6));
    assert_eq!(done(&mut commits), [(txn(1), Ok(committed(5)))]);
    assert_eq!(commits.len(), 0);
}

#[test]
fn leaving_the_primary_component_releases_only_ordered_write_sets() {
    let mut commits = Commits::new(8);
    commits.submitted(txn(1)); // still submitting
    commits.submitted(txn(2));
    commits.ordered(txn(2));
    commits.submitted(txn(3));
    commits.ordered(txn(3));
    commits.certified(txn(3), committed(9), Seqno::new(8), false);
    commits.left_primary();
    assert_eq!(done(&mut commits), [(txn(2), Err(Error::OutcomeUnknown))]);
    commits.certified(txn(1), committed(10), Seqno::new(10), false);
    commits.visible(Seqno::new(9));
    assert_eq!(
        done(&mut commits),
        [(txn(1), Ok(committed(10))), (txn(3), Ok(committed(9)))],
        "the submission settles itself; the certified commit becomes visible"
    );
}

#[test]
fn a_failed_node_releases_every_waiter_once() {
    let mut commits = Commits::new(8);
    commits.submitted(txn(1));
    commits.submitted(txn(2));
    commits.ordered(txn(2));
    commits.submitted(txn(3));
    commits.certified(txn(3), committed(4), Seqno::ZERO, false);
    commits.abandon(&Error::ShutDown);
    let ended: Vec<TxnId> = done(&mut commits).into_iter().map(|(t, _)| t).collect();
    assert_eq!(ended, [txn(1), txn(2), txn(3)]);
    commits.visible(Seqno::new(4));
    commits.not_ordered(txn(1), Error::NotPrimary);
    assert!(done(&mut commits).is_empty(), "each wait ends exactly once");
}

#[test]
fn a_verdict_during_the_submission_settles_it() {
    let mut commits = Commits::new(8);
    commits.submitted(txn(1));
    commits.certified(txn(1), committed(2), Seqno::new(2), false);
    assert_eq!(done(&mut commits), [(txn(1), Ok(committed(2)))]);
    // The retrying submission ends later; nobody is told twice.
    commits.not_ordered(txn(1), Error::NotPrimary);
    commits.maybe_ordered(txn(1));
    commits.ordered(txn(1));
    assert!(done(&mut commits).is_empty());
}

#[test]
fn submissions_that_fail_end_with_their_cause() {
    let mut commits = Commits::new(8);
    commits.submitted(txn(1));
    commits.submitted(txn(2));
    commits.not_ordered(txn(1), Error::NotPrimary);
    commits.maybe_ordered(txn(2));
    assert_eq!(
        done(&mut commits),
        [
            (txn(1), Err(Error::NotPrimary)),
            (txn(2), Err(Error::OutcomeUnknown))
        ]
    );
}

#[test]
fn giving_up_reports_what_is_known() {
    let waited = Duration::from_secs(3);
    let mut commits = Commits::new(8);
    commits.submitted(txn(1));
    commits.ordered(txn(1));
    commits.submitted(txn(2));
    commits.ordered(txn(2));
    commits.certified(txn(2), committed(7), Seqno::new(1), false);
    commits.gave_up(txn(1), waited);
    commits.gave_up(txn(2), waited);
    let timeout = Error::Timeout {
        what: "the node to apply",
        waited,
    };
    assert_eq!(
        done(&mut commits),
        [(txn(1), Err(Error::OutcomeUnknown)), (txn(2), Err(timeout))]
    );
    commits.certified(txn(1), committed(8), Seqno::new(1), false);
    commits.visible(Seqno::new(8));
    assert!(done(&mut commits).is_empty(), "a late verdict finds nobody");
}

#[test]
fn a_forgotten_client_is_dropped_without_a_completion() {
    let mut commits = Commits::new(1);
    commits.submitted(txn(1));
    commits.ordered(txn(1));
    commits.certified(txn(1), committed(3), Seqno::ZERO, false);
    commits.forgotten(txn(1));
    commits.visible(Seqno::new(3));
    assert!(done(&mut commits).is_empty());
    commits.submitted(txn(2)); // its permit is free again
    assert_eq!(commits.len(), 1);
}
