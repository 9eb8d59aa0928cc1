//! Elle's rw-register inference: external reads and writes, a version
//! order per key from two sound assumptions (the initial nil comes before
//! every written value; a transaction that read `v` and then wrote `v'`
//! put `v'` after `v`), then ww, wr and rw dependencies along that order,
//! plus the anomalies that need no cycle (aborted and intermediate reads,
//! internal inconsistency, lost updates, cyclic versions).

use std::collections::{BTreeMap, BTreeSet};

use super::anomaly::{Anomaly, AnomalyKind, anomaly};
use super::graph::{EdgeKind, Graph};
use super::history::{HistoryError, Key, Mop, Outcome, Txn, name};
use super::list_append::Inferred;
use super::{VersionStep, step_edges};

/// A version of a register: `None` is the initial nil.
type Version = Option<i64>;

/// A transaction's external reads (its first read of a key, when that
/// precedes its writes to the key) and external writes (its last write).
fn externals(txn: &Txn) -> Externals<'_> {
    let mut reads = BTreeMap::new();
    let mut writes: BTreeMap<&Key, i64> = BTreeMap::new();
    for mop in &txn.mops {
        match mop {
            Mop::ReadRegister { key, value } if !writes.contains_key(key) => {
                reads.entry(key).or_insert(*value);
            }
            Mop::Write { key, value } => {
                writes.insert(key, *value);
            }
            _ => {}
        }
    }
    Externals { reads, writes }
}

/// One transaction's external reads and writes, per key.
struct Externals<'a> {
    reads: BTreeMap<&'a Key, Version>,
    writes: BTreeMap<&'a Key, i64>,
}

struct Indexes<'a> {
    /// Each transaction's externals, computed once.
    ext: Vec<Externals<'a>>,
    /// (key, value) → the transaction that wrote it.
    writer: BTreeMap<(Key, i64), usize>,
    /// (key, version) → committed transactions that externally read it.
    readers: BTreeMap<(Key, Version), Vec<usize>>,
    /// Key → version edges (earlier, later).
    versions: BTreeMap<Key, BTreeSet<(Version, i64)>>,
}

/// Runs the inference over `txns`.
///
/// # Errors
/// [`HistoryError::DuplicateWrite`] when a value was written to a key twice.
pub(crate) fn infer(txns: &[Txn]) -> Result<Inferred, HistoryError> {
    let mut anomalies = Vec::new();
    let mut ix = index(txns)?;
    drop_cyclic_versions(&mut ix, &mut anomalies);
    let mut graph = Graph::default();
    for (id, txn) in txns.iter().enumerate() {
        if txn.outcome == Outcome::Ok {
            read_edges(txns, id, &ix, &mut graph, &mut anomalies);
            internal(txns, id, &mut anomalies);
        }
    }
    version_edges(txns, &ix, &mut graph);
    lost_updates(txns, &ix, &mut anomalies);
    Ok(Inferred { graph, anomalies })
}

fn index(txns: &[Txn]) -> Result<Indexes<'_>, HistoryError> {
    let mut ix = Indexes {
        ext: txns.iter().map(externals).collect(),
        writer: BTreeMap::new(),
        readers: BTreeMap::new(),
        versions: BTreeMap::new(),
    };
    for (id, txn) in txns.iter().enumerate() {
        for mop in &txn.mops {
            if let Mop::Write { key, value } = mop
                && ix.writer.insert((key.clone(), *value), id).is_some()
            {
                return Err(HistoryError::DuplicateWrite {
                    key: key.clone(),
                    value: *value,
                });
            }
        }
        let Externals { reads, writes } = &ix.ext[id];
        for (&key, &value) in writes {
            // nil comes before every value written.
            let edges = ix.versions.entry(key.clone()).or_default();
            edges.insert((None, value));
            // Writes follow reads, in a transaction that committed or may have.
            if txn.outcome != Outcome::Fail
                && let Some(&Some(read)) = reads.get(key)
                && read != value
            {
                edges.insert((Some(read), value));
            }
        }
        if txn.outcome == Outcome::Ok {
            for (&key, &version) in reads {
                ix.readers
                    .entry((key.clone(), version))
                    .or_default()
                    .push(id);
            }
        }
    }
    Ok(ix)
}

/// Reports and forgets the version edges of every key whose version graph
/// has a cycle: no order is consistent with them.
fn drop_cyclic_versions(ix: &mut Indexes, anomalies: &mut Vec<Anomaly>) {
    let cyclic: Vec<Key> = ix
        .versions
        .iter()
        .filter(|(_, edges)| has_cycle(edges))
        .map(|(key, _)| key.clone())
        .collect();
    for key in cyclic {
        let edges = ix.versions.remove(&key).unwrap_or_default();
        let shown: Vec<String> = edges
            .iter()
            .filter_map(|(a, b)| a.map(|a| format!("{a} < {b}")))
            .collect();
        let text = format!(
            "the versions of {key} cannot be ordered: transactions read and then overwrote them as {}",
            shown.join(", ")
        );
        anomalies.push(anomaly(AnomalyKind::CyclicVersions, text));
    }
}

/// Whether the version edges of one key form a cycle (Kahn's algorithm).
fn has_cycle(edges: &BTreeSet<(Version, i64)>) -> bool {
    let mut indegree: BTreeMap<Version, usize> = BTreeMap::new();
    let mut next: BTreeMap<Version, Vec<Version>> = BTreeMap::new();
    for &(a, b) in edges {
        indegree.entry(a).or_default();
        *indegree.entry(Some(b)).or_default() += 1;
        next.entry(a).or_default().push(Some(b));
    }
    let mut ready: Vec<Version> = indegree
        .iter()
        .filter(|(_, d)| **d == 0)
        .map(|(v, _)| *v)
        .collect();
    let mut seen = 0;
    while let Some(v) = ready.pop() {
        seen += 1;
        for w in next.get(&v).map_or(&[][..], Vec::as_slice) {
            let d = indegree.entry(*w).or_default();
            *d -= 1;
            if *d == 0 {
                ready.push(*w);
            }
        }
    }
    seen < indegree.len()
}

/// wr edges, and the G1a and G1b checks, for each of `id`'s external reads.
fn read_edges(
    txns: &[Txn],
    id: usize,
    ix: &Indexes,
    graph: &mut Graph,
    anomalies: &mut Vec<Anomaly>,
) {
    for (&key, &version) in &ix.ext[id].reads {
        let Some(value) = version else { continue };
        let Some(&w) = ix.writer.get(&(key.clone(), value)) else {
            continue;
        };
        if w == id {
            continue;
        }
        if txns[w].outcome == Outcome::Fail {
            let text = format!(
                "{} read {key} = {value}, written by {}, which failed",
                name(txns, id),
                name(txns, w)
            );
            anomalies.push(anomaly(AnomalyKind::G1a, text));
            continue;
        }
        if ix.ext[w].writes.get(key) != Some(&value) {
            let text = format!(
                "{} read {key} = {value}, an intermediate write of {}",
                name(txns, id),
                name(txns, w)
            );
            anomalies.push(anomaly(AnomalyKind::G1b, text));
        }
        graph.link(w, id, EdgeKind::Wr, || {
            format!(
                "{} wrote {key} = {value}, which {} read",
                name(txns, w),
                name(txns, id)
            )
        });
    }
}

/// ww and rw edges along every version edge.
fn version_edges(txns: &[Txn], ix: &Indexes, graph: &mut Graph) {
    for (key, edges) in &ix.versions {
        for &(before, after) in edges {
            let Some(&w2) = ix.writer.get(&(key.clone(), after)) else {
                continue;
            };
            if txns[w2].outcome == Outcome::Fail {
                continue;
            }
            let step = VersionStep {
                key,
                before,
                later: w2,
            };
            let ww = |w1, before| {
                format!(
                    "{} wrote {key} = {before}, which {} overwrote with {after}",
                    name(txns, w1),
                    name(txns, w2)
                )
            };
            let rw = |reader| {
                let seen = before.map_or_else(|| "nil".to_string(), |v| v.to_string());
                format!(
                    "{} read {key} = {seen}, which {} overwrote with {after}",
                    name(txns, reader),
                    name(txns, w2)
                )
            };
            step_edges(graph, txns, &ix.writer, &ix.readers, &step, ww, rw);
        }
    }
}

/// A read must agree with the transaction's own earlier reads and writes.
fn internal(txns: &[Txn], id: usize, anomalies: &mut Vec<Anomaly>) {
    let mut known: BTreeMap<&Key, Version> = BTreeMap::new();
    for mop in &txns[id].mops {
        match mop {
            Mop::Write { key, value } => {
                known.insert(key, Some(*value));
            }
            Mop::ReadRegister { key, value } => {
                if let Some(expected) = known.get(key)
                    && expected != value
                {
                    let show = |v: &Version| v.map_or_else(|| "nil".to_string(), |v| v.to_string());
                    let text = format!(
                        "{} read {key} = {}, though it had already seen or written {}",
                        name(txns, id),
                        show(value),
                        show(expected)
                    );
                    anomalies.push(anomaly(AnomalyKind::Internal, text));
                }
                known.insert(key, *value);
            }
            _ => {}
        }
    }
}

/// Two committed transactions that read the same version of a key and both
/// overwrote it: one update was lost.
fn lost_updates(txns: &[Txn], ix: &Indexes, anomalies: &mut Vec<Anomaly>) {
    for ((key, version), readers) in &ix.readers {
        let writers: Vec<usize> = readers
            .iter()
            .copied()
            .filter(|&id| ix.ext[id].writes.contains_key(key))
            .collect();
        if writers.len() > 1 {
            let names: Vec<String> = writers.iter().map(|id| name(txns, *id)).collect();
            let seen = version.map_or_else(|| "nil".to_string(), |v| v.to_string());
            let text = format!(
                "{} all read {key} = {seen} and all overwrote it",
                names.join(", ")
            );
            anomalies.push(anomaly(AnomalyKind::LostUpdate, text));
        }
    }
}
