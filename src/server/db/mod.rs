//! The Redis database on the store: how a Redis key, its type, its value
//! and its expiry deadline are laid out in store keys, and the lookups
//! every command shares.
//!
//! ```text
//! record        'k' · be32(crc32(key)) · key  →  type · be64(deadline ms, 0 = none) · value
//! expiry index  'x' · be64(deadline ms) · key →  (empty)
//! members       'm' · be32(len key) · key · sub → (see [`members`])
//! ```
//!
//! A string's value is in its record. A hash, list, set or sorted set keeps
//! only its size in the record ([`members::Meta`]) and each field, element or member
//! under its own store key, so a command writes only what it changes. The
//! members change only together with their record, in one command, so they
//! need no certification key of their own: every command that touches them
//! declares the record's key.
//!
//! Records sort by the hash of their key, so `SCAN` walks the keyspace in
//! hash order with a numeric cursor (the next hash to visit), and a key
//! present for a whole scan is returned. The expiry index lists keys by
//! deadline for the reaper; it changes only together with its record, in
//! the same command, so it never needs a key of its own in certification.
//!
//! A key is alive at a point of the order when its deadline is after the
//! cluster time there ([`Keyspace::time`]): every node agrees on it at
//! every position, whatever its clock. An expired record stays until the
//! reaper's operation removes it, but no command sees it.

use bytes::{BufMut, Bytes, BytesMut};

use crate::kv::{Keyspace, KvError};
use crate::server::blocking::Waiters;
use crate::server::pubsub::Channels;
use crate::server::scripting::Scripts;

pub(crate) mod members;

/// Start of the record key space.
const RECORDS: u8 = b'k';
/// Start of the expiry index.
const EXPIRIES: u8 = b'x';
/// Bytes before a record's value: type and deadline.
const HEADER: usize = 9;

/// The type of a key's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    String,
    Hash,
    List,
    Set,
    ZSet,
}

impl Kind {
    const ALL: [Kind; 5] = [Kind::String, Kind::Hash, Kind::List, Kind::Set, Kind::ZSet];

    fn code(self) -> u8 {
        match self {
            Kind::String => 0,
            Kind::Hash => 1,
            Kind::List => 2,
            Kind::Set => 3,
            Kind::ZSet => 4,
        }
    }

    fn from_code(code: u8) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| kind.code() == code)
    }

    /// The name `TYPE` replies with.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::String => "string",
            Kind::Hash => "hash",
            Kind::List => "list",
            Kind::Set => "set",
            Kind::ZSet => "zset",
        }
    }

    /// The type a name (as `SCAN ... TYPE` takes it) stands for.
    pub(crate) fn from_name(name: &[u8]) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|kind| name.eq_ignore_ascii_case(kind.name().as_bytes()))
    }

    /// Whether its values live under member keys (every type but strings).
    pub(crate) fn is_collection(self) -> bool {
        self != Kind::String
    }
}

/// One key's stored value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) kind: Kind,
    /// Milliseconds since the Unix epoch after which the key is gone.
    pub(crate) deadline: Option<u64>,
    pub(crate) value: Bytes,
}

/// The error every command gives for a key of another type.
pub(crate) fn wrong_type() -> crate::server::resp::Reply {
    crate::server::resp::Reply::Error(
        "WRONGTYPE Operation against a key holding the wrong kind of value".into(),
    )
}

/// The hash that orders records and makes `SCAN`'s cursor.
pub(crate) fn key_hash(key: &[u8]) -> u32 {
    crc32fast::hash(key)
}

/// The store key of `key`'s record.
pub(crate) fn record_key(key: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(key.len() + 5);
    out.put_u8(RECORDS);
    out.put_u32(key_hash(key));
    out.put_slice(key);
    out.freeze()
}

/// The store key where records of hash `hash` and above begin.
pub(crate) fn records_from(hash: u64) -> Bytes {
    let mut out = BytesMut::with_capacity(5);
    match u32::try_from(hash) {
        Ok(hash) => {
            out.put_u8(RECORDS);
            out.put_u32(hash);
        }
        Err(_) => out.put_u8(RECORDS + 1),
    }
    out.freeze()
}

/// The store key every publication declares (and never writes), so
/// publications run in log order on every node.
pub(crate) fn publications_key() -> Bytes {
    Bytes::from_static(b"p")
}

/// The end of the record key space.
pub(crate) fn records_end() -> Bytes {
    Bytes::from_static(&[RECORDS + 1])
}

/// The Redis key and its hash, from a record's store key.
pub(crate) fn parse_record_key(stored: &[u8]) -> Option<(u32, Bytes)> {
    let rest = stored.strip_prefix(&[RECORDS])?;
    let hash = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
    Some((hash, Bytes::copy_from_slice(&rest[4..])))
}

/// Every record, as a store key range.
pub(crate) fn all_records() -> (Bytes, Bytes) {
    (Bytes::from_static(&[RECORDS]), records_end())
}

/// Every expiry index entry, as a store key range.
pub(crate) fn all_expiries() -> (Bytes, Bytes) {
    (
        Bytes::from_static(&[EXPIRIES]),
        Bytes::from_static(&[EXPIRIES + 1]),
    )
}

/// The store key of `key`'s entry in the expiry index.
fn expiry_key(key: &[u8], deadline: u64) -> Bytes {
    let mut out = BytesMut::with_capacity(key.len() + 9);
    out.put_u8(EXPIRIES);
    out.put_u64(deadline);
    out.put_slice(key);
    out.freeze()
}

/// The start and end of the expiry index entries due at or before `time`.
pub(crate) fn expiries_due(time: u64) -> (Bytes, Bytes) {
    let end = expiry_key(b"", time.saturating_add(1));
    (Bytes::from_static(&[EXPIRIES]), end)
}

/// The key and deadline of an expiry index entry.
pub(crate) fn parse_expiry_key(stored: &[u8]) -> Option<(Bytes, u64)> {
    let rest = stored.strip_prefix(&[EXPIRIES])?;
    let deadline = u64::from_be_bytes(rest.get(..8)?.try_into().ok()?);
    Some((Bytes::copy_from_slice(&rest[8..]), deadline))
}

fn encode_record(record: &Record) -> Bytes {
    let mut out = BytesMut::with_capacity(HEADER + record.value.len());
    out.put_u8(record.kind.code());
    out.put_u64(record.deadline.unwrap_or(0));
    out.put_slice(&record.value);
    out.freeze()
}

/// Decodes a stored record. A record that does not decode was not written
/// by this layer (a write through the store's own API): it reads as a
/// string holding the raw bytes, so nothing stored is ever unreadable.
pub(crate) fn decode_record(stored: Bytes) -> Record {
    let kind = stored.first().copied().and_then(Kind::from_code);
    // A collection's record holds exactly its meta.
    let kind =
        kind.filter(|kind| !kind.is_collection() || stored.len() == HEADER + members::META_LEN);
    match (kind, stored.get(1..HEADER)) {
        (Some(kind), Some(deadline)) => {
            let mut raw = [0u8; 8];
            raw.copy_from_slice(deadline);
            let deadline = u64::from_be_bytes(raw);
            Record {
                kind,
                deadline: (deadline != 0).then_some(deadline),
                value: stored.slice(HEADER..),
            }
        }
        _ => Record {
            kind: Kind::String,
            deadline: None,
            value: stored,
        },
    }
}

/// Live records found by a scan, and the next hash to visit (`None` at
/// the end).
pub(crate) type Scanned = (Vec<(Bytes, Record)>, Option<u64>);

/// The Redis database over one keyspace: a transaction's snapshot on this
/// node, or an ordered operation's position on every node.
pub(crate) struct Db<'a> {
    keys: &'a mut dyn Keyspace,
    /// The cluster time of the point read, in milliseconds.
    now: u64,
    /// Where `RANDOMKEY`'s choices come from: the same on every node in an
    /// operation, fresh for a read on one node.
    seed: u64,
    /// Reply bytes the commands run here may still gather (the client
    /// output limit); once spent, a command that would gather more answers
    /// [`output_limit_reply`] instead of building its reply.
    budget: usize,
    /// A command wanted more than the budget.
    exceeded: bool,
    /// This node's subscribers, for `PUBLISH` in an operation (none in a
    /// snapshot, where nothing is published).
    channels: Option<&'a Channels>,
    /// This node's clients blocked on keys, woken when a command fills one
    /// (in an operation; none in a snapshot, which fills nothing).
    waiters: Option<&'a Waiters>,
    /// This node's script cache, and whether a script run here is on a
    /// snapshot of this node only (so `SCRIPT KILL` may stop it).
    scripts: Option<(&'a Scripts, bool)>,
    /// The operation covers every key (a script may touch any).
    wide: bool,
    /// A script touched what its operation did not declare: the operation
    /// must run again covering every key (see [`Db::widen`]).
    widen: bool,
    /// Publications held back until the operation is known to stand (an
    /// operation that may be run again must not deliver twice).
    deferred: Option<Vec<(Bytes, Bytes)>>,
}

/// The answer of a command whose reply would pass the client output
/// limit; the session then closes the client, as Redis does.
pub(crate) fn output_limit_reply() -> crate::server::resp::Reply {
    crate::server::resp::Reply::err("reply exceeds the client output limit")
}

impl<'a> Db<'a> {
    /// The database over `keys`; `seed` drives its random choices.
    pub(crate) fn new(keys: &'a mut dyn Keyspace, seed: u64) -> Self {
        let now = keys.time().as_millis();
        Db {
            keys,
            now,
            seed,
            budget: usize::MAX,
            exceeded: false,
            channels: None,
            waiters: None,
            scripts: None,
            wide: false,
            widen: false,
            deferred: None,
        }
    }

    /// The same, in an operation that covers every key.
    pub(crate) fn with_every_key(mut self) -> Self {
        self.wide = true;
        self
    }

    /// The same, holding publications back until [`Db::take_deferred`].
    pub(crate) fn with_deferred_publications(mut self) -> Self {
        self.deferred = Some(Vec::new());
        self
    }

    /// Whether a script here may touch keys it did not declare: on a
    /// snapshot of this node (any key reads consistently), or in an
    /// operation that covers every key.
    pub(crate) fn any_key(&self) -> bool {
        self.wide || self.scripts.is_some_and(|(_, local)| local)
    }

    /// Records that a script needs more than its operation declared: the
    /// operation's effects are to be dropped and it is to run again
    /// covering every key. Every node finds it at the same point.
    pub(crate) fn widen(&mut self) {
        self.widen = true;
    }

    /// Whether [`Db::widen`] was called.
    pub(crate) fn needs_widening(&self) -> bool {
        self.widen
    }

    /// The publications held back, in order.
    pub(crate) fn take_deferred(&mut self) -> Vec<(Bytes, Bytes)> {
        self.deferred.take().unwrap_or_default()
    }

    /// The same, waking `waiters` on the keys its commands fill.
    pub(crate) fn with_waiters(mut self, waiters: &'a Waiters) -> Self {
        self.waiters = Some(waiters);
        self
    }

    /// The same, running scripts with `scripts`' cache; `local` when this
    /// is a snapshot of this node (not an operation every node runs).
    pub(crate) fn with_scripts(mut self, scripts: &'a Scripts, local: bool) -> Self {
        self.scripts = Some((scripts, local));
        self
    }

    /// The script cache, and whether this runs on this node only.
    pub(crate) fn scripts(&self) -> Option<(&'a Scripts, bool)> {
        self.scripts
    }

    /// Wakes the clients blocked on `key`: a command gave it elements.
    pub(crate) fn filled(&self, key: &[u8]) {
        if let Some(waiters) = self.waiters {
            waiters.wake(key);
        }
    }

    /// The same, delivering what `PUBLISH` publishes to `channels`.
    pub(crate) fn with_channels(mut self, channels: &'a Channels) -> Self {
        self.channels = Some(channels);
        self
    }

    /// Delivers `message` on `channel` to this node's subscribers (see
    /// [`crate::server::pubsub`]); how many received it.
    pub(crate) fn publish(&mut self, channel: &Bytes, message: &Bytes) -> usize {
        let Some(channels) = self.channels else {
            return 0;
        };
        match self.deferred.as_mut() {
            Some(deferred) => {
                deferred.push((channel.clone(), message.clone()));
                channels.receivers(channel)
            }
            None => channels.publish(channel, message),
        }
    }

    /// Whether a command wanted more reply bytes than the budget held.
    pub(crate) fn exceeded(&self) -> bool {
        self.exceeded
    }

    /// The same, with at most `bytes` of replies gathered.
    pub(crate) fn with_budget(mut self, bytes: usize) -> Self {
        self.budget = bytes;
        self
    }

    /// Takes `bytes` of the reply budget; false (and the budget spent) when
    /// there is not that much left.
    pub(crate) fn charge(&mut self, bytes: usize) -> bool {
        match self.budget.checked_sub(bytes) {
            Some(left) => {
                self.budget = left;
                true
            }
            None => {
                self.budget = 0;
                self.exceeded = true;
                false
            }
        }
    }

    /// The next random number (SplitMix64 over the seed).
    pub(crate) fn random(&mut self) -> u64 {
        self.seed = self.seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let z = self.seed;
        let z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// "Now" for expiry, in milliseconds since the Unix epoch.
    pub(crate) fn now(&self) -> u64 {
        self.now
    }

    /// The keyspace underneath, for scans.
    pub(crate) fn keys(&mut self) -> &mut dyn Keyspace {
        self.keys
    }

    /// Whether a record with `deadline` is alive now.
    pub(crate) fn alive(&self, deadline: Option<u64>) -> bool {
        deadline.is_none_or(|d| d > self.now)
    }

    /// The record of `key`, expired or not.
    pub(crate) fn stored(&mut self, key: &[u8]) -> Result<Option<Record>, KvError> {
        Ok(self.keys.get(&record_key(key))?.map(decode_record))
    }

    /// The deadline of `key`'s record, expired or not.
    pub(crate) fn lookup_deadline(&mut self, key: &[u8]) -> Result<Option<u64>, KvError> {
        Ok(self.stored(key)?.and_then(|r| r.deadline))
    }

    /// The live record of `key`: `None` when it is absent or expired.
    pub(crate) fn lookup(&mut self, key: &[u8]) -> Result<Option<Record>, KvError> {
        Ok(self.stored(key)?.filter(|r| self.alive(r.deadline)))
    }

    /// The string value of `key`: `Ok(None)` when absent, `Err` with the
    /// `WRONGTYPE` reply for another type.
    pub(crate) fn string(
        &mut self,
        key: &[u8],
    ) -> Result<Result<Option<Record>, crate::server::resp::Reply>, KvError> {
        Ok(match self.lookup(key)? {
            Some(record) if record.kind != Kind::String => Err(wrong_type()),
            other => Ok(other),
        })
    }

    /// Stores `record` as `key`'s value and keeps the expiry index in step.
    /// A record of another type, or an expired one, is replaced whole (a
    /// collection's members go); a live one of the same type keeps its
    /// members (`EXPIRE` and `PERSIST` change only the deadline).
    pub(crate) fn store(&mut self, key: &[u8], record: &Record) -> Result<(), KvError> {
        let old = self.stored(key)?;
        let replaced = old.as_ref().is_some_and(|old| {
            old.kind.is_collection() && (old.kind != record.kind || !self.alive(old.deadline))
        });
        if replaced {
            self.purge_members(key)?;
        }
        if matches!(record.kind, Kind::List | Kind::ZSet) {
            // RENAME, COPY, a STORE command: it may hold elements now.
            self.filled(key);
        }
        let old = old.and_then(|r| r.deadline);
        if old != record.deadline {
            if let Some(old) = old {
                self.keys.delete(expiry_key(key, old))?;
            }
            if let Some(new) = record.deadline {
                self.keys.put(expiry_key(key, new), Bytes::new())?;
            }
        }
        self.keys.put(record_key(key), encode_record(record))
    }

    /// Sets `key` to the string `value` with `deadline`.
    pub(crate) fn set_string(
        &mut self,
        key: &[u8],
        value: Bytes,
        deadline: Option<u64>,
    ) -> Result<(), KvError> {
        let record = Record {
            kind: Kind::String,
            deadline,
            value,
        };
        self.store(key, &record)
    }

    /// Removes `key`, its members and its expiry entry. Returns whether a
    /// live key was removed (an expired one is removed too, but did not
    /// exist).
    pub(crate) fn remove(&mut self, key: &[u8]) -> Result<bool, KvError> {
        let Some(old) = self.stored(key)? else {
            return Ok(false);
        };
        if old.kind.is_collection() {
            self.purge_members(key)?;
        }
        if let Some(deadline) = old.deadline {
            self.keys.delete(expiry_key(key, deadline))?;
        }
        self.keys.delete(record_key(key))?;
        Ok(self.alive(old.deadline))
    }

    /// Removes `key` if it is still due with `deadline` (the reaper's
    /// check: a key given a new deadline or a new value since it was found
    /// due stays). Returns whether it was removed.
    pub(crate) fn reap(&mut self, key: &[u8], deadline: u64) -> Result<bool, KvError> {
        match self.stored(key)? {
            Some(record) if record.deadline == Some(deadline) && deadline <= self.now => {
                self.remove(key)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Live records from hash `from` on: up to about `count` keys, always
    /// ending at a change of hash, so a cursor at the next hash misses no
    /// key. Returns them and the next hash to visit (`None` at the end).
    pub(crate) fn scan_from(&mut self, from: u64, count: usize) -> Result<Scanned, KvError> {
        let end = records_end();
        let mut cursor = records_from(from);
        let mut out = Vec::new();
        let mut seen = 0usize;
        let mut last_hash = None;
        let chunk = count.clamp(16, 4096);
        loop {
            let entries = self.keys.scan(&cursor, &end, chunk)?;
            let exhausted = entries.len() < chunk;
            for (stored, value) in entries {
                let Some((hash, key)) = parse_record_key(&stored) else {
                    continue;
                };
                if seen >= count && last_hash != Some(hash) {
                    return Ok((out, Some(u64::from(hash))));
                }
                seen += 1;
                last_hash = Some(hash);
                let record = decode_record(value);
                if self.alive(record.deadline) {
                    out.push((key, record));
                }
                cursor = crate::kv::successor_key(&stored);
            }
            if exhausted {
                return Ok((out, None));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_foreign_bytes_read_as_strings() {
        let record = Record {
            kind: Kind::String,
            deadline: Some(1_700_000_000_123),
            value: Bytes::from_static(b"v"),
        };
        assert_eq!(decode_record(encode_record(&record)), record);
        let raw = decode_record(Bytes::from_static(b"\x07odd"));
        assert_eq!(raw.value, Bytes::from_static(b"\x07odd"));
        assert_eq!(raw.deadline, None);
    }

    #[test]
    fn store_keys_parse_back() {
        let stored = record_key(b"user:1");
        assert_eq!(
            parse_record_key(&stored),
            Some((key_hash(b"user:1"), Bytes::from_static(b"user:1")))
        );
        assert!(records_from(u64::from(key_hash(b"user:1"))) <= stored);
        assert!(stored < records_end());
        assert!(records_from(1 << 32) >= records_end());
        let due = expiry_key(b"k", 42);
        assert_eq!(parse_expiry_key(&due), Some((Bytes::from_static(b"k"), 42)));
        let (start, end) = expiries_due(42);
        assert!(start <= due && due < end);
        assert!(expiry_key(b"k", 43) >= end);
    }
}
