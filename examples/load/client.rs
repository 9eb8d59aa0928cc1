//! The clients: one task and one connection each, closed loop, until the
//! deadline.

use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::{sleep, timeout};

use crate::Workload;
use crate::resp::{Resp, Value};

/// Bytes of the unique stamp every written value starts with.
pub(crate) const STAMP_LEN: usize = 24;

/// What the clients run against.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    pub(crate) workload: Workload,
    pub(crate) keys: u64,
    pub(crate) hot: u64,
    pub(crate) value_size: usize,
    pub(crate) keys_per_op: usize,
    pub(crate) read_percent: u8,
    pub(crate) op_timeout: Duration,
    pub(crate) max_ops_per_client: u64,
    pub(crate) seed: u64,
}

/// What the clients counted.
pub(crate) struct Stats {
    /// Operations that succeeded.
    pub(crate) ops: u64,
    /// Operations that failed (error reply, timeout, lost connection).
    pub(crate) errors: u64,
    /// Retried attempts: `EXEC` answered nil (a conflict).
    pub(crate) aborts: u64,
    /// Failed counter increments that may have committed.
    pub(crate) ambiguous: u64,
    pub(crate) reconnects: u64,
    pub(crate) first_error: Option<String>,
    /// Microseconds per successful operation.
    pub(crate) latency: Histogram<u64>,
}

impl Stats {
    fn new() -> Stats {
        Stats {
            ops: 0,
            errors: 0,
            aborts: 0,
            ambiguous: 0,
            reconnects: 0,
            first_error: None,
            latency: crate::histogram(),
        }
    }

    fn error(&mut self, what: String) {
        self.errors += 1;
        self.first_error.get_or_insert(what);
    }

    fn merge(&mut self, other: Stats) {
        self.ops += other.ops;
        self.errors += other.errors;
        self.aborts += other.aborts;
        self.ambiguous += other.ambiguous;
        self.reconnects += other.reconnects;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.latency.add(&other.latency);
    }
}

pub(crate) type Conn = Resp<TcpStream>;

/// A connection to `addr` with Nagle off, as every Redis client does.
pub(crate) async fn connect(addr: &str) -> Result<Conn, String> {
    let open = async {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok::<_, std::io::Error>(Resp::new(stream))
    };
    open.await.map_err(|e| format!("connect {addr}: {e}"))
}

/// Connects `clients` clients (untimed), runs them until `duration` passed
/// and returns what they counted and how long the run took.
pub(crate) async fn run_all(
    target: &Target,
    endpoints: &[String],
    clients: usize,
    duration: Duration,
) -> Result<(Stats, Duration), String> {
    let mut conns = Vec::with_capacity(clients);
    for i in 0..clients {
        let endpoint = &endpoints[i % endpoints.len()];
        let conn = connect(endpoint).await?;
        conns.push((endpoint.clone(), conn));
    }
    let target = Arc::new(target.clone());
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = JoinSet::new();
    for (id, (endpoint, conn)) in conns.into_iter().enumerate() {
        let client = Client::new(id as u64, endpoint, Arc::clone(&target));
        tasks.spawn(client.run(conn, deadline));
    }
    let mut stats = Stats::new();
    while let Some(done) = tasks.join_next().await {
        stats.merge(done.map_err(|e| format!("client task: {e}"))?);
    }
    Ok((stats, start.elapsed()))
}

/// Why an operation failed.
struct OpError {
    what: String,
    /// The connection is unusable.
    broken: bool,
    /// It may have taken effect.
    ambiguous: bool,
}

impl OpError {
    fn io(err: &std::io::Error, ambiguous: bool) -> OpError {
        OpError {
            what: format!("io: {err}"),
            broken: true,
            ambiguous,
        }
    }

    fn reply(value: &Value, ambiguous: bool) -> OpError {
        OpError {
            what: format!("reply: {value:?}"),
            broken: false,
            ambiguous,
        }
    }
}

/// One client: its choices, its buffers and what it counted.
struct Client {
    id: u64,
    endpoint: String,
    target: Arc<Target>,
    rng: fastrand::Rng,
    key: Vec<u8>,
    value: Vec<u8>,
    seq: u64,
    stats: Stats,
}

impl Client {
    fn new(id: u64, endpoint: String, target: Arc<Target>) -> Client {
        let seed = target.seed ^ (id + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let value = vec![b'x'; target.value_size];
        Client {
            id,
            endpoint,
            rng: fastrand::Rng::with_seed(seed),
            target,
            key: Vec::with_capacity(32),
            value,
            seq: 0,
            stats: Stats::new(),
        }
    }

    async fn run(mut self, conn: Conn, deadline: Instant) -> Stats {
        let mut conn = Some(conn);
        while Instant::now() < deadline && self.stats.ops < self.target.max_ops_per_client {
            let Some(c) = conn.as_mut() else {
                match timeout(self.target.op_timeout, connect(&self.endpoint)).await {
                    Ok(Ok(c)) => {
                        conn = Some(c);
                        self.stats.reconnects += 1;
                    }
                    _ => sleep(Duration::from_millis(100)).await,
                }
                continue;
            };
            let started = Instant::now();
            let contended = self.target.workload == Workload::Contended;
            match timeout(self.target.op_timeout, self.step(c)).await {
                Ok(Ok(aborts)) => {
                    self.stats.ops += 1;
                    self.stats.aborts += aborts;
                    let _ = self.stats.latency.record(crate::micros_since(started));
                }
                Ok(Err(err)) => {
                    self.stats.ambiguous += u64::from(err.ambiguous);
                    self.stats.error(err.what);
                    if err.broken {
                        conn = None;
                    }
                }
                Err(_) => {
                    self.stats.ambiguous += u64::from(contended);
                    self.stats.error("timeout".into());
                    conn = None;
                }
            }
        }
        self.stats
    }

    /// One operation; the retried attempts it took.
    async fn step(&mut self, conn: &mut Conn) -> Result<u64, OpError> {
        let target = Arc::clone(&self.target);
        let read = match target.workload {
            Workload::Read => true,
            Workload::Write => false,
            Workload::Mixed => self.rng.u8(0..100) < target.read_percent,
            Workload::Contended => {
                let hot = self.rng.u64(0..target.hot);
                return increment(conn, &crate::setup::hot_key(hot)).await;
            }
            Workload::Queue => return self.queue(conn).await,
        };
        if !read && target.keys_per_op > 1 {
            return self.mset(conn).await;
        }
        let k = self.rng.u64(0..target.keys);
        self.key.clear();
        let _ = write!(self.key, "kv:{k:012}");
        if read {
            conn.push(&[b"GET".as_slice(), &self.key]);
            let reply = conn.flush_read(false).await?;
            return match reply {
                Value::Bulk(_) => Ok(0),
                other => Err(OpError::reply(&other, false)),
            };
        }
        self.seq += 1;
        stamp(&mut self.value, target.seed, self.id, self.seq);
        conn.push(&[b"SET".as_slice(), &self.key, &self.value]);
        expect_ok(conn.flush_read(true).await?, true)?;
        Ok(0)
    }

    /// One push (even clients) or pop (odd ones) of the queue workload; an
    /// empty pop is reported as one abort.
    async fn queue(&mut self, conn: &mut Conn) -> Result<u64, OpError> {
        if self.id.is_multiple_of(2) {
            self.seq += 1;
            stamp(&mut self.value, self.target.seed, self.id, self.seq);
            conn.push(&[b"RPUSH".as_slice(), b"queue", &self.value]);
            return match conn.flush_read(true).await? {
                Value::Int(_) => Ok(0),
                other => Err(OpError::reply(&other, true)),
            };
        }
        conn.push(&["BLPOP", "queue", "1"]);
        match conn.flush_read(true).await? {
            Value::Array(Some(_)) => Ok(0),
            Value::Array(None) | Value::Bulk(None) => Ok(1),
            other => Err(OpError::reply(&other, true)),
        }
    }

    /// One `MSET` of `keys_per_op` random keys, each with its own stamp.
    async fn mset(&mut self, conn: &mut Conn) -> Result<u64, OpError> {
        let target = Arc::clone(&self.target);
        let mut args: Vec<Vec<u8>> = Vec::with_capacity(1 + 2 * target.keys_per_op);
        args.push(b"MSET".to_vec());
        for _ in 0..target.keys_per_op {
            let k = self.rng.u64(0..target.keys);
            self.seq += 1;
            stamp(&mut self.value, target.seed, self.id, self.seq);
            args.push(crate::setup::data_key(k).into_bytes());
            args.push(self.value.clone());
        }
        conn.push(&args);
        expect_ok(conn.flush_read(true).await?, true)?;
        Ok(0)
    }
}

/// Writes `<run:8 hex><client:4 hex><seq:12 hex>` at the start of `value`,
/// so no write is ever a no-op.
fn stamp(value: &mut [u8], run: u64, client: u64, seq: u64) {
    let text = format!(
        "{:08x}{:04x}{:012x}",
        run & 0xffff_ffff,
        client & 0xffff,
        seq & 0xffff_ffff_ffff
    );
    value[..STAMP_LEN].copy_from_slice(text.as_bytes());
}

/// `counter += 1` with optimistic locking: `WATCH`, `GET`, then `MULTI`,
/// `SET`, `EXEC` in one write; retried while `EXEC` answers nil.
async fn increment(conn: &mut Conn, key: &str) -> Result<u64, OpError> {
    let mut aborts = 0;
    loop {
        conn.push(&["WATCH", key]);
        expect_ok(conn.flush_read(false).await?, false)?;
        conn.push(&["GET", key]);
        let current = match conn.flush_read(false).await? {
            Value::Bulk(None) => 0,
            Value::Bulk(Some(bytes)) => parse_counter(&bytes)?,
            other => return Err(OpError::reply(&other, false)),
        };
        let next = (current + 1).to_string();
        conn.push(&["MULTI"]);
        conn.push(&["SET", key, next.as_str()]);
        conn.push(&["EXEC"]);
        conn.flush().await.map_err(|e| OpError::io(&e, true))?;
        let multi = conn.read().await.map_err(|e| OpError::io(&e, true))?;
        let queued = conn.read().await.map_err(|e| OpError::io(&e, true))?;
        let exec = conn.read().await.map_err(|e| OpError::io(&e, true))?;
        match exec {
            Value::Array(None) => aborts += 1,
            Value::Array(Some(_)) => return Ok(aborts),
            // An error at MULTI or SET means nothing ran; at EXEC, the
            // server may have committed before it failed.
            other => {
                let ran = multi.error_code().is_none() && queued.error_code().is_none();
                return Err(OpError::reply(&other, ran));
            }
        }
    }
}

/// `+OK`, or the failure; `ambiguous` when the command may have taken
/// effect anyway.
fn expect_ok(reply: Value, ambiguous: bool) -> Result<(), OpError> {
    match reply {
        Value::Simple(ok) if ok == "OK" => Ok(()),
        other => Err(OpError::reply(&other, ambiguous)),
    }
}

fn parse_counter(bytes: &[u8]) -> Result<i64, OpError> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| OpError {
            what: format!("not a counter: {:?}", String::from_utf8_lossy(bytes)),
            broken: false,
            ambiguous: false,
        })
}

impl Conn {
    /// Writes the queued commands and reads one reply; a failure breaks the
    /// connection, and leaves the outcome unknown when `ambiguous`.
    async fn flush_read(&mut self, ambiguous: bool) -> Result<Value, OpError> {
        self.flush().await.map_err(|e| OpError::io(&e, ambiguous))?;
        self.read().await.map_err(|e| OpError::io(&e, ambiguous))
    }
}
