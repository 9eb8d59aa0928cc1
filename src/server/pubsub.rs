//! Pub/sub, cluster-wide: the channels and patterns this node's clients
//! subscribe to, and their mailboxes.
//!
//! `PUBLISH` is an ordered operation, so every node executes it, and each
//! node delivers the message to its own subscribers when it executes it.
//! Every publication declares one shared ordering key, so publications run
//! in log order on every node and every subscriber, on whichever node,
//! receives the messages (of one channel, and of all channels) in the same
//! order, once. Messages are not stored; a node that is down misses them,
//! as a disconnected Redis subscriber does. `PUBLISH` answers the number of
//! receivers on the node that served it: the other nodes' subscribers are
//! not known there (Redis Cluster's `PUBLISH` counts one node's, too).
//!
//! A mailbox is bounded in bytes (Redis's `client-output-buffer-limit
//! pubsub`): a subscriber that falls that far behind is disconnected.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::glob;
use super::resp::{Protocol, Reply};

/// One client's queue of messages, written by its connection.
#[derive(Debug)]
pub(crate) struct Mailbox {
    id: u64,
    tx: mpsc::UnboundedSender<Bytes>,
    /// Bytes queued and not yet written to the client.
    pending: AtomicUsize,
    limit: usize,
    resp3: AtomicBool,
    /// It passed its limit: the connection closes.
    overflowed: AtomicBool,
}

/// The connection's end of a mailbox.
#[derive(Debug)]
pub(crate) struct Messages {
    rx: mpsc::UnboundedReceiver<Bytes>,
    mailbox: Arc<Mailbox>,
}

impl Mailbox {
    /// A mailbox for client `id` holding at most `limit` bytes, and the
    /// connection's end of it.
    pub(crate) fn new(id: u64, limit: usize) -> (Arc<Mailbox>, Messages) {
        let (tx, rx) = mpsc::unbounded_channel();
        let mailbox = Arc::new(Mailbox {
            id,
            tx,
            pending: AtomicUsize::new(0),
            limit,
            resp3: AtomicBool::new(false),
            overflowed: AtomicBool::new(false),
        });
        let messages = Messages {
            rx,
            mailbox: mailbox.clone(),
        };
        (mailbox, messages)
    }

    /// The protocol messages are encoded in (the client's).
    pub(crate) fn set_protocol(&self, protocol: Protocol) {
        self.resp3
            .store(protocol == Protocol::Resp3, Ordering::Relaxed);
    }

    fn protocol(&self) -> Protocol {
        if self.resp3.load(Ordering::Relaxed) {
            Protocol::Resp3
        } else {
            Protocol::Resp2
        }
    }

    /// Queues `frames` (a message, encoded in the client's protocol);
    /// false when the mailbox is over its limit (the client is then
    /// dropped) or its connection is gone.
    fn deliver(&self, frame: &Reply) -> bool {
        if self.overflowed.load(Ordering::Relaxed) {
            return false;
        }
        let bytes = frame.to_bytes(self.protocol());
        let pending = self.pending.fetch_add(bytes.len(), Ordering::AcqRel) + bytes.len();
        if pending > self.limit {
            self.overflowed.store(true, Ordering::Relaxed);
            tracing::warn!(
                client = self.id,
                pending,
                limit = self.limit,
                "Client id={} closed for overcoming of output buffer limits.",
                self.id
            );
            // Wake the connection so it closes.
            let _ = self.tx.send(Bytes::new());
            return false;
        }
        self.tx.send(bytes).is_ok()
    }
}

impl Messages {
    /// The next message to write, or `None` once the client must be
    /// closed (its mailbox overflowed).
    pub(crate) async fn next(&mut self) -> Option<Bytes> {
        let message = self.rx.recv().await?;
        if self.mailbox.overflowed.load(Ordering::Relaxed) {
            return None;
        }
        self.mailbox
            .pending
            .fetch_sub(message.len(), Ordering::AcqRel);
        Some(message)
    }
}

/// Subscribers by channel or pattern, then by client id.
type Subscribers = HashMap<Bytes, BTreeMap<u64, Arc<Mailbox>>>;

/// This node's subscriptions.
#[derive(Debug, Default)]
pub(crate) struct Channels {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    channels: Subscribers,
    patterns: Subscribers,
}

/// Whether a subscription is to a channel or to a pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Channel,
    Pattern,
}

impl Channels {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Subscribes `mailbox`'s client to `name`; false when it already was.
    pub(crate) fn subscribe(&self, kind: Kind, name: &Bytes, mailbox: &Arc<Mailbox>) -> bool {
        let mut inner = self.lock();
        let map = match kind {
            Kind::Channel => &mut inner.channels,
            Kind::Pattern => &mut inner.patterns,
        };
        map.entry(name.clone())
            .or_default()
            .insert(mailbox.id, mailbox.clone())
            .is_none()
    }

    /// Unsubscribes client `id` from `name`; false when it was not.
    pub(crate) fn unsubscribe(&self, kind: Kind, name: &[u8], id: u64) -> bool {
        let mut inner = self.lock();
        let map = match kind {
            Kind::Channel => &mut inner.channels,
            Kind::Pattern => &mut inner.patterns,
        };
        let Some(subscribers) = map.get_mut(name) else {
            return false;
        };
        let removed = subscribers.remove(&id).is_some();
        if subscribers.is_empty() {
            map.remove(name);
        }
        removed
    }

    /// Delivers `message` on `channel` to this node's subscribers: those
    /// of the channel, then those of each matching pattern. Returns how
    /// many received it.
    pub(crate) fn publish(&self, channel: &Bytes, message: &Bytes) -> usize {
        let inner = self.lock();
        let mut receivers = 0;
        if let Some(subscribers) = inner.channels.get(channel) {
            let frame = Reply::Push(vec![
                Reply::bulk("message"),
                Reply::Bulk(Some(channel.clone())),
                Reply::Bulk(Some(message.clone())),
            ]);
            receivers += subscribers.values().filter(|m| m.deliver(&frame)).count();
        }
        let patterns: BTreeMap<&Bytes, _> = inner.patterns.iter().collect();
        for (pattern, subscribers) in patterns {
            if !glob::matches(pattern, channel) {
                continue;
            }
            let frame = Reply::Push(vec![
                Reply::bulk("pmessage"),
                Reply::Bulk(Some(pattern.clone())),
                Reply::Bulk(Some(channel.clone())),
                Reply::Bulk(Some(message.clone())),
            ]);
            receivers += subscribers.values().filter(|m| m.deliver(&frame)).count();
        }
        receivers
    }

    /// How many subscribers here a message on `channel` would reach now.
    pub(crate) fn receivers(&self, channel: &[u8]) -> usize {
        let inner = self.lock();
        let direct = inner.channels.get(channel).map_or(0, BTreeMap::len);
        let by_pattern: usize = inner
            .patterns
            .iter()
            .filter(|(pattern, _)| glob::matches(pattern, channel))
            .map(|(_, subscribers)| subscribers.len())
            .sum();
        direct + by_pattern
    }

    /// `PUBSUB CHANNELS [pattern]`: channels with a subscriber here.
    pub(crate) fn active(&self, pattern: Option<&[u8]>) -> BTreeSet<Bytes> {
        self.lock()
            .channels
            .keys()
            .filter(|c| pattern.is_none_or(|p| glob::matches(p, c)))
            .cloned()
            .collect()
    }

    /// `PUBSUB NUMSUB`: subscribers of `channel` here (patterns aside).
    pub(crate) fn subscribers(&self, channel: &[u8]) -> usize {
        self.lock().channels.get(channel).map_or(0, BTreeMap::len)
    }

    /// `PUBSUB NUMPAT`: distinct patterns subscribed to here.
    pub(crate) fn patterns(&self) -> usize {
        self.lock().patterns.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(text: &str) -> Bytes {
        Bytes::copy_from_slice(text.as_bytes())
    }

    #[tokio::test]
    async fn messages_reach_channel_and_pattern_subscribers_in_order() {
        let channels = Channels::default();
        let (alice, mut to_alice) = Mailbox::new(1, 1 << 20);
        let (bob, mut to_bob) = Mailbox::new(2, 1 << 20);
        bob.set_protocol(Protocol::Resp3);
        assert!(channels.subscribe(Kind::Channel, &b("news"), &alice));
        assert!(!channels.subscribe(Kind::Channel, &b("news"), &alice));
        assert!(channels.subscribe(Kind::Pattern, &b("n*"), &bob));
        assert_eq!(channels.publish(&b("news"), &b("one")), 2);
        assert_eq!(channels.publish(&b("other"), &b("two")), 0);
        assert_eq!(
            to_alice.next().await.unwrap(),
            b("*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$3\r\none\r\n")
        );
        assert_eq!(
            to_bob.next().await.unwrap(),
            b(">4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n$3\r\none\r\n")
        );
        assert_eq!(channels.active(None), BTreeSet::from([b("news")]));
        assert_eq!((channels.subscribers(b"news"), channels.patterns()), (1, 1));
        assert!(channels.unsubscribe(Kind::Channel, b"news", 1));
        assert_eq!(channels.subscribers(b"news"), 0);
        assert!(channels.active(None).is_empty());
    }

    #[tokio::test]
    async fn a_subscriber_past_its_limit_is_dropped() {
        let channels = Channels::default();
        let (slow, mut to_slow) = Mailbox::new(1, 64);
        channels.subscribe(Kind::Channel, &b("c"), &slow);
        assert_eq!(channels.publish(&b("c"), &b("short")), 1);
        assert_eq!(channels.publish(&b("c"), &b(&"x".repeat(100))), 0);
        assert_eq!(channels.publish(&b("c"), &b("after")), 0);
        // What was queued before the overflow is not sent: it is closed.
        assert_eq!(to_slow.next().await, None);
    }
}
