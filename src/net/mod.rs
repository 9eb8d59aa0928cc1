//! Peer transport: request/response between cluster members over TCP (or
//! whatever [`Connector`] and [`Listener`] put underneath).
//!
//! Every message is one [`crate::frame`] of kind [`FrameKind::Peer`]: a
//! versioned header with a crc32 over header and body, so a corrupt or
//! foreign byte stream is refused before anything is decoded. A connection
//! opens with a handshake that names the cluster and both nodes; a node of
//! another cluster, or a connection meant for another node, is refused.
//!
//! [`PeerClient`] keeps one persistent connection to a peer, reconnects with
//! backoff, and pipelines requests over it (many in flight, matched by id).
//! [`serve`] accepts connections and answers each request through a
//! [`Handler`], concurrently and with bounded buffers on both sides.
//!
//! [`FrameKind::Peer`]: crate::frame::FrameKind::Peer

mod client;
mod error;
mod server;
mod transport;
mod wire;

pub(crate) use client::{ClientConfig, PeerClient};
pub use error::NetError;
pub(crate) use server::{Handler, ServerConfig, serve};
pub use transport::{BoxFuture, BoxListener, BoxStream, Connector, Listener, Stream, Tcp};
pub use wire::connection_origin;

#[cfg(test)]
mod tests;
