//! Blocking pops (`BLPOP`, `BRPOP`, `BLMOVE`, `BRPOPLPUSH`, `BLMPOP`):
//! the clients waiting on this node for keys to receive elements.
//!
//! A blocked client never holds anything in the order. It registers for
//! its keys here, then submits one attempt of its command as an ordered
//! operation; the attempt pops if an element is there and otherwise
//! answers nil, and the client waits until an operation that writes one of
//! its keys runs on this node (from whichever node it came), then tries
//! again, until its timeout. Registering before the attempt means no push
//! can slip between a nil attempt and the wait: a push ordered after the
//! attempt runs after it, so it wakes the registration.
//!
//! **Exactly once.** Each attempt is an ordered operation that every node
//! executes at the same position against the same state, so every node
//! pops the same element in the same attempt and no two attempts pop one
//! element; only the node the client is connected to sends the reply. An
//! element is lost to its client only when the client's connection or its
//! node fails after the attempt was ordered and before the reply arrived:
//! the client then cannot know whether it popped, the same as with Redis.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;
use tokio::sync::Notify;

/// The clients of this node waiting for keys.
#[derive(Debug, Default)]
pub(crate) struct Waiters {
    by_key: Mutex<HashMap<Bytes, Vec<Weak<Notify>>>>,
    /// Registrations alive: operations skip the lock when there are none.
    count: AtomicUsize,
}

/// One client's wait for its keys; dropping it ends the wait.
#[derive(Debug)]
pub(crate) struct Registration {
    waiters: Arc<Waiters>,
    keys: Vec<Bytes>,
    notify: Arc<Notify>,
}

impl Waiters {
    /// Registers a wait for any of `keys` to be written.
    pub(crate) fn register(self: &Arc<Self>, keys: Vec<Bytes>) -> Registration {
        let notify = Arc::new(Notify::new());
        let mut by_key = self.lock();
        for key in &keys {
            by_key
                .entry(key.clone())
                .or_default()
                .push(Arc::downgrade(&notify));
        }
        self.count.fetch_add(1, Ordering::Release);
        Registration {
            waiters: self.clone(),
            keys,
            notify,
        }
    }

    /// An operation wrote `key` on this node: wakes whoever waits for it.
    pub(crate) fn wake(&self, key: &[u8]) {
        if self.count.load(Ordering::Acquire) == 0 {
            return;
        }
        if let Some(waiting) = self.lock().get(key) {
            for notify in waiting.iter().filter_map(Weak::upgrade) {
                // A permit is kept when the client is between its attempt
                // and its wait, so no wake-up is lost.
                notify.notify_one();
            }
        }
    }

    /// How many clients wait (`INFO`'s `blocked_clients`).
    pub(crate) fn blocked(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Bytes, Vec<Weak<Notify>>>> {
        // A panic while holding the lock leaves only registrations behind,
        // which stay consistent.
        self.by_key
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Registration {
    /// Waits until one of the keys is written (or was, since the last
    /// wait).
    pub(crate) async fn written(&self) {
        self.notify.notified().await;
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut by_key = self.waiters.lock();
        for key in &self.keys {
            if let Some(waiting) = by_key.get_mut(key) {
                waiting.retain(|w| w.upgrade().is_some_and(|n| !Arc::ptr_eq(&n, &self.notify)));
                if waiting.is_empty() {
                    by_key.remove(key);
                }
            }
        }
        self.waiters.count.fetch_sub(1, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_write_before_the_wait_is_not_lost_and_registrations_end() {
        let waiters = Arc::new(Waiters::default());
        let registration = waiters.register(vec![Bytes::from_static(b"q")]);
        assert_eq!(waiters.blocked(), 1);
        waiters.wake(b"other");
        waiters.wake(b"q");
        // The wake came before the wait: the permit is kept.
        registration.written().await;
        drop(registration);
        assert_eq!(waiters.blocked(), 0);
        assert!(waiters.lock().is_empty());
        waiters.wake(b"q");
    }
}
