//! How MVCC versions and replication metadata are laid out in the engine.
//!
//! ```text
//! version key   'd' · escape(user_key) · 0x00 0x01 · be64(u64::MAX - seqno)
//! version value 0x01 · value      (a put)
//!               0x00              (a tombstone: deleted at this seqno)
//! metadata      'm' · name        (applied watermark, certification checkpoint)
//! ```
//!
//! Escaping turns each 0x00 in the user key into 0x00 0xFF, so the 0x00 0x01
//! terminator cannot occur inside a key, user keys keep their byte order,
//! and all versions of one key are contiguous. The inverted seqno sorts a
//! key's versions newest first, so reading at a read view is one seek.

use bytes::{BufMut, Bytes, BytesMut};

use super::error::EngineError;
use crate::ids::Seqno;

/// Start of the version key space.
pub(crate) const DATA_START: &[u8] = b"d";
/// End (exclusive) of the version key space.
pub(crate) const DATA_END: &[u8] = b"e";
/// Metadata: the applied watermark, as a big-endian u64.
pub(crate) const META_APPLIED: &[u8] = b"mapplied";
/// Metadata: the last certification checkpoint frame.
pub(crate) const META_CHECKPOINT: &[u8] = b"mcheckpoint";
/// Metadata: present while a state transfer fills the store; a store that
/// still has it on start holds an incomplete copy and is wiped.
pub(crate) const META_TRANSFER: &[u8] = b"mtransfer";
/// Start and end (exclusive) of the metadata key space.
pub(crate) const META_START: &[u8] = b"m";
pub(crate) const META_END: &[u8] = b"n";

const TERMINATOR: [u8; 2] = [0x00, 0x01];
const TAG_TOMBSTONE: u8 = 0x00;
const TAG_VALUE: u8 = 0x01;

/// `'d' · escape(user_key) · terminator`: the common prefix of a key's versions.
pub(crate) fn key_prefix(user_key: &[u8]) -> BytesMut {
    let mut out = BytesMut::with_capacity(user_key.len() + 12);
    out.put_slice(DATA_START);
    for &byte in user_key {
        out.put_u8(byte);
        if byte == 0x00 {
            out.put_u8(0xFF);
        }
    }
    out.put_slice(&TERMINATOR);
    out
}

/// The exclusive end of a key's version range.
pub(crate) fn key_prefix_end(user_key: &[u8]) -> Bytes {
    let mut end = key_prefix(user_key);
    let last = end.len() - 1;
    end[last] += 1;
    end.freeze()
}

/// The engine key of `user_key`'s version at `seqno`.
pub(crate) fn version_key(user_key: &[u8], seqno: Seqno) -> Bytes {
    let mut key = key_prefix(user_key);
    key.put_u64(u64::MAX - seqno.get());
    key.freeze()
}

/// Splits a version key into the user key and the seqno.
pub(crate) fn parse_version_key(key: &[u8]) -> Result<(Vec<u8>, Seqno), EngineError> {
    let corrupt = || EngineError::BadVersionKey { key: key.to_vec() };
    let rest = key.strip_prefix(DATA_START).ok_or_else(corrupt)?;
    let split = rest
        .len()
        .checked_sub(8 + TERMINATOR.len())
        .ok_or_else(corrupt)?;
    let (escaped, tail) = rest.split_at(split);
    if tail[..2] != TERMINATOR {
        return Err(corrupt());
    }
    let mut user_key = Vec::with_capacity(escaped.len());
    let mut bytes = escaped.iter();
    while let Some(&byte) = bytes.next() {
        user_key.push(byte);
        if byte == 0x00 && bytes.next() != Some(&0xFF) {
            return Err(corrupt());
        }
    }
    let mut inverted = [0u8; 8];
    inverted.copy_from_slice(&tail[2..]);
    Ok((
        user_key,
        Seqno::new(u64::MAX - u64::from_be_bytes(inverted)),
    ))
}

/// Encodes a version's value; `None` is a tombstone.
pub(crate) fn encode_value(value: Option<&[u8]>) -> Bytes {
    match value {
        None => Bytes::from_static(&[TAG_TOMBSTONE]),
        Some(value) => {
            let mut out = BytesMut::with_capacity(value.len() + 1);
            out.put_u8(TAG_VALUE);
            out.put_slice(value);
            out.freeze()
        }
    }
}

/// Decodes a version's value; `None` is a tombstone.
pub(crate) fn decode_value(stored: &Bytes) -> Result<Option<Bytes>, EngineError> {
    match stored.first() {
        Some(&TAG_VALUE) => Ok(Some(stored.slice(1..))),
        Some(&TAG_TOMBSTONE) if stored.len() == 1 => Ok(None),
        _ => Err(EngineError::BadVersionValue {
            value: stored.to_vec(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        /// Version keys round-trip, stay inside their key's range, and sort
        /// by user key first and newest seqno first.
        #[test]
        fn version_keys_round_trip_and_order(
            a in proptest::collection::vec(any::<u8>(), 0..12),
            b in proptest::collection::vec(any::<u8>(), 0..12),
            sa in any::<u64>(),
            sb in any::<u64>(),
        ) {
            let ka = version_key(&a, Seqno::new(sa));
            prop_assert_eq!(parse_version_key(&ka).unwrap(), (a.clone(), Seqno::new(sa)));
            prop_assert!(ka.as_ref() >= key_prefix(&a).as_ref());
            prop_assert!(ka.as_ref() < key_prefix_end(&a).as_ref());
            let kb = version_key(&b, Seqno::new(sb));
            let expected = a.cmp(&b).then(sb.cmp(&sa));
            prop_assert_eq!(ka.cmp(&kb), expected);
        }
    }

    #[test]
    fn values_and_tombstones_are_tagged() {
        assert_eq!(
            decode_value(&encode_value(Some(b"v"))).unwrap().as_deref(),
            Some(&b"v"[..])
        );
        assert_eq!(
            decode_value(&encode_value(Some(b""))).unwrap().as_deref(),
            Some(&b""[..])
        );
        assert_eq!(decode_value(&encode_value(None)).unwrap(), None);
        assert!(decode_value(&Bytes::from_static(&[7, 1])).is_err());
        assert!(parse_version_key(b"dxyz").is_err());
    }
}
