//! Executing ordered operations against the store: [`Executor`] is what
//! the program that submits operations supplies (the Redis server's command
//! interpreter), [`Execution`] the keyspace one operation runs against.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;

use super::error::KvError;
use super::gc::Hidden;
use super::keyspace::{Keyspace, merged_scan, merged_scan_rev};
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
///
/// Keys read from the store are remembered (up to 256 KiB of keys
/// and values) with the version they found: a command that reads a key
/// twice (`SET` looks at the old record, then stores over it) reads the
/// engine once, and a write to a key read before knows the version it
/// hides, which garbage collection then removes without a scan.
#[derive(Debug)]
pub struct Execution<'a> {
    mvcc: &'a MvccStore,
    seqno: Seqno,
    time: ClusterTime,
    writes: BTreeMap<Bytes, Option<Bytes>>,
    reads: HashMap<Bytes, Read>,
    reads_bytes: usize,
}

/// What a read of the store found: the newest version below the
/// operation, if any, and its value (`None` for a tombstone).
#[derive(Clone, Debug)]
struct Read {
    version: Option<Seqno>,
    value: Option<Bytes>,
}

/// The keys and values one operation remembers having read.
const READS_BYTES: usize = 256 * 1024;

impl<'a> Execution<'a> {
    pub(super) fn new(mvcc: &'a MvccStore, seqno: Seqno, time: ClusterTime) -> Self {
        Execution {
            mvcc,
            seqno,
            time,
            writes: BTreeMap::new(),
            reads: HashMap::new(),
            reads_bytes: 0,
        }
    }

    /// The operation's position.
    #[must_use]
    pub fn seqno(&self) -> Seqno {
        self.seqno
    }

    /// Drops every write the operation made so far: it then ends as if it
    /// had written nothing (an executor that finds the operation must run
    /// again with a wider scope, on every node alike, abandons it so).
    pub fn discard(&mut self) {
        self.writes.clear();
    }

    /// The writes made (`None` for a delete), each with the version it
    /// hides as far as the operation's reads know it.
    pub(super) fn into_writes(self) -> impl Iterator<Item = (Bytes, Option<Bytes>, Hidden)> {
        let reads = self.reads;
        self.writes.into_iter().map(move |(key, value)| {
            let hidden = match reads.get(&key) {
                None => Hidden::Unknown,
                Some(Read { version: None, .. }) => Hidden::Nothing,
                Some(Read {
                    version: Some(seqno),
                    ..
                }) => Hidden::At(*seqno),
            };
            (key, value, hidden)
        })
    }

    /// Reads `key` from the store below the operation, remembering what it
    /// found while the remembered reads stay within `READS_BYTES`.
    fn read_stored(&mut self, key: &[u8]) -> Result<Option<Bytes>, KvError> {
        if let Some(read) = self.reads.get(key) {
            return Ok(read.value.clone());
        }
        let found = self.mvcc.version_at(key, self.read_view())?;
        let (version, value) = match found {
            None => (None, None),
            Some((seqno, value)) => (Some(seqno), value),
        };
        let bytes = key.len() + value.as_ref().map_or(0, Bytes::len);
        if self.reads_bytes + bytes <= READS_BYTES {
            self.reads_bytes += bytes;
            let read = Read {
                version,
                value: value.clone(),
            };
            self.reads.insert(Bytes::copy_from_slice(key), read);
        }
        Ok(value)
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
        self.read_stored(key)
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

    fn scan_rev(
        &mut self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Bytes, Bytes)>, KvError> {
        let (mvcc, view) = (self.mvcc, self.read_view());
        let mut fetch = |upper: &[u8], n: usize| Ok(mvcc.scan_live_rev(view, start, upper, n)?);
        merged_scan_rev(&self.writes, &mut fetch, start, end, limit)
    }

    fn time(&self) -> ClusterTime {
        self.time
    }
}
