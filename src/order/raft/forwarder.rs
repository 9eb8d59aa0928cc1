//! Batches write-sets submitted on a follower into forwarding requests to
//! the leader, several requests in flight over the one connection.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::messages::{Forwarded, PeerRequest, PeerResponse};
use super::network::Client;
use crate::net::NetError;
use crate::order::{PeerError, RemoteError};

/// The fate of one forwarded frame as the submitter sees it.
pub(crate) type ForwardResult = Result<Forwarded, NetError>;

struct Item {
    frame: Bytes,
    reply: oneshot::Sender<ForwardResult>,
}

/// Requests to forward, grouped by leader.
pub(crate) struct Forwarder {
    tx: mpsc::Sender<(Client, Item)>,
}

const IN_FLIGHT: usize = 8;

impl Forwarder {
    /// Starts the batching task; it ends when the forwarder is dropped.
    pub(crate) fn start(batch: usize, queue: usize, timeout: Duration) -> Self {
        let (tx, rx) = mpsc::channel(queue.max(1));
        tokio::spawn(run(rx, batch.max(1), timeout));
        Forwarder { tx }
    }

    /// Forwards `frame` to the leader behind `client`.
    pub(crate) async fn forward(&self, client: Client, frame: Bytes) -> ForwardResult {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send((client, Item { frame, reply }))
            .await
            .map_err(|_| NetError::Closed)?;
        rx.await.map_err(|_| NetError::Closed)?
    }
}

async fn run(mut rx: mpsc::Receiver<(Client, Item)>, batch: usize, timeout: Duration) {
    let permits = Arc::new(Semaphore::new(IN_FLIGHT));
    // A submission for another leader than the batch being gathered starts
    // the next batch.
    let mut carried = None;
    loop {
        let next = match carried.take() {
            Some(next) => Some(next),
            None => rx.recv().await,
        };
        let Some((client, first)) = next else {
            return;
        };
        let mut items = vec![first];
        while items.len() < batch {
            match rx.try_recv() {
                Ok((c, item)) if c.addr() == client.addr() => items.push(item),
                Ok(other) => {
                    carried = Some(other);
                    break;
                }
                Err(_) => break,
            }
        }
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        tokio::spawn(async move {
            send_batch(client, items, timeout).await;
            drop(permit);
        });
    }
}

async fn send_batch(client: Client, items: Vec<Item>, timeout: Duration) {
    let frames = items.iter().map(|i| i.frame.clone()).collect();
    match client.call(&PeerRequest::Forward(frames), timeout).await {
        Ok(PeerResponse::Forward(results)) if results.len() == items.len() => {
            for (item, result) in items.into_iter().zip(results) {
                let _ = item.reply.send(Ok(result));
            }
        }
        Ok(_) => {
            for item in items {
                let failed = Forwarded::Failed(RemoteError::new(&PeerError::Malformed));
                let _ = item.reply.send(Ok(failed));
            }
        }
        Err(err) => {
            for item in items {
                let _ = item.reply.send(Err(err.clone()));
            }
        }
    }
}
