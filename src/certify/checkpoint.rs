//! A serialized certifier, stored by the engine with its data so a restarted
//! or newly transferred node resumes certification exactly where the data is.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::certifier::{CertConfig, Certifier};
use super::dedup::{DedupRecord, DedupTable};
use super::index::{KeyIndex, KindSeqnos};
use crate::frame::{self, FrameError, FrameKind};
use crate::ids::Seqno;

/// The largest checkpoint body accepted: the frame's 32-bit length field.
const MAX_CHECKPOINT_BYTES: usize = u32::MAX as usize;

/// The certifier's state after a given seqno, as an opaque checksummed frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertCheckpoint {
    seqno: Seqno,
    frame: Bytes,
}

/// Version 1 body. Released layout: change it only with a new version.
#[derive(Serialize, Deserialize)]
struct CheckpointV1 {
    window: u64,
    last_seqno: Seqno,
    purge_floor: Seqno,
    index: Vec<(Bytes, KindSeqnos)>,
    dedup: Vec<DedupRecord>,
}

impl CertCheckpoint {
    /// The seqno the certifier had reached.
    #[must_use]
    pub fn seqno(&self) -> Seqno {
        self.seqno
    }

    /// The encoded frame, to store.
    #[must_use]
    pub fn as_bytes(&self) -> &Bytes {
        &self.frame
    }

    /// Parses a stored checkpoint, verifying frame and checksum.
    ///
    /// # Errors
    /// Any [`FrameError`] for bytes that are not an intact checkpoint.
    pub fn from_bytes(frame: Bytes) -> Result<Self, FrameError> {
        let body = Self::decode_body(&frame)?;
        Ok(CertCheckpoint {
            seqno: body.last_seqno,
            frame,
        })
    }

    fn decode_body(frame: &[u8]) -> Result<CheckpointV1, FrameError> {
        let (header, body) = frame::decode(frame, MAX_CHECKPOINT_BYTES)?;
        if header.kind != FrameKind::CertCheckpoint {
            return Err(invalid(format!(
                "frame holds {:?}, not a checkpoint",
                header.kind
            )));
        }
        frame::decode_body(FrameKind::CertCheckpoint, body)
    }
}

fn invalid(reason: String) -> FrameError {
    FrameError::Invalid {
        kind: FrameKind::CertCheckpoint,
        reason,
    }
}

impl Certifier {
    /// Captures the state after [`Certifier::last_seqno`].
    ///
    /// # Errors
    /// [`FrameError::TooLarge`] if the index no longer fits in one frame.
    pub fn checkpoint(&self) -> Result<CertCheckpoint, FrameError> {
        let body = CheckpointV1 {
            window: self.config.window,
            last_seqno: self.last_seqno,
            purge_floor: self.purge_floor,
            index: self.index.sorted_entries(),
            dedup: self.dedup.records().cloned().collect(),
        };
        let frame = frame::encode(FrameKind::CertCheckpoint, &body, MAX_CHECKPOINT_BYTES)?;
        Ok(CertCheckpoint {
            seqno: self.last_seqno,
            frame,
        })
    }

    /// Rebuilds a certifier from a checkpoint, validating it against `config`.
    ///
    /// # Errors
    /// [`FrameError::Invalid`] when the checkpoint was taken with another
    /// window or is internally inconsistent; any other [`FrameError`] for
    /// damaged bytes.
    pub fn restore(config: CertConfig, checkpoint: &CertCheckpoint) -> Result<Self, FrameError> {
        let body = CertCheckpoint::decode_body(&checkpoint.frame)?;
        if body.window != config.window {
            return Err(invalid(format!(
                "checkpoint window {} differs from the configured window {}",
                body.window, config.window
            )));
        }
        if body.purge_floor > body.last_seqno {
            return Err(invalid("purge floor is beyond the last seqno".into()));
        }
        if !body.index.windows(2).all(|w| w[0].0 < w[1].0) {
            return Err(invalid("index keys are not sorted and unique".into()));
        }
        if body
            .index
            .iter()
            .any(|(_, s)| s.newest() > body.last_seqno || s.newest() == Seqno::ZERO)
        {
            return Err(invalid("index entry outside the certified range".into()));
        }
        let oldest = body.last_seqno.saturating_sub(config.window);
        if !body.dedup.windows(2).all(|w| w[0].seqno < w[1].seqno)
            || body
                .dedup
                .iter()
                .any(|r| r.seqno <= oldest || r.seqno > body.last_seqno)
        {
            return Err(invalid(
                "duplicate table is out of order or outside the window".into(),
            ));
        }
        let mut dedup = DedupTable::default();
        for record in body.dedup {
            if dedup.lookup(record.origin, record.txn_id).is_some() {
                return Err(invalid(format!(
                    "transaction {} listed twice",
                    record.txn_id
                )));
            }
            dedup.record(record);
        }
        let index = KeyIndex::from_entries(body.index);
        Ok(Certifier::from_parts(
            config,
            body.last_seqno,
            body.purge_floor,
            index,
            dedup,
        ))
    }
}
