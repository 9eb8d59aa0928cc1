//! Clients: each worker thread is one client process on its own connection,
//! recording every operation it invokes and how it completed.
//!
//! Jepsen's process model: an operation whose outcome is unknown (`info`)
//! crashes its process. The worker never retries it; it reconnects as a new
//! process (its id plus the number of workers), so every process has at most
//! one operation open and an unknown outcome stays open forever.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::workload::Workload;

/// How an operation completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// It took effect, and its value is what it observed.
    Ok,
    /// It certainly did not take effect (a certification abort).
    Fail,
    /// The node refused it (not in the primary component, loading a state
    /// transfer): it did not take effect, and the client moves on to
    /// another node.
    Refused,
    /// It may or may not have taken effect.
    Info,
}

impl Outcome {
    fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Fail | Outcome::Refused => "fail",
            Outcome::Info => "info",
        }
    }

    /// What an error reply or a failed connection says about an operation.
    /// Only replies the server gives before anything could have been
    /// committed are failures; everything else (a timeout, a dropped
    /// connection, `-UNKNOWN`) is indeterminate.
    pub(crate) fn of(err: &redis::RedisError) -> Outcome {
        Outcome::of_code(err.code())
    }

    /// The same, from an error reply's code.
    pub(crate) fn of_code(code: Option<&str>) -> Outcome {
        match code {
            Some("CONFLICT" | "EXECABORT") => Outcome::Fail,
            Some("NOTPRIMARY" | "LOADING") => Outcome::Refused,
            _ => Outcome::Info,
        }
    }
}

/// The history: events in the order they happened, with times in
/// nanoseconds since the run began.
pub(crate) struct Recorder {
    start: Instant,
    events: Mutex<Vec<Value>>,
}

impl Recorder {
    pub(crate) fn new() -> Recorder {
        Recorder {
            start: Instant::now(),
            events: Mutex::new(Vec::new()),
        }
    }

    fn push(&self, kind: &str, process: u64, f: &str, value: Value) -> usize {
        let mut events = self.events.lock().unwrap_or_else(PoisonError::into_inner);
        let time = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let index = events.len();
        events.push(json!({
            "index": index, "type": kind, "process": process,
            "time": time, "f": f, "value": value,
        }));
        index
    }

    pub(crate) fn invoke(&self, process: u64, f: &str, value: Value) {
        self.push("invoke", process, f, value);
    }

    pub(crate) fn complete(&self, process: u64, outcome: Outcome, f: &str, value: Value) {
        self.push(outcome.name(), process, f, value);
    }

    /// Records a completion caused by `err`, keeping its text (Jepsen's
    /// `:error`).
    pub(crate) fn errored(
        &self,
        process: u64,
        outcome: Outcome,
        f: &str,
        value: Value,
        err: &dyn std::fmt::Display,
    ) {
        let index = self.push(outcome.name(), process, f, value);
        let mut events = self.events.lock().unwrap_or_else(PoisonError::into_inner);
        events[index]["error"] = Value::from(err.to_string());
    }

    /// Every event so far.
    pub(crate) fn events(&self) -> Vec<Value> {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Opens a connection with timeouts longer than the server's own commit
/// timeout, so a slow commit is reported by the server first.
pub(crate) fn connect(addr: SocketAddr) -> redis::RedisResult<redis::Connection> {
    let client = redis::Client::open(format!("redis://{addr}/"))?;
    let con = client.get_connection_with_timeout(Duration::from_secs(1))?;
    con.set_read_timeout(Some(Duration::from_secs(10)))?;
    con.set_write_timeout(Some(Duration::from_secs(10)))?;
    Ok(con)
}

/// What a worker shares with the run.
pub(crate) struct Shared {
    pub(crate) workload: Arc<dyn Workload>,
    pub(crate) recorder: Arc<Recorder>,
    /// Client addresses of the current members (membership changes).
    pub(crate) nodes: Arc<Mutex<Vec<SocketAddr>>>,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) workers: u64,
}

/// Worker `worker`: runs operations until told to stop.
pub(crate) fn worker(shared: &Shared, worker: u64, seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut process = worker;
    let mut target = usize::try_from(worker).unwrap_or(0);
    let mut con: Option<redis::Connection> = None;
    while !shared.stop.load(Ordering::Relaxed) {
        if con.is_none() {
            let addr = {
                let nodes = shared.nodes.lock().unwrap_or_else(PoisonError::into_inner);
                nodes[target % nodes.len()]
            };
            match connect(addr) {
                Ok(c) => con = Some(c),
                Err(_) => {
                    target += 1;
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
            }
        }
        let Some(c) = con.as_mut() else { continue };
        let outcome = shared.workload.step(c, process, &shared.recorder, &mut rng);
        match outcome {
            Outcome::Ok | Outcome::Fail => {}
            Outcome::Refused => {
                con = None;
                target += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            Outcome::Info => {
                process += shared.workers;
                con = None;
                target += 1;
            }
        }
    }
}
