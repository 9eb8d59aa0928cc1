//! Elle's list-append: transactions of appends and reads over a few hot
//! keys, each key retired after 32 appends. A list is a string of
//! "element," items: `APPEND` inside `MULTI`/`EXEC` appends, `GET` reads.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use redis::Connection;
use serde_json::{Value, json};

use super::{Exec, Verdict, Workload, check_transactions, multi_exec, parse_list};
use crate::client::{Outcome, Recorder};

/// Keys written at once.
const ACTIVE_KEYS: usize = 5;
/// Appends per key before it is retired.
const APPENDS_PER_KEY: u32 = 32;

struct Keys {
    active: Vec<(u64, u32)>,
    next_key: u64,
    next_element: i64,
}

/// The list-append workload.
pub(crate) struct Append {
    keys: Mutex<Keys>,
    garbage: AtomicU64,
    /// Anomalies the isolation level under test permits.
    allowed: Vec<&'static str>,
}

#[derive(Clone)]
enum Mop {
    Append(u64, i64),
    Read(u64),
}

impl Append {
    /// `serializable`: whether the cluster runs serializable transactions
    /// (else snapshot isolation, which permits write skew: G2-item).
    pub(crate) fn new(serializable: bool) -> Append {
        let allowed = if serializable {
            Vec::new()
        } else {
            vec!["G2-item", "G2-item-process", "G2-item-realtime"]
        };
        Append {
            keys: Mutex::new(Keys {
                active: (0..ACTIVE_KEYS as u64).map(|k| (k, 0)).collect(),
                next_key: ACTIVE_KEYS as u64,
                next_element: 1,
            }),
            garbage: AtomicU64::new(0),
            allowed,
        }
    }

    fn generate(&self, rng: &mut fastrand::Rng) -> Vec<Mop> {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        let len = rng.usize(1..=4);
        let mut mops = Vec::with_capacity(len);
        for _ in 0..len {
            let slot = rng.usize(..keys.active.len());
            let key = keys.active[slot].0;
            if rng.bool() {
                mops.push(Mop::Read(key));
                continue;
            }
            let element = keys.next_element;
            keys.next_element += 1;
            mops.push(Mop::Append(key, element));
            keys.active[slot].1 += 1;
            if keys.active[slot].1 >= APPENDS_PER_KEY {
                keys.active[slot] = (keys.next_key, 0);
                keys.next_key += 1;
            }
        }
        mops
    }
}

fn redis_key(key: u64) -> String {
    format!("a:{key}")
}

fn mops_json(mops: &[Mop], reads: Option<&[Vec<i64>]>) -> Value {
    let mut read = 0;
    let items: Vec<Value> = mops
        .iter()
        .map(|mop| match mop {
            Mop::Append(k, e) => json!(["append", k, e]),
            Mop::Read(k) => {
                let seen = reads.map(|r| r[read].clone());
                read += 1;
                json!(["r", k, seen])
            }
        })
        .collect();
    Value::Array(items)
}

impl Workload for Append {
    fn step(
        &self,
        con: &mut Connection,
        process: u64,
        recorder: &Recorder,
        rng: &mut fastrand::Rng,
    ) -> Outcome {
        let mops = self.generate(rng);
        recorder.invoke(process, "txn", mops_json(&mops, None));
        let reply = multi_exec(con, |pipe| {
            for mop in &mops {
                match mop {
                    Mop::Append(k, e) => pipe.cmd("APPEND").arg(redis_key(*k)).arg(format!("{e},")),
                    Mop::Read(k) => pipe.cmd("GET").arg(redis_key(*k)),
                };
            }
        });
        let replies = match reply {
            Ok(Exec::Done(replies)) if replies.len() == mops.len() => replies,
            Ok(Exec::Done(_)) => {
                let err = "EXEC answered a different number of replies";
                recorder.errored(process, Outcome::Info, "txn", mops_json(&mops, None), &err);
                return Outcome::Info;
            }
            Ok(Exec::Aborted) => {
                recorder.complete(process, Outcome::Fail, "txn", mops_json(&mops, None));
                return Outcome::Fail;
            }
            Ok(Exec::Failed(outcome, err)) => {
                recorder.errored(process, outcome, "txn", mops_json(&mops, None), &err);
                return outcome;
            }
            Err(err) => {
                let outcome = Outcome::of(&err);
                recorder.errored(process, outcome, "txn", mops_json(&mops, None), &err);
                return outcome;
            }
        };
        let mut reads = Vec::new();
        for (mop, reply) in mops.iter().zip(&replies) {
            if let Mop::Read(_) = mop {
                reads.push(parse_list(reply).unwrap_or_else(|| {
                    self.garbage.fetch_add(1, Ordering::Relaxed);
                    Vec::new()
                }));
            }
        }
        recorder.complete(process, Outcome::Ok, "txn", mops_json(&mops, Some(&reads)));
        Outcome::Ok
    }

    fn final_read(
        &self,
        con: &mut Connection,
        process: u64,
        recorder: &Recorder,
    ) -> Result<Value, String> {
        let next_key = self
            .keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .next_key;
        let mops: Vec<Mop> = (0..next_key).map(Mop::Read).collect();
        recorder.invoke(process, "txn", mops_json(&mops, None));
        let keys: Vec<String> = (0..next_key).map(redis_key).collect();
        let mut reads = Vec::new();
        for chunk in keys.chunks(500) {
            let values: Vec<redis::Value> = redis::cmd("MGET")
                .arg(chunk)
                .query(con)
                .map_err(|e| format!("final read: {e}"))?;
            for value in &values {
                reads.push(parse_list(value).ok_or("final read: not a list")?);
            }
        }
        recorder.complete(process, Outcome::Ok, "txn", mops_json(&mops, Some(&reads)));
        Ok(json!(reads))
    }

    fn check(&self, events: &[Value], finals: &[Value]) -> Verdict {
        let lost = lost_appends(events, finals);
        let garbage = self.garbage.load(Ordering::Relaxed);
        let extra = json!({
            "lost_appends": lost.len(),
            "lost_examples": lost.iter().take(8).collect::<Vec<_>>(),
            "unparsable_reads": garbage,
        });
        let mut verdict = check_transactions(events, &self.allowed, extra);
        verdict.valid &= lost.is_empty() && garbage == 0;
        verdict
    }
}

/// Acknowledged appends missing from some node's final read.
fn lost_appends(events: &[Value], finals: &[Value]) -> Vec<(u64, i64)> {
    let finals: Vec<BTreeMap<u64, Vec<i64>>> = finals
        .iter()
        .map(|f| {
            let lists: Vec<Vec<i64>> = serde_json::from_value(f.clone()).unwrap_or_default();
            (0_u64..).zip(lists).collect()
        })
        .collect();
    let mut lost = Vec::new();
    for event in events {
        if event.get("type").and_then(Value::as_str) != Some("ok") {
            continue;
        }
        let Some(mops) = event.get("value").and_then(Value::as_array) else {
            continue;
        };
        for mop in mops {
            if mop[0] != "append" {
                continue;
            }
            let (Some(key), Some(element)) = (mop[1].as_u64(), mop[2].as_i64()) else {
                continue;
            };
            let missing = finals
                .iter()
                .any(|f| !f.get(&key).is_some_and(|list| list.contains(&element)));
            if missing {
                lost.push((key, element));
            }
        }
    }
    lost
}
