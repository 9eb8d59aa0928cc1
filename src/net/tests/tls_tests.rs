//! Peer links over mutual TLS, and everyone they turn away.

use std::collections::BTreeMap;

use super::*;
use crate::net::{CertificateAuthority, PeerTls};

fn tls_for(ca: &CertificateAuthority, node: u64) -> PeerTls {
    let issued = ca.issue(NodeId::new(node), &[]).expect("issue");
    let ca_pem = ca.cert_pem().as_bytes();
    PeerTls::from_pem(
        ca_pem,
        issued.cert_pem.as_bytes(),
        issued.key_pem.as_bytes(),
    )
    .expect("tls")
}

fn secure(tls: PeerTls) -> PeerSecurity {
    PeerSecurity::Tls(Arc::new(tls))
}

async fn call_from(identity: Arc<Identity>, to: u64, addr: &str) -> Result<String, NetError> {
    client_as(identity, to, addr)
        .call(&"hello".to_string(), WAIT)
        .await
}

#[tokio::test]
async fn members_of_one_ca_talk_and_the_callee_knows_who_called() {
    let ca = CertificateAuthority::generate("prod").expect("ca");
    let (addr, _stop) = serve_as(identity("prod", 2, &secure(tls_for(&ca, 2)))).await;
    let me = identity("prod", 1, &secure(tls_for(&ca, 1)));
    let answer = call_from(me, 2, &addr).await.expect("call");
    assert_eq!(answer, "node-1 said hello");
}

#[tokio::test]
async fn strangers_are_refused_whatever_they_claim() {
    let ca = CertificateAuthority::generate("prod").expect("ca");
    let (addr, _stop) = serve_as(identity("prod", 2, &secure(tls_for(&ca, 2)))).await;

    // No certificate at all: plaintext after the hello.
    let plain = identity("prod", 1, &PeerSecurity::Insecure);
    let err = call_from(plain, 2, &addr).await.expect_err("plaintext");
    assert!(err.not_sent(), "{err:?}");

    // A certificate from another CA.
    let other = CertificateAuthority::generate("prod").expect("ca");
    let foreign = identity("prod", 1, &secure(tls_for(&other, 1)));
    let err = call_from(foreign, 2, &addr).await.expect_err("other CA");
    assert!(err.to_string().contains("TLS handshake failed"), "{err}");

    // A real certificate, for another node than the one claimed.
    let liar = identity("prod", 1, &secure(tls_for(&ca, 3)));
    let err = call_from(liar, 2, &addr).await.expect_err("wrong node");
    assert!(err.to_string().contains("does not name node-1"), "{err}");
}

#[tokio::test]
async fn a_node_that_is_not_the_one_addressed_cannot_pass_for_it() {
    let ca = CertificateAuthority::generate("prod").expect("ca");
    // Listens as node 2 but holds node 3's certificate.
    let (addr, _stop) = serve_as(identity("prod", 2, &secure(tls_for(&ca, 3)))).await;
    let me = identity("prod", 1, &secure(tls_for(&ca, 1)));
    let err = call_from(me, 2, &addr).await.expect_err("impostor");
    assert!(err.to_string().contains("TLS handshake failed"), "{err}");
}

#[tokio::test]
async fn the_allow_list_keeps_out_valid_certificates_it_does_not_name() {
    let ca = CertificateAuthority::generate("prod").expect("ca");
    let server_tls = tls_for(&ca, 2).allow_only([NodeId::new(1), NodeId::new(2)]);
    let (addr, _stop) = serve_as(identity("prod", 2, &secure(server_tls))).await;
    let allowed = identity("prod", 1, &secure(tls_for(&ca, 1)));
    assert!(call_from(allowed, 2, &addr).await.is_ok());
    let other = identity("prod", 5, &secure(tls_for(&ca, 5)));
    let err = call_from(other, 2, &addr).await.expect_err("not allowed");
    assert!(
        err.to_string().contains("not in the peer allow-list"),
        "{err}"
    );
}

#[tokio::test]
async fn another_cluster_id_or_setting_is_refused_on_both_sides() {
    let settings = |window: &str| BTreeMap::from([("window".to_string(), window.to_string())]);
    let node = |me: u64, window: &str| {
        let identity = Identity::open(
            "prod",
            NodeId::new(me),
            settings(window),
            &PeerSecurity::Insecure,
            None,
        );
        Arc::new(identity.expect("identity"))
    };
    let server = node(2, "100");
    let server_id = server.create().expect("id");
    let (addr, _stop) = serve_as(server.clone()).await;

    let other_cluster = node(1, "100");
    other_cluster.create().expect("id");
    let err = call_from(other_cluster.clone(), 2, &addr)
        .await
        .expect_err("other id");
    assert!(err.to_string().contains("is not this cluster's"), "{err}");

    let other_window = node(1, "200");
    let err = call_from(other_window, 2, &addr)
        .await
        .expect_err("other window");
    assert!(
        err.to_string()
            .contains("setting window differs: \"100\" here, \"200\" on the peer"),
        "{err}"
    );

    // A fresh node is welcomed and adopts the cluster's id.
    let fresh = node(1, "100");
    assert!(call_from(fresh.clone(), 2, &addr).await.is_ok());
    assert_eq!(fresh.cluster_id(), Some(server_id));

    // A fresh accepting node adopts the id of the first member that calls,
    // and from then on refuses any other.
    let fresh_server = node(2, "100");
    let (addr, _stop) = serve_as(fresh_server.clone()).await;
    let adopted = call_from(other_cluster.clone(), 2, &addr).await;
    assert!(adopted.is_ok());
    assert_eq!(fresh_server.cluster_id(), other_cluster.cluster_id());
    let stranger = node(1, "100");
    stranger.create().expect("id");
    assert_ne!(stranger.cluster_id(), Some(server_id));
    let err = call_from(stranger, 2, &addr)
        .await
        .expect_err("the server has another id now");
    assert!(err.to_string().contains("is not this cluster's"), "{err}");
}

/// Writes node `node`'s files from `ca` into `dir` and stamps them with
/// `at`, so a rewrite is seen as a change whatever the clock's grain.
fn write_files(
    dir: &std::path::Path,
    ca: &CertificateAuthority,
    node: u64,
    at: std::time::SystemTime,
) {
    let issued = ca.issue(NodeId::new(node), &[]).expect("issue");
    for (name, text) in [
        ("ca.pem", ca.cert_pem()),
        ("node.pem", issued.cert_pem.as_str()),
        ("node.key", issued.key_pem.as_str()),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write");
        let file = std::fs::File::options()
            .write(true)
            .open(&path)
            .expect("open");
        file.set_modified(at).expect("stamp");
    }
}

#[tokio::test]
async fn rotated_certificates_are_used_from_the_next_connection_without_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let old_ca = CertificateAuthority::generate("prod").expect("ca");
    let new_ca = CertificateAuthority::generate("prod").expect("ca");
    let epoch = std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    write_files(dir.path(), &old_ca, 2, epoch);
    let files = |name: &str| dir.path().join(name);
    let tls = PeerTls::from_files(&files("ca.pem"), &files("node.pem"), &files("node.key"));
    let (addr, _stop) = serve_as(identity("prod", 2, &secure(tls.expect("tls")))).await;
    let old_member = || identity("prod", 1, &secure(tls_for(&old_ca, 1)));
    let new_member = || identity("prod", 1, &secure(tls_for(&new_ca, 1)));
    assert!(call_from(old_member(), 2, &addr).await.is_ok());
    assert!(call_from(new_member(), 2, &addr).await.is_err());

    write_files(dir.path(), &new_ca, 2, epoch + Duration::from_secs(60));
    assert!(call_from(new_member(), 2, &addr).await.is_ok());
    assert!(call_from(old_member(), 2, &addr).await.is_err());

    // A broken rewrite keeps the certificates in force.
    std::fs::write(files("node.key"), "not a key").expect("write");
    let file = std::fs::File::options()
        .write(true)
        .open(files("node.key"))
        .expect("open");
    file.set_modified(epoch + Duration::from_secs(120))
        .expect("stamp");
    assert!(call_from(new_member(), 2, &addr).await.is_ok());
}
