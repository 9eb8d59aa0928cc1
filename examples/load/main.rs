//! A closed-loop load generator for any Redis-protocol endpoint: a certus
//! cluster, or a plain redis-server for comparison.
//!
//! Each client is one task on its own connection; client `i` talks to
//! `endpoints[i % n]`, so writes arrive at every node. Every operation is
//! timed from its first attempt to its success (retries included) in an HDR
//! histogram. The workloads match the ones of the side-by-side harness in
//! `scripts/perf-compare.sh`, so the numbers are comparable with Galera's and
//! etcd's:
//!
//! - `write`: `SET kv:%012d` of a random key out of `--keys`, a
//!   `--value-size` value that starts with a unique stamp; with
//!   `--keys-per-op N` above 1, one `MSET` of N random keys (one
//!   transaction, one write-set of N rows);
//! - `read`: `GET` of a random key (the keys are preloaded);
//! - `contended`: `WATCH hot:%04d`, `GET`, `MULTI`, `SET` +1, `EXEC` on one
//!   of `--hot` counters, retried while `EXEC` answers nil; afterwards the
//!   counters are read through every endpoint and their sum must equal the
//!   commits (up to the commits whose outcome is unknown);
//! - `mixed`: `--read-percent` reads, the rest writes.
//!
//! ```text
//! cargo run --release --example load -- --workload write --clients 64 --duration 20 \
//!     --endpoints 127.0.0.1:6380,127.0.0.1:6381,127.0.0.1:6382 --preload --json
//! ```

#![allow(clippy::print_stdout)] // A command-line tool: the result is its output.

mod client;
#[path = "../../tests/common/resp_client.rs"]
mod resp;
mod setup;

use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use serde_json::{Value, json};

use client::{Stats, Target};

/// What every client does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Workload {
    Write,
    Read,
    Contended,
    Mixed,
    /// A job queue: even clients push (`RPUSH`), odd ones pop (`BLPOP`
    /// with a one-second timeout; an empty pop counts in `aborts`).
    Queue,
}

/// One run.
#[derive(Debug, Parser)]
#[command(about = "Closed-loop load for Redis-protocol endpoints")]
struct Args {
    #[arg(long, value_enum, default_value = "write")]
    workload: Workload,
    /// Concurrent clients, each on its own connection.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Seconds of measured load (at most an hour).
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Comma-separated host:port list.
    #[arg(long, default_value = "127.0.0.1:6379")]
    endpoints: String,
    /// Keys of the write, read and mixed workloads.
    #[arg(long, default_value_t = 100_000)]
    keys: u64,
    /// Counters of the contended workload.
    #[arg(long, default_value_t = 10)]
    hot: u64,
    /// Bytes per written value (at least the 24-byte stamp).
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Keys written by one write operation (an MSET above 1).
    #[arg(long, default_value_t = 1)]
    keys_per_op: usize,
    /// Reads out of 100 operations in the mixed workload.
    #[arg(long, default_value_t = 50)]
    read_percent: u8,
    /// Write every key before the run (implied by read and mixed).
    #[arg(long)]
    preload: bool,
    /// Stop after this many operations in all.
    #[arg(long, default_value_t = 20_000_000)]
    max_ops: u64,
    /// Seconds before an operation counts as failed (outcome unknown).
    #[arg(long, default_value_t = 10)]
    op_timeout: u64,
    /// Seed of the clients' key choices (default: from the clock).
    #[arg(long)]
    seed: Option<u64>,
    /// Runtime worker threads (default: one per CPU).
    #[arg(long)]
    threads: Option<usize>,
    /// A label copied into the JSON line.
    #[arg(long, default_value = "")]
    label: String,
    /// Print one JSON line instead of a summary.
    #[arg(long)]
    json: bool,
}

fn main() {
    let args = Args::parse();
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build();
    let result = match runtime {
        Ok(runtime) => runtime.block_on(run(&args)),
        Err(err) => Err(format!("runtime: {err}")),
    };
    match result {
        Ok(report) => {
            let failed = report["verify"]["ok"] == Value::Bool(false);
            if args.json {
                println!("{report}");
            } else {
                print_summary(&report);
            }
            if failed {
                std::process::exit(1);
            }
        }
        Err(err) => {
            eprintln!("load: {err}");
            std::process::exit(2);
        }
    }
}

async fn run(args: &Args) -> Result<Value, String> {
    let endpoints: Vec<String> = args
        .endpoints
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(str::to_string)
        .collect();
    if endpoints.is_empty() || args.clients == 0 {
        return Err("need at least one endpoint and one client".into());
    }
    if args.value_size < client::STAMP_LEN {
        return Err(format!(
            "--value-size must be at least {}",
            client::STAMP_LEN
        ));
    }
    let seed = args.seed.unwrap_or_else(clock_seed);
    let preload = args.preload || matches!(args.workload, Workload::Read | Workload::Mixed);
    if preload && args.workload != Workload::Contended {
        setup::preload(&endpoints, args.keys, args.value_size, seed).await?;
    }
    if args.workload == Workload::Contended {
        setup::reset_hot(&endpoints[0], args.hot).await?;
    }
    let duration = Duration::from_secs(args.duration.min(3600));
    let target = Target {
        workload: args.workload,
        keys: args.keys.max(1),
        hot: args.hot.max(1),
        value_size: args.value_size,
        keys_per_op: args.keys_per_op.max(1),
        read_percent: args.read_percent.min(100),
        op_timeout: Duration::from_secs(args.op_timeout.max(1)),
        max_ops_per_client: args.max_ops.div_ceil(args.clients as u64),
        seed,
    };
    let (stats, elapsed) = client::run_all(&target, &endpoints, args.clients, duration).await?;
    let verify = if args.workload == Workload::Contended {
        setup::verify(&endpoints, args.hot, stats.ops, stats.ambiguous).await
    } else {
        Value::Null
    };
    Ok(report(args, &endpoints, seed, &stats, elapsed, verify))
}

fn report(
    args: &Args,
    endpoints: &[String],
    seed: u64,
    stats: &Stats,
    elapsed: Duration,
    verify: Value,
) -> Value {
    let secs = elapsed.as_secs_f64().max(f64::EPSILON);
    let latency = &stats.latency;
    let quantile = |q: f64| {
        if latency.is_empty() {
            0
        } else {
            latency.value_at_quantile(q)
        }
    };
    json!({
        "label": args.label,
        "tool": "certus-load",
        "workload": format!("{:?}", args.workload).to_lowercase(),
        "clients": args.clients,
        "endpoints": endpoints,
        "duration_s": secs,
        "seed": seed,
        "keys": args.keys,
        "hot": args.hot,
        "value_size": args.value_size,
        "keys_per_op": args.keys_per_op.max(1),
        "ops": stats.ops,
        "ops_per_s": (stats.ops as f64 / secs).round() as u64,
        "p50_us": quantile(0.50),
        "p90_us": quantile(0.90),
        "p99_us": quantile(0.99),
        "max_us": latency.max(),
        "mean_us": latency.mean().round(),
        "errors": stats.errors,
        "aborts": stats.aborts,
        "ambiguous": stats.ambiguous,
        "reconnects": stats.reconnects,
        "first_error": stats.first_error,
        "verify": verify,
    })
}

fn print_summary(report: &Value) {
    println!(
        "{} {} clients: {} ops in {:.1} s = {} ops/s; latency p50 {} us, p90 {} us, p99 {} us, max {} us",
        report["workload"].as_str().unwrap_or("?"),
        report["clients"],
        report["ops"],
        report["duration_s"].as_f64().unwrap_or(0.0),
        report["ops_per_s"],
        report["p50_us"],
        report["p90_us"],
        report["p99_us"],
        report["max_us"],
    );
    println!(
        "errors {} (first: {}), aborts {}, ambiguous {}, reconnects {}",
        report["errors"],
        report["first_error"],
        report["aborts"],
        report["ambiguous"],
        report["reconnects"],
    );
    if !report["verify"].is_null() {
        println!("verify: {}", report["verify"]);
    }
}

/// A seed from the clock, for runs that do not name one.
fn clock_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
}

/// An empty latency histogram: 1 us to 120 s, three significant digits.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("constant, valid bounds")
}

/// Microseconds since `start`, at least one.
fn micros_since(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_micros())
        .unwrap_or(u64::MAX)
        .max(1)
}
