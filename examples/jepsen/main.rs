//! A Jepsen-style test of real `certusd` processes on loopback: clients run
//! a workload against every node while a nemesis kills, pauses, partitions
//! and replaces nodes; then every fault is undone, every node is read, and
//! the history is checked. Writes `history.jsonl` (Elle's JSON, re-checkable
//! with `certus-check` or Elle), `nemesis.log` and `verdict.json` to the
//! output directory, and exits non-zero on any anomaly, lost acknowledged
//! write, divergence between nodes, or a cluster that does not recover.
//!
//! ```text
//! cargo build --features rocksdb --bins --examples
//! cargo run --features rocksdb --example jepsen -- --workload append --nemesis partition,kill --time 60
//! ```

#![allow(clippy::print_stdout)] // A command-line tool: the verdict is its output.

mod client;
mod cluster;
mod nemesis;
mod proxy;
mod workload;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{Value, json};

use client::{Recorder, Shared};
use cluster::{Cluster, Settings};
use nemesis::{Fault, Nemesis};
use workload::Workload;

/// One Jepsen-style run.
#[derive(Debug, Parser)]
struct Args {
    /// append, register, mixed, bank, set, queue, hash (rw-register over
    /// hash fields with WATCH) or controlplane (quotas, instances, fixed
    /// IPs and host claims, by Lua scripts and WATCH).
    #[arg(long, default_value = "append")]
    workload: String,
    /// Faults: none, all, or a list of kill, kill-majority, kill-all,
    /// pause, partition, member.
    #[arg(long, default_value = "partition,kill")]
    nemesis: String,
    /// Seconds of load under faults.
    #[arg(long, default_value_t = 30)]
    time: u64,
    /// Nodes at the start.
    #[arg(long, default_value_t = 3)]
    nodes: u64,
    /// Client processes (each on its own connection).
    #[arg(long, default_value_t = 6)]
    clients: u64,
    /// Storage engine: fjall (certusd's default), rocksdb, redb or memory.
    #[arg(long, default_value = "fjall")]
    engine: String,
    /// snapshot (SI with causal reads) or serializable.
    #[arg(long, default_value = "snapshot")]
    isolation: String,
    /// Seed of the nemesis schedule and the clients' choices.
    #[arg(long)]
    seed: Option<u64>,
    /// Output directory (default: a new one under the system temp dir).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The certusd binary (default: next to this example's directory).
    #[arg(long)]
    certusd: Option<PathBuf>,
}

fn main() {
    let args = Args::parse();
    match run(&args) {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(err) => {
            eprintln!("jepsen: {err}");
            std::process::exit(2);
        }
    }
}

fn make_workload(args: &Args) -> Result<Arc<dyn Workload>, String> {
    let serializable = match args.isolation.as_str() {
        "snapshot" => false,
        "serializable" => true,
        other => return Err(format!("unknown isolation {other:?}")),
    };
    Ok(match args.workload.as_str() {
        "append" => Arc::new(workload::Transactions::new(
            workload::Family::Append,
            serializable,
        )),
        "register" => Arc::new(workload::Transactions::new(
            workload::Family::Register,
            serializable,
        )),
        "mixed" => Arc::new(workload::Mixed::new(serializable)),
        "bank" => Arc::new(workload::Bank),
        "set" => Arc::new(workload::SetFull::new()),
        "queue" => Arc::new(workload::Queue::new()),
        "hash" => Arc::new(workload::HashRegisters::new()),
        "controlplane" => Arc::new(workload::ControlPlane::new()),
        other => return Err(format!("unknown workload {other:?}")),
    })
}

fn certusd(args: &Args) -> Result<PathBuf, String> {
    if let Some(path) = &args.certusd {
        return Ok(path.clone());
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let path = exe
        .parent()
        .and_then(|examples| examples.parent())
        .map(|dir| dir.join("certusd"))
        .ok_or("cannot locate certusd")?;
    if path.exists() {
        Ok(path)
    } else {
        Err(format!(
            "{} not found: build it first (cargo build --features rocksdb --bins --examples) or pass --certusd",
            path.display()
        ))
    }
}

fn out_dir(args: &Args) -> Result<PathBuf, String> {
    let dir = match &args.out {
        Some(dir) => dir.clone(),
        None => tempfile::Builder::new()
            .prefix("certus-jepsen-")
            .tempdir()
            .map_err(|e| e.to_string())?
            .keep(),
    };
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

/// The whole run; `Ok(valid)`.
fn run(args: &Args) -> Result<bool, String> {
    let faults = Fault::parse_list(&args.nemesis)?;
    let workload = make_workload(args)?;
    let seed = args.seed.unwrap_or_else(|| fastrand::u64(..));
    let out = out_dir(args)?;
    println!(
        "jepsen: workload {} nemesis {} time {}s seed {seed} engine {} isolation {}; output in {}",
        args.workload,
        args.nemesis,
        args.time,
        args.engine,
        args.isolation,
        out.display()
    );
    let settings = Settings {
        certusd: certusd(args)?,
        dir: out.clone(),
        engine: args.engine.clone(),
        isolation: args.isolation.clone(),
    };
    let mut cluster = Cluster::start(settings, args.nodes)?;
    let mut con = client::connect(cluster.nodes[0].client).map_err(|e| e.to_string())?;
    workload.setup(&mut con)?;

    let recorder = Arc::new(Recorder::new());
    let nodes = Arc::new(Mutex::new(cluster.clients()));
    let stop = Arc::new(AtomicBool::new(false));
    let shared = Arc::new(Shared {
        workload: workload.clone(),
        recorder: recorder.clone(),
        nodes: nodes.clone(),
        stop: stop.clone(),
        workers: args.clients,
    });
    let workers: Vec<_> = (0..args.clients)
        .map(|w| {
            let shared = shared.clone();
            std::thread::spawn(move || client::worker(&shared, w, seed ^ (w + 1)))
        })
        .collect();

    let mut nemesis = Nemesis::new(faults, seed);
    let until = Instant::now() + Duration::from_secs(args.time);
    let faulted = nemesis.run(&mut cluster, &nodes, until);
    let recovered = faulted.and_then(|()| cluster.recover(Duration::from_secs(120)));
    // A little load on the healed cluster, so recovery is exercised too.
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        let _ = worker.join();
    }
    std::fs::write(out.join("nemesis.log"), nemesis.log.join("\n") + "\n")
        .map_err(|e| e.to_string())?;
    if let Err(err) = recovered {
        write_history(&out, &recorder.events())?;
        return Err(err);
    }

    let finals = final_reads(&cluster, workload.as_ref(), &recorder)?;
    let digests = cert_digests(&cluster, Duration::from_secs(30))?;
    judge(
        args,
        seed,
        &out,
        workload.as_ref(),
        &recorder.events(),
        &Finals {
            reads: finals,
            digests,
        },
    )
}

/// What every node holds at the end.
struct Finals {
    /// Each node's final read.
    reads: Vec<Value>,
    /// Each node's last certified seqno and certification digest there, read
    /// when all had reached the same seqno.
    digests: Vec<(u64, String)>,
}

/// Checks the history, writes it with the verdict, and prints the verdict.
fn judge(
    args: &Args,
    seed: u64,
    out: &std::path::Path,
    workload: &dyn Workload,
    events: &[Value],
    finals: &Finals,
) -> Result<bool, String> {
    write_history(out, events)?;
    let verdict = workload.check(events, &finals.reads);
    let identical = finals.reads.windows(2).all(|w| w[0] == w[1]);
    // One certified history: equal certification digests at one seqno on every node.
    let same_digests = finals.digests.windows(2).all(|w| w[0] == w[1]);
    let valid = verdict.valid && identical && same_digests;
    let report = json!({
        "valid": valid,
        "workload": args.workload, "nemesis": args.nemesis, "time_s": args.time,
        "seed": seed, "engine": args.engine, "isolation": args.isolation,
        "nodes_identical": identical,
        "same_cert_digest": same_digests,
        "cert_digests": finals.digests,
        "events": events.len(),
        "result": verdict.summary,
    });
    let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    std::fs::write(out.join("verdict.json"), &text).map_err(|e| e.to_string())?;
    println!("{text}");
    let counts = &report["result"]["operations"];
    println!(
        "jepsen-result: {} {} {} {}s {} ok {} fail {} info {}",
        args.workload,
        args.nemesis,
        args.isolation,
        args.time,
        counts["ok"],
        counts["fail"],
        counts["info"],
        if valid { "valid" } else { "INVALID" }
    );
    Ok(valid)
}

/// Every node's final read, each as a recorded operation of its own process.
fn final_reads(
    cluster: &Cluster,
    workload: &dyn Workload,
    recorder: &Recorder,
) -> Result<Vec<Value>, String> {
    let mut finals = Vec::new();
    for node in &cluster.nodes {
        let mut con = client::connect(node.client).map_err(|e| e.to_string())?;
        let process = 1_000_000 + node.id;
        finals.push(workload.final_read(&mut con, process, recorder)?);
    }
    Ok(finals)
}

/// Every node's last certified seqno and certification digest, once all nodes
/// report the same seqno (a commit still being retried inside a node may
/// move it after the clients stopped); bounded by `bound`.
fn cert_digests(cluster: &Cluster, bound: Duration) -> Result<Vec<(u64, String)>, String> {
    let deadline = Instant::now() + bound;
    loop {
        let mut positions = Vec::new();
        for node in &cluster.nodes {
            let mut con = client::connect(node.client).map_err(|e| e.to_string())?;
            let info: String = redis::cmd("INFO")
                .arg("replication")
                .query(&mut con)
                .map_err(|e| format!("INFO on node {}: {e}", node.id))?;
            let field = |name: &str| {
                info.lines()
                    .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                    .map(|v| v.trim().to_string())
                    .ok_or_else(|| format!("node {} reports no {name}", node.id))
            };
            let seqno = field("wsrep_last_committed")?
                .parse()
                .map_err(|e| format!("wsrep_last_committed: {e}"))?;
            positions.push((seqno, field("certus_cert_digest")?));
        }
        if positions.windows(2).all(|w| w[0].0 == w[1].0) || Instant::now() >= deadline {
            return Ok(positions);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn write_history(out: &std::path::Path, events: &[Value]) -> Result<(), String> {
    let history: String = events.iter().map(|e| format!("{e}\n")).collect();
    std::fs::write(out.join("history.jsonl"), history).map_err(|e| e.to_string())
}
