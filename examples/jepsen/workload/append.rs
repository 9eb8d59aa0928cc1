//! Elle's list-append: transactions of appends and reads over a few hot
//! keys, each key retired after 32 appends. A list is a string of
//! "element," items: `APPEND` inside `MULTI`/`EXEC` appends, `GET` reads.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use redis::Connection;
use serde_json::{Value, json};

use super::keys::{KeyPool, mget};
use super::{Verdict, Workload, check_transactions, multi_exec, parse_list, settle};
use crate::client::{Outcome, Recorder};

/// Keys written at once.
const ACTIVE_KEYS: usize = 5;
/// Appends per key before it is retired.
const APPENDS_PER_KEY: u32 = 32;

/// The list-append workload.
pub(crate) struct Append {
    keys: Mutex<KeyPool>,
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
        Append {
            keys: Mutex::new(KeyPool::new(ACTIVE_KEYS, APPENDS_PER_KEY)),
            garbage: AtomicU64::new(0),
            allowed: super::allowed(serializable),
        }
    }

    fn generate(&self, rng: &mut fastrand::Rng) -> Vec<Mop> {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        (0..rng.usize(1..=4))
            .map(|_| match keys.pick(rng) {
                (key, Some(element)) => Mop::Append(key, element),
                (key, None) => Mop::Read(key),
            })
            .collect()
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
        let invoked = mops_json(&mops, None);
        let replies = match settle(reply, mops.len(), recorder, process, "txn", &invoked) {
            Ok(replies) => replies,
            Err(outcome) => return outcome,
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
        let used = self
            .keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .used();
        let mops: Vec<Mop> = (0..used).map(Mop::Read).collect();
        recorder.invoke(process, "txn", mops_json(&mops, None));
        let keys: Vec<String> = (0..used).map(redis_key).collect();
        let reads = mget(con, &keys)?
            .iter()
            .map(|value| parse_list(value).ok_or("final read: not a list"))
            .collect::<Result<Vec<_>, _>>()?;
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
