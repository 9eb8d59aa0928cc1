//! Set commands, as Redis 7.2's src/t_set.c runs them. Each member is a
//! member key of its own (see [`crate::server::db::members`]).

use std::collections::BTreeSet;

use bytes::Bytes;

use super::cursor::{self, ScanArgs};
use super::hashes::out_of_range;
use super::{Handler, parse_i64, reply_on_err, syntax_error};
use crate::kv::KvError;
use crate::server::db::members::{Collection, hashed, parse_hashed};
use crate::server::db::{Db, Kind, output_limit_reply};
use crate::server::resp::Reply;

pub(super) fn handler(name: &str) -> Option<Handler> {
    let handler: Handler = match name {
        "sadd" => sadd,
        "srem" => srem,
        "smembers" => |db, argv| combine(db, &argv[1..], None, Op::Inter),
        "sismember" => sismember,
        "smismember" => smismember,
        "scard" => scard,
        "spop" => spop,
        "srandmember" => srandmember,
        "smove" => smove,
        "sinter" => |db, argv| combine(db, &argv[1..], None, Op::Inter),
        "sunion" => |db, argv| combine(db, &argv[1..], None, Op::Union),
        "sdiff" => |db, argv| combine(db, &argv[1..], None, Op::Diff),
        "sinterstore" => |db, argv| combine(db, &argv[2..], Some(&argv[1]), Op::Inter),
        "sunionstore" => |db, argv| combine(db, &argv[2..], Some(&argv[1]), Op::Union),
        "sdiffstore" => |db, argv| combine(db, &argv[2..], Some(&argv[1]), Op::Diff),
        "sintercard" => sintercard,
        "sscan" => sscan,
        _ => return None,
    };
    Some(handler)
}

fn read(db: &mut Db<'_>, key: &[u8]) -> Result<Result<Option<Collection>, Reply>, KvError> {
    db.collection(key, Kind::Set)
}

fn is_member(db: &mut Db<'_>, set: &Collection, member: &[u8]) -> Result<bool, KvError> {
    Ok(db.member(set.key(), &hashed(member))?.is_some())
}

/// Adds `member` to `set`; true when it was not there.
fn add(db: &mut Db<'_>, set: &mut Collection, member: &[u8]) -> Result<bool, KvError> {
    if !set.is_empty() && is_member(db, set, member)? {
        return Ok(false);
    }
    db.put_member(set.key(), &hashed(member), Bytes::new())?;
    set.meta.len += 1;
    Ok(true)
}

/// Removes `member` from `set`; true when it was there.
fn remove(db: &mut Db<'_>, set: &mut Collection, member: &[u8]) -> Result<bool, KvError> {
    if set.is_empty() || !is_member(db, set, member)? {
        return Ok(false);
    }
    db.delete_member(set.key(), &hashed(member))?;
    set.meta.len -= 1;
    Ok(true)
}

fn sadd(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    let mut set = reply_on_err!(db.collection_mut(&argv[1], Kind::Set)?);
    let mut added = 0;
    for member in &argv[2..] {
        added += i64::from(add(db, &mut set, member)?);
    }
    db.close(&set)?;
    Ok(Reply::Integer(added))
}

fn srem(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    let Some(mut set) = reply_on_err!(read(db, &argv[1])?) else {
        return Ok(Reply::Integer(0));
    };
    let mut removed = 0;
    for member in &argv[2..] {
        removed += i64::from(remove(db, &mut set, member)?);
    }
    db.close(&set)?;
    Ok(Reply::Integer(removed))
}

fn sismember(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    let found = match reply_on_err!(read(db, &argv[1])?) {
        Some(set) => is_member(db, &set, &argv[2])?,
        None => false,
    };
    Ok(Reply::Integer(i64::from(found)))
}

fn smismember(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    let set = reply_on_err!(read(db, &argv[1])?);
    let mut found = Vec::with_capacity(argv.len() - 2);
    for member in &argv[2..] {
        let hit = match &set {
            Some(set) => is_member(db, set, member)?,
            None => false,
        };
        found.push(Reply::Integer(i64::from(hit)));
    }
    Ok(Reply::Array(Some(found)))
}

fn scard(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    let set = reply_on_err!(read(db, &argv[1])?);
    Ok(Reply::len(set.map_or(0, |s| s.len())))
}

/// The reply budget a member costs.
fn cost(member: &Bytes) -> usize {
    member.len() + 16
}

/// Every member of `set`; `None` when the reply budget ran out.
fn all(db: &mut Db<'_>, set: &Collection) -> Result<Option<BTreeSet<Bytes>>, KvError> {
    let found = db.all_members(set.key(), |sub, _| cost(sub))?;
    Ok(found.map(|found| {
        found
            .into_iter()
            .filter_map(|(sub, _)| Some(parse_hashed(&sub)?.1))
            .collect()
    }))
}

fn set_reply(members: impl IntoIterator<Item = Bytes>) -> Reply {
    Reply::Set(members.into_iter().map(|m| Reply::Bulk(Some(m))).collect())
}

/// `SPOP key [count]`.
fn spop(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    if argv.len() > 3 {
        return Ok(syntax_error());
    }
    let count = match argv.get(2) {
        None => None,
        Some(count) => match parse_i64(count) {
            Ok(count) if count >= 0 => Some(count.unsigned_abs()),
            Ok(_) => return Ok(Reply::err("value is out of range, must be positive")),
            Err(reply) => return Ok(reply),
        },
    };
    let Some(mut set) = reply_on_err!(read(db, &argv[1])?) else {
        return Ok(if count.is_some() {
            Reply::Set(Vec::new())
        } else {
            Reply::Null
        });
    };
    let Some(count) = count else {
        let popped = db.random_hashed(set.key())?.map(|(member, _)| member);
        if let Some(member) = &popped {
            remove(db, &mut set, member)?;
            db.close(&set)?;
        }
        return Ok(Reply::Bulk(popped));
    };
    let wanted = i64::try_from(count).unwrap_or(i64::MAX);
    let Some(picked) = db.sample_hashed(set.key(), set.meta.len, wanted, |m, _| cost(m))? else {
        return Ok(output_limit_reply());
    };
    if count >= set.meta.len {
        db.remove(set.key())?;
    } else {
        for (member, _) in &picked {
            remove(db, &mut set, member)?;
        }
        db.close(&set)?;
    }
    Ok(set_reply(picked.into_iter().map(|(member, _)| member)))
}

/// `SRANDMEMBER key [count]`.
fn srandmember(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    if argv.len() > 3 {
        return Ok(syntax_error());
    }
    let Some(count) = argv.get(2) else {
        let Some(set) = reply_on_err!(read(db, &argv[1])?) else {
            return Ok(Reply::Null);
        };
        let picked = db.random_hashed(set.key())?;
        return Ok(Reply::Bulk(picked.map(|(member, _)| member)));
    };
    let count = reply_on_err!(parse_i64(count));
    if count == i64::MIN {
        return Ok(out_of_range());
    }
    let Some(set) = reply_on_err!(read(db, &argv[1])?) else {
        return Ok(Reply::Array(Some(Vec::new())));
    };
    let Some(picked) = db.sample_hashed(set.key(), set.meta.len, count, |m, _| cost(m))? else {
        return Ok(output_limit_reply());
    };
    let members = picked.into_iter().map(|(m, _)| Reply::Bulk(Some(m)));
    Ok(Reply::Array(Some(members.collect())))
}

/// `SMOVE source destination member`.
fn smove(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    let (from, to, member) = (&argv[1], &argv[2], &argv[3]);
    let Some(mut source) = reply_on_err!(read(db, from)?) else {
        return Ok(Reply::Integer(0));
    };
    if db.lookup(to)?.is_some_and(|found| found.kind != Kind::Set) {
        return Ok(crate::server::db::wrong_type());
    }
    if from == to {
        return Ok(Reply::Integer(i64::from(is_member(db, &source, member)?)));
    }
    if !remove(db, &mut source, member)? {
        return Ok(Reply::Integer(0));
    }
    db.close(&source)?;
    let mut destination = reply_on_err!(db.collection_mut(to, Kind::Set)?);
    add(db, &mut destination, member)?;
    db.close(&destination)?;
    Ok(Reply::Integer(1))
}

/// The set operations.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Inter,
    Union,
    Diff,
}

/// The sets at `keys` (`None` for a missing one), or `WRONGTYPE`.
fn sets(
    db: &mut Db<'_>,
    keys: &[Bytes],
) -> Result<Result<Vec<Option<Collection>>, Reply>, KvError> {
    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        match read(db, key)? {
            Ok(set) => out.push(set),
            Err(reply) => return Ok(Err(reply)),
        }
    }
    Ok(Ok(out))
}

/// `SINTER`, `SUNION`, `SDIFF` (and `SMEMBERS`, an intersection of one),
/// or with `store`, their `STORE` forms.
fn combine(
    db: &mut Db<'_>,
    keys: &[Bytes],
    store: Option<&Bytes>,
    op: Op,
) -> Result<Reply, KvError> {
    let sets = match sets(db, keys)? {
        Ok(sets) => sets,
        Err(reply) => return Ok(reply),
    };
    let result = match op {
        Op::Inter => intersect(db, &sets, usize::MAX, true)?.map(|(_, found)| found),
        Op::Union => union(db, &sets)?,
        Op::Diff => difference(db, &sets)?,
    };
    let Some(result) = result else {
        return Ok(output_limit_reply());
    };
    let Some(store) = store else {
        return Ok(set_reply(result));
    };
    db.remove(store)?;
    let mut target = reply_on_err!(db.collection_mut(store, Kind::Set)?);
    let len = result.len();
    for member in result {
        add(db, &mut target, &member)?;
    }
    db.close(&target)?;
    Ok(Reply::len(len))
}

/// How many members of the smallest set are in all the others (counting
/// stops at `limit`), and with `keep` which ones; `None` when the reply
/// budget ran out.
fn intersect(
    db: &mut Db<'_>,
    sets: &[Option<Collection>],
    limit: usize,
    keep: bool,
) -> Result<Option<(usize, BTreeSet<Bytes>)>, KvError> {
    let mut out = BTreeSet::new();
    let Some(mut present) = sets.iter().cloned().collect::<Option<Vec<Collection>>>() else {
        return Ok(Some((0, out)));
    };
    present.sort_by_key(|set| set.meta.len);
    let Some((smallest, others)) = present.split_first() else {
        return Ok(Some((0, out)));
    };
    let mut count = 0;
    let mut from = Bytes::new();
    loop {
        let chunk = db.members(smallest.key(), &from, 1024)?;
        let done = chunk.len() < 1024;
        for (sub, _) in chunk {
            from = crate::kv::successor_key(&sub);
            let Some((_, member)) = parse_hashed(&sub) else {
                continue;
            };
            let mut everywhere = true;
            for other in others {
                everywhere = everywhere && is_member(db, other, &member)?;
            }
            if !everywhere {
                continue;
            }
            count += 1;
            if keep {
                if !db.charge(cost(&member)) {
                    return Ok(None);
                }
                out.insert(member);
            }
            if count >= limit {
                return Ok(Some((count, out)));
            }
        }
        if done {
            return Ok(Some((count, out)));
        }
    }
}

fn union(db: &mut Db<'_>, sets: &[Option<Collection>]) -> Result<Option<BTreeSet<Bytes>>, KvError> {
    let mut out = BTreeSet::new();
    for set in sets.iter().flatten() {
        match all(db, set)? {
            Some(members) => out.extend(members),
            None => return Ok(None),
        }
    }
    Ok(Some(out))
}

/// The first set's members found in none of the others.
fn difference(
    db: &mut Db<'_>,
    sets: &[Option<Collection>],
) -> Result<Option<BTreeSet<Bytes>>, KvError> {
    let Some(Some(first)) = sets.first() else {
        return Ok(Some(BTreeSet::new()));
    };
    let Some(members) = all(db, first)? else {
        return Ok(None);
    };
    let mut out = BTreeSet::new();
    for member in members {
        let mut elsewhere = false;
        for other in sets[1..].iter().flatten() {
            if other.key() == first.key() || is_member(db, other, &member)? {
                elsewhere = true;
                break;
            }
        }
        if !elsewhere {
            out.insert(member);
        }
    }
    Ok(Some(out))
}

/// `SINTERCARD numkeys key [key ...] [LIMIT limit]`.
fn sintercard(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    let numkeys = match parse_i64(&argv[1]) {
        Ok(n) if n >= 1 => usize::try_from(n).unwrap_or(usize::MAX),
        Ok(_) => return Ok(Reply::err("numkeys should be greater than 0")),
        Err(reply) => return Ok(reply),
    };
    if numkeys > argv.len() - 2 {
        return Ok(Reply::err(
            "Number of keys can't be greater than number of args",
        ));
    }
    let mut limit = usize::MAX;
    let mut i = 2 + numkeys;
    while i < argv.len() {
        let more = i + 1 < argv.len();
        if !(more && argv[i].eq_ignore_ascii_case(b"limit")) {
            return Ok(syntax_error());
        }
        limit = match parse_i64(&argv[i + 1]) {
            Ok(0) => usize::MAX,
            Ok(n) if n > 0 => usize::try_from(n).unwrap_or(usize::MAX),
            Ok(_) => return Ok(Reply::err("LIMIT can't be negative")),
            Err(reply) => return Ok(reply),
        };
        i += 2;
    }
    let sets = match sets(db, &argv[2..2 + numkeys])? {
        Ok(sets) => sets,
        Err(reply) => return Ok(reply),
    };
    let found = intersect(db, &sets, limit, false)?.map_or(0, |(count, _)| count);
    Ok(Reply::len(found))
}

/// `SSCAN key cursor [MATCH pattern] [COUNT count]`.
fn sscan(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    let from = reply_on_err!(cursor::parse_cursor(&argv[2]));
    let Some(set) = reply_on_err!(read(db, &argv[1])?) else {
        return Ok(cursor::empty());
    };
    let args = reply_on_err!(ScanArgs::parse(from, argv, 3, false));
    let (found, next) = db.scan_hashed(set.key(), b"", args.from, args.count)?;
    let members = found
        .into_iter()
        .filter(|(member, _)| args.matches(member))
        .map(|(member, _)| Reply::Bulk(Some(member)))
        .collect();
    Ok(cursor::reply(next, members))
}
