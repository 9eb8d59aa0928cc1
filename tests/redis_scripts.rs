//! Lua scripts across a real three-node cluster on loopback, through the
//! `redis` crate, with the scripts frameworks send: Redlock's and
//! redis-py's lock (which OpenStack's tooz uses) release and extend, and a
//! token-bucket rate limiter taken from every node at once. The script
//! cache is cluster-wide, a script that pushes wakes a client blocked on
//! another node, and every node ends with the same rows.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod common;

use std::time::Duration;

use common::resp::{RespCluster, blocked_clients, eventually, query};

/// Redlock's release (the algorithm's reference script).
const RELEASE: &str = "if redis.call('get', KEYS[1]) == ARGV[1] then \
                       return redis.call('del', KEYS[1]) else return 0 end";

/// redis-py's `Lock.extend` (redis/lock.py), as tooz's Redis driver runs it.
const EXTEND: &str = "local token = redis.call('get', KEYS[1])
if not token or token ~= ARGV[1] then
    return 0
end
local expiration = redis.call('pttl', KEYS[1])
if not expiration then
    expiration = 0
end
if expiration < 0 then
    return 0
end
local newttl = ARGV[2]
if ARGV[3] == \"0\" then
    newttl = ARGV[2] + expiration
end
redis.call('pexpire', KEYS[1], newttl)
return 1";

/// A token bucket: `capacity` tokens, refilled at `rate` per second by the
/// cluster time.
const BUCKET: &str = "local capacity, rate = tonumber(ARGV[1]), tonumber(ARGV[2])
local now = redis.call('TIME')
local t = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or capacity
local ts = tonumber(state[2]) or t
tokens = math.min(capacity, tokens + (t - ts) * rate / 1000)
local allowed = 0
if tokens >= 1 then
    tokens = tokens - 1
    allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'ts', t)
redis.call('PEXPIRE', KEYS[1], 60000)
return allowed";

/// A lock taken on one node is released and extended by scripts sent to
/// the others, only with its token; `SCRIPT LOAD` on one node serves
/// `EVALSHA` on every node, and `SCRIPT FLUSH` empties every node's cache.
#[test]
fn lock_scripts_hold_across_nodes() {
    let cluster = RespCluster::start(3);
    let (mut n0, mut n1, mut n2) = (cluster.client(0), cluster.client(1), cluster.client(2));
    let taken: Option<String> =
        query(&mut n0, &["SET", "lock", "token-a", "NX", "PX", "30000"]).unwrap();
    assert_eq!(taken.as_deref(), Some("OK"));
    let stolen: Option<String> =
        query(&mut n1, &["SET", "lock", "token-b", "NX", "PX", "30000"]).unwrap();
    assert_eq!(stolen, None);
    let released: i64 = query(&mut n1, &["EVAL", RELEASE, "1", "lock", "token-b"]).unwrap();
    assert_eq!(released, 0, "a wrong token released the lock");
    let sha: String = query(&mut n2, &["SCRIPT", "LOAD", EXTEND]).unwrap();
    eventually("every node caches the script", || {
        let exists: Vec<i64> = query(&mut n0, &["SCRIPT", "EXISTS", &sha]).unwrap();
        exists == [1]
    });
    let extended: i64 = query(
        &mut n0,
        &["EVALSHA", &sha, "1", "lock", "token-a", "60000", "1"],
    )
    .unwrap();
    assert_eq!(extended, 1);
    let ttl: i64 = query(&mut n1, &["PTTL", "lock"]).unwrap();
    assert!(ttl > 30_000 && ttl <= 60_000, "extended to {ttl} ms");
    let wrong: i64 = query(
        &mut n1,
        &["EVALSHA", &sha, "1", "lock", "token-b", "60000", "1"],
    )
    .unwrap();
    assert_eq!(wrong, 0);
    let released: i64 = query(&mut n2, &["EVAL", RELEASE, "1", "lock", "token-a"]).unwrap();
    assert_eq!(released, 1);
    let gone: Option<String> = query(&mut n0, &["GET", "lock"]).unwrap();
    assert_eq!(gone, None);
    let _: String = query(&mut n1, &["SCRIPT", "FLUSH"]).unwrap();
    eventually("every node empties its cache", || {
        let exists: Vec<i64> = query(&mut n0, &["SCRIPT", "EXISTS", &sha]).unwrap();
        exists == [0]
    });
    let err = query::<i64>(&mut n0, &["EVALSHA", &sha, "1", "lock", "x", "1", "1"]).unwrap_err();
    assert_eq!(err.code(), Some("NOSCRIPT"), "{err}");
    cluster.assert_nodes_equal();
    cluster.shutdown();
}

/// Clients on every node take from one bucket at once: it grants exactly
/// its capacity (each take is atomic and none aborts), and every node
/// holds the same state.
#[test]
fn a_token_bucket_taken_from_every_node_grants_its_capacity() {
    let cluster = RespCluster::start(3);
    let capacity = 40;
    let threads: Vec<_> = (0..6)
        .map(|c| {
            let mut con = cluster.client(c % 3);
            std::thread::spawn(move || {
                let mut granted = 0;
                for _ in 0..15 {
                    let allowed: i64 =
                        query(&mut con, &["EVAL", BUCKET, "1", "bucket", "40", "0"]).unwrap();
                    granted += allowed;
                }
                granted
            })
        })
        .collect();
    let granted: i64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(
        granted, capacity,
        "the bucket granted {granted} of {capacity}"
    );
    let mut con = cluster.client(1);
    let tokens: String = query(&mut con, &["HGET", "bucket", "tokens"]).unwrap();
    assert_eq!(tokens, "0");
    cluster.assert_nodes_equal();
    cluster.shutdown();
}

/// A script's push wakes a client blocked on another node; a script's
/// publication reaches a subscriber.
#[test]
fn a_script_that_pushes_wakes_a_blocked_client() {
    let cluster = RespCluster::start(3);
    let mut waiter = cluster.client(0);
    let blocked = std::thread::spawn(move || {
        let got: Option<(String, String)> = query(&mut waiter, &["BLPOP", "jobs", "0"]).unwrap();
        got
    });
    let mut watcher = cluster.client(0);
    eventually("the client blocks", || blocked_clients(&mut watcher) == 1);
    let mut producer = cluster.client(2);
    let script = "redis.call('RPUSH', KEYS[1], ARGV[1]) return redis.call('LLEN', KEYS[1])";
    let len: i64 = query(&mut producer, &["EVAL", script, "1", "jobs", "j1"]).unwrap();
    assert_eq!(len, 1);
    assert_eq!(
        blocked.join().unwrap(),
        Some(("jobs".to_string(), "j1".to_string()))
    );
    let mut connection = cluster.client(1);
    connection
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut subscriber = connection.as_pubsub();
    subscriber.subscribe("news").unwrap();
    let script = "return redis.call('PUBLISH', 'news', ARGV[1])";
    // PUBLISH counts the receivers on the node that serves it.
    let receivers: i64 = query(&mut producer, &["EVAL", script, "0", "hello"]).unwrap();
    assert_eq!(receivers, 0);
    let message = subscriber.get_message().unwrap();
    assert_eq!(message.get_channel_name(), "news");
    assert_eq!(message.get_payload::<String>().unwrap(), "hello");
    drop(subscriber);
    cluster.shutdown();
}

/// Scripts that touch keys they do not declare (kombu's binding sweep,
/// RQ's rate limiter build key names from ARGV) run covering every key:
/// atomic across nodes, and a publication made before the undeclared key
/// was touched reaches its subscriber once.
#[test]
fn scripts_that_touch_undeclared_keys_run_covering_every_key() {
    let cluster = RespCluster::start(3);
    let counter = "redis.call('INCR', KEYS[1]) return redis.call('INCR', ARGV[1])";
    let threads: Vec<_> = (0..3)
        .map(|node| {
            let mut con = cluster.client(node);
            std::thread::spawn(move || {
                for _ in 0..20 {
                    let _: i64 =
                        query(&mut con, &["EVAL", counter, "1", "declared", "undeclared"]).unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let mut con = cluster.client(1);
    let values: Vec<i64> = query(&mut con, &["MGET", "declared", "undeclared"]).unwrap();
    assert_eq!(values, [60, 60]);
    // A sweep in kombu's shape: names from a sorted set, keys from ARGV.
    let _: i64 = query(
        &mut con,
        &["ZADD", "deadlines", "1", "a", "2", "b", "9", "c"],
    )
    .unwrap();
    let _: () = query(
        &mut con,
        &["MSET", "table:a", "1", "table:b", "1", "table:c", "1"],
    )
    .unwrap();
    let sweep = "local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
for _, name in ipairs(gone) do
  redis.call('DEL', ARGV[2] .. name)
  redis.call('ZREM', KEYS[1], name)
end
return #gone";
    let swept: i64 = query(&mut con, &["EVAL", sweep, "1", "deadlines", "5", "table:"]).unwrap();
    assert_eq!(swept, 2);
    let left: i64 = query(&mut con, &["EXISTS", "table:a", "table:b", "table:c"]).unwrap();
    assert_eq!(left, 1);
    let mut connection = cluster.client(2);
    connection
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut subscriber = connection.as_pubsub();
    subscriber.subscribe("news").unwrap();
    let publish_then_widen = "redis.call('PUBLISH', 'news', ARGV[1]) \
                              redis.call('SET', ARGV[2], 'x') return 1";
    let _: i64 = query(
        &mut con,
        &["EVAL", publish_then_widen, "0", "once", "elsewhere"],
    )
    .unwrap();
    let _: i64 = query(&mut con, &["PUBLISH", "news", "marker"]).unwrap();
    let first = subscriber.get_message().unwrap();
    assert_eq!(first.get_payload::<String>().unwrap(), "once");
    let second = subscriber.get_message().unwrap();
    assert_eq!(
        second.get_payload::<String>().unwrap(),
        "marker",
        "delivered twice"
    );
    drop(subscriber);
    cluster.assert_nodes_equal();
    cluster.shutdown();
}
