//! Elle's rw-register over hash fields, in the shape applications use
//! `WATCH`: register `k` is field `f:k` of hash `h:(k mod 4)`; a
//! transaction `WATCH`es the hashes it touches, reads its registers with
//! `HGET`, then writes with `HSET` inside `MULTI`/`EXEC`, which answers nil
//! (the transaction failed) when a watched hash changed since `WATCH`.
//! Committed transactions must be serializable: `WATCH` covers every read,
//! so no anomaly is allowed, whatever the snapshot isolation level.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use redis::Connection;
use serde_json::{Value, json};

use super::keys::KeyPool;
use super::txn::parse_register;
use super::{Verdict, Workload, before_commit, check_transactions, multi_exec, settle};
use crate::client::{Outcome, Recorder};

const HASHES: u64 = 4;
const WRITES_PER_KEY: u32 = 32;

/// The hash workload.
pub(crate) struct HashRegisters {
    keys: Mutex<KeyPool>,
    garbage: AtomicU64,
}

fn hash_of(key: u64) -> String {
    format!("h:{}", key % HASHES)
}

fn field_of(key: u64) -> String {
    format!("f:{key}")
}

/// A micro-op: read `key`, or write `write` to it.
struct Mop {
    key: u64,
    write: Option<i64>,
}

impl HashRegisters {
    pub(crate) fn new() -> HashRegisters {
        HashRegisters {
            keys: Mutex::new(KeyPool::new(4, WRITES_PER_KEY)),
            garbage: AtomicU64::new(0),
        }
    }

    fn generate(&self, rng: &mut fastrand::Rng) -> Vec<Mop> {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        let mut mops: Vec<Mop> = (0..rng.usize(1..=3))
            .map(|_| {
                let (key, write) = keys.pick(rng);
                Mop { key, write }
            })
            .collect();
        // Reads run after WATCH and before MULTI, writes inside it: the
        // history lists them in that order.
        mops.sort_by_key(|mop| mop.write.is_some());
        mops
    }

    /// Reads the registers `mops` read, after `WATCH`.
    fn reads(&self, con: &mut Connection, mops: &[Mop]) -> Result<Vec<Value>, Outcome> {
        let mut reads = Vec::new();
        for mop in mops.iter().filter(|m| m.write.is_none()) {
            let reply: redis::Value = redis::cmd("HGET")
                .arg(hash_of(mop.key))
                .arg(field_of(mop.key))
                .query(con)
                .map_err(|err| before_commit(&err))?;
            match parse_register(&reply) {
                Some(value) => reads.push(json!(value)),
                None => {
                    self.garbage.fetch_add(1, Ordering::Relaxed);
                    return Err(Outcome::Info);
                }
            }
        }
        Ok(reads)
    }
}

fn mops_json(mops: &[Mop], reads: Option<&[Value]>) -> Value {
    let mut read = 0;
    let items: Vec<Value> = mops
        .iter()
        .map(|mop| match mop.write {
            Some(value) => json!(["w", mop.key, value]),
            None => {
                let seen = reads.map_or(Value::Null, |r| r[read].clone());
                read += 1;
                json!(["r", mop.key, seen])
            }
        })
        .collect();
    Value::Array(items)
}

impl Workload for HashRegisters {
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
        let hashes: BTreeSet<String> = mops.iter().map(|m| hash_of(m.key)).collect();
        let watched = redis::cmd("WATCH")
            .arg(hashes.iter().collect::<Vec<_>>())
            .exec(con);
        let reads = match watched.map_err(|err| before_commit(&err)) {
            Ok(()) => self.reads(con, &mops),
            Err(outcome) => Err(outcome),
        };
        let reads = match reads {
            Ok(reads) => reads,
            Err(outcome) => {
                let _ = redis::cmd("UNWATCH").exec(con);
                let err = "WATCH or a read failed";
                recorder.errored(process, outcome, "txn", invoked, &err);
                return outcome;
            }
        };
        let writes: Vec<&Mop> = mops.iter().filter(|m| m.write.is_some()).collect();
        let reply = multi_exec(con, |pipe| {
            for mop in &writes {
                let value = mop.write.unwrap_or_default();
                pipe.cmd("HSET")
                    .arg(hash_of(mop.key))
                    .arg(field_of(mop.key))
                    .arg(value);
            }
        });
        if let Err(outcome) = settle(reply, writes.len(), recorder, process, "txn", &invoked) {
            return outcome;
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
        let mops: Vec<Mop> = (0..used).map(|key| Mop { key, write: None }).collect();
        recorder.invoke(process, "txn", mops_json(&mops, None));
        let mut reads = Vec::new();
        for key in 0..used {
            let reply: redis::Value = redis::cmd("HGET")
                .arg(hash_of(key))
                .arg(field_of(key))
                .query(con)
                .map_err(|e| format!("final read: {e}"))?;
            let value = parse_register(&reply).ok_or_else(|| format!("final read: {reply:?}"))?;
            reads.push(json!(value));
        }
        recorder.complete(process, Outcome::Ok, "txn", mops_json(&mops, Some(&reads)));
        Ok(Value::Array(reads))
    }

    fn check(&self, events: &[Value], _finals: &[Value]) -> Verdict {
        let garbage = self.garbage.load(Ordering::Relaxed);
        let extra = json!({"unparsable_reads": garbage});
        let mut verdict = check_transactions(events, &[], extra);
        verdict.valid &= garbage == 0;
        verdict
    }
}
