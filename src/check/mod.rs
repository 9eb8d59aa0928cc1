//! A consistency checker for transactional histories, after Elle
//! (Kingsbury and Alvaro, VLDB 2020): infer the order of versions from what
//! transactions read, derive the dependencies between transactions, and
//! name every anomaly, cycles included, with the evidence in words.
//!
//! Everything here is sans-IO and deterministic. [`check_list_append`]
//! checks a list-append history (`[:append k e]`, `[:r k [e …]]`) and
//! [`check_rw_register`] an rw-register one (`[:w k v]`, `[:r k v]`), both
//! with process and real-time order so stale reads show as `*-realtime`
//! cycles; [`check`] picks the one the history's micro-ops call for.
//! `fail` transactions feed only the aborted-read check; `info`
//! (indeterminate) ones may have taken effect: their appends count, their
//! reads do not, and they get no process or outgoing real-time edges.

mod anomaly;
mod cycles;
pub mod generate;
mod graph;
mod history;
mod json;
mod list_append;
mod rw_register;

pub use anomaly::{Anomaly, AnomalyKind, Report, Via};
pub use history::{At, Event, EventType, History, HistoryError, Key, Malformed, Mop};
pub use json::{read_json, write_json_lines};

use std::collections::{BTreeMap, BTreeSet};

use graph::{EdgeKind, Graph};
use history::{Outcome, Txn, name};
use list_append::Inferred;

/// Checks a history of either kind, list-append or rw-register.
///
/// # Errors
/// [`HistoryError`] when the history is not well formed.
pub fn check(history: &History) -> Result<Report, HistoryError> {
    if history.is_register() {
        check_rw_register(history)
    } else {
        check_list_append(history)
    }
}

/// Checks an rw-register history and reports every anomaly found. Versions
/// are ordered only by what is sound without knowing the database: nil
/// comes first, and a transaction that read `v` and wrote `v'` put `v'`
/// after `v`; so, as in Elle, a write cycle (G0) among blind writes is
/// invisible.
///
/// # Errors
/// [`HistoryError`] when the history is not well formed (a value written
/// to a key twice, overlapping operations of one process).
pub fn check_rw_register(history: &History) -> Result<Report, HistoryError> {
    let txns = history.transactions()?;
    let inferred = rw_register::infer(&txns)?;
    Ok(finish(history, &txns, inferred))
}

/// Checks a list-append history and reports every anomaly found.
///
/// # Errors
/// [`HistoryError`] when the history is not well formed (an element
/// appended twice, overlapping operations of one process).
pub fn check_list_append(history: &History) -> Result<Report, HistoryError> {
    let txns = history.transactions()?;
    let inferred = list_append::infer(&txns)?;
    Ok(finish(history, &txns, inferred))
}

/// Adds process and real-time order, then finds the cycles.
fn finish(history: &History, txns: &[Txn], mut inferred: Inferred) -> Report {
    process_edges(txns, &mut inferred.graph);
    realtime_edges(history, txns, &mut inferred.graph);
    let mut anomalies = inferred.anomalies;
    anomalies.extend(cycles::find(&inferred.graph));
    anomalies.sort_by_key(|a| (a.kind, a.via));
    Report { anomalies }
}

/// One step of a key's version order: transaction `later` installed the
/// version of `key` that follows `before` (`None`: the initial version).
struct VersionStep<'a> {
    key: &'a Key,
    before: Option<i64>,
    later: usize,
}

/// The edges a version step implies, for list-append and rw-register alike:
/// ww from the writer of `before` (unless it failed) and rw from every
/// committed transaction that read `before`. `ww` (given the earlier writer
/// and `before`) and `rw` (given the reader) say it in words.
fn step_edges(
    graph: &mut Graph,
    txns: &[Txn],
    writer: &BTreeMap<(Key, i64), usize>,
    readers: &BTreeMap<(Key, Option<i64>), Vec<usize>>,
    step: &VersionStep<'_>,
    ww: impl FnOnce(usize, i64) -> String,
    rw: impl Fn(usize) -> String,
) {
    let VersionStep { key, before, later } = *step;
    if let Some(before) = before
        && let Some(&w) = writer.get(&(key.clone(), before))
        && txns[w].outcome != Outcome::Fail
    {
        graph.link(w, later, EdgeKind::Ww, || ww(w, before));
    }
    let readers = readers
        .get(&(key.clone(), before))
        .map_or(&[][..], Vec::as_slice);
    for &reader in readers {
        graph.link(reader, later, EdgeKind::Rw, || rw(reader));
    }
}

/// Each process's committed transactions, in the order it ran them.
fn process_edges(txns: &[Txn], graph: &mut Graph) {
    let mut last: BTreeMap<u64, usize> = BTreeMap::new();
    for (id, txn) in txns.iter().enumerate() {
        if txn.outcome != Outcome::Ok {
            continue;
        }
        if let Some(&before) = last.get(&txn.process) {
            graph.link(before, id, EdgeKind::Process, || {
                format!(
                    "{} ran before {} on process {}",
                    name(txns, before),
                    name(txns, id),
                    txn.process
                )
            });
        }
        last.insert(txn.process, id);
    }
}

/// A committed transaction precedes every transaction invoked after it
/// completed. Only the frontier is linked (a transitive reduction): each
/// invocation links to the transactions completed before it that no other
/// such completion followed.
fn realtime_edges(history: &History, txns: &[Txn], graph: &mut Graph) {
    let mut by_invoke: BTreeMap<usize, usize> = BTreeMap::new();
    let mut by_completion: BTreeMap<usize, usize> = BTreeMap::new();
    for (id, txn) in txns.iter().enumerate() {
        by_invoke.insert(txn.invoked, id);
        if let Some(done) = txn.completed {
            by_completion.insert(done, id);
        }
    }
    let mut frontier: BTreeSet<usize> = BTreeSet::new();
    let mut preds: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
    for event in history.events() {
        if let Some(&id) = by_invoke.get(&event.index) {
            if txns[id].outcome != Outcome::Fail {
                for &before in &frontier {
                    graph.link(before, id, EdgeKind::Realtime, || {
                        format!(
                            "{} completed before {} began",
                            name(txns, before),
                            name(txns, id)
                        )
                    });
                }
            }
            preds.insert(id, frontier.clone());
        } else if let Some(&id) = by_completion.get(&event.index)
            && txns[id].outcome == Outcome::Ok
        {
            if let Some(before) = preds.remove(&id) {
                frontier.retain(|t| !before.contains(t));
            }
            frontier.insert(id);
        }
    }
}

#[cfg(test)]
mod tests;
