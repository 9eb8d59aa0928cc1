//! The transaction dependency graph: typed edges, strongly connected
//! components, and cycle search restricted to some edge kinds (sans-IO).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Why one transaction must come before another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum EdgeKind {
    /// Write-write: it overwrote (appended after) the other's write.
    Ww,
    /// Write-read: it read the other's write.
    Wr,
    /// Read-write: it read a state the other's write replaced.
    Rw,
    /// The same process ran one after the other.
    Process,
    /// One completed before the other began.
    Realtime,
}

impl EdgeKind {
    /// Elle's short name for the dependency.
    pub(crate) const fn name(self) -> &'static str {
        match self {
            EdgeKind::Ww => "ww",
            EdgeKind::Wr => "wr",
            EdgeKind::Rw => "rw",
            EdgeKind::Process => "process",
            EdgeKind::Realtime => "realtime",
        }
    }

    const fn bit(self) -> u8 {
        match self {
            EdgeKind::Ww => 1,
            EdgeKind::Wr => 2,
            EdgeKind::Rw => 4,
            EdgeKind::Process => 8,
            EdgeKind::Realtime => 16,
        }
    }
}

/// A set of edge kinds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Kinds(u8);

impl Kinds {
    pub(crate) fn of(kinds: &[EdgeKind]) -> Kinds {
        Kinds(kinds.iter().fold(0, |bits, k| bits | k.bit()))
    }

    pub(crate) fn contains(self, kind: EdgeKind) -> bool {
        self.0 & kind.bit() != 0
    }

    fn intersects(self, other: Kinds) -> bool {
        self.0 & other.0 != 0
    }

    fn insert(&mut self, kind: EdgeKind) {
        self.0 |= kind.bit();
    }

    /// The first kind present in `preference` order.
    fn pick(self, allowed: Kinds) -> Option<EdgeKind> {
        use EdgeKind::{Process, Realtime, Rw, Wr, Ww};
        [Ww, Wr, Rw, Process, Realtime]
            .into_iter()
            .find(|k| self.contains(*k) && allowed.contains(*k))
    }
}

/// One step of a cycle: `from` precedes `to` because of `kind`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Step {
    pub(crate) from: usize,
    pub(crate) to: usize,
    pub(crate) kind: EdgeKind,
}

/// Transactions (by index) and why each precedes another.
#[derive(Clone, Debug, Default)]
pub(crate) struct Graph {
    out: BTreeMap<usize, BTreeMap<usize, Kinds>>,
    /// The first explanation recorded for each (from, to, kind).
    why: BTreeMap<(usize, usize, EdgeKind), String>,
}

impl Graph {
    /// Adds an edge; self-edges are ignored.
    pub(crate) fn link(
        &mut self,
        from: usize,
        to: usize,
        kind: EdgeKind,
        why: impl FnOnce() -> String,
    ) {
        if from == to {
            return;
        }
        self.out
            .entry(from)
            .or_default()
            .entry(to)
            .or_default()
            .insert(kind);
        self.why.entry((from, to, kind)).or_insert_with(why);
    }

    pub(crate) fn explain(&self, step: &Step) -> &str {
        self.why
            .get(&(step.from, step.to, step.kind))
            .map_or("", String::as_str)
    }

    fn successors(&self, node: usize, allowed: Kinds) -> impl Iterator<Item = (usize, Kinds)> + '_ {
        self.out
            .get(&node)
            .into_iter()
            .flat_map(|m| m.iter())
            .filter(move |(_, kinds)| kinds.intersects(allowed))
            .map(|(to, kinds)| (*to, *kinds))
    }

    /// The strongly connected components with more than one node (Tarjan,
    /// iterative), each sorted.
    pub(crate) fn components(&self) -> Vec<Vec<usize>> {
        let nodes: BTreeSet<usize> = self
            .out
            .iter()
            .flat_map(|(from, tos)| std::iter::once(*from).chain(tos.keys().copied()))
            .collect();
        let mut tarjan = Tarjan::default();
        for node in nodes {
            if !tarjan.index.contains_key(&node) {
                tarjan.run(self, node);
            }
        }
        tarjan.components
    }

    /// The shortest path from `start` to `goal` over `allowed` edges within
    /// `within`, as steps.
    pub(crate) fn path(
        &self,
        start: usize,
        goal: usize,
        allowed: Kinds,
        within: &BTreeSet<usize>,
    ) -> Option<Vec<Step>> {
        let mut parent: BTreeMap<usize, (usize, EdgeKind)> = BTreeMap::new();
        let mut queue = VecDeque::from([start]);
        let mut seen = BTreeSet::from([start]);
        while let Some(node) = queue.pop_front() {
            for (next, kinds) in self.successors(node, allowed) {
                if !within.contains(&next) || !seen.insert(next) {
                    continue;
                }
                let kind = kinds.pick(allowed)?;
                parent.insert(next, (node, kind));
                if next == goal {
                    return Some(unwind(&parent, start, goal));
                }
                queue.push_back(next);
            }
        }
        None
    }

    /// The edges from `node` within `within` whose kinds include `kind`.
    pub(crate) fn edges_of(
        &self,
        node: usize,
        kind: EdgeKind,
        within: &BTreeSet<usize>,
    ) -> Vec<usize> {
        self.successors(node, Kinds::of(&[kind]))
            .map(|(to, _)| to)
            .filter(|to| within.contains(to))
            .collect()
    }
}

fn unwind(parent: &BTreeMap<usize, (usize, EdgeKind)>, start: usize, goal: usize) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut node = goal;
    while node != start {
        let (from, kind) = parent[&node];
        steps.push(Step {
            from,
            to: node,
            kind,
        });
        node = from;
    }
    steps.reverse();
    steps
}

#[derive(Default)]
struct Tarjan {
    next: usize,
    index: BTreeMap<usize, usize>,
    low: BTreeMap<usize, usize>,
    stack: Vec<usize>,
    on_stack: BTreeSet<usize>,
    components: Vec<Vec<usize>>,
}

impl Tarjan {
    fn visit(&mut self, node: usize) {
        self.index.insert(node, self.next);
        self.low.insert(node, self.next);
        self.next += 1;
        self.stack.push(node);
        self.on_stack.insert(node);
    }

    /// Depth-first from `root` with an explicit stack of (node, successors).
    fn run(&mut self, graph: &Graph, root: usize) {
        let all = Kinds(u8::MAX);
        let successors = |n: usize| {
            graph
                .successors(n, all)
                .map(|(to, _)| to)
                .collect::<Vec<_>>()
        };
        self.visit(root);
        let mut work = vec![(root, successors(root), 0_usize)];
        while let Some((node, next, at)) = work.last_mut() {
            let node = *node;
            if let Some(&child) = next.get(*at) {
                *at += 1;
                if !self.index.contains_key(&child) {
                    self.visit(child);
                    work.push((child, successors(child), 0));
                } else if self.on_stack.contains(&child) {
                    let low = self.low[&node].min(self.index[&child]);
                    self.low.insert(node, low);
                }
                continue;
            }
            work.pop();
            if let Some((parent, _, _)) = work.last() {
                let low = self.low[parent].min(self.low[&node]);
                self.low.insert(*parent, low);
            }
            if self.low[&node] == self.index[&node] {
                let mut component = Vec::new();
                while let Some(member) = self.stack.pop() {
                    self.on_stack.remove(&member);
                    component.push(member);
                    if member == node {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort_unstable();
                    self.components.push(component);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_and_paths() {
        let mut g = Graph::default();
        g.link(1, 2, EdgeKind::Ww, String::new);
        g.link(2, 3, EdgeKind::Wr, String::new);
        g.link(3, 1, EdgeKind::Rw, String::new);
        g.link(3, 4, EdgeKind::Ww, String::new);
        g.link(5, 5, EdgeKind::Ww, String::new);
        assert_eq!(g.components(), vec![vec![1, 2, 3]]);
        let within: BTreeSet<usize> = [1, 2, 3].into();
        let data = Kinds::of(&[EdgeKind::Ww, EdgeKind::Wr]);
        assert!(g.path(1, 1, data, &within).is_none(), "no cycle without rw");
        let all = Kinds::of(&[EdgeKind::Ww, EdgeKind::Wr, EdgeKind::Rw]);
        let path = g.path(2, 1, all, &within).unwrap();
        let kinds: Vec<EdgeKind> = path.iter().map(|s| s.kind).collect();
        assert_eq!(kinds, vec![EdgeKind::Wr, EdgeKind::Rw]);
    }
}
