//! Sorted-set commands, as Redis 7.2's src/t_zset.c runs them, over a
//! score index (see [`index`]): ranges by score, rank or name are a seek
//! and a walk from either end, never a scan of the whole set.

mod index;
mod range;

use bytes::Bytes;

use self::index::{Entry, decode_score};
use super::cursor::{self, ScanArgs};
use super::{Handler, lower, parse_f64, parse_i64, reply_on_err, syntax_error};
use crate::kv::KvError;
use crate::server::db::members::Collection;
use crate::server::db::{Db, Kind};
use crate::server::resp::Reply;

pub(super) fn handler(name: &str) -> Option<Handler> {
    let handler: Handler = match name {
        "zadd" => |db, argv| zadd(db, argv, false),
        "zincrby" => |db, argv| zadd(db, argv, true),
        "zrem" => zrem,
        "zscore" => zscore,
        "zmscore" => zmscore,
        "zcard" => zcard,
        "zrank" => |db, argv| zrank(db, argv, false),
        "zrevrank" => |db, argv| zrank(db, argv, true),
        "zpopmin" => |db, argv| zpop(db, argv, false),
        "zpopmax" => |db, argv| zpop(db, argv, true),
        "bzpopmin" => |db, argv| bzpop(db, argv, false),
        "bzpopmax" => |db, argv| bzpop(db, argv, true),
        "zscan" => zscan,
        name => return range::handler(name),
    };
    Some(handler)
}

fn read(db: &mut Db<'_>, key: &[u8]) -> Result<Result<Option<Collection>, Reply>, KvError> {
    db.collection(key, Kind::ZSet)
}

/// A score argument, as `getDoubleFromObjectOrReply` takes it.
fn parse_score(arg: &[u8]) -> Result<f64, Reply> {
    parse_f64(arg)
}

/// `ZADD`'s options.
#[derive(Clone, Copy, Debug, Default)]
struct Flags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
    ch: bool,
    incr: bool,
}

/// `ZADD`'s options from `argv[2..]`, and where the pairs start; the error
/// reply for a bad combination.
fn parse_flags(argv: &[Bytes], incr: bool) -> Result<(Flags, usize), Reply> {
    let mut flags = Flags {
        incr,
        ..Flags::default()
    };
    let mut at = 2;
    if lower(&argv[0]) == "zadd" {
        while let Some(option) = argv.get(at) {
            match lower(option).as_str() {
                "nx" => flags.nx = true,
                "xx" => flags.xx = true,
                "gt" => flags.gt = true,
                "lt" => flags.lt = true,
                "ch" => flags.ch = true,
                "incr" => flags.incr = true,
                _ => break,
            }
            at += 1;
        }
    }
    let pairs = argv.len() - at;
    if pairs == 0 || pairs % 2 == 1 {
        return Err(syntax_error());
    }
    let Flags { nx, xx, gt, lt, .. } = flags;
    if nx && xx {
        return Err(Reply::err(
            "XX and NX options at the same time are not compatible",
        ));
    }
    if nx && (gt || lt) || (gt && lt) {
        return Err(Reply::err(
            "GT, LT, and/or NX options at the same time are not compatible",
        ));
    }
    if flags.incr && pairs > 2 {
        return Err(Reply::err(
            "INCR option supports a single increment-element pair",
        ));
    }
    Ok((flags, at))
}

/// `ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member [score member ...]`,
/// and `ZINCRBY key increment member` (`incr`).
fn zadd(db: &mut Db<'_>, argv: &[Bytes], incr: bool) -> Result<Reply, KvError> {
    let (flags, at) = reply_on_err!(parse_flags(argv, incr));
    let Flags {
        nx,
        xx,
        gt,
        lt,
        ch,
        incr,
    } = flags;
    let pairs = &argv[at..];
    let mut scores = Vec::with_capacity(pairs.len() / 2);
    for pair in pairs.chunks_exact(2) {
        scores.push(reply_on_err!(parse_score(&pair[0])));
    }
    let mut zset = reply_on_err!(db.collection_mut(&argv[1], Kind::ZSet)?);
    if zset.is_empty() && xx {
        return Ok(if incr { Reply::Null } else { Reply::Integer(0) });
    }
    let (mut added, mut updated, mut last) = (0, 0, None);
    for (pair, score) in pairs.chunks_exact(2).zip(scores) {
        let member = &pair[1];
        let old = index::score(db, &zset, member)?;
        let new = match old {
            Some(_) if nx => continue,
            None if xx => continue,
            Some(old) if incr => old + score,
            _ => score,
        };
        if new.is_nan() {
            db.close(&zset)?;
            return Ok(Reply::err("resulting score is not a number (NaN)"));
        }
        if let Some(old) = old {
            if (lt && new >= old) || (gt && new <= old) {
                continue;
            }
            if new != old {
                index::set(db, &mut zset, member, new, Some(old))?;
                updated += 1;
            }
        } else {
            index::set(db, &mut zset, member, new, None)?;
            added += 1;
        }
        last = Some(new);
    }
    db.close(&zset)?;
    Ok(if incr {
        last.map_or(Reply::Null, Reply::Double)
    } else {
        Reply::Integer(if ch { added + updated } else { added })
    })
}

fn zrem(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    let Some(mut zset) = reply_on_err!(read(db, &argv[1])?) else {
        return Ok(Reply::Integer(0));
    };
    let mut removed = 0;
    for member in &argv[2..] {
        if let Some(score) = index::score(db, &zset, member)? {
            index::remove(db, &mut zset, member, score)?;
            removed += 1;
        }
    }
    db.close(&zset)?;
    Ok(Reply::Integer(removed))
}

fn zscore(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    let Some(zset) = reply_on_err!(read(db, &argv[1])?) else {
        return Ok(Reply::Null);
    };
    Ok(index::score(db, &zset, &argv[2])?.map_or(Reply::Null, Reply::Double))
}

fn zmscore(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    let zset = reply_on_err!(read(db, &argv[1])?);
    let mut out = Vec::with_capacity(argv.len() - 2);
    for member in &argv[2..] {
        let score = match &zset {
            Some(zset) => index::score(db, zset, member)?,
            None => None,
        };
        out.push(score.map_or(Reply::Null, Reply::Double));
    }
    Ok(Reply::Array(Some(out)))
}

fn zcard(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    let zset = reply_on_err!(read(db, &argv[1])?);
    Ok(Reply::len(zset.map_or(0, |z| z.len())))
}

/// `ZRANK key member [WITHSCORE]` and `ZREVRANK`.
fn zrank(db: &mut Db<'_>, argv: &[Bytes], rev: bool) -> Result<Reply, KvError> {
    if argv.len() > 4 {
        return Ok(super::arity_error(&lower(&argv[0])));
    }
    let with_score = match argv.get(3) {
        Some(option) if option.eq_ignore_ascii_case(b"withscore") => true,
        Some(_) => return Ok(syntax_error()),
        None => false,
    };
    let nil = if with_score {
        Reply::Array(None)
    } else {
        Reply::Null
    };
    let Some(zset) = reply_on_err!(read(db, &argv[1])?) else {
        return Ok(nil);
    };
    let Some(score) = index::score(db, &zset, &argv[2])? else {
        return Ok(nil);
    };
    let rank = Reply::Integer(
        i64::try_from(index::rank(db, &zset, &argv[2], score, rev)?).unwrap_or(i64::MAX),
    );
    Ok(if with_score {
        Reply::Array(Some(vec![rank, Reply::Double(score)]))
    } else {
        rank
    })
}

/// Removes and returns up to `count` entries from the low end (`max`: the
/// high end).
fn pop_entries(
    db: &mut Db<'_>,
    zset: &mut Collection,
    max: bool,
    count: u64,
) -> Result<Vec<Entry>, KvError> {
    let popped = index::by_rank(db, zset, max, 0, count)?;
    for (member, score) in &popped {
        index::remove(db, zset, member, *score)?;
    }
    db.close(zset)?;
    Ok(popped)
}

/// `ZPOPMIN key [count]` and `ZPOPMAX`.
fn zpop(db: &mut Db<'_>, argv: &[Bytes], max: bool) -> Result<Reply, KvError> {
    if argv.len() > 3 {
        return Ok(syntax_error());
    }
    let count = match argv.get(2) {
        None => None,
        Some(count) => match parse_i64(count) {
            Ok(n) if n >= 0 => Some(n.unsigned_abs()),
            Ok(_) => return Ok(Reply::err("value is out of range, must be positive")),
            Err(reply) => return Ok(reply),
        },
    };
    let Some(mut zset) = reply_on_err!(read(db, &argv[1])?) else {
        return Ok(Reply::Array(Some(Vec::new())));
    };
    if count == Some(0) {
        return Ok(Reply::Array(Some(Vec::new())));
    }
    let popped = pop_entries(db, &mut zset, max, count.unwrap_or(1))?;
    let pairs = popped
        .into_iter()
        .map(|(m, s)| (Reply::bulk(m), Reply::Double(s)));
    Ok(match count {
        Some(_) => Reply::Pairs(pairs.collect()),
        None => Reply::Array(Some(pairs.flat_map(|(m, s)| [m, s]).collect())),
    })
}

/// One attempt of `BZPOPMIN key [key ...] timeout` or `BZPOPMAX`: `[key,
/// member, score]` from the first non-empty set, or the nil array.
fn bzpop(db: &mut Db<'_>, argv: &[Bytes], max: bool) -> Result<Reply, KvError> {
    reply_on_err!(super::lists::timeout(&argv[argv.len() - 1]));
    for key in &argv[1..argv.len() - 1] {
        let Some(mut zset) = reply_on_err!(read(db, key)?) else {
            continue;
        };
        if let Some((member, score)) = pop_entries(db, &mut zset, max, 1)?.into_iter().next() {
            return Ok(Reply::Array(Some(vec![
                Reply::bulk(key.clone()),
                Reply::bulk(member),
                Reply::Double(score),
            ])));
        }
    }
    Ok(Reply::Array(None))
}

/// `ZSCAN key cursor [MATCH pattern] [COUNT count]`: members and scores.
fn zscan(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    let from = reply_on_err!(cursor::parse_cursor(&argv[2]));
    let Some(zset) = reply_on_err!(read(db, &argv[1])?) else {
        return Ok(cursor::empty());
    };
    let args = reply_on_err!(ScanArgs::parse(from, argv, 3, false));
    let (found, next) = db.scan_hashed(zset.key(), index::NAME_TAG, args.from, args.count)?;
    let mut items = Vec::new();
    for (member, value) in found.into_iter().filter(|(m, _)| args.matches(m)) {
        let score = decode_score(&value).unwrap_or(0.0);
        items.push(Reply::Bulk(Some(member)));
        items.push(Reply::bulk(crate::server::resp::format_double(score)));
    }
    Ok(cursor::reply(next, items))
}
