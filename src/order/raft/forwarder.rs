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
    /// A batch holds at most `limits.0` frames and `limits.1` bytes of them
    /// (a single larger frame goes alone).
    pub(crate) fn start(limits: (usize, usize), queue: usize, timeout: Duration) -> Self {
        let (tx, rx) = mpsc::channel(queue.max(1));
        tokio::spawn(run(rx, (limits.0.max(1), limits.1), timeout));
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

async fn run(mut rx: mpsc::Receiver<(Client, Item)>, limits: (usize, usize), timeout: Duration) {
    let permits = Arc::new(Semaphore::new(IN_FLIGHT));
    // A submission for another leader than the batch being gathered, or
    // one that would take it over its byte limit, starts the next batch.
    let mut carried = None;
    loop {
        let next = match carried.take() {
            Some(next) => Some(next),
            None => rx.recv().await,
        };
        let Some(first) = next else {
            return;
        };
        let client = first.0.clone();
        let next = || rx.try_recv().ok();
        let (items, next_batch) = gather(first, next, limits, |(c, item): &(Client, Item)| {
            (c.addr() == client.addr(), item.frame.len())
        });
        carried = next_batch;
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        tokio::spawn(async move {
            send_batch(client, items, timeout).await;
            drop(permit);
        });
    }
}

/// One batch: `first`, then what `next` yields while it goes to the same
/// leader and the batch stays within `limits` (frames, bytes); returns the
/// batch and the item that starts the next one, if one was taken. `look`
/// tells of an item whether it goes to the same leader, and its size.
fn gather<T, I>(
    first: (T, I),
    mut next: impl FnMut() -> Option<(T, I)>,
    limits: (usize, usize),
    look: impl Fn(&(T, I)) -> (bool, usize),
) -> (Vec<I>, Option<(T, I)>) {
    let (count, max_bytes) = limits;
    let mut bytes = look(&first).1;
    let mut items = vec![first.1];
    while items.len() < count {
        let Some(candidate) = next() else {
            return (items, None);
        };
        let (same, size) = look(&candidate);
        if !same || bytes + size > max_bytes {
            return (items, Some(candidate));
        }
        bytes += size;
        items.push(candidate.1);
    }
    (items, None)
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

#[cfg(test)]
mod tests {
    use super::gather;

    /// The sizes of each batch `gather` makes of `items`, given as
    /// (leader, size).
    fn batches(items: &[(&'static str, usize)], limits: (usize, usize)) -> Vec<Vec<usize>> {
        let mut queue: std::collections::VecDeque<_> = items
            .iter()
            .map(|(leader, size)| (*leader, *size))
            .collect();
        let mut out = Vec::new();
        let mut carried = None;
        while let Some(first) = carried.take().or_else(|| queue.pop_front()) {
            let look_leader = first.0;
            let (batch, next) = gather(
                first,
                || queue.pop_front(),
                limits,
                |(l, size)| (*l == look_leader, *size),
            );
            out.push(batch);
            carried = next;
        }
        out
    }

    #[test]
    fn batches_end_at_the_count_the_bytes_or_another_leader() {
        let items = [
            ("a", 3),
            ("a", 3),
            ("a", 3),
            ("a", 3),
            ("b", 1),
            ("a", 9),
            ("a", 1),
        ];
        assert_eq!(
            batches(&items, (3, 100)),
            [vec![3, 3, 3], vec![3], vec![1], vec![9, 1]]
        );
        assert_eq!(
            batches(&items, (100, 7)),
            [vec![3, 3], vec![3, 3], vec![1], vec![9], vec![1]],
            "a frame over the byte limit goes alone"
        );
    }
}
