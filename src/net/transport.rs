//! The byte streams under every connection a node makes or accepts: peer
//! links, Redis-protocol clients and health checks.
//!
//! A node reaches the network only through [`Connector`] (outgoing) and
//! [`Listener`] (incoming). [`Tcp`] and `tokio::net::TcpListener` are the
//! real thing; a simulator puts its own network underneath (the turmoil
//! suite in `tests/simulation` does), and an embedder could put TLS there.
//! Streams are boxed: one indirect call per read or write is nothing next
//! to the system call behind it.

use std::fmt::Debug;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};

/// A connected, ordered, reliable byte stream.
pub trait Stream: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static> Stream for T {}

/// A stream of either kind.
pub type BoxStream = Box<dyn Stream>;

/// A future returned through a transport trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Opens connections to other nodes.
pub trait Connector: Debug + Send + Sync + 'static {
    /// Connects to `addr` (`host:port`).
    fn connect<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, io::Result<BoxStream>>;
}

/// Accepts connections on one bound address.
pub trait Listener: Debug + Send + Sync + 'static {
    /// The next connection and the address it came from.
    fn accept(&self) -> BoxFuture<'_, io::Result<(BoxStream, SocketAddr)>>;

    /// The address this listener is bound to.
    ///
    /// # Errors
    /// When the socket cannot say.
    fn local_addr(&self) -> io::Result<SocketAddr>;
}

/// A listener of either kind.
pub type BoxListener = Box<dyn Listener>;

/// The operating system's TCP, with Nagle's algorithm off (requests and
/// replies are small and latency-bound).
#[derive(Debug, Clone, Copy, Default)]
pub struct Tcp;

impl Tcp {
    /// The connector as the shared handle configurations hold.
    #[must_use]
    pub fn connector() -> Arc<dyn Connector> {
        Arc::new(Tcp)
    }

    /// Binds a TCP listener on `addr`.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub async fn bind(addr: &str) -> io::Result<BoxListener> {
        Ok(Box::new(tokio::net::TcpListener::bind(addr).await?))
    }
}

impl Connector for Tcp {
    fn connect<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, io::Result<BoxStream>> {
        Box::pin(async move {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            Ok(Box::new(stream) as BoxStream)
        })
    }
}

impl Listener for tokio::net::TcpListener {
    fn accept(&self) -> BoxFuture<'_, io::Result<(BoxStream, SocketAddr)>> {
        Box::pin(async move {
            let (stream, from) = tokio::net::TcpListener::accept(self).await?;
            // Best effort: a socket that refuses the option still works.
            let _ = stream.set_nodelay(true);
            Ok((Box::new(stream) as BoxStream, from))
        })
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        tokio::net::TcpListener::local_addr(self)
    }
}
