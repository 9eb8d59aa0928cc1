//! Elle's transactional workloads: transactions of writes and reads over a
//! few hot keys (each retired after 32 writes), inside `MULTI`/`EXEC`, and
//! one-micro-op transactions as plain commands beside them.
//! - list-append: a list is a string of "element," items; `APPEND` appends,
//!   `GET` reads.
//! - rw-register: `SET` writes a value unique per key, `GET` reads.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use redis::Connection;
use serde_json::{Value, json};

use super::keys::{KeyPool, mget};
use super::{Verdict, Workload, check_transactions, multi_exec, parse_list, settle};
use crate::client::{Outcome, Recorder};

/// Writes per key before it is retired.
const WRITES_PER_KEY: u32 = 32;

/// Which of Elle's transactional workloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Family {
    /// `[:append k e]`, `[:r k [e …]]`.
    Append,
    /// `[:w k v]`, `[:r k v]`.
    Register,
}

impl Family {
    fn redis_key(self, key: u64) -> String {
        match self {
            Family::Append => format!("a:{key}"),
            Family::Register => format!("r:{key}"),
        }
    }

    /// Keys written at once, and micro-ops per transaction at most.
    fn shape(self) -> (usize, usize) {
        match self {
            Family::Append => (5, 4),
            Family::Register => (4, 3),
        }
    }

    fn write_json(self, key: u64, value: i64) -> Value {
        match self {
            Family::Append => json!(["append", key, value]),
            Family::Register => json!(["w", key, value]),
        }
    }

    fn queue_write(self, pipe: &mut redis::Pipeline, key: u64, value: i64) {
        match self {
            Family::Append => pipe
                .cmd("APPEND")
                .arg(self.redis_key(key))
                .arg(format!("{value},")),
            Family::Register => pipe.cmd("SET").arg(self.redis_key(key)).arg(value),
        };
    }

    /// What a `GET` read, as the history records it.
    fn parse(self, value: &redis::Value) -> Result<Value, String> {
        let parsed = match self {
            Family::Append => parse_list(value).map(|list| json!(list)),
            Family::Register => parse_register(value).map(|v| json!(v)),
        };
        parsed.ok_or_else(|| format!("not a {self:?} value: {value:?}"))
    }
}

/// A register's value: nil, or an integer; `None` for anything else.
pub(crate) fn parse_register(value: &redis::Value) -> Option<Option<i64>> {
    match value {
        redis::Value::Nil => Some(None),
        redis::Value::BulkString(bytes) => std::str::from_utf8(bytes).ok()?.parse().ok().map(Some),
        _ => None,
    }
}

/// One micro-op: a read of `key`, or a write of `write` to it.
struct Mop {
    key: u64,
    write: Option<i64>,
}

/// A list-append or rw-register workload.
pub(crate) struct Transactions {
    family: Family,
    keys: Mutex<KeyPool>,
    /// Reads that returned something no correct server returns.
    garbage: AtomicU64,
    /// Anomalies the isolation level under test permits.
    allowed: Vec<&'static str>,
}

impl Transactions {
    /// `serializable`: whether the cluster runs serializable transactions
    /// (else snapshot isolation, which permits write skew: G2-item).
    pub(crate) fn new(family: Family, serializable: bool) -> Transactions {
        Transactions {
            family,
            keys: Mutex::new(KeyPool::new(family.shape().0, WRITES_PER_KEY)),
            garbage: AtomicU64::new(0),
            allowed: super::allowed(serializable),
        }
    }

    fn generate(&self, rng: &mut fastrand::Rng) -> Vec<Mop> {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        (0..rng.usize(1..=self.family.shape().1))
            .map(|_| {
                let (key, write) = keys.pick(rng);
                Mop { key, write }
            })
            .collect()
    }

    /// The micro-ops as Elle's JSON; reads are nil until `reads` fills them.
    fn mops_json(&self, mops: &[Mop], reads: Option<&[Value]>) -> Value {
        let mut read = 0;
        let items: Vec<Value> = mops
            .iter()
            .map(|mop| match mop.write {
                Some(value) => self.family.write_json(mop.key, value),
                None => {
                    let seen = reads.map_or(Value::Null, |r| r[read].clone());
                    read += 1;
                    json!(["r", mop.key, seen])
                }
            })
            .collect();
        Value::Array(items)
    }
}

impl Transactions {
    /// A one-micro-op transaction sent as a plain command, outside
    /// `MULTI`: `APPEND` or `SET` (which the server runs in log order,
    /// beside the `MULTI` blocks on the same keys), or `GET`.
    fn single(
        &self,
        con: &mut Connection,
        process: u64,
        recorder: &Recorder,
        mop: &Mop,
        invoked: Value,
    ) -> Outcome {
        let mut pipe = redis::pipe();
        match mop.write {
            Some(value) => self.family.queue_write(&mut pipe, mop.key, value),
            None => {
                pipe.cmd("GET").arg(self.family.redis_key(mop.key));
            }
        }
        let reply = pipe.query::<Vec<redis::Value>>(con);
        let read = match (reply, mop.write) {
            (Ok(_), Some(_)) => None,
            (Ok(replies), None) => match replies.first().map(|r| self.family.parse(r)) {
                Some(Ok(value)) => Some(value),
                _ => {
                    self.garbage.fetch_add(1, Ordering::Relaxed);
                    let err = format!("unexpected reply {replies:?}");
                    recorder.errored(process, Outcome::Info, "txn", invoked, &err);
                    return Outcome::Info;
                }
            },
            (Err(err), _) => {
                let outcome = Outcome::of(&err);
                recorder.errored(process, outcome, "txn", invoked, &err);
                return outcome;
            }
        };
        let reads: Vec<Value> = read.into_iter().collect();
        let done = self.mops_json(std::slice::from_ref(mop), Some(&reads));
        recorder.complete(process, Outcome::Ok, "txn", done);
        Outcome::Ok
    }
}

impl Workload for Transactions {
    fn step(
        &self,
        con: &mut Connection,
        process: u64,
        recorder: &Recorder,
        rng: &mut fastrand::Rng,
    ) -> Outcome {
        let mops = self.generate(rng);
        let invoked = self.mops_json(&mops, None);
        recorder.invoke(process, "txn", invoked.clone());
        if let [mop] = &mops[..] {
            return self.single(con, process, recorder, mop, invoked);
        }
        let reply = multi_exec(con, |pipe| {
            for mop in &mops {
                match mop.write {
                    Some(value) => self.family.queue_write(pipe, mop.key, value),
                    None => {
                        pipe.cmd("GET").arg(self.family.redis_key(mop.key));
                    }
                }
            }
        });
        let replies = match settle(reply, mops.len(), recorder, process, "txn", &invoked) {
            Ok(replies) => replies,
            Err(outcome) => return outcome,
        };
        let mut reads = Vec::new();
        for (mop, reply) in mops.iter().zip(&replies) {
            if mop.write.is_some() {
                continue;
            }
            match self.family.parse(reply) {
                Ok(value) => reads.push(value),
                Err(err) => {
                    // Recorded as indeterminate; the verdict fails on it.
                    self.garbage.fetch_add(1, Ordering::Relaxed);
                    recorder.errored(process, Outcome::Info, "txn", invoked, &err);
                    return Outcome::Info;
                }
            }
        }
        let done = self.mops_json(&mops, Some(&reads));
        recorder.complete(process, Outcome::Ok, "txn", done);
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
        let mops: Vec<Mop> = (0..used).map(|key| Mop { key, write: None }).collect();
        recorder.invoke(process, "txn", self.mops_json(&mops, None));
        let keys: Vec<String> = (0..used).map(|k| self.family.redis_key(k)).collect();
        let reads = mget(con, &keys)?
            .iter()
            .map(|value| {
                self.family
                    .parse(value)
                    .map_err(|e| format!("final read: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let done = self.mops_json(&mops, Some(&reads));
        recorder.complete(process, Outcome::Ok, "txn", done);
        Ok(Value::Array(reads))
    }

    fn check(&self, events: &[Value], finals: &[Value]) -> Verdict {
        let garbage = self.garbage.load(Ordering::Relaxed);
        let mut extra = json!({"unparsable_reads": garbage});
        // An overwritten register value is not lost; an append is.
        let lost = match self.family {
            Family::Append => lost_appends(events, finals),
            Family::Register => Vec::new(),
        };
        if self.family == Family::Append {
            extra["lost_appends"] = json!(lost.len());
            extra["lost_examples"] = json!(lost.iter().take(8).collect::<Vec<_>>());
        }
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
