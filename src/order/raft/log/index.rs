//! What the log keeps in memory: every retained entry's id and, once
//! written, its place on disk, plus a cache of the newest entries bounded
//! in bytes. Older payloads are read from disk when asked for, so memory
//! does not grow with the retained log (at 1 MiB entries, 100,000 retained
//! entries are 100 GB on disk but a few MiB here).

use std::collections::VecDeque;

use super::files::{Located, PersistentState, Spot};
use crate::order::raft::types::{LogEntry, LogId};

/// One retained entry: its id, and where it is on disk once written.
#[derive(Clone, Copy, Debug)]
struct Slot {
    log_id: LogId,
    spot: Option<Spot>,
}

/// One entry of a planned read: from the cache, or from disk.
#[derive(Debug)]
pub(super) enum Part {
    Cached(LogEntry),
    Disk { log_id: LogId, spot: Spot },
}

/// The retained entries' ids and places, and the newest entries' payloads.
#[derive(Debug)]
pub(super) struct LogIndex {
    /// `slots[0]` has index `first`.
    slots: VecDeque<Slot>,
    first: u64,
    /// The newest entries with their encoded sizes, a suffix of `slots`:
    /// `cache[0]` has index `cache_first`. Only written entries leave it.
    cache: VecDeque<(LogEntry, usize)>,
    cache_first: u64,
    cache_bytes: usize,
    cache_limit: usize,
    pub(super) state: PersistentState,
}

impl LogIndex {
    /// The index of what opening the log found; `cache_limit` bytes of
    /// payload are kept in memory at most (beyond what is not yet written).
    pub(super) fn new(records: Vec<Located>, state: PersistentState, cache_limit: usize) -> Self {
        let first = records.first().map_or_else(
            || state.purged.as_ref().map_or(0, |p| p.index + 1),
            |r| r.log_id.index,
        );
        let slots: VecDeque<Slot> = records
            .into_iter()
            .map(|r| Slot {
                log_id: r.log_id,
                spot: Some(r.spot),
            })
            .collect();
        let end = first + slots.len() as u64;
        LogIndex {
            slots,
            first,
            cache: VecDeque::new(),
            cache_first: end,
            cache_bytes: 0,
            cache_limit,
            state,
        }
    }

    /// The first index held.
    pub(super) fn first(&self) -> u64 {
        self.first
    }

    /// The index after the last held.
    fn end(&self) -> u64 {
        self.first + self.slots.len() as u64
    }

    /// The id of the last entry held.
    pub(super) fn last_held(&self) -> Option<LogId> {
        self.slots.back().map(|s| s.log_id)
    }

    pub(super) fn last_log_id(&self) -> Option<LogId> {
        self.slots.back().map(|s| s.log_id).or(self.state.purged)
    }

    /// The id of the entry at `index`, if held.
    pub(super) fn log_id(&self, index: u64) -> Option<LogId> {
        let at = usize::try_from(index.checked_sub(self.first)?).ok()?;
        self.slots.get(at).map(|s| s.log_id)
    }

    /// Appends `entry` (of `size` encoded bytes) at the end.
    pub(super) fn push(&mut self, entry: LogEntry, size: usize) {
        let index = entry.log_id.index;
        if self.slots.is_empty() {
            // An empty log (new, or purged up to a snapshot) may resume at
            // any later index.
            assert!(
                index >= self.first,
                "append at {index} behind the purge point {}",
                self.first
            );
            self.first = index;
            self.cache_first = index;
        }
        assert_eq!(index, self.end(), "openraft appended out of order");
        self.slots.push_back(Slot {
            log_id: entry.log_id,
            spot: None,
        });
        if self.cache.is_empty() {
            self.cache_first = index;
        }
        self.cache.push_back((entry, size));
        self.cache_bytes += size;
        self.evict();
    }

    /// The records of `written` are on disk: their places are known and
    /// their payloads may leave the cache. A record whose index now holds
    /// another entry (truncated meanwhile) is ignored.
    pub(super) fn written(&mut self, written: &[(LogId, Spot)]) {
        for (log_id, spot) in written {
            let Some(at) = log_id
                .index
                .checked_sub(self.first)
                .and_then(|at| usize::try_from(at).ok())
            else {
                continue;
            };
            if let Some(slot) = self.slots.get_mut(at)
                && slot.log_id == *log_id
            {
                slot.spot = Some(*spot);
            }
        }
        self.evict();
    }

    /// Drops cached payloads, oldest first, while over the limit; an entry
    /// not yet on disk stays.
    fn evict(&mut self) {
        while self.cache_bytes > self.cache_limit {
            let at = usize::try_from(self.cache_first - self.first).unwrap_or(usize::MAX);
            if self.slots.get(at).is_none_or(|s| s.spot.is_none()) {
                return;
            }
            let Some((_, size)) = self.cache.pop_front() else {
                return;
            };
            self.cache_bytes -= size;
            self.cache_first += 1;
        }
    }

    /// Keeps only the entries before `from`.
    pub(super) fn truncate(&mut self, from: u64) {
        let keep = usize::try_from(from.saturating_sub(self.first)).unwrap_or(usize::MAX);
        self.slots.truncate(keep);
        let keep = usize::try_from(from.saturating_sub(self.cache_first)).unwrap_or(usize::MAX);
        while self.cache.len() > keep {
            if let Some((_, size)) = self.cache.pop_back() {
                self.cache_bytes -= size;
            }
        }
        if self.cache.is_empty() {
            self.cache_first = self.end();
        }
    }

    /// The last index to purge so that the written entries after it take
    /// at most `keep` bytes; `None` when they already do.
    pub(super) fn cut_keeping(&self, keep: u64) -> Option<u64> {
        let mut bytes = 0u64;
        for (at, slot) in self.slots.iter().enumerate().rev() {
            bytes = bytes.saturating_add(slot.spot.map_or(0, |spot| spot.len));
            if bytes > keep {
                return Some(self.first + at as u64);
            }
        }
        None
    }

    /// Drops the entries before `keep_from`; an emptied log resumes at
    /// `resume_at` at the earliest. Returns how many entries it dropped.
    pub(super) fn drop_before(&mut self, keep_from: u64, resume_at: u64) -> u64 {
        let mut dropped = 0;
        while self.first < keep_from && self.slots.pop_front().is_some() {
            self.first += 1;
            dropped += 1;
        }
        while self.cache_first < self.first && !self.cache.is_empty() {
            if let Some((_, size)) = self.cache.pop_front() {
                self.cache_bytes -= size;
            }
            self.cache_first += 1;
        }
        if self.slots.is_empty() {
            self.first = self.first.max(resume_at);
        }
        if self.cache.is_empty() {
            self.cache_first = self.end();
        }
        dropped
    }

    /// The plan to read `[start, end)`: cached entries as they are, older
    /// ones by place. Stops at the end of the log, and once `max_bytes` are
    /// planned after at least one entry. A `start` before the first entry
    /// held is moved up to it when `clamp`, and is refused with that first
    /// index otherwise.
    pub(super) fn plan(
        &self,
        start: u64,
        end: u64,
        max_bytes: usize,
        clamp: bool,
    ) -> Result<Vec<Part>, u64> {
        if start < self.first && !clamp {
            return Err(self.first);
        }
        let from = start.max(self.first);
        let to = end.min(self.end());
        let mut parts = Vec::new();
        let mut bytes = 0usize;
        for index in from..to {
            if bytes >= max_bytes && !parts.is_empty() {
                break;
            }
            if index >= self.cache_first {
                let at = usize::try_from(index - self.cache_first).unwrap_or(usize::MAX);
                let Some((entry, size)) = self.cache.get(at) else {
                    break;
                };
                bytes += size;
                parts.push(Part::Cached(entry.clone()));
                continue;
            }
            let at = usize::try_from(index - self.first).unwrap_or(usize::MAX);
            let slot = self.slots[at];
            let spot = slot
                .spot
                .unwrap_or_else(|| panic!("entry {index} left the cache before it was written"));
            bytes += spot.len as usize;
            parts.push(Part::Disk {
                log_id: slot.log_id,
                spot,
            });
        }
        Ok(parts)
    }

    /// Payload bytes held in memory now.
    #[cfg(test)]
    fn cached_bytes(&self) -> usize {
        self.cache_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::raft::types::Submission;
    use openraft::EntryPayload;

    fn entry(index: u64, term: u64) -> LogEntry {
        let leader = openraft::impls::leader_id_adv::LeaderId { term, node_id: 1 };
        LogEntry {
            log_id: openraft::LogId::new(leader, index),
            payload: EntryPayload::Normal(Submission {
                frame: bytes::Bytes::from(vec![b'x'; 100]),
                stamp: crate::ids::ClusterTime::ZERO,
            }),
        }
    }

    fn spot(index: u64) -> Spot {
        Spot {
            segment: 0,
            offset: index * 100,
            len: 100,
        }
    }

    fn cached(parts: &[Part]) -> usize {
        parts
            .iter()
            .filter(|p| matches!(p, Part::Cached(_)))
            .count()
    }

    #[test]
    fn payloads_leave_memory_once_written_and_over_the_limit() {
        let mut index = LogIndex::new(Vec::new(), PersistentState::default(), 350);
        for i in 1..=10 {
            index.push(entry(i, 1), 100);
        }
        // Nothing is on disk yet: everything stays, whatever the limit.
        assert_eq!(index.cached_bytes(), 1000);
        assert_eq!(cached(&index.plan(1, 11, usize::MAX, false).unwrap()), 10);
        let written: Vec<(LogId, Spot)> = (1..=10).map(|i| (entry(i, 1).log_id, spot(i))).collect();
        index.written(&written);
        assert_eq!(index.cached_bytes(), 300);
        let parts = index.plan(1, 11, usize::MAX, false).unwrap();
        assert_eq!(parts.len(), 10);
        assert_eq!(cached(&parts), 3, "the newest three stay cached");
        assert!(matches!(parts[0], Part::Disk { spot, .. } if spot == self::spot(1)));
        // A read stops at its byte budget, after at least one entry.
        assert_eq!(index.plan(1, 11, 250, false).unwrap().len(), 3);
        assert_eq!(index.plan(1, 11, 0, false).unwrap().len(), 1);
    }

    #[test]
    fn the_retention_cut_keeps_the_newest_entries_within_the_bytes() {
        let mut index = LogIndex::new(Vec::new(), PersistentState::default(), 0);
        for i in 1..=10 {
            index.push(entry(i, 1), 100);
        }
        let written: Vec<(LogId, Spot)> = (1..=10).map(|i| (entry(i, 1).log_id, spot(i))).collect();
        index.written(&written);
        // 350 bytes hold the newest three: purge up to 7.
        assert_eq!(index.cut_keeping(350), Some(7));
        assert_eq!(index.cut_keeping(300), Some(7));
        assert_eq!(index.cut_keeping(299), Some(8));
        assert_eq!(index.cut_keeping(1000), None);
        index.drop_before(8, 8);
        assert_eq!(index.cut_keeping(350), None);
    }

    #[test]
    fn a_record_written_for_a_truncated_entry_places_nothing() {
        let mut index = LogIndex::new(Vec::new(), PersistentState::default(), 0);
        index.push(entry(1, 1), 100);
        index.push(entry(2, 1), 100);
        index.truncate(2);
        index.push(entry(2, 2), 100);
        // The old entry 2's write lands after the truncation.
        index.written(&[(entry(1, 1).log_id, spot(1)), (entry(2, 1).log_id, spot(2))]);
        let parts = index.plan(1, 3, usize::MAX, true).unwrap();
        assert!(matches!(parts[0], Part::Disk { .. }));
        assert!(
            matches!(&parts[1], Part::Cached(e) if e.log_id == entry(2, 2).log_id),
            "{parts:?}"
        );
        index.drop_before(2, 2);
        assert_eq!(index.first(), 2);
        assert_eq!(index.plan(1, 3, usize::MAX, true).unwrap().len(), 1);
        assert_eq!(index.plan(1, 3, usize::MAX, false).unwrap_err(), 2);
    }
}
