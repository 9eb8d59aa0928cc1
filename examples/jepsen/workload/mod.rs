//! The workloads: what clients do, and how their history is checked.

mod bank;
mod controlplane;
mod hash;
mod keys;
mod mixed;
mod queue;
mod set;
mod txn;

use redis::Connection;
use serde_json::Value;

use crate::client::{Outcome, Recorder};

pub(crate) use bank::Bank;
pub(crate) use controlplane::ControlPlane;
pub(crate) use hash::HashRegisters;
pub(crate) use mixed::Mixed;
pub(crate) use queue::Queue;
pub(crate) use set::SetFull;
pub(crate) use txn::{Family, Transactions};

/// One workload.
pub(crate) trait Workload: Send + Sync {
    /// Prepares the data before any client starts (bank: opening balances).
    ///
    /// # Errors
    /// Why the setup failed.
    fn setup(&self, con: &mut Connection) -> Result<(), String> {
        let _ = con;
        Ok(())
    }

    /// Runs and records one operation of `process`.
    fn step(
        &self,
        con: &mut Connection,
        process: u64,
        recorder: &Recorder,
        rng: &mut fastrand::Rng,
    ) -> Outcome;

    /// After the run, on one node: reads everything the workload wrote, as
    /// an ordinary recorded operation of `process`, and returns it for the
    /// comparison across nodes.
    ///
    /// # Errors
    /// Why the node could not be read.
    fn final_read(
        &self,
        con: &mut Connection,
        process: u64,
        recorder: &Recorder,
    ) -> Result<Value, String>;

    /// Checks the whole history, final reads included.
    fn check(&self, events: &[Value], finals: &[Value]) -> Verdict;
}

/// A workload's verdict.
pub(crate) struct Verdict {
    pub(crate) valid: bool,
    /// What was found, as JSON (counts, anomalies, examples).
    pub(crate) summary: Value,
}

/// Counts of ok, fail and info completions.
pub(crate) fn outcome_counts(events: &[Value]) -> Value {
    let count = |kind: &str| {
        events
            .iter()
            .filter(|e| e.get("type").and_then(Value::as_str) == Some(kind))
            .count()
    };
    serde_json::json!({"ok": count("ok"), "fail": count("fail"), "info": count("info")})
}

/// The elements of a list stored as "1,2,3," (nil is the empty list); `None`
/// for anything else, which no correct server returns.
pub(crate) fn parse_list(value: &redis::Value) -> Option<Vec<i64>> {
    let bytes: &[u8] = match value {
        redis::Value::Nil => return Some(Vec::new()),
        redis::Value::BulkString(bytes) => bytes,
        _ => return None,
    };
    let text = std::str::from_utf8(bytes).ok()?;
    let body = text.strip_suffix(',')?;
    body.split(',').map(|e| e.parse().ok()).collect()
}

/// How an error before `EXEC` was sent ends an operation: nothing can have
/// been committed, so it failed; a connection problem also moves the client
/// on.
pub(crate) fn before_commit(err: &redis::RedisError) -> Outcome {
    match Outcome::of(err) {
        Outcome::Info => Outcome::Refused,
        other => other,
    }
}

/// What `EXEC` answered.
pub(crate) enum Exec {
    /// Committed: one reply per queued command.
    Done(Vec<redis::Value>),
    /// A watched key changed: nothing was committed.
    Aborted,
    /// An error reply (or an unexpected one), classified, with its text.
    Failed(Outcome, String),
}

/// Sends `MULTI`, the commands `queue` adds, and `EXEC`, and reads EXEC's
/// reply itself: the client library's atomic pipelines turn an error reply
/// to `EXEC` into a generic error and lose its code, which says whether
/// the transaction may have committed.
///
/// # Errors
/// The connection's error when the exchange itself failed.
pub(crate) fn multi_exec(
    con: &mut Connection,
    queue: impl FnOnce(&mut redis::Pipeline),
) -> redis::RedisResult<Exec> {
    let mut pipe = redis::pipe();
    pipe.ignore_errors().cmd("MULTI");
    queue(&mut pipe);
    pipe.cmd("EXEC");
    let mut replies: Vec<redis::Value> = pipe.query(con)?;
    Ok(match replies.pop() {
        Some(redis::Value::Array(items)) => Exec::Done(items),
        Some(redis::Value::Nil) => Exec::Aborted,
        Some(redis::Value::ServerError(err)) => {
            Exec::Failed(Outcome::of_code(Some(err.code())), err.to_string())
        }
        other => Exec::Failed(
            Outcome::Info,
            format!("unexpected reply to EXEC: {other:?}"),
        ),
    })
}

/// Checks a transactional history (list-append or rw-register) with the
/// library's checker; valid when every anomaly found is in `allowed`.
/// `extra` holds the workload's own findings for the summary.
pub(crate) fn check_transactions(events: &[Value], allowed: &[&str], extra: Value) -> Verdict {
    let text: String = events.iter().map(|e| format!("{e}\n")).collect();
    let report = certus::check::read_json(&text).and_then(|h| certus::check::check(&h));
    let report = match report {
        Ok(report) => report,
        Err(err) => {
            return Verdict {
                valid: false,
                summary: serde_json::json!({"error": err.to_string()}),
            };
        }
    };
    let explained: Vec<String> = report
        .anomalies
        .iter()
        .take(8)
        .map(|a| format!("{}: {}", a.name(), a.explanation))
        .collect();
    let mut summary = serde_json::json!({
        "operations": outcome_counts(events),
        "anomalies": report.names(),
        "allowed": allowed,
        "explanations": explained,
    });
    if let (Some(summary), Value::Object(extra)) = (summary.as_object_mut(), extra) {
        summary.extend(extra);
    }
    Verdict {
        valid: report.is_valid_except(allowed),
        summary,
    }
}

/// Settles a `MULTI`/`EXEC` exchange: anything but a commit of `expected`
/// commands is recorded as the operation's completion and returned as
/// `Err`; a commit returns EXEC's replies, for the caller to record.
pub(crate) fn settle(
    reply: redis::RedisResult<Exec>,
    expected: usize,
    recorder: &Recorder,
    process: u64,
    f: &str,
    invoked: &Value,
) -> Result<Vec<redis::Value>, Outcome> {
    let (outcome, err) = match reply {
        Ok(Exec::Done(replies)) if replies.len() == expected => return Ok(replies),
        Ok(Exec::Done(_)) => (
            Outcome::Info,
            "EXEC answered a different number of replies".into(),
        ),
        Ok(Exec::Aborted) => {
            recorder.complete(process, Outcome::Fail, f, invoked.clone());
            return Err(Outcome::Fail);
        }
        Ok(Exec::Failed(outcome, err)) => (outcome, err),
        Err(err) => (Outcome::of(&err), err.to_string()),
    };
    recorder.errored(process, outcome, f, invoked.clone(), &err);
    Err(outcome)
}

/// Records a read with no effect on the data: ok with what it saw, else
/// failed (nothing to be unsure about) with its error.
pub(crate) fn record_read(
    recorder: &Recorder,
    process: u64,
    read: redis::RedisResult<Value>,
) -> Outcome {
    match read {
        Ok(value) => {
            recorder.complete(process, Outcome::Ok, "read", value);
            Outcome::Ok
        }
        Err(err) => {
            let outcome = before_commit(&err);
            recorder.errored(process, outcome, "read", Value::Null, &err);
            outcome
        }
    }
}

/// Records a final read (its invocation already recorded): ok with what it
/// saw, which is returned; an error ends the run.
///
/// # Errors
/// The read's error, as text.
pub(crate) fn record_final(
    recorder: &Recorder,
    process: u64,
    read: redis::RedisResult<Value>,
) -> Result<Value, String> {
    let value = read.map_err(|e| format!("final read: {e}"))?;
    recorder.complete(process, Outcome::Ok, "read", value.clone());
    Ok(value)
}

/// Anomalies the isolation level permits: snapshot isolation allows write
/// skew (G2-item, with any order); serializable allows nothing.
pub(crate) fn allowed(serializable: bool) -> Vec<&'static str> {
    if serializable {
        Vec::new()
    } else {
        vec!["G2-item", "G2-item-process", "G2-item-realtime"]
    }
}
