//! The members of hashes, lists, sets and sorted sets: each under its own
//! store key after its collection's key, with the collection's size in its
//! record.
//!
//! ```text
//! member   'm' · be32(len key) · key · sub → value
//! hash     sub = be32(crc32(field)) · field        → field's value
//! set      sub = be32(crc32(member)) · member      → (empty)
//! ```
//!
//! Hash fields and set members sort by the hash of their name, so `HSCAN`
//! and `SSCAN` walk them with a numeric cursor as `SCAN` walks keys, and a
//! random pick (`SPOP`, `HRANDFIELD`) is a seek to a random point of the
//! hash circle. The length prefix makes one collection's members a range
//! no other key's members fall into.

use bytes::{BufMut, Bytes, BytesMut};

use super::{Db, Kind, Record, record_key, wrong_type};
use crate::kv::KvError;
use crate::server::resp::Reply;

/// Members found by a hashed scan (names and values), and the next hash
/// to visit (`None` at the end).
pub(crate) type HashedScan = (Vec<(Bytes, Bytes)>, Option<u64>);

/// Start of the member key space.
const MEMBERS: u8 = b'm';
/// Bytes of an encoded [`Meta`].
pub(super) const META_LEN: usize = 16;

/// What a collection's record holds: its size, and for a list the index
/// of its first element.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Meta {
    /// Members (fields, elements) it holds; never 0 in a stored record.
    pub(crate) len: u64,
    /// A list's first element's index (lists only; 0 otherwise).
    pub(crate) head: i64,
}

impl Meta {
    pub(super) fn encode(self) -> Bytes {
        let mut out = BytesMut::with_capacity(META_LEN);
        out.put_u64(self.len);
        out.put_i64(self.head);
        out.freeze()
    }

    pub(super) fn decode(value: &[u8]) -> Option<Meta> {
        let len = u64::from_be_bytes(value.get(..8)?.try_into().ok()?);
        let head = i64::from_be_bytes(value.get(8..META_LEN)?.try_into().ok()?);
        (value.len() == META_LEN).then_some(Meta { len, head })
    }
}

/// A collection opened by a command: where its record stands and its
/// [`Meta`], which the command changes and then [`Db::close`]s.
#[derive(Clone, Debug)]
pub(crate) struct Collection {
    key: Bytes,
    kind: Kind,
    /// Whether a live record exists (false: the command creates it).
    existed: bool,
    deadline: Option<u64>,
    /// Its size when opened: a command that grew it wakes the clients
    /// blocked on it.
    opened_len: u64,
    pub(crate) meta: Meta,
}

impl Collection {
    /// The Redis key it is stored at.
    pub(crate) fn key(&self) -> &Bytes {
        &self.key
    }

    /// Whether it holds nothing (a new collection, before it is filled).
    pub(crate) fn is_empty(&self) -> bool {
        self.meta.len == 0
    }

    /// Its size, as a reply length.
    pub(crate) fn len(&self) -> usize {
        usize::try_from(self.meta.len).unwrap_or(usize::MAX)
    }
}

/// The common start of `key`'s member keys.
fn prefix(key: &[u8]) -> BytesMut {
    let mut out = BytesMut::with_capacity(key.len() + 32);
    out.put_u8(MEMBERS);
    out.put_u32(u32::try_from(key.len()).unwrap_or(u32::MAX));
    out.put_slice(key);
    out
}

/// The store key of `key`'s member `sub`.
pub(crate) fn member_key(key: &[u8], sub: &[u8]) -> Bytes {
    let mut out = prefix(key);
    out.put_slice(sub);
    out.freeze()
}

/// The end of `key`'s member range: the first store key after every one of
/// its members (the prefix plus one, as a number). No other key's member
/// keys start with the prefix: the length fixes where the key ends.
fn members_end(key: &[u8]) -> Bytes {
    let mut end = prefix(key).to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            break;
        }
    }
    // Never empty: the prefix starts with `MEMBERS`, which is below 0xff.
    Bytes::from(end)
}

/// Every member of every collection, as a store key range.
pub(crate) fn all_members() -> (Bytes, Bytes) {
    (
        Bytes::from_static(&[MEMBERS]),
        Bytes::from_static(&[MEMBERS + 1]),
    )
}

/// The sub of a hash field or set member: its hash, then its name.
pub(crate) fn hashed(name: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(name.len() + 4);
    out.put_u32(crc32fast::hash(name));
    out.put_slice(name);
    out.freeze()
}

/// The hash and name of a hashed sub.
pub(crate) fn parse_hashed(sub: &Bytes) -> Option<(u32, Bytes)> {
    let hash = u32::from_be_bytes(sub.get(..4)?.try_into().ok()?);
    Some((hash, sub.slice(4..)))
}

/// The smallest hashed sub at hash `hash` (a cursor), or `None` past the
/// last hash.
pub(crate) fn hashed_from(hash: u64) -> Option<Bytes> {
    u32::try_from(hash)
        .ok()
        .map(|hash| Bytes::copy_from_slice(&hash.to_be_bytes()))
}

impl Db<'_> {
    /// The live collection of `kind` at `key`: `Ok(None)` when absent, the
    /// `WRONGTYPE` reply when it holds another type.
    pub(crate) fn collection(
        &mut self,
        key: &[u8],
        kind: Kind,
    ) -> Result<Result<Option<Collection>, Reply>, KvError> {
        let Some(record) = self.lookup(key)? else {
            return Ok(Ok(None));
        };
        if record.kind != kind {
            return Ok(Err(wrong_type()));
        }
        let meta = Meta::decode(&record.value).unwrap_or_default();
        Ok(Ok(Some(Collection {
            key: Bytes::copy_from_slice(key),
            kind,
            existed: true,
            deadline: record.deadline,
            opened_len: meta.len,
            meta,
        })))
    }

    /// The collection of `kind` at `key` for a command that may fill it:
    /// the live one, or a new empty one (an expired record and its members
    /// are removed first), or the `WRONGTYPE` reply.
    pub(crate) fn collection_mut(
        &mut self,
        key: &[u8],
        kind: Kind,
    ) -> Result<Result<Collection, Reply>, KvError> {
        match self.collection(key, kind)? {
            Ok(Some(found)) => return Ok(Ok(found)),
            Err(reply) => return Ok(Err(reply)),
            Ok(None) => {}
        }
        // Absent or expired: clear what an expired record left.
        self.remove(key)?;
        Ok(Ok(Collection {
            key: Bytes::copy_from_slice(key),
            kind,
            existed: false,
            deadline: None,
            opened_len: 0,
            meta: Meta::default(),
        }))
    }

    /// Writes back a collection's record after a command changed its
    /// members: an emptied one is removed (Redis deletes empty
    /// collections), a new one is created without expiry; one that grew
    /// wakes the clients blocked on it.
    pub(crate) fn close(&mut self, collection: &Collection) -> Result<(), KvError> {
        if collection.meta.len > collection.opened_len {
            self.filled(&collection.key);
        }
        if collection.meta.len == 0 {
            if collection.existed {
                self.remove(&collection.key)?;
            }
            return Ok(());
        }
        let record = Record {
            kind: collection.kind,
            deadline: collection.deadline,
            value: collection.meta.encode(),
        };
        // The deadline is unchanged, so the expiry index is too.
        self.keys
            .put(record_key(&collection.key), super::encode_record(&record))
    }

    /// The value of `key`'s member `sub`.
    pub(crate) fn member(&mut self, key: &[u8], sub: &[u8]) -> Result<Option<Bytes>, KvError> {
        self.keys.get(&member_key(key, sub))
    }

    pub(crate) fn put_member(
        &mut self,
        key: &[u8],
        sub: &[u8],
        value: Bytes,
    ) -> Result<(), KvError> {
        self.keys.put(member_key(key, sub), value)
    }

    pub(crate) fn delete_member(&mut self, key: &[u8], sub: &[u8]) -> Result<(), KvError> {
        self.keys.delete(member_key(key, sub))
    }

    /// Up to `limit` of `key`'s members from `from` (a sub, inclusive), in
    /// sub order: each sub and its value.
    pub(crate) fn members(
        &mut self,
        key: &[u8],
        from: &[u8],
        limit: usize,
    ) -> Result<Vec<(Bytes, Bytes)>, KvError> {
        let start = member_key(key, from);
        let skip = prefix(key).len();
        let found = self.keys.scan(&start, &members_end(key), limit)?;
        Ok(found
            .into_iter()
            .map(|(stored, value)| (stored.slice(skip..), value))
            .collect())
    }

    /// Every member of `key`, in sub order, as long as the reply budget
    /// pays `cost` for each; `None` when it ran out.
    pub(crate) fn all_members(
        &mut self,
        key: &[u8],
        cost: impl Fn(&Bytes, &Bytes) -> usize,
    ) -> Result<Option<Vec<(Bytes, Bytes)>>, KvError> {
        let mut out = Vec::new();
        let mut from = Bytes::new();
        loop {
            let chunk = self.members(key, &from, 1024)?;
            let done = chunk.len() < 1024;
            if let Some((last, _)) = chunk.last() {
                from = crate::kv::successor_key(last);
            }
            for (sub, value) in chunk {
                if !self.charge(cost(&sub, &value)) {
                    return Ok(None);
                }
                out.push((sub, value));
            }
            if done {
                return Ok(Some(out));
            }
        }
    }

    /// Members of a hash or set from hash `from` on: about `count` of
    /// them, always ending at a change of hash (see `Db::scan_from`). Each
    /// name with its value, and the next hash to visit (`None` at the end).
    ///
    /// The hashed subs are those after `tag` (empty for hashes and sets;
    /// a sorted set's members by name follow a tag byte).
    pub(crate) fn scan_hashed(
        &mut self,
        key: &[u8],
        tag: &[u8],
        from: u64,
        count: usize,
    ) -> Result<HashedScan, KvError> {
        let Some(start) = hashed_from(from) else {
            return Ok((Vec::new(), None));
        };
        let mut cursor = [tag, &start].concat();
        let mut out = Vec::new();
        let mut last_hash = None;
        let chunk = count.clamp(16, 4096);
        loop {
            let found = self.members(key, &cursor, chunk)?;
            let exhausted = found.len() < chunk;
            for (sub, value) in found {
                let Some(hashed) = sub.strip_prefix(tag) else {
                    return Ok((out, None));
                };
                let Some((hash, name)) = parse_hashed(&sub.slice_ref(hashed)) else {
                    continue;
                };
                if out.len() >= count && last_hash != Some(hash) {
                    return Ok((out, Some(u64::from(hash))));
                }
                last_hash = Some(hash);
                out.push((name, value));
                cursor = crate::kv::successor_key(&sub).to_vec();
            }
            if exhausted {
                return Ok((out, None));
            }
        }
    }

    /// A random member of a hash or set (a seek to a random point of the
    /// hash circle, wrapping around): its name and value, or `None` when
    /// it has none.
    pub(crate) fn random_hashed(&mut self, key: &[u8]) -> Result<Option<(Bytes, Bytes)>, KvError> {
        let point = (self.random() & u64::from(u32::MAX)).to_be_bytes();
        for from in [&point[4..], &[][..]] {
            let found = self.members(key, from, 1)?.into_iter().next();
            if let Some((name, value)) =
                found.and_then(|(sub, value)| Some((parse_hashed(&sub)?.1, value)))
            {
                return Ok(Some((name, value)));
            }
        }
        Ok(None)
    }

    /// Random members of a hash or set of `len` members, as `HRANDFIELD`
    /// and `SRANDMEMBER` pick them for `count`: that many distinct ones
    /// (all, when it has no more), or for a negative count that many
    /// picks, repeats allowed. The reply budget pays `cost` for each;
    /// `None` when it ran out.
    pub(crate) fn sample_hashed(
        &mut self,
        key: &[u8],
        len: u64,
        count: i64,
        cost: impl Fn(&Bytes, &Bytes) -> usize,
    ) -> Result<Option<Vec<(Bytes, Bytes)>>, KvError> {
        let wanted = count.unsigned_abs();
        if count >= 0 && wanted >= len {
            let all = self.all_members(key, |sub, value| cost(sub, value))?;
            return Ok(all.map(|all| {
                all.into_iter()
                    .filter_map(|(sub, value)| Some((parse_hashed(&sub)?.1, value)))
                    .collect()
            }));
        }
        let mut out = Vec::new();
        if count < 0 {
            for _ in 0..wanted {
                let Some((name, value)) = self.random_hashed(key)? else {
                    break;
                };
                if !self.charge(cost(&name, &value)) {
                    return Ok(None);
                }
                out.push((name, value));
            }
            return Ok(Some(out));
        }
        // Fewer than it holds: distinct random picks, then (when the picks
        // keep landing on the same members) the first ones not yet taken.
        let mut taken = std::collections::HashSet::new();
        let mut attempts = wanted.saturating_mul(16);
        while (out.len() as u64) < wanted && attempts > 0 {
            attempts -= 1;
            let Some((name, value)) = self.random_hashed(key)? else {
                break;
            };
            if taken.insert(name.clone()) {
                if !self.charge(cost(&name, &value)) {
                    return Ok(None);
                }
                out.push((name, value));
            }
        }
        let mut from = Bytes::new();
        while (out.len() as u64) < wanted {
            let chunk = self.members(key, &from, 256)?;
            let Some((last, _)) = chunk.last() else {
                break;
            };
            from = crate::kv::successor_key(last);
            for (sub, value) in chunk {
                let Some((_, name)) = parse_hashed(&sub) else {
                    continue;
                };
                if (out.len() as u64) < wanted && taken.insert(name.clone()) {
                    if !self.charge(cost(&name, &value)) {
                        return Ok(None);
                    }
                    out.push((name, value));
                }
            }
        }
        Ok(Some(out))
    }

    /// Up to `limit` of `key`'s members in `from..until` (subs; `until`
    /// `None` for the end), from the last down.
    pub(crate) fn members_rev(
        &mut self,
        key: &[u8],
        from: &[u8],
        until: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Bytes, Bytes)>, KvError> {
        let start = member_key(key, from);
        let end = until.map_or_else(|| members_end(key), |until| member_key(key, until));
        let skip = prefix(key).len();
        let found = self.keys.scan_rev(&start, &end, limit)?;
        Ok(found
            .into_iter()
            .map(|(stored, value)| (stored.slice(skip..), value))
            .collect())
    }

    /// Writes every member of `from` under `to` as well (`RENAME`, `COPY`;
    /// `to` holds none).
    pub(crate) fn copy_members(&mut self, from: &[u8], to: &[u8]) -> Result<(), KvError> {
        let mut cursor = Bytes::new();
        loop {
            let chunk = self.members(from, &cursor, 4096)?;
            let done = chunk.len() < 4096;
            for (sub, value) in chunk {
                self.put_member(to, &sub, value)?;
                cursor = crate::kv::successor_key(&sub);
            }
            if done {
                return Ok(());
            }
        }
    }

    /// Deletes every member of `key` (its record stays as it is).
    pub(super) fn purge_members(&mut self, key: &[u8]) -> Result<(), KvError> {
        let (start, end) = (member_key(key, b""), members_end(key));
        loop {
            let chunk = self.keys.scan(&start, &end, 4096)?;
            if chunk.is_empty() {
                return Ok(());
            }
            for (stored, _) in chunk {
                self.keys.delete(stored)?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_collection_s_members_are_one_range() {
        let (start, end) = (member_key(b"ab", b""), members_end(b"ab"));
        for sub in [&b""[..], b"\x00", b"\xfe\xff\xff", &hashed(b"field")] {
            let key = member_key(b"ab", sub);
            assert!(start <= key && key < end, "{sub:?}");
        }
        for other in [
            member_key(b"a", b"b"),
            member_key(b"abc", b""),
            member_key(b"b", b""),
        ] {
            assert!(other < start || other >= end, "{other:?}");
        }
        let (all, all_end) = all_members();
        assert!(all <= start && end <= all_end);
    }

    #[test]
    fn meta_and_hashed_subs_round_trip() {
        let meta = Meta { len: 7, head: -3 };
        assert_eq!(Meta::decode(&meta.encode()), Some(meta));
        assert_eq!(Meta::decode(b"short"), None);
        let sub = hashed(b"f");
        assert_eq!(
            parse_hashed(&sub),
            Some((crc32fast::hash(b"f"), Bytes::from_static(b"f")))
        );
        assert!(hashed_from(u64::from(crc32fast::hash(b"f"))).is_some_and(|c| c <= sub));
        assert_eq!(hashed_from(1 << 32), None);
    }
}
