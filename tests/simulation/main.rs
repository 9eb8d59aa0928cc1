//! Deterministic simulation of a certus cluster with turmoil: three real
//! certusd nodes (`Daemon`, in-memory engine, each log on a simulated disk)
//! and their clients on one thread, under simulated time and a simulated
//! network, with a seeded schedule of partitions, message holds, slow
//! links, crashes (which lose what a disk had not synced) and restarts, a
//! log disk that fills up or fails with I/O errors (the node is restarted
//! on what it kept), and an engine whose writes fail.
//! After each run every node must hold the same committed state, every
//! acknowledged append must be in it, and the list-append checker must
//! find no anomaly the isolation level forbids.
//!
//! ```text
//! cargo test --test simulation                         # the CI batch
//! CERTUS_SIM_SEEDS=500 cargo test --test simulation    # more seeds
//! CERTUS_SIM_SEED=1234 cargo test --test simulation    # replay one, verbosely
//! ```
//! `CERTUS_SIM_FIRST` moves the batch's first seed, `CERTUS_SIM_TIME` the
//! seconds of workload per seed. Each failure prints the seed that replays
//! it; the first seed of a batch also runs twice, and must produce the same
//! history. The seeds in [`REGRESSIONS`] run in every batch.
//!
//! Every seed of a batch runs in a process of its own, exactly as
//! `CERTUS_SIM_SEED` runs it (tokio numbers tasks process-wide, and the
//! numbers decide the order tasks are dropped in when a host crashes);
//! `CERTUS_SIM_JOBS` of them at once, one per core by default.
//!
//! The binary must be built with `--cfg tokio_unstable` (`make simulation`
//! does), which lets turmoil seed tokio's own random choices; otherwise it
//! says so and runs nothing.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.
#![allow(clippy::print_stdout)] // The runner reports every seed on stdout.

mod cluster;
mod nemesis;
#[path = "../common/resp_client.rs"]
mod resp;
mod run;
mod workload;

use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Duration;

use run::{Settings, run};

/// Seeds that once found a bug, with what it was; each runs in every batch.
const REGRESSIONS: &[(u64, &str)] = &[
    (
        1,
        "a causal read right after a whole-cluster restart was stale: the old \
         leader took its leadership back without knowing the commit index",
    ),
    (
        5034,
        "a node restarted after a majority crash needed a state transfer while \
         the only donor was still outside the primary component; the daemon \
         gave up instead of retrying",
    ),
    (
        7008,
        "as 5034: the joiner's start failed on 'no donor' while its donor \
         was recovering",
    ),
    (9036, "as 5034, after two nodes crashed at once"),
    (
        9048,
        "as 5034, after all three nodes crashed: two replayed their logs \
         while the third, needing a transfer, gave up",
    ),
    (
        7051,
        "the final reads ran while a commit was still in flight (its \
         submission kept retrying after its verdict was known), so nodes \
         read before and after it looked diverged",
    ),
    (9054, "as 7051, serializable"),
    (
        20028,
        "a crashed leader's unreplicated entry at 346 survived its restart; a \
         snapshot point at 874 moved the applied watermark before raft's purge \
         reached the log, and the node certified its own stale 346 (found by \
         the certification digest)",
    ),
    (20068, "as 20028"),
    (20146, "as 20028"),
    (20222, "as 20028"),
    (20414, "as 20028"),
    (
        92645,
        "a node whose full state transfer failed storing (its redb disk was \
         full) retried on the same database, which redb refuses to use after \
         an I/O error until it is reopened: it never recovered after the heal",
    ),
];

fn env(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    match value.parse() {
        Ok(n) => Some(n),
        Err(_) => panic!("{name}={value:?} is not a number"),
    }
}

fn main() -> ExitCode {
    if std::env::args().any(|a| a == "--list") {
        // `cargo test -- --list` asks every test binary for its tests.
        return ExitCode::SUCCESS;
    }
    if !cfg!(tokio_unstable) {
        // Tokio then draws some choices (which watch waiter wakes first)
        // from an unseeded generator, and a seed would not replay.
        println!(
            "simulation: skipped; it needs tokio's seeded randomness: run `make simulation` \
             (RUSTFLAGS=\"--cfg tokio_unstable\", its own target directory)"
        );
        return ExitCode::SUCCESS;
    }
    run::install_panic_hook();
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_timer(SimTime)
            .with_ansi(false)
            .with_writer(std::io::stderr)
            .init();
    }
    let settings = Settings {
        nodes: 3,
        clients: 4,
        duration: Duration::from_secs(env("CERTUS_SIM_TIME").unwrap_or(20)),
    };
    if let Some(seed) = env("CERTUS_SIM_SEED") {
        let report = run(
            seed,
            &settings,
            std::env::var_os("CERTUS_SIM_QUIET").is_none(),
        );
        println!("{}", report.summary());
        return report.exit_code();
    }
    let first = env("CERTUS_SIM_FIRST").unwrap_or(1);
    let count = env("CERTUS_SIM_SEEDS").unwrap_or(6);
    let jobs = env("CERTUS_SIM_JOBS")
        .or_else(|| {
            std::thread::available_parallelism()
                .ok()
                .map(|n| n.get() as u64)
        })
        .unwrap_or(1)
        .max(1);
    let mut seeds: Vec<u64> = REGRESSIONS
        .iter()
        .map(|&(seed, _)| seed)
        .filter(|seed| !(first..first + count).contains(seed))
        .collect();
    seeds.extend(first..first + count);
    let failed = batch(&seeds, first, jobs, &settings);
    if failed.is_empty() {
        println!(
            "simulation: {count} seeds from {first} and {} regression seeds, all valid",
            seeds.len() - usize::try_from(count).unwrap()
        );
        return ExitCode::SUCCESS;
    }
    for (seed, problems) in &failed {
        eprintln!("sim seed={seed} FAILED; replay with CERTUS_SIM_SEED={seed}");
        for problem in problems {
            eprintln!("  {problem}");
        }
    }
    ExitCode::FAILURE
}

/// Log lines stamped with simulated time, so they line up with the
/// fault schedule and the history.
struct SimTime;

impl tracing_subscriber::fmt::time::FormatTime for SimTime {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        let now = turmoil::sim_elapsed().unwrap_or_default();
        write!(w, "{:>9.3}s", now.as_secs_f64())
    }
}

type Failures = Vec<(u64, Vec<String>)>;

/// Runs `seeds`, `jobs` at a time, each in a process of its own; `replay`
/// twice, to check that it replays.
fn batch(seeds: &[u64], replay: u64, jobs: u64, settings: &Settings) -> Failures {
    let failed = Mutex::new(Vec::new());
    let next = Mutex::new(seeds.iter());
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| {
                loop {
                    let Some(&seed) = next.lock().unwrap().next() else {
                        return;
                    };
                    let problems = run_seed(seed, seed == replay, settings);
                    if !problems.is_empty() {
                        failed.lock().unwrap().push((seed, problems));
                    }
                }
            });
        }
    });
    failed.into_inner().unwrap()
}

/// Runs one seed (twice when `replay`), printing its summary; its problems.
fn run_seed(seed: u64, replay: bool, settings: &Settings) -> Vec<String> {
    let (summary, valid) = child(seed, settings);
    match REGRESSIONS.iter().find(|&&(s, _)| s == seed) {
        Some((_, bug)) => println!("{summary} (regression: {bug})"),
        None => println!("{summary}"),
    }
    let mut problems = Vec::new();
    if !valid {
        problems.push(summary.clone());
    }
    if replay {
        let (again, _) = child(seed, settings);
        if fingerprint(&again) == fingerprint(&summary) {
            println!("sim seed={seed}: replayed in a new process, same history");
        } else {
            problems.push(format!("not deterministic: {summary} then {again}"));
        }
    }
    problems
}

fn fingerprint(summary: &str) -> Option<&str> {
    summary
        .split_whitespace()
        .find_map(|word| word.strip_prefix("fingerprint="))
}

/// Runs `seed` in a new process of this binary, exactly as
/// `CERTUS_SIM_SEED=seed` would: tokio numbers tasks process-wide, and the
/// numbers decide the order tasks are dropped in when a host crashes, so a
/// seed replays exactly only in a process of its own. Its summary line and
/// whether it was valid.
fn child(seed: u64, settings: &Settings) -> (String, bool) {
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .env("CERTUS_SIM_SEED", seed.to_string())
        .env("CERTUS_SIM_TIME", settings.duration.as_secs().to_string())
        .env("CERTUS_SIM_QUIET", "1")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary = stdout
        .lines()
        .find(|l| l.starts_with("sim seed="))
        .map_or_else(
            || {
                // The first panic says what broke; else the end of the output.
                let stderr = String::from_utf8_lossy(&output.stderr);
                let lines: Vec<&str> = stderr.lines().collect();
                let from = lines
                    .iter()
                    .position(|l| l.contains("panicked at"))
                    .unwrap_or(lines.len().saturating_sub(5));
                let shown: Vec<&str> = lines.iter().skip(from).take(5).copied().collect();
                format!("sim seed={seed} crashed ({}): {shown:?}", output.status)
            },
            str::to_string,
        );
    (summary, output.status.success())
}
