//! List-append transactions over RESP from simulated clients, recorded as
//! an Elle history, and the final reads that every node must agree on.
//!
//! A transaction is `MULTI`, then `APPEND k "e,"` and `GET k` in a random
//! order, then `EXEC`. As in Jepsen, a client whose operation's outcome is
//! unknown (`info`) never retries it: it continues as a new process.
//!
//! Beside them, an expiry client sets and re-expires keys with short
//! deadlines while the nodes' clocks are skewed; the final reads include
//! those keys, which every node must agree on (alive or expired) at the
//! same position, and every operation's output is witnessed on every node.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use certus::check::{Event, EventType, Mop};
use tokio::time::{sleep, timeout};

use crate::cluster::client_addr;
use crate::resp::Value;

/// A RESP connection over simulated TCP.
type Resp = crate::resp::Resp<turmoil::net::TcpStream>;

async fn connect(addr: &str) -> std::io::Result<Resp> {
    Ok(Resp::new(turmoil::net::TcpStream::connect(addr).await?))
}

/// Longest wait for one transaction before its outcome is unknown.
const OP_TIMEOUT: Duration = Duration::from_secs(8);

/// What the clients share: the run's settings and the history.
pub(crate) struct Shared {
    pub(crate) seed: u64,
    pub(crate) nodes: usize,
    pub(crate) clients: usize,
    pub(crate) keys: u64,
    /// Keys the expiry client sets with deadlines.
    pub(crate) expiring: u64,
    /// Clients stop invoking at this simulated time.
    pub(crate) stop_at: Duration,
    /// How long the cluster gets to converge once every fault is healed.
    pub(crate) settle: Duration,
    pub(crate) events: RefCell<Vec<Event>>,
    next_element: Cell<i64>,
    /// Clients whose last operation has not ended yet.
    running: Cell<usize>,
    /// What each node holds at the end, key by key; `None` until read.
    pub(crate) finals: RefCell<Vec<Option<FinalState>>>,
}

/// One node's final state: the list at every key, the expiring keys'
/// values, its last certified seqno and its certification digest there.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct FinalState {
    pub(crate) lists: BTreeMap<String, Vec<i64>>,
    pub(crate) expiring: BTreeMap<String, Option<Vec<u8>>>,
    pub(crate) last_certified: u64,
    pub(crate) digest: String,
}

/// What `INFO` says of a synced node: its last certified seqno and its
/// certification digest there.
type Position = (u64, String);

impl Shared {
    pub(crate) fn new(seed: u64, nodes: usize, clients: usize, stop_at: Duration) -> Shared {
        Shared {
            seed,
            nodes,
            clients,
            keys: 5,
            expiring: 4,
            stop_at,
            settle: Duration::from_secs(90),
            events: RefCell::new(Vec::new()),
            next_element: Cell::new(1),
            running: Cell::new(clients + 1),
            finals: RefCell::new(vec![None; nodes]),
        }
    }

    fn record(&self, process: u64, kind: EventType, value: Vec<Mop>) {
        let time = u64::try_from(now().as_nanos()).unwrap_or(u64::MAX);
        self.events
            .borrow_mut()
            .push(Event::new(process, kind, time, value));
    }

    fn element(&self) -> i64 {
        let element = self.next_element.get();
        self.next_element.set(element + 1);
        element
    }

    fn generate(&self, rng: &mut fastrand::Rng) -> Vec<Mop> {
        (0..rng.usize(1..=4))
            .map(|_| {
                let key = format!("k{}", rng.u64(0..self.keys));
                if rng.bool() {
                    Mop::Append {
                        key,
                        element: self.element(),
                    }
                } else {
                    Mop::Read {
                        key,
                        elements: None,
                    }
                }
            })
            .collect()
    }
}

fn now() -> Duration {
    turmoil::sim_elapsed().unwrap_or_default()
}

/// How a transaction ended.
enum Outcome {
    /// Committed; the reads' values.
    Ok(Vec<Mop>),
    /// Certainly not committed.
    Fail,
    /// Not committed: the node refused it; try another.
    Refused,
    /// Unknown.
    Info,
}

fn classify(code: Option<&str>) -> Outcome {
    match code {
        Some("CONFLICT" | "EXECABORT") => Outcome::Fail,
        Some("NOTPRIMARY" | "LOADING") => Outcome::Refused,
        _ => Outcome::Info,
    }
}

/// One client process after another, on connections to the nodes in turn.
pub(crate) async fn client(id: usize, shared: Rc<Shared>) -> turmoil::Result {
    let mut rng = fastrand::Rng::with_seed(shared.seed ^ (id as u64 + 1).wrapping_mul(0x9e37));
    let mut process = id as u64;
    let mut node = id % shared.nodes;
    let mut conn: Option<Resp> = None;
    while now() < shared.stop_at {
        let Some(resp) = conn.as_mut() else {
            match timeout(Duration::from_secs(1), connect(&client_addr(node))).await {
                Ok(Ok(resp)) => conn = Some(resp),
                _ => {
                    node = (node + 1) % shared.nodes;
                    sleep(Duration::from_millis(100)).await;
                }
            }
            continue;
        };
        let mops = shared.generate(&mut rng);
        shared.record(process, EventType::Invoke, mops.clone());
        let outcome = match timeout(OP_TIMEOUT, transact(resp, &mops)).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) | Err(_) => Outcome::Info,
        };
        match outcome {
            Outcome::Ok(done) => shared.record(process, EventType::Ok, done),
            Outcome::Fail => shared.record(process, EventType::Fail, mops),
            Outcome::Refused => {
                shared.record(process, EventType::Fail, mops);
                conn = None;
                node = (node + 1) % shared.nodes;
            }
            Outcome::Info => {
                shared.record(process, EventType::Info, mops);
                process += shared.clients as u64;
                conn = None;
                node = (node + 1) % shared.nodes;
            }
        }
        sleep(Duration::from_millis(rng.u64(0..20))).await;
    }
    shared.running.set(shared.running.get() - 1);
    Ok(())
}

/// Sets, re-expires and reads keys with deadlines of milliseconds to
/// seconds, on every node in turn, while faults come and go. Nothing here
/// joins the history: what it checks is that every node agrees.
pub(crate) async fn expiry_client(shared: Rc<Shared>) -> turmoil::Result {
    let mut rng = fastrand::Rng::with_seed(shared.seed ^ 0xe4_71e5);
    let mut node = 0;
    while now() < shared.stop_at {
        let key = format!("e{}", rng.u64(0..shared.expiring));
        let ms = rng.u64(20..3000).to_string();
        let command: Vec<String> = match rng.u8(0..4) {
            0 => vec!["SET".into(), key, "v".into(), "PX".into(), ms],
            1 => vec!["PEXPIRE".into(), key, ms],
            2 => vec!["INCR".into(), key],
            _ => vec!["PTTL".into(), key],
        };
        let done = timeout(OP_TIMEOUT, async {
            let mut resp = connect(&client_addr(node)).await?;
            resp.call(&command).await
        });
        if !matches!(done.await, Ok(Ok(_))) {
            node = (node + 1) % shared.nodes;
        }
        sleep(Duration::from_millis(rng.u64(0..200))).await;
    }
    shared.running.set(shared.running.get() - 1);
    Ok(())
}

/// Runs `mops` as one `MULTI`/`EXEC` transaction.
async fn transact(resp: &mut Resp, mops: &[Mop]) -> std::io::Result<Outcome> {
    let mut commands = vec![vec!["MULTI".to_string()]];
    for mop in mops {
        commands.push(match mop {
            Mop::Append { key, element } => {
                vec!["APPEND".into(), key.clone(), format!("{element},")]
            }
            other => vec!["GET".into(), other.key().clone()],
        });
    }
    commands.push(vec!["EXEC".to_string()]);
    for command in &commands {
        resp.push(command);
    }
    resp.flush().await?;
    let multi = resp.read().await?;
    for _ in mops {
        resp.read().await?;
    }
    let exec = resp.read().await?;
    if let Some(code) = multi.error_code() {
        // Nothing was queued: the transaction cannot have run.
        return Ok(match classify(Some(code)) {
            Outcome::Info => Outcome::Refused,
            other => other,
        });
    }
    Ok(match exec {
        Value::Array(Some(replies)) => match completed(mops, &replies) {
            Some(done) => Outcome::Ok(done),
            None => Outcome::Info,
        },
        Value::Array(None) => Outcome::Fail,
        other => classify(other.error_code()),
    })
}

/// The transaction's micro-operations with the values its reads returned;
/// `None` when a reply does not fit.
fn completed(mops: &[Mop], replies: &[Value]) -> Option<Vec<Mop>> {
    if replies.len() != mops.len() {
        return None;
    }
    mops.iter()
        .zip(replies)
        .map(|(mop, reply)| match mop {
            Mop::Read { key, .. } => Some(Mop::Read {
                key: key.clone(),
                elements: Some(parse_list(reply)?),
            }),
            other => Some(other.clone()),
        })
        .collect()
}

/// A list as `GET` returns it: `"1,2,3,"`, or nil for the empty list.
pub(crate) fn parse_list(reply: &Value) -> Option<Vec<i64>> {
    match reply {
        Value::Bulk(None) => Some(Vec::new()),
        Value::Bulk(Some(bytes)) => {
            let text = std::str::from_utf8(bytes).ok()?;
            let body = text.strip_suffix(',')?;
            body.split(',').map(|e| e.parse().ok()).collect()
        }
        _ => None,
    }
}

/// After the workload and every fault: waits until every client's last
/// operation has ended (an operation may still be retried inside a node
/// long after the clients stopped invoking), then until every node is
/// synced at the same committed seqno, then reads every key from every
/// node, and keeps the reads only if no node moved meanwhile. Gives up
/// (leaving `finals` unread) when the cluster does not converge within the
/// settle time. The reads begin after every other operation ended, so the
/// history may order them last.
pub(crate) async fn final_reads(shared: Rc<Shared>) -> turmoil::Result {
    sleep(shared.stop_at.saturating_sub(now())).await;
    let deadline = shared.stop_at + shared.settle;
    while shared.running.get() > 0 && now() < deadline {
        sleep(Duration::from_millis(100)).await;
    }
    let mut previous: Option<Vec<Position>> = None;
    while now() < deadline {
        sleep(Duration::from_millis(500)).await;
        let Some(committed) = committed_everywhere(shared.nodes).await else {
            previous = None;
            continue;
        };
        let settled = committed.windows(2).all(|w| w[0].0 == w[1].0);
        if !settled || previous.as_ref() != Some(&committed) {
            previous = Some(committed);
            continue;
        }
        let mut finals = Vec::with_capacity(shared.nodes);
        for (node, (last_certified, digest)) in committed.iter().enumerate() {
            let read = timeout(OP_TIMEOUT, read_all(node, shared.keys, shared.expiring)).await;
            finals.push(match read {
                Ok(Ok((lists, expiring))) => Some(FinalState {
                    lists,
                    expiring,
                    last_certified: *last_certified,
                    digest: digest.clone(),
                }),
                _ => None,
            });
        }
        if committed_everywhere(shared.nodes).await.as_ref() == Some(&committed) {
            *shared.finals.borrow_mut() = finals;
            return Ok(());
        }
        previous = None;
    }
    Ok(())
}

/// Every node's last certified seqno and certification digest, when every node is
/// synced and in the primary component.
async fn committed_everywhere(nodes: usize) -> Option<Vec<Position>> {
    let mut committed = Vec::with_capacity(nodes);
    for node in 0..nodes {
        let info = timeout(Duration::from_secs(1), async {
            let mut resp = connect(&client_addr(node)).await?;
            resp.call(&["INFO"]).await
        })
        .await;
        let Ok(Ok(Value::Bulk(Some(text)))) = info else {
            return None;
        };
        let text = String::from_utf8_lossy(&text);
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .map(str::trim)
                .map(str::to_string)
        };
        if field("wsrep_ready").as_deref() != Some("ON")
            || field("wsrep_local_state_comment").as_deref() != Some("Synced")
        {
            return None;
        }
        let seqno = field("wsrep_last_committed")?.parse().ok()?;
        committed.push((seqno, field("certus_cert_digest")?));
    }
    Some(committed)
}

/// The lists and the expiring keys' values on `node`.
type Contents = (
    BTreeMap<String, Vec<i64>>,
    BTreeMap<String, Option<Vec<u8>>>,
);

async fn read_all(node: usize, keys: u64, expiring: u64) -> std::io::Result<Contents> {
    let mut resp = connect(&client_addr(node)).await?;
    let mut values = BTreeMap::new();
    for k in 0..expiring {
        let key = format!("e{k}");
        match resp.call(&["GET", key.as_str()]).await? {
            Value::Bulk(value) => values.insert(key, value),
            other => {
                let text = format!("{key}: {other:?}");
                return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, text));
            }
        };
    }
    let mut lists = BTreeMap::new();
    for k in 0..keys {
        let key = format!("k{k}");
        let reply = resp.call(&["GET", key.as_str()]).await?;
        let list = parse_list(&reply).ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{reply:?}"))
        })?;
        lists.insert(key, list);
    }
    Ok((lists, values))
}
