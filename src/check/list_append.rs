//! Elle's list-append inference: version orders from reads, then ww, wr and
//! rw dependencies between transactions, plus the anomalies that need no
//! cycle (aborted and intermediate reads, internal inconsistency, lost
//! updates, duplicate elements, incompatible orders).

use std::collections::{BTreeMap, BTreeSet};

use super::anomaly::{Anomaly, AnomalyKind, anomaly};
use super::graph::{EdgeKind, Graph};
use super::history::{HistoryError, Key, Mop, Outcome, Txn, name};
use super::{VersionStep, step_edges};

/// What list-append inference produces.
pub(crate) struct Inferred {
    pub(crate) graph: Graph,
    pub(crate) anomalies: Vec<Anomaly>,
}

/// The read of `key` a transaction made before appending to it, if any.
fn external_read(txn: &Txn, key: &Key) -> Option<Vec<i64>> {
    for mop in &txn.mops {
        match mop {
            Mop::Append { key: k, .. } if k == key => return None,
            Mop::Read { key: k, elements } if k == key => return elements.clone(),
            _ => {}
        }
    }
    None
}

struct Indexes {
    /// (key, element) → the transaction that appended it.
    writer: BTreeMap<(Key, i64), usize>,
    /// Key → its inferred version order.
    order: BTreeMap<Key, Vec<i64>>,
    /// (key, last element read, or `None` for the empty list) → the
    /// committed transactions whose external read saw that version.
    readers: BTreeMap<(Key, Option<i64>), Vec<usize>>,
}

/// Runs the inference over `txns`.
///
/// # Errors
/// [`HistoryError::DuplicateAppend`] when an element was appended twice.
pub(crate) fn infer(txns: &[Txn]) -> Result<Inferred, HistoryError> {
    let mut anomalies = Vec::new();
    let indexes = index(txns, &mut anomalies)?;
    let mut graph = Graph::default();
    for (id, txn) in txns.iter().enumerate() {
        if txn.outcome == Outcome::Fail {
            continue;
        }
        if txn.outcome == Outcome::Ok {
            read_edges(txns, id, &indexes, &mut graph, &mut anomalies);
            internal(txns, id, &mut anomalies);
        }
        append_edges(txns, id, &indexes, &mut graph);
    }
    lost_updates(txns, &indexes, &mut anomalies);
    Ok(Inferred { graph, anomalies })
}

/// Writers and version orders; reports duplicates and incompatible orders.
fn index(txns: &[Txn], anomalies: &mut Vec<Anomaly>) -> Result<Indexes, HistoryError> {
    let mut writer = BTreeMap::new();
    let mut reads: BTreeMap<Key, Vec<(usize, Vec<i64>)>> = BTreeMap::new();
    for (id, txn) in txns.iter().enumerate() {
        for mop in &txn.mops {
            match mop {
                Mop::Append { key, element }
                    if writer.insert((key.clone(), *element), id).is_some() =>
                {
                    return Err(HistoryError::DuplicateAppend {
                        key: key.clone(),
                        element: *element,
                    });
                }
                Mop::Read {
                    key,
                    elements: Some(elements),
                } if txn.outcome == Outcome::Ok => {
                    let unique: BTreeSet<&i64> = elements.iter().collect();
                    if unique.len() != elements.len() {
                        let text = format!(
                            "{} read {key} = {elements:?}, with an element twice",
                            name(txns, id)
                        );
                        anomalies.push(anomaly(AnomalyKind::DuplicateElements, text));
                    }
                    reads
                        .entry(key.clone())
                        .or_default()
                        .push((id, elements.clone()));
                }
                _ => {}
            }
        }
    }
    let mut order = BTreeMap::new();
    for (key, mut seen) in reads {
        seen.sort_by_key(|(_, elements)| elements.len());
        for pair in seen.windows(2) {
            let ((a, shorter), (b, longer)) = (&pair[0], &pair[1]);
            if !longer.starts_with(shorter) {
                let text = format!(
                    "{} read {key} = {shorter:?} but {} read {key} = {longer:?}: neither extends the other",
                    name(txns, *a),
                    name(txns, *b)
                );
                anomalies.push(anomaly(AnomalyKind::IncompatibleOrder, text));
            }
        }
        if let Some((_, longest)) = seen.last() {
            order.insert(key, longest.clone());
        }
    }
    Ok(Indexes {
        writer,
        order,
        readers: readers(txns),
    })
}

/// Who read each version externally (before appending to the key).
fn readers(txns: &[Txn]) -> BTreeMap<(Key, Option<i64>), Vec<usize>> {
    let mut readers: BTreeMap<(Key, Option<i64>), Vec<usize>> = BTreeMap::new();
    for (id, txn) in txns.iter().enumerate() {
        if txn.outcome != Outcome::Ok {
            continue;
        }
        let keys: BTreeSet<&Key> = txn.mops.iter().map(Mop::key).collect();
        for key in keys {
            if let Some(read) = external_read(txn, key) {
                readers
                    .entry((key.clone(), read.last().copied()))
                    .or_default()
                    .push(id);
            }
        }
    }
    readers
}

/// wr edges, and the G1a and G1b checks, for each of `id`'s reads.
fn read_edges(
    txns: &[Txn],
    id: usize,
    ix: &Indexes,
    graph: &mut Graph,
    anomalies: &mut Vec<Anomaly>,
) {
    for mop in &txns[id].mops {
        let Mop::Read {
            key,
            elements: Some(elements),
        } = mop
        else {
            continue;
        };
        for element in elements {
            if let Some(&w) = ix.writer.get(&(key.clone(), *element))
                && txns[w].outcome == Outcome::Fail
            {
                let text = format!(
                    "{} read {key} = {elements:?}, but {element} was appended by {}, which failed",
                    name(txns, id),
                    name(txns, w)
                );
                anomalies.push(anomaly(AnomalyKind::G1a, text));
            }
        }
        let Some(last) = elements.last() else {
            continue;
        };
        let Some(&w) = ix.writer.get(&(key.clone(), *last)) else {
            continue;
        };
        if w != id && final_append(&txns[w], key) != Some(*last) {
            let text = format!(
                "{} read {key} = {elements:?}, ending in {last}, an intermediate append of {}",
                name(txns, id),
                name(txns, w)
            );
            anomalies.push(anomaly(AnomalyKind::G1b, text));
        }
        if txns[w].outcome == Outcome::Fail {
            continue;
        }
        graph.link(w, id, EdgeKind::Wr, || {
            format!(
                "{} appended {last} to {key}, which {} read",
                name(txns, w),
                name(txns, id)
            )
        });
    }
}

fn final_append(txn: &Txn, key: &Key) -> Option<i64> {
    txn.mops.iter().rev().find_map(|mop| match mop {
        Mop::Append { key: k, element } if k == key => Some(*element),
        _ => None,
    })
}

/// ww and rw edges for each of `id`'s appends.
fn append_edges(txns: &[Txn], id: usize, ix: &Indexes, graph: &mut Graph) {
    for mop in &txns[id].mops {
        let Mop::Append { key, element } = mop else {
            continue;
        };
        let order = ix.order.get(key).map_or(&[][..], Vec::as_slice);
        // The version this append replaced: the one before it in the
        // order, or the last one observed when it was never observed.
        let prev = match order.iter().position(|e| e == element) {
            Some(0) => None,
            Some(at) => Some(order[at - 1]),
            None => order.last().copied(),
        };
        let step = VersionStep {
            key,
            before: prev,
            later: id,
        };
        let ww = |w, prev| {
            format!(
                "{} appended {prev} to {key} before {} appended {element}",
                name(txns, w),
                name(txns, id)
            )
        };
        let rw = |reader| {
            let seen = prev.map_or_else(|| "[]".to_string(), |p| format!("a list ending in {p}"));
            format!(
                "{} read {key} = {seen}, which {} changed by appending {element}",
                name(txns, reader),
                name(txns, id)
            )
        };
        step_edges(graph, txns, &ix.writer, &ix.readers, &step, ww, rw);
    }
}

/// A read must agree with the transaction's own earlier reads and appends.
fn internal(txns: &[Txn], id: usize, anomalies: &mut Vec<Anomaly>) {
    // Per key: the value known (from a read) and the appends since.
    let mut known: BTreeMap<&Key, (Option<Vec<i64>>, Vec<i64>)> = BTreeMap::new();
    for mop in &txns[id].mops {
        match mop {
            Mop::Append { key, element } => known.entry(key).or_default().1.push(*element),
            Mop::Read {
                key,
                elements: Some(elements),
            } => {
                let (base, own) = known.entry(key).or_default();
                let consistent = match base {
                    Some(base) => base.iter().chain(own.iter()).eq(elements.iter()),
                    None => elements.ends_with(own),
                };
                if !consistent {
                    let text = format!(
                        "{} read {key} = {elements:?}, which contradicts its own earlier reads and appends {:?} then {own:?}",
                        name(txns, id),
                        base.clone().unwrap_or_default()
                    );
                    anomalies.push(anomaly(AnomalyKind::Internal, text));
                }
                *base = Some(elements.clone());
                own.clear();
            }
            _ => {}
        }
    }
}

/// Two committed transactions that read the same version of a key and both
/// appended to it: one overwrote the other's update unseen.
fn lost_updates(txns: &[Txn], ix: &Indexes, anomalies: &mut Vec<Anomaly>) {
    for ((key, version), readers) in &ix.readers {
        let writers: Vec<usize> = readers
            .iter()
            .copied()
            .filter(|&id| final_append(&txns[id], key).is_some())
            .collect();
        if writers.len() > 1 {
            let names: Vec<String> = writers.iter().map(|id| name(txns, *id)).collect();
            let version = version.map_or_else(
                || "the empty list".to_string(),
                |v| format!("the version ending in {v}"),
            );
            let text = format!(
                "{} all read {key} at {version} and all appended to it",
                names.join(", ")
            );
            anomalies.push(anomaly(AnomalyKind::LostUpdate, text));
        }
    }
}
