//! A three-node certus cluster on loopback, serving the Redis protocol.
//!
//! Three `certusd` nodes run in this process, each with its own ports and
//! its data under `--dir` (default `./certus-cluster`): the log, and the
//! store on fjall, the default engine. Connect
//! with any Redis client, for example `redis-cli -p 6380`. A status line
//! every second shows each node's state and position. Ctrl-C stops the nodes
//! cleanly; started again, the cluster resumes from the same data.
//!
//! The nodes talk over mutual TLS with a throw-away CA and node
//! certificates the example makes on first start under `--dir`/`tls`
//! (`certusd certs` makes them for a real deployment).
//!
//! With `--load`, clients on every node move money between accounts; at the
//! end the example checks that every node holds exactly the same data and
//! that no money was created or lost, and exits non-zero otherwise.
//!
//! ```text
//! cargo run --release --example cluster                        # until Ctrl-C
//! cargo run --release --example cluster -- --load --seconds 10
//! ```

#![allow(clippy::print_stdout)] // A command-line program: printing is its output.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use certus::NodeId;
use certus::kv::{KvError, KvStore};
use certus::net::CertificateAuthority;
use certus::node::{CommitOutcome, Error, NodeState};
use certus::server::{Daemon, DaemonConfig};

const NODES: u64 = 3;
const CLIENTS_PER_NODE: u64 = 4;
const ACCOUNTS: u64 = 32;
const OPENING_BALANCE: i64 = 1000;

#[derive(Debug)]
struct Options {
    dir: PathBuf,
    seconds: Option<u64>,
    load: bool,
}

const USAGE: &str = "usage: cluster [--dir PATH] [--seconds N] [--load]";

#[tokio::main]
async fn main() -> ExitCode {
    let options = match parse_options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("FAILED: {message}");
            ExitCode::FAILURE
        }
    }
}

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        dir: PathBuf::from("certus-cluster"),
        seconds: None,
        load: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--load" => options.load = true,
            "--dir" => options.dir = args.next().ok_or("--dir needs a path")?.into(),
            "--seconds" => {
                let value = args.next().ok_or("--seconds needs a number")?;
                let seconds = value
                    .parse()
                    .map_err(|_| format!("not a number: {value}"))?;
                options.seconds = Some(seconds);
            }
            other => return Err(format!("unexpected argument: {other}")),
        }
    }
    Ok(options)
}

/// The example's CA and node certificates under `dir/tls`, made on first
/// start.
fn certificates(dir: &std::path::Path) -> Result<(), String> {
    let tls = dir.join("tls");
    let ca = CertificateAuthority::open_or_create(&tls, "certus-example")
        .map_err(|e| format!("cannot make the example's CA: {e}"))?;
    for id in 1..=NODES {
        if !tls.join(format!("node-{id}.key")).exists() {
            let hosts = ["127.0.0.1".to_string(), "localhost".to_string()];
            ca.write_node(&tls, NodeId::new(id), &hosts)
                .map_err(|e| format!("cannot make node {id}'s certificate: {e}"))?;
        }
    }
    Ok(())
}

/// Node `id`'s settings: client port 6379 + id, peer port 7000 + id,
/// health port 9200 + id, all on 127.0.0.1; peer TLS with the example's
/// certificates.
fn node_config(dir: &std::path::Path, id: u64) -> DaemonConfig {
    let mut config = DaemonConfig::new(
        id,
        dir.join(format!("node-{id}")),
        &format!("127.0.0.1:{}", 7000 + id),
        &format!("127.0.0.1:{}", 6379 + id),
    );
    config.cluster = "certus-example".into();
    config.health_listen = Some(format!("127.0.0.1:{}", 9200 + id));
    let tls = dir.join("tls");
    config.peer_ca = Some(tls.join("ca.pem"));
    config.peer_cert = Some(tls.join(format!("node-{id}.pem")));
    config.peer_key = Some(tls.join(format!("node-{id}.key")));
    for member in 1..=NODES {
        let addr = format!("127.0.0.1:{}", 7000 + member);
        config.initial_members.insert(member.to_string(), addr);
    }
    config
}

async fn run(options: Options) -> Result<(), String> {
    certificates(&options.dir)?;
    let mut daemons = Vec::new();
    for id in 1..=NODES {
        let config = node_config(&options.dir, id);
        let daemon = Daemon::start(config).await;
        daemons.push(daemon.map_err(|e| format!("node {id} did not start: {e}"))?);
    }
    println!(
        "certus: {NODES} nodes, data under {}",
        options.dir.display()
    );
    for daemon in &daemons {
        let health = daemon
            .health_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        println!(
            "  {}: redis-cli -p {}   health: curl http://{health}/",
            daemon.order().config().node_id,
            daemon.client_addr().port(),
        );
    }
    let stores: Option<Vec<KvStore>> = daemons.iter().map(Daemon::store).collect();
    let result = match stores {
        Some(stores) => serve(&stores, &options).await,
        None => Err("a node is receiving a full state transfer".into()),
    };
    for daemon in &daemons {
        daemon.shutdown().await;
    }
    println!(
        "stopped; run again to resume from {}",
        options.dir.display()
    );
    result
}

/// Reports until Ctrl-C or `--seconds`, with the bank load when asked.
async fn serve(stores: &[KvStore], options: &Options) -> Result<(), String> {
    for store in stores {
        let mut status = store.node().watch_status();
        let synced = status.wait_for(|s| s.state == NodeState::Synced || s.state.is_terminal());
        synced.await.map_err(|e| e.to_string())?;
    }
    if !options.load {
        report_until_stopped(stores, options.seconds).await;
        return Ok(());
    }
    open_accounts(&stores[0]).await?;
    println!(
        "{} clients moving money between {ACCOUNTS} accounts",
        NODES * CLIENTS_PER_NODE
    );
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for client in 0..NODES * CLIENTS_PER_NODE {
        let store = stores[(client % NODES) as usize].clone();
        clients.push(tokio::spawn(transfer_loop(store, client, stop.clone())));
    }
    report_until_stopped(stores, options.seconds).await;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.map_err(|e| format!("client task: {e}"))??;
    }
    verify(stores).await
}

/// Whether `err` passes by itself: the cluster was between leaders (a
/// loaded machine can delay heartbeats past the primary lease), or a
/// commit's outcome got lost with it. A transfer is atomic either way, so
/// the total stays conserved.
fn transient(err: &KvError) -> bool {
    matches!(
        err,
        KvError::Node(Error::NotPrimary | Error::OutcomeUnknown | Error::Timeout { .. })
    )
}

/// Opens the accounts unless a previous run already did, riding out an
/// election (bounded).
async fn open_accounts(store: &KvStore) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match try_open_accounts(store).await {
            Err(err) if transient(&err) && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => return other.map_err(|e| e.to_string())?,
        }
    }
}

async fn try_open_accounts(store: &KvStore) -> Result<Result<(), String>, KvError> {
    let mut txn = store.begin().await?;
    if txn.get(b"account:00")?.is_some() {
        return Ok(Ok(()));
    }
    for account in 0..ACCOUNTS {
        txn.put(format!("account:{account:02}"), OPENING_BALANCE.to_string())?;
    }
    Ok(match txn.commit().await? {
        CommitOutcome::Committed { .. } => Ok(()),
        other => Err(format!("opening the accounts: {other:?}")),
    })
}

/// Transfers between random accounts until told to stop; a conflict is
/// retried by starting the transfer again.
async fn transfer_loop(store: KvStore, client: u64, stop: Arc<AtomicBool>) -> Result<(), String> {
    let mut state = client.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    while !stop.load(Ordering::Relaxed) {
        let (from, to, amount) = (next() % ACCOUNTS, next() % ACCOUNTS, (next() % 50) as i64);
        if from == to {
            continue;
        }
        // Commits and conflicts are counted by the nodes; after a conflict
        // (or an election) the next transfer simply starts afresh.
        match transfer(&store, from, to, amount).await {
            Ok(_) => {}
            Err(err) if transient(&err) => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(err) => return Err(err.to_string()),
        }
    }
    Ok(())
}

async fn transfer(
    store: &KvStore,
    from: u64,
    to: u64,
    amount: i64,
) -> Result<CommitOutcome, KvError> {
    let (from, to) = (format!("account:{from:02}"), format!("account:{to:02}"));
    let mut txn = store.begin().await?;
    let from_balance = balance(txn.get(from.as_bytes())?);
    let to_balance = balance(txn.get(to.as_bytes())?);
    if from_balance >= amount {
        txn.put(from, (from_balance - amount).to_string())?;
        txn.put(to, (to_balance + amount).to_string())?;
    }
    txn.commit().await
}

fn balance(value: Option<Bytes>) -> i64 {
    value
        .and_then(|v| std::str::from_utf8(&v).ok()?.parse().ok())
        .unwrap_or(0)
}

/// Prints one status line a second: commits and certification conflicts
/// of every client (this example's and yours), and each node's standing.
async fn report_until_stopped(stores: &[KvStore], seconds: Option<u64>) {
    let started = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.tick().await;
    let mut last_commits = 0;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = tokio::signal::ctrl_c() => break,
        }
        let statuses: Vec<_> = stores.iter().map(|s| s.node().status()).collect();
        let commits: u64 = statuses.iter().map(|s| s.local_commits).sum();
        let conflicts: u64 = statuses.iter().map(|s| s.local_cert_failures).sum();
        let nodes: Vec<String> = statuses
            .iter()
            .map(|s| format!("{} {:?} applied {}", s.node_id, s.state, s.last_visible))
            .collect();
        let elapsed = started.elapsed().as_secs();
        println!(
            "{elapsed:>4}s  {:>6} commits/s  {commits} committed  {conflicts} conflicts  | {}",
            commits - last_commits,
            nodes.join(" | ")
        );
        last_commits = commits;
        if seconds.is_some_and(|limit| elapsed >= limit) {
            break;
        }
    }
}

/// Every node holds the same accounts at the same position, and the money
/// adds up.
async fn verify(stores: &[KvStore]) -> Result<(), String> {
    let mut dumps = Vec::new();
    for store in stores {
        store.node().sync_wait().await.map_err(|e| e.to_string())?;
    }
    for store in stores {
        dumps.push(store.dump().await.map_err(|e| e.to_string())?);
    }
    let (position, first) = &dumps[0];
    for (index, (at, data)) in dumps.iter().enumerate().skip(1) {
        if data != first {
            return Err(format!(
                "node {} differs from node 1 ({at} vs {position})",
                index + 1
            ));
        }
    }
    let accounts = first.iter().filter(|(k, _)| k.starts_with(b"account:"));
    let total: i64 = accounts.map(|(_, v)| balance(Some(v.clone()))).sum();
    let expected = OPENING_BALANCE * ACCOUNTS as i64;
    if total != expected {
        return Err(format!("money was not conserved: {total} != {expected}"));
    }
    println!(
        "all {NODES} nodes identical at seqno {position}: {} accounts, total {total} conserved",
        first.len()
    );
    Ok(())
}
