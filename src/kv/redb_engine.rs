//! The redb engine: durable storage in pure Rust.
//!
//! RocksDB is the production engine, but it needs a C++ build of about 15
//! minutes and libclang for its bindings. redb is a copy-on-write B-tree in
//! one file, written in Rust, with ACID write transactions and snapshot
//! reads, so a fresh machine that has only the Rust toolchain can run a
//! durable cluster (the README's example does). Every [`WriteBatch`] is one
//! redb write transaction. A batch marked [`WriteBatch::set_durable`]
//! commits with [`Durability::Immediate`] (fsynced before `write` returns);
//! the others with [`Durability::None`], which redb makes durable together
//! with the next immediate commit, the same contract as RocksDB's sequential
//! write-ahead log.

use std::path::{Path, PathBuf};

use ::redb::{Database, Durability, ReadableDatabase, TableDefinition};
use bytes::Bytes;

use super::engine::{BatchOp, Engine, WriteBatch};
use super::error::EngineError;
use crate::Cause;

/// Every key of the store lives in this one table.
const DATA: TableDefinition<&[u8], &[u8]> = TableDefinition::new("certus");

/// A store's data file opened with redb.
#[derive(Debug)]
pub struct RedbEngine {
    db: Database,
    /// `None` on a storage backend of the caller's.
    path: Option<PathBuf>,
}

fn io(err: impl Into<::redb::Error>) -> EngineError {
    EngineError::Io(Cause::new(err.into()))
}

impl RedbEngine {
    /// The page cache [`RedbEngine::open`] gives: redb's own default, 1 GiB.
    pub const DEFAULT_CACHE_BYTES: usize = 1 << 30;

    /// Opens (creating if missing) the database file at `path`.
    ///
    /// # Errors
    /// [`EngineError::Io`] when the file cannot be opened (a missing parent
    /// directory, another process holding it, a damaged file).
    pub fn open(path: impl AsRef<Path>) -> Result<RedbEngine, EngineError> {
        RedbEngine::open_with_cache(path, RedbEngine::DEFAULT_CACHE_BYTES)
    }

    /// As [`RedbEngine::open`], with a page cache of `cache_bytes` (most of
    /// a node's memory once its data outgrows the cache).
    ///
    /// # Errors
    /// As [`RedbEngine::open`].
    pub fn open_with_cache(
        path: impl AsRef<Path>,
        cache_bytes: usize,
    ) -> Result<RedbEngine, EngineError> {
        let path = path.as_ref().to_path_buf();
        let created = !path.exists();
        let db = ::redb::Builder::new()
            .set_cache_size(cache_bytes)
            .create(&path)
            .map_err(io)?;
        if created {
            // A new file's name is durable only once its directory is.
            let dir = path.parent().filter(|dir| !dir.as_os_str().is_empty());
            std::fs::File::open(dir.unwrap_or(Path::new(".")))
                .and_then(|dir| dir.sync_all())
                .map_err(|err| EngineError::Io(Cause::new(err)))?;
        }
        RedbEngine::ready(db, Some(path))
    }

    /// Opens (creating if empty) a database on `backend`, with a page
    /// cache of `cache_bytes`: the simulation's disk
    /// ([`crate::simulation::InPlaceFile`]), say.
    ///
    /// # Errors
    /// [`EngineError::Io`] when the backend fails or holds a damaged file.
    pub fn open_backend(
        backend: impl ::redb::StorageBackend,
        cache_bytes: usize,
    ) -> Result<RedbEngine, EngineError> {
        let db = ::redb::Builder::new()
            .set_cache_size(cache_bytes)
            .create_with_backend(backend)
            .map_err(io)?;
        RedbEngine::ready(db, None)
    }

    /// Creates the table, so readers never meet a missing one.
    fn ready(db: Database, path: Option<PathBuf>) -> Result<RedbEngine, EngineError> {
        let txn = db.begin_write().map_err(io)?;
        txn.open_table(DATA).map_err(io)?;
        txn.commit().map_err(io)?;
        Ok(RedbEngine { db, path })
    }

    /// The database file, unless it is on a backend of the caller's.
    #[must_use]
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
}

impl RedbEngine {
    /// Up to `limit` entries of `start..end`, from the end with `rev`.
    fn range(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
        rev: bool,
    ) -> Result<Vec<(Bytes, Bytes)>, EngineError> {
        if start >= end {
            return Ok(Vec::new());
        }
        let txn = self.db.begin_read().map_err(io)?;
        let table = txn.open_table(DATA).map_err(io)?;
        let range = table.range(start..end).map_err(io)?;
        let entries: Box<dyn Iterator<Item = _>> = if rev {
            Box::new(range.rev())
        } else {
            Box::new(range)
        };
        let mut out = Vec::new();
        for entry in entries.take(limit) {
            let (key, value) = entry.map_err(io)?;
            out.push((
                Bytes::copy_from_slice(key.value()),
                Bytes::copy_from_slice(value.value()),
            ));
        }
        Ok(out)
    }
}

impl Engine for RedbEngine {
    fn get(&self, key: &[u8]) -> Result<Option<Bytes>, EngineError> {
        let txn = self.db.begin_read().map_err(io)?;
        let table = txn.open_table(DATA).map_err(io)?;
        let value = table.get(key).map_err(io)?;
        Ok(value.map(|guard| Bytes::copy_from_slice(guard.value())))
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
        let durability = if batch.is_durable() {
            Durability::Immediate
        } else {
            Durability::None
        };
        let mut txn = self.db.begin_write().map_err(io)?;
        txn.set_durability(durability).map_err(io)?;
        {
            let mut table = txn.open_table(DATA).map_err(io)?;
            for op in batch.ops() {
                match op {
                    BatchOp::Put { key, value } => {
                        table.insert(key.as_ref(), value.as_ref()).map_err(io)?;
                    }
                    BatchOp::Delete { key } => {
                        table.remove(key.as_ref()).map_err(io)?;
                    }
                }
            }
        }
        // Dropping an uncommitted transaction aborts it: all or nothing.
        txn.commit().map_err(io)
    }
}
