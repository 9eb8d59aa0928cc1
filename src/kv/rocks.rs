//! The RocksDB engine (cargo feature `rocksdb`).
//!
//! Every [`WriteBatch`] becomes one RocksDB write batch, so it is atomic.
//! A batch marked [`WriteBatch::set_durable`] is written with `sync`: it is
//! on stable storage when `write` returns, and so is every batch written
//! before it, because RocksDB's write-ahead log is sequential. The store
//! marks the batch that moves the applied watermark, so apply batches stay
//! cheap and the watermark never claims more than the disk holds.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use rocksdb::{DB, DBCompressionType, Direction, IteratorMode, Options, ReadOptions, WriteOptions};

use super::engine::{BatchOp, Engine, WriteBatch};
use super::error::EngineError;
use crate::Cause;

/// A store's data directory opened with RocksDB.
#[derive(Debug)]
pub struct RocksEngine {
    db: DB,
    path: PathBuf,
}

fn io(err: &rocksdb::Error) -> EngineError {
    EngineError::Io(Cause::new(err.clone()))
}

impl RocksEngine {
    /// Opens (creating if missing) the database in `path`.
    ///
    /// # Errors
    /// [`EngineError::Io`] when RocksDB cannot open it (a missing parent
    /// directory, a lock held by another process, damaged files).
    pub fn open(path: impl AsRef<Path>) -> Result<RocksEngine, EngineError> {
        let path = path.as_ref().to_path_buf();
        let mut options = Options::default();
        options.create_if_missing(true);
        options.set_compression_type(DBCompressionType::Lz4);
        // Checksums on every block read, including compaction inputs.
        options.set_paranoid_checks(true);
        let db = DB::open(&options, &path).map_err(|e| io(&e))?;
        Ok(RocksEngine { db, path })
    }

    /// The database directory.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl RocksEngine {
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
        let mut options = ReadOptions::default();
        options.set_iterate_lower_bound(start.to_vec());
        options.set_iterate_upper_bound(end.to_vec());
        let mode = if rev {
            IteratorMode::End
        } else {
            IteratorMode::From(start, Direction::Forward)
        };
        let mut entries = Vec::new();
        for item in self.db.iterator_opt(mode, options) {
            let (key, value) = item.map_err(|e| io(&e))?;
            entries.push((Bytes::from(key.into_vec()), Bytes::from(value.into_vec())));
            if entries.len() == limit {
                break;
            }
        }
        Ok(entries)
    }
}

impl Engine for RocksEngine {
    fn get(&self, key: &[u8]) -> Result<Option<Bytes>, EngineError> {
        let value = self.db.get_pinned(key).map_err(|e| io(&e))?;
        Ok(value.map(|slice| Bytes::copy_from_slice(&slice)))
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
        let mut rocks = rocksdb::WriteBatch::default();
        for op in batch.into_ops() {
            match op {
                BatchOp::Put { key, value } => rocks.put(key, value),
                BatchOp::Delete { key } => rocks.delete(key),
            }
        }
        let mut options = WriteOptions::default();
        options.set_sync(durable);
        self.db.write_opt(rocks, &options).map_err(|e| io(&e))
    }
}
