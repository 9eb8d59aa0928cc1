//! A hostile world at the peer port of a real three-node cluster (TLS on
//! loopback): forged raft, membership, flow-control, forwarding and
//! state-transfer requests, from a node the CA certified but that is no
//! member, from a member speaking for another node, and from a member of
//! another cluster. Each is refused and changes nothing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use openraft::raft::{AppendEntriesRequest, VoteRequest};
use tokio::net::TcpListener;

use super::messages::{Forwarded, PeerRequest, PeerResponse};
use super::types::{SnapshotMeta, Vote};
use super::{RaftOrder, RaftOrderConfig};
use crate::ids::NodeId;
use crate::net::{
    CertificateAuthority, ClientConfig, Identity, NetError, PeerClient, PeerSecurity, PeerTls, Tcp,
};
use crate::order::{Cluster, TotalOrder};

const WAIT: Duration = Duration::from_secs(20);

/// The clusters' entry size limit: small, so a test can exceed it.
const MAX_ENTRY: usize = 1 << 20;

fn security(ca: &CertificateAuthority, node: u64) -> PeerSecurity {
    let issued = ca.issue(NodeId::new(node), &[]).expect("issue");
    let tls = PeerTls::from_pem(
        ca.cert_pem().as_bytes(),
        issued.cert_pem.as_bytes(),
        issued.key_pem.as_bytes(),
    );
    PeerSecurity::Tls(Arc::new(tls.expect("tls")))
}

struct Cluster3 {
    _dir: tempfile::TempDir,
    orders: Vec<RaftOrder>,
    addrs: Vec<String>,
}

/// Starts `ids` as one new cluster certified by `ca`, and waits for a
/// leader every node knows.
async fn start(ca: &CertificateAuthority, ids: &[u64]) -> Cluster3 {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut listeners = Vec::new();
    for _ in ids {
        listeners.push(TcpListener::bind("127.0.0.1:0").await.expect("bind"));
    }
    let addrs: Vec<String> = listeners
        .iter()
        .map(|l| l.local_addr().expect("addr").to_string())
        .collect();
    let members: BTreeMap<NodeId, String> = ids
        .iter()
        .map(|id| NodeId::new(*id))
        .zip(addrs.iter().cloned())
        .collect();
    let mut orders = Vec::new();
    for ((id, addr), listener) in ids.iter().zip(&addrs).zip(listeners) {
        let node = NodeId::new(*id);
        let mut config =
            RaftOrderConfig::new(node, "hostile", addr, dir.path().join(node.to_string()));
        config.initial_members = members.clone();
        config.heartbeat = Duration::from_millis(50);
        config.election_timeout = (Duration::from_millis(300), Duration::from_millis(600));
        config.security = Some(security(ca, *id));
        config.max_entry_bytes = MAX_ENTRY;
        let order = RaftOrder::start(config, Box::new(listener), Tcp::connector());
        orders.push(order.await.expect("start"));
    }
    for order in &orders {
        let wait = order.raft().wait(Some(WAIT));
        let known = wait.metrics(|m| m.current_leader.is_some(), "a leader");
        known.await.expect("no leader");
        assert!(order.wait_primary(WAIT).await, "never primary");
    }
    Cluster3 {
        _dir: dir,
        orders,
        addrs,
    }
}

impl Cluster3 {
    fn leader(&self) -> (usize, u64) {
        let leader = self.orders[0].leader().expect("leader").get();
        let index = self
            .orders
            .iter()
            .position(|o| o.node_id().get() == leader)
            .expect("leader is a member");
        (index, leader)
    }

    async fn shutdown(self) {
        for order in &self.orders {
            order.shutdown().await;
        }
    }
}

/// A client speaking as `me` (with `security`) to node `to` at `addr`.
fn attacker(
    me: u64,
    security: &PeerSecurity,
    to: u64,
    addr: &str,
) -> PeerClient<PeerRequest, PeerResponse> {
    let identity = Identity::open(
        "hostile",
        NodeId::new(me),
        default_settings(),
        security,
        None,
    );
    client_of(identity.expect("identity"), to, addr)
}

/// A client with `identity` to node `to` at `addr`.
fn client_of(identity: Identity, to: u64, addr: &str) -> PeerClient<PeerRequest, PeerResponse> {
    let config = ClientConfig {
        connector: Tcp::connector(),
        identity: Arc::new(identity),
        max_frame: MAX_ENTRY * 4,
        queue: 16,
        connect_timeout: WAIT,
        backoff: (Duration::from_millis(1), Duration::from_millis(10)),
        dead_after: WAIT,
    };
    PeerClient::start(Arc::new(config), Some(NodeId::new(to)), addr.to_string())
}

/// The settings the clusters' nodes share.
fn default_settings() -> BTreeMap<String, String> {
    let mut config = RaftOrderConfig::new(NodeId::new(1), "hostile", "", "".into());
    config.max_entry_bytes = MAX_ENTRY;
    config.settings()
}

/// Every request an attacker might forge, speaking for `victim`.
fn forgeries(victim: u64) -> Vec<PeerRequest> {
    let vote = Vote::new(1_000, victim);
    let leader = Vote::new_committed(1_000, victim);
    vec![
        PeerRequest::Append(AppendEntriesRequest {
            vote: leader,
            prev_log_id: None,
            entries: Vec::new(),
            leader_commit: None,
        }),
        PeerRequest::Vote(VoteRequest::new(vote, None)),
        PeerRequest::PreVote(VoteRequest::new(vote, None)),
        PeerRequest::Snapshot {
            vote: leader,
            meta: SnapshotMeta::default(),
        },
        PeerRequest::Leave { node: victim },
        PeerRequest::Join {
            node: victim,
            addr: "127.0.0.1:1".into(),
        },
    ]
}

/// What only members may ask.
fn member_requests() -> Vec<PeerRequest> {
    vec![
        PeerRequest::Forward(vec![Bytes::from_static(b"not a write-set")]),
        PeerRequest::ReadIndex,
        PeerRequest::FlowControl { pause: true },
        PeerRequest::Service(Bytes::from_static(b"begin a state transfer")),
    ]
}

async fn assert_refused(client: &PeerClient<PeerRequest, PeerResponse>, request: &PeerRequest) {
    match client.call(request, WAIT).await {
        Ok(PeerResponse::Refused(_)) => {}
        other => panic!("{request:?} was not refused: {other:?}"),
    }
}

/// Nothing changed: three voters, admission open, and a write commits.
async fn assert_unharmed(cluster: &Cluster3) {
    let members = cluster.orders[0].members();
    assert_eq!(members.len(), 3, "{members:?}");
    assert!(members.iter().all(|m| m.voter), "{members:?}");
    let (leader, _) = cluster.leader();
    let flow = cluster.orders[leader].flow_control();
    assert!(!flow.active, "{flow:?}");
    let submitted = cluster.orders[0].submit(Bytes::from_static(b"still writable"));
    submitted.await.expect("the cluster still orders");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certified_stranger_can_neither_speak_for_members_nor_use_the_cluster() {
    let ca = CertificateAuthority::generate("hostile").expect("ca");
    let cluster = start(&ca, &[1, 2, 3]).await;
    let (leader, leader_id) = cluster.leader();
    let victim = if leader_id == 1 { 2 } else { 1 };
    let stranger = attacker(9, &security(&ca, 9), leader_id, &cluster.addrs[leader]);
    for request in forgeries(victim).iter().chain(&member_requests()) {
        assert_refused(&stranger, request).await;
    }
    assert_unharmed(&cluster).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_cannot_speak_for_another_member() {
    let ca = CertificateAuthority::generate("hostile").expect("ca");
    let cluster = start(&ca, &[1, 2, 3]).await;
    let (leader, leader_id) = cluster.leader();
    let member = (1..=3).find(|id| *id != leader_id).expect("a follower");
    let victim = (1..=3)
        .find(|id| *id != leader_id && *id != member)
        .expect("another");
    let client = attacker(
        member,
        &security(&ca, member),
        leader_id,
        &cluster.addrs[leader],
    );
    // Raft messages for another node; joins and leaves are passed on by
    // voters, so a voter's are not forgeries.
    for request in forgeries(victim).iter().take(4) {
        assert_refused(&client, request).await;
    }
    // Its own leader messages with an uncommitted vote, which would trip
    // openraft's assertions.
    let uncommitted = PeerRequest::Append(AppendEntriesRequest {
        vote: Vote::new(1_000, member),
        prev_log_id: None,
        entries: Vec::new(),
        leader_commit: None,
    });
    assert_refused(&client, &uncommitted).await;
    // Claiming the victim's id outright fails the handshake.
    let liar = attacker(
        victim,
        &security(&ca, member),
        leader_id,
        &cluster.addrs[leader],
    );
    let err = liar
        .call(&PeerRequest::ReadIndex, WAIT)
        .await
        .expect_err("liar");
    assert!(matches!(err, NetError::Refused { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains(&format!("does not name node-{victim}")),
        "{err}"
    );
    assert_unharmed(&cluster).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_without_the_ca_or_of_another_cluster_are_refused_at_the_door() {
    let ca = CertificateAuthority::generate("hostile").expect("ca");
    let cluster = start(&ca, &[1, 2, 3]).await;
    let (leader, leader_id) = cluster.leader();
    let addr = &cluster.addrs[leader];

    let other_ca = CertificateAuthority::generate("hostile").expect("ca");
    let foreign = attacker(9, &security(&other_ca, 9), leader_id, addr);
    let err = foreign
        .call(&PeerRequest::ReadIndex, WAIT)
        .await
        .expect_err("other CA");
    assert!(err.to_string().contains("TLS handshake failed"), "{err}");

    let plaintext = attacker(9, &PeerSecurity::Insecure, leader_id, addr);
    let err = plaintext
        .call(&PeerRequest::ReadIndex, WAIT)
        .await
        .expect_err("plaintext");
    assert!(err.not_sent(), "{err:?}");

    // A node of another cluster made with the same CA: a valid certificate
    // for a member's id, and its own cluster's id.
    let outsider = Identity::open(
        "hostile",
        NodeId::new(1),
        default_settings(),
        &security(&ca, 1),
        None,
    )
    .expect("identity");
    outsider.create().expect("id");
    let client = client_of(outsider, leader_id, addr);
    let err = client
        .call(&PeerRequest::ReadIndex, WAIT)
        .await
        .expect_err("other cluster");
    assert!(err.to_string().contains("is not this cluster's"), "{err}");

    assert_unharmed(&cluster).await;
    cluster.shutdown().await;
}

/// A three-node cluster whose leader a follower forwarded `frames` to:
/// the cluster, and the leader's answer for each frame.
async fn forwarded_by_a_follower(frames: Vec<Bytes>) -> (Cluster3, Vec<Forwarded>) {
    let ca = CertificateAuthority::generate("hostile").expect("ca");
    let cluster = start(&ca, &[1, 2, 3]).await;
    let (leader, leader_id) = cluster.leader();
    let member = (1..=3).find(|id| *id != leader_id).expect("a follower");
    let client = attacker(
        member,
        &security(&ca, member),
        leader_id,
        &cluster.addrs[leader],
    );
    let answer = client
        .call(&PeerRequest::Forward(frames), WAIT)
        .await
        .expect("answered");
    let PeerResponse::Forward(results) = answer else {
        panic!("not a forward answer: {answer:?}");
    };
    (cluster, results)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_forwarded_entry_is_refused_and_the_leader_lives_on() {
    let huge = Bytes::from(vec![7u8; MAX_ENTRY + 1]);
    // Exactly at the limit: ordered (its log record is a little larger).
    let small = Bytes::from(vec![7u8; MAX_ENTRY]);
    let (cluster, results) = forwarded_by_a_follower(vec![huge, small]).await;
    assert_eq!(
        results[0],
        Forwarded::TooLarge {
            len: MAX_ENTRY + 1,
            max: MAX_ENTRY
        }
    );
    assert_eq!(results[1], Forwarded::Ordered);
    assert_unharmed(&cluster).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_protocol_change_is_refused() {
    let to = crate::protocol::Protocol::new(crate::protocol::Protocol::CURRENT.get() + 1);
    let change =
        crate::frame::encode(crate::frame::FrameKind::ClusterProtocol, &to, 64).expect("encode");
    let (cluster, results) = forwarded_by_a_follower(vec![change]).await;
    let [Forwarded::Failed(err)] = &results[..] else {
        panic!("ordered: {results:?}");
    };
    assert!(
        err.to_string().contains("the ordering layer's own"),
        "{err}"
    );
    assert_unharmed(&cluster).await;
    cluster.shutdown().await;
}

/// Write-sets near the entry limit submitted at once on a follower are all
/// ordered: the forwarder's batches fit a peer frame (the batching rule is
/// tested in `forwarder::tests`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_submissions_on_a_follower_are_forwarded_in_batches_that_fit() {
    let ca = CertificateAuthority::generate("hostile").expect("ca");
    let cluster = start(&ca, &[1, 2, 3]).await;
    let (_, leader_id) = cluster.leader();
    let follower = cluster
        .orders
        .iter()
        .find(|o| o.node_id().get() != leader_id)
        .expect("a follower");
    let submissions = (0..8u8).map(|i| follower.submit(Bytes::from(vec![i; MAX_ENTRY - 64])));
    let results = futures_util::future::join_all(submissions).await;
    for result in results {
        result.expect("ordered");
    }
    cluster.shutdown().await;
}

/// A node whose log failed a write or fsync stops its ordering core for
/// good: it says why, its subscription ends with that cause (so its node
/// fails), and the other two keep ordering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_log_fails_stops_and_the_others_go_on() {
    let ca = CertificateAuthority::generate("hostile").expect("ca");
    let cluster = start(&ca, &[1, 2, 3]).await;
    let (leader, _) = cluster.leader();
    let sick = (leader + 1) % 3;
    let mut events = cluster.orders[sick]
        .subscribe(crate::ids::Seqno::ZERO)
        .expect("subscribe");
    let injected = std::io::Error::other("fsync: Input/output error (injected)");
    cluster.orders[sick].log().inject_fault(&injected);
    let cause = tokio::time::timeout(WAIT, cluster.orders[sick].failed())
        .await
        .expect("the ordering core never stopped");
    assert!(cause.to_string().contains("injected"), "{cause}");
    assert_eq!(cluster.orders[sick].failure(), Some(cause.clone()));
    let ended = tokio::time::timeout(WAIT, async {
        loop {
            if let Err(err) = events.next().await {
                return err;
            }
        }
    });
    let err = ended.await.expect("the subscription never ended");
    assert_eq!(err, crate::order::OrderError::Stopped(cause));
    let frame = Bytes::from_static(b"after");
    tokio::time::timeout(WAIT, cluster.orders[leader].submit(frame))
        .await
        .expect("the others stopped ordering")
        .expect("submit");
    cluster.shutdown().await;
}

/// Incarnation numbers never repeat, even when the clock steps back: the
/// layer keeps the last one it gave in its log directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incarnations_rise_even_when_the_clock_steps_back() {
    let ca = CertificateAuthority::generate("hostile").expect("ca");
    let cluster = start(&ca, &[1]).await;
    let order = &cluster.orders[0];
    assert_eq!(order.next_epoch(5_000).expect("epoch"), 5_000);
    assert_eq!(order.next_epoch(7_000).expect("epoch"), 7_000);
    // The clock went back an hour.
    assert_eq!(order.next_epoch(10).expect("epoch"), 7_001);
    assert_eq!(order.next_epoch(10).expect("epoch"), 7_002);
    cluster.shutdown().await;
}
