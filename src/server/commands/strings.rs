//! String commands, as Redis 7.2's src/t_string.c runs them.

use bytes::{Bytes, BytesMut};

use super::{Handler, format_float, lower, parse_f64, parse_i64, reply_on_err, syntax_error};
use crate::kv::KvError;
use crate::server::db::{Db, Record};
use crate::server::resp::Reply;

/// The largest string a command may build (Redis's `proto-max-bulk-len`,
/// here the largest argument a request may carry).
pub(crate) const MAX_STRING: usize = 32 << 20;

pub(super) fn handler(name: &str) -> Option<Handler> {
    let handler: Handler = match name {
        "get" => get,
        "set" => set,
        "setnx" => setnx,
        "setex" => setex,
        "psetex" => psetex,
        "getset" => getset,
        "getex" => getex,
        "getdel" => getdel,
        "mget" => mget,
        "mset" => mset,
        "msetnx" => msetnx,
        "incr" => |db, argv| incr_by(db, &argv[1], 1),
        "decr" => |db, argv| incr_by(db, &argv[1], -1),
        "incrby" => incrby,
        "decrby" => decrby,
        "incrbyfloat" => incrbyfloat,
        "append" => append,
        "strlen" => strlen,
        "getrange" | "substr" => getrange,
        "setrange" => setrange,
        _ => return None,
    };
    Some(handler)
}

/// `GET`, and the first step of `GETSET`, `GETDEL` and `SET ... GET`: the
/// string, nil, or the `WRONGTYPE` error.
fn get_reply(db: &mut Db<'_>, key: &[u8]) -> Result<Result<Reply, Reply>, KvError> {
    Ok(db
        .string(key)?
        .map(|found| Reply::Bulk(found.map(|r| r.value))))
}

fn get(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    Ok(match get_reply(db, &argv[1])? {
        Ok(reply) | Err(reply) => reply,
    })
}

/// What `SET` and `GETEX` do with the key's expiry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expiry {
    /// Remove it (a plain `SET`).
    Clear,
    /// Keep it (`KEEPTTL`, a plain `GETEX`).
    Keep,
    /// Remove it, and say so (`GETEX ... PERSIST`).
    Persist,
    /// Expire at this many milliseconds since the Unix epoch.
    At(i64),
}

#[derive(Clone, Copy, Debug, Default)]
struct SetFlags {
    nx: bool,
    xx: bool,
    get: bool,
}

/// A timed expiry as given: the raw number and its unit (`ex`, `px`,
/// `exat`, `pxat`).
type Timed = Option<(String, &'static str)>;

/// `SET`'s and `GETEX`'s options (Redis's
/// `parseExtendedStringArgumentsOrReply`); a timed expiry comes back raw,
/// with its unit, to be resolved once the key is known to exist (as Redis
/// orders its errors). `set` tells the two commands apart.
fn parse_extended(argv: &[Bytes], set: bool) -> Result<(SetFlags, Expiry, Timed), Reply> {
    let mut flags = SetFlags::default();
    let mut expiry = if set { Expiry::Clear } else { Expiry::Keep };
    let mut timed: Option<(&Bytes, &'static str)> = None;
    let mut i = if set { 3 } else { 2 };
    while i < argv.len() {
        let option = lower(&argv[i]);
        let next = argv.get(i + 1);
        let no_expiry = timed.is_none() && matches!(expiry, Expiry::Clear | Expiry::Keep);
        match option.as_str() {
            "nx" if set && !flags.xx => flags.nx = true,
            "xx" if set && !flags.nx => flags.xx = true,
            "get" if set => flags.get = true,
            "keepttl" if set && no_expiry => expiry = Expiry::Keep,
            "persist" if !set && no_expiry => expiry = Expiry::Persist,
            "ex" | "px" | "exat" | "pxat"
                if no_expiry && !(set && expiry == Expiry::Keep) && next.is_some() =>
            {
                let unit = match option.as_str() {
                    "ex" => "ex",
                    "px" => "px",
                    "exat" => "exat",
                    _ => "pxat",
                };
                timed = next.map(|n| (n, unit));
                i += 1;
            }
            _ => return Err(syntax_error()),
        }
        i += 1;
    }
    let raw = timed.map(|(value, unit)| (String::from_utf8_lossy(value).into_owned(), unit));
    Ok((flags, expiry, raw))
}

/// The absolute deadline of an `EX`/`PX`/`EXAT`/`PXAT` argument (Redis's
/// `getExpireMillisecondsOrReply`): positive, and not overflowing.
fn resolve_deadline(db: &Db<'_>, raw: &str, unit: &str, command: &str) -> Result<i64, Reply> {
    let value = parse_i64(raw.as_bytes())?;
    let invalid = || Reply::err(format_args!("invalid expire time in '{command}' command"));
    let seconds = matches!(unit, "ex" | "exat");
    if value <= 0 || (seconds && value > i64::MAX / 1000) {
        return Err(invalid());
    }
    let mut millis = if seconds { value * 1000 } else { value };
    if matches!(unit, "ex" | "px") {
        let now = i64::try_from(db.now()).unwrap_or(i64::MAX);
        millis = millis.checked_add(now).ok_or_else(invalid)?;
    }
    Ok(millis)
}

fn set(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    let (flags, mut expiry, raw) = reply_on_err!(parse_extended(argv, true));
    if let Some((raw, unit)) = raw {
        expiry = Expiry::At(reply_on_err!(resolve_deadline(db, &raw, unit, "set")));
    }
    let old = if flags.get {
        Some(reply_on_err!(get_reply(db, &argv[1])?))
    } else {
        None
    };
    let current = db.lookup(&argv[1])?;
    let found = current.is_some();
    if (flags.nx && found) || (flags.xx && !found) {
        return Ok(old.unwrap_or(Reply::Bulk(None)));
    }
    let keep = current.and_then(|r| r.deadline);
    write_string(db, &argv[1], argv[2].clone(), expiry, keep)?;
    Ok(old.unwrap_or_else(Reply::ok))
}

/// Stores a string with the expiry `SET` asked for: a deadline already
/// past deletes the key (it would be expired at once).
fn write_string(
    db: &mut Db<'_>,
    key: &Bytes,
    value: Bytes,
    expiry: Expiry,
    kept: Option<u64>,
) -> Result<(), KvError> {
    let deadline = match expiry {
        Expiry::Clear | Expiry::Persist => None,
        Expiry::Keep => kept,
        Expiry::At(at) => Some(u64::try_from(at).unwrap_or(0)),
    };
    if deadline.is_some_and(|d| d <= db.now()) {
        db.remove(key)?;
        return Ok(());
    }
    db.set_string(key, value, deadline)
}

fn setnx(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    if db.lookup(&argv[1])?.is_some() {
        return Ok(Reply::Integer(0));
    }
    db.set_string(&argv[1], argv[2].clone(), None)?;
    Ok(Reply::Integer(1))
}

fn setex(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    set_expiring(db, argv, "ex", "setex")
}

fn psetex(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    set_expiring(db, argv, "px", "psetex")
}

fn set_expiring(
    db: &mut Db<'_>,
    argv: &[Bytes],
    unit: &str,
    command: &str,
) -> Result<Reply, KvError> {
    let raw = String::from_utf8_lossy(&argv[2]).into_owned();
    let at = reply_on_err!(resolve_deadline(db, &raw, unit, command));
    write_string(db, &argv[1], argv[3].clone(), Expiry::At(at), None)?;
    Ok(Reply::ok())
}

fn getset(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    let old = reply_on_err!(get_reply(db, &argv[1])?);
    db.set_string(&argv[1], argv[2].clone(), None)?;
    Ok(old)
}

fn getex(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    let (_, expiry, raw) = reply_on_err!(parse_extended(argv, false));
    let Some(record) = reply_on_err!(db.string(&argv[1])?) else {
        return Ok(Reply::Bulk(None));
    };
    let expiry = match raw {
        Some((raw, unit)) => Expiry::At(reply_on_err!(resolve_deadline(db, &raw, unit, "getex"))),
        None => expiry,
    };
    let reply = Reply::Bulk(Some(record.value.clone()));
    match expiry {
        Expiry::Keep | Expiry::Clear => {}
        Expiry::Persist => {
            if record.deadline.is_some() {
                db.store(
                    &argv[1],
                    &Record {
                        deadline: None,
                        ..record
                    },
                )?;
            }
        }
        Expiry::At(_) => write_string(db, &argv[1], record.value, expiry, None)?,
    }
    Ok(reply)
}

fn getdel(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    let old = reply_on_err!(get_reply(db, &argv[1])?);
    db.remove(&argv[1])?;
    Ok(old)
}

fn mget(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    let mut values = Vec::with_capacity(argv.len() - 1);
    for key in &argv[1..] {
        let value = match db.string(key)? {
            Ok(Some(record)) => Some(record.value),
            _ => None,
        };
        if !db.charge(value.as_ref().map_or(0, Bytes::len) + 16) {
            return Ok(crate::server::db::output_limit_reply());
        }
        values.push(Reply::Bulk(value));
    }
    Ok(Reply::Array(Some(values)))
}

fn mset(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    if argv.len().is_multiple_of(2) {
        return Ok(super::arity_error("mset"));
    }
    for pair in argv[1..].chunks_exact(2) {
        db.set_string(&pair[0], pair[1].clone(), None)?;
    }
    Ok(Reply::ok())
}

fn msetnx(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    if argv.len().is_multiple_of(2) {
        return Ok(super::arity_error("msetnx"));
    }
    for pair in argv[1..].chunks_exact(2) {
        if db.lookup(&pair[0])?.is_some() {
            return Ok(Reply::Integer(0));
        }
    }
    for pair in argv[1..].chunks_exact(2) {
        db.set_string(&pair[0], pair[1].clone(), None)?;
    }
    Ok(Reply::Integer(1))
}

fn incrby(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    let by = reply_on_err!(parse_i64(&argv[2]));
    incr_by(db, &argv[1], by)
}

fn decrby(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    let by = reply_on_err!(parse_i64(&argv[2]));
    let Some(by) = by.checked_neg() else {
        return Ok(Reply::err("decrement would overflow"));
    };
    incr_by(db, &argv[1], by)
}

/// `INCR` and friends: the value stays a string, its expiry stays.
fn incr_by(db: &mut Db<'_>, key: &Bytes, by: i64) -> Result<Reply, KvError> {
    let found = reply_on_err!(db.string(key)?);
    let current = match &found {
        None => 0,
        Some(record) => reply_on_err!(parse_i64(&record.value)),
    };
    let Some(next) = current.checked_add(by) else {
        return Ok(Reply::err("increment or decrement would overflow"));
    };
    let deadline = found.and_then(|r| r.deadline);
    db.set_string(key, Bytes::from(next.to_string()), deadline)?;
    Ok(Reply::Integer(next))
}

fn incrbyfloat(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    let found = reply_on_err!(db.string(&argv[1])?);
    let current = match &found {
        None => 0.0,
        Some(record) => reply_on_err!(parse_f64(&record.value)),
    };
    let by = reply_on_err!(parse_f64(&argv[2]));
    let next = current + by;
    if !next.is_finite() {
        return Ok(Reply::err("increment would produce NaN or Infinity"));
    }
    let text = Bytes::from(format_float(next));
    let deadline = found.and_then(|r| r.deadline);
    db.set_string(&argv[1], text.clone(), deadline)?;
    Ok(Reply::Bulk(Some(text)))
}

fn too_long() -> Reply {
    Reply::err("string exceeds maximum allowed size (proto-max-bulk-len)")
}

fn append(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    let found = reply_on_err!(db.string(&argv[1])?);
    let (mut value, deadline) = match found {
        None => (BytesMut::new(), None),
        Some(record) => (BytesMut::from(record.value.as_ref()), record.deadline),
    };
    if value.len().saturating_add(argv[2].len()) > MAX_STRING {
        return Ok(too_long());
    }
    value.extend_from_slice(&argv[2]);
    let len = value.len();
    db.set_string(&argv[1], value.freeze(), deadline)?;
    Ok(Reply::len(len))
}

fn strlen(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    let found = reply_on_err!(db.string(&argv[1])?);
    Ok(Reply::len(found.map_or(0, |r| r.value.len())))
}

fn getrange(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    let start = reply_on_err!(parse_i64(&argv[2]));
    let end = reply_on_err!(parse_i64(&argv[3]));
    let empty = Reply::Bulk(Some(Bytes::new()));
    let Some(record) = reply_on_err!(db.string(&argv[1])?) else {
        return Ok(empty);
    };
    let len = i64::try_from(record.value.len()).unwrap_or(i64::MAX);
    if start < 0 && end < 0 && start > end {
        return Ok(empty);
    }
    let start = if start < 0 {
        (len + start).max(0)
    } else {
        start
    };
    let end = if end < 0 { (len + end).max(0) } else { end }.min(len - 1);
    if start > end || len == 0 {
        return Ok(empty);
    }
    let (start, end) = (start as usize, end as usize);
    Ok(Reply::Bulk(Some(record.value.slice(start..=end))))
}

fn setrange(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    let offset = reply_on_err!(parse_i64(&argv[2]));
    if offset < 0 {
        return Ok(Reply::err("offset is out of range"));
    }
    let patch = &argv[3];
    let found = reply_on_err!(db.string(&argv[1])?);
    let Ok(offset) = usize::try_from(offset) else {
        return Ok(too_long());
    };
    let (mut value, deadline) = match found {
        None if patch.is_empty() => return Ok(Reply::Integer(0)),
        None => (BytesMut::new(), None),
        Some(record) if patch.is_empty() => return Ok(Reply::len(record.value.len())),
        Some(record) => (BytesMut::from(record.value.as_ref()), record.deadline),
    };
    if offset.saturating_add(patch.len()) > MAX_STRING {
        return Ok(too_long());
    }
    if value.len() < offset + patch.len() {
        value.resize(offset + patch.len(), 0);
    }
    value[offset..offset + patch.len()].copy_from_slice(patch);
    let len = value.len();
    db.set_string(&argv[1], value.freeze(), deadline)?;
    Ok(Reply::len(len))
}
