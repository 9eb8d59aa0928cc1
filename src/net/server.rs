//! The accepting side: handshake, then answer requests concurrently.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{ReadHalf, WriteHalf};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use super::transport::{BoxListener, BoxStream};
use super::wire::{self, FrameReader, Hello, HelloReply, Tagged};
use crate::ids::NodeId;

/// Answers the requests arriving from peers.
pub(crate) trait Handler<Req, Resp>: Send + Sync + 'static {
    /// The response to `req` from `from`.
    fn handle(&self, from: NodeId, req: Req) -> impl Future<Output = Resp> + Send;
}

/// How a node accepts peer connections.
#[derive(Clone, Debug)]
pub(crate) struct ServerConfig {
    /// Only peers naming this cluster are accepted.
    pub(crate) cluster: String,
    /// This node; peers must address it.
    pub(crate) me: NodeId,
    /// Largest frame body accepted or sent.
    pub(crate) max_frame: usize,
    /// Requests handled at once per connection; the connection is not read
    /// further while all are busy.
    pub(crate) concurrency: usize,
    /// Deadline for a new connection's handshake.
    pub(crate) handshake_timeout: Duration,
    /// Connections open at once, at most; more are closed at once.
    pub(crate) max_connections: usize,
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
                        connection(stream, config, handler).await;
                        drop(slot);
                    });
                }
                Err(err) => tracing::warn!(error = %err, "accepting a peer connection failed"),
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn connection<Req, Resp, H>(stream: BoxStream, config: Arc<ServerConfig>, handler: Arc<H>)
where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
    H: Handler<Req, Resp>,
{
    let (read, mut write) = tokio::io::split(stream);
    // Until the handshake succeeds, nothing beyond a small hello is read.
    let mut reader = FrameReader::new(read, wire::MAX_HELLO);
    let Some(hello) = handshake(&mut reader, &mut write, &config).await else {
        return;
    };
    reader.set_max(config.max_frame);
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
        let request = match reader.next::<Tagged<Req>>().await {
            Ok(request) => request,
            Err(err) => {
                tracing::debug!(from = %hello.from, error = %err, "peer connection ended");
                break;
            }
        };
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let (handler, tx, from) = (handler.clone(), tx.clone(), hello.from);
        tasks.spawn(async move {
            let body = handler.handle(from, request.body).await;
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

/// Reads the peer's hello and answers it; `None` when the connection must close.
async fn handshake(
    reader: &mut FrameReader<ReadHalf<BoxStream>>,
    write: &mut WriteHalf<BoxStream>,
    config: &ServerConfig,
) -> Option<Hello> {
    let hello = tokio::time::timeout(config.handshake_timeout, reader.next::<Hello>()).await;
    let hello = match hello {
        Ok(Ok(hello)) => hello,
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "peer handshake failed");
            return None;
        }
        Err(_) => {
            tracing::warn!("peer handshake timed out");
            return None;
        }
    };
    let reply = match hello.refusal(&config.cluster, config.me) {
        Some(reason) => {
            tracing::warn!(from = %hello.from, cluster = %hello.cluster, %reason, "refusing peer");
            HelloReply::Refused(reason)
        }
        None => HelloReply::Welcome,
    };
    let refused = reply != HelloReply::Welcome;
    let frame = wire::encode(&reply, config.max_frame).ok()?;
    if wire::write_frame(write, &frame).await.is_err() || refused {
        return None;
    }
    Some(hello)
}
