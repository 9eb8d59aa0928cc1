//! Local commits in flight: the rule that ends each client's wait, from
//! submission to visibility. Pure: the core feeds it events and takes the
//! completions it produces; the runtime hands them to the clients.
//!
//! ```text
//!   submitted ──▶ Submitting ──ordered──▶ Ordered ──certified: commit──▶ Certified(s)
//!                  │  │                      │  └─certified: abort──▶ done (Conflict)
//!                  │  └─not ordered──▶ done  │                            │
//!                  │    (the error)          └─left primary──▶ done       └─visible ≥ s──▶ done
//!                  └─maybe ordered──▶ done (OutcomeUnknown)                 (Committed)
//! ```
//!
//! A certified verdict may arrive while the submission is still in
//! `Submitting` (an attempt got in, its answer was lost): it settles the
//! commit all the same. A client that stops waiting is `gave_up`; one whose
//! task is gone is `forgotten`. Each entry ends exactly once.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;

use super::error::Error;
use super::outcome::CommitOutcome;
use crate::ids::{Seqno, TxnId};

/// How a local commit ended: the verdict and, for an operation, the output
/// it computed here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Settled {
    pub(crate) outcome: CommitOutcome,
    pub(crate) output: Option<Bytes>,
}

/// What a waiting client is told.
pub(crate) type Completion = Result<Settled, Error>;

/// Where one local commit stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Its submission is under way; until it ends, the submission decides
    /// (it retries through a leader change, and certification counts a
    /// retried write-set once).
    Submitting,
    /// The ordering layer accepted it: it is delivered in this primary
    /// component, unless the component is lost first.
    Ordered,
    /// Certified as committed at this position; the client waits until it
    /// is visible here, so it reads its own writes.
    Certified(Seqno),
}

/// The local commits the core is tracking, bounded by the node's in-flight
/// commit permits (a client registers only while holding one).
#[derive(Debug)]
pub(crate) struct Commits {
    stages: BTreeMap<TxnId, Stage>,
    /// Certified commits by the position that must become visible.
    invisible: BTreeMap<Seqno, Vec<TxnId>>,
    /// Positions of certified local operations, with their output once
    /// executed here.
    outputs: BTreeMap<Seqno, Option<Bytes>>,
    completed: Vec<(TxnId, Completion)>,
    limit: usize,
}

impl Commits {
    pub(crate) fn new(limit: usize) -> Self {
        Commits {
            stages: BTreeMap::new(),
            invisible: BTreeMap::new(),
            outputs: BTreeMap::new(),
            completed: Vec::new(),
            limit,
        }
    }

    /// Commits being tracked.
    pub(crate) fn len(&self) -> usize {
        self.stages.len()
    }

    /// The completions produced since the last call, in the order they
    /// were decided.
    pub(crate) fn take_completed(&mut self) -> impl Iterator<Item = (TxnId, Completion)> + '_ {
        self.completed.drain(..)
    }

    /// A client starts submitting `txn_id`.
    ///
    /// # Panics
    /// When `txn_id` is already tracked, or more commits are tracked than
    /// the node has permits for.
    pub(crate) fn submitted(&mut self, txn_id: TxnId) {
        let previous = self.stages.insert(txn_id, Stage::Submitting);
        assert!(previous.is_none(), "transaction {txn_id} submitted twice");
        assert!(
            self.stages.len() <= self.limit,
            "{} commits tracked, more than the {} permits",
            self.stages.len(),
            self.limit
        );
    }

    /// The ordering layer accepted `txn_id`'s write-set.
    pub(crate) fn ordered(&mut self, txn_id: TxnId) {
        if let Some(stage @ Stage::Submitting) = self.stages.get_mut(&txn_id) {
            *stage = Stage::Ordered;
        }
    }

    /// The submission failed and nothing was ordered: the client gets
    /// `error`, unless a verdict settled it already.
    pub(crate) fn not_ordered(&mut self, txn_id: TxnId, error: Error) {
        if self.stages.get(&txn_id) == Some(&Stage::Submitting) {
            self.complete(txn_id, Err(error));
        }
    }

    /// The submission ended without knowing whether it was ordered.
    pub(crate) fn maybe_ordered(&mut self, txn_id: TxnId) {
        if self.stages.get(&txn_id) == Some(&Stage::Submitting) {
            self.complete(txn_id, Err(Error::OutcomeUnknown));
        }
    }

    /// The client waited `waited` and stops: before a verdict the outcome
    /// is unknown; after a commit verdict it is known, but not yet visible.
    pub(crate) fn gave_up(&mut self, txn_id: TxnId, waited: Duration) {
        match self.stages.get(&txn_id) {
            None => {}
            Some(Stage::Submitting | Stage::Ordered) => {
                self.complete(txn_id, Err(Error::OutcomeUnknown));
            }
            Some(Stage::Certified(_)) => self.complete(
                txn_id,
                Err(Error::Timeout {
                    what: "the node to apply",
                    waited,
                }),
            ),
        }
    }

    /// The client's task is gone: nobody is left to tell.
    pub(crate) fn forgotten(&mut self, txn_id: TxnId) {
        self.remove(txn_id);
    }

    /// The verdict on a local write-set or `operation`. A commit at or below
    /// `last_visible` ends the wait now; a later one once it is visible
    /// (an operation's once its output is in, too).
    pub(crate) fn certified(
        &mut self,
        txn_id: TxnId,
        outcome: CommitOutcome,
        last_visible: Seqno,
        operation: bool,
    ) {
        match self.stages.get(&txn_id) {
            // A client that gave up, or a resubmission after a restart.
            None => return,
            // A duplicate of a write-set already certified: the first verdict
            // stands.
            Some(Stage::Certified(_)) => return,
            Some(Stage::Submitting | Stage::Ordered) => {}
        }
        match outcome.committed_seqno() {
            Some(seqno) if seqno > last_visible => {
                self.stages.insert(txn_id, Stage::Certified(seqno));
                self.invisible.entry(seqno).or_default().push(txn_id);
                if operation {
                    self.outputs.insert(seqno, None);
                }
            }
            // A duplicate of an operation that executed before this client
            // registered (impossible while it waits): its output is gone.
            Some(_) if operation => self.complete(txn_id, Err(Error::OutcomeUnknown)),
            _ => self.complete(
                txn_id,
                Ok(Settled {
                    outcome,
                    output: None,
                }),
            ),
        }
    }

    /// The operation at `seqno` executed here with `output`; kept only when
    /// a local client waits for it.
    pub(crate) fn executed(&mut self, seqno: Seqno, output: Bytes) {
        if let Some(slot) = self.outputs.get_mut(&seqno) {
            *slot = Some(output);
        }
    }

    /// Everything at or below `upto` is visible here.
    pub(crate) fn visible(&mut self, upto: Seqno) {
        while let Some(entry) = self.invisible.first_entry() {
            if *entry.key() > upto {
                break;
            }
            let (seqno, txn_ids) = entry.remove_entry();
            let output = self.outputs.remove(&seqno).map(|output| {
                output.unwrap_or_else(|| panic!("operation at {seqno} visible before it executed"))
            });
            for txn_id in txn_ids {
                if self.stages.get(&txn_id) == Some(&Stage::Certified(seqno)) {
                    let settled = Settled {
                        outcome: CommitOutcome::Committed { seqno },
                        output: output.clone(),
                    };
                    self.complete(txn_id, Ok(settled));
                }
            }
        }
    }

    /// The node left the primary component. An ordered write-set may or may
    /// not be delivered now: its client learns that the outcome is unknown.
    /// Submissions still under way settle themselves; certified commits are
    /// delivered here already and become visible.
    pub(crate) fn left_primary(&mut self) {
        let ordered: Vec<TxnId> = self
            .stages
            .iter()
            .filter(|(_, stage)| **stage == Stage::Ordered)
            .map(|(txn_id, _)| *txn_id)
            .collect();
        for txn_id in ordered {
            self.complete(txn_id, Err(Error::OutcomeUnknown));
        }
    }

    /// Ends every wait with `error` (the node failed or closed), oldest
    /// transaction first.
    pub(crate) fn abandon(&mut self, error: &Error) {
        let all: Vec<TxnId> = self.stages.keys().copied().collect();
        for txn_id in all {
            self.complete(txn_id, Err(error.clone()));
        }
        self.invisible.clear();
        self.outputs.clear();
    }

    fn complete(&mut self, txn_id: TxnId, completion: Completion) {
        self.remove(txn_id);
        self.completed.push((txn_id, completion));
    }

    fn remove(&mut self, txn_id: TxnId) {
        if let Some(Stage::Certified(seqno)) = self.stages.remove(&txn_id)
            && let Some(txn_ids) = self.invisible.get_mut(&seqno)
        {
            txn_ids.retain(|t| *t != txn_id);
            if txn_ids.is_empty() {
                self.invisible.remove(&seqno);
                self.outputs.remove(&seqno);
            }
        }
    }
}

#[cfg(test)]
#[path = "commits_tests.rs"]
mod tests;
