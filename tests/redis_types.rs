//! Hashes, sets and lists across a real three-node cluster on loopback,
//! through the `redis` crate: a queue with producers and blocked consumers
//! on every node pops every element exactly once, a blocked client is
//! woken by a push on another node, `WATCH` covers every field of a hash,
//! every node ends with the same rows, and pub/sub reaches every node's
//! subscribers in one order.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod common;

use std::time::Duration;

use common::resp::{RespCluster, blocked_clients, eventually, query};
use redis::{Connection, Value};

/// Producers on all three nodes push to one queue while blocked consumers
/// on all three pop: no push aborts, every element is popped exactly once,
/// and the nodes end equal.
#[test]
fn a_queue_fed_and_drained_on_every_node_pops_each_element_once() {
    let cluster = RespCluster::start(3);
    let (producers, per_producer) = (3, 60);
    let consumers: Vec<_> = (0..3)
        .map(|c| {
            let mut con = cluster.client(c);
            std::thread::spawn(move || {
                let mut popped = Vec::new();
                loop {
                    let got: Option<(String, String)> =
                        query(&mut con, &["BLPOP", "queue", "2"]).unwrap();
                    match got {
                        Some((key, element)) if element != "stop" => {
                            assert_eq!(key, "queue");
                            popped.push(element);
                        }
                        _ => return popped,
                    }
                }
            })
        })
        .collect();
    let threads: Vec<_> = (0..producers)
        .map(|p| {
            let mut con = cluster.client(p % 3);
            std::thread::spawn(move || {
                for i in 0..per_producer {
                    let len: i64 =
                        query(&mut con, &["RPUSH", "queue", &format!("{p}:{i}")]).unwrap();
                    assert!(len >= 1);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let mut con = cluster.client(1);
    for _ in 0..3 {
        let _: i64 = query(&mut con, &["RPUSH", "queue", "stop"]).unwrap();
    }
    let mut popped: Vec<String> = consumers
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    let total = popped.len();
    popped.sort();
    popped.dedup();
    assert_eq!(popped.len(), total, "an element was popped twice");
    assert_eq!(total, producers * per_producer, "an element was lost");
    let left: i64 = query(&mut con, &["LLEN", "queue"]).unwrap();
    assert_eq!(left, 0);
    cluster.assert_nodes_equal();
    cluster.shutdown();
}

/// A client blocked on node 0 is served by a push on node 2; a timeout
/// answers nil; `BLMOVE` moves exactly one element.
#[test]
fn a_blocked_client_is_woken_by_a_push_on_another_node() {
    let cluster = RespCluster::start(3);
    let mut waiter = cluster.client(0);
    let blocked = std::thread::spawn(move || {
        let got: Option<(String, String)> =
            query(&mut waiter, &["BRPOP", "jobs", "other", "0"]).unwrap();
        got
    });
    let mut watcher = cluster.client(0);
    eventually("the client blocks", || blocked_clients(&mut watcher) == 1);
    let mut producer = cluster.client(2);
    let _: i64 = query(&mut producer, &["LPUSH", "jobs", "j1"]).unwrap();
    assert_eq!(
        blocked.join().unwrap(),
        Some(("jobs".to_string(), "j1".to_string()))
    );
    eventually("the client is no longer blocked", || {
        blocked_clients(&mut watcher) == 0
    });
    let nothing: Option<(String, String)> =
        query(&mut watcher, &["BLPOP", "empty", "0.05"]).unwrap();
    assert_eq!(nothing, None);
    let moved: Option<String> = query(
        &mut watcher,
        &["BLMOVE", "empty", "dst", "LEFT", "RIGHT", "0.05"],
    )
    .unwrap();
    assert_eq!(moved, None);
    let _: i64 = query(&mut producer, &["RPUSH", "src", "a", "b"]).unwrap();
    let moved: Option<String> = query(
        &mut watcher,
        &["BLMOVE", "src", "dst", "LEFT", "RIGHT", "0"],
    )
    .unwrap();
    assert_eq!(moved.as_deref(), Some("a"));
    let dst: Vec<String> = query(&mut producer, &["LRANGE", "dst", "0", "-1"]).unwrap();
    assert_eq!(dst, ["a"]);
    let err = query::<Value>(&mut watcher, &["BLPOP", "q", "-1"]).unwrap_err();
    assert!(err.to_string().contains("timeout is negative"), "{err}");
    // A client that hangs up while blocked stops waiting.
    let mut counter = cluster.client(1);
    let mut quitter = std::net::TcpStream::connect(cluster.client_addr(1)).unwrap();
    std::io::Write::write_all(
        &mut quitter,
        b"*3\r\n$5\r\nBLPOP\r\n$5\r\nnever\r\n$1\r\n0\r\n",
    )
    .unwrap();
    eventually("the quitter blocks", || blocked_clients(&mut counter) == 1);
    drop(quitter);
    eventually("the quitter's wait ends", || {
        blocked_clients(&mut counter) == 0
    });
    cluster.shutdown();
}

/// `WATCH` on a hash aborts on a change to any field, as in Redis; fields
/// written by concurrent clients on every node all land.
#[test]
fn hashes_and_sets_hold_every_write_from_every_node() {
    let cluster = RespCluster::start(3);
    let threads: Vec<_> = (0..3)
        .map(|n| {
            let mut con = cluster.client(n);
            std::thread::spawn(move || {
                for i in 0..30 {
                    let field = format!("n{n}f{i}");
                    let _: i64 = query(&mut con, &["HSET", "inst", &field, "building"]).unwrap();
                    let _: i64 = query(&mut con, &["HINCRBY", "usage", "instances", "1"]).unwrap();
                    let _: i64 =
                        query(&mut con, &["SADD", "ips", &format!("10.0.{n}.{i}")]).unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let mut con = cluster.client(2);
    let fields: i64 = query(&mut con, &["HLEN", "inst"]).unwrap();
    assert_eq!(fields, 90);
    let usage: i64 = query(&mut con, &["HGET", "usage", "instances"]).unwrap();
    assert_eq!(usage, 90, "no increment lost");
    let ips: i64 = query(&mut con, &["SCARD", "ips"]).unwrap();
    assert_eq!(ips, 90);

    let mut a = cluster.client(0);
    let mut b = cluster.client(1);
    let _: String = query(&mut a, &["WATCH", "inst"]).unwrap();
    let _: i64 = query(&mut b, &["HSET", "inst", "n0f0", "active"]).unwrap();
    let _: String = query(&mut a, &["MULTI"]).unwrap();
    let _: String = query(&mut a, &["HSET", "inst", "n1f1", "deleted"]).unwrap();
    let exec: Value = query(&mut a, &["EXEC"]).unwrap();
    assert_eq!(exec, Value::Nil, "a field written since WATCH aborts EXEC");
    let state: String = query(&mut b, &["HGET", "inst", "n1f1"]).unwrap();
    assert_eq!(state, "building");
    cluster.assert_nodes_equal();
    cluster.shutdown();
}

/// A message published on any node reaches the subscribers on every node
/// once, in the same order on each; `PUBLISH` counts its own node's.
#[test]
fn published_messages_reach_every_node_s_subscribers_in_one_order() {
    let cluster = RespCluster::start(3);
    let mut connections: Vec<Connection> = (0..3).map(|n| cluster.client(n)).collect();
    // A PubSub unsubscribes when dropped: these live to the end.
    let mut subscribers: Vec<redis::PubSub<'_>> = connections
        .iter_mut()
        .map(|con| {
            con.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            con.as_pubsub()
        })
        .collect();
    for (n, pubsub) in subscribers.iter_mut().enumerate() {
        pubsub.subscribe("news").unwrap();
        if n == 2 {
            pubsub.psubscribe("n*").unwrap();
        }
    }
    // Publishers on two nodes at once, each message numbered.
    let publishers: Vec<_> = [0usize, 1]
        .into_iter()
        .map(|n| {
            let mut con = cluster.client(n);
            std::thread::spawn(move || {
                let mut counts = Vec::new();
                for i in 0..40 {
                    let receivers: i64 =
                        query(&mut con, &["PUBLISH", "news", &format!("{n}:{i}")]).unwrap();
                    counts.push(receivers);
                }
                counts
            })
        })
        .collect();
    for publisher in publishers {
        let counts = publisher.join().unwrap();
        assert!(
            counts.iter().all(|c| *c == 1),
            "one subscriber on each publishing node: {counts:?}"
        );
    }
    let mut orders = Vec::new();
    for (n, pubsub) in subscribers.iter_mut().enumerate() {
        let mut seen = Vec::new();
        let expected = if n == 2 { 160 } else { 80 };
        while seen.len() < expected {
            let message = pubsub.get_message().unwrap();
            let payload: String = message.get_payload().unwrap();
            let via = message.get_pattern::<Option<String>>().unwrap();
            seen.push((via.is_some(), payload));
        }
        let direct: Vec<String> = seen
            .iter()
            .filter(|(p, _)| !p)
            .map(|(_, m)| m.clone())
            .collect();
        let mut unique = direct.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 80, "node {n} got each message once");
        if n == 2 {
            let by_pattern: Vec<String> = seen
                .iter()
                .filter(|(p, _)| *p)
                .map(|(_, m)| m.clone())
                .collect();
            assert_eq!(by_pattern, direct, "the pattern saw the same order");
        }
        orders.push(direct);
    }
    assert_eq!(orders[0], orders[1], "nodes 0 and 1 saw one order");
    assert_eq!(orders[1], orders[2], "nodes 1 and 2 saw one order");
    drop(subscribers);
    cluster.shutdown();
}

/// A subscribed RESP2 client may send only the pub/sub commands, PING,
/// QUIT and RESET; `PUBSUB` reports this node's subscriptions.
#[test]
fn a_subscribed_client_is_limited_as_in_redis() {
    let cluster = RespCluster::start(3);
    let mut stream = std::net::TcpStream::connect(cluster.client_addr(0)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut send = |command: &str, expect: &str| {
        let parts: Vec<&str> = command.split(' ').collect();
        let mut frame = format!("*{}\r\n", parts.len());
        for part in &parts {
            frame.push_str(&format!("${}\r\n{part}\r\n", part.len()));
        }
        std::io::Write::write_all(&mut stream, frame.as_bytes()).unwrap();
        let mut got = vec![0u8; expect.len()];
        std::io::Read::read_exact(&mut stream, &mut got).unwrap();
        assert_eq!(String::from_utf8_lossy(&got), expect, "{command}");
    };
    send(
        "SUBSCRIBE a b",
        "*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n",
    );
    send(
        "GET k",
        "-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n",
    );
    send("PING", "*2\r\n$4\r\npong\r\n$0\r\n\r\n");
    let mut other = cluster.client(0);
    let numsub: Vec<redis::Value> = query(&mut other, &["PUBSUB", "NUMSUB", "a", "zz"]).unwrap();
    assert_eq!(numsub.len(), 4);
    let channels: Vec<String> = query(&mut other, &["PUBSUB", "CHANNELS"]).unwrap();
    assert_eq!(channels.len(), 2, "{channels:?}");
    send(
        "UNSUBSCRIBE",
        "*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$11\r\nunsubscribe\r\n$1\r\nb\r\n:0\r\n",
    );
    send("PING", "+PONG\r\n");
    send("UNSUBSCRIBE", "*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n");
    cluster.shutdown();
}
