//! Peer transport: request/response between cluster members over TCP (or
//! whatever [`Connector`] and [`Listener`] put underneath).
//!
//! Every message is one [`crate::frame`] of kind [`FrameKind::Peer`]: a
//! versioned header with a crc32 over header and body, so a corrupt or
//! foreign byte stream is refused before anything is decoded. A connection
//! opens with a plaintext hello that names the cluster and both nodes (a
//! node of another cluster, or a connection meant for another node, is
//! refused), then mutual TLS ([`PeerTls`]) proving both nodes' ids, then
//! the terms: the cluster id, the settings every member shares
//! ([`identity`]) and each side's protocol version ([`crate::protocol`]).
//!
//! [`PeerClient`] keeps one persistent connection to a peer, reconnects with
//! backoff, and pipelines requests over it (many in flight, matched by id).
//! [`serve`] accepts connections and answers each request through a
//! [`Handler`], concurrently and with bounded buffers on both sides.
//!
//! [`FrameKind::Peer`]: crate::frame::FrameKind::Peer

#[cfg(feature = "certs")]
mod certs;
mod client;
mod error;
mod identity;
mod protocol_book;
mod server;
mod tls;
mod transport;
mod wire;

#[cfg(feature = "certs")]
pub use certs::{CertError, CertificateAuthority, NodeCertificate};
pub use client::PeerTraffic;
pub(crate) use client::{ClientConfig, PeerClient};
pub use error::NetError;
pub(crate) use identity::Identity;
pub use identity::{ClusterId, PeerSecurity};
pub(crate) use protocol_book::ProtocolBook;
pub(crate) use server::{Caller, Handler, ServerConfig, serve};

#[cfg(feature = "server")]
pub(crate) use tls::{Files, Reloading, chain_and_key, provider, roots};
pub use tls::{PeerTls, TlsError, node_name, verify_node_certificate};
pub use transport::{BoxFuture, BoxListener, BoxStream, Connector, Listener, Stream, Tcp};
pub use wire::connection_origin;
pub(crate) use wire::{Tagged, judge_handshake};

#[cfg(test)]
mod tests;
