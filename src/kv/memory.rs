//! An in-memory [`Engine`] for tests, examples and simulation.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use bytes::Bytes;

use super::engine::{BatchOp, Engine, WriteBatch};
use super::error::EngineError;

/// A sorted map behind a read-write lock. Keeping it in an `Arc` outside a
/// node lets a test restart the node on the same "disk".
#[derive(Debug, Default)]
pub struct MemoryEngine {
    map: RwLock<BTreeMap<Bytes, Bytes>>,
}

impl MemoryEngine {
    /// An empty engine.
    #[must_use]
    pub fn new() -> Self {
        MemoryEngine::default()
    }

    /// Number of engine entries (versions and metadata).
    #[must_use]
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether the engine holds nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    // A panic while holding the lock can only come from an allocation failure
    // inside a single BTreeMap operation, which leaves the map consistent.
    fn read(&self) -> RwLockReadGuard<'_, BTreeMap<Bytes, Bytes>> {
        self.map.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_lock(&self) -> RwLockWriteGuard<'_, BTreeMap<Bytes, Bytes>> {
        self.map.write().unwrap_or_else(PoisonError::into_inner)
    }
}

impl MemoryEngine {
    /// Up to `limit` entries of `start..end`, from the end with `rev`.
    fn range(&self, start: &[u8], end: &[u8], limit: usize, rev: bool) -> Vec<(Bytes, Bytes)> {
        if start >= end {
            return Vec::new();
        }
        let map = self.read();
        let range = map.range::<[u8], _>((Bound::Included(start), Bound::Excluded(end)));
        let entries: Box<dyn Iterator<Item = (&Bytes, &Bytes)>> = if rev {
            Box::new(range.rev())
        } else {
            Box::new(range)
        };
        entries
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

impl Engine for MemoryEngine {
    fn get(&self, key: &[u8]) -> Result<Option<Bytes>, EngineError> {
        Ok(self.read().get(key).cloned())
    }

    fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Bytes, Bytes)>, EngineError> {
        Ok(self.range(start, end, limit, false))
    }

    fn scan_rev(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Bytes, Bytes)>, EngineError> {
        Ok(self.range(start, end, limit, true))
    }

    fn write(&self, batch: WriteBatch) -> Result<(), EngineError> {
        let mut map = self.write_lock();
        for op in batch.into_ops() {
            match op {
                BatchOp::Put { key, value } => {
                    map.insert(key, value);
                }
                BatchOp::Delete { key } => {
                    map.remove(&key);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_is_ordered_bounded_and_limited() {
        let engine = MemoryEngine::new();
        let mut batch = WriteBatch::new();
        for key in ["a", "b", "c", "d"] {
            batch.put(key.as_bytes().to_vec(), key.as_bytes().to_vec());
        }
        batch.delete(b"c".to_vec());
        engine.write(batch).unwrap();
        let keys = |v: Vec<(Bytes, Bytes)>| v.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
        assert_eq!(keys(engine.scan(b"a", b"d", 10).unwrap()), ["a", "b"]);
        assert_eq!(keys(engine.scan(b"b", b"z", 1).unwrap()), ["b"]);
        assert!(engine.scan(b"z", b"a", 10).unwrap().is_empty());
        assert_eq!(engine.get(b"d").unwrap().as_deref(), Some(&b"d"[..]));
        assert_eq!(engine.get(b"c").unwrap(), None);
    }
}
