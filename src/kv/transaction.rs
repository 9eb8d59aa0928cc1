//! [`KvTransaction`]: snapshot reads with the transaction's own writes
//! visible, and writes recorded for certification.

use std::sync::Arc;

use bytes::Bytes;

use super::error::KvError;
use super::keyspace::{Keyspace, merged_scan, merged_scan_rev};
use super::mvcc::MvccStore;
use crate::ids::{ClusterTime, Seqno};
use crate::node::{CommitOutcome, Transaction};

/// A store transaction. Reads see the snapshot at the read view plus this
/// transaction's own writes; dropping it rolls it back.
#[derive(Debug)]
pub struct KvTransaction {
    txn: Transaction,
    mvcc: Arc<MvccStore>,
}

impl KvTransaction {
    pub(super) fn new(txn: Transaction, mvcc: Arc<MvccStore>) -> Self {
        KvTransaction { txn, mvcc }
    }

    /// The snapshot this transaction reads.
    #[must_use]
    pub fn read_view(&self) -> Seqno {
        self.txn.read_view()
    }

    /// The value of `key`. Serializable transactions are certified against
    /// every key read here.
    ///
    /// # Errors
    /// [`KvError`] from the engine, or a write-set over the size limit.
    pub fn get(&mut self, key: &[u8]) -> Result<Option<Bytes>, KvError> {
        if let Some(pending) = self.txn.pending_write(key) {
            return Ok(pending.cloned());
        }
        self.txn.record_read(Bytes::copy_from_slice(key))?;
        Ok(self.mvcc.read_at(key, self.txn.read_view())?)
    }

    /// Declares `key` as read without reading it (Redis's `WATCH`): a
    /// serializable transaction then aborts when `key` was written after
    /// its read view. Snapshot transactions ignore it.
    ///
    /// # Errors
    /// A write-set over the size limit.
    pub fn watch(&mut self, key: impl Into<Bytes>) -> Result<(), KvError> {
        Ok(self.txn.record_read(key)?)
    }

    /// Sets `key` to `value`: an update when the row exists in this
    /// transaction's view, an insert (an exclusive key) when it does not.
    ///
    /// # Errors
    /// [`KvError`] from the engine, or a write-set over the size limit.
    pub fn put(&mut self, key: impl Into<Bytes>, value: impl Into<Bytes>) -> Result<(), KvError> {
        let key = key.into();
        let exists = match self.txn.pending_write(&key) {
            Some(pending) => pending.is_some(),
            None => self.mvcc.read_at(&key, self.txn.read_view())?.is_some(),
        };
        if exists {
            self.txn.put(key, value)?;
        } else {
            self.txn.insert(key, value)?;
        }
        Ok(())
    }

    /// Deletes `key` (an exclusive key).
    ///
    /// # Errors
    /// A write-set over the size limit.
    pub fn delete(&mut self, key: impl Into<Bytes>) -> Result<(), KvError> {
        Ok(self.txn.delete(key)?)
    }

    /// The cluster time at the read view ([`Transaction::read_time`]).
    #[must_use]
    pub fn time(&self) -> ClusterTime {
        self.txn.read_time()
    }

    /// The first `limit` live keys in `start..end` at the read view, with
    /// this transaction's own writes; see [`Keyspace::scan`].
    ///
    /// # Errors
    /// [`KvError`] from the engine.
    pub fn scan(
        &mut self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Bytes, Bytes)>, KvError> {
        let (mvcc, view) = (&self.mvcc, self.txn.read_view());
        let mut fetch = |from: &[u8], n: usize| Ok(mvcc.scan_live(view, from, end, n)?);
        merged_scan(self.txn.pending_writes(), &mut fetch, start, end, limit)
    }

    /// The last `limit` live keys in `start..end`, descending, with this
    /// transaction's own writes; see [`Keyspace::scan_rev`].
    ///
    /// # Errors
    /// [`KvError`] from the engine.
    pub fn scan_rev(
        &mut self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Bytes, Bytes)>, KvError> {
        let (mvcc, view) = (&self.mvcc, self.txn.read_view());
        let mut fetch = |upper: &[u8], n: usize| Ok(mvcc.scan_live_rev(view, start, upper, n)?);
        merged_scan_rev(self.txn.pending_writes(), &mut fetch, start, end, limit)
    }

    /// Certifies and replicates the transaction; see [`Transaction::commit`].
    ///
    /// # Errors
    /// [`KvError::Node`] as [`Transaction::commit`] reports it.
    pub async fn commit(self) -> Result<CommitOutcome, KvError> {
        Ok(self.txn.commit().await?)
    }
}

impl Keyspace for KvTransaction {
    fn get(&mut self, key: &[u8]) -> Result<Option<Bytes>, KvError> {
        KvTransaction::get(self, key)
    }

    fn put(&mut self, key: Bytes, value: Bytes) -> Result<(), KvError> {
        KvTransaction::put(self, key, value)
    }

    fn delete(&mut self, key: Bytes) -> Result<(), KvError> {
        KvTransaction::delete(self, key)
    }

    fn scan(
        &mut self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Bytes, Bytes)>, KvError> {
        KvTransaction::scan(self, start, end, limit)
    }

    fn scan_rev(
        &mut self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Bytes, Bytes)>, KvError> {
        KvTransaction::scan_rev(self, start, end, limit)
    }

    fn time(&self) -> ClusterTime {
        KvTransaction::time(self)
    }
}
