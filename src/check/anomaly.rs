//! What the checker reports: anomalies named as Elle names them, each with
//! the evidence explained in words.

/// A kind of anomaly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum AnomalyKind {
    /// A cycle of write-write dependencies.
    G0,
    /// A committed read of a failed transaction's write.
    G1a,
    /// A read of a write that its transaction later overwrote.
    G1b,
    /// A cycle of write-write and write-read dependencies.
    G1c,
    /// A cycle with exactly one read-write anti-dependency (read skew).
    GSingle,
    /// A cycle with several anti-dependencies, none adjacent.
    GNonadjacent,
    /// A cycle with adjacent anti-dependencies (write skew).
    G2Item,
    /// Two committed transactions read the same version of a key and both
    /// wrote it.
    LostUpdate,
    /// A read that contradicts the transaction's own earlier reads or writes.
    Internal,
    /// A read that holds one element twice.
    DuplicateElements,
    /// Two reads of one key, neither a prefix of the other.
    IncompatibleOrder,
    /// Register versions whose inferred order is cyclic (a version both
    /// before and after another).
    CyclicVersions,
}

/// Which orders a cycle needed besides the data dependencies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Via {
    /// Data dependencies alone.
    Data,
    /// Also the order of one process's operations.
    Process,
    /// Also real-time order (one completed before the other began).
    Realtime,
}

/// One anomaly found.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Anomaly {
    /// What it is.
    pub kind: AnomalyKind,
    /// For cycles: which orders it needed.
    pub via: Via,
    /// The evidence, in words.
    pub explanation: String,
}

impl Anomaly {
    /// Elle's name: `G-single`, `G2-item-realtime`, `lost-update`, ...
    #[must_use]
    pub fn name(&self) -> String {
        let base = match self.kind {
            AnomalyKind::G0 => "G0",
            AnomalyKind::G1a => "G1a",
            AnomalyKind::G1b => "G1b",
            AnomalyKind::G1c => "G1c",
            AnomalyKind::GSingle => "G-single",
            AnomalyKind::GNonadjacent => "G-nonadjacent",
            AnomalyKind::G2Item => "G2-item",
            AnomalyKind::LostUpdate => "lost-update",
            AnomalyKind::Internal => "internal",
            AnomalyKind::DuplicateElements => "duplicate-elements",
            AnomalyKind::IncompatibleOrder => "incompatible-order",
            AnomalyKind::CyclicVersions => "cyclic-versions",
        };
        match self.via {
            Via::Data => base.to_string(),
            Via::Process => format!("{base}-process"),
            Via::Realtime => format!("{base}-realtime"),
        }
    }

    /// The weakest consistency model this anomaly rules out (and with it
    /// every stronger one).
    #[must_use]
    pub fn rules_out(&self) -> &'static str {
        match (self.kind, self.via) {
            (_, Via::Realtime) => "strict serializable / strong snapshot isolation",
            (_, Via::Process) => "strong session serializable / strong session SI",
            (AnomalyKind::G0 | AnomalyKind::DuplicateElements | AnomalyKind::CyclicVersions, _) => {
                "read uncommitted"
            }
            (
                AnomalyKind::G1a
                | AnomalyKind::G1b
                | AnomalyKind::G1c
                | AnomalyKind::IncompatibleOrder,
                _,
            ) => "read committed",
            (AnomalyKind::Internal, _) => "read atomic",
            (AnomalyKind::LostUpdate, _) => "cursor stability (and SI)",
            (AnomalyKind::GSingle, _) => "consistent view (and SI)",
            (AnomalyKind::GNonadjacent, _) => "snapshot isolation",
            (AnomalyKind::G2Item, _) => "repeatable read (serializable; SI allows it)",
        }
    }
}

/// A checker's verdict on a history.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Report {
    /// Every anomaly found, most severe kind first.
    pub anomalies: Vec<Anomaly>,
}

impl Report {
    /// The anomalies' names, sorted and without repeats.
    #[must_use]
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.anomalies.iter().map(Anomaly::name).collect();
        names.sort();
        names.dedup();
        names
    }

    /// Whether the history is free of anomalies, allowing those `allowed`
    /// (for example `["G2-item"]` when checking snapshot isolation).
    #[must_use]
    pub fn is_valid_except(&self, allowed: &[&str]) -> bool {
        self.names().iter().all(|n| allowed.contains(&n.as_str()))
    }
}

/// An anomaly found in the data itself (not through process or realtime
/// order).
pub(crate) fn anomaly(kind: AnomalyKind, explanation: String) -> Anomaly {
    Anomaly {
        kind,
        via: Via::Data,
        explanation,
    }
}
