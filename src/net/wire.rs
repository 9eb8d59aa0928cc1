//! Framing and the handshake on a peer connection.

use bytes::{Bytes, BytesMut};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::error::NetError;
use crate::frame::{self, FrameError, FrameKind, HEADER_LEN};
use crate::ids::NodeId;
use crate::protocol::Protocol;

/// The largest hello (or hello reply) body read: everything a connection
/// may make the accepting node read or allocate before it is known.
pub(crate) const MAX_HELLO: usize = 4 << 10;

/// Bytes a frame's buffer grows by at most before they have arrived: a
/// header that claims a large body costs only what is actually sent.
const GROWTH: usize = 64 << 10;

/// A buffer larger than this after a frame is given back before the next.
const KEEP: usize = 1 << 20;

/// The first frame on every connection, from the connecting side, in
/// plaintext: where the connection is meant to go, as a TLS client's
/// server name is. It proves nothing; the certificates that follow do.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Hello {
    pub(crate) protocol: u16,
    pub(crate) cluster: String,
    pub(crate) from: NodeId,
    /// The node addressed; `None` for a joining node's seed, known by
    /// address only (such a connection may only ask to join).
    pub(crate) to: Option<NodeId>,
}

/// The accepting side's answer to [`Hello`].
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) enum HelloReply {
    Welcome,
    Refused(String),
}

/// What each side states once the link is secured (inside TLS when peers
/// use it): the cluster id it belongs to, if it has one yet, and the
/// settings every member must share. The connecting side speaks first.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Terms {
    pub(crate) cluster_id: Option<super::identity::ClusterId>,
    pub(crate) settings: std::collections::BTreeMap<String, String>,
    /// The protocol version the stating node speaks ([`crate::protocol`]).
    pub(crate) protocol: u16,
}

/// The accepting side's answer to [`Terms`].
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) enum TermsReply {
    Agreed(Terms),
    Refused(String),
}

/// Every frame after the handshake: a request or the response with its id.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Tagged<M> {
    pub(crate) id: u64,
    pub(crate) body: M,
}

impl Hello {
    /// Why the accepting node `me` of `cluster`, speaking `own`, must
    /// refuse this hello. The protocol is checked again against the
    /// cluster's once the peer is authenticated (its terms).
    pub(crate) fn refusal(&self, cluster: &str, me: NodeId, own: Protocol) -> Option<String> {
        if let Some(refusal) = own.refusal(Protocol::FIRST, Protocol::new(self.protocol)) {
            Some(refusal)
        } else if self.cluster != cluster {
            Some(format!(
                "wrong cluster name {:?} (this node belongs to {cluster:?})",
                self.cluster
            ))
        } else {
            let misaddressed = self.to.filter(|to| *to != me);
            misaddressed.map(|to| format!("this is {me}, not {to}"))
        }
    }
}

/// Which node opened a peer connection, read from the first frame it sent:
/// its hello. For tools that sit on peer links, such as the consistency
/// suite's fault-injecting proxy. `None` when `frame` is not one complete,
/// valid hello.
pub fn connection_origin(frame: &[u8]) -> Option<NodeId> {
    let (header, body) = frame::decode(frame, frame.len()).ok()?;
    if header.kind != FrameKind::Peer || header.frame_len() != frame.len() {
        return None;
    }
    frame::decode_body::<Hello>(FrameKind::Peer, body)
        .ok()
        .map(|hello| hello.from)
}

/// Decodes `body` as each handshake frame the peer port reads before it
/// trusts anyone (hello, terms, and their replies) and runs the checks the
/// node runs on them; for the fuzz targets. Never panics.
pub(crate) fn judge_handshake(body: &[u8]) {
    use super::identity::{Identity, PeerSecurity};
    use crate::frame::decode_body;
    if let Ok(hello) = decode_body::<Hello>(FrameKind::Peer, body) {
        let _ = hello.refusal("fuzz", NodeId::new(1), Protocol::CURRENT);
    }
    if let Ok(terms) = decode_body::<Terms>(FrameKind::Peer, body) {
        let settings = [("window".to_string(), "1".to_string())].into();
        let me = NodeId::new(1);
        if let Ok(identity) = Identity::open("fuzz", me, settings, &PeerSecurity::Insecure, None) {
            let _ = identity.agree(&terms, Some(NodeId::new(2)));
        }
    }
    let _ = decode_body::<HelloReply>(FrameKind::Peer, body);
    let _ = decode_body::<TermsReply>(FrameKind::Peer, body);
}

/// Encodes one peer frame.
pub(crate) fn encode<T: Serialize>(value: &T, max: usize) -> Result<Bytes, NetError> {
    Ok(frame::encode(FrameKind::Peer, value, max)?)
}

/// Writes one frame and flushes.
pub(crate) async fn write_frame<W: AsyncWrite + Unpin>(
    out: &mut W,
    frame: &[u8],
) -> std::io::Result<()> {
    out.write_all(frame).await?;
    out.flush().await
}

/// Writes one handshake frame (at most [`MAX_HELLO`]); the error as text
/// for the refusal or failure it ends in.
pub(crate) async fn send_handshake<W: AsyncWrite + Unpin, T: Serialize>(
    out: &mut W,
    value: &T,
) -> Result<(), String> {
    let frame = encode(value, MAX_HELLO).map_err(|e| e.to_string())?;
    write_frame(out, &frame)
        .await
        .map_err(|e| format!("cannot send the handshake: {e}"))
}

/// Reads frames of one connection, reusing one buffer.
pub(crate) struct FrameReader<R> {
    input: R,
    buf: BytesMut,
    max: usize,
}

/// What reading the next frame gave.
pub(crate) enum ReadError {
    /// The connection ended or failed.
    Io(std::io::Error),
    /// The bytes are not a valid peer frame; the stream cannot be resynchronised.
    Frame(FrameError),
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub(crate) fn new(input: R, max: usize) -> Self {
        FrameReader {
            input,
            buf: BytesMut::with_capacity(HEADER_LEN + 4096),
            max,
        }
    }

    /// Accepts frames of up to `max` bytes from now on (after the
    /// handshake, which is read with [`MAX_HELLO`]).
    pub(crate) fn set_max(&mut self, max: usize) {
        self.max = max;
    }

    /// The stream, positioned just after the last frame read (frames are
    /// read exactly, never ahead).
    pub(crate) fn into_inner(self) -> R {
        self.input
    }

    /// The next frame's body, decoded. The buffer grows with what arrives
    /// ([`GROWTH`] at a time), never to what a header merely claims.
    /// The length of the frame [`FrameReader::next`] read last.
    pub(crate) fn last_frame_len(&self) -> usize {
        self.buf.len()
    }

    pub(crate) async fn next<T: DeserializeOwned>(&mut self) -> Result<T, ReadError> {
        if self.buf.capacity() > KEEP {
            self.buf = BytesMut::with_capacity(HEADER_LEN + 4096);
        }
        self.buf.clear();
        self.buf.resize(HEADER_LEN, 0);
        self.input
            .read_exact(&mut self.buf[..HEADER_LEN])
            .await
            .map_err(ReadError::Io)?;
        let header = frame::peek_header(&self.buf, self.max)
            .map_err(ReadError::Frame)?
            .ok_or_else(|| {
                ReadError::Io(std::io::Error::from(std::io::ErrorKind::UnexpectedEof))
            })?;
        if header.kind != FrameKind::Peer {
            return Err(ReadError::Frame(FrameError::MalformedBody {
                kind: header.kind,
                reason: "not a peer message".to_string(),
            }));
        }
        let len = header.frame_len();
        while self.buf.len() < len {
            let start = self.buf.len();
            self.buf.resize(start + (len - start).min(GROWTH), 0);
            self.input
                .read_exact(&mut self.buf[start..])
                .await
                .map_err(ReadError::Io)?;
        }
        let (_, body) = frame::decode(&self.buf, self.max).map_err(ReadError::Frame)?;
        frame::decode_body(FrameKind::Peer, body).map_err(ReadError::Frame)
    }
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Io(err) => write!(f, "{err}"),
            ReadError::Frame(err) => write!(f, "{err}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(cluster: &str, to: u64) -> Hello {
        Hello {
            protocol: Protocol::CURRENT.get(),
            cluster: cluster.to_string(),
            from: NodeId::new(1),
            to: Some(NodeId::new(to)),
        }
    }

    #[test]
    fn hello_is_refused_for_another_cluster_or_node() {
        let own = Protocol::CURRENT;
        assert_eq!(hello("prod", 2).refusal("prod", NodeId::new(2), own), None);
        let wrong_cluster = hello("staging", 2).refusal("prod", NodeId::new(2), own);
        assert!(wrong_cluster.is_some_and(|r| r.contains("wrong cluster name")));
        let wrong_node = hello("prod", 3).refusal("prod", NodeId::new(2), own);
        assert!(wrong_node.is_some_and(|r| r.contains("not node-3")));
    }

    #[test]
    fn hello_is_refused_two_versions_apart_and_from_before_negotiation() {
        let own = Protocol::CURRENT;
        let at = |protocol| Hello {
            protocol,
            ..hello("prod", 2)
        };
        let newer = at(own.get() + 1).refusal("prod", NodeId::new(2), own);
        assert_eq!(newer, None, "one version apart");
        let far = at(own.get() + 2).refusal("prod", NodeId::new(2), own);
        assert!(far.is_some_and(|r| r.contains("is not supported")));
        let before = at(2).refusal("prod", NodeId::new(2), own);
        assert!(before.is_some_and(|r| r.contains("protocol 2 is not supported")));
    }

    #[tokio::test]
    async fn frames_round_trip_and_corruption_is_refused() {
        let first = encode(
            &Tagged {
                id: 7,
                body: "hi".to_string(),
            },
            1024,
        )
        .expect("encode");
        let mut second = encode(
            &Tagged {
                id: 8,
                body: "yo".to_string(),
            },
            1024,
        )
        .expect("encode")
        .to_vec();
        let last = second.len() - 1;
        second[last] ^= 0xff;
        let stream: Vec<u8> = [first.to_vec(), second].concat();
        let mut reader = FrameReader::new(&stream[..], 1024);
        let got: Tagged<String> = reader.next().await.ok().expect("first frame");
        assert_eq!((got.id, got.body.as_str()), (7, "hi"));
        let bad = reader.next::<Tagged<String>>().await;
        assert!(matches!(
            bad,
            Err(ReadError::Frame(FrameError::ChecksumMismatch { .. }))
        ));
    }
}
