//! Executing ordered operations against the store: [`Executor`] is what
//! the program that submits operations supplies (the Redis server's command
//! interpreter), [`Execution`] the keyspace one operation runs against.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::error::KvError;
use super::keyspace::{Keyspace, merged_scan};
use super::mvcc::MvccStore;
use crate::ids::{ClusterTime, Seqno};
use crate::writeset::Operation;

/// Interprets operation payloads. Every node runs the same executor over
/// the same operations in the same order, so it must be deterministic: its
/// writes and its output may depend on the payload, on the keyspace it is
/// given (the state just before the operation's position) and on that
/// keyspace's [`Keyspace::time`], and on nothing else (no clock, no
/// randomness, no other state). It must touch only the keys the operation
/// declared, or keys that only it derives from them (an index entry of a
/// declared key), unless the operation's scope covers more.
pub trait Executor: Send + Sync + 'static {
    /// Runs `op`'s payload against `keys` and returns its output. A
    /// failure of the command itself belongs in the output; an `Err`
    /// (the engine failed) stops the node.
    ///
    /// # Errors
    /// [`KvError`] from the keyspace.
    fn execute(&self, op: &Operation, keys: &mut Execution<'_>) -> Result<Bytes, KvError>;
}

impl std::fmt::Debug for dyn Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("dyn Executor")
    }
}

/// The keyspace of one operation at position `seqno`: reads see every
/// version below `seqno` and the operation's own writes; writes are kept
/// until the operation ends and then stored at `seqno`.
#[derive(Debug)]
pub struct Execution<'a> {
    mvcc: &'a MvccStore,
    seqno: Seqno,
    time: ClusterTime,
    writes: BTreeMap<Bytes, Option<Bytes>>,
}

impl<'a> Execution<'a> {
    pub(super) fn new(mvcc: &'a MvccStore, seqno: Seqno, time: ClusterTime) -> Self {
        Execution {
            mvcc,
            seqno,
            time,
            writes: BTreeMap::new(),
        }
    }

    /// The operation's position.
    #[must_use]
    pub fn seqno(&self) -> Seqno {
        self.seqno
    }

    /// The writes made, `None` for a delete.
    pub(super) fn into_writes(self) -> BTreeMap<Bytes, Option<Bytes>> {
        self.writes
    }

    fn read_view(&self) -> Seqno {
        self.seqno.saturating_sub(1)
    }
}

impl Keyspace for Execution<'_> {
    fn get(&mut self, key: &[u8]) -> Result<Option<Bytes>, KvError> {
        if let Some(pending) = self.writes.get(key) {
            return Ok(pending.clone());
        }
        Ok(self.mvcc.read_at(key, self.read_view())?)
    }

    fn put(&mut self, key: Bytes, value: Bytes) -> Result<(), KvError> {
        self.writes.insert(key, Some(value));
        Ok(())
    }

    fn delete(&mut self, key: Bytes) -> Result<(), KvError> {
        self.writes.insert(key, None);
        Ok(())
    }

    fn scan(
        &mut self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Bytes, Bytes)>, KvError> {
        let (mvcc, view) = (self.mvcc, self.read_view());
        let mut fetch = |from: &[u8], n: usize| Ok(mvcc.scan_live(view, from, end, n)?);
        merged_scan(&self.writes, &mut fetch, start, end, limit)
    }

    fn time(&self) -> ClusterTime {
        self.time
    }
}
