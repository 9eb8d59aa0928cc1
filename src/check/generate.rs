//! Generated list-append histories, for benchmarks and for testing the
//! checker itself: transactions from concurrent processes, each applied
//! atomically to a model at its completion, so the history is strictly
//! serializable by construction.

use std::collections::BTreeMap;

use super::history::{Event, EventType, History, Mop};

/// Shape of a generated history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Shape {
    /// Transactions in all.
    pub transactions: usize,
    /// Concurrent processes.
    pub processes: u64,
    /// Keys in use at once.
    pub keys: u64,
    /// Appends a key takes before a fresh key replaces it (Jepsen's
    /// `max-writes-per-key`), so lists stay short.
    pub max_writes_per_key: u32,
    /// Micro-operations per transaction, at most.
    pub max_mops: usize,
    /// Seed of the deterministic generator.
    pub seed: u64,
}

impl Shape {
    /// `transactions` over 10 processes and 100 keys, up to 4 micro-ops each.
    #[must_use]
    pub fn new(transactions: usize, seed: u64) -> Shape {
        Shape {
            transactions,
            processes: 10,
            keys: 100,
            max_writes_per_key: 32,
            max_mops: 4,
            seed,
        }
    }
}

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % bound.max(1)
    }
}

/// A strictly serializable list-append history of `shape`.
///
/// # Panics
/// Never for a valid shape: the events it builds always pair up.
#[must_use]
pub fn serializable(shape: Shape) -> History {
    let mut rng = Rng(shape.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut state: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut next_element = 0_i64;
    let mut open: BTreeMap<u64, Vec<Mop>> = BTreeMap::new();
    let mut events = Vec::new();
    let mut started = 0;
    let mut time = 0;
    // Slot → (key id, appends so far); a full key makes way for a new one.
    let mut active: Vec<(u64, u32)> = (0..shape.keys).map(|k| (k, 0)).collect();
    let mut next_key = shape.keys;
    while started < shape.transactions || !open.is_empty() {
        time += 1;
        let process = rng.below(shape.processes);
        if let Some(mops) = open.remove(&process) {
            // Complete: apply atomically now, filling in the reads.
            let done = mops
                .into_iter()
                .map(|mop| match mop {
                    Mop::Append { key, element } => {
                        state.entry(key.clone()).or_default().push(element);
                        Mop::Append { key, element }
                    }
                    Mop::Read { key, .. } => {
                        let elements = Some(state.get(&key).cloned().unwrap_or_default());
                        Mop::Read { key, elements }
                    }
                    other => other,
                })
                .collect();
            events.push(Event::new(process, EventType::Ok, time, done));
        } else if started < shape.transactions {
            let count = 1 + rng.below(shape.max_mops as u64) as usize;
            let mops: Vec<Mop> = (0..count)
                .map(|_| {
                    let slot = &mut active[rng.below(shape.keys) as usize];
                    let key = slot.0.to_string();
                    if rng.below(2) == 0 {
                        next_element += 1;
                        slot.1 += 1;
                        if slot.1 >= shape.max_writes_per_key {
                            *slot = (next_key, 0);
                            next_key += 1;
                        }
                        Mop::Append {
                            key,
                            element: next_element,
                        }
                    } else {
                        Mop::Read {
                            key,
                            elements: None,
                        }
                    }
                })
                .collect();
            events.push(Event::new(process, EventType::Invoke, time, mops.clone()));
            open.insert(process, mops);
            started += 1;
        }
    }
    History::new(events).expect("generated events pair up")
}
