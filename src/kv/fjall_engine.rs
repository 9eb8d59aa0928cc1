//! The fjall engine: a log-structured merge tree in pure Rust.
//!
//! fjall (<https://github.com/fjall-rs/fjall>) is an LSM tree in the shape
//! of RocksDB: a write appends to a journal and a memtable, and background
//! threads flush memtables to sorted tables and compact them. A write is a
//! sequential append, where redb's copy-on-write B-tree rewrites a path of
//! pages per commit, and it builds with the Rust toolchain alone, where
//! RocksDB needs a C++ build and libclang.
//!
//! Every [`WriteBatch`] is one fjall write batch, atomic through the
//! journal. Each batch is handed to the operating system when it commits
//! (it survives the process, not the machine); a batch marked
//! [`WriteBatch::set_durable`] is also `fdatasync`ed before `write`
//! returns, and because the journal is sequential so is every batch
//! written before it: the contract of RocksDB's write-ahead log.
//!
//! After an I/O error fjall refuses every further write (it is
//! "poisoned"), as redb does; the store's owner opens the directory again,
//! and fjall recovers from its journal.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode, Readable};

use super::engine::{BatchOp, Engine, WriteBatch};
use super::error::EngineError;
use crate::Cause;

/// Every key of the store lives in this one keyspace.
const DATA: &str = "certus";

/// A store's data directory opened with fjall.
pub struct FjallEngine {
    db: Database,
    data: Keyspace,
    path: PathBuf,
}

impl std::fmt::Debug for FjallEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FjallEngine")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn io(err: fjall::Error) -> EngineError {
    EngineError::Io(Cause::new(err))
}

impl FjallEngine {
    /// The block cache [`FjallEngine::open`] gives: 256 MiB.
    pub const DEFAULT_CACHE_BYTES: u64 = 256 << 20;

    /// Background threads for flushes and compactions: two, where fjall
    /// would start one per core up to four, so on a larger machine a
    /// node's compactions leave cores to its own threads.
    const WORKER_THREADS: usize = 2;

    /// Opens (creating if missing) the database in directory `path`.
    ///
    /// # Errors
    /// [`EngineError::Io`] when fjall cannot open it (a missing parent
    /// directory, another process holding it, damaged files).
    pub fn open(path: impl AsRef<Path>) -> Result<FjallEngine, EngineError> {
        FjallEngine::open_with_cache(path, FjallEngine::DEFAULT_CACHE_BYTES)
    }

    /// As [`FjallEngine::open`], with a block cache of `cache_bytes`.
    ///
    /// # Errors
    /// As [`FjallEngine::open`].
    pub fn open_with_cache(
        path: impl AsRef<Path>,
        cache_bytes: u64,
    ) -> Result<FjallEngine, EngineError> {
        let path = path.as_ref().to_path_buf();
        let db = Database::builder(&path)
            .cache_size(cache_bytes)
            .worker_threads(Self::WORKER_THREADS)
            .open()
            .map_err(io)?;
        let data = db
            .keyspace(DATA, KeyspaceCreateOptions::default)
            .map_err(io)?;
        Ok(FjallEngine { db, data, path })
    }

    /// The database directory.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl FjallEngine {
    /// Up to `limit` entries of `start..end`, from the end with `rev`.
    fn range(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
        rev: bool,
    ) -> Result<Vec<(Bytes, Bytes)>, EngineError> {
        if limit == 0 || start >= end {
            return Ok(Vec::new());
        }
        // Through a snapshot: the keyspace's own `range` reads at the
        // newest sequence number, which shows a batch still being written
        // in part (a scan saw a deleted row alive while garbage collection
        // removed its tombstone and the version it hid in one batch); a
        // snapshot reads at the last fully written one.
        let snapshot = self.db.snapshot();
        let range = snapshot.range(&self.data, start..end);
        let guards: Box<dyn Iterator<Item = _>> = if rev {
            Box::new(range.rev())
        } else {
            Box::new(range)
        };
        let mut out = Vec::new();
        for guard in guards {
            let (key, value) = guard.into_inner().map_err(io)?;
            out.push((Bytes::copy_from_slice(&key), Bytes::copy_from_slice(&value)));
            if out.len() == limit {
                break;
            }
        }
        Ok(out)
    }
}

impl Engine for FjallEngine {
    fn get(&self, key: &[u8]) -> Result<Option<Bytes>, EngineError> {
        let value = self.data.get(key).map_err(io)?;
        Ok(value.map(|value| Bytes::copy_from_slice(&value)))
    }

    fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Bytes, Bytes)>, EngineError> {
        self.range(start, end, limit, false)
    }

    fn scan_rev(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Bytes, Bytes)>, EngineError> {
        self.range(start, end, limit, true)
    }

    fn write(&self, batch: WriteBatch) -> Result<(), EngineError> {
        let durable = batch.is_durable();
        let ops = batch.into_ops();
        let mut fjall = self
            .db
            .batch()
            .durability(durable.then_some(PersistMode::SyncData));
        for op in ops {
            match op {
                BatchOp::Put { key, value } => fjall.insert(&self.data, &key[..], &value[..]),
                BatchOp::Delete { key } => fjall.remove(&self.data, &key[..]),
            }
        }
        if fjall.is_empty() && durable {
            // Nothing to append, but the caller asked for everything
            // written so far to be on disk.
            return self.db.persist(PersistMode::SyncData).map_err(io);
        }
        fjall.commit().map_err(io)
    }
}
