//! The store's multi-version data: snapshot reads at a read view, apply of
//! replicated write-sets as [`crate::apply::Applier`], and garbage
//! collection.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;

use super::engine::{Engine, WriteBatch};
use super::error::{EngineError, KvError};
use super::execution::{Execution, Executor};
use super::gc::{Garbage, GcQueue, GcStats, Hidden};
use super::layout::{
    self, DATA_END, DATA_START, META_APPLIED, META_CHECKPOINT, META_END, META_START, META_TRANSFER,
};
use crate::Cause;
use crate::apply::{Applier, ApplyError, Recovered};
use crate::certify::CertCheckpoint;
use crate::ids::{ClusterTime, Seqno};
use crate::writeset::{Operation, RowOp, WriteSet};

/// Live rows read for a state transfer, and where to continue.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExportChunk {
    /// Keys and values, in key order.
    pub entries: Vec<(Bytes, Bytes)>,
    /// The key to continue after, while keys remain.
    pub next: Option<Bytes>,
}

/// Versions of every key, tagged with the seqno that wrote them.
#[derive(Debug)]
pub struct MvccStore {
    engine: Arc<dyn Engine>,
    gc: Mutex<GcQueue>,
    /// Watermark commits since the last durable one.
    lazy_commits: AtomicU32,
    /// What runs ordered operations; `None` for a store that submits none.
    executor: Option<Arc<dyn Executor>>,
}

/// Every this many watermark commits one is made durable even without a
/// checkpoint, which bounds what a restart replays from the log and lets
/// copy-on-write engines (redb) free their pages.
const SYNC_EVERY: u32 = 64;

impl MvccStore {
    /// Opens the MVCC layer over `engine`, keeping at most `gc_queue` keys
    /// queued for collection. The first collection scans everything, since
    /// what was queued before a restart is gone.
    #[must_use]
    pub fn new(engine: Arc<dyn Engine>, gc_queue: usize) -> Self {
        MvccStore {
            engine,
            gc: Mutex::new(GcQueue::new(gc_queue, true)),
            lazy_commits: AtomicU32::new(0),
            executor: None,
        }
    }

    /// Runs ordered operations with `executor`.
    #[must_use]
    pub fn with_executor(mut self, executor: Arc<dyn Executor>) -> Self {
        self.executor = Some(executor);
        self
    }

    fn gc_queue(&self) -> MutexGuard<'_, GcQueue> {
        // Queue operations cannot panic half-way; the queue stays consistent.
        self.gc.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The value of `key` as of `read_view`: the newest version at or below
    /// it, `None` when that is a tombstone or there is none.
    ///
    /// # Errors
    /// [`EngineError`] from the engine or for damaged versions.
    pub fn read_at(&self, key: &[u8], read_view: Seqno) -> Result<Option<Bytes>, EngineError> {
        Ok(self
            .version_at(key, read_view)?
            .and_then(|(_, value)| value))
    }

    /// The newest version of `key` at or below `read_view`: its seqno and
    /// its value (`None` for a tombstone); `None` when there is none.
    ///
    /// # Errors
    /// [`EngineError`] from the engine or for damaged versions.
    pub(crate) fn version_at(
        &self,
        key: &[u8],
        read_view: Seqno,
    ) -> Result<Option<(Seqno, Option<Bytes>)>, EngineError> {
        match self.newest_at(key, read_view)? {
            None => Ok(None),
            Some((engine_key, stored)) => {
                let (_, seqno) = layout::parse_version_key(&engine_key)?;
                Ok(Some((seqno, layout::decode_value(&stored)?)))
            }
        }
    }

    /// The engine key and stored bytes of `key`'s newest version at or
    /// below `read_view`: a one-entry read from there, which stops before
    /// older versions (and an LSM engine's tombstones of removed ones).
    fn newest_at(
        &self,
        key: &[u8],
        read_view: Seqno,
    ) -> Result<Option<(Bytes, Bytes)>, EngineError> {
        let start = layout::version_key(key, read_view);
        let end = layout::key_prefix_end(key);
        Ok(self.engine.scan(&start, &end, 1)?.pop())
    }

    /// Every live key and its value as of `read_view`, in key order.
    ///
    /// # Errors
    /// [`EngineError`] from the engine or for damaged versions.
    pub fn snapshot(&self, read_view: Seqno) -> Result<Vec<(Bytes, Bytes)>, EngineError> {
        let mut live = Vec::new();
        let mut after = None;
        loop {
            let chunk = self.export_chunk(read_view, after.as_deref(), 4096, usize::MAX)?;
            live.extend(chunk.entries);
            match chunk.next {
                Some(key) => after = Some(key),
                None => return Ok(live),
            }
        }
    }

    /// The live keys as of `read_view` that sort after `after` (from the
    /// first key when `None`), in key order: at most `max_keys`, and no more
    /// once `max_bytes` of keys and values are collected. Also returns the
    /// key to continue after, while keys remain.
    ///
    /// # Errors
    /// [`EngineError`] from the engine or for damaged versions.
    pub fn export_chunk(
        &self,
        read_view: Seqno,
        after: Option<&[u8]>,
        max_keys: usize,
        max_bytes: usize,
    ) -> Result<ExportChunk, EngineError> {
        let cursor = match after {
            Some(key) => layout::key_prefix_end(key),
            None => Bytes::from_static(layout::DATA_START),
        };
        let (entries, exhausted) =
            self.live_from(read_view, cursor, DATA_END, max_keys, max_bytes)?;
        let next = match exhausted {
            true => None,
            false => entries.last().map(|(key, _)| key.clone()),
        };
        Ok(ExportChunk { entries, next })
    }

    /// The first `limit` live keys as of `read_view` in `start..end` (user
    /// keys), with whether the range holds no more.
    ///
    /// # Errors
    /// [`EngineError`] from the engine or for damaged versions.
    pub fn scan_live(
        &self,
        read_view: Seqno,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<(Vec<(Bytes, Bytes)>, bool), EngineError> {
        let cursor = layout::key_prefix(start).freeze();
        let end = layout::key_prefix(end).freeze();
        self.live_from(read_view, cursor, &end, limit, usize::MAX)
    }

    /// The last `limit` live keys as of `read_view` in `start..end` (user
    /// keys), in descending order, with whether the range holds no more
    /// below them.
    ///
    /// # Errors
    /// [`EngineError`] from the engine or for damaged versions.
    pub fn scan_live_rev(
        &self,
        read_view: Seqno,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<(Vec<(Bytes, Bytes)>, bool), EngineError> {
        let lower = layout::key_prefix(start).freeze();
        let mut upper = layout::key_prefix(end).freeze();
        let mut live = Vec::new();
        while live.len() < limit {
            // The range's last engine key is its last user key's oldest
            // version; the read finds the one visible at the view.
            let Some((key, _)) = self.engine.scan_rev(&lower, &upper, 1)?.into_iter().next() else {
                return Ok((live, true));
            };
            let (user_key, _) = layout::parse_version_key(&key)?;
            if let Some(value) = self.read_at(&user_key, read_view)? {
                live.push((Bytes::from(user_key.clone()), value));
            }
            upper = layout::key_prefix(&user_key).freeze();
        }
        let exhausted = self.engine.scan_rev(&lower, &upper, 1)?.is_empty();
        Ok((live, exhausted))
    }

    /// Live keys from the engine key `cursor` to `end`: at most `max_keys`,
    /// and no more once `max_bytes` of keys and values are collected; and
    /// whether the range was read to its end.
    fn live_from(
        &self,
        read_view: Seqno,
        mut cursor: Bytes,
        end: &[u8],
        max_keys: usize,
        max_bytes: usize,
    ) -> Result<(Vec<(Bytes, Bytes)>, bool), EngineError> {
        let (mut live, mut bytes) = (Vec::new(), 0);
        while live.len() < max_keys && bytes < max_bytes {
            let Some((key, stored)) = self.engine.scan(&cursor, end, 1)?.into_iter().next() else {
                return Ok((live, true));
            };
            let (user_key, newest) = layout::parse_version_key(&key)?;
            // A key's first version is its newest: visible at the read view
            // unless written after it (then a read finds the one that is).
            let value = if newest <= read_view {
                layout::decode_value(&stored)?
            } else {
                self.read_at(&user_key, read_view)?
            };
            if let Some(value) = value {
                bytes += user_key.len() + value.len();
                live.push((Bytes::from(user_key.clone()), value));
            }
            cursor = layout::key_prefix_end(&user_key);
        }
        let exhausted = self.engine.scan(&cursor, end, 1)?.is_empty();
        Ok((live, exhausted))
    }

    /// Starts filling the store from a state transfer: marks it incomplete
    /// (durably) and discards everything it held.
    ///
    /// # Errors
    /// [`EngineError`]; the store is then still marked incomplete.
    pub fn begin_import(&self) -> Result<(), EngineError> {
        let mut batch = WriteBatch::new();
        batch.put(META_TRANSFER, Bytes::from_static(b"1"));
        batch.set_durable();
        self.engine.write(batch)?;
        self.wipe(DATA_START, DATA_END)?;
        let mut batch = WriteBatch::new();
        batch.delete(Bytes::from_static(META_APPLIED));
        batch.delete(Bytes::from_static(META_CHECKPOINT));
        self.engine.write(batch)
    }

    /// Stores transferred live keys as versions at `seqno`.
    ///
    /// # Errors
    /// [`EngineError`].
    pub fn import(&self, seqno: Seqno, entries: &[(Bytes, Bytes)]) -> Result<(), EngineError> {
        let mut batch = WriteBatch::new();
        for (key, value) in entries {
            batch.put(
                layout::version_key(key, seqno),
                layout::encode_value(Some(value)),
            );
        }
        self.engine.write(batch)
    }

    /// Completes a state transfer: the data imported is applied up to the
    /// checkpoint's position, the certifier resumes from the checkpoint,
    /// and the store is no longer marked incomplete (one durable batch).
    ///
    /// # Errors
    /// [`EngineError`]; the store then stays marked incomplete.
    pub fn finish_import(&self, checkpoint: &CertCheckpoint) -> Result<(), EngineError> {
        let mut batch = WriteBatch::new();
        batch.put(
            META_APPLIED,
            Bytes::copy_from_slice(&checkpoint.seqno().get().to_be_bytes()),
        );
        batch.put(META_CHECKPOINT, checkpoint.as_bytes().clone());
        batch.delete(Bytes::from_static(META_TRANSFER));
        batch.set_durable();
        self.engine.write(batch)
    }

    /// Deletes every key in `start..end`.
    fn wipe(&self, start: &[u8], end: &[u8]) -> Result<(), EngineError> {
        loop {
            let keys = self.engine.scan(start, end, 4096)?;
            if keys.is_empty() {
                return Ok(());
            }
            let mut batch = WriteBatch::new();
            for (key, _) in keys {
                batch.delete(key);
            }
            self.engine.write(batch)?;
        }
    }

    /// Makes every write so far durable, so a clean restart replays
    /// nothing from the log.
    ///
    /// # Errors
    /// [`EngineError`] from the engine's write.
    pub fn sync(&self) -> Result<(), EngineError> {
        let mut batch = WriteBatch::new();
        batch.set_durable();
        self.engine.write(batch)?;
        self.lazy_commits.store(0, Ordering::Relaxed);
        Ok(())
    }

    /// Removes versions no read view at or after `horizon` can see: those
    /// hidden by up to `budget` queued writes, and a step of the full scan
    /// while one is due.
    ///
    /// # Errors
    /// [`EngineError`]; nothing already removed is lost, the rest waits for
    /// a full scan.
    pub fn collect_garbage(&self, horizon: Seqno, budget: usize) -> Result<GcStats, EngineError> {
        let (ready, cursor) = {
            let mut queue = self.gc_queue();
            (
                queue.take_ready(horizon, budget),
                queue.scan_cursor().cloned(),
            )
        };
        let mut stats = GcStats::default();
        // One engine write for the whole step; a version two writes name
        // is removed (and counted) once.
        let mut deletes = HashSet::new();
        let mut pruned = HashSet::new();
        for garbage in &ready {
            self.collect_write(garbage, horizon, &mut pruned, &mut deletes)?;
            stats.keys_examined += 1;
        }
        if let Some(mut cursor) = cursor {
            // The scan always advances, even when the queue used the budget.
            let scan_budget = budget.saturating_sub(ready.len()).max(1);
            for _ in 0..scan_budget {
                let next = self.engine.scan(&cursor, DATA_END, 1)?.into_iter().next();
                let Some((engine_key, _)) = next else { break };
                let (user_key, _) = layout::parse_version_key(&engine_key)?;
                let user_key = Bytes::from(user_key);
                // A key pruned whole in this step still shows its versions:
                // the deletes are written at the end.
                if pruned.insert(user_key.clone()) {
                    self.prune_key(&user_key, horizon, &mut deletes)?;
                    stats.keys_examined += 1;
                }
                cursor = layout::key_prefix_end(&user_key);
            }
            let more = !self.engine.scan(&cursor, DATA_END, 1)?.is_empty();
            self.gc_queue().set_scan_cursor(more.then_some(cursor));
        }
        stats.versions_removed = deletes.len();
        if !deletes.is_empty() {
            let mut batch = WriteBatch::new();
            for key in deletes {
                batch.delete(key);
            }
            self.engine.write(batch)?;
        }
        stats.full_scan_pending = self.gc_queue().scan_cursor().is_some();
        Ok(stats)
    }

    /// Adds to `deletes` what the write `garbage` (at or below `horizon`)
    /// made unreachable: the version it hid; for a delete, every version of
    /// its key hidden at the horizon and the tombstone if it is the one
    /// visible there (once per key per step: `pruned`).
    fn collect_write(
        &self,
        garbage: &Garbage,
        horizon: Seqno,
        pruned: &mut HashSet<Bytes>,
        deletes: &mut HashSet<Bytes>,
    ) -> Result<(), EngineError> {
        let key = &garbage.key;
        if garbage.tombstone {
            if pruned.insert(key.clone()) {
                self.prune_key(key, horizon, deletes)?;
            }
            return Ok(());
        }
        match garbage.hidden {
            Hidden::Nothing => {}
            Hidden::At(seqno) => {
                assert!(
                    seqno < garbage.seqno,
                    "the version a write at {} hid is at {seqno}",
                    garbage.seqno
                );
                deletes.insert(layout::version_key(key, seqno));
            }
            Hidden::Unknown => {
                let below = garbage.seqno.saturating_sub(1);
                if let Some((engine_key, _)) = self.newest_at(key, below)? {
                    deletes.insert(engine_key);
                }
            }
        }
        Ok(())
    }

    /// Adds to `deletes` every version of `user_key` hidden at `horizon`,
    /// and the one visible there if it is a tombstone.
    fn prune_key(
        &self,
        user_key: &[u8],
        horizon: Seqno,
        deletes: &mut HashSet<Bytes>,
    ) -> Result<(), EngineError> {
        let start = layout::version_key(user_key, horizon);
        let end = layout::key_prefix_end(user_key);
        // Versions at or below the horizon, newest first; the newest is the
        // one visible at the horizon.
        let versions = self.engine.scan(&start, &end, usize::MAX)?;
        let Some((_, visible)) = versions.first() else {
            return Ok(());
        };
        let keep_visible = layout::decode_value(visible)?.is_some();
        let hidden = &versions[usize::from(keep_visible)..];
        deletes.extend(hidden.iter().map(|(engine_key, _)| engine_key.clone()));
        Ok(())
    }

    /// Keys queued for collection.
    #[must_use]
    pub fn gc_queue_len(&self) -> usize {
        self.gc_queue().len()
    }
}

fn storage(err: EngineError) -> ApplyError {
    match err {
        EngineError::Io(_) | EngineError::ShutDown => ApplyError::Storage(Cause::new(err)),
        corrupt => ApplyError::Corrupt(Cause::new(corrupt)),
    }
}

impl Applier for MvccStore {
    fn recover(&self) -> Result<Recovered, ApplyError> {
        if self.engine.get(META_TRANSFER).map_err(storage)?.is_some() {
            // An interrupted state transfer: what is here is incomplete.
            tracing::warn!("discarding the incomplete copy an interrupted state transfer left");
            self.wipe(DATA_START, DATA_END).map_err(storage)?;
            self.wipe(META_START, META_END).map_err(storage)?;
        }
        let last_visible = match self.engine.get(META_APPLIED).map_err(storage)? {
            None => Seqno::ZERO,
            Some(raw) => {
                let bytes: [u8; 8] = raw
                    .as_ref()
                    .try_into()
                    .map_err(|_| storage(EngineError::BadWatermark { len: raw.len() }))?;
                Seqno::new(u64::from_be_bytes(bytes))
            }
        };
        let checkpoint = match self.engine.get(META_CHECKPOINT).map_err(storage)? {
            None => None,
            Some(frame) => Some(
                CertCheckpoint::from_bytes(frame)
                    .map_err(|e| storage(EngineError::BadCheckpoint(e)))?,
            ),
        };
        Ok(Recovered {
            last_visible,
            checkpoint,
        })
    }

    fn apply(&self, seqno: Seqno, ws: &WriteSet) -> Result<(), ApplyError> {
        self.apply_batch(&[(seqno, ws)])
    }

    fn execute(
        &self,
        seqno: Seqno,
        time: ClusterTime,
        op: &Operation,
    ) -> Result<Bytes, ApplyError> {
        let mut outputs = self.execute_batch(&[(seqno, time, op)])?;
        outputs.pop().ok_or(ApplyError::Interrupted)
    }

    /// Runs each operation with the executor, each reading just below its
    /// own position (none of them depends on another), and writes all
    /// their effects in one engine write.
    fn execute_batch(
        &self,
        batch: &[(Seqno, ClusterTime, &Operation)],
    ) -> Result<Vec<Bytes>, ApplyError> {
        let executor = self.executor.as_ref().ok_or(ApplyError::Unsupported)?;
        let mut write = WriteBatch::new();
        let mut written = Vec::new();
        let mut outputs = Vec::with_capacity(batch.len());
        for (seqno, time, op) in batch {
            let mut execution = Execution::new(self, *seqno, *time);
            let output = executor
                .execute(op, &mut execution)
                .map_err(|err| match err {
                    KvError::Engine(err) => storage(err),
                    KvError::Node(err) => ApplyError::Storage(Cause::new(err)),
                })?;
            for (key, value, hidden) in execution.into_writes() {
                write.put(
                    layout::version_key(&key, *seqno),
                    layout::encode_value(value.as_deref()),
                );
                written.push(Garbage {
                    seqno: *seqno,
                    key,
                    hidden,
                    tombstone: value.is_none(),
                });
            }
            outputs.push(output);
        }
        self.engine.write(write).map_err(storage)?;
        let mut queue = self.gc_queue();
        for garbage in written {
            queue.push(garbage);
        }
        Ok(outputs)
    }

    /// Every write-set's versions in one engine write.
    fn apply_batch(&self, batch: &[(Seqno, &WriteSet)]) -> Result<(), ApplyError> {
        let mut write = WriteBatch::new();
        for (seqno, ws) in batch {
            for op in ws.ops() {
                let value = match op {
                    RowOp::Put { value, .. } => Some(value.as_ref()),
                    RowOp::Delete { .. } => None,
                };
                write.put(
                    layout::version_key(op.key(), *seqno),
                    layout::encode_value(value),
                );
            }
        }
        self.engine.write(write).map_err(storage)?;
        let mut queue = self.gc_queue();
        for (seqno, ws) in batch {
            for op in ws.ops() {
                queue.push(Garbage {
                    seqno: *seqno,
                    key: op.key().clone(),
                    hidden: Hidden::Unknown,
                    tombstone: matches!(op, RowOp::Delete { .. }),
                });
            }
        }
        Ok(())
    }

    /// Moves the watermark. Only a commit that stores a checkpoint must be
    /// durable: the log keeps every entry after the stored checkpoint, so
    /// after a crash the node certifies and applies again from there what
    /// the engine lost (apply is idempotent), and an acknowledged commit is
    /// durable in the log of a majority. Every [`SYNC_EVERY`]th commit is
    /// durable as well. The engine writes sequentially, so whatever it
    /// recovers is a prefix: a watermark never outruns its versions.
    fn make_visible(
        &self,
        upto: Seqno,
        checkpoint: Option<&CertCheckpoint>,
    ) -> Result<(), ApplyError> {
        let mut batch = WriteBatch::new();
        let lazy = self.lazy_commits.fetch_add(1, Ordering::Relaxed) + 1;
        if checkpoint.is_some() || lazy >= SYNC_EVERY {
            batch.set_durable();
            self.lazy_commits.store(0, Ordering::Relaxed);
        }
        batch.put(
            META_APPLIED,
            Bytes::copy_from_slice(&upto.get().to_be_bytes()),
        );
        if let Some(checkpoint) = checkpoint {
            assert!(
                checkpoint.seqno() <= upto,
                "checkpoint ahead of the watermark it is stored with"
            );
            batch.put(META_CHECKPOINT, checkpoint.as_bytes().clone());
        }
        self.engine.write(batch).map_err(storage)
    }

    /// A commit that is not made durable is a small write the engine
    /// buffers (its journal is written, not synced).
    fn make_visible_is_quick(&self, checkpoint: bool) -> bool {
        !checkpoint && self.lazy_commits.load(Ordering::Relaxed) + 1 < SYNC_EVERY
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::kv::MemoryEngine;

    /// An engine that records whether each write asked to be durable.
    #[derive(Debug, Default)]
    struct Recording {
        inner: MemoryEngine,
        durable: Mutex<Vec<bool>>,
    }

    impl Engine for Recording {
        fn get(&self, key: &[u8]) -> Result<Option<Bytes>, EngineError> {
            self.inner.get(key)
        }

        fn scan(
            &self,
            start: &[u8],
            end: &[u8],
            limit: usize,
        ) -> Result<Vec<(Bytes, Bytes)>, EngineError> {
            self.inner.scan(start, end, limit)
        }

        fn write(&self, batch: WriteBatch) -> Result<(), EngineError> {
            self.durable
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(batch.is_durable());
            self.inner.write(batch)
        }
    }

    /// Live rows at a read view: a key's newest version when it is at or
    /// below the view, else the newest one that is; tombstones and keys
    /// born after the view are left out; chunks continue where they ended.
    #[test]
    fn exported_rows_are_those_visible_at_the_read_view() {
        let engine = Arc::new(MemoryEngine::new());
        let mut batch = WriteBatch::new();
        let versions: [(&str, u64, Option<&str>); 6] = [
            ("a", 5, Some("a5")),
            ("a", 10, Some("a10")),
            ("b", 3, Some("b3")),
            ("b", 12, None),
            ("c", 11, Some("c11")),
            ("d", 2, None),
        ];
        for (key, seqno, value) in versions {
            batch.put(
                layout::version_key(key.as_bytes(), Seqno::new(seqno)),
                layout::encode_value(value.map(str::as_bytes)),
            );
        }
        engine.write(batch).expect("write");
        let store = MvccStore::new(engine, 16);
        let rows = |view: u64| -> Vec<(String, String)> {
            let text = |b: &Bytes| String::from_utf8_lossy(b).into_owned();
            let live = store.snapshot(Seqno::new(view)).expect("snapshot");
            live.iter().map(|(k, v)| (text(k), text(v))).collect()
        };
        let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
        assert_eq!(rows(4), [pair("b", "b3")]);
        assert_eq!(rows(10), [pair("a", "a10"), pair("b", "b3")]);
        assert_eq!(
            rows(11),
            [pair("a", "a10"), pair("b", "b3"), pair("c", "c11")]
        );
        assert_eq!(rows(12), [pair("a", "a10"), pair("c", "c11")]);
        let first = store.export_chunk(Seqno::new(11), None, 2, usize::MAX);
        let first = first.expect("chunk");
        assert_eq!(first.entries.len(), 2);
        assert_eq!(first.next.as_deref(), Some(&b"b"[..]));
        let rest = store.export_chunk(Seqno::new(11), Some(b"b"), 2, usize::MAX);
        let rest = rest.expect("chunk");
        assert_eq!(rest.entries, [(Bytes::from("c"), Bytes::from("c11"))]);
        assert_eq!(rest.next, None);
        // The same rows from the end, a chunk at a time.
        let rev = |view: u64, end: &str, limit: usize| {
            let (rows, exhausted) = store
                .scan_live_rev(Seqno::new(view), b"", end.as_bytes(), limit)
                .expect("reverse scan");
            let keys: Vec<String> = rows
                .iter()
                .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
                .collect();
            (keys, exhausted)
        };
        assert_eq!(
            rev(11, "z", 10),
            (vec!["c".into(), "b".into(), "a".into()], true)
        );
        assert_eq!(rev(11, "z", 2), (vec!["c".into(), "b".into()], false));
        assert_eq!(
            rev(12, "c", 5),
            (vec!["a".into()], true),
            "b's tombstone hides it"
        );
        assert_eq!(rev(4, "z", 5), (vec!["b".into()], true));
    }

    /// A commit the store calls quick never waits for the disk: every one
    /// that is made durable (every 64th, and each with a checkpoint) was
    /// announced as not quick.
    #[test]
    fn a_quick_commit_is_never_a_durable_one() {
        let engine = Arc::new(Recording::default());
        let store = MvccStore::new(engine.clone(), 16);
        let mut quick = Vec::new();
        for upto in 1..=200 {
            assert!(!store.make_visible_is_quick(true));
            quick.push(store.make_visible_is_quick(false));
            store.make_visible(Seqno::new(upto), None).expect("commit");
        }
        let durable = engine.durable.lock().expect("lock").clone();
        assert_eq!(durable.len(), 200);
        for (i, (quick, durable)) in quick.iter().zip(&durable).enumerate() {
            assert_eq!(*quick, !durable, "commit {i}");
        }
        assert_eq!(durable.iter().filter(|d| **d).count(), 3, "every 64th");
    }
}
