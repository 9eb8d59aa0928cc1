//! Hash commands, as Redis 7.2's src/t_hash.c runs them. Each field is a
//! member of its own (see [`crate::server::db::members`]): a command reads
//! and writes only the fields it names.

use bytes::Bytes;

use super::cursor::{self, ScanArgs};
use super::{
    Handler, arity_error, format_float, lower, parse_f64, parse_i64, reply_on_err, syntax_error,
};
use crate::kv::KvError;
use crate::server::db::members::{Collection, hashed};
use crate::server::db::{Db, Kind, output_limit_reply};
use crate::server::resp::Reply;

pub(super) fn handler(name: &str) -> Option<Handler> {
    let handler: Handler = match name {
        "hset" | "hmset" => hset,
        "hsetnx" => hsetnx,
        "hget" => hget,
        "hmget" => hmget,
        "hdel" => hdel,
        "hlen" => hlen,
        "hstrlen" => hstrlen,
        "hexists" => hexists,
        "hincrby" => hincrby,
        "hincrbyfloat" => hincrbyfloat,
        "hkeys" => |db, argv| hgetall(db, argv, Shape::Fields),
        "hvals" => |db, argv| hgetall(db, argv, Shape::Values),
        "hgetall" => |db, argv| hgetall(db, argv, Shape::Both),
        "hrandfield" => hrandfield,
        "hscan" => hscan,
        _ => return None,
    };
    Some(handler)
}

/// The hash at `key` for reading: `None` when absent.
fn read(db: &mut Db<'_>, key: &[u8]) -> Result<Result<Option<Collection>, Reply>, KvError> {
    db.collection(key, Kind::Hash)
}

/// Sets `field` of `hash` to `value`; true when the field is new.
fn set_field(
    db: &mut Db<'_>,
    hash: &mut Collection,
    field: &[u8],
    value: Bytes,
) -> Result<bool, KvError> {
    let sub = hashed(field);
    let new = hash.is_empty() || db.member(hash.key(), &sub)?.is_none();
    db.put_member(hash.key(), &sub, value)?;
    if new {
        hash.meta.len += 1;
    }
    Ok(new)
}

/// `HSET key field value [field value ...]` (the number of new fields) and
/// `HMSET` (`OK`).
fn hset(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    let name = lower(&argv[0]);
    if argv.len() % 2 == 1 {
        return Ok(arity_error(&name));
    }
    let mut hash = reply_on_err!(db.collection_mut(&argv[1], Kind::Hash)?);
    let mut created = 0;
    for pair in argv[2..].chunks_exact(2) {
        created += i64::from(set_field(db, &mut hash, &pair[0], pair[1].clone())?);
    }
    db.close(&hash)?;
    Ok(if name == "hmset" {
        Reply::ok()
    } else {
        Reply::Integer(created)
    })
}

fn hsetnx(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    let mut hash = reply_on_err!(db.collection_mut(&argv[1], Kind::Hash)?);
    if !hash.is_empty() && db.member(hash.key(), &hashed(&argv[2]))?.is_some() {
        return Ok(Reply::Integer(0));
    }
    set_field(db, &mut hash, &argv[2], argv[3].clone())?;
    db.close(&hash)?;
    Ok(Reply::Integer(1))
}

/// The value of `field`, or `None` when the hash or the field is absent.
fn field(
    db: &mut Db<'_>,
    hash: Option<&Collection>,
    field: &[u8],
) -> Result<Option<Bytes>, KvError> {
    match hash {
        Some(hash) => db.member(hash.key(), &hashed(field)),
        None => Ok(None),
    }
}

fn hget(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    let hash = reply_on_err!(read(db, &argv[1])?);
    Ok(Reply::Bulk(field(db, hash.as_ref(), &argv[2])?))
}

fn hmget(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    let hash = reply_on_err!(read(db, &argv[1])?);
    let mut values = Vec::with_capacity(argv.len() - 2);
    for name in &argv[2..] {
        let value = field(db, hash.as_ref(), name)?;
        if !db.charge(value.as_ref().map_or(0, Bytes::len) + 16) {
            return Ok(output_limit_reply());
        }
        values.push(Reply::Bulk(value));
    }
    Ok(Reply::Array(Some(values)))
}

fn hdel(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    let Some(mut hash) = reply_on_err!(read(db, &argv[1])?) else {
        return Ok(Reply::Integer(0));
    };
    let mut removed = 0;
    for name in &argv[2..] {
        let sub = hashed(name);
        if hash.meta.len > 0 && db.member(hash.key(), &sub)?.is_some() {
            db.delete_member(hash.key(), &sub)?;
            hash.meta.len -= 1;
            removed += 1;
        }
    }
    db.close(&hash)?;
    Ok(Reply::Integer(removed))
}

fn hlen(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    let hash = reply_on_err!(read(db, &argv[1])?);
    Ok(Reply::len(hash.map_or(0, |h| h.len())))
}

fn hstrlen(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    let hash = reply_on_err!(read(db, &argv[1])?);
    let value = field(db, hash.as_ref(), &argv[2])?;
    Ok(Reply::len(value.map_or(0, |v| v.len())))
}

fn hexists(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    let hash = reply_on_err!(read(db, &argv[1])?);
    let found = field(db, hash.as_ref(), &argv[2])?.is_some();
    Ok(Reply::Integer(i64::from(found)))
}

fn hincrby(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    let increment = reply_on_err!(parse_i64(&argv[3]));
    let mut hash = reply_on_err!(db.collection_mut(&argv[1], Kind::Hash)?);
    let current = match field(db, (!hash.is_empty()).then_some(&hash), &argv[2])? {
        Some(value) => match parse_i64(&value) {
            Ok(current) => current,
            Err(_) => return Ok(Reply::err("hash value is not an integer")),
        },
        None => 0,
    };
    let Some(value) = current.checked_add(increment) else {
        return Ok(Reply::err("increment or decrement would overflow"));
    };
    set_field(db, &mut hash, &argv[2], Bytes::from(value.to_string()))?;
    db.close(&hash)?;
    Ok(Reply::Integer(value))
}

fn hincrbyfloat(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    let increment = reply_on_err!(parse_f64(&argv[3]));
    if increment.is_infinite() {
        return Ok(Reply::err("value is NaN or Infinity"));
    }
    let mut hash = reply_on_err!(db.collection_mut(&argv[1], Kind::Hash)?);
    let current = match field(db, (!hash.is_empty()).then_some(&hash), &argv[2])? {
        Some(value) => match parse_f64(&value) {
            Ok(current) => current,
            Err(_) => return Ok(Reply::err("hash value is not a float")),
        },
        None => 0.0,
    };
    let value = current + increment;
    if !value.is_finite() {
        return Ok(Reply::err("increment would produce NaN or Infinity"));
    }
    let text = Bytes::from(format_float(value));
    set_field(db, &mut hash, &argv[2], text.clone())?;
    db.close(&hash)?;
    Ok(Reply::Bulk(Some(text)))
}

/// What `HKEYS`, `HVALS` and `HGETALL` reply with.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    Fields,
    Values,
    Both,
}

fn hgetall(db: &mut Db<'_>, argv: &[Bytes], shape: Shape) -> Result<Reply, KvError> {
    let empty = if shape == Shape::Both {
        Reply::Map(Vec::new())
    } else {
        Reply::Array(Some(Vec::new()))
    };
    let Some(hash) = reply_on_err!(read(db, &argv[1])?) else {
        return Ok(empty);
    };
    let cost = |sub: &Bytes, value: &Bytes| match shape {
        Shape::Fields => sub.len() + 16,
        Shape::Values => value.len() + 16,
        Shape::Both => sub.len() + value.len() + 32,
    };
    let Some(all) = db.all_members(hash.key(), cost)? else {
        return Ok(output_limit_reply());
    };
    let fields = all.into_iter().filter_map(|(sub, value)| {
        let (_, name) = crate::server::db::members::parse_hashed(&sub)?;
        Some((Reply::Bulk(Some(name)), Reply::Bulk(Some(value))))
    });
    Ok(match shape {
        Shape::Fields => Reply::Array(Some(fields.map(|(f, _)| f).collect())),
        Shape::Values => Reply::Array(Some(fields.map(|(_, v)| v).collect())),
        Shape::Both => Reply::Map(fields.collect()),
    })
}

/// `HRANDFIELD key [count [WITHVALUES]]`.
fn hrandfield(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    let Some(count) = argv.get(2) else {
        let Some(hash) = reply_on_err!(read(db, &argv[1])?) else {
            return Ok(Reply::Bulk(None));
        };
        let picked = db.random_hashed(hash.key())?;
        return Ok(Reply::Bulk(picked.map(|(name, _)| name)));
    };
    let count = reply_on_err!(parse_i64(count));
    if count == i64::MIN {
        return Ok(out_of_range());
    }
    let with_values = match argv.get(3) {
        None => false,
        Some(option) if argv.len() == 4 && lower(option) == "withvalues" => true,
        Some(_) => return Ok(syntax_error()),
    };
    if with_values && count.unsigned_abs() > (i64::MAX / 2).unsigned_abs() {
        return Ok(Reply::err("value is out of range"));
    }
    let Some(hash) = reply_on_err!(read(db, &argv[1])?) else {
        return Ok(Reply::Array(Some(Vec::new())));
    };
    let cost =
        |name: &Bytes, value: &Bytes| name.len() + 16 + value.len() * usize::from(with_values);
    let Some(picked) = db.sample_hashed(hash.key(), hash.meta.len, count, cost)? else {
        return Ok(output_limit_reply());
    };
    let names = picked
        .into_iter()
        .map(|(name, value)| (Reply::bulk(name), Reply::bulk(value)));
    Ok(if with_values {
        Reply::Pairs(names.collect())
    } else {
        Reply::Array(Some(names.map(|(name, _)| name).collect()))
    })
}

/// Redis's error for a count outside `-LONG_MAX..=LONG_MAX`.
pub(super) fn out_of_range() -> Reply {
    Reply::err(format_args!(
        "value is out of range, value must between {} and {}",
        -i64::MAX,
        i64::MAX
    ))
}

/// `HSCAN key cursor [MATCH pattern] [COUNT count]`: fields and values.
fn hscan(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    let from = reply_on_err!(cursor::parse_cursor(&argv[2]));
    let Some(hash) = reply_on_err!(read(db, &argv[1])?) else {
        return Ok(cursor::empty());
    };
    let args = reply_on_err!(ScanArgs::parse(from, argv, 3, false));
    let (found, next) = db.scan_hashed(hash.key(), b"", args.from, args.count)?;
    let mut items = Vec::new();
    for (name, value) in found.into_iter().filter(|(name, _)| args.matches(name)) {
        items.push(Reply::Bulk(Some(name)));
        items.push(Reply::Bulk(Some(value)));
    }
    Ok(cursor::reply(next, items))
}
