//! A queue, as Redis job queues use one: clients on every node push unique
//! elements (`RPUSH`) and pop them with `BLPOP` across a few queues, under
//! the nemesis. Every acknowledged push must be popped exactly once or
//! still be queued at the end; no element is ever popped twice, popped and
//! still queued, or invented. An element whose push's outcome was unknown
//! may appear at most once. A pop whose outcome was unknown (its node died
//! while it ran) may have taken one element no one saw: the elements
//! missing at the end must be no more than those pops.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use redis::Connection;
use serde_json::{Value, json};

use super::{Verdict, Workload, outcome_counts, record_final};
use crate::client::{Outcome, Recorder};

const QUEUES: i64 = 3;

/// The queue workload.
pub(crate) struct Queue {
    next: AtomicI64,
    garbage: AtomicU64,
}

fn queue_names() -> Vec<String> {
    (0..QUEUES).map(|q| format!("q:{q}")).collect()
}

impl Queue {
    pub(crate) fn new() -> Queue {
        Queue {
            next: AtomicI64::new(0),
            garbage: AtomicU64::new(0),
        }
    }

    fn push(&self, con: &mut Connection, process: u64, recorder: &Recorder) -> Outcome {
        let element = self.next.fetch_add(1, Ordering::Relaxed);
        recorder.invoke(process, "push", json!(element));
        let reply = redis::cmd("RPUSH")
            .arg(format!("q:{}", element % QUEUES))
            .arg(element)
            .query::<i64>(con);
        match reply {
            Ok(_) => {
                recorder.complete(process, Outcome::Ok, "push", json!(element));
                Outcome::Ok
            }
            Err(err) => {
                let outcome = Outcome::of(&err);
                recorder.errored(process, outcome, "push", json!(element), &err);
                outcome
            }
        }
    }

    fn pop(&self, con: &mut Connection, process: u64, recorder: &Recorder) -> Outcome {
        recorder.invoke(process, "pop", Value::Null);
        let reply = redis::cmd("BLPOP")
            .arg(queue_names())
            .arg("0.2")
            .query::<Option<(String, String)>>(con);
        match reply {
            Ok(Some((_, element))) => {
                let value = match element.parse::<i64>() {
                    Ok(element) => json!(element),
                    Err(_) => {
                        self.garbage.fetch_add(1, Ordering::Relaxed);
                        Value::Null
                    }
                };
                recorder.complete(process, Outcome::Ok, "pop", value);
                Outcome::Ok
            }
            Ok(None) => {
                recorder.complete(process, Outcome::Ok, "pop", Value::Null);
                Outcome::Ok
            }
            Err(err) => {
                let outcome = Outcome::of(&err);
                recorder.errored(process, outcome, "pop", Value::Null, &err);
                outcome
            }
        }
    }

    /// Every queued element, queue by queue.
    fn read(&self, con: &mut Connection) -> redis::RedisResult<Vec<i64>> {
        let mut all = Vec::new();
        for name in queue_names() {
            let items: Vec<String> = redis::cmd("LRANGE").arg(name).arg(0).arg(-1).query(con)?;
            for item in items {
                match item.parse() {
                    Ok(element) => all.push(element),
                    Err(_) => {
                        self.garbage.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
        Ok(all)
    }
}

impl Workload for Queue {
    fn step(
        &self,
        con: &mut Connection,
        process: u64,
        recorder: &Recorder,
        rng: &mut fastrand::Rng,
    ) -> Outcome {
        if rng.bool() {
            self.push(con, process, recorder)
        } else {
            self.pop(con, process, recorder)
        }
    }

    fn final_read(
        &self,
        con: &mut Connection,
        process: u64,
        recorder: &Recorder,
    ) -> Result<Value, String> {
        recorder.invoke(process, "read", Value::Null);
        record_final(
            recorder,
            process,
            self.read(con).map(|queued| json!(queued)),
        )
    }

    fn check(&self, events: &[Value], finals: &[Value]) -> Verdict {
        let found = QueueCheck::run(events, finals.first().unwrap_or(&Value::Null));
        let garbage = self.garbage.load(Ordering::Relaxed);
        let valid = found.duplicated.is_empty()
            && found.phantoms.is_empty()
            && found.lost.len() <= found.unknown_pops
            && garbage == 0;
        Verdict {
            valid,
            summary: json!({
                "operations": outcome_counts(events),
                "acknowledged_pushes": found.acked,
                "popped": found.popped,
                "still_queued": found.queued,
                "missing": found.lost.len(),
                "missing_examples": found.lost.iter().take(8).collect::<Vec<_>>(),
                "pops_with_unknown_outcome": found.unknown_pops,
                "duplicated": found.duplicated.len(),
                "duplicated_examples": found.duplicated.iter().take(8).collect::<Vec<_>>(),
                "phantoms": found.phantoms.len(),
                "phantom_examples": found.phantoms.iter().take(8).collect::<Vec<_>>(),
                "unparsable": garbage,
            }),
        }
    }
}

/// What the queue check found.
#[derive(Default)]
struct QueueCheck {
    acked: usize,
    popped: usize,
    queued: usize,
    /// Acknowledged pushes neither popped nor queued at the end.
    lost: Vec<i64>,
    /// Pops that may have taken an element without anyone seeing it.
    unknown_pops: usize,
    /// Elements seen twice (two pops, or popped and still queued).
    duplicated: Vec<i64>,
    /// Elements seen that no push could have put there.
    phantoms: Vec<i64>,
}

impl QueueCheck {
    fn run(events: &[Value], last: &Value) -> QueueCheck {
        let mut found = QueueCheck::default();
        // Element -> how its push ended ("ok", "fail" or "info").
        let mut pushes: BTreeMap<i64, String> = BTreeMap::new();
        let mut seen: BTreeMap<i64, usize> = BTreeMap::new();
        for event in events {
            let kind = event["type"].as_str().unwrap_or("");
            match (event["f"].as_str().unwrap_or(""), kind) {
                ("push", "invoke") => {}
                ("push", outcome) => {
                    let element = event["value"].as_i64().unwrap_or(-1);
                    pushes.insert(element, outcome.to_string());
                }
                ("pop", "ok") => {
                    if let Some(element) = event["value"].as_i64() {
                        *seen.entry(element).or_default() += 1;
                        found.popped += 1;
                    }
                }
                ("pop", "info") => found.unknown_pops += 1,
                _ => {}
            }
        }
        let queued: Vec<i64> = serde_json::from_value(last.clone()).unwrap_or_default();
        found.queued = queued.len();
        for element in queued {
            *seen.entry(element).or_default() += 1;
        }
        for (element, times) in &seen {
            if !matches!(pushes.get(element).map(String::as_str), Some("ok" | "info")) {
                found.phantoms.push(*element);
            }
            if *times > 1 {
                found.duplicated.push(*element);
            }
        }
        let acked: BTreeSet<i64> = pushes
            .iter()
            .filter(|(_, outcome)| *outcome == "ok")
            .map(|(element, _)| *element)
            .collect();
        found.acked = acked.len();
        found.lost = acked
            .into_iter()
            .filter(|e| !seen.contains_key(e))
            .collect();
        found
    }
}
