//! Random command sequences against one keyspace give the replies a plain
//! model of Redis's semantics gives: strings, hashes, sets and lists, their
//! `WRONGTYPE` errors, and the keyspace commands that move or delete them
//! (so members never outlive, leak into or go missing from their key).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;
use proptest::prelude::*;

use super::{Mem, mem};
use crate::server::db::Db;
use crate::server::executor::run_command;
use crate::server::resp::Reply;

mod expect;

use expect::{expect, set, tidy};

/// A value in the model.
#[derive(Clone, Debug, PartialEq)]
enum Value {
    Str(Bytes),
    Hash(BTreeMap<Bytes, Bytes>),
    Set(BTreeSet<Bytes>),
    List(VecDeque<Bytes>),
    ZSet(BTreeMap<Bytes, f64>),
}

type Model = BTreeMap<Bytes, Value>;

fn wrong_type() -> Reply {
    Reply::Error("WRONGTYPE Operation against a key holding the wrong kind of value".into())
}

fn b(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

fn bulks(items: impl IntoIterator<Item = Bytes>) -> Vec<Reply> {
    items.into_iter().map(|i| Reply::Bulk(Some(i))).collect()
}

/// Replies whose order Redis does not fix, in one order.
fn normalize(reply: Reply) -> Reply {
    let key = |r: &Reply| format!("{r:?}");
    match reply {
        Reply::Set(mut items) => {
            items.sort_by_key(key);
            Reply::Set(items)
        }
        Reply::Map(mut pairs) => {
            pairs.sort_by_key(|(k, _)| key(k));
            Reply::Map(pairs)
        }
        // The same bytes on the wire in both protocols.
        Reply::Pairs(pairs) if pairs.is_empty() => Reply::Array(Some(Vec::new())),
        other => other,
    }
}

/// The hash at `key`: `Err` for another type.
/// Checks one command, random ones by their properties.
fn check(model: &mut Model, keys: &mut Mem, argv: &[Bytes]) {
    let mut db = Db::new(keys, 99);
    let got = normalize(run_command(&mut db, argv).unwrap());
    let name = String::from_utf8_lossy(&argv[0]).to_ascii_lowercase();
    if name == "spop" {
        let members = match set(model, &argv[1]) {
            Err(reply) => return assert_eq!(got, reply),
            Ok(found) => found.cloned().unwrap_or_default(),
        };
        match &got {
            Reply::Bulk(Some(popped)) => {
                assert!(members.contains(popped), "{popped:?} not in {members:?}");
                set(model, &argv[1]).unwrap().unwrap().remove(popped);
                tidy(model, &argv[1]);
            }
            other => assert!(members.is_empty() && *other == Reply::Null, "{other:?}"),
        }
        return;
    }
    let want = normalize(expect(model, argv).unwrap_or_else(|error| error));
    assert_eq!(
        got,
        want,
        "{:?}",
        argv.iter()
            .map(|a| String::from_utf8_lossy(a))
            .collect::<Vec<_>>()
    );
}

/// The whole keyspace as the commands see it equals the model.
fn check_all(model: &mut Model, keys: &mut Mem) {
    for key in ["a", "b", "c"] {
        let argv = [b("TYPE"), b(key)];
        check(model, keys, &argv);
        let kind = match model.get(&b(key)) {
            Some(Value::Hash(_)) => "HGETALL",
            Some(Value::Set(_)) => "SUNION",
            Some(Value::List(_)) => "LRANGE",
            Some(Value::ZSet(_)) => "ZRANGE",
            _ => continue,
        };
        let mut argv = vec![b(kind), b(key)];
        if kind == "LRANGE" || kind == "ZRANGE" {
            argv.extend([b("0"), b("-1")]);
        }
        if kind == "ZRANGE" {
            argv.push(b("WITHSCORES"));
        }
        check(model, keys, &argv);
    }
    // Nothing is left of a key but what its record says.
    let members: usize = model
        .values()
        .map(|v| match v {
            Value::Hash(h) => h.len(),
            Value::Set(s) => s.len(),
            Value::List(l) => l.len(),
            Value::ZSet(z) => 2 * z.len(),
            Value::Str(_) => 0,
        })
        .sum();
    let stored = keys.map.keys().filter(|k| k.first() == Some(&b'm')).count();
    assert_eq!(stored, members, "member keys in the store");
}

fn key() -> impl Strategy<Value = &'static str> + Clone {
    prop::sample::select(vec!["a", "b", "c"])
}

fn name() -> impl Strategy<Value = &'static str> + Clone {
    prop::sample::select(vec!["f", "g", "h", "n"])
}

/// Commands on keys of any type: overwrites, deletes and renames that
/// must take members along or leave none behind.
fn keyspace_command() -> impl Strategy<Value = Vec<String>> {
    let value = prop::sample::select(vec!["1", "-2", "x", "9223372036854775807"]);
    prop_oneof![
        (key(), value).prop_map(|(k, v)| vec!["SET".into(), k.into(), v.into()]),
        key().prop_map(|k| vec!["DEL".into(), k.into()]),
        (key(), key()).prop_map(|(a, b)| vec!["RENAME".into(), a.into(), b.into()]),
    ]
}

fn hash_command() -> impl Strategy<Value = Vec<String>> {
    let value = prop::sample::select(vec!["1", "-2", "x", "9223372036854775807"]);
    let pairs = prop::collection::vec((name(), value), 1..3);
    prop_oneof![
        3 => (key(), pairs).prop_map(|(k, ps)| {
            let mut argv = vec!["HSET".to_string(), k.into()];
            ps.into_iter().for_each(|(f, v)| argv.extend([f.to_string(), v.to_string()]));
            argv
        }),
        1 => (key(), prop::collection::vec(name(), 1..4)).prop_map(|(k, fs)| join("HDEL", k, &fs)),
        1 => (key(), name()).prop_map(|(k, f)| vec!["HGET".into(), k.into(), f.into()]),
        1 => key().prop_map(|k| vec!["HLEN".into(), k.into()]),
        1 => (key(), name()).prop_map(|(k, f)| vec!["HEXISTS".into(), k.into(), f.into()]),
        1 => (key(), name(), prop::sample::select(vec!["1", "-5", "9223372036854775807"]))
            .prop_map(|(k, f, n)| vec!["HINCRBY".into(), k.into(), f.into(), n.into()]),
    ]
}

fn set_command() -> impl Strategy<Value = Vec<String>> {
    let words = prop::collection::vec(name(), 1..4);
    let keys = prop::collection::vec(key(), 1..4);
    prop_oneof![
        3 => (key(), words.clone()).prop_map(|(k, ms)| join("SADD", k, &ms)),
        1 => (key(), words.clone()).prop_map(|(k, ms)| join("SREM", k, &ms)),
        1 => key().prop_map(|k| vec!["SCARD".into(), k.into()]),
        1 => (key(), words).prop_map(|(k, ms)| join("SMISMEMBER", k, &ms)),
        1 => (key(), key(), name()).prop_map(|(a, b, m)| vec!["SMOVE".into(), a.into(), b.into(), m.into()]),
        1 => key().prop_map(|k| vec!["SPOP".into(), k.into()]),
        1 => (prop::sample::select(vec!["SINTER", "SUNION", "SDIFF"]), keys.clone())
            .prop_map(|(op, ks)| join(op, ks[0], &ks[1..])),
        1 => (prop::sample::select(vec!["SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE"]), key(), keys)
            .prop_map(|(op, dest, ks)| join(op, dest, &ks)),
    ]
}

fn list_command() -> impl Strategy<Value = Vec<String>> {
    let key = key();
    let element = prop::sample::select(vec!["x", "y", "z"]);
    let index = -4i64..5;
    let end = prop::sample::select(vec!["LEFT", "RIGHT"]);
    prop_oneof![
        4 => (prop::sample::select(vec!["LPUSH", "RPUSH"]), key.clone(), prop::collection::vec(element.clone(), 1..4))
            .prop_map(|(op, k, es)| join(op, k, &es)),
        1 => (prop::sample::select(vec!["LPOP", "RPOP"]), key.clone(), prop::option::of(0u8..4))
            .prop_map(|(op, k, n)| {
                let mut argv = vec![op.to_string(), k.to_string()];
                argv.extend(n.map(|n| n.to_string()));
                argv
            }),
        1 => (key.clone(), index.clone(), index.clone())
            .prop_map(|(k, a, z)| vec!["LRANGE".into(), k.into(), a.to_string(), z.to_string()]),
        1 => (key.clone(), index.clone()).prop_map(|(k, i)| vec!["LINDEX".into(), k.into(), i.to_string()]),
        1 => (key.clone(), index.clone(), element.clone())
            .prop_map(|(k, i, e)| vec!["LSET".into(), k.into(), i.to_string(), e.into()]),
        1 => (key.clone(), index.clone(), index.clone())
            .prop_map(|(k, a, z)| vec!["LTRIM".into(), k.into(), a.to_string(), z.to_string()]),
        1 => (key.clone(), -2i64..3, element.clone())
            .prop_map(|(k, n, e)| vec!["LREM".into(), k.into(), n.to_string(), e.into()]),
        1 => (key.clone(), prop::sample::select(vec!["BEFORE", "AFTER"]), element.clone(), element)
            .prop_map(|(k, w, p, e)| vec!["LINSERT".into(), k.into(), w.into(), p.into(), e.into()]),
        1 => (key.clone(), key, end.clone(), end)
            .prop_map(|(a, b, f, t)| vec!["LMOVE".into(), a.into(), b.into(), f.into(), t.into()]),
    ]
}

fn join(name: &str, key: &str, rest: &[&str]) -> Vec<String> {
    let mut argv = vec![name.to_string(), key.to_string()];
    argv.extend(rest.iter().map(|s| s.to_string()));
    argv
}

fn zset_command() -> impl Strategy<Value = Vec<String>> {
    let score = prop::sample::select(vec!["1", "2", "-1.5", "0", "2"]);
    let member = prop::sample::select(vec!["m", "n", "o", "p"]);
    let flags = prop::sample::subsequence(vec!["NX", "XX", "GT", "LT", "CH"], 0..3);
    let index = -4i64..5;
    prop_oneof![
        5 => (key(), flags, score.clone(), member.clone()).prop_map(|(k, f, s, m)| {
            let mut argv = vec!["ZADD".to_string(), k.into()];
            argv.extend(f.iter().map(|f| f.to_string()));
            argv.extend([s.to_string(), m.to_string()]);
            argv
        }),
        1 => (key(), score.clone(), member.clone()).prop_map(|(k, s, m)| vec!["ZINCRBY".into(), k.into(), s.into(), m.into()]),
        1 => (key(), member.clone()).prop_map(|(k, m)| vec!["ZREM".into(), k.into(), m.into()]),
        1 => (key(), member.clone()).prop_map(|(k, m)| vec!["ZSCORE".into(), k.into(), m.into()]),
        1 => key().prop_map(|k| vec!["ZCARD".into(), k.into()]),
        1 => (prop::sample::select(vec!["ZRANK", "ZREVRANK"]), key(), member)
            .prop_map(|(c, k, m)| vec![c.into(), k.into(), m.into()]),
        2 => (prop::sample::select(vec!["ZRANGE", "ZREVRANGE"]), key(), index.clone(), index)
            .prop_map(|(c, k, a, z)| vec![c.into(), k.into(), a.to_string(), z.to_string(), "WITHSCORES".into()]),
        2 => (prop::sample::select(vec!["ZRANGEBYSCORE", "ZCOUNT", "ZREMRANGEBYSCORE"]), key(), score.clone(), score)
            .prop_map(|(c, k, a, z)| {
                let mut argv = vec![c.to_string(), k.to_string(), a.to_string(), z.to_string()];
                if c == "ZRANGEBYSCORE" {
                    argv.push("WITHSCORES".into());
                }
                argv
            }),
        1 => (prop::sample::select(vec!["ZPOPMIN", "ZPOPMAX"]), key(), 0u8..3)
            .prop_map(|(c, k, n)| vec![c.into(), k.into(), n.to_string()]),
    ]
}

/// Runs `commands` against a fresh keyspace and the model.
fn run_against_model(commands: Vec<Vec<String>>) {
    let (mut model, mut keys) = (Model::new(), mem());
    for words in commands {
        let argv: Vec<Bytes> = words.iter().map(|w| b(w)).collect();
        check(&mut model, &mut keys, &argv);
    }
    check_all(&mut model, &mut keys);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn hashes_answer_as_the_model(commands in prop::collection::vec(
        prop_oneof![1 => keyspace_command(), 5 => hash_command()], 1..60)) {
        run_against_model(commands);
    }

    #[test]
    fn sets_answer_as_the_model(commands in prop::collection::vec(
        prop_oneof![1 => keyspace_command(), 5 => set_command()], 1..60)) {
        run_against_model(commands);
    }

    #[test]
    fn lists_answer_as_the_model(commands in prop::collection::vec(
        prop_oneof![1 => keyspace_command(), 6 => list_command()], 1..60)) {
        run_against_model(commands);
    }

    #[test]
    fn sorted_sets_answer_as_the_model(commands in prop::collection::vec(
        prop_oneof![1 => keyspace_command(), 6 => zset_command()], 1..60)) {
        run_against_model(commands);
    }

    #[test]
    fn mixed_types_answer_as_the_model(commands in prop::collection::vec(
        prop_oneof![keyspace_command(), hash_command(), set_command(), list_command(), zset_command()], 1..60)) {
        run_against_model(commands);
    }
}
