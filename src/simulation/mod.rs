//! Deterministic simulation of whole nodes.
//!
//! A simulator such as turmoil runs every node of a cluster as tasks on one
//! thread, under simulated time and a simulated network (given to the node
//! through [`crate::net::Connector`] and [`crate::net::Listener`]), and
//! replays a run exactly from its seed. That holds only while nothing a node
//! does depends on another thread's timing or on the machine. [`enter`]
//! puts the calling thread into simulation; nodes started on it then
//! - run blocking work (engine reads, writes and fsyncs) inline instead of
//!   on tokio's blocking pool,
//! - do the raft log's file I/O inline instead of on the log's own thread
//!   (a batched sync then happens with the next write, not on a timer:
//!   acknowledgements and outcomes do not change),
//! - take their epoch (the first half of every transaction id) from a
//!   counter instead of the wall clock, and
//! - draw raft's randomized election timeouts from the simulation's seed,
//! - read the clock the simulator installed ([`set_clock`]), each node with
//!   its own skew ([`set_clock_skew`]), instead of the system's.
//!
//! Every node on the thread also reports the certification digest after each
//! position it certifies ([`witness`]); the first node to report a digest
//! different from another's at the same seqno panics, naming both, so a
//! replica that decided one position differently is caught at that
//! position rather than in the data at the end.
//!
//! A node's ordering log can be put on a [`SimDisk`], whose writes a crash
//! loses unless they were synced and which fails writes, syncs and reads
//! on command ([`DiskFault`]); so can its engine's database file, written
//! in place ([`InPlaceFile`], a redb storage backend).
//!
//! Outside simulation every check is one thread-local read.

mod disk;
mod in_place;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::marker::PhantomData;

use crate::certify::CertDigest;
use crate::ids::{NodeId, Seqno};

pub use disk::{DiskFault, SimDisk};
pub use in_place::InPlaceFile;

/// Positions whose digest is remembered, at most; the oldest go first.
const WITNESSED: usize = 1 << 20;

thread_local! {
    static SIMULATION: Cell<Option<State>> = const { Cell::new(None) };
    /// The first digest reported for each seqno, and by which node.
    static DIGESTS: RefCell<BTreeMap<Seqno, (NodeId, CertDigest)>> =
        const { RefCell::new(BTreeMap::new()) };
    /// The checksum of the first output reported for each operation's
    /// seqno, and by which node.
    static OUTPUTS: RefCell<BTreeMap<Seqno, (NodeId, u32)>> =
        const { RefCell::new(BTreeMap::new()) };
    /// The simulated wall clock, in milliseconds since the Unix epoch.
    static CLOCK: Cell<Option<fn() -> u64>> = const { Cell::new(None) };
    /// Each node's clock skew in milliseconds (ahead when positive).
    static SKEWS: RefCell<BTreeMap<NodeId, i64>> = const { RefCell::new(BTreeMap::new()) };
}

#[derive(Clone, Copy, Debug)]
struct State {
    seed: u64,
    draws: u64,
    epochs: u64,
}

/// Keeps the thread in simulation until dropped. Not `Send`: it belongs to
/// the thread it was entered on.
#[derive(Debug)]
#[must_use = "the simulation ends when the guard is dropped"]
pub struct Guard {
    previous: Option<State>,
    _thread: PhantomData<*const ()>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        SIMULATION.with(|s| s.set(self.previous));
        DIGESTS.with(|h| h.borrow_mut().clear());
        OUTPUTS.with(|h| h.borrow_mut().clear());
        CLOCK.with(|c| c.set(None));
        SKEWS.with(|s| s.borrow_mut().clear());
    }
}

/// Puts the calling thread into simulation with `seed`, until the guard is
/// dropped.
pub fn enter(seed: u64) -> Guard {
    let previous = SIMULATION.with(|s| {
        s.replace(Some(State {
            seed,
            draws: 0,
            epochs: 0,
        }))
    });
    DIGESTS.with(|h| h.borrow_mut().clear());
    Guard {
        previous,
        _thread: PhantomData,
    }
}

/// `node` certified everything up to `seqno` with certification digest `digest`.
///
/// # Panics
/// In simulation, when another node reported a different digest at the
/// same seqno: the two replicas decided different histories.
pub(crate) fn witness(node: NodeId, seqno: Seqno, digest: CertDigest) {
    if !active() {
        return;
    }
    let first = DIGESTS.with(|seen| first_report(seen, seqno, node, digest));
    assert!(
        first.1 == digest,
        "replicas diverged at seqno {seqno}: {} certification digest {} there, {node} {digest}",
        first.0,
        first.1
    );
}

/// The first report at `seqno` (`node`'s `value` when it is the first),
/// remembering at most [`WITNESSED`] positions.
fn first_report<T: Copy>(
    seen: &RefCell<BTreeMap<Seqno, (NodeId, T)>>,
    seqno: Seqno,
    node: NodeId,
    value: T,
) -> (NodeId, T) {
    let mut seen = seen.borrow_mut();
    let first = *seen.entry(seqno).or_insert((node, value));
    if seen.len() > WITNESSED {
        seen.pop_first();
    }
    first
}

/// `node` executed the operation at `seqno` with `output`.
///
/// # Panics
/// In simulation, when another node's output for the same seqno differs:
/// execution was not deterministic, so the replicas' data differ too.
pub(crate) fn witness_output(node: NodeId, seqno: Seqno, output: &[u8]) {
    if !active() {
        return;
    }
    let sum = crc32fast::hash(output);
    let first = OUTPUTS.with(|seen| first_report(seen, seqno, node, sum));
    assert!(
        first.1 == sum,
        "replicas executed the operation at seqno {seqno} differently: {} output {:08x}, {node} {sum:08x}",
        first.0,
        first.1
    );
}

/// Makes `now` (milliseconds since the Unix epoch) the wall clock of every
/// node on this thread while the simulation lasts ([`crate::clock::now`]).
pub fn set_clock(now: fn() -> u64) {
    CLOCK.with(|c| c.set(Some(now)));
}

/// Sets `node`'s clock `skew_ms` milliseconds ahead of the simulated clock
/// (behind when negative).
pub fn set_clock_skew(node: NodeId, skew_ms: i64) {
    SKEWS.with(|s| s.borrow_mut().insert(node, skew_ms));
}

/// `node`'s simulated clock; `None` outside simulation or before
/// [`set_clock`].
pub(crate) fn clock(node: NodeId) -> Option<crate::ids::ClusterTime> {
    if !active() {
        return None;
    }
    let now = CLOCK.with(Cell::get)?();
    let skew = SKEWS.with(|s| s.borrow().get(&node).copied().unwrap_or(0));
    Some(crate::ids::ClusterTime::from_millis(
        now.saturating_add_signed(skew),
    ))
}

/// Whether the calling thread is in simulation.
#[must_use]
pub fn active() -> bool {
    SIMULATION.with(|s| s.get().is_some())
}

/// The next seed for a node's random choices, derived from the simulation
/// seed and how many were drawn before; `None` outside simulation.
pub(crate) fn next_seed() -> Option<u64> {
    SIMULATION.with(|s| {
        let mut state = s.get()?;
        state.draws += 1;
        s.set(Some(state));
        Some(splitmix64(state.seed ^ state.draws.wrapping_mul(GOLDEN)))
    })
}

/// The next node epoch (distinct for every node start); `None` outside
/// simulation.
pub(crate) fn next_epoch() -> Option<u64> {
    SIMULATION.with(|s| {
        let mut state = s.get()?;
        state.epochs += 1;
        s.set(Some(state));
        Some(state.epochs)
    })
}

const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// SplitMix64's output function: a bijection that spreads every input bit.
pub(crate) fn splitmix64(seed: u64) -> u64 {
    let z = seed.wrapping_add(GOLDEN);
    let z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_simulation_nothing_is_drawn() {
        assert!(!active());
        assert_eq!(next_seed(), None);
        assert_eq!(next_epoch(), None);
    }

    #[test]
    fn draws_repeat_for_the_same_seed_and_end_with_the_guard() {
        let draw = |seed| {
            let _guard = enter(seed);
            assert!(active());
            let seeds: Vec<_> = (0..4).filter_map(|_| next_seed()).collect();
            let epochs: Vec<_> = (0..3).filter_map(|_| next_epoch()).collect();
            (seeds, epochs)
        };
        let (a, epochs) = draw(7);
        assert_eq!(draw(7).0, a);
        assert_ne!(draw(8).0, a);
        assert_eq!(epochs, vec![1, 2, 3]);
        witness(NodeId::new(1), Seqno::new(1), CertDigest::EMPTY);
        let distinct: std::collections::BTreeSet<_> = a.iter().collect();
        assert_eq!(distinct.len(), a.len());
        assert!(!active());
    }

    #[test]
    fn a_digest_that_differs_at_one_seqno_is_caught_there() {
        let _guard = enter(1);
        let a = CertDigest::EMPTY.skipped(Seqno::new(1));
        let b = a.skipped(Seqno::new(2));
        witness(NodeId::new(1), Seqno::new(1), a);
        witness(NodeId::new(2), Seqno::new(1), a);
        let diverged = std::panic::catch_unwind(|| witness(NodeId::new(3), Seqno::new(1), b));
        let message = diverged.unwrap_err();
        let message = message.downcast_ref::<String>().unwrap();
        assert!(message.contains("diverged at seqno 1"), "{message}");
        assert!(
            message.contains("node-1") && message.contains("node-3"),
            "{message}"
        );
    }

    #[test]
    fn outside_simulation_nothing_is_witnessed() {
        witness(NodeId::new(1), Seqno::new(1), CertDigest::EMPTY);
        witness(
            NodeId::new(2),
            Seqno::new(1),
            CertDigest::EMPTY.skipped(Seqno::new(1)),
        );
    }
}
