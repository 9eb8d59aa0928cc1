//! Jepsen's set-full: clients add unique elements to a set (spread over a
//! few keys, each a string of "element," items) and read the whole set.
//! An acknowledged add must appear in every read that began after it
//! completed (else the read was stale) and in every node's final read (else
//! it was lost); an add that failed must never appear.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use redis::Connection;
use serde_json::{Value, json};

use super::{Verdict, Workload, outcome_counts, record_final, record_read};
use crate::client::{Outcome, Recorder};

const SHARDS: i64 = 8;

/// The set-full workload.
pub(crate) struct SetFull {
    next: AtomicI64,
    garbage: AtomicU64,
}

impl SetFull {
    pub(crate) fn new() -> SetFull {
        SetFull {
            next: AtomicI64::new(0),
            garbage: AtomicU64::new(0),
        }
    }

    fn read(&self, con: &mut Connection) -> redis::RedisResult<Vec<i64>> {
        let keys: Vec<String> = (0..SHARDS).map(|s| format!("s:{s}")).collect();
        let values: Vec<redis::Value> = redis::cmd("MGET").arg(keys).query(con)?;
        let mut set = BTreeSet::new();
        for value in &values {
            match super::parse_list(value) {
                Some(items) => set.extend(items),
                None => {
                    self.garbage.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        Ok(set.into_iter().collect())
    }
}

impl Workload for SetFull {
    fn step(
        &self,
        con: &mut Connection,
        process: u64,
        recorder: &Recorder,
        rng: &mut fastrand::Rng,
    ) -> Outcome {
        if rng.u8(..10) < 8 {
            let element = self.next.fetch_add(1, Ordering::Relaxed);
            recorder.invoke(process, "add", json!(element));
            let reply = redis::cmd("APPEND")
                .arg(format!("s:{}", element % SHARDS))
                .arg(format!("{element},"))
                .query::<i64>(con);
            return match reply {
                Ok(_) => {
                    recorder.complete(process, Outcome::Ok, "add", json!(element));
                    Outcome::Ok
                }
                Err(err) => {
                    let outcome = Outcome::of(&err);
                    recorder.errored(process, outcome, "add", json!(element), &err);
                    outcome
                }
            };
        }
        recorder.invoke(process, "read", Value::Null);
        record_read(recorder, process, self.read(con).map(|set| json!(set)))
    }

    fn final_read(
        &self,
        con: &mut Connection,
        process: u64,
        recorder: &Recorder,
    ) -> Result<Value, String> {
        recorder.invoke(process, "read", Value::Null);
        record_final(recorder, process, self.read(con).map(|set| json!(set)))
    }

    fn check(&self, events: &[Value], finals: &[Value]) -> Verdict {
        let found = SetCheck::run(events, finals);
        let garbage = self.garbage.load(Ordering::Relaxed);
        Verdict {
            valid: found.errors() == 0 && garbage == 0,
            summary: json!({
                "operations": outcome_counts(events),
                "acknowledged_adds": found.acked,
                "lost": found.lost.len(),
                "lost_examples": found.lost.iter().take(8).collect::<Vec<_>>(),
                "stale_reads": found.stale.len(),
                "stale_examples": found.stale.iter().take(8).collect::<Vec<_>>(),
                "phantoms": found.phantoms.len(),
                "phantom_examples": found.phantoms.iter().take(8).collect::<Vec<_>>(),
                "unparsable_reads": garbage,
            }),
        }
    }
}

/// What the set-full check found.
#[derive(Default)]
struct SetCheck {
    acked: usize,
    lost: Vec<i64>,
    /// (read event index, element it missed).
    stale: Vec<(u64, i64)>,
    /// Elements read that no add could have put there.
    phantoms: Vec<i64>,
}

impl SetCheck {
    fn errors(&self) -> usize {
        self.lost.len() + self.stale.len() + self.phantoms.len()
    }

    fn run(events: &[Value], finals: &[Value]) -> SetCheck {
        let mut found = SetCheck::default();
        // Element -> how its add ended; adds acknowledged so far, in order.
        let mut adds: BTreeMap<i64, &str> = BTreeMap::new();
        let mut done: Vec<i64> = Vec::new();
        // Invoked reads: process -> how many adds were acknowledged then.
        let mut open_reads: BTreeMap<u64, usize> = BTreeMap::new();
        for event in events {
            let kind = event["type"].as_str().unwrap_or("");
            let process = event["process"].as_u64().unwrap_or(0);
            match (event["f"].as_str().unwrap_or(""), kind) {
                ("add", "invoke") => {
                    adds.insert(event["value"].as_i64().unwrap_or(-1), "info");
                }
                ("add", outcome) => {
                    let element = event["value"].as_i64().unwrap_or(-1);
                    adds.insert(element, if outcome == "ok" { "ok" } else { outcome });
                    if outcome == "ok" {
                        done.push(element);
                    }
                }
                ("read", "invoke") => {
                    open_reads.insert(process, done.len());
                }
                ("read", "ok") => {
                    let before = open_reads.remove(&process).unwrap_or(0);
                    let read: BTreeSet<i64> =
                        serde_json::from_value(event["value"].clone()).unwrap_or_default();
                    for element in &read {
                        if !matches!(adds.get(element), Some(&"ok" | &"info")) {
                            found.phantoms.push(*element);
                        }
                    }
                    let index = event["index"].as_u64().unwrap_or(0);
                    for element in &done[..before] {
                        if !read.contains(element) {
                            found.stale.push((index, *element));
                        }
                    }
                }
                _ => {
                    open_reads.remove(&process);
                }
            }
        }
        found.acked = done.len();
        for last in finals {
            let read: BTreeSet<i64> = serde_json::from_value(last.clone()).unwrap_or_default();
            found
                .lost
                .extend(done.iter().filter(|e| !read.contains(e)).copied());
        }
        found.lost.sort_unstable();
        found.lost.dedup();
        found
    }
}
