//! The fault-injecting network: one TCP proxy in front of every node's peer
//! port, and a partition table they all consult.
//!
//! Every node advertises its proxy's address, so all replication traffic
//! crosses a proxy. The proxy learns which node opened a connection from its
//! first frame (`certus::net::connection_origin`), so it knows both ends of
//! every link. A cut link is silent, as a real partition is: bytes already
//! read wait in the proxy and nothing more is forwarded, so the nodes see
//! timeouts, not resets. When the partition heals, held bytes flow again
//! (late delivery). A connection opened across a cut is held unanswered
//! and closed at the heal.

use std::collections::{BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

use certus::frame::{self, HEADER_LEN};

/// How often a held link looks at the partition table again.
const HOLD_POLL: Duration = Duration::from_millis(20);
/// The largest hello accepted.
const MAX_HELLO: usize = 4096;

/// The partition table: unordered node pairs that cannot talk.
#[derive(Default)]
pub(crate) struct Net {
    cut: Mutex<BTreeSet<(u64, u64)>>,
    stopped: AtomicBool,
}

impl Net {
    /// Cuts every link between `a` and `b` (both directions).
    pub(crate) fn cut(&self, a: u64, b: u64) {
        self.lock().insert(pair(a, b));
    }

    /// Restores every link.
    pub(crate) fn heal(&self) {
        self.lock().clear();
    }

    /// The cut pairs, for the log.
    pub(crate) fn describe(&self) -> String {
        let cut = self.lock();
        let pairs: Vec<String> = cut.iter().map(|(a, b)| format!("{a}-x-{b}")).collect();
        pairs.join(" ")
    }

    fn is_cut(&self, a: u64, b: u64) -> bool {
        self.lock().contains(&pair(a, b))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<(u64, u64)>> {
        self.cut.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Ends every proxy thread at its next look at the table.
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
    }

    fn stopped(&self) -> bool {
        self.stopped.load(Ordering::Relaxed)
    }
}

fn pair(a: u64, b: u64) -> (u64, u64) {
    (a.min(b), a.max(b))
}

/// A proxy for node `to`'s peer port.
pub(crate) struct Proxy {
    addr: SocketAddr,
}

impl Proxy {
    /// Listens on `listener` and forwards to `upstream` (node `to`'s real
    /// peer port) under `net`'s partition table.
    pub(crate) fn start(
        listener: TcpListener,
        to: u64,
        upstream: SocketAddr,
        net: Arc<Net>,
    ) -> Proxy {
        let addr = listener.local_addr().expect("proxy address");
        thread::spawn(move || {
            for conn in listener.incoming() {
                if net.stopped() {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let net = net.clone();
                thread::spawn(move || link(conn, to, upstream, &net));
            }
        });
        Proxy { addr }
    }

    /// The address peers reach this node at.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// One connection from some node to node `to`.
fn link(mut client: TcpStream, to: u64, upstream: SocketAddr, net: &Arc<Net>) {
    let Some((from, hello)) = read_hello(&mut client) else {
        return;
    };
    // Opened across a cut: hold it unanswered until the heal, then close.
    while net.is_cut(from, to) && !net.stopped() {
        thread::sleep(HOLD_POLL);
    }
    if net.stopped() {
        return;
    }
    let Ok(mut server) = TcpStream::connect_timeout(&upstream, Duration::from_secs(2)) else {
        return;
    };
    if server.write_all(&hello).is_err() {
        return;
    }
    let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let net2 = net.clone();
    let back = thread::spawn(move || pump(server2, client2, from, to, &net2));
    pump(client, server, from, to, net);
    let _ = back.join();
}

/// Reads the connecting node's hello: its id and the frame's bytes.
fn read_hello(client: &mut TcpStream) -> Option<(u64, Vec<u8>)> {
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut frame = vec![0; HEADER_LEN];
    client.read_exact(&mut frame).ok()?;
    let header = frame::peek_header(&frame, MAX_HELLO).ok()??;
    frame.resize(header.frame_len(), 0);
    client.read_exact(&mut frame[HEADER_LEN..]).ok()?;
    client.set_read_timeout(None).ok()?;
    let from = certus::net::connection_origin(&frame)?;
    Some((from.get(), frame))
}

/// Copies `input` to `output` until either end closes, holding each chunk
/// while the link is cut.
fn pump(mut input: TcpStream, mut output: TcpStream, from: u64, to: u64, net: &Net) {
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        while net.is_cut(from, to) && !net.stopped() {
            thread::sleep(HOLD_POLL);
        }
        if net.stopped() || output.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = input.shutdown(Shutdown::Both);
    let _ = output.shutdown(Shutdown::Both);
}

/// Grudges: who cannot talk to whom, as lists of cut pairs.
pub(crate) mod grudge {
    use super::HashMap;

    /// `node` cut off from everyone else.
    pub(crate) fn isolate(nodes: &[u64], node: u64) -> Vec<(u64, u64)> {
        nodes
            .iter()
            .filter(|&&n| n != node)
            .map(|&n| (node, n))
            .collect()
    }

    /// Two sides with no link between them.
    pub(crate) fn halves(minority: &[u64], majority: &[u64]) -> Vec<(u64, u64)> {
        let mut cut = Vec::new();
        for &a in minority {
            for &b in majority {
                cut.push((a, b));
            }
        }
        cut
    }

    /// Every node talks only to its two neighbours in `ring` order; with
    /// three nodes, one pair is cut and the third node bridges them.
    pub(crate) fn ring(ring: &[u64]) -> Vec<(u64, u64)> {
        let n = ring.len();
        let mut neighbours: HashMap<u64, [u64; 2]> = HashMap::new();
        for (i, &node) in ring.iter().enumerate() {
            neighbours.insert(node, [ring[(i + 1) % n], ring[(i + n - 1) % n]]);
        }
        let mut cut = Vec::new();
        for (i, &a) in ring.iter().enumerate() {
            for &b in &ring[i + 1..] {
                if !neighbours[&a].contains(&b) {
                    cut.push((a, b));
                }
            }
        }
        if n == 3 {
            cut.push((ring[0], ring[2]));
        }
        cut
    }
}
