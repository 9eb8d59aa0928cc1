//! The joiner's side of a full state transfer: [`fetch`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use thiserror::Error;

use super::messages::{self, Digest, TransferRequest, TransferResponse};
use crate::certify::CertCheckpoint;
use crate::frame::FrameError;
use crate::ids::{NodeId, Seqno};
use crate::kv::{Engine, EngineError, MvccStore};
use crate::order::{Cluster, OrderError};

/// How long one request of a transfer may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// The largest checkpoint a joiner accepts (a checkpoint frame's limit).
const MAX_CHECKPOINT: usize = u32::MAX as usize;

/// Why a state transfer failed. The store is then marked incomplete and
/// is wiped when it is next opened; nothing half-copied is ever served.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TransferError {
    /// No donor could provide a transfer: the cluster has no other voter,
    /// or every one failed; the last failure is the source.
    #[error("no donor could provide a state transfer: {}", last_failure(last.as_deref()))]
    NoDonor {
        /// Why the last donor tried failed.
        #[source]
        last: Option<Box<TransferError>>,
    },
    /// A donor could not be asked, or refused.
    #[error("donor {donor}: {source}")]
    Donor {
        /// The donor.
        donor: NodeId,
        /// Why the request failed.
        #[source]
        source: OrderError,
    },
    /// What arrived does not add up (a digest or checkpoint mismatch).
    #[error("state transfer from {donor} is corrupt: {reason}")]
    Corrupt {
        /// The donor.
        donor: NodeId,
        /// What did not match.
        #[source]
        reason: Corruption,
    },
    /// The local engine failed.
    #[error("storing the state transfer failed: {0}")]
    Storage(#[from] EngineError),
}

fn last_failure(last: Option<&TransferError>) -> String {
    last.map_or_else(
        || "the cluster has no other voter".into(),
        ToString::to_string,
    )
}

/// What made a donor's answer unusable.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Corruption {
    /// A message did not decode.
    #[error("a message does not decode: {0}")]
    Decode(#[from] FrameError),
    /// The donor answered a request with the wrong kind of message.
    #[error("unexpected answer to {request}")]
    UnexpectedAnswer {
        /// The request.
        request: &'static str,
    },
    /// The certification checkpoint is not at the data's position.
    #[error("checkpoint at {checkpoint} for data at {data}")]
    CheckpointMismatch {
        /// The checkpoint's seqno.
        checkpoint: Seqno,
        /// The data's seqno.
        data: Seqno,
    },
    /// The donor announced a checkpoint larger than any node keeps.
    #[error("a checkpoint of {len} bytes announced")]
    CheckpointTooLarge {
        /// The length announced.
        len: u64,
    },
    /// The checkpoint's pieces do not add up to its announced length.
    #[error("checkpoint of {len} bytes announced, pieces of {received} received")]
    CheckpointLength {
        /// The length announced.
        len: u64,
        /// What the pieces added up to.
        received: u64,
    },
    /// The rows received do not match the donor's count and checksum.
    #[error("received {received:?} (rows, crc32), the donor sent {sent:?}")]
    DigestMismatch {
        /// What arrived.
        received: (u64, u32),
        /// What the donor counted.
        sent: (u64, u32),
    },
}

/// Copies the whole state from a donor into `engine`, replacing what it
/// held, and returns the position the copy is at. Voters are tried in
/// turn, followers before the leader.
///
/// # Errors
/// [`TransferError`].
pub async fn fetch(order: &dyn Cluster, engine: Arc<dyn Engine>) -> Result<Seqno, TransferError> {
    let me = order.node_id();
    let leader = order.leader();
    let mut donors: Vec<NodeId> = order
        .members()
        .into_iter()
        .filter(|m| m.voter && m.id != me)
        .map(|m| m.id)
        .collect();
    donors.sort_by_key(|id| Some(*id) == leader);
    let mut last = None;
    for donor in donors {
        match fetch_from(order, donor, engine.clone()).await {
            Ok(seqno) => return Ok(seqno),
            Err(err @ TransferError::Storage(_)) => return Err(err),
            Err(err) => {
                tracing::warn!(%donor, error = %err, "state transfer failed; trying another donor");
                last = Some(Box::new(err));
            }
        }
    }
    Err(TransferError::NoDonor { last })
}

async fn call(
    order: &dyn Cluster,
    donor: NodeId,
    request: &TransferRequest,
) -> Result<TransferResponse, TransferError> {
    let corrupt = |e: FrameError| TransferError::Corrupt {
        donor,
        reason: e.into(),
    };
    let body = messages::encode(request).map_err(corrupt)?;
    let answer = order
        .call_peer(donor, body, REQUEST_TIMEOUT)
        .await
        .map_err(|source| TransferError::Donor { donor, source })?;
    messages::decode(&answer).map_err(corrupt)
}

async fn fetch_from(
    order: &dyn Cluster,
    donor: NodeId,
    engine: Arc<dyn Engine>,
) -> Result<Seqno, TransferError> {
    let corrupt = |reason: Corruption| TransferError::Corrupt { donor, reason };
    let unexpected = |request| corrupt(Corruption::UnexpectedAnswer { request });
    let TransferResponse::BegunStreamed {
        id,
        seqno,
        checkpoint_len,
        checkpoint_crc32,
    } = call(order, donor, &TransferRequest::BeginStreamed).await?
    else {
        return Err(unexpected("BeginStreamed"));
    };
    let seqno = Seqno::new(seqno);
    let checkpoint = fetch_checkpoint(order, donor, id, checkpoint_len, checkpoint_crc32).await?;
    let checkpoint = CertCheckpoint::from_bytes(checkpoint).map_err(|e| corrupt(e.into()))?;
    if checkpoint.seqno() != seqno {
        return Err(corrupt(Corruption::CheckpointMismatch {
            checkpoint: checkpoint.seqno(),
            data: seqno,
        }));
    }
    tracing::info!(%donor, %seqno, "receiving a state transfer");
    let mvcc = Arc::new(MvccStore::new(engine, 1));
    blocking(&mvcc, |m| m.begin_import()).await?;
    let digest = fetch_rows(order, donor, id, seqno, &mvcc).await?;
    let TransferResponse::Ended { keys, crc32 } =
        call(order, donor, &TransferRequest::End { id }).await?
    else {
        return Err(unexpected("End"));
    };
    if digest.finish() != (keys, crc32) {
        return Err(corrupt(Corruption::DigestMismatch {
            received: digest.finish(),
            sent: (keys, crc32),
        }));
    }
    blocking(&mvcc, move |m| m.finish_import(&checkpoint)).await?;
    tracing::info!(%donor, %seqno, keys, "state transfer complete");
    Ok(seqno)
}

/// A chunk being stored.
type Storing<'a> = Pin<Box<dyn Future<Output = Result<(), TransferError>> + Send + 'a>>;

/// Stores the rows of transfer `id` (at `seqno`) from `donor`, chunk by
/// chunk, and returns their digest.
async fn fetch_rows(
    order: &dyn Cluster,
    donor: NodeId,
    id: u64,
    seqno: Seqno,
    mvcc: &Arc<MvccStore>,
) -> Result<Digest, TransferError> {
    let unexpected = |request| TransferError::Corrupt {
        donor,
        reason: Corruption::UnexpectedAnswer { request },
    };
    let mut digest = Digest::default();
    let mut after: Option<Bytes> = None;
    // The next chunk is asked for while the last one is stored: at most
    // two chunks in hand, and the donor's reads overlap the engine's writes.
    let mut storing: Option<Storing<'_>> = None;
    loop {
        let request = TransferRequest::Chunk { id, after };
        let fetched = call(order, donor, &request);
        let answer = match storing.take() {
            Some(store) => {
                let (answer, stored) = tokio::join!(fetched, store);
                stored?;
                answer?
            }
            None => fetched.await?,
        };
        let TransferResponse::Chunk { entries, next } = answer else {
            return Err(unexpected("Chunk"));
        };
        digest.add(&entries);
        storing = Some(Box::pin(blocking(mvcc, move |m| m.import(seqno, &entries))));
        match next {
            Some(key) => after = Some(key),
            None => break,
        }
    }
    if let Some(store) = storing {
        store.await?;
    }
    Ok(digest)
}

/// The checkpoint of transfer `id`, `len` bytes with crc32 `crc32`, piece
/// by piece.
async fn fetch_checkpoint(
    order: &dyn Cluster,
    donor: NodeId,
    id: u64,
    len: u64,
    crc32: u32,
) -> Result<Bytes, TransferError> {
    let corrupt = |reason: Corruption| TransferError::Corrupt { donor, reason };
    let len = usize::try_from(len)
        .ok()
        .filter(|&len| len <= MAX_CHECKPOINT)
        .ok_or(corrupt(Corruption::CheckpointTooLarge { len }))?;
    let mut bytes = BytesMut::with_capacity(len);
    while bytes.len() < len {
        let request = TransferRequest::CheckpointPiece {
            id,
            offset: bytes.len() as u64,
        };
        let TransferResponse::CheckpointPiece { bytes: piece } =
            call(order, donor, &request).await?
        else {
            return Err(corrupt(Corruption::UnexpectedAnswer {
                request: "CheckpointPiece",
            }));
        };
        if piece.is_empty() || bytes.len() + piece.len() > len {
            return Err(corrupt(Corruption::CheckpointLength {
                len: len as u64,
                received: (bytes.len() + piece.len()) as u64,
            }));
        }
        bytes.extend_from_slice(&piece);
    }
    let received = crc32fast::hash(&bytes);
    if received != crc32 {
        return Err(corrupt(Corruption::DigestMismatch {
            received: (len as u64, received),
            sent: (len as u64, crc32),
        }));
    }
    Ok(bytes.freeze())
}

/// Runs an engine operation on a blocking thread.
async fn blocking(
    mvcc: &Arc<MvccStore>,
    work: impl FnOnce(&MvccStore) -> Result<(), EngineError> + Send + 'static,
) -> Result<(), TransferError> {
    let mvcc = mvcc.clone();
    crate::task::blocking(move || work(&mvcc))
        .await
        .unwrap_or(Err(EngineError::ShutDown))
        .map_err(TransferError::Storage)
}
