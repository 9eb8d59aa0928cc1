//! List commands, as Redis 7.2's src/t_list.c runs them, and the blocking
//! pops' one attempt (the session waits and tries again; see
//! [`crate::server::blocking`]).
//!
//! A list's elements are members at consecutive indexes from the head its
//! record holds, so both ends and any index are one store key away:
//!
//! ```text
//! list   sub = be64(index with its sign bit flipped) → element
//! ```

use bytes::Bytes;

use super::{Handler, parse_f64, parse_i64, reply_on_err, syntax_error};
use crate::kv::KvError;
use crate::server::db::members::Collection;
use crate::server::db::{Db, Kind, output_limit_reply, wrong_type};
use crate::server::resp::Reply;

pub(super) fn handler(name: &str) -> Option<Handler> {
    let handler: Handler = match name {
        "lpush" => |db, argv| push(db, argv, End::Left, false),
        "rpush" => |db, argv| push(db, argv, End::Right, false),
        "lpushx" => |db, argv| push(db, argv, End::Left, true),
        "rpushx" => |db, argv| push(db, argv, End::Right, true),
        "lpop" => |db, argv| pop(db, argv, End::Left),
        "rpop" => |db, argv| pop(db, argv, End::Right),
        "llen" => llen,
        "lindex" => lindex,
        "lrange" => lrange,
        "lset" => lset,
        "ltrim" => ltrim,
        "lrem" => lrem,
        "linsert" => linsert,
        "lpos" => lpos,
        "lmove" => lmove,
        "rpoplpush" => |db, argv| move_element(db, &argv[1], &argv[2], End::Right, End::Left),
        "lmpop" => |db, argv| mpop(db, argv, 1),
        "blpop" => |db, argv| bpop(db, argv, End::Left),
        "brpop" => |db, argv| bpop(db, argv, End::Right),
        "blmove" => blmove,
        "brpoplpush" => brpoplpush,
        "blmpop" => |db, argv| mpop(db, argv, 2),
        _ => return None,
    };
    Some(handler)
}

/// Which end of a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum End {
    Left,
    Right,
}

fn parse_end(arg: &[u8]) -> Result<End, Reply> {
    if arg.eq_ignore_ascii_case(b"left") {
        Ok(End::Left)
    } else if arg.eq_ignore_ascii_case(b"right") {
        Ok(End::Right)
    } else {
        Err(syntax_error())
    }
}

/// The sub of the element at absolute index `index`.
fn sub(index: i64) -> [u8; 8] {
    (index.cast_unsigned() ^ (1 << 63)).to_be_bytes()
}

/// The absolute index of the `at`-th element from the head.
fn absolute(list: &Collection, at: u64) -> i64 {
    list.meta
        .head
        .wrapping_add(i64::try_from(at).unwrap_or(i64::MAX))
}

fn read(db: &mut Db<'_>, key: &[u8]) -> Result<Result<Option<Collection>, Reply>, KvError> {
    db.collection(key, Kind::List)
}

/// `count` elements from the `start`-th on, in order.
fn range(
    db: &mut Db<'_>,
    list: &Collection,
    start: u64,
    count: u64,
) -> Result<Vec<Bytes>, KvError> {
    let mut out = Vec::new();
    let mut at = start;
    let end = start.saturating_add(count).min(list.meta.len);
    while at < end {
        let chunk = usize::try_from((end - at).min(1024)).unwrap_or(1024);
        let found = db.members(list.key(), &sub(absolute(list, at)), chunk)?;
        if found.is_empty() {
            break;
        }
        at += found.len() as u64;
        out.extend(found.into_iter().map(|(_, element)| element));
    }
    Ok(out)
}

/// Pushes `element` at `end` of `list`.
fn push_one(
    db: &mut Db<'_>,
    list: &mut Collection,
    element: Bytes,
    end: End,
) -> Result<(), KvError> {
    let index = match end {
        End::Left => {
            list.meta.head = list.meta.head.wrapping_sub(1);
            list.meta.head
        }
        End::Right => absolute(list, list.meta.len),
    };
    db.put_member(list.key(), &sub(index), element)?;
    list.meta.len += 1;
    Ok(())
}

/// Pops up to `count` elements from `end`, in pop order.
fn pop_some(
    db: &mut Db<'_>,
    list: &mut Collection,
    end: End,
    count: u64,
) -> Result<Vec<Bytes>, KvError> {
    let count = count.min(list.meta.len);
    let start = match end {
        End::Left => 0,
        End::Right => list.meta.len - count,
    };
    let mut popped = range(db, list, start, count)?;
    for at in start..start + count {
        db.delete_member(list.key(), &sub(absolute(list, at)))?;
    }
    if end == End::Left {
        list.meta.head = absolute(list, count);
    } else {
        popped.reverse();
    }
    list.meta.len -= count;
    Ok(popped)
}

/// `LPUSH`, `RPUSH` and, with `existing`, `LPUSHX` and `RPUSHX`.
fn push(db: &mut Db<'_>, argv: &[Bytes], end: End, existing: bool) -> Result<Reply, KvError> {
    let mut list = reply_on_err!(db.collection_mut(&argv[1], Kind::List)?);
    if existing && list.is_empty() {
        return Ok(Reply::Integer(0));
    }
    for element in &argv[2..] {
        push_one(db, &mut list, element.clone(), end)?;
    }
    db.close(&list)?;
    Ok(Reply::len(list.len()))
}

/// A positive count as `getPositiveLongFromObjectOrReply` takes it.
fn positive(arg: &[u8], error: &str) -> Result<u64, Reply> {
    match parse_i64(arg)? {
        n if n >= 0 => Ok(n.unsigned_abs()),
        _ => Err(Reply::err(error)),
    }
}

/// `LPOP key [count]` and `RPOP`.
fn pop(db: &mut Db<'_>, argv: &[Bytes], end: End) -> Result<Reply, KvError> {
    if argv.len() > 3 {
        return Ok(super::arity_error(&super::lower(&argv[0])));
    }
    let count = match argv.get(2) {
        Some(count) => Some(reply_on_err!(positive(
            count,
            "value is out of range, must be positive"
        ))),
        None => None,
    };
    let Some(mut list) = reply_on_err!(read(db, &argv[1])?) else {
        return Ok(if count.is_some() {
            Reply::Array(None)
        } else {
            Reply::Bulk(None)
        });
    };
    if count == Some(0) {
        return Ok(Reply::Array(Some(Vec::new())));
    }
    let popped = pop_some(db, &mut list, end, count.unwrap_or(1))?;
    db.close(&list)?;
    Ok(match count {
        None => Reply::Bulk(popped.into_iter().next()),
        Some(_) => Reply::Array(Some(popped.into_iter().map(Reply::bulk).collect())),
    })
}

fn llen(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    let list = reply_on_err!(read(db, &argv[1])?);
    Ok(Reply::len(list.map_or(0, |l| l.len())))
}

/// The element position `index` names (negative: from the tail), if it is
/// inside the list.
fn position(list: &Collection, index: i64) -> Option<u64> {
    let len = i64::try_from(list.meta.len).unwrap_or(i64::MAX);
    let at = if index < 0 { len + index } else { index };
    (0..len).contains(&at).then_some(at.unsigned_abs())
}

fn lindex(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    let Some(list) = reply_on_err!(read(db, &argv[1])?) else {
        return Ok(Reply::Bulk(None));
    };
    let index = reply_on_err!(parse_i64(&argv[2]));
    let Some(at) = position(&list, index) else {
        return Ok(Reply::Bulk(None));
    };
    Ok(Reply::Bulk(
        db.member(list.key(), &sub(absolute(&list, at)))?,
    ))
}

fn lrange(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    let start = reply_on_err!(parse_i64(&argv[2]));
    let stop = reply_on_err!(parse_i64(&argv[3]));
    let Some(list) = reply_on_err!(read(db, &argv[1])?) else {
        return Ok(Reply::Array(Some(Vec::new())));
    };
    let Some((from, count)) = super::span(list.meta.len, start, stop) else {
        return Ok(Reply::Array(Some(Vec::new())));
    };
    let elements = range(db, &list, from, count)?;
    let bytes: usize = elements.iter().map(|e| e.len() + 16).sum();
    if !db.charge(bytes) {
        return Ok(output_limit_reply());
    }
    Ok(Reply::Array(Some(
        elements.into_iter().map(Reply::bulk).collect(),
    )))
}

fn lset(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    let Some(list) = reply_on_err!(read(db, &argv[1])?) else {
        return Ok(Reply::err("no such key"));
    };
    let index = reply_on_err!(parse_i64(&argv[2]));
    let Some(at) = position(&list, index) else {
        return Ok(Reply::err("index out of range"));
    };
    db.put_member(list.key(), &sub(absolute(&list, at)), argv[3].clone())?;
    db.close(&list)?;
    Ok(Reply::ok())
}

fn ltrim(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    let start = reply_on_err!(parse_i64(&argv[2]));
    let stop = reply_on_err!(parse_i64(&argv[3]));
    let Some(mut list) = reply_on_err!(read(db, &argv[1])?) else {
        return Ok(Reply::ok());
    };
    let (keep_from, keep) = super::span(list.meta.len, start, stop).unwrap_or((0, 0));
    for at in (0..keep_from).chain(keep_from + keep..list.meta.len) {
        db.delete_member(list.key(), &sub(absolute(&list, at)))?;
    }
    list.meta.head = absolute(&list, keep_from);
    list.meta.len = keep;
    db.close(&list)?;
    Ok(Reply::ok())
}

/// Rewrites `list` from position `from` on as `tail` (the elements after
/// it are `tail`, its length changes by what `tail` adds or drops).
fn rewrite_tail(
    db: &mut Db<'_>,
    list: &mut Collection,
    from: u64,
    tail: Vec<Bytes>,
) -> Result<(), KvError> {
    let new_len = from + tail.len() as u64;
    for at in new_len..list.meta.len {
        db.delete_member(list.key(), &sub(absolute(list, at)))?;
    }
    for (offset, element) in tail.into_iter().enumerate() {
        let at = absolute(list, from + offset as u64);
        db.put_member(list.key(), &sub(at), element)?;
    }
    list.meta.len = new_len;
    Ok(())
}

/// `LREM key count element`.
fn lrem(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    let count = reply_on_err!(parse_i64(&argv[2]));
    let Some(mut list) = reply_on_err!(read(db, &argv[1])?) else {
        return Ok(Reply::Integer(0));
    };
    let target = &argv[3];
    let mut elements = range(db, &list, 0, list.meta.len)?;
    let limit = if count == 0 {
        usize::MAX
    } else {
        usize::try_from(count.unsigned_abs()).unwrap_or(usize::MAX)
    };
    let mut hits: Vec<usize> = elements
        .iter()
        .enumerate()
        .filter(|(_, e)| *e == target)
        .map(|(at, _)| at)
        .collect();
    if count < 0 {
        hits.reverse();
    }
    hits.truncate(limit);
    hits.sort_unstable();
    let Some(&first) = hits.first() else {
        return Ok(Reply::Integer(0));
    };
    let removed = hits.len();
    let mut at = 0;
    elements.retain(|_| {
        let keep = hits.binary_search(&at).is_err();
        at += 1;
        keep
    });
    let tail = elements.split_off(first);
    rewrite_tail(db, &mut list, first as u64, tail)?;
    db.close(&list)?;
    Ok(Reply::len(removed))
}

/// `LINSERT key BEFORE|AFTER pivot element`.
fn linsert(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    let after = if argv[2].eq_ignore_ascii_case(b"after") {
        true
    } else if argv[2].eq_ignore_ascii_case(b"before") {
        false
    } else {
        return Ok(syntax_error());
    };
    let Some(mut list) = reply_on_err!(read(db, &argv[1])?) else {
        return Ok(Reply::Integer(0));
    };
    let elements = range(db, &list, 0, list.meta.len)?;
    let Some(pivot) = elements.iter().position(|e| *e == argv[3]) else {
        return Ok(Reply::Integer(-1));
    };
    let at = pivot + usize::from(after);
    let mut tail = vec![argv[4].clone()];
    tail.extend_from_slice(&elements[at..]);
    rewrite_tail(db, &mut list, at as u64, tail)?;
    db.close(&list)?;
    Ok(Reply::len(list.len()))
}

/// `LPOS`'s options: rank, count (absent: one position, not an array)
/// and the most elements to look at (0: all).
fn lpos_options(argv: &[Bytes]) -> Result<(i64, Option<u64>, u64), Reply> {
    let (mut rank, mut count, mut maxlen) = (1i64, None, 0u64);
    let mut i = 3;
    while i < argv.len() {
        let more = i + 1 < argv.len();
        let option = &argv[i];
        if more && option.eq_ignore_ascii_case(b"rank") {
            rank = parse_i64(&argv[i + 1])?;
            if rank == i64::MIN {
                return Err(super::hashes::out_of_range());
            }
            if rank == 0 {
                return Err(Reply::err(
                    "RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list",
                ));
            }
        } else if more && option.eq_ignore_ascii_case(b"count") {
            count = Some(positive(&argv[i + 1], "COUNT can't be negative")?);
        } else if more && option.eq_ignore_ascii_case(b"maxlen") {
            maxlen = positive(&argv[i + 1], "MAXLEN can't be negative")?;
        } else {
            return Err(syntax_error());
        }
        i += 2;
    }
    Ok((rank, count, maxlen))
}

/// `LPOS key element [RANK rank] [COUNT num-matches] [MAXLEN len]`.
fn lpos(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    let (rank, count, maxlen) = reply_on_err!(lpos_options(argv));
    let Some(list) = reply_on_err!(read(db, &argv[1])?) else {
        return Ok(count.map_or(Reply::Bulk(None), |_| Reply::Array(Some(Vec::new()))));
    };
    let len = list.meta.len;
    let scanned = if maxlen == 0 { len } else { maxlen.min(len) };
    let from_tail = rank < 0;
    let (start, n) = if from_tail {
        (len - scanned, scanned)
    } else {
        (0, scanned)
    };
    let mut elements = range(db, &list, start, n)?;
    if from_tail {
        elements.reverse();
    }
    let skip = usize::try_from(rank.unsigned_abs() - 1).unwrap_or(usize::MAX);
    let matches = elements
        .iter()
        .enumerate()
        .filter(|(_, e)| **e == argv[2])
        .map(|(at, _)| {
            if from_tail {
                len - 1 - at as u64
            } else {
                at as u64
            }
        })
        .skip(skip);
    Ok(match count {
        None => matches
            .into_iter()
            .next()
            .map_or(Reply::Bulk(None), |at| Reply::Integer(at as i64)),
        Some(count) => {
            let take = if count == 0 {
                usize::MAX
            } else {
                usize::try_from(count).unwrap_or(usize::MAX)
            };
            Reply::Array(Some(
                matches
                    .take(take)
                    .map(|at| Reply::Integer(at as i64))
                    .collect(),
            ))
        }
    })
}

/// `LMOVE source destination LEFT|RIGHT LEFT|RIGHT`.
fn lmove(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    let from = reply_on_err!(parse_end(&argv[3]));
    let to = reply_on_err!(parse_end(&argv[4]));
    move_element(db, &argv[1], &argv[2], from, to)
}

/// Pops from `source`'s `from` end and pushes onto `destination`'s `to`
/// end: the element, or nil when `source` is empty.
fn move_element(
    db: &mut Db<'_>,
    source: &[u8],
    destination: &[u8],
    from: End,
    to: End,
) -> Result<Reply, KvError> {
    let Some(mut list) = reply_on_err!(read(db, source)?) else {
        return Ok(Reply::Bulk(None));
    };
    if db
        .lookup(destination)?
        .is_some_and(|r| r.kind != Kind::List)
    {
        return Ok(wrong_type());
    }
    let Some(element) = pop_some(db, &mut list, from, 1)?.into_iter().next() else {
        return Ok(Reply::Bulk(None));
    };
    db.close(&list)?;
    let mut target = reply_on_err!(db.collection_mut(destination, Kind::List)?);
    push_one(db, &mut target, element.clone(), to)?;
    db.close(&target)?;
    Ok(Reply::Bulk(Some(element)))
}

/// `LMPOP numkeys key [key ...] LEFT|RIGHT [COUNT count]` (`numkeys` at
/// `at`), and `BLMPOP timeout ...` (at 2).
fn mpop(db: &mut Db<'_>, argv: &[Bytes], at: usize) -> Result<Reply, KvError> {
    if at == 2 {
        reply_on_err!(timeout(&argv[1]));
    }
    let (keys, end, count) = reply_on_err!(mpop_args(argv, at));
    for key in keys {
        let Some(mut list) = reply_on_err!(read(db, key)?) else {
            continue;
        };
        let popped = pop_some(db, &mut list, end, count)?;
        db.close(&list)?;
        let popped = popped.into_iter().map(Reply::bulk).collect();
        return Ok(Reply::Array(Some(vec![
            Reply::bulk(key.clone()),
            Reply::Array(Some(popped)),
        ])));
    }
    Ok(Reply::Array(None))
}

/// The keys, end and count of `LMPOP`'s arguments.
pub(crate) fn mpop_args(argv: &[Bytes], at: usize) -> Result<(&[Bytes], End, u64), Reply> {
    let numkeys = match parse_i64(&argv[at])? {
        n if n >= 1 => usize::try_from(n).unwrap_or(usize::MAX),
        _ => return Err(Reply::err("numkeys should be greater than 0")),
    };
    let where_at = at.saturating_add(numkeys).saturating_add(1);
    let Some(end) = argv.get(where_at) else {
        return Err(syntax_error());
    };
    let end = parse_end(end)?;
    let mut count = None;
    let mut i = where_at + 1;
    while i < argv.len() {
        if count.is_none() && i + 1 < argv.len() && argv[i].eq_ignore_ascii_case(b"count") {
            count = Some(match parse_i64(&argv[i + 1])? {
                n if n >= 1 => n.unsigned_abs(),
                _ => return Err(Reply::err("count should be greater than 0")),
            });
        } else {
            return Err(syntax_error());
        }
        i += 2;
    }
    Ok((&argv[at + 1..where_at], end, count.unwrap_or(1)))
}

/// A blocking command's timeout in milliseconds (0: forever), as Redis's
/// `getTimeoutFromObjectOrReply` takes seconds.
pub(crate) fn timeout(arg: &[u8]) -> Result<u64, Reply> {
    let seconds =
        parse_f64(arg).map_err(|_| Reply::err("timeout is not a float or out of range"))?;
    let millis = (seconds * 1000.0).ceil();
    if millis > i64::MAX as f64 {
        return Err(Reply::err("timeout is out of range"));
    }
    if millis < 0.0 {
        return Err(Reply::err("timeout is negative"));
    }
    Ok(millis as u64)
}

/// One attempt of `BLPOP key [key ...] timeout` or `BRPOP`: `[key,
/// element]` from the first non-empty list, or the nil array (the session
/// then waits).
fn bpop(db: &mut Db<'_>, argv: &[Bytes], end: End) -> Result<Reply, KvError> {
    reply_on_err!(timeout(&argv[argv.len() - 1]));
    for key in &argv[1..argv.len() - 1] {
        let Some(mut list) = reply_on_err!(read(db, key)?) else {
            continue;
        };
        let popped = pop_some(db, &mut list, end, 1)?;
        db.close(&list)?;
        if let Some(element) = popped.into_iter().next() {
            return Ok(Reply::Array(Some(vec![
                Reply::bulk(key.clone()),
                Reply::bulk(element),
            ])));
        }
    }
    Ok(Reply::Array(None))
}

/// One attempt of `BLMOVE source destination LEFT|RIGHT LEFT|RIGHT timeout`.
fn blmove(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    let from = reply_on_err!(parse_end(&argv[3]));
    let to = reply_on_err!(parse_end(&argv[4]));
    reply_on_err!(timeout(&argv[5]));
    move_element(db, &argv[1], &argv[2], from, to)
}

/// One attempt of `BRPOPLPUSH source destination timeout`.
fn brpoplpush(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    reply_on_err!(timeout(&argv[3]));
    move_element(db, &argv[1], &argv[2], End::Right, End::Left)
}
