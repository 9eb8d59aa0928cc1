//! [`Keyspace`]: what code running against the store sees, whether it runs
//! in a transaction on one node ([`super::KvTransaction`]) or as an ordered
//! operation on every node ([`super::Execution`]), so that one
//! implementation of a command serves both.

use std::collections::BTreeMap;
use std::ops::Bound;

use bytes::Bytes;

use super::error::KvError;
use crate::ids::ClusterTime;

/// Reads and writes at one point of the total order, with the caller's own
/// writes visible to its reads.
pub trait Keyspace {
    /// The value of `key`.
    ///
    /// # Errors
    /// [`KvError`] from the engine.
    fn get(&mut self, key: &[u8]) -> Result<Option<Bytes>, KvError>;

    /// Sets `key` to `value`.
    ///
    /// # Errors
    /// [`KvError`], for example a write-set over the size limit.
    fn put(&mut self, key: Bytes, value: Bytes) -> Result<(), KvError>;

    /// Removes `key`.
    ///
    /// # Errors
    /// [`KvError`], for example a write-set over the size limit.
    fn delete(&mut self, key: Bytes) -> Result<(), KvError>;

    /// The first `limit` live keys in `start..end`, in key order, with
    /// their values. Not certified: a serializable transaction is not
    /// protected against keys inserted into a range it scanned.
    ///
    /// # Errors
    /// [`KvError`] from the engine.
    fn scan(
        &mut self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Bytes, Bytes)>, KvError>;

    /// The last `limit` live keys in `start..end`, in descending key
    /// order, with their values. Not certified, as [`Keyspace::scan`]. The
    /// default reads the range forward; the store's keyspaces read it from
    /// the end.
    ///
    /// # Errors
    /// [`KvError`] from the engine.
    fn scan_rev(
        &mut self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Bytes, Bytes)>, KvError> {
        last_of(start, limit, |from, n| self.scan(from, end, n))
    }

    /// "Now" for whatever depends on time (expiry): the cluster time of
    /// the point read, the same on every node.
    fn time(&self) -> ClusterTime;
}

/// A range of stored live keys, read in chunks: `(entries, exhausted)` for
/// up to `limit` keys from `start` (inclusive) to the range's end.
pub(crate) type Fetch<'a> =
    dyn FnMut(&[u8], usize) -> Result<(Vec<(Bytes, Bytes)>, bool), KvError> + 'a;

/// The first `limit` live keys in `start..end`: the stored ones read through
/// `fetch`, with `pending` (own writes: `None` is a delete) laid over them.
pub(crate) fn merged_scan(
    pending: &BTreeMap<Bytes, Option<Bytes>>,
    fetch: &mut Fetch<'_>,
    start: &[u8],
    end: &[u8],
    limit: usize,
) -> Result<Vec<(Bytes, Bytes)>, KvError> {
    let mut out: Vec<(Bytes, Bytes)> = Vec::new();
    let mut cursor = Bytes::copy_from_slice(start);
    while out.len() < limit {
        let (stored, exhausted) = fetch(&cursor, limit - out.len())?;
        // Own writes up to the last stored key read (or to the end).
        let upper = match (exhausted, stored.last()) {
            (false, Some((last, _))) => Bound::Included(last.clone()),
            _ => Bound::Excluded(Bytes::copy_from_slice(end)),
        };
        let own = pending.range::<Bytes, _>((Bound::Included(cursor.clone()), upper.clone()));
        let mut own = own.peekable();
        let mut stored = stored.into_iter().peekable();
        loop {
            let next = match (stored.peek(), own.peek()) {
                (None, None) => break,
                (Some((s, _)), Some((o, _))) if *o <= s => {
                    if *o == s {
                        stored.next();
                    }
                    own.next()
                        .and_then(|(k, v)| v.clone().map(|v| (k.clone(), v)))
                }
                (Some(_), _) => stored.next(),
                (None, Some(_)) => own
                    .next()
                    .and_then(|(k, v)| v.clone().map(|v| (k.clone(), v))),
            };
            if let Some(entry) = next {
                out.push(entry);
            }
        }
        let Bound::Included(last) = upper else {
            break;
        };
        cursor = successor(&last);
    }
    out.truncate(limit);
    Ok(out)
}

/// The last `limit` live keys in `start..end`, descending: the stored
/// ones read from the end through `fetch` (`(entries, exhausted)` for up to
/// `limit` keys below an exclusive upper bound), with `pending` laid over
/// them.
pub(crate) fn merged_scan_rev(
    pending: &BTreeMap<Bytes, Option<Bytes>>,
    fetch: &mut Fetch<'_>,
    start: &[u8],
    end: &[u8],
    limit: usize,
) -> Result<Vec<(Bytes, Bytes)>, KvError> {
    let mut out: Vec<(Bytes, Bytes)> = Vec::new();
    let mut upper = Bytes::copy_from_slice(end);
    while out.len() < limit {
        let (stored, exhausted) = fetch(&upper, limit - out.len())?;
        // Own writes down to the last stored key read (or to the start).
        let lower = match (exhausted, stored.last()) {
            (false, Some((last, _))) => last.clone(),
            _ => Bytes::copy_from_slice(start),
        };
        let own = pending
            .range::<Bytes, _>((
                Bound::Included(lower.clone()),
                Bound::Excluded(upper.clone()),
            ))
            .rev();
        let mut own = own.peekable();
        let mut stored = stored.into_iter().peekable();
        loop {
            let next = match (stored.peek(), own.peek()) {
                (None, None) => break,
                (Some((s, _)), Some((o, _))) if *o >= s => {
                    if *o == s {
                        stored.next();
                    }
                    own.next()
                        .and_then(|(k, v)| v.clone().map(|v| (k.clone(), v)))
                }
                (Some(_), _) => stored.next(),
                (None, Some(_)) => own
                    .next()
                    .and_then(|(k, v)| v.clone().map(|v| (k.clone(), v))),
            };
            if let Some(entry) = next {
                out.push(entry);
            }
        }
        if exhausted || lower.as_ref() <= start {
            break;
        }
        upper = lower;
    }
    out.truncate(limit);
    Ok(out)
}

/// The last `limit` entries of a range, in descending order, found by
/// reading it forward in chunks: `fetch(from, n)` gives up to `n` entries
/// from `from` on. For stores with no way to read from the end.
pub(crate) fn last_of<E>(
    start: &[u8],
    limit: usize,
    mut fetch: impl FnMut(&[u8], usize) -> Result<Vec<(Bytes, Bytes)>, E>,
) -> Result<Vec<(Bytes, Bytes)>, E> {
    const CHUNK: usize = 1024;
    let mut last = std::collections::VecDeque::new();
    let mut cursor = Bytes::copy_from_slice(start);
    if limit == 0 {
        return Ok(Vec::new());
    }
    loop {
        let chunk = fetch(&cursor, CHUNK)?;
        let done = chunk.len() < CHUNK;
        if let Some((key, _)) = chunk.last() {
            cursor = successor(key);
        }
        for entry in chunk {
            if last.len() == limit {
                last.pop_front();
            }
            last.push_back(entry);
        }
        if done {
            break;
        }
    }
    Ok(last.into_iter().rev().collect())
}

/// The smallest key after `key`.
pub(crate) fn successor(key: &[u8]) -> Bytes {
    let mut next = Vec::with_capacity(key.len() + 1);
    next.extend_from_slice(key);
    next.push(0);
    Bytes::from(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    /// Stored keys a..=f with values, read two at a time.
    fn stored() -> Vec<(Bytes, Bytes)> {
        ["a", "b", "c", "d", "e", "f"]
            .iter()
            .map(|k| (b(k), b("stored")))
            .collect()
    }

    fn scan(pending: &BTreeMap<Bytes, Option<Bytes>>, start: &str, limit: usize) -> Vec<String> {
        let all = stored();
        let mut fetch = |from: &[u8], n: usize| {
            let rest: Vec<_> = all
                .iter()
                .filter(|(k, _)| k.as_ref() >= from)
                .cloned()
                .collect();
            let chunk: Vec<_> = rest.iter().take(n.min(2)).cloned().collect();
            Ok((chunk.clone(), chunk.len() == rest.len()))
        };
        merged_scan(pending, &mut fetch, start.as_bytes(), b"z", limit)
            .unwrap()
            .into_iter()
            .map(|(k, v)| {
                format!(
                    "{}={}",
                    String::from_utf8_lossy(&k),
                    String::from_utf8_lossy(&v)
                )
            })
            .collect()
    }

    fn scan_rev(pending: &BTreeMap<Bytes, Option<Bytes>>, end: &str, limit: usize) -> Vec<String> {
        let all = stored();
        let mut fetch = |upper: &[u8], n: usize| {
            let rest: Vec<_> = all
                .iter()
                .rev()
                .filter(|(k, _)| k.as_ref() < upper)
                .cloned()
                .collect();
            let chunk: Vec<_> = rest.iter().take(n.min(2)).cloned().collect();
            Ok((chunk.clone(), chunk.len() == rest.len()))
        };
        merged_scan_rev(pending, &mut fetch, b"", end.as_bytes(), limit)
            .unwrap()
            .into_iter()
            .map(|(k, v)| {
                format!(
                    "{}={}",
                    String::from_utf8_lossy(&k),
                    String::from_utf8_lossy(&v)
                )
            })
            .collect()
    }

    #[test]
    fn the_last_entries_of_a_forward_read_come_from_the_end() {
        let all: Vec<(Bytes, Bytes)> = (0..3000u32)
            .map(|i| (Bytes::from(format!("{i:05}")), Bytes::new()))
            .collect();
        let fetch = |from: &[u8], n: usize| -> Result<Vec<(Bytes, Bytes)>, KvError> {
            Ok(all
                .iter()
                .filter(|(k, _)| k.as_ref() >= from)
                .take(n)
                .cloned()
                .collect())
        };
        let last = last_of(b"", 3, fetch).unwrap();
        let keys: Vec<_> = last.iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(keys, [b("02999"), b("02998"), b("02997")]);
        assert!(last_of(b"", 0, fetch).unwrap().is_empty());
        assert_eq!(last_of(b"02998", 10, fetch).unwrap().len(), 2);
    }

    #[test]
    fn reverse_scans_see_own_writes_from_the_end() {
        let mut pending = BTreeMap::new();
        pending.insert(b("b"), None);
        pending.insert(b("bb"), Some(b("own")));
        pending.insert(b("d"), Some(b("own")));
        pending.insert(b("g"), Some(b("own")));
        assert_eq!(
            scan_rev(&pending, "z", 100),
            [
                "g=own", "f=stored", "e=stored", "d=own", "c=stored", "bb=own", "a=stored"
            ]
        );
        assert_eq!(
            scan_rev(&pending, "d", 3),
            ["c=stored", "bb=own", "a=stored"]
        );
        assert_eq!(scan_rev(&pending, "z", 2), ["g=own", "f=stored"]);
        assert!(scan_rev(&BTreeMap::new(), "a", 5).is_empty());
    }

    #[test]
    fn own_writes_replace_hide_and_add_to_stored_keys() {
        let mut pending = BTreeMap::new();
        pending.insert(b("b"), None);
        pending.insert(b("bb"), Some(b("own")));
        pending.insert(b("d"), Some(b("own")));
        pending.insert(b("g"), Some(b("own")));
        assert_eq!(
            scan(&pending, "", 100),
            [
                "a=stored", "bb=own", "c=stored", "d=own", "e=stored", "f=stored", "g=own"
            ]
        );
        assert_eq!(scan(&pending, "b", 3), ["bb=own", "c=stored", "d=own"]);
        assert_eq!(scan(&pending, "f", 100), ["f=stored", "g=own"]);
        assert!(scan(&BTreeMap::new(), "h", 5).is_empty());
    }
}
