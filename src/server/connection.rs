//! Serving RESP clients: the accept loop and one task per connection.
//!
//! Commands are decoded from whatever bytes arrived and answered in order;
//! replies to pipelined commands are written together. Everything is
//! bounded: connections by `max_clients` (every client port together),
//! one request by the codec's [`Limits`] (much smaller until the client
//! authenticates) and `max_request_bytes`. A malformed request is answered with
//! an error and the connection is closed, as Redis does: the stream can no
//! longer be split into commands.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Semaphore, watch};

use super::pubsub::Mailbox;
use super::resp::{self, Limits, Reply};
use super::session::{After, Session, SessionSettings};
use super::tls::ClientTls;
use crate::kv::KvStore;
use crate::net::{BoxListener, BoxStream};

/// Settings of the RESP listeners.
#[derive(Clone, Debug)]
pub(crate) struct RespSettings {
    pub(crate) limits: Limits,
    /// Bytes buffered for one request before the connection is refused.
    pub(crate) max_request_bytes: usize,
    /// Connections open at once on every client port together
    /// (`max_clients`).
    pub(crate) slots: Arc<Semaphore>,
    pub(crate) session: Arc<SessionSettings>,
    /// Bytes of pub/sub messages one subscriber may fall behind by before
    /// it is disconnected (Redis's `client-output-buffer-limit pubsub`).
    pub(crate) max_pubsub_bytes: usize,
}

/// How long a client has to complete the TLS handshake.
const TLS_HANDSHAKE: Duration = Duration::from_secs(10);

/// Accepts clients until `shutdown` turns true; over TLS with `tls`.
pub(crate) async fn accept_loop(
    listener: BoxListener,
    store: watch::Receiver<Option<KvStore>>,
    settings: Arc<RespSettings>,
    mut shutdown: watch::Receiver<bool>,
    tls: Option<Arc<ClientTls>>,
) {
    let slots = settings.slots.clone();
    let laddr = listener.local_addr().ok();
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => return,
            accepted = listener.accept() => accepted,
        };
        let (mut stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of descriptors and the like: the listener stays usable.
                tracing::warn!(error = %err, "accepting a client failed");
                tokio::task::yield_now().await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            settings
                .session
                .clients
                .rejected_connections
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tokio::spawn(async move {
                let mut out = BytesMut::new();
                Reply::err("max number of clients reached").encode(&mut out);
                let _ = stream.write_all(&out).await;
            });
            continue;
        };
        let (store, settings) = (store.clone(), settings.clone());
        let (shutdown, tls) = (shutdown.clone(), tls.clone());
        tokio::spawn(async move {
            let stream = match tls {
                Some(tls) => match secure(stream, &tls).await {
                    Ok(stream) => stream,
                    Err(err) => {
                        tracing::debug!(%peer, error = %err, "client TLS handshake failed");
                        return;
                    }
                },
                None => stream,
            };
            let session = Session::new(store, settings.session.clone(), Some(peer), laddr);
            if let Err(err) = serve(stream, session, &settings, shutdown).await {
                tracing::debug!(%peer, error = %err, "client connection ended");
            }
            drop(slot);
        });
    }
}

/// The TLS handshake with a client, bounded in time.
async fn secure(stream: BoxStream, tls: &ClientTls) -> std::io::Result<BoxStream> {
    let handshake = tokio::time::timeout(TLS_HANDSHAKE, tls.acceptor().accept(stream));
    match handshake.await {
        Ok(Ok(stream)) => Ok(Box::new(stream)),
        Ok(Err(err)) => Err(err),
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
    }
}

/// Serves one client until it leaves, errs, or the server stops.
async fn serve(
    mut stream: BoxStream,
    mut session: Session,
    settings: &RespSettings,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let mut input = BytesMut::with_capacity(16 << 10);
    let mut output = BytesMut::with_capacity(16 << 10);
    let (hangup, hangup_seen) = watch::channel(false);
    session.set_hangup(hangup_seen);
    let (mailbox, mut messages) = Mailbox::new(session.id(), settings.max_pubsub_bytes);
    session.set_mailbox(mailbox);
    // Bytes that arrived while the last commands were answered.
    let mut arrived = false;
    loop {
        if !arrived {
            let message = tokio::select! {
                biased;
                _ = shutdown.wait_for(|stop| *stop) => return Ok(()),
                message = messages.next() => Some(message),
                read = stream.read_buf(&mut input) => match read? {
                    0 => return Ok(()),
                    _ => None,
                },
            };
            if let Some(message) = message {
                // None: the client fell too far behind its messages.
                let Some(message) = message else {
                    return Ok(());
                };
                stream.write_all(&message).await?;
                continue;
            }
        }
        // While the session answers (a blocking pop may wait long), the
        // connection keeps reading: what arrives waits its turn, and a
        // hang-up ends a blocked wait.
        let mut later = BytesMut::new();
        let after = {
            let answer = answer_all(&mut input, &mut output, &mut session, settings);
            tokio::pin!(answer);
            loop {
                let room = !*hangup.borrow() && later.len() < settings.max_request_bytes;
                tokio::select! {
                    after = &mut answer => break after,
                    read = stream.read_buf(&mut later), if room => {
                        if !matches!(read, Ok(n) if n > 0) {
                            hangup.send_replace(true);
                        }
                    }
                }
            }
        };
        arrived = !later.is_empty();
        input.extend_from_slice(&later);
        let written = stream.write_all(&output).await;
        output.clear();
        if *hangup.borrow() {
            return Ok(());
        }
        written?;
        match after {
            After::Continue => {}
            After::Close => return Ok(()),
            After::Backup => {
                if let Some(store) = session.current_store()
                    && let Err(err) = super::backup::serve(store, &mut stream).await
                {
                    tracing::warn!(error = %err, "a backup stream failed");
                }
                return Ok(());
            }
        }
    }
}

/// Answers every complete command in `input`, appending replies to
/// `output`: the commands that arrived together are handed to the session
/// together (up to `max_request_bytes` at a time), so it can run a
/// pipeline's writes as one operation.
async fn answer_all(
    input: &mut BytesMut,
    output: &mut BytesMut,
    session: &mut Session,
    settings: &RespSettings,
) -> After {
    loop {
        let mut commands = Vec::new();
        let mut bytes = 0;
        // Until it authenticates, a client may send only small commands,
        // and one at a time: AUTH decides how the next is read.
        let guest = !session.authenticated();
        let limits = if guest {
            Limits::unauthenticated()
        } else {
            settings.limits
        };
        let (ending, more) = loop {
            let before = input.len();
            match resp::decode(input, &limits) {
                Ok(Some(command)) if command.is_empty() => {}
                Ok(Some(command)) => {
                    commands.push(command);
                    bytes += before - input.len();
                    if guest || bytes >= settings.max_request_bytes {
                        break (None, true);
                    }
                }
                Ok(None) if input.len() > settings.max_request_bytes => {
                    break (Some(Reply::err("Protocol error: request too large")), false);
                }
                Ok(None) => break (None, false),
                Err(err) => break (Some(Reply::Error(format!("ERR {err}"))), false),
            }
        };
        match session.handle_all(commands, output).await {
            After::Continue => {}
            stop => return stop,
        }
        if let Some(reply) = ending {
            reply.encode_as(output, session.protocol());
            return After::Close;
        }
        if !more {
            return After::Continue;
        }
    }
}
