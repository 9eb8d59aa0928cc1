//! Histories as Jepsen records them: invocations and completions of
//! transactions, each a list of micro-operations (sans-IO).

use std::collections::BTreeMap;

/// A key. Elle's histories use integers or strings; both are kept as text.
pub type Key = String;

/// One micro-operation of a transaction: list-append (`Append`, `Read`) or
/// rw-register (`Write`, `ReadRegister`). A history uses one family only.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mop {
    /// `[:append k e]`: append element `e` to the list at `k`.
    Append {
        /// The key.
        key: Key,
        /// The element; unique per key across the history.
        element: i64,
    },
    /// `[:r k v]`: read the list at `k`; `None` in an invocation or when
    /// the value is unknown.
    Read {
        /// The key.
        key: Key,
        /// The elements read, in order.
        elements: Option<Vec<i64>>,
    },
    /// `[:w k v]`: set the register at `k` to `v`.
    Write {
        /// The key.
        key: Key,
        /// The value; unique per key across the history.
        value: i64,
    },
    /// `[:r k v]` of a register: in a completion, `None` is nil (the key
    /// had no value); an invocation's read values mean nothing.
    ReadRegister {
        /// The key.
        key: Key,
        /// The value read.
        value: Option<i64>,
    },
}

impl Mop {
    /// The key it touches.
    #[must_use]
    pub fn key(&self) -> &Key {
        match self {
            Mop::Append { key, .. }
            | Mop::Read { key, .. }
            | Mop::Write { key, .. }
            | Mop::ReadRegister { key, .. } => key,
        }
    }

    /// Whether it belongs to the rw-register family.
    #[must_use]
    pub fn is_register(&self) -> bool {
        matches!(self, Mop::Write { .. } | Mop::ReadRegister { .. })
    }
}

/// What an event says about its operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventType {
    /// The client began the operation.
    Invoke,
    /// It committed; its reads are trustworthy.
    Ok,
    /// It certainly had no effect (a certification abort).
    Fail,
    /// Its outcome is unknown: it may take effect at any later point.
    Info,
}

/// One event of a history.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Event {
    /// Position in the history.
    pub index: usize,
    /// Monotonic time in nanoseconds.
    pub time: u64,
    /// The single-threaded client that issued it.
    pub process: u64,
    /// Invocation or completion.
    pub kind: EventType,
    /// The transaction's micro-operations.
    pub value: Vec<Mop>,
}

impl Event {
    /// An event; `index` is assigned by [`History::new`].
    #[must_use]
    pub fn new(process: u64, kind: EventType, time: u64, value: Vec<Mop>) -> Self {
        Event {
            index: 0,
            time,
            process,
            kind,
            value,
        }
    }
}

/// How a transaction ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ok,
    Fail,
    Info,
}

/// A transaction: an invocation and its completion.
#[derive(Clone, Debug)]
pub(crate) struct Txn {
    pub(crate) process: u64,
    /// Index of the invocation event.
    pub(crate) invoked: usize,
    /// Index of the completion event; `None` when it never completed.
    pub(crate) completed: Option<usize>,
    pub(crate) outcome: Outcome,
    /// The completion's micro-operations for `ok`, else the invocation's.
    pub(crate) mops: Vec<Mop>,
}

/// A history, checked to be well formed: every completion follows an
/// invocation of the same process.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    events: Vec<Event>,
}

/// Why events do not form a history.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HistoryError {
    /// A completion with no invocation open for its process.
    #[error("event {index}: process {process} completes an operation it never invoked")]
    Unmatched {
        /// The event.
        index: usize,
        /// Its process.
        process: u64,
    },
    /// An invocation while the process's previous operation is still open.
    #[error("event {index}: process {process} invokes while an operation is open")]
    Overlapping {
        /// The event.
        index: usize,
        /// Its process.
        process: u64,
    },
    /// The same element appended twice to one key.
    #[error("element {element} was appended to key {key} twice")]
    DuplicateAppend {
        /// The key.
        key: Key,
        /// The element.
        element: i64,
    },
    /// The same value was written to a register twice; values must be
    /// unique per key for versions to be told apart.
    #[error("value {value} was written to key {key} twice")]
    DuplicateWrite {
        /// The key.
        key: Key,
        /// The value written twice.
        value: i64,
    },
    /// The history mixes list-append and rw-register micro-ops.
    #[error("the history mixes list-append and rw-register micro-ops")]
    MixedKinds,
    /// Input that is not a history.
    #[error("malformed history: {at}{problem}")]
    Malformed {
        /// Where.
        at: At,
        /// What is wrong there.
        #[source]
        problem: Malformed,
    },
}

/// Where in its input a history is malformed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum At {
    /// The input as a whole.
    Input,
    /// A line of JSON Lines, from 1.
    Line(usize),
    /// An event, from 0.
    Event(usize),
}

impl std::fmt::Display for At {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            At::Input => Ok(()),
            At::Line(n) => write!(f, "line {n}: "),
            At::Event(n) => write!(f, "event {n}: "),
        }
    }
}

/// What is wrong with input that should be a history; `found` fields show
/// the offending JSON.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Malformed {
    /// Not JSON.
    #[error("{0}")]
    Json(#[source] crate::Cause),
    /// An event's type is not one of Elle's.
    #[error("type {found} is not invoke, ok, fail or info")]
    Type {
        /// The type given.
        found: String,
    },
    /// An event without a usable process.
    #[error("process must be a non-negative integer")]
    Process,
    /// An event's value is not a list.
    #[error("value {found} is not a list of micro-ops")]
    Value {
        /// The value given.
        found: String,
    },
    /// A micro-op that is not a three-element list.
    #[error("micro-op {found} is not [f, key, value]")]
    MopShape {
        /// The micro-op given.
        found: String,
    },
    /// A micro-op whose function is not one of ours.
    #[error("micro-op {found} is not append, w or r")]
    MopFunction {
        /// The micro-op given.
        found: String,
    },
    /// A key that is neither a number nor a string.
    #[error("key {found} is neither a number nor a string")]
    Key {
        /// The key given.
        found: String,
    },
    /// An element or register value that is not an integer.
    #[error("element {found} is not an integer")]
    Element {
        /// The element given.
        found: String,
    },
    /// A read whose value is not a list, an integer or null.
    #[error("read value {found} is not a list, an integer or null")]
    Read {
        /// The value given.
        found: String,
    },
}

impl History {
    /// A history of `events`, numbered in order.
    ///
    /// # Errors
    /// [`HistoryError`] when processes overlap or complete what they never
    /// invoked, or when list-append and rw-register micro-ops are mixed.
    pub fn new(mut events: Vec<Event>) -> Result<History, HistoryError> {
        for (index, event) in events.iter_mut().enumerate() {
            event.index = index;
        }
        let mut mops = events.iter().flat_map(|e| e.value.iter());
        let register = mops.clone().any(Mop::is_register);
        if register && mops.any(|m| !m.is_register()) {
            return Err(HistoryError::MixedKinds);
        }
        let history = History { events };
        history.transactions()?;
        Ok(history)
    }

    /// Whether this is an rw-register history (else list-append).
    #[must_use]
    pub fn is_register(&self) -> bool {
        self.events
            .iter()
            .flat_map(|e| e.value.iter())
            .any(Mop::is_register)
    }

    /// The events, in order.
    #[must_use]
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// Pairs invocations with completions. An operation never completed is
    /// indeterminate (`info`).
    pub(crate) fn transactions(&self) -> Result<Vec<Txn>, HistoryError> {
        let mut open: BTreeMap<u64, usize> = BTreeMap::new();
        let mut txns: Vec<Txn> = Vec::new();
        for event in &self.events {
            let (index, process) = (event.index, event.process);
            if event.kind == EventType::Invoke {
                if open.contains_key(&process) {
                    return Err(HistoryError::Overlapping { index, process });
                }
                open.insert(process, txns.len());
                txns.push(Txn {
                    process,
                    invoked: index,
                    completed: None,
                    outcome: Outcome::Info,
                    mops: event.value.clone(),
                });
                continue;
            }
            let txn = open
                .remove(&process)
                .ok_or(HistoryError::Unmatched { index, process })?;
            let txn = &mut txns[txn];
            txn.completed = Some(index);
            txn.outcome = match event.kind {
                EventType::Ok => Outcome::Ok,
                EventType::Fail => Outcome::Fail,
                _ => Outcome::Info,
            };
            if txn.outcome == Outcome::Ok {
                txn.mops = event.value.clone();
            }
        }
        Ok(txns)
    }
}

/// A transaction's name in explanations.
pub(crate) fn name(txns: &[Txn], id: usize) -> String {
    let txn = &txns[id];
    let outcome = match txn.outcome {
        Outcome::Ok => "ok",
        Outcome::Fail => "fail",
        Outcome::Info => "info",
    };
    format!("T{id} (process {}, {outcome})", txn.process)
}
