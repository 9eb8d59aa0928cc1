//! A register workload that mixes commands the server runs in log order
//! (`INCR`, `MSET`, `SET`) with optimistic `WATCH` transactions and
//! read-only `MULTI` blocks on the same keys, checked as Elle's
//! rw-register history:
//! - `INCR k` returning `n` is `[[:r k n-1] [:w k n]]` (`[:r k nil]` for 1),
//!   invoked as a read, since its write is unknown until it answers;
//! - `MSET k1 v1 k2 v2` is `[[:w k1 v1] [:w k2 v2]]`;
//! - `WATCH k; GET k; MULTI; SET k v; EXEC` is `[[:r k old] [:w k v]]`,
//!   failed when `EXEC` answers nil;
//! - `MULTI; GET …; EXEC` and `GET` are reads.
//!
//! Written values stay unique per key: `SET`, `MSET` and the `WATCH`
//! writes take multiples of 1000 from one counter, and an increment adds
//! one to what it read, which no key sees 1000 times (keys retire after 32
//! writes).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use redis::{Connection, Value as Reply};
use serde_json::{Value, json};

use super::keys::{KeyPool, mget};
use super::txn::parse_register as parse;
use super::{Verdict, Workload, check_transactions, multi_exec, settle};
use crate::client::{Outcome, Recorder};

/// Writes per key before it is retired.
const WRITES_PER_KEY: u32 = 32;
/// Keys written at once.
const ACTIVE: usize = 4;

fn redis_key(key: u64) -> String {
    format!("m:{key}")
}

/// The mixed workload.
pub(crate) struct Mixed {
    keys: Mutex<KeyPool>,
    garbage: AtomicU64,
    allowed: Vec<&'static str>,
}

impl Mixed {
    pub(crate) fn new(serializable: bool) -> Mixed {
        Mixed {
            keys: Mutex::new(KeyPool::new(ACTIVE, WRITES_PER_KEY)),
            garbage: AtomicU64::new(0),
            allowed: super::allowed(serializable),
        }
    }

    /// An active key, and a fresh value (a multiple of 1000) to write.
    fn pick_write(&self, rng: &mut fastrand::Rng) -> (u64, i64) {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let (key, Some(value)) = keys.pick(rng) {
                return (key, value * 1000);
            }
        }
    }

    fn pick_read(&self, rng: &mut fastrand::Rng) -> u64 {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        keys.pick(rng).0
    }

    /// Records an operation that ended with `err`, as `outcome`.
    fn errored(
        recorder: &Recorder,
        process: u64,
        invoked: Value,
        err: &redis::RedisError,
        outcome: Outcome,
    ) -> Outcome {
        recorder.errored(process, outcome, "txn", invoked, err);
        outcome
    }

    fn garbage(&self, recorder: &Recorder, process: u64, invoked: Value, what: &Reply) -> Outcome {
        self.garbage.fetch_add(1, Ordering::Relaxed);
        let err = format!("unexpected reply {what:?}");
        recorder.errored(process, Outcome::Info, "txn", invoked, &err);
        Outcome::Info
    }

    fn incr(&self, con: &mut Connection, process: u64, recorder: &Recorder, key: u64) -> Outcome {
        // What it writes is known only from its reply: unknown, it stays a
        // read whose value nobody knows (its write, if any, is one no
        // known transaction made, which the checker does not guess about).
        let invoked = json!([["r", key, null]]);
        recorder.invoke(process, "txn", invoked.clone());
        match redis::cmd("INCR").arg(redis_key(key)).query::<i64>(con) {
            Ok(n) => {
                let read = if n == 1 { Value::Null } else { json!(n - 1) };
                recorder.complete(
                    process,
                    Outcome::Ok,
                    "txn",
                    json!([["r", key, read], ["w", key, n]]),
                );
                Outcome::Ok
            }
            Err(err) => Self::errored(recorder, process, invoked, &err, Outcome::of(&err)),
        }
    }

    fn mset(
        &self,
        con: &mut Connection,
        process: u64,
        recorder: &Recorder,
        rng: &mut fastrand::Rng,
    ) -> Outcome {
        let (a, va) = self.pick_write(rng);
        let (b, vb) = self.pick_write(rng);
        let writes = if a == b {
            vec![(b, vb)]
        } else {
            vec![(a, va), (b, vb)]
        };
        let invoked = Value::Array(writes.iter().map(|(k, v)| json!(["w", k, v])).collect());
        recorder.invoke(process, "txn", invoked.clone());
        let mut command = redis::cmd("MSET");
        for (key, value) in &writes {
            command.arg(redis_key(*key)).arg(value);
        }
        match command.query::<String>(con) {
            Ok(_) => {
                recorder.complete(process, Outcome::Ok, "txn", invoked);
                Outcome::Ok
            }
            Err(err) => Self::errored(recorder, process, invoked, &err, Outcome::of(&err)),
        }
    }

    /// `WATCH k; GET k; MULTI; SET k v; EXEC`.
    fn cas(
        &self,
        con: &mut Connection,
        process: u64,
        recorder: &Recorder,
        rng: &mut fastrand::Rng,
    ) -> Outcome {
        let (key, value) = self.pick_write(rng);
        let invoked = json!([["r", key, null], ["w", key, value]]);
        recorder.invoke(process, "txn", invoked.clone());
        let name = redis_key(key);
        let read = redis::cmd("WATCH")
            .arg(&name)
            .query::<String>(con)
            .and_then(|_| redis::cmd("GET").arg(&name).query::<Reply>(con));
        let old = match read {
            Ok(reply) => match parse(&reply) {
                Some(old) => old,
                None => return self.garbage(recorder, process, invoked, &reply),
            },
            Err(err) => {
                let _ = redis::cmd("UNWATCH").query::<String>(con);
                let outcome = super::before_commit(&err);
                return Self::errored(recorder, process, invoked, &err, outcome);
            }
        };
        let reply = multi_exec(con, |pipe| {
            pipe.cmd("SET").arg(&name).arg(value);
        });
        if settle(reply, 1, recorder, process, "txn", &invoked).is_err() {
            return Outcome::Fail;
        }
        recorder.complete(
            process,
            Outcome::Ok,
            "txn",
            json!([["r", key, old], ["w", key, value]]),
        );
        Outcome::Ok
    }

    /// `MULTI; GET a; GET b; EXEC`: one snapshot.
    fn reads(
        &self,
        con: &mut Connection,
        process: u64,
        recorder: &Recorder,
        rng: &mut fastrand::Rng,
    ) -> Outcome {
        let keys = [self.pick_read(rng), self.pick_read(rng)];
        let invoked = json!([["r", keys[0], null], ["r", keys[1], null]]);
        recorder.invoke(process, "txn", invoked.clone());
        let reply = multi_exec(con, |pipe| {
            for key in keys {
                pipe.cmd("GET").arg(redis_key(key));
            }
        });
        let replies = match settle(reply, 2, recorder, process, "txn", &invoked) {
            Ok(replies) => replies,
            Err(outcome) => return outcome,
        };
        let mut mops = Vec::new();
        for (key, reply) in keys.iter().zip(&replies) {
            match parse(reply) {
                Some(value) => mops.push(json!(["r", key, value])),
                None => return self.garbage(recorder, process, invoked, reply),
            }
        }
        recorder.complete(process, Outcome::Ok, "txn", Value::Array(mops));
        Outcome::Ok
    }
}

impl Workload for Mixed {
    fn step(
        &self,
        con: &mut Connection,
        process: u64,
        recorder: &Recorder,
        rng: &mut fastrand::Rng,
    ) -> Outcome {
        match rng.u8(..10) {
            0..=2 => {
                let key = self.pick_write(rng).0;
                self.incr(con, process, recorder, key)
            }
            3..=4 => self.mset(con, process, recorder, rng),
            5..=7 => self.cas(con, process, recorder, rng),
            _ => self.reads(con, process, recorder, rng),
        }
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
        let names: Vec<String> = (0..used).map(redis_key).collect();
        recorder.invoke(
            process,
            "txn",
            Value::Array((0..used).map(|k| json!(["r", k, null])).collect()),
        );
        let values = mget(con, &names)?
            .iter()
            .map(|v| parse(v).ok_or_else(|| format!("final read: not a register: {v:?}")))
            .collect::<Result<Vec<_>, _>>()?;
        let mops = (0..used)
            .zip(&values)
            .map(|(k, v)| json!(["r", k, v]))
            .collect();
        recorder.complete(process, Outcome::Ok, "txn", Value::Array(mops));
        Ok(json!(values))
    }

    fn check(&self, events: &[Value], _finals: &[Value]) -> Verdict {
        let garbage = self.garbage.load(Ordering::Relaxed);
        let mut verdict =
            check_transactions(events, &self.allowed, json!({"unparsable_reads": garbage}));
        verdict.valid &= garbage == 0;
        verdict
    }
}
