//! The cluster protocol in the log (see [`crate::protocol`]): the entry
//! the leader orders to raise it, how every node applies that entry, and
//! where a node keeps the version it reached, so that a restart, or a log
//! purged past the entry, does not lower it.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::delivery::Raft;
use super::log::{read_state_file, write_state_file};
use super::types::Submission;
use crate::frame::{self, FrameKind};
use crate::ids::NodeId;
use crate::net::ProtocolBook;
use crate::protocol::{self, Protocol};

/// The file beside the log that keeps the cluster protocol this node
/// applied.
const FILE: &str = "cluster-protocol";

/// The body of a [`FrameKind::ClusterProtocol`] frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Change {
    to: Protocol,
}

/// The entry that raises the cluster protocol to `to`.
fn change(to: Protocol) -> io::Result<Bytes> {
    frame::encode(FrameKind::ClusterProtocol, &Change { to }, 64).map_err(io::Error::other)
}

/// Whether `frame` is a protocol change (judged by its header alone):
/// such a position carries nothing for the node, which sees a barrier.
pub(crate) fn is_change(frame: &[u8]) -> bool {
    frame.get(6) == Some(&FrameKind::ClusterProtocol.code())
        && frame::peek_header(frame, 64).is_ok_and(|h| h.is_some())
}

/// The protocol a change entry raises the cluster to; `None` for any other
/// frame, or a damaged change (every member judges the same bytes alike).
fn read_change(frame: &[u8]) -> Option<Protocol> {
    if !is_change(frame) {
        return None;
    }
    let (_, body) = frame::decode(frame, 64).ok()?;
    let change: Change = frame::decode_body(FrameKind::ClusterProtocol, body).ok()?;
    Some(change.to)
}

/// The cluster protocol kept in `dir`, if any.
pub(crate) fn load(dir: &Path) -> io::Result<Option<Protocol>> {
    read_state_file(dir, FILE, 64)
}

/// Applies one ordered frame: a protocol change raises the book's cluster
/// protocol and is kept in `dir` before the log moves past it.
pub(crate) fn apply(frame: &[u8], book: &ProtocolBook, dir: &Path) -> io::Result<()> {
    let Some(to) = read_change(frame) else {
        return Ok(());
    };
    let from = book.cluster();
    if book.raise(to) {
        write_state_file(dir, FILE, &book.cluster(), 64)?;
        tracing::info!(%from, to = %book.cluster(), "the cluster protocol rose: this node writes in the new formats");
    }
    Ok(())
}

/// The leader's upgrade tick: once every member is known to speak a newer
/// protocol than the cluster's, orders the change (one at a time).
pub(crate) struct Upgrader {
    raft: Raft,
    book: Arc<ProtocolBook>,
    me: NodeId,
    ordering: Arc<AtomicBool>,
}

impl Upgrader {
    pub(crate) fn new(raft: Raft, book: Arc<ProtocolBook>, me: NodeId) -> Self {
        Upgrader {
            raft,
            book,
            me,
            ordering: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Orders a raise if the membership `members` allows one.
    pub(crate) fn tick(&self, members: impl IntoIterator<Item = u64>) {
        let known = members.into_iter().map(|id| {
            let id = NodeId::new(id);
            if id == self.me {
                Some(self.book.own())
            } else {
                self.book.of(id)
            }
        });
        let Some(to) = protocol::raised(self.book.cluster(), known) else {
            return;
        };
        if self.ordering.swap(true, Ordering::AcqRel) {
            return;
        }
        let (raft, ordering, me) = (self.raft.clone(), self.ordering.clone(), self.me);
        tokio::spawn(async move {
            let ordered = match change(to) {
                Ok(entry) => raft
                    .client_write(Submission::stamped(entry, me))
                    .await
                    .map_err(|e| e.to_string()),
                Err(err) => Err(err.to_string()),
            };
            match ordered {
                Ok(_) => {
                    tracing::info!(%to, "every member speaks protocol {to}: ordered the change")
                }
                Err(err) => {
                    tracing::warn!(%to, error = %err, "ordering the protocol change failed; retrying next tick")
                }
            }
            ordering.store(false, Ordering::Release);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Protocols;

    #[test]
    fn a_change_is_applied_once_kept_and_other_frames_are_not_changes() {
        let dir = tempfile::tempdir().unwrap();
        let v3 = Protocol::new(3);
        let v4 = Protocol::new(4);
        let book = ProtocolBook::new(Protocols::new(v4, v3));
        let entry = change(v4).unwrap();
        assert!(is_change(&entry));
        assert_eq!(load(dir.path()).unwrap(), None);
        apply(&entry, &book, dir.path()).unwrap();
        assert_eq!(book.cluster(), v4);
        assert_eq!(load(dir.path()).unwrap(), Some(v4));
        let other = frame::encode(FrameKind::Backup, &1u8, 64).unwrap();
        assert!(!is_change(&other));
        assert!(!is_change(b"short"));
        let mut damaged = entry.to_vec();
        let last = damaged.len() - 1;
        damaged[last] ^= 1;
        assert_eq!(read_change(&damaged), None);
    }
}
