//! Redis behaviour across a real three-node cluster on loopback, through
//! the `redis` crate: commands that never conflict (they run in log order),
//! pipelines, `WATCH`, deterministic expiry, the keyspace commands, RESP3,
//! and what client libraries send when they connect.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::resp::{RespCluster, eventually};
use redis::{Connection, RedisResult, Value, cmd};

fn query<T: redis::FromRedisValue>(con: &mut Connection, args: &[&str]) -> RedisResult<T> {
    let mut command = cmd(args[0]);
    for arg in &args[1..] {
        command.arg(*arg);
    }
    command.query(con)
}

fn ok(con: &mut Connection, args: &[&str]) -> String {
    query(con, args).unwrap()
}

fn int(con: &mut Connection, args: &[&str]) -> i64 {
    query(con, args).unwrap()
}

fn error_text(con: &mut Connection, args: &[&str]) -> String {
    match query::<Value>(con, args) {
        Err(err) => err.to_string(),
        Ok(value) => panic!("{args:?} succeeded with {value:?}"),
    }
}

/// Clients on every node increment one key and set another at once: no
/// command fails, every increment counts, and every node ends equal.
#[test]
fn hot_key_writes_from_every_node_never_conflict() {
    let cluster = RespCluster::start(3);
    let threads: Vec<_> = (0..6)
        .map(|t| {
            let mut con = cluster.client(t % 3);
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                for i in 0..40 {
                    seen.push(int(&mut con, &["INCR", "hot"]));
                    let value = format!("{t}.{i}");
                    assert_eq!(ok(&mut con, &["SET", "last", &value]), "OK");
                    assert_eq!(ok(&mut con, &["MSET", "m1", &value, "m2", &value]), "OK");
                }
                seen
            })
        })
        .collect();
    let mut all: Vec<i64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    all.sort_unstable();
    assert_eq!(
        all,
        (1..=240).collect::<Vec<_>>(),
        "each INCR saw the one before"
    );
    for node in 0..3 {
        let mut con = cluster.client(node);
        assert_eq!(ok(&mut con, &["GET", "hot"]), "240");
        let pair: Vec<String> = query(&mut con, &["MGET", "m1", "m2"]).unwrap();
        assert_eq!(pair[0], pair[1], "MSET is atomic");
        let failures = cluster.status(node).local_cert_failures;
        assert_eq!(failures, 0, "node {node} saw certification aborts");
    }
    cluster.shutdown();
}

/// Pipelined commands keep their order and see each other's effects.
#[test]
fn a_pipeline_runs_in_order_and_reads_its_own_writes() {
    let cluster = RespCluster::start(3);
    let mut con = cluster.client(1);
    let mut pipe = redis::pipe();
    for _ in 0..20 {
        pipe.cmd("INCR").arg("seq");
    }
    pipe.cmd("SET").arg("k").arg("a");
    pipe.cmd("GET").arg("k");
    pipe.cmd("APPEND").arg("k").arg("b");
    pipe.cmd("GET").arg("k");
    pipe.cmd("NOSUCH");
    pipe.cmd("GET").arg("seq");
    let replies: Vec<RedisResult<Value>> = pipe.ignore_errors().query(&mut con).unwrap();
    let replies: Vec<Option<Value>> = replies.into_iter().map(Result::ok).collect();
    let ints: Vec<Option<Value>> = (1..=20).map(|n| Some(Value::Int(n))).collect();
    assert_eq!(replies[..20], ints[..]);
    assert_eq!(replies[20], Some(Value::Okay));
    assert_eq!(replies[21], Some(Value::BulkString(b"a".to_vec())));
    assert_eq!(replies[22], Some(Value::Int(2)));
    assert_eq!(replies[23], Some(Value::BulkString(b"ab".to_vec())));
    assert_eq!(
        replies[24], None,
        "the unknown command's error, in its place"
    );
    assert_eq!(replies[25], Some(Value::BulkString(b"20".to_vec())));
    // Read-only pipelines run on one snapshot and see every acknowledged write.
    let mut other = cluster.client(2);
    let mut pipe = redis::pipe();
    pipe.cmd("GET")
        .arg("k")
        .cmd("STRLEN")
        .arg("k")
        .cmd("EXISTS")
        .arg("seq");
    let (k, len, exists): (String, i64, i64) = pipe.query(&mut other).unwrap();
    assert_eq!((k.as_str(), len, exists), ("ab", 2, 1));
    cluster.shutdown();
}

/// `EXEC` answers nil when a watched key changed after `WATCH`, also when
/// the block only reads; a block with a command that cannot run keeps
/// Redis's per-command errors, and one refused at queue time aborts.
#[test]
fn watch_and_multi_behave_as_in_redis() {
    let cluster = RespCluster::start(3);
    let (mut a, mut b) = (cluster.client(0), cluster.client(2));
    assert_eq!(ok(&mut a, &["SET", "x", "1"]), "OK");
    assert_eq!(ok(&mut a, &["WATCH", "x"]), "OK");
    assert_eq!(ok(&mut b, &["SET", "x", "2"]), "OK");
    assert_eq!(ok(&mut a, &["MULTI"]), "OK");
    assert_eq!(ok(&mut a, &["GET", "x"]), "QUEUED");
    let exec: Value = query(&mut a, &["EXEC"]).unwrap();
    assert_eq!(exec, Value::Nil, "a read-only block is aborted too");

    assert_eq!(ok(&mut a, &["WATCH", "x"]), "OK");
    assert_eq!(ok(&mut a, &["MULTI"]), "OK");
    assert_eq!(ok(&mut a, &["GET", "x"]), "QUEUED");
    assert_eq!(ok(&mut a, &["PING"]), "QUEUED");
    assert_eq!(ok(&mut a, &["INCR", "x"]), "QUEUED");
    let exec: (String, String, i64) = query(&mut a, &["EXEC"]).unwrap();
    assert_eq!(exec, ("2".into(), "PONG".into(), 3));

    assert_eq!(ok(&mut a, &["MULTI"]), "OK");
    assert_eq!(ok(&mut a, &["UNWATCH"]), "QUEUED");
    assert_eq!(ok(&mut a, &["CLIENT", "SETNAME", "in-multi"]), "QUEUED");
    let exec: (String, String) = query(&mut a, &["EXEC"]).unwrap();
    assert_eq!(exec, ("OK".into(), "OK".into()));
    assert_eq!(ok(&mut a, &["CLIENT", "GETNAME"]), "in-multi");

    assert_eq!(ok(&mut a, &["SET", "s", "text"]), "OK");
    let exec: Vec<RedisResult<Value>> = redis::pipe()
        .atomic()
        .cmd("INCR")
        .arg("s")
        .cmd("SET")
        .arg("t")
        .arg("1")
        .ignore_errors()
        .query(&mut a)
        .unwrap();
    assert!(exec[0].is_err(), "{exec:?}");
    assert_eq!(
        exec[1].as_ref().ok(),
        Some(&Value::Okay),
        "no rollback, as in Redis"
    );

    assert_eq!(ok(&mut a, &["MULTI"]), "OK");
    assert!(error_text(&mut a, &["GET"]).contains("wrong number of arguments"));
    assert_eq!(ok(&mut a, &["SET", "u", "1"]), "QUEUED");
    let exec = error_text(&mut a, &["EXEC"]);
    assert!(exec.contains("Transaction discarded"), "{exec}");
    assert_eq!(int(&mut b, &["EXISTS", "u"]), 0);
    cluster.shutdown();
}

/// A key set to expire is gone on every node, and its storage is
/// reclaimed, without any client touching it; `TTL` counts down on every
/// node by the same clock.
#[test]
fn keys_expire_on_every_node_by_the_cluster_clock() {
    let cluster = RespCluster::start(3);
    let mut cons: Vec<Connection> = (0..3).map(|i| cluster.client(i)).collect();
    assert_eq!(ok(&mut cons[0], &["SET", "short", "v", "PX", "300"]), "OK");
    assert_eq!(ok(&mut cons[1], &["SET", "long", "v", "EX", "1000"]), "OK");
    assert_eq!(int(&mut cons[2], &["PEXPIRE", "long", "999999"]), 1);
    for con in &mut cons {
        let ttl = int(con, &["PTTL", "long"]);
        assert!((0..=999_999).contains(&ttl), "{ttl}");
    }
    for con in &mut cons {
        eventually("the key to expire everywhere", || {
            int(con, &["EXISTS", "short"]) == 0
        });
    }
    for node in 0..3 {
        let store = cluster.store(node);
        eventually("the reaper to remove the record", || {
            let (_, rows) = cluster_dump(&store);
            rows.iter()
                .all(|(key, _)| !key.windows(5).any(|w| w == b"short"))
        });
    }
    // More keys due at once than one removal carries: all are reclaimed.
    let mut pipe = redis::pipe();
    for i in 0..700 {
        pipe.cmd("SET")
            .arg(format!("bulk:{i}"))
            .arg(i)
            .arg("PX")
            .arg(50);
    }
    let _: Vec<String> = pipe.query(&mut cons[0]).unwrap();
    for node in 0..3 {
        let store = cluster.store(node);
        eventually("every bulk key to be reclaimed", || {
            // What is left: `long`'s record and its expiry entry.
            cluster_dump(&store).1.len() == 2
        });
    }
    cluster.shutdown();
}

fn cluster_dump(store: &certus::kv::KvStore) -> (certus::Seqno, Vec<(bytes::Bytes, bytes::Bytes)>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(store.dump()).unwrap()
}

/// `SCAN` returns every key exactly as Redis promises, whichever node
/// answers each call; `KEYS`, `DBSIZE` and `FLUSHALL` act on the whole
/// cluster's keyspace.
#[test]
fn scan_and_flush_cover_the_cluster_keyspace() {
    let cluster = RespCluster::start(3);
    let mut cons: Vec<Connection> = (0..3).map(|i| cluster.client(i)).collect();
    let mut expected = BTreeSet::new();
    let mut pipe = redis::pipe();
    for i in 0..300 {
        let key = format!("key:{i}");
        pipe.cmd("SET").arg(&key).arg(i);
        expected.insert(key);
    }
    let _: Vec<String> = pipe.query(&mut cons[0]).unwrap();
    let mut cursor = 0u64;
    let mut seen = BTreeSet::new();
    for call in 0.. {
        let (next, keys): (u64, Vec<String>) = cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(25)
            .query(&mut cons[call % 3])
            .unwrap();
        seen.extend(keys);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    assert_eq!(seen, expected);
    let keys: Vec<String> = query(&mut cons[1], &["KEYS", "key:1??"]).unwrap();
    assert_eq!(keys.len(), 100);
    assert_eq!(int(&mut cons[2], &["DBSIZE"]), 300);
    assert_eq!(ok(&mut cons[1], &["FLUSHALL"]), "OK");
    for con in &mut cons {
        assert_eq!(int(con, &["DBSIZE"]), 0);
    }
    cluster.shutdown();
}

/// What client libraries send on connect, and what tools probe, answers
/// as Redis does; over RESP3 the replies are typed.
#[test]
fn connection_and_server_commands_answer_as_redis() {
    let cluster = RespCluster::start(3);
    let mut con = cluster.client_resp3(0);
    assert_eq!(
        ok(&mut con, &["CLIENT", "SETINFO", "LIB-NAME", "certus-test"]),
        "OK"
    );
    assert_eq!(ok(&mut con, &["CLIENT", "SETNAME", "tester"]), "OK");
    let id = int(&mut con, &["CLIENT", "ID"]);
    let list: String = query(&mut con, &["CLIENT", "LIST"]).unwrap();
    assert!(list.contains(&format!("id={id} ")), "{list}");
    assert!(
        list.contains("name=tester") && list.contains("lib-name=certus-test"),
        "{list}"
    );
    assert!(list.contains("cmd=client|list"), "{list}");
    assert_eq!(ok(&mut con, &["CLIENT", "GETNAME"]), "tester");
    let config: Value = query(&mut con, &["CONFIG", "GET", "save"]).unwrap();
    assert!(matches!(config, Value::Map(_)), "RESP3 maps: {config:?}");
    let info: String = query(&mut con, &["INFO"]).unwrap();
    for field in [
        "redis_version:7.2.4",
        "redis_mode:standalone",
        "loading:0",
        "connected_clients:",
        "wsrep_cluster_size:3",
    ] {
        assert!(info.contains(field), "INFO lacks {field}");
    }
    assert_eq!(
        query::<Value>(&mut con, &["GET", "absent"]).unwrap(),
        Value::Nil
    );
    assert!(int(&mut con, &["COMMAND", "COUNT"]) > 50);
    let docs: Value = query(&mut con, &["COMMAND", "DOCS", "get"]).unwrap();
    assert!(matches!(docs, Value::Map(_)), "{docs:?}");
    let time: Vec<String> = query(&mut con, &["TIME"]).unwrap();
    assert_eq!(time.len(), 2);
    assert_eq!(ok(&mut con, &["SELECT", "0"]), "OK");
    assert!(error_text(&mut con, &["SELECT", "1"]).contains("DB index is out of range"));
    assert!(error_text(&mut con, &["CONFIG", "SET", "maxmemory", "1"]).contains("immutable"));
    assert!(error_text(&mut con, &["NOSUCH"]).contains("unknown command 'NOSUCH'"));
    assert!(error_text(&mut con, &["CLIENT", "BOGUS"]).contains("unknown subcommand 'BOGUS'"));
    assert_eq!(ok(&mut con, &["PING"]), "PONG");
    cluster.shutdown();
}

/// `CLIENT REPLY OFF` and `SKIP` silence replies (their own too), over a
/// raw connection since no client library expects missing replies.
#[test]
fn client_reply_off_and_skip_silence_replies() {
    use std::io::{Read, Write};
    let cluster = RespCluster::start(1);
    let mut socket = std::net::TcpStream::connect(cluster.client_addr(0)).unwrap();
    socket
        .write_all(
            b"CLIENT REPLY SKIP\r\nSET a 1\r\nGET a\r\nCLIENT REPLY OFF\r\nINCR a\r\n\
              GET a\r\nCLIENT REPLY ON\r\nGET a\r\n",
        )
        .unwrap();
    let expected = b"$1\r\n1\r\n+OK\r\n$1\r\n2\r\n";
    let mut got = vec![0u8; expected.len()];
    socket
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    socket.read_exact(&mut got).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(expected)
    );
    cluster.shutdown();
}
