//! The connecting side: one persistent, pipelined connection per peer.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{ReadHalf, WriteHalf};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::error::NetError;
use super::identity::Identity;
use super::tls;
use super::transport::{BoxStream, Connector};
use super::wire::{self, FrameReader, Hello, HelloReply, Tagged, TermsReply};
use crate::ids::NodeId;
use rustls::pki_types::ServerName;

/// How a node connects to its peers.
#[derive(Clone, Debug)]
pub(crate) struct ClientConfig {
    /// Opens the connections.
    pub(crate) connector: Arc<dyn Connector>,
    /// This node, its cluster and its credentials.
    pub(crate) identity: Arc<Identity>,
    /// Largest frame body sent or accepted.
    pub(crate) max_frame: usize,
    /// Requests queued for writing per peer.
    pub(crate) queue: usize,
    /// Deadline for connecting and the handshake.
    pub(crate) connect_timeout: Duration,
    /// First and longest pause between connection attempts.
    pub(crate) backoff: (Duration, Duration),
    /// A connection on which a request has waited this long with nothing
    /// at all heard back since it was written is taken for dead (the peer
    /// or the path to it vanished without a reset, and TCP may retransmit
    /// into the void for many minutes) and replaced.
    pub(crate) dead_after: Duration,
}

type Reply<Resp> = oneshot::Sender<Result<Resp, NetError>>;

/// A request waiting for its response. `generation` is the connection it
/// was written on, `None` while it is still queued.
struct Pending<Resp> {
    generation: Option<u64>,
    reply: Reply<Resp>,
}

struct Shared<Resp> {
    addr: String,
    next_id: AtomicU64,
    /// The newest connection generation whose reader saw it close.
    closed: AtomicU64,
    pending: Mutex<BTreeMap<u64, Pending<Resp>>>,
    /// When the first request written since the peer was last heard from
    /// (a response, or the handshake) was written; `None` when nothing was
    /// written since.
    unanswered_since: Mutex<Option<Instant>>,
    /// Round trips and bytes, for operators.
    round_trip: crate::Histogram,
    sent: AtomicU64,
    received: AtomicU64,
}

/// The traffic of one peer link, as this node's side saw it.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct PeerTraffic {
    /// Request to response, for the requests that got one.
    pub round_trip: crate::HistogramSnapshot,
    /// Request bytes written.
    pub sent: u64,
    /// Response bytes read.
    pub received: u64,
}

impl<Resp> Shared<Resp> {
    fn pending(&self) -> MutexGuard<'_, BTreeMap<u64, Pending<Resp>>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn unanswered_since(&self) -> MutexGuard<'_, Option<Instant>> {
        self.unanswered_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The peer answered: the connection is alive.
    fn hear(&self) {
        *self.unanswered_since() = None;
    }

    /// A request was written.
    fn wrote(&self) {
        self.unanswered_since().get_or_insert_with(Instant::now);
    }

    /// Whether a request written `dead_after` ago still has nothing at all
    /// heard back since.
    fn silent(&self, dead_after: Duration) -> bool {
        self.unanswered_since()
            .is_some_and(|since| since.elapsed() >= dead_after)
    }

    fn resolve(&self, id: u64, result: Result<Resp, NetError>) {
        if let Some(p) = self.pending().remove(&id) {
            let _ = p.reply.send(result);
        }
    }

    /// Fails every request written on `generation`: the peer may have seen
    /// it. In id order, as every walk over pending requests is: the order
    /// tasks wake in must not depend on a hasher's random keys.
    fn fail_generation(&self, generation: u64) {
        let failed: Vec<Pending<Resp>> = {
            let mut pending = self.pending();
            let ids: Vec<u64> = pending
                .iter()
                .filter(|(_, p)| p.generation == Some(generation))
                .map(|(id, _)| *id)
                .collect();
            ids.iter().filter_map(|id| pending.remove(id)).collect()
        };
        for p in failed {
            let _ = p.reply.send(Err(NetError::Disconnected {
                addr: self.addr.clone(),
            }));
        }
    }
}

/// Removes a request from the pending table when its caller stops waiting.
struct PendingGuard<'a, Resp> {
    shared: &'a Shared<Resp>,
    id: u64,
}

impl<Resp> Drop for PendingGuard<'_, Resp> {
    fn drop(&mut self) {
        self.shared.pending().remove(&self.id);
    }
}

/// A handle to one peer. Cloning shares the connection.
pub(crate) struct PeerClient<Req, Resp> {
    shared: Arc<Shared<Resp>>,
    out: mpsc::Sender<(u64, Bytes)>,
    max_frame: usize,
    _req: PhantomData<fn(Req)>,
}

impl<Req, Resp> Clone for PeerClient<Req, Resp> {
    fn clone(&self) -> Self {
        PeerClient {
            shared: self.shared.clone(),
            out: self.out.clone(),
            max_frame: self.max_frame,
            _req: PhantomData,
        }
    }
}

impl<Req, Resp> PeerClient<Req, Resp>
where
    Req: Serialize + Send + 'static,
    Resp: DeserializeOwned + Send + 'static,
{
    /// Starts the connection task for `peer` at `addr` on the current
    /// runtime (`None`: whichever member listens there, for a joining
    /// node's seed). The task ends when every handle is dropped.
    pub(crate) fn start(config: Arc<ClientConfig>, peer: Option<NodeId>, addr: String) -> Self {
        let shared = Arc::new(Shared {
            addr,
            next_id: AtomicU64::new(1),
            closed: AtomicU64::new(0),
            pending: Mutex::new(BTreeMap::new()),
            unanswered_since: Mutex::new(None),
            round_trip: crate::Histogram::default(),
            sent: AtomicU64::new(0),
            received: AtomicU64::new(0),
        });
        let (out, rx) = mpsc::channel(config.queue.max(1));
        let max_frame = config.max_frame;
        let writer = Writer {
            config,
            peer,
            shared: shared.clone(),
            conn: None,
            reader: None,
            generation: 0,
            next_attempt: Instant::now(),
            backoff: Duration::ZERO,
            failure: None,
        };
        tokio::spawn(writer.run(rx));
        PeerClient {
            shared,
            out,
            max_frame,
            _req: PhantomData,
        }
    }

    /// The peer's address.
    pub(crate) fn addr(&self) -> &str {
        &self.shared.addr
    }

    /// Sends `req` and waits up to `timeout` for the response.
    ///
    /// # Errors
    /// [`NetError::Unreachable`] when no connection could be made (nothing
    /// was sent); [`NetError::Disconnected`] or [`NetError::Timeout`] when the
    /// peer may have acted on the request.
    pub(crate) async fn call(&self, req: &Req, timeout: Duration) -> Result<Resp, NetError> {
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let frame = wire::encode(&Tagged { id, body: req }, self.max_frame)?;
        let (reply, rx) = oneshot::channel();
        self.shared.pending().insert(
            id,
            Pending {
                generation: None,
                reply,
            },
        );
        let _guard = PendingGuard {
            shared: &self.shared,
            id,
        };
        let deadline = Instant::now() + timeout;
        let timed_out = || NetError::Timeout {
            addr: self.shared.addr.clone(),
        };
        let started = std::time::Instant::now();
        let len = frame.len() as u64;
        match tokio::time::timeout_at(deadline, self.out.send((id, frame))).await {
            Err(_) => return Err(timed_out()),
            Ok(Err(_)) => return Err(NetError::Closed),
            Ok(Ok(())) => {}
        }
        self.shared.sent.fetch_add(len, Ordering::Relaxed);
        match tokio::time::timeout_at(deadline, rx).await {
            Err(_) => Err(timed_out()),
            Ok(Err(_)) => Err(NetError::Closed),
            Ok(Ok(result)) => {
                if result.is_ok() {
                    self.shared.round_trip.observe(started.elapsed());
                }
                result
            }
        }
    }

    /// This link's traffic so far.
    pub(crate) fn traffic(&self) -> PeerTraffic {
        PeerTraffic {
            round_trip: self.shared.round_trip.snapshot(),
            sent: self.shared.sent.load(Ordering::Relaxed),
            received: self.shared.received.load(Ordering::Relaxed),
        }
    }
}

/// The task that owns the connection's write half and reconnects.
struct Writer<Resp> {
    config: Arc<ClientConfig>,
    /// `None` for a seed.
    peer: Option<NodeId>,
    shared: Arc<Shared<Resp>>,
    conn: Option<WriteHalf<BoxStream>>,
    /// The task reading responses on `conn`.
    reader: Option<JoinHandle<()>>,
    generation: u64,
    next_attempt: Instant,
    backoff: Duration,
    /// Why the last connection attempt failed.
    failure: Option<NetError>,
}

impl<Resp: DeserializeOwned + Send + 'static> Writer<Resp> {
    async fn run(mut self, mut rx: mpsc::Receiver<(u64, Bytes)>) {
        while let Some((id, frame)) = rx.recv().await {
            if self.shared.closed.load(Ordering::Acquire) >= self.generation {
                self.conn = None;
            }
            if self.conn.is_some() && self.shared.silent(self.config.dead_after) {
                tracing::warn!(peer = ?self.peer, addr = %self.shared.addr, "peer connection silent; replacing it");
                self.close();
            }
            if self.conn.is_none() && Instant::now() >= self.next_attempt {
                self.connect().await;
            }
            let Some(conn) = self.conn.as_mut() else {
                let failure = self
                    .failure
                    .clone()
                    .unwrap_or_else(|| NetError::Unreachable {
                        addr: self.shared.addr.clone(),
                        reason: "not connected".to_string(),
                    });
                self.shared.resolve(id, Err(failure));
                continue;
            };
            if let Some(p) = self.shared.pending().get_mut(&id) {
                p.generation = Some(self.generation);
            } else {
                continue; // the caller gave up before it was written
            }
            self.shared.wrote();
            if let Err(err) = wire::write_frame(conn, &frame).await {
                tracing::debug!(peer = ?self.peer, error = %err, "peer connection write failed");
                self.close();
            }
        }
        self.close();
    }

    /// Drops the current connection and its reader; fails what was written
    /// on it.
    fn close(&mut self) {
        if let Some(reader) = self.reader.take() {
            reader.abort();
        }
        if self.conn.take().is_some() {
            self.shared
                .closed
                .fetch_max(self.generation, Ordering::AcqRel);
            self.shared.fail_generation(self.generation);
        }
    }

    async fn connect(&mut self) {
        let attempt = tokio::time::timeout(self.config.connect_timeout, self.handshake()).await;
        let result = attempt.unwrap_or_else(|_| {
            Err(NetError::Unreachable {
                addr: self.shared.addr.clone(),
                reason: "connect timed out".to_string(),
            })
        });
        match result {
            Ok((reader, writer)) => {
                self.generation += 1;
                self.backoff = Duration::ZERO;
                self.failure = None;
                self.conn = Some(writer);
                self.shared.hear();
                let shared = self.shared.clone();
                let generation = self.generation;
                if let Some(old) = self
                    .reader
                    .replace(tokio::spawn(read_responses(reader, shared, generation)))
                {
                    old.abort();
                }
                tracing::debug!(peer = ?self.peer, addr = %self.shared.addr, "connected to peer");
            }
            Err(failure) => {
                let (min, max) = self.config.backoff;
                self.backoff = (self.backoff * 2).clamp(min, max);
                self.next_attempt = Instant::now() + self.backoff;
                tracing::debug!(peer = ?self.peer, error = %failure, "cannot connect to peer");
                self.failure = Some(failure);
            }
        }
    }

    /// The connecting side of the handshake: hello, TLS (when peers use
    /// it) verifying that the certificate names the node addressed, then
    /// the terms, checked on this side too.
    async fn handshake(
        &self,
    ) -> Result<(FrameReader<ReadHalf<BoxStream>>, WriteHalf<BoxStream>), NetError> {
        let addr = &self.shared.addr;
        let unreachable = |reason: String| NetError::Unreachable {
            addr: addr.clone(),
            reason,
        };
        let refused = |reason: String| {
            tracing::warn!(peer = ?self.peer, %addr, %reason, "peer connection refused");
            NetError::Refused {
                addr: addr.clone(),
                reason,
            }
        };
        let identity = &self.config.identity;
        if let (Some(tls), Some(peer)) = (&identity.tls, self.peer) {
            tls.check_allowed(peer).map_err(refused)?;
        }
        let stream = self
            .config
            .connector
            .connect(addr)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let (read, mut write) = tokio::io::split(stream);
        let hello = Hello {
            protocol: identity.protocols().own().get(),
            cluster: identity.name.clone(),
            from: identity.me,
            to: self.peer,
        };
        wire::send_handshake(&mut write, &hello)
            .await
            .map_err(unreachable)?;
        let mut reader = FrameReader::new(read, wire::MAX_HELLO);
        match reader.next::<HelloReply>().await {
            Ok(HelloReply::Welcome) => {}
            Ok(HelloReply::Refused(reason)) => return Err(refused(reason)),
            Err(err) => return Err(unreachable(err.to_string())),
        }
        let mut stream = reader.into_inner().unsplit(write);
        if let Some(tls) = &identity.tls {
            let name = match self.peer {
                Some(peer) => tls::server_name(peer).map_err(unreachable)?,
                None => {
                    ServerName::try_from("certus-seed").map_err(|e| unreachable(e.to_string()))?
                }
            };
            let secured = tls
                .connector(self.peer.is_none())
                .connect(name, stream)
                .await
                .map_err(|e| unreachable(format!("TLS handshake failed: {e}")))?;
            stream = Box::new(secured);
        }
        let (read, mut write) = tokio::io::split(stream);
        wire::send_handshake(&mut write, &identity.terms())
            .await
            .map_err(unreachable)?;
        let mut reader = FrameReader::new(read, wire::MAX_HELLO);
        match reader.next::<TermsReply>().await {
            Ok(TermsReply::Agreed(theirs)) => {
                identity.agree(&theirs, self.peer).map_err(refused)?
            }
            Ok(TermsReply::Refused(reason)) => return Err(refused(reason)),
            Err(err) => return Err(unreachable(err.to_string())),
        }
        reader.set_max(self.config.max_frame);
        Ok((reader, write))
    }
}

async fn read_responses<Resp: DeserializeOwned>(
    mut reader: FrameReader<ReadHalf<BoxStream>>,
    shared: Arc<Shared<Resp>>,
    generation: u64,
) {
    loop {
        match reader.next::<Tagged<Resp>>().await {
            Ok(tagged) => {
                shared.hear();
                let len = reader.last_frame_len() as u64;
                shared.received.fetch_add(len, Ordering::Relaxed);
                shared.resolve(tagged.id, Ok(tagged.body));
            }
            Err(err) => {
                tracing::debug!(addr = %shared.addr, error = %err, "peer connection closed");
                shared.closed.fetch_max(generation, Ordering::AcqRel);
                shared.fail_generation(generation);
                return;
            }
        }
    }
}
