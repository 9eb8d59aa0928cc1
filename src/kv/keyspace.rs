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
