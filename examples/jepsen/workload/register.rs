//! Elle's rw-register: transactions of writes (`SET`, a value unique per
//! key) and reads (`GET`) over a few hot keys, inside `MULTI`/`EXEC`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use redis::Connection;
use serde_json::{Value, json};

use super::keys::{KeyPool, mget};
use super::{Verdict, Workload, multi_exec, settle};
use crate::client::{Outcome, Recorder};

/// Keys written at once.
const ACTIVE_KEYS: usize = 4;
/// Writes per key before it is retired.
const WRITES_PER_KEY: u32 = 32;

/// The rw-register workload.
pub(crate) struct Register {
    keys: Mutex<KeyPool>,
    garbage: AtomicU64,
    allowed: Vec<&'static str>,
}

enum Mop {
    Write(u64, i64),
    Read(u64),
}

impl Register {
    /// `serializable`: as for list-append, snapshot isolation permits
    /// write skew (G2-item).
    pub(crate) fn new(serializable: bool) -> Register {
        Register {
            keys: Mutex::new(KeyPool::new(ACTIVE_KEYS, WRITES_PER_KEY)),
            garbage: AtomicU64::new(0),
            allowed: super::allowed(serializable),
        }
    }

    fn generate(&self, rng: &mut fastrand::Rng) -> Vec<Mop> {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        (0..rng.usize(1..=3))
            .map(|_| match keys.pick(rng) {
                (key, Some(value)) => Mop::Write(key, value),
                (key, None) => Mop::Read(key),
            })
            .collect()
    }
}

fn redis_key(key: u64) -> String {
    format!("r:{key}")
}

fn mops_json(mops: &[Mop], reads: Option<&[Option<i64>]>) -> Value {
    let mut read = 0;
    let items: Vec<Value> = mops
        .iter()
        .map(|mop| match mop {
            Mop::Write(k, v) => json!(["w", k, v]),
            Mop::Read(k) => {
                let seen = reads.and_then(|r| r[read]);
                read += 1;
                json!(["r", k, seen])
            }
        })
        .collect();
    Value::Array(items)
}

/// A register's value: nil, or an integer (anything else is a bug).
fn parse_value(value: &redis::Value) -> Result<Option<i64>, String> {
    match value {
        redis::Value::Nil => Ok(None),
        redis::Value::BulkString(bytes) => std::str::from_utf8(bytes)
            .ok()
            .and_then(|text| text.parse().ok())
            .map(Some)
            .ok_or_else(|| format!("not a register value: {value:?}")),
        other => Err(format!("not a register value: {other:?}")),
    }
}

impl Workload for Register {
    fn step(
        &self,
        con: &mut Connection,
        process: u64,
        recorder: &Recorder,
        rng: &mut fastrand::Rng,
    ) -> Outcome {
        let mops = self.generate(rng);
        let invoked = mops_json(&mops, None);
        recorder.invoke(process, "txn", invoked.clone());
        let reply = multi_exec(con, |pipe| {
            for mop in &mops {
                match mop {
                    Mop::Write(k, v) => pipe.cmd("SET").arg(redis_key(*k)).arg(*v),
                    Mop::Read(k) => pipe.cmd("GET").arg(redis_key(*k)),
                };
            }
        });
        let replies = match settle(reply, mops.len(), recorder, process, "txn", &invoked) {
            Ok(replies) => replies,
            Err(outcome) => return outcome,
        };
        let mut reads = Vec::new();
        for (mop, reply) in mops.iter().zip(&replies) {
            if let Mop::Read(_) = mop {
                match parse_value(reply) {
                    Ok(value) => reads.push(value),
                    Err(err) => {
                        // Recorded as indeterminate; the verdict fails on it.
                        self.garbage.fetch_add(1, Ordering::Relaxed);
                        recorder.errored(process, Outcome::Info, "txn", invoked, &err);
                        return Outcome::Info;
                    }
                }
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
            .map(parse_value)
            .collect::<Result<Vec<_>, _>>()?;
        recorder.complete(process, Outcome::Ok, "txn", mops_json(&mops, Some(&reads)));
        Ok(json!(reads))
    }

    fn check(&self, events: &[Value], _finals: &[Value]) -> Verdict {
        let garbage = self.garbage.load(Ordering::Relaxed);
        let mut verdict =
            super::check_transactions(events, &self.allowed, json!({"unparsable_reads": garbage}));
        verdict.valid &= garbage == 0;
        verdict
    }
}
