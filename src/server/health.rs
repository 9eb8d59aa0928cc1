//! The HTTP health check for load balancers (what Galera's `clustercheck`
//! does for HAProxy): `200 OK` when the node is synced and in the primary
//! component, `503 Service Unavailable` otherwise.
//!
//! Any request on any path gets the answer (HAProxy's `option httpchk`
//! sends `OPTIONS /`), except `GET /metrics`, which gets the Prometheus
//! metrics ([`super::metrics`]). So this is a few lines over TCP rather than
//! an HTTP framework: it reads at most one request head, bounded in size and
//! time, for at most 64 connections at once.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use super::info::state_comment;
use super::metrics::{self, Metrics};
use crate::kv::KvStore;
use crate::net::{BoxListener, BoxStream};
use crate::node::{NodeState, Status};

/// Bytes of request head read at most.
const MAX_HEAD: usize = 8 << 10;
/// How long a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Checks answered at once; more connections are closed at once (a load
/// balancer holds one or two).
const MAX_CHECKS: usize = 64;

/// Whether the node should receive traffic, and the body that says why.
pub(crate) fn verdict(status: Option<&Status>) -> (bool, String) {
    let Some(status) = status else {
        return (
            false,
            "out of service: a full state transfer or a restart replaces its store\n".to_string(),
        );
    };
    let primary = status.view.as_ref().is_some_and(|v| v.primary);
    // A donor keeps serving clients (the transfer reads a snapshot).
    let healthy = matches!(status.state, NodeState::Synced | NodeState::Donor) && primary;
    let body = format!(
        "node {} is {} ({}), last applied {}\n",
        status.node_id.get(),
        state_comment(status.state),
        if primary { "primary" } else { "not primary" },
        status.last_visible.get()
    );
    (healthy, body)
}

/// Answers health checks until `shutdown` turns true.
pub(crate) async fn accept_loop(
    listener: BoxListener,
    stores: watch::Receiver<Option<KvStore>>,
    metrics: std::sync::Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CHECKS));
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, from)) => {
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    tracing::warn!(%from, "refusing a health check: {MAX_CHECKS} already open");
                    continue;
                };
                let status = stores.borrow().as_ref().map(|s| s.node().status());
                let metrics = metrics.clone();
                tokio::spawn(async move {
                    let _ = answer(stream, status, &metrics).await;
                    drop(slot);
                });
            }
            Err(err) => {
                tracing::warn!(error = %err, "accepting a health check failed");
                tokio::task::yield_now().await;
            }
        }
    }
}

async fn answer(
    mut stream: BoxStream,
    status: Option<Status>,
    metrics: &Metrics,
) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let read_head = async {
        let mut chunk = [0_u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&chunk[..n]);
        }
        Ok::<_, std::io::Error>(())
    };
    // A client that sends nothing still gets its answer after the timeout.
    let _ = tokio::time::timeout(READ_TIMEOUT, read_head).await;
    let (line, content_type, body) = if head.starts_with(b"GET /metrics ") {
        ("200 OK", metrics::CONTENT_TYPE, metrics.render())
    } else {
        let (healthy, body) = verdict(status.as_ref());
        let line = if healthy {
            "200 OK"
        } else {
            "503 Service Unavailable"
        };
        (line, "text/plain", body)
    };
    let response = format!(
        "HTTP/1.1 {line}\r\nContent-Type: {content_type}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}
