//! Real `certusd` processes on loopback, killed with SIGKILL: no
//! acknowledged write is lost when one node dies under load, the node
//! catches up when it restarts, and after all three die at once the cluster
//! comes back with no bootstrap step and every acknowledged write present;
//! a fourth node joins with a full state transfer. The log is kept short,
//! so the restarted node and the new one both get full state transfers.
//! And a node whose log fails to sync exits with status 3 while the others
//! go on.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::{Connection, cmd};

mod common;

/// The longest any wait may take.
const BOUND: Duration = Duration::from_secs(90);

struct Node {
    args: Vec<String>,
    client: SocketAddr,
    health: SocketAddr,
    child: Option<Child>,
    log: PathBuf,
    /// What its failpoints read (`CERTUS_ENGINE_FAULT_FILE`; feature
    /// `failpoints`): no file, no fault.
    fault_file: PathBuf,
}

/// A free loopback address below the ephemeral port range, released for
/// a certusd process to bind (and bind again when it restarts).
fn free_addr() -> SocketAddr {
    common::stable_listener().local_addr().unwrap()
}

impl Node {
    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_certusd"))
            .args(&self.args)
            .env("RUST_LOG", "warn")
            .env("CERTUS_ENGINE_FAULT_FILE", &self.fault_file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// SIGKILL: no clean shutdown, nothing flushed beyond what was synced.
    fn kill(&mut self) {
        let mut child = self.child.take().expect("node is not running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// The health check's HTTP status, or `None` while nothing answers.
    fn health(&self) -> Option<u16> {
        self.http_get("/")?.split(' ').nth(1)?.parse().ok()
    }

    /// The whole response to `GET path` on the health port, or `None`
    /// while nothing answers.
    fn http_get(&self, path: &str) -> Option<String> {
        let mut stream = TcpStream::connect_timeout(&self.health, Duration::from_secs(1)).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .ok()?;
        let request = format!("GET {path} HTTP/1.0\r\n\r\n");
        stream.write_all(request.as_bytes()).ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        Some(response)
    }

    /// Polls the health check until it answers 200 (bounded).
    fn wait_healthy(&self) {
        let deadline = Instant::now() + BOUND;
        while self.health() != Some(200) {
            assert!(
                Instant::now() < deadline,
                "node never became healthy; the end of {}:\n{}",
                self.log.display(),
                self.log_tail(40)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The last `lines` lines of the node's log: the test's temporary
    /// directory is gone by the time anyone reads a failure.
    fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Whether this node leads the ordering layer (`certus_leader` in its
    /// metrics).
    #[cfg(feature = "failpoints")]
    fn is_leader(&self) -> bool {
        self.http_get("/metrics")
            .is_some_and(|response| response.lines().any(|line| line == "certus_leader 1"))
    }

    /// Waits until the process exits by itself (bounded); its status.
    #[cfg(feature = "failpoints")]
    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + BOUND;
        let child = self.child.as_mut().expect("node is not running");
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "node never exited; the end of {}:\n{}",
                self.log.display(),
                self.log_tail(40)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn connect(&self) -> redis::RedisResult<Connection> {
        redis::Client::open(format!("redis://{}/", self.client))?.get_connection()
    }
}

struct ProcessCluster {
    nodes: Vec<Node>,
    peers: Vec<SocketAddr>,
    dir: tempfile::TempDir,
}

impl ProcessCluster {
    fn start(count: u64) -> ProcessCluster {
        let dir = tempfile::tempdir().unwrap();
        let peers: Vec<SocketAddr> = (0..count).map(|_| free_addr()).collect();
        let members: Vec<String> = peers
            .iter()
            .enumerate()
            .map(|(i, addr)| format!("--member={}={addr}", i + 1))
            .collect();
        let mut nodes = Vec::new();
        for (index, peer) in peers.iter().enumerate() {
            nodes.push(node(dir.path(), index + 1, *peer, &members));
        }
        for node in &mut nodes {
            node.spawn();
        }
        for node in &nodes {
            node.wait_healthy();
        }
        ProcessCluster { nodes, peers, dir }
    }

    /// Starts one more node that joins through node 1, and waits until it
    /// is healthy (synced, with everything transferred).
    fn join(&mut self) {
        let seed = vec![format!("--join={}", self.peers[0])];
        let mut node = node(self.dir.path(), self.nodes.len() + 1, free_addr(), &seed);
        node.spawn();
        node.wait_healthy();
        self.nodes.push(node);
    }
}

/// Node `id`'s command line: its ports, data directory and `extra` flags.
fn node(dir: &Path, id: usize, peer: SocketAddr, extra: &[String]) -> Node {
    let (client, health) = (free_addr(), free_addr());
    let config = write_config(dir, id);
    let mut args = vec![
        format!("--config={}", config.display()),
        format!("--node-id={id}"),
        format!("--data-dir={}", dir.join(format!("node-{id}")).display()),
        format!("--peer-listen={peer}"),
        format!("--client-listen={client}"),
        format!("--health-listen={health}"),
    ];
    args.extend(extra.iter().cloned());
    let log = dir.join(format!("node-{id}.log"));
    Node {
        args,
        client,
        health,
        child: None,
        log,
        fault_file: dir.join(format!("node-{id}.fault")),
    }
}

/// Short timeouts for a loaded 2-core machine, and a log so short that a
/// node down for a few hundred writes, or a new one, needs a full state
/// transfer; everything else default.
/// Peer TLS with node `id`'s certificate, made by `certusd certs` itself.
fn write_config(dir: &Path, id: usize) -> PathBuf {
    let tls = dir.join("tls");
    let made = Command::new(env!("CARGO_BIN_EXE_certusd"))
        .args(["certs", "--cluster", "certus-process-test", "--node"])
        .arg(id.to_string())
        .arg("--dir")
        .arg(&tls)
        .output()
        .unwrap();
    assert!(made.status.success(), "certusd certs: {made:?}");
    let written = String::from_utf8_lossy(&made.stdout);
    assert!(written.contains(&format!("node-{id}.key")), "{written}");
    let path = dir.join(format!("node-{id}.toml"));
    let text = format!(
        "cluster = \"certus-process-test\"\nheartbeat_ms = 50\n\
         election_timeout_ms = [400, 800]\nprimary_lease_ms = 800\n\
         commit_timeout_ms = 20000\nlog_retention = 40\n\
         peer_ca = \"{ca}\"\npeer_cert = \"{dir}/node-{id}.pem\"\n\
         peer_key = \"{dir}/node-{id}.key\"\n",
        ca = tls.join("ca.pem").display(),
        dir = tls.display(),
    );
    std::fs::write(&path, text).unwrap();
    path
}

impl Drop for ProcessCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// What a writer learned: keys whose SET was acknowledged, with values.
type Acked = Arc<Mutex<BTreeMap<String, String>>>;

/// Writes `w{writer}:{n}` keys round-robin over the nodes until `stop`,
/// recording each acknowledged write. A failed write (node dead, outcome
/// unknown) is never recorded and never retried under the same key.
fn writer(nodes: Vec<SocketAddr>, writer: usize, acked: Acked, stop: Arc<AtomicBool>) {
    let mut n = 0_u64;
    let mut target = writer;
    let mut con: Option<Connection> = None;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let (key, value) = (format!("w{writer}:{n}"), format!("v{n}"));
        if con.is_none() {
            let addr = nodes[target % nodes.len()];
            con = redis::Client::open(format!("redis://{addr}/"))
                .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(1)))
                .ok();
        }
        let Some(c) = con.as_mut() else {
            target += 1;
            continue;
        };
        let reply: redis::RedisResult<String> = cmd("SET").arg(&key).arg(&value).query(c);
        match reply {
            Ok(_) => {
                acked.lock().unwrap().insert(key, value);
            }
            Err(_) => {
                con = None;
                target += 1;
            }
        }
    }
}

/// Runs three writers for as long as `during` takes.
fn under_load(
    cluster: &mut ProcessCluster,
    acked: &Acked,
    during: impl FnOnce(&mut ProcessCluster),
) {
    let addrs: Vec<SocketAddr> = cluster.nodes.iter().map(|n| n.client).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let (addrs, acked, stop) = (addrs.clone(), acked.clone(), stop.clone());
            std::thread::spawn(move || writer(addrs, w, acked, stop))
        })
        .collect();
    during(cluster);
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
}

/// Waits until at least `count` writes are acknowledged (bounded).
fn wait_acked(acked: &Acked, count: usize) {
    let deadline = Instant::now() + BOUND;
    while acked.lock().unwrap().len() < count {
        assert!(Instant::now() < deadline, "writes stalled");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every acknowledged write is readable, with its value, on every node.
fn assert_all_present(cluster: &ProcessCluster, acked: &Acked) {
    let acked = acked.lock().unwrap().clone();
    let keys: Vec<&String> = acked.keys().collect();
    for node in &cluster.nodes {
        let mut con = node.connect().unwrap();
        for chunk in keys.chunks(500) {
            let values: Vec<Option<String>> = cmd("MGET").arg(chunk).query(&mut con).unwrap();
            for (key, value) in chunk.iter().zip(values) {
                assert_eq!(
                    value.as_ref(),
                    Some(&acked[*key]),
                    "acknowledged write {key} missing on {}",
                    node.client
                );
            }
        }
    }
}

#[test]
fn sigkill_loses_no_acknowledged_write() {
    let mut cluster = ProcessCluster::start(3);
    let acked: Acked = Arc::default();

    // One node dies under load, then comes back and catches up.
    under_load(&mut cluster, &acked, |cluster| {
        wait_acked(&acked, 200);
        cluster.nodes[2].kill();
        let after_kill = acked.lock().unwrap().len();
        wait_acked(&acked, after_kill + 300);
        cluster.nodes[2].spawn();
        cluster.nodes[2].wait_healthy();
        let after_restart = acked.lock().unwrap().len();
        wait_acked(&acked, after_restart + 100);
    });
    assert_all_present(&cluster, &acked);

    // Every node dies at once, then all restart with no bootstrap step.
    let before = acked.lock().unwrap().len();
    under_load(&mut cluster, &acked, |cluster| {
        wait_acked(&acked, before + 200);
        for node in &mut cluster.nodes {
            node.kill();
        }
    });
    for node in &mut cluster.nodes {
        node.spawn();
    }
    for node in &cluster.nodes {
        node.wait_healthy();
    }
    assert_all_present(&cluster, &acked);

    // A fourth node joins; the log no longer holds the early writes, so it
    // gets them by a full state transfer.
    cluster.join();
    assert_all_present(&cluster, &acked);
    let mut con = cluster.nodes[3].connect().unwrap();
    let reply: String = cmd("SET").arg("after").arg("join").query(&mut con).unwrap();
    assert_eq!(reply, "OK");
}

/// A node whose log's fsync fails (EIO, injected through certusd's
/// failpoints) stops its ordering core and exits with status 3, so its
/// service manager restarts it; the other two keep committing, and the
/// restarted node catches up with every acknowledged write. First a
/// follower, then the leader (whose shutdown once hung, found by the
/// Jepsen suite's log-io nemesis).
#[cfg(feature = "failpoints")]
#[test]
fn a_node_whose_log_fails_exits_with_status_3_and_the_others_go_on() {
    let mut cluster = ProcessCluster::start(3);
    let acked: Acked = Arc::default();
    under_load(&mut cluster, &acked, |cluster| {
        for round in 0..2 {
            wait_acked(&acked, 100 * (round + 1));
            let leader = (0..3).find(|&n| cluster.nodes[n].is_leader());
            let victim = match round {
                0 => (0..3).find(|&n| Some(n) != leader).unwrap(),
                _ => leader.expect("a leader"),
            };
            fail_log_and_restart(&mut cluster.nodes[victim], &acked);
        }
    });
    assert_all_present(&cluster, &acked);
}

#[cfg(feature = "failpoints")]
fn fail_log_and_restart(node: &mut Node, acked: &Acked) {
    std::fs::write(&node.fault_file, "log-io").unwrap();
    let status = node.wait_exit();
    assert_eq!(status.code(), Some(3), "{status:?}");
    let log = node.log_tail(200);
    assert!(log.contains("Input/output error"), "{log}");
    assert!(log.contains("this node cannot go on"), "{log}");
    let before = acked.lock().unwrap().len();
    wait_acked(acked, before + 200);
    std::fs::remove_file(&node.fault_file).unwrap();
    node.spawn();
    node.wait_healthy();
}
