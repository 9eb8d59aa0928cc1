//! The accepting side: handshake, then answer requests concurrently.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use super::identity::Identity;
use super::transport::{BoxListener, BoxStream};
use super::wire::{self, FrameReader, Hello, HelloReply, Tagged, Terms, TermsReply};
use crate::ids::NodeId;

/// Who sent a request: the node the handshake established (proved by its
/// certificate when peers use TLS).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Caller {
    pub(crate) node: NodeId,
    /// The connection did not name this node: a joining node's seed
    /// connection, which may only ask to join.
    pub(crate) seed: bool,
}

/// Answers the requests arriving from peers.
pub(crate) trait Handler<Req, Resp>: Send + Sync + 'static {
    /// The response to `req` from `caller`.
    fn handle(&self, caller: Caller, req: Req) -> impl Future<Output = Resp> + Send;
}

/// How a node accepts peer connections.
#[derive(Clone, Debug)]
pub(crate) struct ServerConfig {
    /// This node, its cluster and its credentials.
    pub(crate) identity: Arc<Identity>,
    /// Largest frame body accepted or sent.
    pub(crate) max_frame: usize,
    /// Requests handled at once per connection; the connection is not read
    /// further while all are busy.
    pub(crate) concurrency: usize,
    /// Deadline for a new connection's whole handshake (hello, TLS, terms).
    pub(crate) handshake_timeout: Duration,
    /// A connection that sends nothing for this long is closed (peers
    /// reconnect when they next have something to say).
    pub(crate) idle_timeout: Duration,
    /// Connections open at once, at most; more are closed at once.
    pub(crate) max_connections: usize,
}

/// Why a connection was refused, for the log line that names it.
struct Refusal {
    /// The node the connection claimed to come from, once known.
    claimed: Option<NodeId>,
    reason: String,
}

/// Accepts peers on `listener` until `shutdown` turns true, then drops every
/// connection and in-flight request.
pub(crate) async fn serve<Req, Resp, H>(
    listener: BoxListener,
    config: Arc<ServerConfig>,
    handler: Arc<H>,
    mut shutdown: watch::Receiver<bool>,
) where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
    H: Handler<Req, Resp>,
{
    let mut connections = JoinSet::new();
    let slots = Arc::new(Semaphore::new(config.max_connections.max(1)));
    loop {
        tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, from)) => {
                    let Ok(slot) = slots.clone().try_acquire_owned() else {
                        tracing::warn!(%from, limit = config.max_connections, "refusing a peer connection: too many open");
                        drop(stream);
                        continue;
                    };
                    tracing::debug!(%from, "peer connection accepted");
                    let (config, handler) = (config.clone(), handler.clone());
                    connections.spawn(async move {
                        connection(stream, from, config, handler).await;
                        drop(slot);
                    });
                }
                Err(err) => tracing::warn!(error = %err, "accepting a peer connection failed"),
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn connection<Req, Resp, H>(
    stream: BoxStream,
    addr: SocketAddr,
    config: Arc<ServerConfig>,
    handler: Arc<H>,
) where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
    H: Handler<Req, Resp>,
{
    let handshake = tokio::time::timeout(config.handshake_timeout, handshake(stream, &config));
    let (stream, caller) = match handshake.await {
        Ok(Ok(done)) => done,
        Ok(Err(refusal)) => {
            let claimed = refusal.claimed.map(|n| n.to_string());
            let claimed = claimed.as_deref().unwrap_or("unknown");
            tracing::warn!(peer = %addr, claimed, reason = %refusal.reason, "refused a peer connection");
            return;
        }
        Err(_) => {
            tracing::warn!(peer = %addr, "refused a peer connection: handshake timed out");
            return;
        }
    };
    let (read, mut write) = tokio::io::split(stream);
    let mut reader = FrameReader::new(read, config.max_frame);
    let (tx, mut rx) = mpsc::channel::<Tagged<Resp>>(config.concurrency.max(1));
    let max_frame = config.max_frame;
    let writer = async move {
        while let Some(tagged) = rx.recv().await {
            let frame = match wire::encode(&tagged, max_frame) {
                Ok(frame) => frame,
                Err(err) => {
                    tracing::error!(error = %err, "cannot encode a peer response");
                    return;
                }
            };
            if wire::write_frame(&mut write, &frame).await.is_err() {
                return;
            }
        }
    };
    let mut tasks = JoinSet::new();
    tasks.spawn(writer);
    let permits = Arc::new(Semaphore::new(config.concurrency.max(1)));
    loop {
        let next = tokio::time::timeout(config.idle_timeout, reader.next::<Tagged<Req>>());
        let request = match next.await {
            Ok(Ok(request)) => request,
            Ok(Err(err)) => {
                tracing::debug!(from = %caller.node, error = %err, "peer connection ended");
                break;
            }
            Err(_) => {
                tracing::debug!(from = %caller.node, "idle peer connection closed");
                break;
            }
        };
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let (handler, tx) = (handler.clone(), tx.clone());
        tasks.spawn(async move {
            let body = handler.handle(caller, request.body).await;
            let _ = tx
                .send(Tagged {
                    id: request.id,
                    body,
                })
                .await;
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
    }
}

/// The accepting side of the handshake: the plaintext hello, then TLS
/// (when peers use it) with the certificate checked against the node the
/// hello claims, then the terms. Nothing beyond [`wire::MAX_HELLO`] per
/// frame is read until it succeeds.
async fn handshake(
    stream: BoxStream,
    config: &ServerConfig,
) -> Result<(BoxStream, Caller), Refusal> {
    let identity = &config.identity;
    let refuse = |claimed: Option<NodeId>| move |reason: String| Refusal { claimed, reason };
    let (read, mut write) = tokio::io::split(stream);
    let mut reader = FrameReader::new(read, wire::MAX_HELLO);
    let hello: Hello = reader
        .next()
        .await
        .map_err(|e| refuse(None)(format!("no valid hello: {e}")))?;
    let refuse = refuse(Some(hello.from));
    let refusal = hello.refusal(&identity.name, identity.me, identity.protocols().own());
    let reply = refusal
        .clone()
        .map_or(HelloReply::Welcome, HelloReply::Refused);
    wire::send_handshake(&mut write, &reply)
        .await
        .map_err(&refuse)?;
    if let Some(reason) = refusal {
        return Err(refuse(reason));
    }
    let mut stream = reader.into_inner().unsplit(write);
    let mut proved = Ok(());
    if let Some(tls) = &identity.tls {
        let secured = tls
            .acceptor()
            .accept(stream)
            .await
            .map_err(|e| refuse(format!("TLS handshake failed: {e}")))?;
        proved = tls.check_peer(secured.get_ref().1.peer_certificates(), hello.from);
        stream = Box::new(secured);
    }
    let (read, mut write) = tokio::io::split(stream);
    let mut reader = FrameReader::new(read, wire::MAX_HELLO);
    let theirs: Terms = reader
        .next()
        .await
        .map_err(|e| refuse(format!("no valid terms: {e}")))?;
    let verdict = proved.and_then(|()| identity.agree(&theirs, Some(hello.from)));
    let reply = match &verdict {
        Ok(()) => TermsReply::Agreed(identity.terms()),
        Err(reason) => TermsReply::Refused(reason.clone()),
    };
    wire::send_handshake(&mut write, &reply)
        .await
        .map_err(&refuse)?;
    verdict.map_err(&refuse)?;
    let caller = Caller {
        node: hello.from,
        seed: hello.to.is_none(),
    };
    Ok((reader.into_inner().unsplit(write), caller))
}
