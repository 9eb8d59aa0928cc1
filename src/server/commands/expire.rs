//! Key expiry commands, as Redis 7.2's src/expire.c runs them, with "now"
//! the cluster time of the point they run at, so every node computes the
//! same deadline and the same remaining time.

use bytes::Bytes;

use super::{Handler, lower, parse_i64, reply_on_err};
use crate::kv::KvError;
use crate::server::db::{Db, Record};
use crate::server::resp::Reply;

pub(super) fn handler(name: &str) -> Option<Handler> {
    let handler: Handler = match name {
        "expire" => |db, argv| expire(db, argv, Base::Now, 1000),
        "pexpire" => |db, argv| expire(db, argv, Base::Now, 1),
        "expireat" => |db, argv| expire(db, argv, Base::Epoch, 1000),
        "pexpireat" => |db, argv| expire(db, argv, Base::Epoch, 1),
        "ttl" => |db, argv| ttl(db, argv, Show::Remaining, 1000),
        "pttl" => |db, argv| ttl(db, argv, Show::Remaining, 1),
        "expiretime" => |db, argv| ttl(db, argv, Show::Deadline, 1000),
        "pexpiretime" => |db, argv| ttl(db, argv, Show::Deadline, 1),
        "persist" => persist,
        _ => return None,
    };
    Some(handler)
}

/// What a relative time counts from.
#[derive(Clone, Copy)]
enum Base {
    Now,
    Epoch,
}

#[derive(Clone, Copy, Default)]
struct Conditions {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
}

/// `NX`, `XX`, `GT`, `LT` (Redis's `parseExtendedExpireArgumentsOrReply`).
fn conditions(argv: &[Bytes]) -> Result<Conditions, Reply> {
    let mut c = Conditions::default();
    for option in &argv[3..] {
        match lower(option).as_str() {
            "nx" => c.nx = true,
            "xx" => c.xx = true,
            "gt" => c.gt = true,
            "lt" => c.lt = true,
            _ => {
                let text = String::from_utf8_lossy(option);
                return Err(Reply::err(format_args!("Unsupported option {text}")));
            }
        }
    }
    if c.nx && (c.xx || c.gt || c.lt) {
        return Err(Reply::err(
            "NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if c.gt && c.lt {
        return Err(Reply::err(
            "GT and LT options at the same time are not compatible",
        ));
    }
    Ok(c)
}

fn expire(db: &mut Db<'_>, argv: &[Bytes], base: Base, unit: i64) -> Result<Reply, KvError> {
    let conditions = reply_on_err!(conditions(argv));
    let when = reply_on_err!(parse_i64(&argv[2]));
    let command = lower(&argv[0]);
    let invalid = || Reply::err(format_args!("invalid expire time in '{command}' command"));
    let Some(mut when) = when.checked_mul(unit) else {
        return Ok(invalid());
    };
    if let Base::Now = base {
        let now = i64::try_from(db.now()).unwrap_or(i64::MAX);
        let Some(at) = when.checked_add(now) else {
            return Ok(invalid());
        };
        when = at;
    }
    let Some(record) = db.lookup(&argv[1])? else {
        return Ok(Reply::Integer(0));
    };
    let current = record
        .deadline
        .map(|d| i64::try_from(d).unwrap_or(i64::MAX));
    let refused = (conditions.nx && current.is_some())
        || (conditions.xx && current.is_none())
        || (conditions.gt && current.is_none_or(|c| when <= c))
        || (conditions.lt && current.is_some_and(|c| when >= c));
    if refused {
        return Ok(Reply::Integer(0));
    }
    match u64::try_from(when) {
        Ok(deadline) if deadline > db.now() => {
            let record = Record {
                deadline: Some(deadline),
                ..record
            };
            db.store(&argv[1], &record)?;
        }
        // A deadline already past deletes the key.
        _ => {
            db.remove(&argv[1])?;
        }
    }
    Ok(Reply::Integer(1))
}

/// What `TTL` and its relatives report.
#[derive(Clone, Copy)]
enum Show {
    Remaining,
    Deadline,
}

fn ttl(db: &mut Db<'_>, argv: &[Bytes], show: Show, unit: u64) -> Result<Reply, KvError> {
    let Some(record) = db.lookup(&argv[1])? else {
        return Ok(Reply::Integer(-2));
    };
    let Some(deadline) = record.deadline else {
        return Ok(Reply::Integer(-1));
    };
    let millis = match show {
        Show::Remaining => deadline.saturating_sub(db.now()),
        Show::Deadline => deadline,
    };
    // Seconds round to the nearest, as Redis's `(ttl+500)/1000`.
    let value = millis.saturating_add(unit / 2) / unit;
    Ok(Reply::Integer(i64::try_from(value).unwrap_or(i64::MAX)))
}

fn persist(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    match db.lookup(&argv[1])? {
        Some(record) if record.deadline.is_some() => {
            let record = Record {
                deadline: None,
                ..record
            };
            db.store(&argv[1], &record)?;
            Ok(Reply::Integer(1))
        }
        _ => Ok(Reply::Integer(0)),
    }
}
