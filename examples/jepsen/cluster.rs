//! Real `certusd` processes on loopback, each behind its peer proxy, and
//! the faults a nemesis can apply to them: SIGKILL and restart, SIGSTOP and
//! SIGCONT, leaving the cluster and a new node joining, a full or failing
//! disk under the engine (certusd's `failpoints` feature), and a damaged
//! log segment.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use certus::net::CertificateAuthority;

use crate::proxy::{Net, Proxy};

/// What every node of the cluster shares.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    /// The `certusd` binary.
    pub(crate) certusd: PathBuf,
    /// Where the nodes keep their data and logs.
    pub(crate) dir: PathBuf,
    /// rocksdb, redb or memory.
    pub(crate) engine: String,
    /// snapshot or serializable.
    pub(crate) isolation: String,
}

/// One certusd process and its addresses.
pub(crate) struct Node {
    pub(crate) id: u64,
    pub(crate) client: SocketAddr,
    health: SocketAddr,
    proxy: Proxy,
    config: PathBuf,
    log: PathBuf,
    /// What the node's engine does with writes: `disk-full`, `io`, and its
    /// log: `log-io`; anything else to work (CERTUS_ENGINE_FAULT_FILE).
    fault_file: PathBuf,
    data_dir: PathBuf,
    child: Option<Child>,
    paused: bool,
}

/// A byte flipped in a log segment, to put back.
pub(crate) struct Corruption {
    pub(crate) path: PathBuf,
    pub(crate) offset: usize,
    original: u8,
}

impl Node {
    /// The health check's HTTP status, or `None` while nothing answers.
    pub(crate) fn health(&self) -> Option<u16> {
        let mut stream = TcpStream::connect_timeout(&self.health, Duration::from_secs(1)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        stream.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        response.split(' ').nth(1)?.parse().ok()
    }

    fn spawn(&mut self, certusd: &Path) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| format!("{}: {e}", self.log.display()))?;
        let child = Command::new(certusd)
            .arg(format!("--config={}", self.config.display()))
            .env("RUST_LOG", "warn")
            .env("CERTUS_ENGINE_FAULT_FILE", &self.fault_file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", certusd.display()))?;
        self.child = Some(child);
        self.paused = false;
        Ok(())
    }

    fn signal(&self, signal: &str) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill")
                .arg(format!("-{signal}"))
                .arg(child.id().to_string())
                .status();
        }
    }
}

/// The cluster under test.
pub(crate) struct Cluster {
    pub(crate) nodes: Vec<Node>,
    pub(crate) net: Arc<Net>,
    settings: Settings,
    next_id: u64,
}

impl Cluster {
    /// Starts `count` nodes and waits until all are healthy.
    pub(crate) fn start(settings: Settings, count: u64) -> Result<Cluster, String> {
        let net = Arc::new(Net::default());
        let mut cluster = Cluster {
            nodes: Vec::new(),
            net,
            settings,
            next_id: 1,
        };
        let mut prepared = Vec::new();
        for _ in 0..count {
            prepared.push(cluster.prepare()?);
        }
        let members: Vec<(u64, SocketAddr)> = prepared
            .iter()
            .map(|(n, _)| (n.id, n.proxy.addr()))
            .collect();
        for (mut node, peer) in prepared {
            write_config(&cluster.settings, &node, peer, Start::Members(&members))?;
            node.spawn(&cluster.settings.certusd)?;
            cluster.nodes.push(node);
        }
        for node in &cluster.nodes {
            wait_healthy(node, Duration::from_secs(60))?;
        }
        Ok(cluster)
    }

    /// A new node's ports, proxy and files; not yet started.
    fn prepare(&mut self) -> Result<(Node, SocketAddr), String> {
        let id = self.next_id;
        self.next_id += 1;
        let peer = free_addr()?;
        let proxy_listener =
            TcpListener::bind("127.0.0.1:0").map_err(|e| format!("proxy bind: {e}"))?;
        let proxy = Proxy::start(proxy_listener, id, peer, self.net.clone());
        let node = Node {
            id,
            client: free_addr()?,
            health: free_addr()?,
            proxy,
            config: self.settings.dir.join(format!("node-{id}.toml")),
            log: self.settings.dir.join(format!("node-{id}.log")),
            fault_file: self.settings.dir.join(format!("node-{id}.fault")),
            data_dir: self.settings.dir.join(format!("node-{id}")),
            child: None,
            paused: false,
        };
        Ok((node, peer))
    }

    pub(crate) fn node(&mut self, id: u64) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.id == id)
            .expect("no such node")
    }

    pub(crate) fn ids(&self) -> Vec<u64> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    /// Client addresses of every member, running or not.
    pub(crate) fn clients(&self) -> Vec<SocketAddr> {
        self.nodes.iter().map(|n| n.client).collect()
    }

    /// SIGKILL: nothing flushed beyond what was synced.
    pub(crate) fn kill(&mut self, id: u64) {
        let node = self.node(id);
        if let Some(mut child) = node.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a killed node again on its data.
    pub(crate) fn restart(&mut self, id: u64) -> Result<(), String> {
        let certusd = self.settings.certusd.clone();
        let node = self.node(id);
        if node.child.is_none() {
            node.spawn(&certusd)?;
        }
        Ok(())
    }

    /// Starts node `id` again if its process exited by itself (as its
    /// service manager would); the exit status it had, if it had exited.
    pub(crate) fn revive(&mut self, id: u64) -> Result<Option<std::process::ExitStatus>, String> {
        let certusd = self.settings.certusd.clone();
        let node = self.node(id);
        let exited = match node.child.as_mut() {
            Some(child) => child.try_wait().map_err(|e| e.to_string())?,
            None => return Ok(None),
        };
        if exited.is_some() {
            node.child = None;
            node.spawn(&certusd)?;
        }
        Ok(exited)
    }

    /// SIGSTOP.
    pub(crate) fn pause(&mut self, id: u64) {
        let node = self.node(id);
        node.signal("STOP");
        node.paused = node.child.is_some();
    }

    /// SIGCONT.
    pub(crate) fn resume(&mut self, id: u64) {
        let node = self.node(id);
        if node.paused {
            node.signal("CONT");
            node.paused = false;
        }
    }

    /// Node `id` leaves the cluster (`CERTUS LEAVE` on itself), then its
    /// process is stopped and its data discarded.
    pub(crate) fn leave(&mut self, id: u64) -> Result<(), String> {
        let node = self.node(id);
        let addr = node.client;
        let reply = redis::Client::open(format!("redis://{addr}/"))
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
            .and_then(|mut con| {
                con.set_read_timeout(Some(Duration::from_secs(20)))?;
                redis::cmd("CERTUS").arg("LEAVE").query::<String>(&mut con)
            })
            .map_err(|e| format!("node {id} could not leave: {e}"))?;
        if reply != "OK" {
            return Err(format!("node {id} answered {reply} to CERTUS LEAVE"));
        }
        self.kill(id);
        self.nodes.retain(|n| n.id != id);
        Ok(())
    }

    /// A new node joins through the live members and becomes healthy.
    pub(crate) fn join(&mut self) -> Result<u64, String> {
        let seeds: Vec<SocketAddr> = self.nodes.iter().map(|n| n.proxy.addr()).collect();
        let (mut node, peer) = self.prepare()?;
        write_config(&self.settings, &node, peer, Start::Join(&seeds))?;
        node.spawn(&self.settings.certusd)?;
        let id = node.id;
        self.nodes.push(node);
        Ok(id)
    }

    /// Node `id`'s engine fails writes as `fault` says (`disk-full`,
    /// `io`), or works again (`none`).
    pub(crate) fn set_engine_fault(&mut self, id: u64, fault: &str) -> Result<(), String> {
        let path = self.node(id).fault_file.clone();
        std::fs::write(&path, fault).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Kills node `id` and flips a byte inside the first record of its
    /// newest log segment, which intact records follow: damage no crash
    /// makes, which the node must refuse to start on.
    pub(crate) fn corrupt_log(&mut self, id: u64) -> Result<Option<Corruption>, String> {
        self.kill(id);
        let dir = self.node(id).data_dir.join("log");
        let mut segments: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "seg"))
            .collect();
        segments.sort();
        let Some(path) = segments.pop() else {
            return Ok(None);
        };
        let mut bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let Ok(Some(first)) = certus::frame::peek_header(&bytes, usize::MAX >> 1) else {
            return Ok(None);
        };
        if bytes.len() <= first.frame_len() + certus::frame::HEADER_LEN {
            // One record: its damage would read as a torn tail.
            return Ok(None);
        }
        let offset =
            certus::frame::HEADER_LEN + (first.frame_len() - certus::frame::HEADER_LEN) / 2;
        let original = bytes[offset];
        bytes[offset] ^= 0x40;
        std::fs::write(&path, &bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Some(Corruption {
            path,
            offset,
            original,
        }))
    }

    /// Starts node `id` on its damaged log: it must exit, non-zero, within
    /// `bound`, and the cluster goes on without it.
    pub(crate) fn expect_refusal(&mut self, id: u64, bound: Duration) -> Result<String, String> {
        let certusd = self.settings.certusd.clone();
        let node = self.node(id);
        node.spawn(&certusd)?;
        let deadline = Instant::now() + bound;
        loop {
            let child = node.child.as_mut().ok_or("no process")?;
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                node.child = None;
                return if status.success() {
                    Err(format!("node {id} exited 0 on a corrupt log"))
                } else {
                    Ok(format!("node {id} refused to start ({status})"))
                };
            }
            if Instant::now() >= deadline {
                return Err(format!("node {id} started on a corrupt log segment"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Puts the flipped byte back.
    pub(crate) fn repair(&self, corruption: &Corruption) -> Result<(), String> {
        let path = &corruption.path;
        let mut bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        bytes[corruption.offset] = corruption.original;
        std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Undoes every fault: heals the network and the disks, resumes and
    /// restarts every node; then waits (bounded) until all are healthy,
    /// starting again, as a service manager does, any that exits meanwhile
    /// (one that failed just before may exit only now).
    pub(crate) fn recover(&mut self, bound: Duration) -> Result<(), String> {
        self.net.heal();
        for id in self.ids() {
            self.set_engine_fault(id, "none")?;
            self.resume(id);
            self.restart(id)?;
        }
        let deadline = Instant::now() + bound;
        for id in self.ids() {
            let log = self.node(id).log.clone();
            poll_healthy(id, &log, bound, deadline, || {
                if let Some(status) = self.revive(id)? {
                    eprintln!("jepsen: node {id} had exited ({status}); restarted");
                }
                Ok(self.node(id).health())
            })?;
        }
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.net.stop();
        for id in self.ids() {
            self.resume(id);
            self.kill(id);
        }
    }
}

/// Polls the health check until it answers 200, for at most `bound`.
pub(crate) fn wait_healthy(node: &Node, bound: Duration) -> Result<(), String> {
    let deadline = Instant::now() + bound;
    poll_healthy(node.id, &node.log, bound, deadline, || Ok(node.health()))
}

/// Polls `health` until it answers 200 or `deadline` (`bound` from the
/// start) passes; the node's id and log name it in the error.
fn poll_healthy(
    id: u64,
    log: &Path,
    bound: Duration,
    deadline: Instant,
    mut health: impl FnMut() -> Result<Option<u16>, String>,
) -> Result<(), String> {
    while health()? != Some(200) {
        if Instant::now() >= deadline {
            return Err(format!(
                "node {id} not healthy after {bound:?}; see {}",
                log.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

enum Start<'a> {
    Members(&'a [(u64, SocketAddr)]),
    Join(&'a [SocketAddr]),
}

/// Node `id`'s peer TLS settings, its certificate made (with the run's CA,
/// made first if need be) under `dir/tls`.
fn peer_tls(dir: &Path, id: u64) -> Result<String, String> {
    let tls = dir.join("tls");
    let ca = CertificateAuthority::open_or_create(&tls, "jepsen").map_err(|e| e.to_string())?;
    let (cert, key) = ca
        .write_node(&tls, certus::NodeId::new(id), &[])
        .map_err(|e| e.to_string())?;
    Ok(format!(
        "peer_ca = \"{}\"\npeer_cert = \"{}\"\npeer_key = \"{}\"\n",
        tls.join("ca.pem").display(),
        cert.display(),
        key.display()
    ))
}

/// Short timeouts, so faults show within a short run; a short log, so
/// restarted and new nodes also get full state transfers.
fn write_config(
    settings: &Settings,
    node: &Node,
    peer: SocketAddr,
    start: Start<'_>,
) -> Result<(), String> {
    let id = node.id;
    let mut text = format!(
        "node_id = {id}\ncluster = \"jepsen\"\ndata_dir = \"{}\"\n\
         peer_listen = \"{peer}\"\npeer_advertise = \"{}\"\n\
         client_listen = \"{}\"\nhealth_listen = \"{}\"\n\
         engine = \"{}\"\nisolation = \"{}\"\n\
         heartbeat_ms = 50\nelection_timeout_ms = [400, 800]\nprimary_lease_ms = 800\n\
         commit_timeout_ms = 5000\nlog_retention = 2000\n",
        settings.dir.join(format!("node-{id}")).display(),
        node.proxy.addr(),
        node.client,
        node.health,
        settings.engine,
        settings.isolation,
    );
    text.push_str(&peer_tls(&settings.dir, id)?);
    match start {
        Start::Join(seeds) => {
            let seeds: Vec<String> = seeds.iter().map(|s| format!("\"{s}\"")).collect();
            text.push_str(&format!("join = [{}]\n", seeds.join(", ")));
        }
        Start::Members(members) => {
            text.push_str("[initial_members]\n");
            for (id, addr) in members {
                text.push_str(&format!("\"{id}\" = \"{addr}\"\n"));
            }
        }
    }
    std::fs::write(&node.config, text).map_err(|e| format!("{}: {e}", node.config.display()))
}

/// A free loopback address below the ephemeral port range, released for a
/// certusd process to bind (and bind again when it restarts): the nodes'
/// own outgoing connections never take it meanwhile. A port is handed out
/// once per run: a released port is free to the next draw too, and two
/// nodes given one health port once made the second fail to start while
/// the first answered its health checks.
fn free_addr() -> Result<SocketAddr, String> {
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let mut given = GIVEN.lock().map_err(|e| e.to_string())?;
    for _ in 0..1000 {
        let port = fastrand::u16(20_000..32_000);
        if given.contains(&port) {
            continue;
        }
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            given.insert(port);
            return listener.local_addr().map_err(|e| e.to_string());
        }
    }
    Err("no free port in 20000..32000".into())
}
