//! Sans-IO tests of the node core: events in, commands out, no runtime.

use bytes::Bytes;

use super::*;
use crate::certify::CertConfig;
use crate::ids::{NodeId, Seqno, TxnId};
use crate::node::state::NodeState;
use crate::order::{Entry, Event, View};
use crate::writeset::{Isolation, WriteSetBuilder};

const ME: NodeId = NodeId::new(1);

fn config(workers: usize) -> CoreConfig {
    CoreConfig {
        node_id: ME,
        apply_slots: workers,
        apply_queue: 16,
        max_write_set_bytes: 1 << 20,
        checkpoint_interval: 4,
        checkpoint_bytes: u64::MAX,
        apply_queue_bytes: usize::MAX,
        max_inflight_commits: 16,
        protocol: crate::protocol::Protocol::CURRENT,
    }
}

fn core(workers: usize) -> NodeCore {
    NodeCore::new(
        config(workers),
        Certifier::new(CertConfig::default()),
        Seqno::ZERO,
    )
}

fn frame(origin: u64, counter: u64, read_view: u64, key: &str) -> Entry {
    let mut b = WriteSetBuilder::new(
        NodeId::new(origin),
        TxnId::new(0, counter),
        Seqno::new(read_view),
        Isolation::Snapshot,
    );
    b.put(
        Bytes::copy_from_slice(key.as_bytes()),
        Bytes::from_static(b"v"),
    );
    Entry::Submitted(b.build().encode(1 << 20).unwrap())
}

fn ordered(seqno: u64, entry: Entry) -> Event {
    Event::Ordered {
        seqno: Seqno::new(seqno),
        entry,
        stamp: crate::ids::ClusterTime::ZERO,
    }
}

fn drain(core: &mut NodeCore) -> Vec<Command> {
    std::iter::from_fn(|| core.poll_command()).collect()
}

/// Drains the commands, reporting every commit as done as the runtime would,
/// until the core has nothing more to say. The core releases one commit at
/// a time.
fn drain_committing(core: &mut NodeCore) -> Vec<Command> {
    let mut all = Vec::new();
    loop {
        let out = drain(core);
        if out.is_empty() {
            return all;
        }
        let visible = visibles(&out);
        assert!(
            visible.len() <= 1,
            "more than one visibility request in flight: {visible:?}"
        );
        all.extend(out);
        for upto in visible {
            core.handle_visible(Seqno::new(upto));
        }
    }
}

fn applies(commands: &[Command]) -> Vec<u64> {
    commands
        .iter()
        .filter_map(|c| match c {
            Command::Apply { seqno, .. } => Some(seqno.get()),
            _ => None,
        })
        .collect()
}

fn visibles(commands: &[Command]) -> Vec<u64> {
    commands
        .iter()
        .filter_map(|c| match c {
            Command::MakeVisible { upto, .. } => Some(upto.get()),
            _ => None,
        })
        .collect()
}

#[test]
fn dependent_write_sets_wait_and_commits_stay_in_order() {
    let mut core = core(4);
    core.handle_event(ordered(1, frame(2, 1, 0, "a")));
    core.handle_event(ordered(2, frame(2, 2, 1, "a"))); // depends on 1
    core.handle_event(ordered(3, frame(3, 1, 0, "b"))); // independent
    let out = drain(&mut core);
    assert_eq!(applies(&out), [1, 3], "seqno 2 must wait for 1");
    core.handle_applied(Seqno::new(3), Ok(None));
    let out = drain(&mut core);
    assert!(
        visibles(&out).is_empty(),
        "3 finished first but 1 is still applying"
    );
    core.handle_applied(Seqno::new(1), Ok(None));
    let out = drain(&mut core);
    assert_eq!(applies(&out), [2]);
    assert_eq!(visibles(&out), [1]);
    core.handle_visible(Seqno::new(1));
    core.handle_applied(Seqno::new(2), Ok(None));
    let out = drain(&mut core);
    assert_eq!(visibles(&out), [3]);
    core.handle_visible(Seqno::new(3));
    let status = core.status();
    assert_eq!(
        (status.last_applied, status.last_visible),
        (Seqno::new(3), Seqno::new(3))
    );
}

#[test]
fn workers_bound_the_applies_in_flight() {
    let mut core = core(2);
    for s in 1..=5 {
        core.handle_event(ordered(s, frame(2, s, s - 1, &format!("k{s}"))));
    }
    assert_eq!(applies(&drain(&mut core)), [1, 2]);
    core.handle_applied(Seqno::new(2), Ok(None));
    assert_eq!(applies(&drain(&mut core)), [3]);
}

/// The completions of write-sets, which carry no output.
fn completions(core: &mut NodeCore) -> Vec<(u64, Result<CommitOutcome, Error>)> {
    core.take_completions()
        .map(|(txn_id, completion)| {
            let outcome = completion.map(|settled| {
                assert_eq!(settled.output, None, "a write-set has no output");
                settled.outcome
            });
            (txn_id.counter, outcome)
        })
        .collect()
}

/// Registers local transaction `counter` and reports its submission ordered.
fn submit(core: &mut NodeCore, counter: u64) {
    core.handle_submitted(TxnId::new(0, counter));
    core.handle_submission_ended(TxnId::new(0, counter), Ok(()));
}

#[test]
fn a_local_abort_ends_at_certification_and_a_commit_once_visible() {
    let mut core = core(4);
    submit(&mut core, 7);
    submit(&mut core, 8);
    core.handle_event(ordered(1, frame(1, 7, 0, "k")));
    core.handle_event(ordered(2, frame(1, 8, 0, "k"))); // conflicts with 1
    core.handle_event(ordered(3, frame(1, 7, 0, "k"))); // duplicate of 1
    let out = drain(&mut core);
    let ended = completions(&mut core);
    assert!(
        matches!(&ended[..], [(8, Ok(CommitOutcome::Conflict(_)))]),
        "{ended:?}"
    );
    assert_eq!(applies(&out), [1]);
    core.handle_applied(Seqno::new(1), Ok(None));
    // 2 and 3 have nothing to apply: one request covers all three.
    assert_eq!(visibles(&drain(&mut core)), [3]);
    assert!(
        completions(&mut core).is_empty(),
        "applied, not visible yet"
    );
    core.handle_visible(Seqno::new(3));
    let committed = Ok(CommitOutcome::Committed {
        seqno: Seqno::new(1),
    });
    assert_eq!(completions(&mut core), [(7, committed)]);
    assert_eq!(core.status().local_cert_failures, 1);
    assert_eq!(core.commits_in_flight(), 0);
}

#[test]
fn a_verdict_for_a_commit_nobody_waits_for_is_dropped() {
    let mut core = core(4);
    core.handle_event(ordered(1, frame(1, 7, 0, "k")));
    drain_committing(&mut core);
    assert!(completions(&mut core).is_empty());
    assert_eq!(core.status().local_commits, 1);
}

#[test]
fn barriers_and_malformed_entries_take_positions_without_applies() {
    let mut core = core(4);
    core.handle_event(ordered(1, Entry::Barrier));
    core.handle_event(ordered(
        2,
        Entry::Submitted(Bytes::from_static(b"not a frame")),
    ));
    let out = drain_committing(&mut core);
    assert!(applies(&out).is_empty());
    assert_eq!(visibles(&out), [1, 2]);
    assert_eq!(core.status().malformed, 1);
}

/// `entry`'s frame renumbered to format `version`, checksum fixed: what
/// a node of a newer protocol writes.
fn renumbered(entry: Entry, version: u16) -> Entry {
    let Entry::Submitted(frame) = entry else {
        panic!("not a frame")
    };
    let mut frame = frame.to_vec();
    frame[4..6].copy_from_slice(&version.to_be_bytes());
    frame[12..16].fill(0);
    let crc = crc32fast::hash(&frame);
    frame[12..16].copy_from_slice(&crc.to_be_bytes());
    Entry::Submitted(Bytes::from(frame))
}

#[test]
fn a_format_newer_than_the_node_reads_fails_it_instead_of_being_skipped() {
    let mut core = core(4);
    core.handle_event(ordered(1, frame(2, 1, 0, "a")));
    drain_committing(&mut core);
    let newest = crate::frame::FrameKind::WriteSet.newest_version();
    core.handle_event(ordered(2, renumbered(frame(2, 2, 1, "b"), newest + 1)));
    assert_eq!(core.status().state, NodeState::Failed);
    assert_eq!(core.status().malformed, 0, "the position was skipped");
    let failure = core.failure.clone().unwrap().to_string();
    assert!(
        failure.starts_with("seqno 2 holds a WriteSet in format"),
        "{failure}"
    );
    assert!(!core.wants_delivery());
}

#[test]
fn write_set_bytes_waiting_to_be_visible_hold_back_delivery() {
    let one = match frame(2, 1, 0, "a") {
        Entry::Submitted(frame) => frame.len(),
        Entry::Barrier => unreachable!(),
    };
    let mut core = NodeCore::new(
        CoreConfig {
            apply_queue_bytes: one + 1,
            ..config(4)
        },
        Certifier::new(CertConfig::default()),
        Seqno::ZERO,
    );
    core.handle_event(ordered(1, frame(2, 1, 0, "a")));
    assert!(core.wants_delivery(), "one write-set is under the bound");
    core.handle_event(ordered(2, frame(2, 2, 0, "b")));
    assert!(!core.wants_delivery(), "two are over it");
    let out = drain(&mut core);
    for seqno in applies(&out) {
        core.handle_applied(Seqno::new(seqno), Ok(None));
    }
    drain_committing(&mut core);
    assert!(
        core.wants_delivery(),
        "visible write-sets are no longer held"
    );
}

#[test]
fn a_checkpoint_is_taken_after_enough_bytes_before_enough_positions() {
    let mut core = NodeCore::new(
        CoreConfig {
            checkpoint_interval: 1_000,
            checkpoint_bytes: 1,
            ..config(4)
        },
        Certifier::new(CertConfig::default()),
        Seqno::ZERO,
    );
    core.handle_event(ordered(1, frame(2, 1, 0, "a")));
    let out = drain(&mut core);
    for seqno in applies(&out) {
        core.handle_applied(Seqno::new(seqno), Ok(None));
    }
    let out = drain(&mut core);
    let checkpointed = out.iter().any(|c| {
        matches!(c, Command::MakeVisible { upto, checkpoint: Some(cp) }
            if upto.get() == 1 && cp.seqno().get() == 1)
    });
    assert!(checkpointed, "{out:?}");
}

#[test]
fn leaving_the_primary_component_abandons_waiters() {
    let mut core = core(4);
    let members = vec![NodeId::new(1), NodeId::new(2), NodeId::new(3)];
    core.handle_event(Event::View(View {
        id: 1,
        members,
        primary: true,
        seqno: Seqno::ZERO,
    }));
    assert_eq!(core.status().state, NodeState::Synced);
    drain(&mut core);
    let alone = View {
        id: 2,
        members: vec![ME],
        primary: false,
        seqno: Seqno::ZERO,
    };
    submit(&mut core, 1);
    core.handle_submitted(TxnId::new(0, 2)); // still submitting
    core.handle_event(Event::View(alone));
    assert!(drain(&mut core).is_empty());
    assert_eq!(completions(&mut core), [(1, Err(Error::OutcomeUnknown))]);
    assert_eq!(core.status().state, NodeState::NonPrimary);
    core.handle_submission_ended(TxnId::new(0, 2), Err(OrderError::NotPrimary));
    assert_eq!(completions(&mut core), [(2, Err(Error::NotPrimary))]);
}

#[test]
fn apply_failure_is_fatal() {
    let mut core = core(4);
    submit(&mut core, 9);
    core.handle_event(ordered(1, frame(2, 1, 0, "a")));
    drain(&mut core);
    core.handle_applied(
        Seqno::new(1),
        Err(ApplyError::Storage(certus_cause("disk gone"))),
    );
    assert!(drain(&mut core).is_empty());
    assert!(matches!(
        &completions(&mut core)[..],
        [(9, Err(Error::Failed(_)))]
    ));
    assert_eq!(core.status().state, NodeState::Failed);
    assert!(!core.wants_delivery());
}

#[test]
fn recovery_recertifies_without_applying_then_resumes() {
    // The engine applied up to 3; the certifier's checkpoint is from 1.
    let mut live = Certifier::new(CertConfig::default());
    let first = frame(2, 1, 0, "a");
    let Entry::Submitted(bytes) = &first else {
        unreachable!()
    };
    live.certify(Seqno::new(1), &WriteSet::decode(bytes, 1 << 20).unwrap());
    let restored = Certifier::restore(CertConfig::default(), &live.checkpoint().unwrap()).unwrap();
    let mut core = NodeCore::new(config(4), restored, Seqno::new(3));
    assert!(core.status().recovering);
    core.handle_event(ordered(2, frame(2, 2, 1, "a")));
    core.handle_event(ordered(3, frame(3, 1, 0, "a"))); // conflicts with 2: rebuilt index knows
    assert!(
        drain(&mut core).is_empty(),
        "replayed positions are not applied again"
    );
    assert!(!core.status().recovering);
    assert_eq!(core.replay_upto(), Seqno::new(3));
    core.handle_event(ordered(4, frame(3, 2, 1, "a"))); // conflicts with 2 as well
    core.handle_event(ordered(5, frame(3, 3, 3, "a"))); // saw 2: commits
    let out = drain(&mut core);
    assert_eq!(applies(&out), [5]);
    assert_eq!(core.status().cert.aborted, 2);
}

#[test]
fn checkpoints_ride_with_the_first_visibility_request_that_covers_them() {
    let mut core = core(4);
    for s in 1..=4 {
        core.handle_event(ordered(s, Entry::Barrier));
    }
    let out = drain_committing(&mut core);
    let with_checkpoint: Vec<_> = out
        .iter()
        .filter_map(|c| match c {
            Command::MakeVisible {
                upto,
                checkpoint: Some(cp),
            } => Some((upto.get(), cp.seqno().get())),
            _ => None,
        })
        .collect();
    assert_eq!(with_checkpoint, [(4, 4)]);
}

fn certus_cause(message: &str) -> crate::Cause {
    crate::Cause::new(std::io::Error::other(message.to_string()))
}
