//! What the model of Redis answers to each deterministic command, by
//! type.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;

use super::{Model, Value, b, bulks, wrong_type};
use crate::server::resp::Reply;

fn hash<'m>(
    model: &'m mut Model,
    key: &Bytes,
) -> Result<Option<&'m mut BTreeMap<Bytes, Bytes>>, Reply> {
    match model.get_mut(key) {
        None => Ok(None),
        Some(Value::Hash(h)) => Ok(Some(h)),
        Some(_) => Err(wrong_type()),
    }
}

pub(super) fn set<'m>(
    model: &'m mut Model,
    key: &Bytes,
) -> Result<Option<&'m mut BTreeSet<Bytes>>, Reply> {
    match model.get_mut(key) {
        None => Ok(None),
        Some(Value::Set(s)) => Ok(Some(s)),
        Some(_) => Err(wrong_type()),
    }
}

fn list<'m>(model: &'m mut Model, key: &Bytes) -> Result<Option<&'m mut VecDeque<Bytes>>, Reply> {
    match model.get_mut(key) {
        None => Ok(None),
        Some(Value::List(l)) => Ok(Some(l)),
        Some(_) => Err(wrong_type()),
    }
}

/// The list at `key`, created empty when absent.
fn list_mut<'m>(model: &'m mut Model, key: &Bytes) -> Result<&'m mut VecDeque<Bytes>, Reply> {
    if list(model, key)?.is_none() {
        model.insert(key.clone(), Value::List(VecDeque::new()));
    }
    Ok(list(model, key)?.expect("created"))
}

fn int(arg: &Bytes) -> i64 {
    std::str::from_utf8(arg).unwrap().parse().unwrap()
}

/// A list's `start..=stop` as Redis normalizes it.
fn span(len: usize, start: i64, stop: i64) -> std::ops::Range<usize> {
    let len = len as i64;
    let start = if start < 0 { len + start } else { start }.max(0);
    let stop = if stop < 0 { len + stop } else { stop }.min(len - 1);
    if start > stop {
        0..0
    } else {
        start as usize..stop as usize + 1
    }
}

fn zset<'m>(
    model: &'m mut Model,
    key: &Bytes,
) -> Result<Option<&'m mut BTreeMap<Bytes, f64>>, Reply> {
    match model.get_mut(key) {
        None => Ok(None),
        Some(Value::ZSet(z)) => Ok(Some(z)),
        Some(_) => Err(wrong_type()),
    }
}

/// A sorted set's entries in Redis's order: score, then member.
fn ordered(z: &BTreeMap<Bytes, f64>) -> Vec<(Bytes, f64)> {
    let mut entries: Vec<(Bytes, f64)> = z.iter().map(|(m, s)| (m.clone(), *s)).collect();
    entries.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    entries
}

fn pairs(entries: Vec<(Bytes, f64)>) -> Reply {
    Reply::Pairs(
        entries
            .into_iter()
            .map(|(m, s)| (Reply::Bulk(Some(m)), Reply::Double(s)))
            .collect(),
    )
}

fn float(arg: &Bytes) -> f64 {
    std::str::from_utf8(arg).unwrap().parse().unwrap()
}

/// Drops `key` when its collection emptied, as Redis does.
pub(super) fn tidy(model: &mut Model, key: &Bytes) {
    let empty = match model.get(key) {
        Some(Value::Hash(h)) => h.is_empty(),
        Some(Value::Set(s)) => s.is_empty(),
        Some(Value::List(l)) => l.is_empty(),
        Some(Value::ZSet(z)) => z.is_empty(),
        _ => false,
    };
    if empty {
        model.remove(key);
    }
}

/// The model's reply to a deterministic command.
pub(super) fn expect(model: &mut Model, argv: &[Bytes]) -> Result<Reply, Reply> {
    let name = String::from_utf8_lossy(&argv[0]).to_ascii_lowercase();
    let name = name.as_str();
    match name {
        "set" | "del" | "type" | "rename" => keyspace(model, name, argv),
        "lpush" | "rpush" | "lpop" | "rpop" | "lmove" => list_ends(model, name, argv),
        "zadd" | "zincrby" | "zrem" => zset_writes(model, name, argv),
        _ if name.starts_with("sinter")
            || name.starts_with("sunion")
            || name.starts_with("sdiff") =>
        {
            set_algebra(model, name, argv)
        }
        _ if name.starts_with('h') => hashes(model, name, argv),
        _ if name.starts_with('s') => sets(model, name, argv),
        _ if name.starts_with('z') => zset_reads(model, name, argv),
        _ => list_middle(model, name, argv),
    }
}

fn keyspace(model: &mut Model, name: &str, argv: &[Bytes]) -> Result<Reply, Reply> {
    let key = &argv[1];
    Ok(match name {
        "set" => {
            model.insert(key.clone(), Value::Str(argv[2].clone()));
            Reply::ok()
        }
        "del" => Reply::Integer(i64::from(model.remove(key).is_some())),
        "type" => Reply::Simple(match model.get(key) {
            None => "none",
            Some(Value::Str(_)) => "string",
            Some(Value::Hash(_)) => "hash",
            Some(Value::Set(_)) => "set",
            Some(Value::List(_)) => "list",
            Some(Value::ZSet(_)) => "zset",
        }),
        "rename" => match model.remove(key) {
            None => Reply::err("no such key"),
            Some(value) => {
                model.insert(argv[2].clone(), value);
                Reply::ok()
            }
        },
        other => panic!("the model has no {other}"),
    })
}

fn hashes(model: &mut Model, name: &str, argv: &[Bytes]) -> Result<Reply, Reply> {
    let key = &argv[1];
    Ok(match name {
        "hset" => {
            if hash(model, key)?.is_none() {
                model.insert(key.clone(), Value::Hash(BTreeMap::new()));
            }
            let h = hash(model, key)?.expect("created");
            let added = argv[2..]
                .chunks(2)
                .filter(|p| h.insert(p[0].clone(), p[1].clone()).is_none())
                .count();
            Reply::len(added)
        }
        "hdel" => {
            let removed = hash(model, key)?.map_or(0, |h| {
                argv[2..].iter().filter(|f| h.remove(*f).is_some()).count()
            });
            tidy(model, key);
            Reply::len(removed)
        }
        "hget" => Reply::Bulk(hash(model, key)?.and_then(|h| h.get(&argv[2]).cloned())),
        "hlen" => Reply::len(hash(model, key)?.map_or(0, |h| h.len())),
        "hexists" => {
            let found = hash(model, key)?.is_some_and(|h| h.contains_key(&argv[2]));
            Reply::Integer(i64::from(found))
        }
        "hincrby" => {
            let by: i64 = std::str::from_utf8(&argv[3]).unwrap().parse().unwrap();
            let current = hash(model, key)?.and_then(|h| h.get(&argv[2]).cloned());
            let current = match current.map(|c| String::from_utf8_lossy(&c).parse::<i64>()) {
                None => 0,
                Some(Ok(n)) => n,
                Some(Err(_)) => return Err(Reply::err("hash value is not an integer")),
            };
            let Some(next) = current.checked_add(by) else {
                return Err(Reply::err("increment or decrement would overflow"));
            };
            let h = model
                .entry(key.clone())
                .or_insert_with(|| Value::Hash(BTreeMap::new()));
            let Value::Hash(h) = h else { unreachable!() };
            h.insert(argv[2].clone(), b(&next.to_string()));
            Reply::Integer(next)
        }
        "hgetall" => {
            let pairs = hash(model, key)?.map(|h| h.clone()).unwrap_or_default();
            Reply::Map(
                pairs
                    .into_iter()
                    .map(|(f, v)| (Reply::Bulk(Some(f)), Reply::Bulk(Some(v))))
                    .collect(),
            )
        }
        other => panic!("the model has no {other}"),
    })
}

fn sets(model: &mut Model, name: &str, argv: &[Bytes]) -> Result<Reply, Reply> {
    let key = &argv[1];
    Ok(match name {
        "sadd" => {
            if set(model, key)?.is_none() {
                model.insert(key.clone(), Value::Set(BTreeSet::new()));
            }
            let s = set(model, key)?.expect("created");
            Reply::len(argv[2..].iter().filter(|m| s.insert((*m).clone())).count())
        }
        "srem" => {
            let removed =
                set(model, key)?.map_or(0, |s| argv[2..].iter().filter(|m| s.remove(*m)).count());
            tidy(model, key);
            Reply::len(removed)
        }
        "scard" => Reply::len(set(model, key)?.map_or(0, |s| s.len())),
        "smismember" => {
            let s = set(model, key)?.cloned().unwrap_or_default();
            let found = argv[2..]
                .iter()
                .map(|m| Reply::Integer(i64::from(s.contains(m))));
            Reply::Array(Some(found.collect()))
        }
        "smove" => {
            let Some(source) = set(model, key)?.cloned() else {
                return Ok(Reply::Integer(0));
            };
            set(model, &argv[2])?;
            if !source.contains(&argv[3]) {
                return Ok(Reply::Integer(0));
            }
            if key != &argv[2] {
                set(model, key)?.expect("present").remove(&argv[3]);
                tidy(model, key);
                let target = model
                    .entry(argv[2].clone())
                    .or_insert_with(|| Value::Set(BTreeSet::new()));
                let Value::Set(target) = target else {
                    unreachable!()
                };
                target.insert(argv[3].clone());
            }
            Reply::Integer(1)
        }
        other => panic!("the model has no {other}"),
    })
}

fn set_algebra(model: &mut Model, name: &str, argv: &[Bytes]) -> Result<Reply, Reply> {
    let key = &argv[1];
    Ok(match name {
        "sinter" | "sunion" | "sdiff" | "sinterstore" | "sunionstore" | "sdiffstore" => {
            let store = name.ends_with("store");
            let keys = if store { &argv[2..] } else { &argv[1..] };
            let mut sets = Vec::new();
            for key in keys {
                sets.push(set(model, key)?.cloned());
            }
            let op = &name[..name.len() - if store { 5 } else { 0 }];
            let result: BTreeSet<Bytes> = match op {
                "sunion" => sets.iter().flatten().flatten().cloned().collect(),
                "sinter" => match sets.iter().cloned().collect::<Option<Vec<_>>>() {
                    None => BTreeSet::new(),
                    Some(all) => all[0]
                        .iter()
                        .filter(|m| all.iter().all(|s| s.contains(*m)))
                        .cloned()
                        .collect(),
                },
                _ => sets[0]
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|m| sets[1..].iter().flatten().all(|s| !s.contains(m)))
                    .collect(),
            };
            if !store {
                return Ok(Reply::Set(bulks(result)));
            }
            model.remove(key);
            let len = result.len();
            if len > 0 {
                model.insert(key.clone(), Value::Set(result));
            }
            Reply::len(len)
        }
        other => panic!("the model has no {other}"),
    })
}

fn list_ends(model: &mut Model, name: &str, argv: &[Bytes]) -> Result<Reply, Reply> {
    let key = &argv[1];
    Ok(match name {
        "lpush" | "rpush" => {
            let l = list_mut(model, key)?;
            for e in &argv[2..] {
                if name == "lpush" {
                    l.push_front(e.clone())
                } else {
                    l.push_back(e.clone())
                }
            }
            Reply::len(l.len())
        }
        "lpop" | "rpop" => {
            let count = argv.get(2).map(int);
            let Some(l) = list(model, key)? else {
                return Ok(if count.is_some() {
                    Reply::Array(None)
                } else {
                    Reply::Bulk(None)
                });
            };
            let n = count.unwrap_or(1) as usize;
            let popped: Vec<Bytes> = (0..n)
                .map_while(|_| {
                    if name == "lpop" {
                        l.pop_front()
                    } else {
                        l.pop_back()
                    }
                })
                .collect();
            tidy(model, key);
            match count {
                None => Reply::Bulk(popped.into_iter().next()),
                Some(_) => Reply::Array(Some(bulks(popped))),
            }
        }
        "lmove" => {
            let Some(source) = list(model, key)? else {
                return Ok(Reply::Bulk(None));
            };
            let _ = source;
            list(model, &argv[2])?;
            let source = list(model, key)?.expect("present");
            let element = if argv[3].eq_ignore_ascii_case(b"left") {
                source.pop_front()
            } else {
                source.pop_back()
            };
            let element = element.expect("stored lists are not empty");
            tidy(model, key);
            let target = list_mut(model, &argv[2])?;
            if argv[4].eq_ignore_ascii_case(b"left") {
                target.push_front(element.clone())
            } else {
                target.push_back(element.clone())
            }
            Reply::Bulk(Some(element))
        }
        other => panic!("the model has no {other}"),
    })
}

fn list_middle(model: &mut Model, name: &str, argv: &[Bytes]) -> Result<Reply, Reply> {
    let key = &argv[1];
    Ok(match name {
        "lrange" => {
            let l = list(model, key)?.cloned().unwrap_or_default();
            let range = span(l.len(), int(&argv[2]), int(&argv[3]));
            Reply::Array(Some(bulks(l.range(range).cloned())))
        }
        "lindex" => {
            let l = list(model, key)?.cloned().unwrap_or_default();
            let at = int(&argv[2]);
            let at = if at < 0 { l.len() as i64 + at } else { at };
            Reply::Bulk(usize::try_from(at).ok().and_then(|at| l.get(at).cloned()))
        }
        "lset" => {
            let Some(l) = list(model, key)? else {
                return Err(Reply::err("no such key"));
            };
            let at = int(&argv[2]);
            let at = if at < 0 { l.len() as i64 + at } else { at };
            match usize::try_from(at).ok().and_then(|at| l.get_mut(at)) {
                Some(slot) => *slot = argv[3].clone(),
                None => return Err(Reply::err("index out of range")),
            }
            Reply::ok()
        }
        "ltrim" => {
            if let Some(l) = list(model, key)? {
                let range = span(l.len(), int(&argv[2]), int(&argv[3]));
                *l = l.range(range).cloned().collect();
            }
            tidy(model, key);
            Reply::ok()
        }
        "lrem" => {
            let count = int(&argv[2]);
            let Some(l) = list(model, key)? else {
                return Ok(Reply::Integer(0));
            };
            let mut hits: Vec<usize> = (0..l.len()).filter(|at| l[*at] == argv[3]).collect();
            if count < 0 {
                hits.reverse()
            }
            if count != 0 {
                hits.truncate(count.unsigned_abs() as usize)
            }
            hits.sort_unstable();
            for at in hits.iter().rev() {
                l.remove(*at);
            }
            tidy(model, key);
            Reply::len(hits.len())
        }
        "linsert" => {
            let Some(l) = list(model, key)? else {
                return Ok(Reply::Integer(0));
            };
            let Some(pivot) = l.iter().position(|e| *e == argv[3]) else {
                return Ok(Reply::Integer(-1));
            };
            let after = argv[2].eq_ignore_ascii_case(b"after");
            l.insert(pivot + usize::from(after), argv[4].clone());
            Reply::len(l.len())
        }
        other => panic!("the model has no {other}"),
    })
}

fn zset_writes(model: &mut Model, name: &str, argv: &[Bytes]) -> Result<Reply, Reply> {
    let key = &argv[1];
    Ok(match name {
        "zadd" => {
            let options: Vec<String> = argv[2..argv.len() - 2]
                .iter()
                .map(|o| String::from_utf8_lossy(o).to_ascii_lowercase())
                .collect();
            let has = |o: &str| options.iter().any(|x| x == o);
            if has("nx") && has("xx") {
                return Err(Reply::err(
                    "XX and NX options at the same time are not compatible",
                ));
            }
            if has("nx") && (has("gt") || has("lt")) || has("gt") && has("lt") {
                return Err(Reply::err(
                    "GT, LT, and/or NX options at the same time are not compatible",
                ));
            }
            let (score, member) = (float(&argv[argv.len() - 2]), argv[argv.len() - 1].clone());
            if zset(model, key)?.is_none() {
                if has("xx") {
                    return Ok(Reply::Integer(0));
                }
                model.insert(key.clone(), Value::ZSet(BTreeMap::new()));
            }
            let z = zset(model, key)?.expect("created");
            let (mut added, mut changed) = (0, 0);
            match z.get(&member).copied() {
                Some(old) if !has("nx") => {
                    let skip = (has("gt") && score <= old) || (has("lt") && score >= old);
                    if !skip && score != old {
                        z.insert(member, score);
                        changed = 1;
                    }
                }
                None if !has("xx") => {
                    z.insert(member, score);
                    added = 1;
                }
                _ => {}
            }
            tidy(model, key);
            Reply::Integer(if has("ch") { added + changed } else { added })
        }
        "zincrby" => {
            if zset(model, key)?.is_none() {
                model.insert(key.clone(), Value::ZSet(BTreeMap::new()));
            }
            let z = zset(model, key)?.expect("created");
            let score = z.get(&argv[3]).copied().unwrap_or(0.0) + float(&argv[2]);
            z.insert(argv[3].clone(), score);
            Reply::Double(score)
        }
        "zrem" => {
            let removed = zset(model, key)?.map_or(0, |z| {
                argv[2..].iter().filter(|m| z.remove(*m).is_some()).count()
            });
            tidy(model, key);
            Reply::len(removed)
        }
        other => panic!("the model has no {other}"),
    })
}

fn zset_reads(model: &mut Model, name: &str, argv: &[Bytes]) -> Result<Reply, Reply> {
    let key = &argv[1];
    Ok(match name {
        "zscore" => zset(model, key)?
            .and_then(|z| z.get(&argv[2]).copied())
            .map_or(Reply::Null, Reply::Double),
        "zcard" => Reply::len(zset(model, key)?.map_or(0, |z| z.len())),
        "zrank" | "zrevrank" => {
            let entries = zset(model, key)?.map(|z| ordered(z)).unwrap_or_default();
            match entries.iter().position(|(m, _)| *m == argv[2]) {
                None => Reply::Null,
                Some(at) if name == "zrank" => Reply::len(at),
                Some(at) => Reply::len(entries.len() - 1 - at),
            }
        }
        "zrange" | "zrevrange" => {
            let mut entries = zset(model, key)?.map(|z| ordered(z)).unwrap_or_default();
            if name == "zrevrange" {
                entries.reverse();
            }
            let range = span(entries.len(), int(&argv[2]), int(&argv[3]));
            pairs(entries[range].to_vec())
        }
        "zrangebyscore" | "zcount" | "zremrangebyscore" => {
            let (min, max) = (float(&argv[2]), float(&argv[3]));
            let entries = zset(model, key)?.map(|z| ordered(z)).unwrap_or_default();
            let inside: Vec<_> = entries
                .into_iter()
                .filter(|(_, s)| *s >= min && *s <= max)
                .collect();
            match name {
                "zcount" => Reply::len(inside.len()),
                "zrangebyscore" => pairs(inside),
                _ => {
                    if let Some(z) = zset(model, key)? {
                        inside.iter().for_each(|(m, _)| {
                            z.remove(m);
                        });
                    }
                    tidy(model, key);
                    Reply::len(inside.len())
                }
            }
        }
        "zpopmin" | "zpopmax" => {
            let Some(z) = zset(model, key)? else {
                return Ok(Reply::Array(Some(Vec::new())));
            };
            let mut entries = ordered(z);
            if name == "zpopmax" {
                entries.reverse();
            }
            entries.truncate(int(&argv[2]) as usize);
            entries.iter().for_each(|(m, _)| {
                z.remove(m);
            });
            tidy(model, key);
            pairs(entries)
        }
        other => panic!("the model has no {other}"),
    })
}
