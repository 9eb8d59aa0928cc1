//! The transport against itself on loopback.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use super::*;
use crate::ids::NodeId;

#[cfg(feature = "certs")]
mod tls_tests;

struct Echo;

impl Handler<String, String> for Echo {
    async fn handle(&self, caller: Caller, req: String) -> String {
        format!("{} said {req}", caller.node)
    }
}

fn identity(cluster: &str, me: u64, security: &PeerSecurity) -> Arc<Identity> {
    let identity = Identity::open(cluster, NodeId::new(me), Default::default(), security, None);
    Arc::new(identity.expect("identity"))
}

async fn server(cluster: &str) -> (String, watch::Sender<bool>) {
    serve_as(identity(cluster, 2, &PeerSecurity::Insecure)).await
}

async fn serve_as(identity: Arc<Identity>) -> (String, watch::Sender<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let (stop, stopped) = watch::channel(false);
    let config = Arc::new(ServerConfig {
        identity,
        max_frame: 1 << 16,
        concurrency: 8,
        handshake_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(60),
        max_connections: 16,
    });
    tokio::spawn(serve(Box::new(listener), config, Arc::new(Echo), stopped));
    (addr, stop)
}

fn client(cluster: &str, addr: &str) -> PeerClient<String, String> {
    client_as(identity(cluster, 1, &PeerSecurity::Insecure), 2, addr)
}

fn client_config(identity: Arc<Identity>, dead_after: Duration) -> Arc<ClientConfig> {
    Arc::new(ClientConfig {
        connector: super::Tcp::connector(),
        identity,
        max_frame: 1 << 16,
        queue: 64,
        connect_timeout: Duration::from_secs(5),
        backoff: (Duration::from_millis(1), Duration::from_millis(10)),
        dead_after,
    })
}

fn client_as(identity: Arc<Identity>, to: u64, addr: &str) -> PeerClient<String, String> {
    let config = client_config(identity, Duration::from_secs(30));
    PeerClient::start(config, Some(NodeId::new(to)), addr.to_string())
}

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn pipelined_requests_get_their_own_answers() {
    let (addr, _stop) = server("prod").await;
    let peer = client("prod", &addr);
    let calls: Vec<_> = (0..50)
        .map(|i| {
            let peer = peer.clone();
            tokio::spawn(async move { peer.call(&format!("m{i}"), WAIT).await })
        })
        .collect();
    for (i, call) in calls.into_iter().enumerate() {
        let answer = call.await.expect("join").expect("call");
        assert_eq!(answer, format!("node-1 said m{i}"));
    }
}

#[tokio::test]
async fn a_node_of_another_cluster_is_refused() {
    let (addr, _stop) = server("prod").await;
    let peer = client("staging", &addr);
    let err = peer
        .call(&"hello".to_string(), WAIT)
        .await
        .expect_err("must be refused");
    assert!(err.not_sent(), "{err:?}");
    assert!(err.to_string().contains("wrong cluster name"), "{err}");
}

#[tokio::test]
async fn an_unreachable_peer_fails_fast_without_sending() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    drop(listener);
    let peer = client("prod", &addr);
    let err = peer
        .call(&"hello".to_string(), WAIT)
        .await
        .expect_err("nobody listens");
    assert!(matches!(err, NetError::Unreachable { .. }), "{err:?}");
}

#[test]
fn connection_origin_reads_the_hello_and_nothing_else() {
    let hello = wire::Hello {
        protocol: crate::protocol::Protocol::CURRENT.get(),
        cluster: "c".into(),
        from: NodeId::new(7),
        to: Some(NodeId::new(2)),
    };
    let frame = wire::encode(&hello, 1 << 16).expect("encode");
    assert_eq!(connection_origin(&frame), Some(NodeId::new(7)));
    // A truncated hello, a reply, and bytes that are no frame at all.
    assert_eq!(connection_origin(&frame[..frame.len() - 1]), None);
    let reply = wire::encode(&wire::HelloReply::Welcome, 1 << 16).expect("encode");
    assert_eq!(connection_origin(&reply), None);
    assert_eq!(connection_origin(b"GET / HTTP/1.0\r\n\r\n"), None);
}

/// Accepts connections and completes the handshake, then swallows every
/// request without a word: a peer that vanished while the link stayed up.
/// Sends each accepted connection's number on `accepted`.
async fn black_hole(accepted: tokio::sync::mpsc::UnboundedSender<usize>) -> String {
    use tokio::io::AsyncReadExt;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    tokio::spawn(async move {
        for n in 1.. {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let _ = accepted.send(n);
            tokio::spawn(async move {
                let welcome = wire::encode(&wire::HelloReply::Welcome, 1 << 16).expect("encode");
                let terms = wire::Terms {
                    cluster_id: None,
                    settings: Default::default(),
                    protocol: crate::protocol::Protocol::CURRENT.get(),
                };
                let agreed = wire::encode(&wire::TermsReply::Agreed(terms), 1 << 16);
                let _ = wire::write_frame(&mut stream, &welcome).await;
                let _ = wire::write_frame(&mut stream, &agreed.expect("encode")).await;
                let mut sink = [0u8; 4096];
                while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_silent_connection_is_replaced() {
    let (tx, mut accepted) = tokio::sync::mpsc::unbounded_channel();
    let addr = black_hole(tx).await;
    let me = identity("prod", 1, &PeerSecurity::Insecure);
    let config = client_config(me, Duration::from_millis(100));
    let peer: PeerClient<String, String> = PeerClient::start(config, Some(NodeId::new(2)), addr);
    let mut connections = 0;
    // Each call times out unanswered; once one has waited `dead_after`, the
    // next is written on a new connection. Bounded: 200 calls of 20 ms.
    for _ in 0..200 {
        let err = peer
            .call(&"ping".to_string(), Duration::from_millis(20))
            .await
            .expect_err("nobody answers");
        assert!(matches!(err, NetError::Timeout { .. }), "{err:?}");
        while let Ok(n) = accepted.try_recv() {
            connections = n;
        }
        if connections >= 2 {
            break;
        }
    }
    assert_eq!(connections, 2, "the silent connection was never replaced");
}
