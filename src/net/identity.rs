//! Who a node is on peer links: its cluster's name and id, the settings
//! every member must share, and its TLS credentials.
//!
//! The cluster id is made once, by the lowest-id initial member when it
//! bootstraps the cluster, and kept in a file beside the log. Every other
//! node starts without one and adopts the id of the first authenticated
//! member it agrees terms with; from then on a peer of another cluster id
//! is refused. A node without an id has an empty history (it never
//! belonged to a cluster), so meeting it cannot mix two histories.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use super::protocol_book::ProtocolBook;
use super::tls::PeerTls;
use super::wire::Terms;
use crate::disk::disk_for;
use crate::ids::NodeId;
use crate::protocol::{Protocol, Protocols};

/// A cluster's unique id: 128 random bits, shown as a UUID.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ClusterId([u8; 16]);

impl ClusterId {
    /// A fresh id from the machine's randomness (std's hash keys are drawn
    /// from the operating system), in the form of a version 4 UUID.
    #[must_use]
    pub fn random() -> Self {
        use std::hash::{BuildHasher, Hasher};
        let mut bytes = [0u8; 16];
        for (i, half) in bytes.chunks_mut(8).enumerate() {
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write_usize(i);
            hasher.write_u128(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos()),
            );
            half.copy_from_slice(&hasher.finish().to_be_bytes());
        }
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        ClusterId(bytes)
    }

    /// Reads an id written by [`fmt::Display`].
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        let hex: String = text.trim().chars().filter(|c| *c != '-').collect();
        if hex.len() != 32 {
            return None;
        }
        let mut bytes = [0u8; 16];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(ClusterId(bytes))
    }
}

impl fmt::Display for ClusterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, byte) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ClusterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClusterId({self})")
    }
}

/// How a node secures its peer links.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum PeerSecurity {
    /// Mutual TLS 1.3 with certificates of the cluster's CA.
    Tls(Arc<PeerTls>),
    /// Plaintext, unauthenticated: anyone who can reach the peer port can
    /// claim to be any node. Only for a network nothing else can reach
    /// (tests, simulation).
    Insecure,
}

/// This node's side of every peer handshake.
#[derive(Debug)]
pub(crate) struct Identity {
    /// The cluster's name.
    pub(crate) name: String,
    /// This node.
    pub(crate) me: NodeId,
    /// Settings every member must share, by name.
    pub(crate) settings: BTreeMap<String, String>,
    /// `None` for plaintext peer links.
    pub(crate) tls: Option<Arc<PeerTls>>,
    cluster_id: Mutex<Option<ClusterId>>,
    /// Where the cluster id is kept; `None` keeps it in memory only.
    file: Option<PathBuf>,
    /// This node's protocol, its cluster's, and each peer's.
    protocols: Arc<ProtocolBook>,
}

/// The file beside the log that holds the cluster id.
const FILE: &str = "cluster-id";

impl Identity {
    /// The identity of node `me` of cluster `name`, reading the cluster id
    /// from `dir` if it was stored there.
    pub(crate) fn open(
        name: &str,
        me: NodeId,
        settings: BTreeMap<String, String>,
        security: &PeerSecurity,
        dir: Option<&Path>,
    ) -> std::io::Result<Self> {
        let file = dir.map(|d| d.join(FILE));
        let cluster_id = match &file {
            Some(path) => match disk_for(path).read(path) {
                Ok(bytes) => Some(
                    ClusterId::parse(&String::from_utf8_lossy(&bytes)).ok_or_else(|| {
                        std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            format!("{} does not hold a cluster id", path.display()),
                        )
                    })?,
                ),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
                Err(err) => return Err(err),
            },
            None => None,
        };
        Ok(Identity {
            name: name.to_string(),
            me,
            settings,
            tls: match security {
                PeerSecurity::Tls(tls) => Some(tls.clone()),
                PeerSecurity::Insecure => None,
            },
            cluster_id: Mutex::new(cluster_id),
            file,
            protocols: Arc::new(ProtocolBook::new(Protocols::default())),
        })
    }

    /// This identity, speaking the protocols `book` keeps.
    pub(crate) fn speaking(mut self, book: Arc<ProtocolBook>) -> Self {
        self.protocols = book;
        self
    }

    /// The protocol versions this node knows.
    pub(crate) fn protocols(&self) -> &Arc<ProtocolBook> {
        &self.protocols
    }

    /// The cluster id, if this node has one yet.
    pub(crate) fn cluster_id(&self) -> Option<ClusterId> {
        *self.lock()
    }

    /// Makes and keeps a cluster id if this node has none; returns it.
    pub(crate) fn create(&self) -> std::io::Result<ClusterId> {
        let mut id = self.lock();
        if let Some(id) = *id {
            return Ok(id);
        }
        let fresh = ClusterId::random();
        self.store(fresh)?;
        tracing::info!(cluster_id = %fresh, "created the cluster id");
        *id = Some(fresh);
        Ok(fresh)
    }

    /// The terms this node offers in a handshake.
    pub(crate) fn terms(&self) -> Terms {
        Terms {
            cluster_id: self.cluster_id(),
            settings: self.settings.clone(),
            protocol: self.protocols.own().get(),
        }
    }

    /// Whether `peer` (`None` for a seed known by address only), offering
    /// `theirs`, may talk to this node; on agreement, records its protocol
    /// and adopts its cluster id if this node had none.
    pub(crate) fn agree(&self, theirs: &Terms, peer: Option<NodeId>) -> Result<(), String> {
        mismatch(&self.settings, &theirs.settings).map_or(Ok(()), Err)?;
        let protocol = Protocol::new(theirs.protocol);
        self.protocols.refusal(protocol).map_or(Ok(()), Err)?;
        self.adopt(theirs)?;
        if let Some(peer) = peer {
            self.protocols.record(peer, protocol);
        }
        Ok(())
    }

    /// Adopts the cluster id in `theirs` if this node had none; refuses
    /// another cluster's.
    fn adopt(&self, theirs: &Terms) -> Result<(), String> {
        let mut mine = self.lock();
        match (*mine, theirs.cluster_id) {
            (Some(a), Some(b)) if a != b => {
                Err(format!("cluster id {b} is not this cluster's ({a})"))
            }
            (None, Some(theirs)) => {
                self.store(theirs)
                    .map_err(|e| format!("cannot keep the cluster id: {e}"))?;
                tracing::info!(cluster_id = %theirs, "adopted the cluster id");
                *mine = Some(theirs);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<ClusterId>> {
        self.cluster_id
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes the id durably: a temporary file, fsynced, renamed over.
    fn store(&self, id: ClusterId) -> std::io::Result<()> {
        let Some(path) = &self.file else {
            return Ok(());
        };
        if let Some(dir) = path.parent() {
            disk_for(path).create_dir_all(dir)?;
        }
        crate::disk::replace(path, format!("{id}\n").as_bytes())
    }
}

/// The first setting two nodes disagree on, named with both values.
fn mismatch(mine: &BTreeMap<String, String>, theirs: &BTreeMap<String, String>) -> Option<String> {
    mine.keys().chain(theirs.keys()).find_map(|key| {
        let (a, b) = (mine.get(key), theirs.get(key));
        (a != b).then(|| {
            let show = |v: Option<&String>| v.map_or("unset".to_string(), |v| format!("{v:?}"));
            format!(
                "setting {key} differs: {} here, {} on the peer",
                show(a),
                show(b)
            )
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(dir: Option<&Path>, settings: &[(&str, &str)]) -> Identity {
        let settings = settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Identity::open("c", NodeId::new(1), settings, &PeerSecurity::Insecure, dir).expect("open")
    }

    #[test]
    fn cluster_ids_print_as_uuids_and_parse_back() {
        let id = ClusterId::random();
        let text = id.to_string();
        assert_eq!(text.len(), 36);
        assert_eq!(text.as_bytes()[14], b'4', "{text}");
        assert_eq!(ClusterId::parse(&text), Some(id));
        assert_ne!(ClusterId::random(), id);
        assert_eq!(ClusterId::parse("not an id"), None);
    }

    #[test]
    fn an_id_is_adopted_once_kept_and_then_enforced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let node = identity(Some(dir.path()), &[("window", "100")]);
        assert_eq!(node.cluster_id(), None);
        let theirs = ClusterId::random();
        let offer = Terms {
            cluster_id: Some(theirs),
            settings: node.settings.clone(),
            protocol: Protocol::CURRENT.get(),
        };
        assert_eq!(node.agree(&offer, None), Ok(()));
        assert_eq!(node.cluster_id(), Some(theirs));
        let reopened = identity(Some(dir.path()), &[("window", "100")]);
        assert_eq!(reopened.cluster_id(), Some(theirs));
        let other = Terms {
            cluster_id: Some(ClusterId::random()),
            ..offer.clone()
        };
        let refusal = reopened.agree(&other, None).expect_err("another cluster");
        assert!(refusal.contains("is not this cluster's"), "{refusal}");
        let fresh = Terms {
            cluster_id: None,
            ..offer
        };
        assert_eq!(reopened.agree(&fresh, None), Ok(()));
        assert_eq!(reopened.create().expect("create"), theirs);
    }

    #[test]
    fn a_differing_setting_is_named_with_both_values() {
        let node = identity(None, &[("window", "100"), ("isolation", "snapshot")]);
        let offer = Terms {
            cluster_id: None,
            settings: BTreeMap::from([("window".to_string(), "100".to_string())]),
            protocol: Protocol::CURRENT.get(),
        };
        let refusal = node.agree(&offer, None).expect_err("isolation missing");
        assert_eq!(
            refusal,
            "setting isolation differs: \"snapshot\" here, unset on the peer"
        );
    }

    #[test]
    fn a_peer_is_refused_once_the_cluster_moved_past_it_and_recorded_otherwise() {
        let node = identity(None, &[]);
        let v = Protocol::CURRENT.get();
        let next = Protocol::new(v + 1);
        let book = Arc::new(ProtocolBook::new(Protocols::new(next, next)));
        let node = node.speaking(book.clone());
        let offer = |protocol| Terms {
            cluster_id: None,
            settings: BTreeMap::new(),
            protocol,
        };
        let refusal = node
            .agree(&offer(v), Some(NodeId::new(2)))
            .expect_err("older than the cluster");
        assert!(refusal.contains("older than the cluster's"), "{refusal}");
        assert_eq!(book.of(NodeId::new(2)), None);
        assert_eq!(node.agree(&offer(v + 1), Some(NodeId::new(2))), Ok(()));
        assert_eq!(book.of(NodeId::new(2)), Some(next));
        assert_eq!(node.terms().protocol, v + 1);
    }
}
