//! A three-node certus cluster in one process, under load.
//!
//! Three replicas of the reference key-value store share an in-process
//! total order. Clients on every node move money between accounts at the
//! same time; every second a status line shows commits, certification
//! conflicts and each node's position. On Ctrl-C (or after `--seconds N`)
//! the clients stop and the example checks that every node holds exactly
//! the same data and that no money was created or lost.
//!
//! ```text
//! cargo run --release --example cluster                 # until Ctrl-C
//! cargo run --release --example cluster -- --seconds 10
//! ```

#![allow(clippy::print_stdout)] // A command-line program: printing is its output.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use certus::NodeId;
use certus::kv::{KvError, KvStore, MemoryEngine, StoreConfig};
use certus::node::CommitOutcome;
use certus::order::{InProcessConfig, InProcessOrder};

const NODES: u64 = 3;
const CLIENTS_PER_NODE: u64 = 4;
const ACCOUNTS: u64 = 32;
const OPENING_BALANCE: i64 = 1000;

#[derive(Default)]
struct Counters {
    commits: AtomicU64,
    conflicts: AtomicU64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let seconds = match parse_seconds() {
        Ok(seconds) => seconds,
        Err(message) => {
            eprintln!("{message}\nusage: cluster [--seconds N]");
            return ExitCode::from(2);
        }
    };
    match run(seconds).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("FAILED: {message}");
            ExitCode::FAILURE
        }
    }
}

fn parse_seconds() -> Result<Option<u64>, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => Ok(None),
        [flag, value] if flag == "--seconds" => value
            .parse()
            .map(Some)
            .map_err(|_| format!("not a number of seconds: {value}")),
        _ => Err(format!("unexpected arguments: {args:?}")),
    }
}

async fn run(seconds: Option<u64>) -> Result<(), String> {
    let ids: Vec<NodeId> = (1..=NODES).map(NodeId::new).collect();
    let hub = InProcessOrder::new(InProcessConfig::default(), ids.clone());
    let mut stores = Vec::new();
    for id in &ids {
        let order = Arc::new(hub.endpoint(*id).map_err(|e| e.to_string())?);
        let engine = Arc::new(MemoryEngine::new());
        let store = KvStore::open(StoreConfig::new(*id), engine, order).await;
        stores.push(store.map_err(|e| format!("node {id} did not start: {e}"))?);
    }
    println!(
        "certus: {NODES} nodes up; {} clients moving money",
        NODES * CLIENTS_PER_NODE
    );
    open_accounts(&stores[0]).await?;

    let stop = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(Counters::default());
    let mut clients = Vec::new();
    for client in 0..NODES * CLIENTS_PER_NODE {
        let store = stores[(client % NODES) as usize].clone();
        let (stop, counters) = (stop.clone(), counters.clone());
        clients.push(tokio::spawn(transfer_loop(store, client, stop, counters)));
    }
    report_until_stopped(&stores, &counters, seconds).await;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.map_err(|e| format!("client task: {e}"))??;
    }
    let result = verify(&stores).await;
    for store in &stores {
        store.shutdown().await;
    }
    result
}

async fn open_accounts(store: &KvStore) -> Result<(), String> {
    let mut txn = store.begin().await.map_err(|e| e.to_string())?;
    for account in 0..ACCOUNTS {
        txn.put(format!("account:{account:02}"), OPENING_BALANCE.to_string())
            .map_err(|e| e.to_string())?;
    }
    match txn.commit().await.map_err(|e| e.to_string())? {
        CommitOutcome::Committed { .. } => Ok(()),
        other => Err(format!("opening the accounts: {other:?}")),
    }
}

/// Transfers between random accounts until told to stop; a conflict is
/// retried by starting the transfer again.
async fn transfer_loop(
    store: KvStore,
    client: u64,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
) -> Result<(), String> {
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
        match transfer(&store, from, to, amount)
            .await
            .map_err(|e| e.to_string())?
        {
            CommitOutcome::Committed { .. } => counters.commits.fetch_add(1, Ordering::Relaxed),
            _ => counters.conflicts.fetch_add(1, Ordering::Relaxed),
        };
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

async fn report_until_stopped(stores: &[KvStore], counters: &Counters, seconds: Option<u64>) {
    let started = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.tick().await;
    let mut last_commits = 0;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = tokio::signal::ctrl_c() => break,
        }
        let commits = counters.commits.load(Ordering::Relaxed);
        let conflicts = counters.conflicts.load(Ordering::Relaxed);
        let nodes: Vec<String> = stores
            .iter()
            .map(|s| {
                let status = s.node().status();
                format!(
                    "{} {:?} applied {}",
                    status.node_id, status.state, status.last_applied
                )
            })
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
        if at != position || data != first {
            return Err(format!(
                "node {} differs from node 1 ({at} vs {position})",
                index + 1
            ));
        }
    }
    let total: i64 = first.iter().map(|(_, v)| balance(Some(v.clone()))).sum();
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
