//! Ranges of sorted sets: `ZRANGE` and its older forms, `ZRANGESTORE`,
//! `ZCOUNT`, `ZLEXCOUNT`, `ZREMRANGEBY*`, and the set algebra
//! (`ZUNIONSTORE`, `ZINTERSTORE`), as Redis 7.2's `zrangeGenericCommand`
//! and `zunionInterDiffGenericCommand` parse and answer them.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::index::{self, Entry};
use super::{parse_score, read};
use crate::kv::KvError;
use crate::server::commands::{Handler, lower, parse_f64, parse_i64, reply_on_err, syntax_error};
use crate::server::db::members::{Collection, parse_hashed};
use crate::server::db::{Db, Kind, output_limit_reply, wrong_type};
use crate::server::resp::Reply;

pub(super) fn handler(name: &str) -> Option<Handler> {
    let handler: Handler = match name {
        "zrange" => |db, argv| zrange(db, argv, Form::Auto, false),
        "zrangestore" => |db, argv| zrange(db, argv, Form::Auto, true),
        "zrangebyscore" => |db, argv| zrange(db, argv, Form::Fixed(By::Score, false), false),
        "zrevrangebyscore" => |db, argv| zrange(db, argv, Form::Fixed(By::Score, true), false),
        "zrangebylex" => |db, argv| zrange(db, argv, Form::Fixed(By::Lex, false), false),
        "zrevrangebylex" => |db, argv| zrange(db, argv, Form::Fixed(By::Lex, true), false),
        "zrevrange" => |db, argv| zrange(db, argv, Form::Fixed(By::Rank, true), false),
        "zcount" => |db, argv| count(db, argv, By::Score),
        "zlexcount" => |db, argv| count(db, argv, By::Lex),
        "zremrangebyscore" => |db, argv| remove_range(db, argv, By::Score),
        "zremrangebyrank" => |db, argv| remove_range(db, argv, By::Rank),
        "zremrangebylex" => |db, argv| remove_range(db, argv, By::Lex),
        "zunionstore" => |db, argv| combine(db, argv, false),
        "zinterstore" => |db, argv| combine(db, argv, true),
        _ => return None,
    };
    Some(handler)
}

/// What a range is of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum By {
    Rank,
    Score,
    Lex,
}

/// Whether `BYSCORE`, `BYLEX` and `REV` are options (`ZRANGE`) or fixed by
/// the command's name (the older forms).
#[derive(Clone, Copy)]
enum Form {
    Auto,
    Fixed(By, bool),
}

/// One end of a lex range.
#[derive(Clone, Debug)]
enum Lex {
    Min,
    Max,
    At(Bytes, bool),
}

/// A parsed range.
#[derive(Clone, Debug)]
enum Spec {
    Rank(i64, i64),
    /// min, min exclusive, max, max exclusive.
    Score(f64, bool, f64, bool),
    Lex(Lex, Lex),
}

fn parse_score_bound(arg: &[u8]) -> Result<(f64, bool), Reply> {
    let error = || Reply::err("min or max is not a float");
    match arg.strip_prefix(b"(") {
        Some(rest) => parse_f64(rest).map(|v| (v, true)).map_err(|_| error()),
        None => parse_f64(arg).map(|v| (v, false)).map_err(|_| error()),
    }
}

fn parse_lex_bound(arg: &Bytes) -> Result<Lex, Reply> {
    let error = || Reply::err("min or max not valid string range item");
    match arg.first() {
        Some(b'+') if arg.len() == 1 => Ok(Lex::Max),
        Some(b'-') if arg.len() == 1 => Ok(Lex::Min),
        Some(b'(') => Ok(Lex::At(arg.slice(1..), true)),
        Some(b'[') => Ok(Lex::At(arg.slice(1..), false)),
        _ => Err(error()),
    }
}

fn parse_spec(by: By, min: &Bytes, max: &Bytes) -> Result<Spec, Reply> {
    Ok(match by {
        By::Rank => Spec::Rank(parse_i64(min)?, parse_i64(max)?),
        By::Score => {
            let (min, minex) = parse_score_bound(min)?;
            let (max, maxex) = parse_score_bound(max)?;
            Spec::Score(min, minex, max, maxex)
        }
        By::Lex => Spec::Lex(parse_lex_bound(min)?, parse_lex_bound(max)?),
    })
}

/// Whether `member` is above the lower lex bound / below the upper one.
fn above(member: &[u8], bound: &Lex) -> bool {
    match bound {
        Lex::Min => true,
        Lex::Max => false,
        Lex::At(value, exclusive) => {
            member > value.as_ref() || (!exclusive && member == value.as_ref())
        }
    }
}

fn below(member: &[u8], bound: &Lex) -> bool {
    match bound {
        Lex::Min => false,
        Lex::Max => true,
        Lex::At(value, exclusive) => {
            member < value.as_ref() || (!exclusive && member == value.as_ref())
        }
    }
}

/// The entries `spec` selects, in order (`rev`: from the high end), after
/// skipping `offset` and at most `limit` (negative: all).
fn select(
    db: &mut Db<'_>,
    zset: &Collection,
    spec: &Spec,
    rev: bool,
    offset: i64,
    limit: i64,
) -> Result<Vec<Entry>, KvError> {
    if let Spec::Rank(start, stop) = *spec {
        let Some((start, count)) = super::super::span(zset.meta.len, start, stop) else {
            return Ok(Vec::new());
        };
        return index::by_rank(db, zset, rev, start, count);
    }
    if offset < 0 || limit == 0 {
        return Ok(Vec::new());
    }
    let from = match bound(db, zset, spec, rev)? {
        Some(from) => from,
        None => return Ok(Vec::new()),
    };
    let (mut skip, mut out) = (offset, Vec::new());
    index::walk(db, zset, rev, from.as_deref(), |(member, score)| {
        let (inside, past) = position(spec, rev, &member, score);
        if past {
            return false;
        }
        if !inside {
            return true;
        }
        if skip > 0 {
            skip -= 1;
            return true;
        }
        out.push((member, score));
        limit < 0 || (out.len() as i64) < limit
    })?;
    Ok(out)
}

/// Where a walk for `spec` starts: `Some(None)` at the end it walks from,
/// `Some(Some(sub))` at a seek, `None` when the range is empty.
fn bound(
    db: &mut Db<'_>,
    zset: &Collection,
    spec: &Spec,
    rev: bool,
) -> Result<Option<Option<Bytes>>, KvError> {
    Ok(match (spec, rev) {
        (Spec::Score(min, ..), false) => Some(Some(index::score_start(*min))),
        (Spec::Score(_, _, max, _), true) => Some(index::score_after(*max)),
        (Spec::Lex(min, max), rev) => {
            // Lex ranges assume one score for the whole set, as Redis's
            // do: the score of the end the walk starts from.
            let Some((_, score)) = index::by_rank(db, zset, rev, 0, 1)?.into_iter().next() else {
                return Ok(None);
            };
            match (rev, if rev { max } else { min }) {
                (false, Lex::Min) | (true, Lex::Max) => Some(None),
                (false, Lex::Max) | (true, Lex::Min) => None,
                (false, Lex::At(member, exclusive)) => {
                    Some(Some(index::lex_sub(score, member, *exclusive)))
                }
                (true, Lex::At(member, exclusive)) => {
                    Some(Some(index::lex_sub(score, member, !exclusive)))
                }
            }
        }
        (Spec::Rank(..), _) => Some(None),
    })
}

/// Whether an entry is inside `spec`, and whether the walk is past it.
fn position(spec: &Spec, rev: bool, member: &[u8], score: f64) -> (bool, bool) {
    match *spec {
        Spec::Score(min, minex, max, maxex) => {
            let low = score > min || (!minex && score == min);
            let high = score < max || (!maxex && score == max);
            (low && high, if rev { !low } else { !high })
        }
        Spec::Lex(ref min, ref max) => {
            let (low, high) = (above(member, min), below(member, max));
            (low && high, if rev { !low } else { !high })
        }
        Spec::Rank(..) => (true, false),
    }
}

/// `ZRANGE key start stop [BYSCORE|BYLEX] [REV] [LIMIT offset count]
/// [WITHSCORES]`, its older forms, and with `store`, `ZRANGESTORE dst src
/// ...`.
fn zrange(db: &mut Db<'_>, argv: &[Bytes], form: Form, store: bool) -> Result<Reply, KvError> {
    let at = if store { 2 } else { 1 };
    let (mut by, mut rev) = match form {
        Form::Auto => (None, None),
        Form::Fixed(by, rev) => (Some(by), Some(rev)),
    };
    let (mut with_scores, mut limit) = (false, None);
    let mut i = at + 3;
    while i < argv.len() {
        let option = lower(&argv[i]);
        let left = argv.len() - i - 1;
        match option.as_str() {
            "withscores" if !store => with_scores = true,
            "limit" if left >= 2 => {
                let offset = reply_on_err!(parse_i64(&argv[i + 1]));
                let count = reply_on_err!(parse_i64(&argv[i + 2]));
                limit = Some((offset, count));
                i += 2;
            }
            "rev" if matches!(form, Form::Auto) && rev.is_none() => rev = Some(true),
            "bylex" if matches!(form, Form::Auto) && by.is_none() => by = Some(By::Lex),
            "byscore" if matches!(form, Form::Auto) && by.is_none() => by = Some(By::Score),
            _ => return Ok(syntax_error()),
        }
        i += 1;
    }
    let (by, rev) = (by.unwrap_or(By::Rank), rev.unwrap_or(false));
    if limit.is_some() && by == By::Rank {
        return Ok(Reply::err(
            "syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        ));
    }
    if with_scores && by == By::Lex {
        return Ok(Reply::err(
            "syntax error, WITHSCORES not supported in combination with BYLEX",
        ));
    }
    let (low, high) = if rev && by != By::Rank {
        (at + 2, at + 1)
    } else {
        (at + 1, at + 2)
    };
    let spec = reply_on_err!(parse_spec(by, &argv[low], &argv[high]));
    let (offset, count) = limit.unwrap_or((0, -1));
    let found = match reply_on_err!(read(db, &argv[at])?) {
        Some(zset) => select(db, &zset, &spec, rev, offset, count)?,
        None => Vec::new(),
    };
    if store {
        return store_entries(db, &argv[1], found);
    }
    let bytes: usize = found.iter().map(|(m, _)| m.len() + 40).sum();
    if !db.charge(bytes) {
        return Ok(output_limit_reply());
    }
    let entries = found
        .into_iter()
        .map(|(m, s)| (Reply::bulk(m), Reply::Double(s)));
    Ok(if with_scores {
        Reply::Pairs(entries.collect())
    } else {
        Reply::Array(Some(entries.map(|(m, _)| m).collect()))
    })
}

/// Replaces whatever `key` held with a sorted set of `entries` (none:
/// `key` is deleted); the reply is their number.
fn store_entries(db: &mut Db<'_>, key: &[u8], entries: Vec<Entry>) -> Result<Reply, KvError> {
    db.remove(key)?;
    let mut zset = reply_on_err!(db.collection_mut(key, Kind::ZSet)?);
    for (member, score) in &entries {
        index::set(db, &mut zset, member, *score, None)?;
    }
    db.close(&zset)?;
    Ok(Reply::len(entries.len()))
}

/// `ZCOUNT key min max` and `ZLEXCOUNT`.
fn count(db: &mut Db<'_>, argv: &[Bytes], by: By) -> Result<Reply, KvError> {
    let spec = reply_on_err!(parse_spec(by, &argv[2], &argv[3]));
    let Some(zset) = reply_on_err!(read(db, &argv[1])?) else {
        return Ok(Reply::Integer(0));
    };
    Ok(Reply::len(select(db, &zset, &spec, false, 0, -1)?.len()))
}

/// `ZREMRANGEBYSCORE`, `ZREMRANGEBYRANK` and `ZREMRANGEBYLEX`.
fn remove_range(db: &mut Db<'_>, argv: &[Bytes], by: By) -> Result<Reply, KvError> {
    let spec = reply_on_err!(parse_spec(by, &argv[2], &argv[3]));
    let Some(mut zset) = reply_on_err!(read(db, &argv[1])?) else {
        return Ok(Reply::Integer(0));
    };
    let found = select(db, &zset, &spec, false, 0, -1)?;
    for (member, score) in &found {
        index::remove(db, &mut zset, member, *score)?;
    }
    db.close(&zset)?;
    Ok(Reply::len(found.len()))
}

/// How `ZUNIONSTORE` and `ZINTERSTORE` combine one member's scores.
#[derive(Clone, Copy)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

impl Aggregate {
    fn apply(self, a: f64, b: f64) -> f64 {
        let value = match self {
            Aggregate::Sum => a + b,
            Aggregate::Min => a.min(b),
            Aggregate::Max => a.max(b),
        };
        // Redis turns inf + -inf into 0.
        if value.is_nan() { 0.0 } else { value }
    }
}

/// Every member of a sorted set or (score 1) a set at `key`.
fn members_of(db: &mut Db<'_>, key: &[u8]) -> Result<Result<Option<Vec<Entry>>, Reply>, KvError> {
    let Some(record) = db.lookup(key)? else {
        return Ok(Ok(None));
    };
    let kind = record.kind;
    if kind != Kind::ZSet && kind != Kind::Set {
        return Ok(Err(wrong_type()));
    }
    let Some(found) = db.collection(key, kind)?.ok().flatten() else {
        return Ok(Ok(None));
    };
    if kind == Kind::ZSet {
        return Ok(Ok(Some(index::by_rank(db, &found, false, 0, u64::MAX)?)));
    }
    let all = db.all_members(key, |_, _| 0)?.unwrap_or_default();
    Ok(Ok(Some(
        all.into_iter()
            .filter_map(|(sub, _)| Some((parse_hashed(&sub)?.1, 1.0)))
            .collect(),
    )))
}

/// `ZUNIONSTORE dst numkeys key [key ...] [WEIGHTS w ...] [AGGREGATE
/// SUM|MIN|MAX]` and `ZINTERSTORE`.
fn combine(db: &mut Db<'_>, argv: &[Bytes], inter: bool) -> Result<Reply, KvError> {
    let numkeys = reply_on_err!(parse_i64(&argv[2]));
    if numkeys < 1 {
        return Ok(Reply::err(format_args!(
            "at least 1 input key is needed for '{}' command",
            lower(&argv[0])
        )));
    }
    let numkeys = usize::try_from(numkeys).unwrap_or(usize::MAX);
    if numkeys > argv.len() - 3 {
        return Ok(syntax_error());
    }
    let keys = &argv[3..3 + numkeys];
    let mut sources = Vec::with_capacity(numkeys);
    for key in keys {
        sources.push(reply_on_err!(members_of(db, key)?));
    }
    let mut weights = vec![1.0; numkeys];
    let mut aggregate = Aggregate::Sum;
    let mut i = 3 + numkeys;
    while i < argv.len() {
        let left = argv.len() - i;
        if left > numkeys && argv[i].eq_ignore_ascii_case(b"weights") {
            for (w, arg) in weights.iter_mut().zip(&argv[i + 1..=i + numkeys]) {
                *w = match parse_score(arg) {
                    Ok(w) => w,
                    Err(_) => return Ok(Reply::err("weight value is not a float")),
                };
            }
            i += numkeys + 1;
        } else if left >= 2 && argv[i].eq_ignore_ascii_case(b"aggregate") {
            aggregate = match lower(&argv[i + 1]).as_str() {
                "sum" => Aggregate::Sum,
                "min" => Aggregate::Min,
                "max" => Aggregate::Max,
                _ => return Ok(syntax_error()),
            };
            i += 2;
        } else {
            return Ok(syntax_error());
        }
    }
    let mut result: BTreeMap<Bytes, (f64, usize)> = BTreeMap::new();
    for (source, weight) in sources.iter().zip(&weights) {
        for (member, score) in source.iter().flatten() {
            let weighted = score * weight;
            let weighted = if weighted.is_nan() { 0.0 } else { weighted };
            result
                .entry(member.clone())
                .and_modify(|(total, seen)| {
                    *total = aggregate.apply(*total, weighted);
                    *seen += 1;
                })
                .or_insert((weighted, 1));
        }
    }
    let entries: Vec<Entry> = result
        .into_iter()
        .filter(|(_, (_, seen))| !inter || *seen == numkeys)
        .map(|(member, (score, _))| (member, score))
        .collect();
    store_entries(db, &argv[1], entries)
}
