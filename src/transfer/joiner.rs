//! The joiner's side of a full state transfer: [`fetch`].

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use thiserror::Error;

use super::messages::{self, Digest, TransferRequest, TransferResponse};
use crate::certify::CertCheckpoint;
use crate::ids::{NodeId, Seqno};
use crate::kv::{Engine, EngineError, MvccStore};
use crate::order::{OrderError, RaftOrder};

/// How long one request of a transfer may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a state transfer failed. The store is then marked incomplete and
/// is wiped when it is next opened; nothing half-copied is ever served.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TransferError {
    /// No donor could provide a transfer; the last reason is given.
    #[error("no donor could provide a state transfer: {0}")]
    NoDonor(String),
    /// What arrived does not add up (a digest or checkpoint mismatch).
    #[error("state transfer from {donor} is corrupt: {reason}")]
    Corrupt {
        /// The donor.
        donor: NodeId,
        /// What did not match.
        reason: String,
    },
    /// The local engine failed.
    #[error("storing the state transfer failed: {0}")]
    Storage(#[from] EngineError),
}

/// Copies the whole state from a donor into `engine`, replacing what it
/// held, and returns the position the copy is at. Voters are tried in
/// turn, followers before the leader.
///
/// # Errors
/// [`TransferError`].
pub async fn fetch(order: &RaftOrder, engine: Arc<dyn Engine>) -> Result<Seqno, TransferError> {
    let me = order.config().node_id;
    let leader = order.leader();
    let mut donors: Vec<NodeId> = order
        .members()
        .into_iter()
        .filter(|m| m.voter && m.id != me)
        .map(|m| m.id)
        .collect();
    donors.sort_by_key(|id| Some(*id) == leader);
    let mut last = "the cluster has no other voter".to_string();
    for donor in donors {
        match fetch_from(order, donor, engine.clone()).await {
            Ok(seqno) => return Ok(seqno),
            Err(err @ TransferError::Storage(_)) => return Err(err),
            Err(err) => {
                tracing::warn!(%donor, error = %err, "state transfer failed; trying another donor");
                last = match err {
                    TransferError::NoDonor(reason) => reason,
                    other => other.to_string(),
                };
            }
        }
    }
    Err(TransferError::NoDonor(last))
}

async fn call(
    order: &RaftOrder,
    donor: NodeId,
    request: &TransferRequest,
) -> Result<TransferResponse, TransferError> {
    let corrupt = |reason: String| TransferError::Corrupt { donor, reason };
    let body = messages::encode(request).map_err(|e| corrupt(e.to_string()))?;
    let answer = order
        .call_peer(donor, body, REQUEST_TIMEOUT)
        .await
        .map_err(|e: OrderError| TransferError::NoDonor(format!("{donor}: {e}")))?;
    messages::decode(&answer).map_err(|e| corrupt(e.to_string()))
}

async fn fetch_from(
    order: &RaftOrder,
    donor: NodeId,
    engine: Arc<dyn Engine>,
) -> Result<Seqno, TransferError> {
    let corrupt = |reason: String| TransferError::Corrupt { donor, reason };
    let TransferResponse::Begun {
        id,
        seqno,
        checkpoint,
    } = call(order, donor, &TransferRequest::Begin).await?
    else {
        return Err(corrupt("unexpected answer to Begin".into()));
    };
    let seqno = Seqno::new(seqno);
    let checkpoint = CertCheckpoint::from_bytes(checkpoint).map_err(|e| corrupt(e.to_string()))?;
    if checkpoint.seqno() != seqno {
        return Err(corrupt(format!(
            "checkpoint at {} for data at {seqno}",
            checkpoint.seqno()
        )));
    }
    tracing::info!(%donor, %seqno, "receiving a state transfer");
    let mvcc = Arc::new(MvccStore::new(engine, 1));
    blocking(&mvcc, |m| m.begin_import()).await?;
    let mut digest = Digest::default();
    let mut after: Option<Bytes> = None;
    loop {
        let request = TransferRequest::Chunk { id, after };
        let TransferResponse::Chunk { entries, next } = call(order, donor, &request).await? else {
            return Err(corrupt("unexpected answer to Chunk".into()));
        };
        digest.add(&entries);
        blocking(&mvcc, move |m| m.import(seqno, &entries)).await?;
        match next {
            Some(key) => after = Some(key),
            None => break,
        }
    }
    let TransferResponse::Ended { keys, crc32 } =
        call(order, donor, &TransferRequest::End { id }).await?
    else {
        return Err(corrupt("unexpected answer to End".into()));
    };
    if digest.finish() != (keys, crc32) {
        return Err(corrupt(format!(
            "received {:?} (rows, crc32), the donor sent {:?}",
            digest.finish(),
            (keys, crc32)
        )));
    }
    blocking(&mvcc, move |m| m.finish_import(&checkpoint)).await?;
    tracing::info!(%donor, %seqno, keys, "state transfer complete");
    Ok(seqno)
}

/// Runs an engine operation on a blocking thread.
async fn blocking(
    mvcc: &Arc<MvccStore>,
    work: impl FnOnce(&MvccStore) -> Result<(), EngineError> + Send + 'static,
) -> Result<(), TransferError> {
    let mvcc = mvcc.clone();
    crate::task::blocking(move || work(&mvcc))
        .await
        .unwrap_or_else(|| Err(EngineError::Io("shutting down".into())))
        .map_err(TransferError::Storage)
}
