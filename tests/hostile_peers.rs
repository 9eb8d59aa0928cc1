//! A hostile world at the peer port, over real sockets on loopback: what a
//! stranger can make a node read or allocate before the handshake.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod common;

use std::time::Duration;

use common::net::NetCluster;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// This process's resident memory in bytes.
fn resident() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// A peer frame header (magic, version 1, kind Peer, no flags) whose body
/// length claims `len` bytes; the checksum is never reached.
fn header_claiming(len: u32) -> [u8; 16] {
    let mut header = [0u8; 16];
    header[..4].copy_from_slice(b"CERT");
    header[4..6].copy_from_slice(&1u16.to_be_bytes());
    header[6] = 3;
    header[8..12].copy_from_slice(&len.to_be_bytes());
    header
}

/// 200 connections, each sending a header that claims a 256 MiB hello:
/// the node allocates nothing for them (its memory stays within a few MiB
/// of where it was) and closes every one, and the cluster keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_claiming_huge_frames_cost_nothing_and_are_closed() {
    common::bounded(async {
        let cluster = NetCluster::start(1).await;
        let addr = cluster.peer_addr(0);
        let before = resident();
        let mut sockets = Vec::new();
        for _ in 0..200 {
            let mut socket = TcpStream::connect(&addr).await.unwrap();
            socket.write_all(&header_claiming(256 << 20)).await.unwrap();
            sockets.push(socket);
        }
        for socket in &mut sockets {
            let mut byte = [0u8; 1];
            let read = tokio::time::timeout(Duration::from_secs(30), socket.read(&mut byte)).await;
            match read.expect("the node never closed the connection") {
                Ok(0) | Err(_) => {}
                Ok(n) => panic!("the node answered {n} bytes to a bogus hello"),
            }
        }
        let grown = resident().saturating_sub(before);
        assert!(
            grown < 16 << 20,
            "resident memory grew by {} MiB",
            grown >> 20
        );
        let (seqno, ()) =
            common::net::retry_failover(cluster.store(0), |txn| txn.put("after", "the attack"))
                .await;
        cluster.assert_identical(seqno).await;
        cluster.shutdown().await;
    })
    .await;
}
