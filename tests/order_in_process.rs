//! The in-process total order: one sequence for every member, membership
//! changes that take a position, members outside the primary component cut
//! at the position where they left, flow control, and retention limits.
//!
//! Futures are polled by hand with a no-op waker, so "blocked" is observed
//! directly (the future is pending) instead of being guessed with a timer.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use certus::order::{
    ConsumerState, Entry, Event, EventStream, InProcessConfig, InProcessOrder, OrderError,
    TotalOrder, View,
};
use certus::{ClusterTime, NodeId, Seqno};

fn ids(raw: &[u64]) -> Vec<NodeId> {
    raw.iter().copied().map(NodeId::new).collect()
}

/// The time every entry is stamped with, so events compare exactly.
const TIME: ClusterTime = ClusterTime::from_millis(1_700_000_000_000);

fn cluster(config: InProcessConfig) -> InProcessOrder {
    let order = InProcessOrder::new(config, ids(&[1, 2, 3]));
    order.set_time(Some(TIME));
    order
}

/// Polls `future` once; `None` when it is pending.
fn poll_once<F: Future>(future: F) -> Option<F::Output> {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => Some(output),
        Poll::Pending => None,
    }
}

/// Every event the stream has ready now, stopping at the first pending poll.
fn ready_events(stream: &mut dyn EventStream) -> Vec<Event> {
    let mut events = Vec::new();
    while let Some(event) = poll_once(stream.next()) {
        events.push(event.unwrap());
    }
    events
}

fn ordered(seqno: u64, entry: Entry, stamp: ClusterTime) -> Event {
    Event::Ordered {
        seqno: Seqno::new(seqno),
        entry,
        stamp,
    }
}

fn barrier(seqno: u64) -> Event {
    ordered(seqno, Entry::Barrier, ClusterTime::ZERO)
}

fn write(seqno: u64, bytes: &'static [u8]) -> Event {
    ordered(seqno, Entry::Submitted(Bytes::from_static(bytes)), TIME)
}

fn view(id: u64, members: &[u64], primary: bool, seqno: u64) -> Event {
    Event::View(View {
        id,
        members: ids(members),
        primary,
        seqno: Seqno::new(seqno),
    })
}

fn submit(order: &InProcessOrder, node: u64, bytes: &'static [u8]) -> Result<(), OrderError> {
    let endpoint = order.endpoint(NodeId::new(node)).unwrap();
    poll_once(endpoint.submit(Bytes::from_static(bytes))).expect("submit blocked")
}

fn subscribe(order: &InProcessOrder, node: u64, after: u64) -> Box<dyn EventStream> {
    order
        .endpoint(NodeId::new(node))
        .unwrap()
        .subscribe(Seqno::new(after))
        .unwrap()
}

#[test]
fn every_member_receives_the_same_positions_in_the_same_order() {
    let order = cluster(InProcessConfig::default());
    let mut streams: Vec<_> = [1, 2, 3].iter().map(|n| subscribe(&order, *n, 0)).collect();
    submit(&order, 2, b"a").unwrap();
    submit(&order, 3, b"b").unwrap();
    submit(&order, 1, b"c").unwrap();
    let expected = vec![
        view(1, &[1, 2, 3], true, 1),
        barrier(1),
        write(2, b"a"),
        write(3, b"b"),
        write(4, b"c"),
    ];
    for stream in &mut streams {
        assert_eq!(ready_events(stream.as_mut()), expected);
    }
    assert_eq!(order.last_seqno(), Seqno::new(4));
}

#[test]
fn an_isolated_member_reads_to_where_it_left_then_catches_up_after_healing() {
    let order = cluster(InProcessConfig::default());
    let mut isolated = subscribe(&order, 3, 0);
    submit(&order, 1, b"a").unwrap();
    order.isolate(NodeId::new(3)).unwrap();
    submit(&order, 2, b"b").unwrap();
    // It keeps what was ordered while it belonged, then learns it left;
    // nothing ordered after that reaches it.
    assert_eq!(
        ready_events(isolated.as_mut()),
        vec![
            view(1, &[1, 2, 3], true, 1),
            barrier(1),
            write(2, b"a"),
            view(2, &[3], false, 2)
        ]
    );
    let endpoint = order.endpoint(NodeId::new(3)).unwrap();
    assert_eq!(
        poll_once(endpoint.submit(Bytes::from_static(b"x"))),
        Some(Err(OrderError::NotPrimary))
    );
    assert_eq!(
        poll_once(endpoint.sync_point()),
        Some(Err(OrderError::NotPrimary))
    );

    order.heal(NodeId::new(3)).unwrap();
    assert_eq!(
        ready_events(isolated.as_mut()),
        vec![
            view(2, &[1, 2], true, 3),
            barrier(3),
            write(4, b"b"),
            view(3, &[1, 2, 3], true, 5),
            barrier(5),
        ]
    );
    assert_eq!(poll_once(endpoint.sync_point()), Some(Ok(Seqno::new(5))));
}

#[test]
fn a_member_left_in_a_minority_stops_at_the_position_where_quorum_was_lost() {
    let order = cluster(InProcessConfig::default());
    let mut alone = subscribe(&order, 1, 0);
    submit(&order, 1, b"a").unwrap();
    order.isolate(NodeId::new(2)).unwrap();
    submit(&order, 1, b"b").unwrap();
    order.isolate(NodeId::new(3)).unwrap();
    assert_eq!(submit(&order, 1, b"lost"), Err(OrderError::NotPrimary));
    assert_eq!(
        ready_events(alone.as_mut()),
        vec![
            view(1, &[1, 2, 3], true, 1),
            barrier(1),
            write(2, b"a"),
            view(2, &[1, 3], true, 3),
            barrier(3),
            write(4, b"b"),
            view(3, &[1], false, 4),
        ]
    );
    order.heal(NodeId::new(2)).unwrap();
    submit(&order, 2, b"c").unwrap();
    assert_eq!(
        ready_events(alone.as_mut()),
        vec![view(4, &[1, 2], true, 5), barrier(5), write(6, b"c")]
    );
}

#[test]
fn flow_control_holds_submissions_while_a_connected_member_lags() {
    let config = InProcessConfig {
        fc_limit: 3,
        ..InProcessConfig::default()
    };
    let order = cluster(config);
    let mut laggard = subscribe(&order, 2, 0);
    order
        .endpoint(NodeId::new(2))
        .unwrap()
        .set_consumer_state(ConsumerState::Synced);
    submit(&order, 1, b"a").unwrap();
    submit(&order, 1, b"b").unwrap();
    // The laggard is now 3 positions behind: the next submission waits.
    let endpoint = order.endpoint(NodeId::new(1)).unwrap();
    let mut held = endpoint.submit(Bytes::from_static(b"c"));
    let mut context = Context::from_waker(Waker::noop());
    assert!(held.as_mut().poll(&mut context).is_pending());
    assert_eq!(order.last_seqno(), Seqno::new(3));
    // Reading one position brings it under the limit and releases it.
    // A view announcement is not a position: the laggard is still behind.
    assert_eq!(
        poll_once(laggard.next()).unwrap().unwrap(),
        view(1, &[1, 2, 3], true, 1)
    );
    assert!(held.as_mut().poll(&mut context).is_pending());
    assert_eq!(poll_once(laggard.next()).unwrap().unwrap(), barrier(1));
    assert_eq!(held.as_mut().poll(&mut context), Poll::Ready(Ok(())));
    assert_eq!(order.last_seqno(), Seqno::new(4));
    // A member outside the primary component does not hold the others back.
    let mut held = endpoint.submit(Bytes::from_static(b"d"));
    assert!(held.as_mut().poll(&mut context).is_pending());
    order.isolate(NodeId::new(2)).unwrap();
    assert_eq!(held.as_mut().poll(&mut context), Poll::Ready(Ok(())));
}

/// Galera's rule: a member that is joining, catching up, receiving a state
/// transfer or failed never holds the others back, however far behind.
#[test]
fn only_a_synced_member_holds_submissions_back() {
    let config = InProcessConfig {
        fc_limit: 2,
        ..InProcessConfig::default()
    };
    let order = cluster(config);
    let _laggard = subscribe(&order, 2, 0);
    for frame in [b"a", b"b", b"c", b"d"] {
        submit(&order, 1, frame).unwrap();
    }
    let laggard = order.endpoint(NodeId::new(2)).unwrap();
    laggard.set_consumer_state(ConsumerState::Synced);
    let endpoint = order.endpoint(NodeId::new(1)).unwrap();
    let mut held = endpoint.submit(Bytes::from_static(b"e"));
    let mut context = Context::from_waker(Waker::noop());
    assert!(held.as_mut().poll(&mut context).is_pending());
    // It failed, say: it stops being synced and releases the others.
    laggard.set_consumer_state(ConsumerState::Stopped);
    assert_eq!(held.as_mut().poll(&mut context), Poll::Ready(Ok(())));
    assert_eq!(order.last_seqno(), Seqno::new(6));
}

#[test]
fn a_dropped_subscription_does_not_hold_flow_control() {
    let config = InProcessConfig {
        fc_limit: 2,
        ..InProcessConfig::default()
    };
    let order = cluster(config);
    let laggard = subscribe(&order, 3, 0);
    order
        .endpoint(NodeId::new(3))
        .unwrap()
        .set_consumer_state(ConsumerState::Synced);
    submit(&order, 1, b"a").unwrap();
    let endpoint = order.endpoint(NodeId::new(1)).unwrap();
    let mut held = endpoint.submit(Bytes::from_static(b"b"));
    let mut context = Context::from_waker(Waker::noop());
    assert!(held.as_mut().poll(&mut context).is_pending());
    drop(laggard);
    assert_eq!(held.as_mut().poll(&mut context), Poll::Ready(Ok(())));
}

#[test]
fn subscriptions_outside_the_retained_log_are_refused() {
    let config = InProcessConfig {
        retention: 2,
        ..InProcessConfig::default()
    };
    let order = cluster(config);
    for frame in [b"a", b"b", b"c"] {
        submit(&order, 1, frame).unwrap();
    }
    let endpoint = order.endpoint(NodeId::new(2)).unwrap();
    assert_eq!(
        endpoint.subscribe(Seqno::new(1)).err(),
        Some(OrderError::StateTransferRequired {
            requested: Seqno::new(1),
            first_retained: Seqno::new(3),
        })
    );
    assert_eq!(
        endpoint.subscribe(Seqno::new(5)).err(),
        Some(OrderError::UnknownPosition {
            requested: Seqno::new(5),
            last: Seqno::new(4)
        })
    );
    // The current view's position is behind the subscription point, so it is
    // announced first.
    let mut stream = endpoint.subscribe(Seqno::new(2)).unwrap();
    assert_eq!(
        ready_events(stream.as_mut()),
        vec![view(1, &[1, 2, 3], true, 1), write(3, b"b"), write(4, b"c")]
    );
}

#[test]
fn a_member_that_falls_out_of_the_log_is_told_to_transfer_state() {
    let config = InProcessConfig {
        retention: 2,
        fc_limit: 100,
        ..InProcessConfig::default()
    };
    let order = cluster(config);
    let mut slow = subscribe(&order, 3, 0);
    for frame in [b"a", b"b", b"c"] {
        submit(&order, 1, frame).unwrap();
    }
    assert_eq!(
        poll_once(slow.next()).unwrap(),
        Err(OrderError::StateTransferRequired {
            requested: Seqno::ZERO,
            first_retained: Seqno::new(3),
        })
    );
}

#[test]
fn a_new_subscription_closes_the_previous_one() {
    let order = cluster(InProcessConfig::default());
    let mut first = subscribe(&order, 1, 0);
    let mut second = subscribe(&order, 1, 1);
    assert_eq!(poll_once(first.next()), Some(Err(OrderError::Closed)));
    assert_eq!(
        ready_events(second.as_mut()),
        vec![view(1, &[1, 2, 3], true, 1)]
    );
}

#[test]
fn oversized_entries_and_strangers_are_refused() {
    let config = InProcessConfig {
        max_entry_bytes: 4,
        ..InProcessConfig::default()
    };
    let order = cluster(config);
    assert_eq!(
        submit(&order, 1, b"12345"),
        Err(OrderError::TooLarge { len: 5, max: 4 })
    );
    assert_eq!(order.last_seqno(), Seqno::new(1));
    let stranger = NodeId::new(9);
    assert_eq!(
        order.endpoint(stranger).err(),
        Some(OrderError::UnknownMember { node: stranger })
    );
    assert_eq!(
        order.isolate(stranger),
        Err(OrderError::UnknownMember { node: stranger })
    );
}
