//! The data commands against an in-memory keyspace whose clock the test
//! moves: replies and error texts as Redis 7.2 gives them.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::*;
use crate::ids::ClusterTime;
use crate::kv::Keyspace;
use crate::server::executor::run_command;

/// A keyspace in a map, at a cluster time the test sets.
#[derive(Default)]
pub(crate) struct Mem {
    map: BTreeMap<Bytes, Bytes>,
    pub(crate) now: u64,
}

impl Keyspace for Mem {
    fn get(&mut self, key: &[u8]) -> Result<Option<Bytes>, KvError> {
        Ok(self.map.get(key).cloned())
    }
    fn put(&mut self, key: Bytes, value: Bytes) -> Result<(), KvError> {
        self.map.insert(key, value);
        Ok(())
    }
    fn delete(&mut self, key: Bytes) -> Result<(), KvError> {
        self.map.remove(&key);
        Ok(())
    }
    fn scan(
        &mut self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Bytes, Bytes)>, KvError> {
        let range = self.map.range::<[u8], _>((
            std::ops::Bound::Included(start),
            std::ops::Bound::Excluded(end),
        ));
        Ok(range
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
    fn time(&self) -> ClusterTime {
        ClusterTime::from_millis(self.now)
    }
}

pub(crate) const T0: u64 = 1_700_000_000_000;

pub(crate) fn mem() -> Mem {
    Mem {
        now: T0,
        ..Mem::default()
    }
}

/// Runs one command written as words (no quoting) and returns its reply.
fn run(mem: &mut Mem, line: &str) -> Reply {
    let argv: Vec<Bytes> = line
        .split(' ')
        .map(|word| Bytes::copy_from_slice(word.as_bytes()))
        .collect();
    let mut db = Db::new(mem, 7);
    run_command(&mut db, &argv).unwrap()
}

fn bulk(text: &str) -> Reply {
    Reply::bulk(text.to_string())
}

fn error(reply: Reply) -> String {
    match reply {
        Reply::Error(text) => text,
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn set_and_get_follow_redis_options() {
    let m = &mut mem();
    assert_eq!(run(m, "GET k"), Reply::Bulk(None));
    assert_eq!(run(m, "SET k v"), Reply::ok());
    assert_eq!(run(m, "GET k"), bulk("v"));
    assert_eq!(run(m, "SET k w NX"), Reply::Bulk(None));
    assert_eq!(run(m, "SET k w XX GET"), bulk("v"));
    assert_eq!(run(m, "SET new w XX"), Reply::Bulk(None));
    assert_eq!(run(m, "SET new w NX GET"), Reply::Bulk(None));
    assert_eq!(run(m, "GET new"), bulk("w"));
    assert_eq!(run(m, "SETNX new x"), Reply::Integer(0));
    assert_eq!(run(m, "GETSET new y"), bulk("w"));
    assert_eq!(run(m, "GETDEL new"), bulk("y"));
    assert_eq!(run(m, "EXISTS new k k"), Reply::Integer(2));
    assert_eq!(error(run(m, "SET k v NX XX")), "ERR syntax error");
    assert_eq!(error(run(m, "SET k v EX 10 PX 5")), "ERR syntax error");
    assert_eq!(error(run(m, "SET k v KEEPTTL EX 1")), "ERR syntax error");
    assert_eq!(error(run(m, "SET k v EX")), "ERR syntax error");
    assert_eq!(
        error(run(m, "SET k v EX 0")),
        "ERR invalid expire time in 'set' command"
    );
    assert_eq!(
        error(run(m, "SET k v PX -5")),
        "ERR invalid expire time in 'set' command"
    );
    assert_eq!(
        error(run(m, "SET k v EX x")),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        error(run(m, "SETEX k 0 v")),
        "ERR invalid expire time in 'setex' command"
    );
    assert_eq!(
        error(run(m, "GET")),
        "ERR wrong number of arguments for 'get' command"
    );
    assert_eq!(run(m, "GET k"), bulk("w"), "errors changed nothing");
}

#[test]
fn keys_expire_by_the_cluster_time_only() {
    let m = &mut mem();
    assert_eq!(run(m, "SET k v EX 10"), Reply::ok());
    assert_eq!(run(m, "TTL k"), Reply::Integer(10));
    assert_eq!(run(m, "PTTL k"), Reply::Integer(10_000));
    assert_eq!(
        run(m, "EXPIRETIME k"),
        Reply::Integer(((T0 + 10_000) / 1000) as i64)
    );
    m.now += 4_400;
    assert_eq!(run(m, "TTL k"), Reply::Integer(6), "5.6 s rounds to 6");
    assert_eq!(run(m, "SET k v2 KEEPTTL"), Reply::ok());
    assert_eq!(run(m, "PTTL k"), Reply::Integer(5_600));
    assert_eq!(run(m, "INCR n"), Reply::Integer(1));
    assert_eq!(run(m, "PEXPIRE n 100"), Reply::Integer(1));
    assert_eq!(run(m, "INCR n"), Reply::Integer(2));
    assert_eq!(
        run(m, "PTTL n"),
        Reply::Integer(100),
        "INCR keeps the expiry"
    );
    m.now += 100;
    assert_eq!(run(m, "GET n"), Reply::Bulk(None), "gone at its deadline");
    assert_eq!(run(m, "TTL n"), Reply::Integer(-2));
    assert_eq!(run(m, "EXISTS n"), Reply::Integer(0));
    assert_eq!(run(m, "SET k v3"), Reply::ok());
    assert_eq!(run(m, "TTL k"), Reply::Integer(-1), "a plain SET clears it");
    assert_eq!(run(m, "PERSIST k"), Reply::Integer(0));
    assert_eq!(run(m, "EXPIRE k 100 XX"), Reply::Integer(0));
    assert_eq!(run(m, "EXPIRE k 100 NX"), Reply::Integer(1));
    assert_eq!(run(m, "EXPIRE k 50 GT"), Reply::Integer(0));
    assert_eq!(run(m, "EXPIRE k 50 LT"), Reply::Integer(1));
    assert_eq!(run(m, "PERSIST k"), Reply::Integer(1));
    assert_eq!(
        run(m, "EXPIRE k 10 GT"),
        Reply::Integer(0),
        "GT on no expiry"
    );
    assert_eq!(
        run(m, "EXPIRE k -1"),
        Reply::Integer(1),
        "a past deadline deletes"
    );
    assert_eq!(run(m, "GET k"), Reply::Bulk(None));
    assert_eq!(run(m, "EXPIRE nokey 10"), Reply::Integer(0));
    assert_eq!(
        error(run(m, "EXPIRE k 10 NX XX")),
        "ERR NX and XX, GT or LT options at the same time are not compatible"
    );
    assert_eq!(
        error(run(m, "EXPIRE k 10 GT LT")),
        "ERR GT and LT options at the same time are not compatible"
    );
    assert_eq!(error(run(m, "EXPIRE k 10 YY")), "ERR Unsupported option YY");
    assert_eq!(
        error(run(m, "EXPIRE k 9223372036854775807")),
        "ERR invalid expire time in 'expire' command"
    );
}

#[test]
fn getex_sets_clears_and_keeps_expiry() {
    let m = &mut mem();
    run(m, "SET k v");
    assert_eq!(run(m, "GETEX k EX 5"), bulk("v"));
    assert_eq!(run(m, "TTL k"), Reply::Integer(5));
    assert_eq!(run(m, "GETEX k"), bulk("v"));
    assert_eq!(run(m, "TTL k"), Reply::Integer(5));
    assert_eq!(run(m, "GETEX k PERSIST"), bulk("v"));
    assert_eq!(run(m, "TTL k"), Reply::Integer(-1));
    assert_eq!(run(m, &format!("GETEX k PXAT {}", T0 - 1)), bulk("v"));
    assert_eq!(
        run(m, "GET k"),
        Reply::Bulk(None),
        "a past timestamp deletes"
    );
    assert_eq!(run(m, "GETEX k EX 1"), Reply::Bulk(None));
    assert_eq!(error(run(m, "GETEX k PERSIST EX 1")), "ERR syntax error");
}

#[test]
fn counters_and_strings_give_redis_errors() {
    let m = &mut mem();
    assert_eq!(run(m, "INCRBY c 5"), Reply::Integer(5));
    assert_eq!(run(m, "DECR c"), Reply::Integer(4));
    assert_eq!(run(m, "DECRBY c -6"), Reply::Integer(10));
    assert_eq!(run(m, "INCRBYFLOAT c 0.5"), bulk("10.5"));
    assert_eq!(run(m, "INCRBYFLOAT c 1.5"), bulk("12"));
    assert_eq!(
        error(run(m, "INCRBY c x")),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        error(run(m, "DECRBY c -9223372036854775808")),
        "ERR decrement would overflow"
    );
    run(m, "SET big 9223372036854775807");
    assert_eq!(
        error(run(m, "INCR big")),
        "ERR increment or decrement would overflow"
    );
    run(m, "SET s hello");
    assert_eq!(
        error(run(m, "INCR s")),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        error(run(m, "INCRBYFLOAT s 1")),
        "ERR value is not a valid float"
    );
    assert_eq!(
        error(run(m, "INCRBYFLOAT c inf")),
        "ERR increment would produce NaN or Infinity"
    );
    run(m, "SET z 01");
    assert_eq!(
        error(run(m, "INCR z")),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(run(m, "APPEND s _world"), Reply::Integer(11));
    assert_eq!(run(m, "STRLEN s"), Reply::Integer(11));
    assert_eq!(run(m, "GETRANGE s 0 4"), bulk("hello"));
    assert_eq!(run(m, "GETRANGE s -5 -1"), bulk("world"));
    assert_eq!(run(m, "SUBSTR s 100 200"), bulk(""));
    assert_eq!(run(m, "GETRANGE s -1 -5"), bulk(""));
    assert_eq!(run(m, "SETRANGE s 6 W"), Reply::Integer(11));
    assert_eq!(run(m, "GET s"), bulk("hello_World"));
    assert_eq!(run(m, "SETRANGE pad 3 x"), Reply::Integer(4));
    assert_eq!(
        run(m, "GET pad"),
        Reply::bulk(Bytes::from_static(b"\0\0\0x"))
    );
    assert_eq!(run(m, "SETRANGE empty 5 "), Reply::Integer(0));
    assert_eq!(
        error(run(m, "SETRANGE s -1 x")),
        "ERR offset is out of range"
    );
    assert_eq!(
        error(run(m, "SETRANGE s 33554432 x")),
        "ERR string exceeds maximum allowed size (proto-max-bulk-len)"
    );
    assert_eq!(
        run(m, "GET s"),
        bulk("hello_World"),
        "errors changed nothing"
    );
}

#[test]
fn multi_key_commands_answer_as_redis() {
    let m = &mut mem();
    assert_eq!(run(m, "MSET a 1 b 2"), Reply::ok());
    assert_eq!(
        run(m, "MGET a b c"),
        Reply::Array(Some(vec![bulk("1"), bulk("2"), Reply::Bulk(None)]))
    );
    assert_eq!(run(m, "MSETNX c 3 a 9"), Reply::Integer(0));
    assert_eq!(run(m, "GET c"), Reply::Bulk(None));
    assert_eq!(run(m, "MSETNX c 3 d 4"), Reply::Integer(1));
    assert_eq!(
        error(run(m, "MSET a")),
        "ERR wrong number of arguments for 'mset' command"
    );
    assert_eq!(
        error(run(m, "MSET a 1 b")),
        "ERR wrong number of arguments for 'mset' command"
    );
    assert_eq!(run(m, "DEL a b nothing"), Reply::Integer(2));
    assert_eq!(run(m, "UNLINK c"), Reply::Integer(1));
    assert_eq!(run(m, "TOUCH d d x"), Reply::Integer(2));
    assert_eq!(run(m, "TYPE d"), Reply::Simple("string"));
    assert_eq!(run(m, "TYPE x"), Reply::Simple("none"));
}

#[test]
fn rename_and_copy_move_values_with_their_expiry() {
    let m = &mut mem();
    run(m, "SET a 1 EX 100");
    assert_eq!(error(run(m, "RENAME nothing b")), "ERR no such key");
    assert_eq!(run(m, "RENAME a a"), Reply::ok());
    assert_eq!(run(m, "RENAME a b"), Reply::ok());
    assert_eq!(run(m, "TTL b"), Reply::Integer(100));
    assert_eq!(run(m, "EXISTS a"), Reply::Integer(0));
    run(m, "SET c 3");
    assert_eq!(run(m, "RENAMENX b c"), Reply::Integer(0));
    assert_eq!(run(m, "COPY b c"), Reply::Integer(0));
    assert_eq!(run(m, "COPY b c REPLACE"), Reply::Integer(1));
    assert_eq!(run(m, "GET c"), bulk("1"));
    assert_eq!(run(m, "TTL c"), Reply::Integer(100));
    assert_eq!(
        error(run(m, "COPY b b")),
        "ERR source and destination objects are the same"
    );
    assert_eq!(
        error(run(m, "COPY b e DB 1")),
        "ERR DB index is out of range"
    );
    assert_eq!(run(m, "COPY b e DB 0"), Reply::Integer(1));
    assert_eq!(error(run(m, "COPY b e BOGUS")), "ERR syntax error");
}

/// Every key in a SCAN reply, following the cursor to the end.
fn scan_all(m: &mut Mem, options: &str) -> (Vec<String>, usize) {
    let mut cursor = "0".to_string();
    let (mut keys, mut calls) = (Vec::new(), 0);
    loop {
        calls += 1;
        let Reply::Array(Some(parts)) = run(m, &format!("SCAN {cursor}{options}")) else {
            panic!("scan reply");
        };
        let (Reply::Bulk(Some(next)), Reply::Array(Some(found))) = (&parts[0], &parts[1]) else {
            panic!("scan parts");
        };
        for key in found {
            let Reply::Bulk(Some(key)) = key else {
                panic!("a key")
            };
            keys.push(String::from_utf8_lossy(key).into_owned());
        }
        cursor = String::from_utf8_lossy(next).into_owned();
        if cursor == "0" {
            keys.sort();
            return (keys, calls);
        }
    }
}

#[test]
fn scan_keys_and_dbsize_see_live_keys_once() {
    let m = &mut mem();
    for i in 0..100 {
        run(m, &format!("SET key:{i:03} v"));
    }
    run(m, "SET other v PX 5");
    m.now += 5;
    let (keys, calls) = scan_all(m, " COUNT 7");
    assert_eq!(keys.len(), 100, "every live key once, the expired one not");
    assert!(calls > 5, "COUNT bounds each call ({calls} calls)");
    let (matched, _) = scan_all(m, " MATCH key:00* COUNT 1000");
    assert_eq!(matched.len(), 10);
    let (typed, _) = scan_all(m, " TYPE list");
    assert!(typed.is_empty());
    assert_eq!(run(m, "DBSIZE"), Reply::Integer(100));
    let Reply::Array(Some(found)) = run(m, "KEYS key:09?") else {
        panic!("keys reply");
    };
    assert_eq!(found.len(), 10);
    assert!(matches!(run(m, "RANDOMKEY"), Reply::Bulk(Some(_))));
    assert_eq!(error(run(m, "SCAN x")), "ERR invalid cursor");
    assert_eq!(error(run(m, "SCAN 0 COUNT 0")), "ERR syntax error");
    assert_eq!(error(run(m, "SCAN 0 MATCH")), "ERR syntax error");
    assert_eq!(run(m, "FLUSHALL ASYNC"), Reply::ok());
    assert_eq!(run(m, "DBSIZE"), Reply::Integer(0));
    assert_eq!(run(m, "RANDOMKEY"), Reply::Bulk(None));
    assert!(
        m.map.is_empty(),
        "records and expiry entries are gone: {:?}",
        m.map
    );
    assert_eq!(error(run(m, "FLUSHDB NOW")), "ERR syntax error");
}

#[test]
fn the_reaper_removes_only_what_is_still_due() {
    let m = &mut mem();
    run(m, "SET a 1 PX 10");
    run(m, "SET b 2 PX 10");
    m.now += 10;
    run(m, "SET b 3 EX 100");
    let deadline = T0 + 10;
    let mut db = Db::new(m, 0);
    assert!(db.reap(b"a", deadline).unwrap());
    assert!(!db.reap(b"b", deadline).unwrap(), "b has a new deadline");
    assert!(!db.reap(b"gone", deadline).unwrap());
    assert_eq!(run(m, "GET b"), bulk("3"));
    assert_eq!(
        m.map.len(),
        2,
        "b's record and its one expiry entry: {:?}",
        m.map
    );
}

#[test]
fn integers_parse_as_redis_does() {
    assert_eq!(parse_i64(b"-42"), Ok(-42));
    assert_eq!(parse_i64(b"0"), Ok(0));
    assert_eq!(parse_i64(b"9223372036854775807"), Ok(i64::MAX));
    assert_eq!(parse_i64(b"-9223372036854775808"), Ok(i64::MIN));
    for bad in [
        &b"+1"[..],
        b" 1",
        b"1.0",
        b"",
        b"01",
        b"-0",
        b"9223372036854775808",
        b"\xff",
    ] {
        assert!(parse_i64(bad).is_err(), "{bad:?}");
    }
    assert_eq!(parse_f64(b"1e3"), Ok(1000.0));
    assert!(parse_f64(b" 1").is_err());
    assert!(parse_f64(b"nan").is_err());
    assert_eq!(format_float(12.0), "12");
    assert_eq!(format_float(1e20), "100000000000000000000");
}

#[test]
fn keys_of_commands_come_from_their_specs() {
    let argv: Vec<Bytes> = "MSET a 1 b 2"
        .split(' ')
        .map(|s| Bytes::from(s.to_string()))
        .collect();
    let spec = lookup("mset").unwrap();
    assert_eq!(spec.keys(&argv).collect::<Vec<_>>(), [&argv[1], &argv[3]]);
    assert_eq!(spec.class(), Class::Write);
    assert_eq!(lookup("get").unwrap().class(), Class::Read);
    assert_eq!(lookup("scan").unwrap().class(), Class::ReadAll);
    assert_eq!(lookup("flushall").unwrap().class(), Class::WriteAll);
    assert_eq!(lookup("ping").unwrap().class(), Class::Session);
    assert!(
        COMMANDS.windows(2).all(|w| w[0].name < w[1].name),
        "sorted for lookup"
    );
    for spec in COMMANDS {
        // A container's keys are its subcommands' (OBJECT ENCODING key).
        let container = COMMANDS
            .iter()
            .any(|sub| sub.name.starts_with(&format!("{}|", spec.name)));
        // PUBLISH names no key: it declares the order of publications;
        // a HELP reads nothing; SCRIPT LOAD and FLUSH change only every
        // node's script cache.
        let keyless = matches!(spec.name, "publish" | "script|load" | "script|flush")
            || spec.name.ends_with("|help");
        let has_keys = spec.has_keys() || container || keyless;
        let class = spec.class();
        assert!(
            class == Class::Session
                || has_keys
                || matches!(class, Class::ReadAll | Class::WriteAll),
            "{} has no keys but runs as {class:?}",
            spec.name
        );
    }
}

mod collections;
mod model;
