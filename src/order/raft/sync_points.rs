//! [`SyncPoints`]: causal-read sync points as raft read indexes, batched so
//! one quorum round trip serves every transaction waiting for one.
//!
//! A read index is only good for callers that asked before the round
//! began. So one task runs the rounds one after another: a round answers
//! every caller queued when it started, and callers arriving meanwhile wait
//! for the next one. Under load that is two rounds of latency at most and
//! one round per batch instead of one per transaction.

use std::sync::Arc;
use std::time::Duration;

use openraft::ReadPolicy;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::config::RaftOrderConfig;
use super::delivery::Raft;
use super::messages::{PeerRequest, PeerResponse};
use super::network::Peers;
use super::stream::Standing;
use crate::ids::Seqno;
use crate::order::OrderError;

type Waiter = oneshot::Sender<Result<Seqno, OrderError>>;

/// Callers waiting for a sync point, at most this many queued.
const QUEUE: usize = 4096;

/// The handle callers ask for sync points through.
pub(crate) struct SyncPoints {
    tx: mpsc::Sender<Waiter>,
}

impl SyncPoints {
    /// Starts the task that runs the rounds; it ends at shutdown.
    pub(crate) fn start(reader: ReadIndex) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let shutdown = reader.shutdown.clone();
        let task = tokio::spawn(run(reader, rx, shutdown));
        (SyncPoints { tx }, task)
    }

    /// A position at or after every commit made in the primary component
    /// before this call.
    pub(crate) async fn sync_point(&self) -> Result<Seqno, OrderError> {
        let (waiter, answer) = oneshot::channel();
        self.tx.send(waiter).await.map_err(|_| OrderError::Closed)?;
        answer.await.map_err(|_| OrderError::Closed)?
    }
}

async fn run<R: Round>(
    reader: R,
    mut rx: mpsc::Receiver<Waiter>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut batch = Vec::new();
    // `wait_for`, not `changed`: a round that ended at shutdown has seen
    // the change, and `changed` would then wait for another forever.
    loop {
        tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => return,
            first = rx.recv() => match first {
                Some(first) => batch.push(first),
                None => return,
            },
        }
        while batch.len() < QUEUE {
            match rx.try_recv() {
                Ok(waiter) => batch.push(waiter),
                Err(_) => break,
            }
        }
        let result = tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => Err(OrderError::Closed),
            result = reader.round() => result,
        };
        for waiter in batch.drain(..) {
            let _ = waiter.send(result.clone());
        }
    }
}

/// One sync-point round (a trait so the batching is tested without raft).
trait Round: Send + 'static {
    fn round(&self) -> impl Future<Output = Result<Seqno, OrderError>> + Send;
}

impl Round for ReadIndex {
    fn round(&self) -> impl Future<Output = Result<Seqno, OrderError>> + Send {
        self.round_trip()
    }
}

/// What a read-index round needs.
pub(crate) struct ReadIndex {
    raft: Raft,
    peers: Arc<Peers>,
    standing: watch::Receiver<Standing>,
    shutdown: watch::Receiver<bool>,
    primary_lease: Duration,
    heartbeat: Duration,
}

impl ReadIndex {
    pub(crate) fn new(
        config: &RaftOrderConfig,
        raft: &Raft,
        peers: &Arc<Peers>,
        standing: &watch::Receiver<Standing>,
        shutdown: &watch::Receiver<bool>,
    ) -> ReadIndex {
        ReadIndex {
            raft: raft.clone(),
            peers: peers.clone(),
            standing: standing.clone(),
            shutdown: shutdown.clone(),
            primary_lease: config.primary_lease,
            heartbeat: config.heartbeat,
        }
    }

    /// One attempt: `None` when the leader could not be reached or could
    /// not confirm its leadership.
    async fn once(&self) -> Option<Seqno> {
        let timeout = self.primary_lease;
        if self.raft.is_leader() {
            let read = self.raft.ensure_linearizable(ReadPolicy::ReadIndex);
            return match tokio::time::timeout(timeout, read).await {
                Ok(Ok(read)) => Some(Seqno::new(read.index())),
                _ => None,
            };
        }
        let client = self.peers.leader(&self.raft).ok()?;
        match client.call(&PeerRequest::ReadIndex, timeout).await {
            Ok(PeerResponse::ReadIndex(Ok(index))) => Some(Seqno::new(index)),
            _ => None,
        }
    }

    /// A round, retried through a leader change for as long as this node
    /// still counts itself in the primary component (at most twice the
    /// primary lease).
    async fn round_trip(&self) -> Result<Seqno, OrderError> {
        let deadline = Instant::now() + self.primary_lease * 2;
        let mut pause = Duration::from_millis(5);
        loop {
            if !self.standing.borrow().primary || *self.shutdown.borrow() {
                return Err(OrderError::NotPrimary);
            }
            if let Some(seqno) = self.once().await {
                return Ok(seqno);
            }
            if Instant::now() + pause >= deadline {
                return Err(OrderError::NotPrimary);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(self.heartbeat);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use tokio::sync::Semaphore;

    use super::*;

    /// Rounds that count themselves and wait for a permit to finish.
    struct Gated {
        rounds: Arc<AtomicU64>,
        gate: Arc<Semaphore>,
    }

    impl Round for Gated {
        async fn round(&self) -> Result<Seqno, OrderError> {
            let round = self.rounds.fetch_add(1, Ordering::SeqCst) + 1;
            let permit = self.gate.acquire().await;
            permit.map_err(|_| OrderError::Closed)?.forget();
            Ok(Seqno::new(round))
        }
    }

    async fn settle() {
        for _ in 0..16 {
            tokio::task::yield_now().await;
        }
    }

    /// A shutdown during a round that never ends answers its callers and
    /// ends the task (it used to wait for a second shutdown forever, and
    /// the failed daemon's exit with it).
    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_shutdown_during_a_round_ends_the_task() {
        let rounds = Arc::new(AtomicU64::new(0));
        let (tx, rx) = mpsc::channel(QUEUE);
        let (stop, shutdown) = watch::channel(false);
        let reader = Gated {
            rounds: rounds.clone(),
            gate: Arc::new(Semaphore::new(0)),
        };
        let task = tokio::spawn(run(reader, rx, shutdown));
        let points = Arc::new(SyncPoints { tx });
        let asking = points.clone();
        let caller = tokio::spawn(async move { asking.sync_point().await });
        settle().await;
        assert_eq!(rounds.load(Ordering::SeqCst), 1);
        stop.send(true).unwrap();
        assert_eq!(caller.await.unwrap(), Err(OrderError::Closed));
        let ended = tokio::time::timeout(Duration::from_secs(3600), task).await;
        assert!(ended.is_ok(), "the task outlived its shutdown");
        drop(points);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn callers_share_a_round_and_latecomers_wait_for_the_next() {
        let rounds = Arc::new(AtomicU64::new(0));
        let gate = Arc::new(Semaphore::new(0));
        let (tx, rx) = mpsc::channel(QUEUE);
        let (_stop, shutdown) = watch::channel(false);
        let reader = Gated {
            rounds: rounds.clone(),
            gate: gate.clone(),
        };
        tokio::spawn(run(reader, rx, shutdown));
        let points = Arc::new(SyncPoints { tx });
        let ask = |points: &Arc<SyncPoints>| {
            let points = points.clone();
            tokio::spawn(async move { points.sync_point().await })
        };
        let early: Vec<_> = (0..3).map(|_| ask(&points)).collect();
        settle().await;
        assert_eq!(
            rounds.load(Ordering::SeqCst),
            1,
            "one round for the first three"
        );
        let late: Vec<_> = (0..5).map(|_| ask(&points)).collect();
        settle().await;
        assert_eq!(
            rounds.load(Ordering::SeqCst),
            1,
            "latecomers wait, no round starts"
        );
        gate.add_permits(2);
        for caller in early {
            assert_eq!(caller.await.unwrap(), Ok(Seqno::new(1)));
        }
        for caller in late {
            assert_eq!(caller.await.unwrap(), Ok(Seqno::new(2)));
        }
        assert_eq!(rounds.load(Ordering::SeqCst), 2);
    }
}
