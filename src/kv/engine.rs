//! The ordered key-value engine the store keeps its MVCC data in.

use bytes::Bytes;

use super::error::EngineError;

/// One change in a [`WriteBatch`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BatchOp {
    /// Set `key` to `value`.
    Put {
        /// Engine key.
        key: Bytes,
        /// Engine value.
        value: Bytes,
    },
    /// Remove `key`.
    Delete {
        /// Engine key.
        key: Bytes,
    },
}

/// Changes applied atomically by [`Engine::write`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteBatch {
    ops: Vec<BatchOp>,
    /// Whether `write` must put the batch, and everything written before
    /// it, on stable storage before returning.
    durable: bool,
}

impl WriteBatch {
    /// An empty batch.
    #[must_use]
    pub fn new() -> Self {
        WriteBatch::default()
    }

    /// Adds a put.
    pub fn put(&mut self, key: impl Into<Bytes>, value: impl Into<Bytes>) {
        self.ops.push(BatchOp::Put {
            key: key.into(),
            value: value.into(),
        });
    }

    /// Adds a delete.
    pub fn delete(&mut self, key: impl Into<Bytes>) {
        self.ops.push(BatchOp::Delete { key: key.into() });
    }

    /// The changes, in the order added.
    #[must_use]
    pub fn ops(&self) -> &[BatchOp] {
        &self.ops
    }

    /// Consumes the batch.
    #[must_use]
    pub fn into_ops(self) -> Vec<BatchOp> {
        self.ops
    }

    /// Asks the engine to make this batch, and every batch written before
    /// it, durable (fsync) before [`Engine::write`] returns.
    pub fn set_durable(&mut self) {
        self.durable = true;
    }

    /// Whether the batch must be durable when written.
    #[must_use]
    pub fn is_durable(&self) -> bool {
        self.durable
    }

    /// Whether the batch holds no changes.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// An ordered, atomic-batch key-value engine: the in-memory engine for
/// tests, RocksDB in production. Keys compare as bytes.
pub trait Engine: Send + Sync + 'static {
    /// The value at `key`.
    ///
    /// # Errors
    /// [`EngineError`] when the engine cannot read.
    fn get(&self, key: &[u8]) -> Result<Option<Bytes>, EngineError>;

    /// Up to `limit` entries with keys in `start..end`, in key order.
    ///
    /// # Errors
    /// [`EngineError`] when the engine cannot read.
    fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Bytes, Bytes)>, EngineError>;

    /// Up to `limit` entries with keys in `start..end`, in descending key
    /// order: the last ones of the range first. The default reads the
    /// range forward and keeps the last `limit`; an engine with a reverse
    /// iterator answers from the end instead.
    ///
    /// # Errors
    /// [`EngineError`] when the engine cannot read.
    fn scan_rev(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Bytes, Bytes)>, EngineError> {
        super::keyspace::last_of(start, limit, |from, n| self.scan(from, end, n))
    }

    /// Applies every change in `batch`, all or none, in order (a later
    /// change to the same key wins). A durable batch is on stable storage,
    /// with everything written before it, when this returns.
    ///
    /// # Errors
    /// [`EngineError`] when the engine cannot write; nothing was applied.
    fn write(&self, batch: WriteBatch) -> Result<(), EngineError>;
}

impl std::fmt::Debug for dyn Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("dyn Engine")
    }
}
