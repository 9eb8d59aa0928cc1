//! `certus-check`: checks a list-append or rw-register history in Elle's
//! JSON form (an array of events, or one per line) and prints every anomaly
//! with its evidence.
//!
//! ```text
//! certus-check history.json                  # exit 1 on any anomaly
//! certus-check --allow G2-item history.json  # snapshot isolation allows write skew
//! ```
//!
//! Exit status: 0 when no anomaly outside `--allow` was found, 1 when one
//! was, 2 when the file is not a history.

use std::path::PathBuf;
use std::process::ExitCode;

use certus::check::{check, read_json};
use clap::Parser;

/// Checks a list-append or rw-register history for consistency anomalies
/// (after Elle).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The history, in Elle's JSON form.
    history: PathBuf,
    /// Anomalies the claimed consistency model allows (repeatable), e.g.
    /// G2-item for snapshot isolation.
    #[arg(long, value_name = "ANOMALY")]
    allow: Vec<String>,
}

#[allow(clippy::print_stdout)] // A command-line program: printing is its output.
fn main() -> ExitCode {
    let args = Args::parse();
    let text = match std::fs::read_to_string(&args.history) {
        Ok(text) => text,
        Err(err) => {
            eprintln!(
                "certus-check: cannot read {}: {err}",
                args.history.display()
            );
            return ExitCode::from(2);
        }
    };
    let report = match read_json(&text).and_then(|history| check(&history)) {
        Ok(report) => report,
        Err(err) => {
            eprintln!("certus-check: {}: {err}", args.history.display());
            return ExitCode::from(2);
        }
    };
    for anomaly in &report.anomalies {
        let allowed = args.allow.contains(&anomaly.name());
        let note = if allowed { " (allowed)" } else { "" };
        println!(
            "{}{note}: rules out {}",
            anomaly.name(),
            anomaly.rules_out()
        );
        println!("  {}", anomaly.explanation);
    }
    let allowed: Vec<&str> = args.allow.iter().map(String::as_str).collect();
    if report.is_valid_except(&allowed) {
        println!("valid: no anomaly outside {allowed:?}");
        ExitCode::SUCCESS
    } else {
        println!("invalid: {:?}", report.names());
        ExitCode::FAILURE
    }
}
