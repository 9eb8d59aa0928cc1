//! The checksummed, versioned frame that wraps every encoded body certus
//! writes: write-sets, certification checkpoints, and later log entries and
//! peer messages.
//!
//! ```text
//! offset  size  field
//!      0     4  magic     0x43455254 ("CERT"), big-endian
//!      4     2  version   format version of the body, per kind
//!      6     1  kind      what the body is (FrameKind)
//!      7     1  flags     reserved, must be zero in version 1
//!      8     4  body_len  length of the body in bytes
//!     12     4  crc32     CRC-32/IEEE over the header (this field zeroed) and the body
//!     16     n  body      postcard encoding of the kind's versioned struct
//! ```
//!
//! Decoding validates in the order that makes hostile input cheap: length and
//! header first (no allocation), then the checksum, then the body. It returns
//! a typed [`FrameError`] for every malformed input and never panics.

use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;
use thiserror::Error;

/// The first four bytes of every frame: "CERT".
pub const MAGIC: u32 = 0x4345_5254;

/// Length of the fixed frame header in bytes.
pub const HEADER_LEN: usize = 16;

const CRC_OFFSET: usize = 12;

/// What a frame's body holds. Each kind versions its body independently.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FrameKind {
    /// A transaction's write-set ([`crate::writeset::WriteSet`]).
    WriteSet,
    /// A certification index checkpoint ([`crate::certify::CertCheckpoint`]).
    CertCheckpoint,
    /// A message between two nodes of a cluster.
    Peer,
    /// One entry of the ordering layer's on-disk log.
    LogEntry,
    /// The ordering layer's persistent state (vote, snapshot point).
    OrderState,
    /// A message of a full state transfer (SST).
    Transfer,
    /// An ordered operation ([`crate::writeset::Operation`]).
    Operation,
    /// A record of a backup file (`certusd backup`).
    Backup,
    /// A change of the cluster protocol, ordered by the leader
    /// ([`crate::protocol`]).
    ClusterProtocol,
}

impl FrameKind {
    pub(crate) const fn code(self) -> u8 {
        match self {
            FrameKind::WriteSet => 1,
            FrameKind::CertCheckpoint => 2,
            FrameKind::Peer => 3,
            FrameKind::LogEntry => 4,
            FrameKind::OrderState => 5,
            FrameKind::Transfer => 6,
            FrameKind::Operation => 7,
            FrameKind::Backup => 8,
            FrameKind::ClusterProtocol => 9,
        }
    }

    const fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(FrameKind::WriteSet),
            2 => Some(FrameKind::CertCheckpoint),
            3 => Some(FrameKind::Peer),
            4 => Some(FrameKind::LogEntry),
            5 => Some(FrameKind::OrderState),
            6 => Some(FrameKind::Transfer),
            7 => Some(FrameKind::Operation),
            8 => Some(FrameKind::Backup),
            9 => Some(FrameKind::ClusterProtocol),
            _ => None,
        }
    }

    /// The body format version this build writes at
    /// [`crate::protocol::Protocol::CURRENT`].
    #[must_use]
    pub const fn current_version(self) -> u16 {
        match self {
            // 2: the checkpoint carries the history digest; 3: the
            // cluster time and the last write to every key; 4: the
            // history's byte bound; 5: the index's keys by hash.
            FrameKind::CertCheckpoint => 5,
            // 2: each entry carries the leader's time stamp.
            FrameKind::LogEntry => 2,
            FrameKind::WriteSet
            | FrameKind::Operation
            | FrameKind::Peer
            | FrameKind::OrderState
            | FrameKind::Transfer
            | FrameKind::Backup
            | FrameKind::ClusterProtocol => 1,
        }
    }

    /// The newest body format version this build reads: the newest any
    /// protocol it speaks writes ([`crate::protocol::Protocol::spoken`]).
    #[must_use]
    pub fn newest_version(self) -> u16 {
        crate::protocol::Protocol::spoken()
            .iter()
            .map(|protocol| protocol.frame_version(self))
            .max()
            .unwrap_or_else(|| self.current_version())
    }
}

/// The decoded fixed header of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// What the body holds.
    pub kind: FrameKind,
    /// The body's format version.
    pub version: u16,
    /// Reserved flag bits.
    pub flags: u8,
    /// Body length in bytes.
    pub body_len: u32,
    /// The checksum stored in the header.
    pub crc32: u32,
}

impl FrameHeader {
    /// Total frame length: header plus body.
    #[must_use]
    pub fn frame_len(&self) -> usize {
        HEADER_LEN + self.body_len as usize
    }
}

/// Why a frame could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The input ends before the frame does.
    #[error("frame truncated: need {needed} bytes, have {available}")]
    Truncated {
        /// Bytes the frame needs.
        needed: usize,
        /// Bytes present.
        available: usize,
    },
    /// The input does not start with [`MAGIC`].
    #[error("bad frame magic {found:#010x}, expected {MAGIC:#010x}")]
    BadMagic {
        /// The four bytes found instead.
        found: u32,
    },
    /// The kind byte names no known body type.
    #[error("unknown frame kind {code}")]
    UnknownKind {
        /// The kind byte.
        code: u8,
    },
    /// The body version is newer than this build understands (or zero).
    #[error("unsupported {kind:?} format version {version} (this build reads 1..={newest})")]
    UnsupportedVersion {
        /// The frame kind.
        kind: FrameKind,
        /// The version found.
        version: u16,
        /// The newest version this build reads.
        newest: u16,
    },
    /// Reserved flag bits are set.
    #[error("unknown frame flags {flags:#04x}")]
    UnknownFlags {
        /// The flags byte.
        flags: u8,
    },
    /// The body is longer than the configured maximum.
    #[error("frame body of {len} bytes exceeds the maximum of {max} bytes")]
    TooLarge {
        /// The body length.
        len: u64,
        /// The configured maximum.
        max: u64,
    },
    /// The stored checksum does not match the content.
    #[error(
        "frame checksum mismatch: header has {stored:#010x}, content hashes to {computed:#010x}"
    )]
    ChecksumMismatch {
        /// Checksum in the header.
        stored: u32,
        /// Checksum of the content.
        computed: u32,
    },
    /// Bytes follow the frame where none were expected.
    #[error("{extra} unexpected bytes after the frame")]
    TrailingBytes {
        /// How many bytes follow.
        extra: usize,
    },
    /// The body is not a valid encoding of its kind's struct.
    #[error("malformed {kind:?} body: {reason}")]
    MalformedBody {
        /// The frame kind.
        kind: FrameKind,
        /// What the body decoder reported.
        reason: String,
    },
    /// The body decoded but violates an invariant of its kind.
    #[error("invalid {kind:?}: {reason}")]
    Invalid {
        /// The frame kind.
        kind: FrameKind,
        /// The violated invariant.
        reason: String,
    },
}

/// Encodes `value` with postcard as the body of a `kind` frame at the current
/// version.
///
/// # Errors
/// [`FrameError::TooLarge`] when the body exceeds `max_body` bytes;
/// [`FrameError::MalformedBody`] when serialization itself fails.
pub fn encode<T: Serialize>(
    kind: FrameKind,
    value: &T,
    max_body: usize,
) -> Result<Bytes, FrameError> {
    encode_version(kind, kind.current_version(), value, max_body)
}

/// As [`encode`], with an older body `version` in the header: for tests
/// that an older format is still read.
pub(crate) fn encode_version<T: Serialize>(
    kind: FrameKind,
    version: u16,
    value: &T,
    max_body: usize,
) -> Result<Bytes, FrameError> {
    let mut buf = BytesMut::with_capacity(HEADER_LEN + 64);
    buf.put_bytes(0, HEADER_LEN);
    let mut buf = postcard::to_extend(value, buf).map_err(|e| FrameError::MalformedBody {
        kind,
        reason: e.to_string(),
    })?;
    let body_len = buf.len() - HEADER_LEN;
    let len_u32 = u32::try_from(body_len)
        .ok()
        .filter(|_| body_len <= max_body);
    let Some(len_u32) = len_u32 else {
        return Err(FrameError::TooLarge {
            len: body_len as u64,
            max: max_body as u64,
        });
    };
    buf[0..4].copy_from_slice(&MAGIC.to_be_bytes());
    buf[4..6].copy_from_slice(&version.to_be_bytes());
    buf[6] = kind.code();
    buf[7] = 0;
    buf[8..12].copy_from_slice(&len_u32.to_be_bytes());
    let crc = checksum(&buf);
    buf[CRC_OFFSET..HEADER_LEN].copy_from_slice(&crc.to_be_bytes());
    let frame = buf.freeze();
    // Pair assertion: what we hand out must pass our own decoder's checks.
    debug_assert!(
        decode(&frame, max_body).is_ok(),
        "freshly encoded frame fails to decode"
    );
    Ok(frame)
}

/// Parses and validates the header at the start of `input` without looking
/// at the body. Returns `Ok(None)` when fewer than [`HEADER_LEN`] bytes are
/// present, which lets a stream reader wait for more input.
///
/// # Errors
/// Any header-level [`FrameError`], including [`FrameError::TooLarge`] before
/// anything is allocated for the body.
pub fn peek_header(input: &[u8], max_body: usize) -> Result<Option<FrameHeader>, FrameError> {
    let Some(header) = input.get(..HEADER_LEN) else {
        return Ok(None);
    };
    let word = |at: usize| {
        u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    let magic = word(0);
    if magic != MAGIC {
        return Err(FrameError::BadMagic { found: magic });
    }
    let version = u16::from_be_bytes([header[4], header[5]]);
    let kind =
        FrameKind::from_code(header[6]).ok_or(FrameError::UnknownKind { code: header[6] })?;
    let newest = kind.newest_version();
    if version == 0 || version > newest {
        return Err(FrameError::UnsupportedVersion {
            kind,
            version,
            newest,
        });
    }
    let flags = header[7];
    if flags != 0 {
        return Err(FrameError::UnknownFlags { flags });
    }
    let body_len = word(8);
    if body_len as usize > max_body {
        return Err(FrameError::TooLarge {
            len: u64::from(body_len),
            max: max_body as u64,
        });
    }
    Ok(Some(FrameHeader {
        kind,
        version,
        flags,
        body_len,
        crc32: word(CRC_OFFSET),
    }))
}

/// Decodes one complete frame that occupies all of `input`, verifying the
/// header and the checksum, and returns the header and the body bytes.
///
/// # Errors
/// Any [`FrameError`]; the body itself is not interpreted here.
pub fn decode(input: &[u8], max_body: usize) -> Result<(FrameHeader, &[u8]), FrameError> {
    let header = peek_header(input, max_body)?.ok_or(FrameError::Truncated {
        needed: HEADER_LEN,
        available: input.len(),
    })?;
    let frame_len = header.frame_len();
    if input.len() < frame_len {
        return Err(FrameError::Truncated {
            needed: frame_len,
            available: input.len(),
        });
    }
    if input.len() > frame_len {
        return Err(FrameError::TrailingBytes {
            extra: input.len() - frame_len,
        });
    }
    let computed = checksum(input);
    if computed != header.crc32 {
        return Err(FrameError::ChecksumMismatch {
            stored: header.crc32,
            computed,
        });
    }
    Ok((header, &input[HEADER_LEN..]))
}

/// Decodes a postcard body that must use every byte.
///
/// # Errors
/// [`FrameError::MalformedBody`] for an undecodable body or trailing bytes.
pub fn decode_body<T: DeserializeOwned>(kind: FrameKind, body: &[u8]) -> Result<T, FrameError> {
    let malformed = |reason: String| FrameError::MalformedBody { kind, reason };
    let (value, rest) = postcard::take_from_bytes(body).map_err(|e| malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(malformed(format!(
            "{} trailing bytes after the body",
            rest.len()
        )));
    }
    Ok(value)
}

/// CRC-32 of a whole frame with the checksum field taken as zero.
fn checksum(frame: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&frame[..CRC_OFFSET]);
    hasher.update(&[0; 4]);
    hasher.update(&frame[HEADER_LEN..]);
    hasher.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Bytes {
        encode(FrameKind::WriteSet, &(7u32, "hello".to_string()), 1024).unwrap()
    }

    #[test]
    fn round_trip_preserves_header_and_body() {
        let frame = sample();
        let (header, body) = decode(&frame, 1024).unwrap();
        assert_eq!(header.kind, FrameKind::WriteSet);
        assert_eq!(header.version, 1);
        assert_eq!(header.body_len as usize, body.len());
        let value: (u32, String) = decode_body(FrameKind::WriteSet, body).unwrap();
        assert_eq!(value, (7, "hello".to_string()));
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let frame = sample();
        for byte in 0..frame.len() {
            for bit in 0..8 {
                let mut corrupt = frame.to_vec();
                corrupt[byte] ^= 1 << bit;
                assert!(
                    decode(&corrupt, 1024).is_err(),
                    "flip of bit {bit} in byte {byte} accepted"
                );
            }
        }
    }

    #[test]
    fn header_errors_are_typed() {
        let frame = sample();
        let mut bad = frame.to_vec();
        bad[0] = b'X';
        assert!(matches!(
            decode(&bad, 1024),
            Err(FrameError::BadMagic { .. })
        ));
        let mut bad = frame.to_vec();
        bad[5] = 9;
        assert!(matches!(
            decode(&bad, 1024),
            Err(FrameError::UnsupportedVersion { version: 9, .. })
        ));
        let mut bad = frame.to_vec();
        bad[6] = 200;
        assert!(matches!(
            decode(&bad, 1024),
            Err(FrameError::UnknownKind { code: 200 })
        ));
        let mut bad = frame.to_vec();
        bad[7] = 1;
        assert!(matches!(
            decode(&bad, 1024),
            Err(FrameError::UnknownFlags { flags: 1 })
        ));
        assert!(matches!(
            decode(&frame[..10], 1024),
            Err(FrameError::Truncated { .. })
        ));
        assert!(matches!(
            decode(&frame[..20], 1024),
            Err(FrameError::Truncated { .. })
        ));
        let mut long = frame.to_vec();
        long.push(0);
        assert!(matches!(
            decode(&long, 1024),
            Err(FrameError::TrailingBytes { extra: 1 })
        ));
    }

    #[test]
    fn oversized_length_is_rejected_before_reading_the_body() {
        let mut huge = sample().to_vec();
        huge[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
        // Only the header is present: the length check must fire without the body.
        let err = peek_header(&huge[..HEADER_LEN], 1 << 20).unwrap_err();
        assert_eq!(
            err,
            FrameError::TooLarge {
                len: u64::from(u32::MAX),
                max: 1 << 20
            }
        );
        assert!(matches!(
            encode(FrameKind::WriteSet, &vec![0u8; 100], 10),
            Err(FrameError::TooLarge { .. })
        ));
    }
}
