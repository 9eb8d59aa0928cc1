//! Deterministic simulation of a certus cluster with turmoil: three real
//! certusd nodes (`Daemon`, in-memory engine) and their clients on one
//! thread, under simulated time and a simulated network, with a seeded
//! schedule of partitions, message holds, slow links, crashes and restarts.
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
const REGRESSIONS: &[(u64, &str)] = &[(
    1,
    "a causal read right after a whole-cluster restart was stale: the old \
     leader took its leadership back without knowing the commit index",
)];

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
    let mut failed = regressions(first..first + count, &settings);
    failed.extend(batch(first, count, jobs, &settings));
    if failed.is_empty() {
        println!("simulation: {count} seeds from {first}, all valid");
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

type Failures = Vec<(u64, Vec<String>)>;

/// Runs the regression seeds the batch does not cover.
fn regressions(batch: std::ops::Range<u64>, settings: &Settings) -> Failures {
    let mut failed = Vec::new();
    for &(seed, bug) in REGRESSIONS {
        if batch.contains(&seed) {
            continue;
        }
        let (summary, valid) = child(seed, settings);
        println!("{summary} (regression: {bug})");
        if !valid {
            failed.push((seed, vec![summary]));
        }
    }
    failed
}

/// Runs `count` seeds from `first`, `jobs` at a time, each in a process of
/// its own; the first seed twice, to check that it replays.
fn batch(first: u64, count: u64, jobs: u64, settings: &Settings) -> Failures {
    let failed = Mutex::new(Vec::new());
    let next = Mutex::new(first);
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| {
                loop {
                    let seed = {
                        let mut next = next.lock().unwrap();
                        *next += 1;
                        *next - 1
                    };
                    if seed >= first + count {
                        return;
                    }
                    let problems = run_seed(seed, seed == first, settings);
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
    println!("{summary}");
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
                let stderr = String::from_utf8_lossy(&output.stderr);
                let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
                format!("sim seed={seed} crashed ({}): {tail:?}", output.status)
            },
            str::to_string,
        );
    (summary, output.status.success())
}
