//! A serialized certifier, stored by the engine with its data so a restarted
//! or newly transferred node resumes certification exactly where the data is.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::certifier::{CertConfig, Certifier};
use super::dedup::{DedupRecord, DedupTable};
use super::digest::CertDigest;
use super::index::{KeyHash, KeyIndex, KindSeqnos};
use crate::frame::{self, FrameError, FrameKind};
use crate::ids::{ClusterTime, Seqno};

/// The largest checkpoint body accepted: the frame's 32-bit length field.
const MAX_CHECKPOINT_BYTES: usize = u32::MAX as usize;

/// The certifier's state after a given seqno, as an opaque checksummed frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertCheckpoint {
    seqno: Seqno,
    frame: Bytes,
}

/// Version 1 body, still read. Released layout: never change it.
#[derive(Serialize, Deserialize)]
struct CheckpointV1 {
    window: u64,
    last_seqno: Seqno,
    purge_floor: Seqno,
    index: Vec<(Bytes, KindSeqnos)>,
    dedup: Vec<DedupRecord>,
}

/// Version 2 body, still read: version 1 and the certification digest.
/// Released layout: never change it.
#[derive(Serialize, Deserialize)]
struct CheckpointV2 {
    window: u64,
    last_seqno: Seqno,
    purge_floor: Seqno,
    index: Vec<(Bytes, KindSeqnos)>,
    dedup: Vec<DedupRecord>,
    digest: Option<CertDigest>,
}

/// Version 3 body, still read: version 2, the cluster time and the last
/// operation that wrote every key. Released layout: never change it.
#[derive(Serialize, Deserialize)]
struct CheckpointV3 {
    window: u64,
    last_seqno: Seqno,
    purge_floor: Seqno,
    index: Vec<(Bytes, KindSeqnos)>,
    dedup: Vec<DedupRecord>,
    digest: Option<CertDigest>,
    time: ClusterTime,
    write_all: Seqno,
}

/// Version 4 body, still read: version 3 and the byte bound of the
/// history ([`CertConfig::index_bytes`]), which takes part in every
/// verdict as the window does. Released layout: never change it.
#[derive(Serialize, Deserialize)]
struct CheckpointV4 {
    window: u64,
    /// `None` when read from a version that did not record it.
    index_bytes: Option<u64>,
    last_seqno: Seqno,
    purge_floor: Seqno,
    index: Vec<(Bytes, KindSeqnos)>,
    dedup: Vec<DedupRecord>,
    digest: Option<CertDigest>,
    time: ClusterTime,
    write_all: Seqno,
}

/// Version 5 body, written now: version 4 with the index's keys as the
/// index holds them, by hash ([`KeyHash`]), sorted. Released layout:
/// change it only with a new version.
#[derive(Serialize, Deserialize)]
struct CheckpointV5 {
    window: u64,
    /// `None` when read from a version that did not record it.
    index_bytes: Option<u64>,
    last_seqno: Seqno,
    purge_floor: Seqno,
    index: Vec<(KeyHash, KindSeqnos)>,
    dedup: Vec<DedupRecord>,
    digest: Option<CertDigest>,
    time: ClusterTime,
    write_all: Seqno,
}

impl From<CheckpointV1> for CheckpointV2 {
    fn from(v1: CheckpointV1) -> Self {
        CheckpointV2 {
            window: v1.window,
            last_seqno: v1.last_seqno,
            purge_floor: v1.purge_floor,
            index: v1.index,
            dedup: v1.dedup,
            // Not recorded then: unknown, never guessed.
            digest: None,
        }
    }
}

impl From<CheckpointV2> for CheckpointV3 {
    fn from(v2: CheckpointV2) -> Self {
        CheckpointV3 {
            window: v2.window,
            last_seqno: v2.last_seqno,
            purge_floor: v2.purge_floor,
            index: v2.index,
            dedup: v2.dedup,
            digest: v2.digest,
            // Nothing before version 3 stamped or flushed: no time has
            // passed and no operation wrote every key.
            time: ClusterTime::ZERO,
            write_all: Seqno::ZERO,
        }
    }
}

impl From<CheckpointV3> for CheckpointV4 {
    fn from(v3: CheckpointV3) -> Self {
        CheckpointV4 {
            window: v3.window,
            // Not recorded then: the history was bounded in seqnos only.
            index_bytes: None,
            last_seqno: v3.last_seqno,
            purge_floor: v3.purge_floor,
            index: v3.index,
            dedup: v3.dedup,
            digest: v3.digest,
            time: v3.time,
            write_all: v3.write_all,
        }
    }
}

impl From<CheckpointV4> for CheckpointV5 {
    fn from(v4: CheckpointV4) -> Self {
        // Keys that share a hash become one entry, as the index would
        // have recorded them.
        let index = KeyIndex::from_entries(
            v4.index
                .into_iter()
                .map(|(key, seqnos)| (KeyHash::of(&key), seqnos)),
        );
        CheckpointV5 {
            window: v4.window,
            index_bytes: v4.index_bytes,
            last_seqno: v4.last_seqno,
            purge_floor: v4.purge_floor,
            index: index.sorted_entries(),
            dedup: v4.dedup,
            digest: v4.digest,
            time: v4.time,
            write_all: v4.write_all,
        }
    }
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

    fn decode_body(frame: &[u8]) -> Result<CheckpointV5, FrameError> {
        let (header, body) = frame::decode(frame, MAX_CHECKPOINT_BYTES)?;
        if header.kind != FrameKind::CertCheckpoint {
            return Err(invalid(format!(
                "frame holds {:?}, not a checkpoint",
                header.kind
            )));
        }
        let kind = FrameKind::CertCheckpoint;
        let v4 = |v3: CheckpointV3| CheckpointV4::from(v3).into();
        Ok(match header.version {
            1 => {
                let v1: CheckpointV1 = frame::decode_body(kind, body)?;
                v4(CheckpointV3::from(CheckpointV2::from(v1)))
            }
            2 => v4(CheckpointV3::from(frame::decode_body::<CheckpointV2>(
                kind, body,
            )?)),
            3 => v4(frame::decode_body::<CheckpointV3>(kind, body)?),
            4 => frame::decode_body::<CheckpointV4>(kind, body)?.into(),
            _ => frame::decode_body(kind, body)?,
        })
    }

    /// The certification digest at [`CertCheckpoint::seqno`], when recorded.
    ///
    /// # Errors
    /// Any [`FrameError`] for bytes that are not an intact checkpoint.
    pub fn digest(&self) -> Result<Option<CertDigest>, FrameError> {
        Ok(Self::decode_body(&self.frame)?.digest)
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
        let body = CheckpointV5 {
            window: self.config.window,
            index_bytes: Some(self.config.index_bytes),
            last_seqno: self.last_seqno,
            purge_floor: self.purge_floor,
            index: self.index.sorted_entries(),
            dedup: self.dedup.records().cloned().collect(),
            digest: self.digest,
            time: self.time,
            write_all: self.write_all,
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
    /// window or byte bound, or is internally inconsistent; any other
    /// [`FrameError`] for damaged bytes.
    pub fn restore(config: CertConfig, checkpoint: &CertCheckpoint) -> Result<Self, FrameError> {
        let body = CertCheckpoint::decode_body(&checkpoint.frame)?;
        if body.window != config.window {
            return Err(invalid(format!(
                "checkpoint window {} differs from the configured window {}",
                body.window, config.window
            )));
        }
        if let Some(bytes) = body.index_bytes
            && bytes != config.index_bytes
        {
            return Err(invalid(format!(
                "checkpoint taken with a certification history bound of {bytes} bytes, \
                 not the configured {}: the bound takes part in every verdict, so it is \
                 fixed for the life of the cluster",
                config.index_bytes
            )));
        }
        if body.purge_floor > body.last_seqno || body.write_all > body.last_seqno {
            return Err(invalid(
                "purge floor or last write to every key is beyond the last seqno".into(),
            ));
        }
        if !body.index.windows(2).all(|w| w[0].0 < w[1].0) {
            return Err(invalid("index keys are not sorted and unique".into()));
        }
        if body
            .index
            .iter()
            .any(|(_, s)| s.newest() > body.last_seqno || s.newest() <= body.purge_floor)
        {
            return Err(invalid("index entry outside the certified range".into()));
        }
        let oldest = body.last_seqno.saturating_sub(config.window);
        if !body.dedup.windows(2).all(|w| w[0].seqno < w[1].seqno)
            || body
                .dedup
                .iter()
                .any(|r| r.seqno <= oldest.max(body.purge_floor) || r.seqno > body.last_seqno)
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
            body.digest,
            (body.time, body.write_all),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{NodeId, TxnId};
    use crate::writeset::{Isolation, WriteSetBuilder};

    fn certified() -> Certifier {
        let mut certifier = Certifier::new(CertConfig::default());
        certifier.skip(Seqno::new(1));
        let mut builder = WriteSetBuilder::new(
            NodeId::new(1),
            TxnId::new(1, 1),
            Seqno::new(1),
            Isolation::Snapshot,
        );
        builder.put("k".into(), "v".into());
        certifier.certify(Seqno::new(2), &builder.build());
        certifier
    }

    #[test]
    fn the_certification_digest_survives_a_checkpoint() {
        let certifier = certified();
        let checkpoint = certifier.checkpoint().unwrap();
        assert_eq!(checkpoint.digest().unwrap(), certifier.digest());
        let restored = Certifier::restore(certifier.config(), &checkpoint).unwrap();
        assert_eq!(restored.digest(), certifier.digest());
        assert!(restored.digest().is_some());
    }

    /// The index of [`certified`] as checkpoints before version 5 held
    /// it: by key.
    fn index_by_key(certifier: &Certifier) -> Vec<(Bytes, KindSeqnos)> {
        let key = Bytes::from_static(b"k");
        let seqnos = *certifier.index.get(KeyHash::of(&key)).unwrap();
        assert_eq!(certifier.index.len(), 1);
        vec![(key, seqnos)]
    }

    #[test]
    fn a_version_1_checkpoint_is_read_with_an_unknown_digest() {
        let certifier = certified();
        let v1 = CheckpointV1 {
            window: certifier.config.window,
            last_seqno: certifier.last_seqno,
            purge_floor: certifier.purge_floor,
            index: index_by_key(&certifier),
            dedup: certifier.dedup.records().cloned().collect(),
        };
        let bytes =
            frame::encode_version(FrameKind::CertCheckpoint, 1, &v1, MAX_CHECKPOINT_BYTES).unwrap();
        let checkpoint = CertCheckpoint::from_bytes(bytes).unwrap();
        assert_eq!(checkpoint.seqno(), Seqno::new(2));
        let restored = Certifier::restore(certifier.config(), &checkpoint).unwrap();
        assert_eq!(restored.digest(), None);
        assert_eq!(restored.sizes(), certifier.sizes());
    }

    /// A version 4 checkpoint (keys by their bytes) restores to the same
    /// certifier: its keys hashed as the index now holds them, the same
    /// conflicts found.
    #[test]
    fn a_version_4_checkpoint_restores_with_its_keys_hashed() {
        let certifier = certified();
        let v4 = CheckpointV4 {
            window: certifier.config.window,
            index_bytes: Some(certifier.config.index_bytes),
            last_seqno: certifier.last_seqno,
            purge_floor: certifier.purge_floor,
            index: index_by_key(&certifier),
            dedup: certifier.dedup.records().cloned().collect(),
            digest: certifier.digest,
            time: certifier.time,
            write_all: certifier.write_all,
        };
        let bytes =
            frame::encode_version(FrameKind::CertCheckpoint, 4, &v4, MAX_CHECKPOINT_BYTES).unwrap();
        let checkpoint = CertCheckpoint::from_bytes(bytes).unwrap();
        let mut restored = Certifier::restore(certifier.config(), &checkpoint).unwrap();
        assert_eq!(restored.digest(), certifier.digest());
        assert_eq!(
            restored.index.sorted_entries(),
            certifier.index.sorted_entries()
        );
        // A write of "k" from a view before seqno 2 conflicts with it.
        let mut builder = WriteSetBuilder::new(
            NodeId::new(2),
            TxnId::new(1, 1),
            Seqno::new(1),
            Isolation::Snapshot,
        );
        builder.put("k".into(), "w".into());
        assert!(matches!(
            restored.certify(Seqno::new(3), &builder.build()),
            crate::certify::Verdict::Abort { .. }
        ));
    }
}
