//! Commands on keys of any type, as Redis 7.2's src/db.c runs them, over a
//! keyspace ordered by key hash (see [`crate::server::db`]).

use bytes::Bytes;

use super::cursor::{self, ScanArgs};
use super::{Handler, lower, not_integer, parse_i64, reply_on_err, syntax_error};
use crate::kv::KvError;
use crate::server::db::{self, Db, Kind};
use crate::server::glob;
use crate::server::resp::Reply;

pub(super) fn handler(name: &str) -> Option<Handler> {
    let handler: Handler = match name {
        "del" | "unlink" => del,
        "exists" => exists,
        "touch" => exists,
        "type" => key_type,
        "rename" => |db, argv| rename(db, argv, false),
        "renamenx" => |db, argv| rename(db, argv, true),
        "copy" => copy,
        "randomkey" => randomkey,
        "keys" => keys,
        "scan" => scan,
        "dbsize" => dbsize,
        "flushdb" | "flushall" => flush,
        _ => return None,
    };
    Some(handler)
}

fn del(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    let mut removed = 0;
    for key in &argv[1..] {
        removed += i64::from(db.remove(key)?);
    }
    Ok(Reply::Integer(removed))
}

/// `EXISTS` and `TOUCH`: how many of the keys exist, repeats counted.
fn exists(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    let mut present = 0;
    for key in &argv[1..] {
        present += i64::from(db.lookup(key)?.is_some());
    }
    Ok(Reply::Integer(present))
}

fn key_type(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    let name = db.lookup(&argv[1])?.map_or("none", |r| r.kind.name());
    Ok(Reply::Simple(name))
}

fn rename(db: &mut Db<'_>, argv: &[Bytes], nx: bool) -> Result<Reply, KvError> {
    let (from, to) = (&argv[1], &argv[2]);
    let Some(record) = db.lookup(from)? else {
        return Ok(Reply::err("no such key"));
    };
    let done = if nx { Reply::Integer(1) } else { Reply::ok() };
    if from == to {
        return Ok(if nx { Reply::Integer(0) } else { done });
    }
    if nx && db.lookup(to)?.is_some() {
        return Ok(Reply::Integer(0));
    }
    db.remove(to)?;
    if record.kind.is_collection() {
        db.copy_members(from, to)?;
    }
    db.remove(from)?;
    db.store(to, &record)?;
    Ok(done)
}

fn copy(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    let mut replace = false;
    let mut i = 3;
    while i < argv.len() {
        match lower(&argv[i]).as_str() {
            "replace" => replace = true,
            "db" if i + 1 < argv.len() => {
                let index = reply_on_err!(parse_i64(&argv[i + 1]));
                if i32::try_from(index).is_err() {
                    return Ok(not_integer());
                }
                if index != 0 {
                    return Ok(Reply::err("DB index is out of range"));
                }
                i += 1;
            }
            _ => return Ok(syntax_error()),
        }
        i += 1;
    }
    let (from, to) = (&argv[1], &argv[2]);
    if from == to {
        return Ok(Reply::err("source and destination objects are the same"));
    }
    let Some(record) = db.lookup(from)? else {
        return Ok(Reply::Integer(0));
    };
    if !replace && db.lookup(to)?.is_some() {
        return Ok(Reply::Integer(0));
    }
    // An expired `to` leaves nothing behind either.
    db.remove(to)?;
    if record.kind.is_collection() {
        db.copy_members(from, to)?;
    }
    db.store(to, &record)?;
    Ok(Reply::Integer(1))
}

/// Every live key, in hash order.
fn live_keys(db: &mut Db<'_>) -> Result<Vec<(Bytes, Kind)>, KvError> {
    let mut out = Vec::new();
    let mut from = 0;
    loop {
        let (found, next) = db.scan_from(from, 4096)?;
        out.extend(found.into_iter().map(|(key, record)| (key, record.kind)));
        match next {
            Some(next) => from = next,
            None => return Ok(out),
        }
    }
}

fn randomkey(db: &mut Db<'_>, _argv: &[Bytes]) -> Result<Reply, KvError> {
    // A point on the hash circle, then the first live key from there,
    // wrapping around once.
    let start = db.random() & u64::from(u32::MAX);
    for (mut from, until) in [(Some(start), u64::MAX), (Some(0), start)] {
        while let Some(hash) = from.filter(|h| *h <= until) {
            let (found, next) = db.scan_from(hash, 1)?;
            if let Some((key, _)) = found.into_iter().next() {
                return Ok(Reply::Bulk(Some(key)));
            }
            from = next;
        }
    }
    Ok(Reply::Bulk(None))
}

fn keys(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    let pattern = &argv[1];
    let all = pattern.as_ref() == b"*";
    let mut matching = Vec::new();
    for (key, _) in live_keys(db)? {
        if !(all || glob::matches(pattern, &key)) {
            continue;
        }
        if !db.charge(key.len() + 16) {
            return Ok(crate::server::db::output_limit_reply());
        }
        matching.push(Reply::Bulk(Some(key)));
    }
    Ok(Reply::Array(Some(matching)))
}

/// `SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]` (see
/// [`cursor`]).
fn scan(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    let from = reply_on_err!(cursor::parse_cursor(&argv[1]));
    let args = reply_on_err!(ScanArgs::parse(from, argv, 2, true));
    let (found, next) = db.scan_from(args.from, args.count)?;
    let keys = found
        .into_iter()
        .filter(|(key, record)| args.matches(key) && args.matches_kind(record.kind))
        .map(|(key, _)| Reply::Bulk(Some(key)))
        .collect();
    Ok(cursor::reply(next, keys))
}

fn dbsize(db: &mut Db<'_>, _argv: &[Bytes]) -> Result<Reply, KvError> {
    Ok(Reply::len(live_keys(db)?.len()))
}

/// `FLUSHALL` and `FLUSHDB` (one database): every record, member and
/// expiry entry, expired or not, goes. `ASYNC` and `SYNC` make no difference.
fn flush(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    match argv.get(1).map(|a| lower(a)) {
        None => {}
        Some(mode) if argv.len() == 2 && (mode == "sync" || mode == "async") => {}
        Some(_) => return Ok(syntax_error()),
    }
    let keys = db.keys();
    for (start, end) in [
        db::all_records(),
        db::all_expiries(),
        db::members::all_members(),
    ] {
        loop {
            let chunk = keys.scan(&start, &end, 4096)?;
            if chunk.is_empty() {
                break;
            }
            for (key, _) in chunk {
                keys.delete(key)?;
            }
        }
    }
    Ok(Reply::ok())
}
