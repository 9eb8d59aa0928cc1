//! Property tests of the sans-IO apply scheduler: a write-set never starts
//! before its dependencies finished, the visible watermark moves strictly
//! forward over finished positions only, bounds hold, and everything admitted
//! becomes visible.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

use std::collections::BTreeSet;

use certus::Seqno;
use certus::apply::{ApplyScheduler, Job};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Spec {
    Skip,
    /// Depends on the position this many back (0 = nothing).
    Apply(u64),
}

fn spec() -> impl Strategy<Value = Spec> {
    prop_oneof![1 => Just(Spec::Skip), 4 => (0..6u64).prop_map(Spec::Apply)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn scheduling_respects_dependencies_and_order(
        workers in 1..5usize,
        capacity in 1..8usize,
        specs in prop::collection::vec(spec(), 1..60),
        choices in prop::collection::vec(any::<u8>(), 400),
    ) {
        let mut scheduler = ApplyScheduler::new(workers, capacity.max(workers), Seqno::ZERO);
        let mut deps = Vec::new();
        let mut applying: Vec<Seqno> = Vec::new();
        let mut finished: BTreeSet<Seqno> = BTreeSet::new();
        let mut visible = Seqno::ZERO;
        let mut choices = choices.into_iter().cycle();
        let total = specs.len() as u64;
        for _ in 0..10_000 {
            if visible.get() == total {
                break;
            }
            let choice = choices.next().unwrap_or(0);
            let next = scheduler.last_admitted().next();
            if choice % 3 == 0 && next.get() <= total && scheduler.has_room() {
                let job = match specs[next.get() as usize - 1] {
                    Spec::Skip => { finished.insert(next); Job::Skip }
                    Spec::Apply(0) => Job::Apply { depends_on: Seqno::ZERO },
                    Spec::Apply(back) => Job::Apply { depends_on: next.saturating_sub(back) },
                };
                let depends_on = match job { Job::Apply { depends_on } => depends_on, Job::Skip => Seqno::ZERO };
                deps.push(depends_on);
                scheduler.admit(next, job);
            } else if choice % 3 == 1 && !applying.is_empty() {
                let done = applying.swap_remove(usize::from(choice) % applying.len());
                finished.insert(done);
                scheduler.applied(done);
            }
            while let Some(started) = scheduler.next_apply() {
                let depends_on = deps[started.get() as usize - 1];
                let missing = (1..=depends_on.get()).map(Seqno::new).find(|s| !finished.contains(s));
                prop_assert!(missing.is_none(), "{started} started before {missing:?} finished");
                applying.push(started);
            }
            if let Some(upto) = scheduler.next_visible() {
                prop_assert!(upto > visible);
                let unfinished = (visible.get() + 1..=upto.get()).map(Seqno::new).find(|s| !finished.contains(s));
                prop_assert!(unfinished.is_none(), "visible to {upto} covers unfinished {unfinished:?}");
                scheduler.visible(upto);
                visible = upto;
            }
            prop_assert!(applying.len() <= workers);
            scheduler.check_invariants();
        }
        prop_assert_eq!(visible.get(), total, "not everything became visible");
    }
}

#[test]
#[should_panic(expected = "apply queue over capacity")]
fn admission_beyond_capacity_is_a_bug() {
    let mut scheduler = ApplyScheduler::new(1, 1, Seqno::ZERO);
    scheduler.admit(
        Seqno::new(1),
        Job::Apply {
            depends_on: Seqno::ZERO,
        },
    );
    scheduler.admit(Seqno::new(2), Job::Skip);
}

#[test]
fn one_visibility_request_is_in_flight_and_the_next_covers_what_was_applied_meanwhile() {
    let mut scheduler = ApplyScheduler::new(4, 8, Seqno::ZERO);
    for seqno in 1..=3 {
        let job = Job::Apply {
            depends_on: Seqno::ZERO,
        };
        scheduler.admit(Seqno::new(seqno), job);
    }
    let started: Vec<Seqno> = std::iter::from_fn(|| scheduler.next_apply()).collect();
    assert_eq!(started.len(), 3);
    scheduler.applied(Seqno::new(1));
    assert_eq!(scheduler.next_visible(), Some(Seqno::new(1)));
    scheduler.applied(Seqno::new(2));
    scheduler.applied(Seqno::new(3));
    assert_eq!(
        scheduler.next_visible(),
        None,
        "a request is still in flight"
    );
    scheduler.visible(Seqno::new(1));
    assert_eq!(scheduler.next_visible(), Some(Seqno::new(3)));
    scheduler.visible(Seqno::new(3));
    assert_eq!(scheduler.next_visible(), None);
    scheduler.check_invariants();
}
