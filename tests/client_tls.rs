//! The TLS client port (Redis's `tls-port`) over real sockets: a client
//! with a certificate of the clients' CA is served, one without is turned
//! away at the handshake, and the plaintext port keeps working.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use certus::NodeId;
use certus::net::CertificateAuthority;
use common::resp::RespCluster;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// A TLS client that trusts the test CA, with `identity` (certificate and
/// key PEM) when given.
fn tls_client(tls_dir: &std::path::Path, identity: Option<(&str, &str)>) -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    let ca = std::fs::read(tls_dir.join("ca.pem")).unwrap();
    for cert in CertificateDer::pem_slice_iter(&ca) {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    match identity {
        Some((cert, key)) => {
            let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
                .map(Result::unwrap)
                .collect();
            let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    }
}

/// Sends `request` over TLS to `addr` (a node's TLS port, its certificate
/// naming `node-1`) and reads `lines` lines of answer, or what arrives
/// before the connection ends.
fn exchange(
    config: rustls::ClientConfig,
    addr: std::net::SocketAddr,
    request: &[u8],
    lines: usize,
) -> std::io::Result<String> {
    let name = ServerName::try_from("node-1").unwrap();
    let connection = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let socket = TcpStream::connect(addr)?;
    socket.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut stream = rustls::StreamOwned::new(connection, socket);
    stream.write_all(request)?;
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    while answer.iter().filter(|b| **b == b'\n').count() < lines {
        match stream.read(&mut byte)? {
            0 => break,
            _ => answer.push(byte[0]),
        }
    }
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

#[test]
fn the_tls_port_serves_certified_clients_and_turns_away_the_rest() {
    let cluster = RespCluster::start_with(1, |config| {
        config.tls_listen = Some("127.0.0.1:0".into());
    });
    let tls_dir = cluster.tls_dir();
    let ca = std::fs::read_to_string(tls_dir.join("ca.pem")).unwrap();
    let key = std::fs::read_to_string(tls_dir.join("ca.key")).unwrap();
    let ca = CertificateAuthority::load("certus-test", &ca, &key).unwrap();
    let client = ca.issue(NodeId::new(100), &[]).unwrap();
    let addr = cluster.client_tls_addr(0);

    let certified = tls_client(&tls_dir, Some((&client.cert_pem, &client.key_pem)));
    let answer = exchange(certified, addr, b"SET k over-tls\r\nGET k\r\n", 3).unwrap();
    assert_eq!(answer, "+OK\r\n$8\r\nover-tls\r\n");

    // No client certificate: the handshake (or the first read) fails and
    // nothing is served.
    let anonymous = tls_client(&tls_dir, None);
    match exchange(anonymous, addr, b"GET k\r\n", 2) {
        Ok(answer) => assert_eq!(answer, "", "served without a certificate"),
        Err(err) => assert!(!err.to_string().is_empty()),
    }

    // A client of another CA is refused too.
    let other = CertificateAuthority::generate("certus-test").unwrap();
    let stranger = other.issue(NodeId::new(100), &[]).unwrap();
    let foreign = tls_client(&tls_dir, Some((&stranger.cert_pem, &stranger.key_pem)));
    match exchange(foreign, addr, b"GET k\r\n", 2) {
        Ok(answer) => assert_eq!(answer, "", "served another CA's client"),
        Err(err) => assert!(!err.to_string().is_empty()),
    }

    // The plaintext port is unchanged.
    let mut con = cluster.client(0);
    let value: String = redis::cmd("GET").arg("k").query(&mut con).unwrap();
    assert_eq!(value, "over-tls");
    cluster.shutdown();
}
