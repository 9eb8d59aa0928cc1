//! The state-transfer protocol's messages, each one a checksummed,
//! versioned frame (`FrameKind::Transfer`).

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::frame::{self, FrameError, FrameKind};

/// Largest message body: a chunk is cut at about 1 MiB of rows, but one row
/// may be as large as a write-set allows.
pub(crate) const MAX_MESSAGE: usize = 96 << 20;

/// Bytes of the certification checkpoint per message: it streams in pieces
/// like the rows, so a checkpoint of any size (a wide certification index)
/// fits the message limit.
pub(crate) const CHECKPOINT_PIECE: usize = 4 << 20;

/// From the joiner. New variants go at the end: the position is the wire
/// tag.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum TransferRequest {
    /// Begin, with the checkpoint in the answer (protocol 1, kept for
    /// joiners that still send it; fails over [`MAX_MESSAGE`]).
    Begin,
    Chunk {
        id: u64,
        after: Option<Bytes>,
    },
    End {
        id: u64,
    },
    /// Begin, with the checkpoint fetched in pieces.
    BeginStreamed,
    /// The checkpoint's bytes from `offset`, up to [`CHECKPOINT_PIECE`].
    CheckpointPiece {
        id: u64,
        offset: u64,
    },
}

/// From the donor, answering the request of the same name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum TransferResponse {
    Begun {
        id: u64,
        seqno: u64,
        checkpoint: Bytes,
    },
    Chunk {
        entries: Vec<(Bytes, Bytes)>,
        next: Option<Bytes>,
    },
    /// How many rows were sent and the crc32 over all of them.
    Ended {
        keys: u64,
        crc32: u32,
    },
    /// The checkpoint's length and crc32; its bytes come piece by piece.
    BegunStreamed {
        id: u64,
        seqno: u64,
        checkpoint_len: u64,
        checkpoint_crc32: u32,
    },
    CheckpointPiece {
        bytes: Bytes,
    },
}

pub(crate) fn encode<T: Serialize>(message: &T) -> Result<Bytes, FrameError> {
    frame::encode(FrameKind::Transfer, message, MAX_MESSAGE)
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, FrameError> {
    let (header, body) = frame::decode(bytes, MAX_MESSAGE)?;
    if header.kind != FrameKind::Transfer {
        return Err(FrameError::MalformedBody {
            kind: FrameKind::Transfer,
            reason: format!("a {:?} frame where a transfer message belongs", header.kind),
        });
    }
    frame::decode_body(FrameKind::Transfer, body)
}

/// The running digest of the rows of one transfer, kept by both sides.
#[derive(Debug, Default)]
pub(crate) struct Digest {
    hasher: crc32fast::Hasher,
    keys: u64,
}

impl Digest {
    pub(crate) fn add(&mut self, entries: &[(Bytes, Bytes)]) {
        for (key, value) in entries {
            for part in [key, value] {
                self.hasher.update(&(part.len() as u64).to_le_bytes());
                self.hasher.update(part);
            }
            self.keys += 1;
        }
    }

    pub(crate) fn finish(&self) -> (u64, u32) {
        (self.keys, self.hasher.clone().finalize())
    }
}
