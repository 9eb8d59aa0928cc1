//! How a sorted set is stored: every member twice, by name (for its score)
//! and in the score index (for ranges), both members of its key:
//!
//! ```text
//! by name   sub = 0x00 · be32(crc32(member)) · member   → be64(score bits)
//! by score  sub = 0x01 · sortable(score) · member        → (empty)
//! ```
//!
//! `sortable` maps an `f64` to eight bytes that sort as the numbers do, so
//! the score index is in Redis's order (score, then member bytes) and a
//! range by score or by rank is a seek and a walk, from either end.

use bytes::{BufMut, Bytes, BytesMut};

use crate::kv::KvError;
use crate::server::db::Db;
use crate::server::db::members::{Collection, hashed};

const BY_NAME: u8 = 0x00;
const BY_SCORE: u8 = 0x01;

/// A member and its score.
pub(super) type Entry = (Bytes, f64);

/// Eight bytes that sort as `score` does among scores (-0 as 0).
fn sortable(score: f64) -> u64 {
    let bits = if score == 0.0 { 0 } else { score.to_bits() };
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | 1 << 63
    }
}

fn from_sortable(raw: u64) -> f64 {
    let bits = if raw >> 63 == 1 {
        raw & !(1 << 63)
    } else {
        !raw
    };
    f64::from_bits(bits)
}

fn name_sub(member: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(member.len() + 5);
    out.put_u8(BY_NAME);
    out.put_slice(&hashed(member));
    out.freeze()
}

/// The score-index sub of `member` at `score`.
fn score_sub(score: f64, member: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(member.len() + 9);
    out.put_u8(BY_SCORE);
    out.put_u64(sortable(score));
    out.put_slice(member);
    out.freeze()
}

/// The first score-index sub at `score` (every member at it sorts after).
pub(super) fn score_start(score: f64) -> Bytes {
    score_sub(score, b"")
}

/// The first score-index sub after every member at `score`.
pub(super) fn score_after(score: f64) -> Option<Bytes> {
    let next = sortable(score).checked_add(1)?;
    let mut out = BytesMut::with_capacity(9);
    out.put_u8(BY_SCORE);
    out.put_u64(next);
    Some(out.freeze())
}

/// The sub a lex bound names at `score`: the member itself, or the first
/// sub after it.
pub(super) fn lex_sub(score: f64, member: &[u8], after: bool) -> Bytes {
    let sub = score_sub(score, member);
    if after {
        crate::kv::successor_key(&sub)
    } else {
        sub
    }
}

/// The tag before a sorted set's by-name subs (for `ZSCAN`).
pub(super) const NAME_TAG: &[u8] = &[BY_NAME];

fn parse_score_sub(sub: &Bytes) -> Option<Entry> {
    let rest = sub.strip_prefix(&[BY_SCORE])?;
    let raw = u64::from_be_bytes(rest.get(..8)?.try_into().ok()?);
    Some((sub.slice(9..), from_sortable(raw)))
}

/// A score as stored by name.
pub(super) fn decode_score(value: &[u8]) -> Option<f64> {
    Some(f64::from_bits(u64::from_be_bytes(value.try_into().ok()?)))
}

/// The score of `member`, if it is in `zset`.
pub(super) fn score(
    db: &mut Db<'_>,
    zset: &Collection,
    member: &[u8],
) -> Result<Option<f64>, KvError> {
    if zset.is_empty() {
        return Ok(None);
    }
    Ok(db
        .member(zset.key(), &name_sub(member))?
        .and_then(|v| decode_score(&v)))
}

/// Sets `member`'s score (adding it when new).
pub(super) fn set(
    db: &mut Db<'_>,
    zset: &mut Collection,
    member: &[u8],
    new: f64,
    old: Option<f64>,
) -> Result<(), KvError> {
    let key = zset.key().clone();
    match old {
        Some(old) => db.delete_member(&key, &score_sub(old, member))?,
        None => zset.meta.len += 1,
    }
    let new = if new == 0.0 { 0.0 } else { new };
    db.put_member(
        &key,
        &name_sub(member),
        Bytes::copy_from_slice(&new.to_bits().to_be_bytes()),
    )?;
    db.put_member(&key, &score_sub(new, member), Bytes::new())
}

/// Removes `member` (at `score`).
pub(super) fn remove(
    db: &mut Db<'_>,
    zset: &mut Collection,
    member: &[u8],
    score: f64,
) -> Result<(), KvError> {
    let key = zset.key().clone();
    db.delete_member(&key, &name_sub(member))?;
    db.delete_member(&key, &score_sub(score, member))?;
    zset.meta.len -= 1;
    Ok(())
}

/// Walks the score index in order from the sub `from` (inclusive; `None`:
/// the first entry), or with `rev` from the high end down from just below
/// `from` (exclusive; `None`: the last entry), handing each entry to
/// `visit` until it says stop.
pub(super) fn walk(
    db: &mut Db<'_>,
    zset: &Collection,
    rev: bool,
    from: Option<&[u8]>,
    mut visit: impl FnMut(Entry) -> bool,
) -> Result<(), KvError> {
    const CHUNK: usize = 256;
    let first = [BY_SCORE];
    // Forward: the next sub to read from; reverse: the sub to read below.
    let mut bound = match (from, rev) {
        (Some(from), _) => Some(Bytes::copy_from_slice(from)),
        (None, false) => Some(Bytes::copy_from_slice(&first)),
        (None, true) => None,
    };
    loop {
        let chunk = match (&bound, rev) {
            (bound, true) => db.members_rev(zset.key(), &first, bound.as_deref(), CHUNK)?,
            (Some(cursor), false) => db.members(zset.key(), cursor, CHUNK)?,
            (None, false) => return Ok(()),
        };
        let done = chunk.len() < CHUNK;
        for (sub, _) in &chunk {
            let Some(entry) = parse_score_sub(sub) else {
                return Ok(());
            };
            if !visit(entry) {
                return Ok(());
            }
        }
        match chunk.last() {
            Some((last, _)) if !done && rev => bound = Some(last.clone()),
            Some((last, _)) if !done => bound = Some(crate::kv::successor_key(last)),
            _ => return Ok(()),
        }
    }
}

/// The entries at ranks `start..start + count` (`rev`: counted from the
/// high end).
pub(super) fn by_rank(
    db: &mut Db<'_>,
    zset: &Collection,
    rev: bool,
    start: u64,
    count: u64,
) -> Result<Vec<Entry>, KvError> {
    let mut out = Vec::new();
    let mut at = 0u64;
    walk(db, zset, rev, None, |entry| {
        if at >= start {
            out.push(entry);
        }
        at += 1;
        (out.len() as u64) < count
    })?;
    Ok(out)
}

/// The rank of `member` at `score` (`rev`: from the high end).
pub(super) fn rank(
    db: &mut Db<'_>,
    zset: &Collection,
    member: &[u8],
    score: f64,
    rev: bool,
) -> Result<u64, KvError> {
    let target = score_sub(score, member);
    let mut rank = 0u64;
    walk(db, zset, false, None, |(name, s)| {
        if score_sub(s, &name) == target {
            return false;
        }
        rank += 1;
        true
    })?;
    Ok(if rev { zset.meta.len - 1 - rank } else { rank })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sortable_scores_sort_as_numbers_and_round_trip() {
        let scores = [
            f64::NEG_INFINITY,
            -1e300,
            -2.5,
            -1.0,
            -0.0,
            0.0,
            1e-300,
            1.0,
            2.5,
            1e300,
            f64::INFINITY,
        ];
        for pair in scores.windows(2) {
            assert!(sortable(pair[0]) <= sortable(pair[1]), "{pair:?}");
        }
        for score in scores {
            let back = from_sortable(sortable(score));
            assert!(back == score, "{score} came back as {back}");
        }
        assert_eq!(sortable(-0.0), sortable(0.0));
        assert!(score_after(f64::INFINITY).is_some());
        let sub = score_sub(2.5, b"m");
        assert_eq!(parse_score_sub(&sub), Some((Bytes::from_static(b"m"), 2.5)));
        assert!(score_start(2.5) < sub && sub < score_after(2.5).unwrap());
    }
}
