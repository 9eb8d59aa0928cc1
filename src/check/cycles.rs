//! Finding dependency cycles and naming them as Elle does.

use std::collections::BTreeSet;

use super::anomaly::{Anomaly, AnomalyKind, Via};
use super::graph::{EdgeKind, Graph, Kinds, Step};

/// The cycle classes, most severe first, and the data edges each may use.
const CLASSES: [(AnomalyKind, &[EdgeKind]); 4] = [
    (AnomalyKind::G0, &[EdgeKind::Ww]),
    (AnomalyKind::G1c, &[EdgeKind::Ww, EdgeKind::Wr]),
    (AnomalyKind::GSingle, &[EdgeKind::Ww, EdgeKind::Wr]),
    (
        AnomalyKind::G2Item,
        &[EdgeKind::Ww, EdgeKind::Wr, EdgeKind::Rw],
    ),
];

/// One example of each cycle class in each strongly connected component,
/// found with data edges alone if possible, else with process order, else
/// with real-time order too.
pub(crate) fn find(graph: &Graph) -> Vec<Anomaly> {
    let mut found = Vec::new();
    for component in graph.components() {
        let within: BTreeSet<usize> = component.iter().copied().collect();
        let mut seen: BTreeSet<AnomalyKind> = BTreeSet::new();
        for (via, extra) in [
            (Via::Data, &[][..]),
            (Via::Process, &[EdgeKind::Process][..]),
            (Via::Realtime, &[EdgeKind::Process, EdgeKind::Realtime][..]),
        ] {
            for (class, data) in CLASSES {
                if seen.contains(&class) {
                    continue;
                }
                let allowed: Vec<EdgeKind> = data.iter().chain(extra).copied().collect();
                if let Some(steps) = search(graph, &component, &within, class, Kinds::of(&allowed))
                {
                    let anomaly = describe(graph, &steps, via);
                    seen.insert(class);
                    seen.insert(anomaly.kind);
                    found.push(anomaly);
                }
            }
        }
    }
    found
}

/// A cycle of `class` within the component over `allowed` edges.
fn search(
    graph: &Graph,
    component: &[usize],
    within: &BTreeSet<usize>,
    class: AnomalyKind,
    allowed: Kinds,
) -> Option<Vec<Step>> {
    // The edge every cycle of the class must contain; the way back from it
    // may use the `allowed` edges.
    let anchor = match class {
        AnomalyKind::G0 => EdgeKind::Ww,
        AnomalyKind::G1c => EdgeKind::Wr,
        _ => EdgeKind::Rw,
    };
    for &from in component {
        for to in graph.edges_of(from, anchor, within) {
            let Some(mut path) = graph.path(to, from, allowed, within) else {
                continue;
            };
            path.insert(
                0,
                Step {
                    from,
                    to,
                    kind: anchor,
                },
            );
            let rw = path.iter().filter(|s| s.kind == EdgeKind::Rw).count();
            if class != AnomalyKind::G2Item || rw >= 2 {
                return Some(path);
            }
        }
    }
    None
}

/// Names a cycle by its edges and explains each step.
fn describe(graph: &Graph, steps: &[Step], searched: Via) -> Anomaly {
    let rw: Vec<usize> = (0..steps.len())
        .filter(|&i| steps[i].kind == EdgeKind::Rw)
        .collect();
    let wr = steps.iter().any(|s| s.kind == EdgeKind::Wr);
    let kind = match rw.len() {
        0 if wr => AnomalyKind::G1c,
        0 => AnomalyKind::G0,
        1 => AnomalyKind::GSingle,
        _ => {
            let n = steps.len();
            let adjacent = rw.iter().any(|&i| steps[(i + 1) % n].kind == EdgeKind::Rw);
            if adjacent {
                AnomalyKind::G2Item
            } else {
                AnomalyKind::GNonadjacent
            }
        }
    };
    let via = if steps.iter().any(|s| s.kind == EdgeKind::Realtime) {
        Via::Realtime
    } else if steps.iter().any(|s| s.kind == EdgeKind::Process) {
        Via::Process
    } else {
        Via::Data
    };
    debug_assert!(via <= searched, "a cycle used an order it was not allowed");
    let explanation = steps
        .iter()
        .map(|step| format!("{} [{}]", graph.explain(step), step.kind.name()))
        .collect::<Vec<_>>()
        .join("; then ");
    Anomaly {
        kind,
        via,
        explanation: format!("{explanation}; a cycle."),
    }
}
