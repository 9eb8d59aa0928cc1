//! [`Donor`]: serves full state transfers to joining nodes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use tokio::time::Instant;

use bytes::Bytes;
use tokio::sync::watch;

use super::messages::{self, CHECKPOINT_PIECE, Digest, TransferRequest, TransferResponse};
use crate::frame::FrameError;
use crate::ids::{NodeId, Seqno};
use crate::kv::{KvError, KvStore, KvTransaction};
use crate::node::{self, DonorGuard, TxnOptions};
use crate::order::{PeerFuture, PeerService, RemoteError};

/// Transfers one donor serves at once; a joiner beyond that tries another.
const MAX_ACTIVE: usize = 2;
/// A transfer whose joiner asked nothing for this long is abandoned.
const IDLE: Duration = Duration::from_secs(60);
/// Rows and bytes per chunk, at most (a single larger row is sent alone).
const CHUNK_KEYS: usize = 10_000;
const CHUNK_BYTES: usize = 1 << 20;

/// Why a donor refused or failed a request; the joiner sees its text and
/// tries another donor.
#[derive(Debug, thiserror::Error)]
enum DonorError {
    #[error("this donor is busy with other transfers")]
    Busy,
    #[error("this node has no store right now")]
    NoStore,
    #[error("no such transfer (abandoned?)")]
    UnknownTransfer,
    #[error("the node is shutting down")]
    ShuttingDown,
    #[error(transparent)]
    Store(#[from] KvError),
    #[error(transparent)]
    Node(#[from] node::Error),
    #[error(transparent)]
    Frame(#[from] FrameError),
}

/// One transfer in progress.
struct Active {
    /// The node receiving it.
    joiner: NodeId,
    store: KvStore,
    seqno: Seqno,
    /// The certification checkpoint at `seqno`, served in pieces.
    checkpoint: Bytes,
    digest: Digest,
    last_used: Instant,
    /// Keeps garbage collection from removing versions visible at `seqno`.
    _view: KvTransaction,
    /// Keeps the node in the donor state.
    _guard: DonorGuard,
}

/// Answers state-transfer requests with the data of whatever store the
/// daemon currently serves. Register it as the ordering layer's
/// [`PeerService`].
pub struct Donor {
    store: watch::Receiver<Option<KvStore>>,
    active: Mutex<BTreeMap<u64, Active>>,
    next_id: AtomicU64,
}

impl std::fmt::Debug for Donor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Donor")
            .field("active", &self.active().len())
            .finish_non_exhaustive()
    }
}

impl Donor {
    /// A donor for the store `store` holds (none while it is replaced), with
    /// a task that abandons transfers whose joiner went silent.
    #[must_use]
    pub fn start(store: watch::Receiver<Option<KvStore>>) -> Arc<Donor> {
        let donor = Arc::new(Donor {
            store,
            active: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(1),
        });
        tokio::spawn(reap(Arc::downgrade(&donor)));
        donor
    }

    fn active(&self) -> MutexGuard<'_, BTreeMap<u64, Active>> {
        self.active.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn answer(
        &self,
        from: NodeId,
        request: TransferRequest,
    ) -> Result<TransferResponse, DonorError> {
        match request {
            TransferRequest::Begin => {
                let (id, seqno, checkpoint) = self.begin(from).await?;
                Ok(TransferResponse::Begun {
                    id,
                    seqno,
                    checkpoint,
                })
            }
            TransferRequest::BeginStreamed => {
                let (id, seqno, checkpoint) = self.begin(from).await?;
                Ok(TransferResponse::BegunStreamed {
                    id,
                    seqno,
                    checkpoint_len: checkpoint.len() as u64,
                    checkpoint_crc32: crc32fast::hash(&checkpoint),
                })
            }
            TransferRequest::CheckpointPiece { id, offset } => self.piece(id, offset),
            TransferRequest::Chunk { id, after } => self.chunk(id, after).await,
            TransferRequest::End { id } => {
                let active = self
                    .active()
                    .remove(&id)
                    .ok_or(DonorError::UnknownTransfer)?;
                let (keys, crc32) = active.digest.finish();
                tracing::info!(joiner = %from, keys, "state transfer served");
                Ok(TransferResponse::Ended { keys, crc32 })
            }
        }
    }

    /// Opens a transfer: its id, position and checkpoint. A joiner takes
    /// one transfer at a time, so its new one replaces any it left
    /// unfinished (it failed to store one, or restarted): those would hold
    /// this donor's places until [`IDLE`], and a joiner retrying after
    /// failures would lock itself, and every other joiner, out.
    async fn begin(&self, from: NodeId) -> Result<(u64, u64, Bytes), DonorError> {
        {
            let mut active = self.active();
            active.retain(|id, transfer| {
                let abandoned = transfer.joiner == from;
                if abandoned {
                    tracing::info!(transfer = id, joiner = %from, "the joiner began anew: dropping its unfinished transfer");
                }
                !abandoned
            });
            if active.len() >= MAX_ACTIVE {
                return Err(DonorError::Busy);
            }
        }
        let store = self.store.borrow().clone().ok_or(DonorError::NoStore)?;
        let options = TxnOptions::default().causal(false);
        let view = store.begin_with(options).await?;
        let (checkpoint, guard) = store.node().begin_donation().await?;
        let seqno = checkpoint.seqno();
        store.node().wait_visible(seqno).await?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        tracing::info!(joiner = %from, %seqno, "providing a state transfer");
        let bytes = checkpoint.as_bytes().clone();
        let active = Active {
            joiner: from,
            store,
            seqno,
            checkpoint: bytes.clone(),
            digest: Digest::default(),
            last_used: Instant::now(),
            _view: view,
            _guard: guard,
        };
        self.active().insert(id, active);
        Ok((id, seqno.get(), bytes))
    }

    /// Up to [`CHECKPOINT_PIECE`] bytes of transfer `id`'s checkpoint from
    /// `offset` (none past its end).
    fn piece(&self, id: u64, offset: u64) -> Result<TransferResponse, DonorError> {
        let mut active = self.active();
        let active = active.get_mut(&id).ok_or(DonorError::UnknownTransfer)?;
        active.last_used = Instant::now();
        let len = active.checkpoint.len();
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(len);
        let end = start.saturating_add(CHECKPOINT_PIECE).min(len);
        Ok(TransferResponse::CheckpointPiece {
            bytes: active.checkpoint.slice(start..end),
        })
    }

    async fn chunk(&self, id: u64, after: Option<Bytes>) -> Result<TransferResponse, DonorError> {
        let (store, seqno) = {
            let active = self.active();
            let active = active.get(&id).ok_or(DonorError::UnknownTransfer)?;
            (active.store.clone(), active.seqno)
        };
        let read = move || store.export_chunk(seqno, after.as_deref(), CHUNK_KEYS, CHUNK_BYTES);
        let chunk = crate::task::blocking(read)
            .await
            .ok_or(DonorError::ShuttingDown)??;
        let mut active = self.active();
        let active = active.get_mut(&id).ok_or(DonorError::UnknownTransfer)?;
        active.digest.add(&chunk.entries);
        active.last_used = Instant::now();
        Ok(TransferResponse::Chunk {
            entries: chunk.entries,
            next: chunk.next,
        })
    }
}

impl PeerService for Donor {
    fn handle(&self, from: NodeId, request: Bytes) -> PeerFuture<'_> {
        Box::pin(async move {
            let answer = async {
                let request = messages::decode(&request)?;
                let response = self.answer(from, request).await?;
                Ok(messages::encode(&response)?)
            };
            answer.await.map_err(|e: DonorError| RemoteError::new(&e))
        })
    }
}

/// Drops transfers idle for longer than [`IDLE`], until the donor is gone.
async fn reap(donor: Weak<Donor>) {
    let mut tick = tokio::time::interval(IDLE / 4);
    loop {
        tick.tick().await;
        let Some(donor) = donor.upgrade() else { return };
        donor.active().retain(|id, active| {
            let keep = active.last_used.elapsed() < IDLE;
            if !keep {
                tracing::warn!(transfer = id, "abandoning an idle state transfer");
            }
            keep
        });
    }
}
