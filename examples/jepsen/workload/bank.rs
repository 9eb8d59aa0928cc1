//! Jepsen's bank: transfers between accounts (`WATCH`, read both balances,
//! `MULTI`, write both, `EXEC`) and reads of every balance at once (`MGET`).
//! Every read must see the opening total and no negative balance.

use redis::Connection;
use serde_json::{Value, json};

use super::{Verdict, Workload, before_commit, multi_exec, outcome_counts, record_read, settle};
use crate::client::{Outcome, Recorder};

const ACCOUNTS: u64 = 5;
const OPENING: i64 = 20;
const TOTAL: i64 = OPENING * ACCOUNTS as i64;

/// The bank workload.
pub(crate) struct Bank;

fn account(n: u64) -> String {
    format!("b:{n}")
}

fn all_accounts() -> Vec<String> {
    (0..ACCOUNTS).map(account).collect()
}

/// Balances as read: `None` for an account with no value.
fn read_all(con: &mut Connection) -> redis::RedisResult<Vec<Option<i64>>> {
    redis::cmd("MGET").arg(all_accounts()).query(con)
}

impl Bank {
    fn transfer(
        &self,
        con: &mut Connection,
        process: u64,
        recorder: &Recorder,
        rng: &mut fastrand::Rng,
    ) -> Outcome {
        let from = rng.u64(..ACCOUNTS);
        let to = (from + rng.u64(1..ACCOUNTS)) % ACCOUNTS;
        let amount = rng.i64(1..=5);
        let value = json!({"from": from, "to": to, "amount": amount});
        recorder.invoke(process, "transfer", value.clone());
        let (a, b) = (account(from), account(to));
        let balances = redis::cmd("WATCH")
            .arg(&a)
            .arg(&b)
            .exec(con)
            .and_then(|()| redis::cmd("MGET").arg(&a).arg(&b).query::<(i64, i64)>(con));
        let (have, other) = match balances {
            Ok(balances) => balances,
            Err(err) => {
                let outcome = before_commit(&err);
                recorder.errored(process, outcome, "transfer", value, &err);
                return outcome;
            }
        };
        if have < amount {
            let _ = redis::cmd("UNWATCH").exec(con);
            recorder.complete(process, Outcome::Fail, "transfer", value);
            return Outcome::Fail;
        }
        let reply = multi_exec(con, |pipe| {
            pipe.cmd("SET").arg(&a).arg(have - amount);
            pipe.cmd("SET").arg(&b).arg(other + amount);
        });
        if let Err(outcome) = settle(reply, 2, recorder, process, "transfer", &value) {
            return outcome;
        }
        recorder.complete(process, Outcome::Ok, "transfer", value);
        Outcome::Ok
    }
}

fn balances_json(balances: &[Option<i64>]) -> Value {
    json!(balances)
}

impl Workload for Bank {
    fn setup(&self, con: &mut Connection) -> Result<(), String> {
        let mut mset = redis::cmd("MSET");
        for name in all_accounts() {
            mset.arg(name).arg(OPENING);
        }
        mset.exec(con).map_err(|e| format!("opening balances: {e}"))
    }

    fn step(
        &self,
        con: &mut Connection,
        process: u64,
        recorder: &Recorder,
        rng: &mut fastrand::Rng,
    ) -> Outcome {
        if rng.u8(..10) < 7 {
            return self.transfer(con, process, recorder, rng);
        }
        recorder.invoke(process, "read", Value::Null);
        record_read(recorder, process, read_all(con).map(|b| balances_json(&b)))
    }

    fn final_read(
        &self,
        con: &mut Connection,
        process: u64,
        recorder: &Recorder,
    ) -> Result<Value, String> {
        recorder.invoke(process, "read", Value::Null);
        let balances = read_all(con).map_err(|e| format!("final read: {e}"))?;
        let value = balances_json(&balances);
        recorder.complete(process, Outcome::Ok, "read", value.clone());
        Ok(value)
    }

    fn check(&self, events: &[Value], _finals: &[Value]) -> Verdict {
        let mut reads = 0;
        let mut bad: Vec<String> = Vec::new();
        for event in events {
            let ok_read = event.get("type").and_then(Value::as_str) == Some("ok")
                && event.get("f").and_then(Value::as_str) == Some("read");
            if !ok_read {
                continue;
            }
            reads += 1;
            let balances: Vec<Option<i64>> =
                serde_json::from_value(event["value"].clone()).unwrap_or_default();
            if let Some(problem) = problem(&balances) {
                bad.push(format!("event {}: {problem}", event["index"]));
            }
        }
        let transfers = events
            .iter()
            .filter(|e| e["type"] == "ok" && e["f"] == "transfer")
            .count();
        Verdict {
            valid: bad.is_empty() && reads > 0,
            summary: json!({
                "operations": outcome_counts(events),
                "reads": reads,
                "transfers_committed": transfers,
                "bad_reads": bad.len(),
                "bad_examples": bad.iter().take(8).collect::<Vec<_>>(),
            }),
        }
    }
}

/// What is wrong with one read of every balance, if anything.
fn problem(balances: &[Option<i64>]) -> Option<String> {
    if balances.len() != ACCOUNTS as usize || balances.iter().any(Option::is_none) {
        return Some(format!("accounts missing: {balances:?}"));
    }
    let values: Vec<i64> = balances.iter().flatten().copied().collect();
    let total: i64 = values.iter().sum();
    if total != TOTAL {
        return Some(format!("total {total}, expected {TOTAL}: {values:?}"));
    }
    if values.iter().any(|&v| v < 0) {
        return Some(format!("negative balance: {values:?}"));
    }
    None
}
