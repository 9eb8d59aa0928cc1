//! The Redis-protocol server over real TCP: three daemons on loopback,
//! driven by the `redis` crate's client (and raw sockets for malformed
//! input). Commands behave as in Redis, writes are read on every node,
//! `WATCH` conflicts surface as a nil `EXEC`, and a node outside the primary
//! component refuses work and reports it to its health check.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use certus::node::NodeState;
use common::resp::RespCluster;
use redis::{Connection, RedisResult, Value, cmd};

fn query_once<T: redis::FromRedisValue>(con: &mut Connection, args: &[&str]) -> RedisResult<T> {
    let mut command = cmd(args[0]);
    for arg in &args[1..] {
        command.arg(*arg);
    }
    command.query(con)
}

/// Sends `args`, and again while the node answers NOTPRIMARY (bounded): a
/// loaded machine can delay the heartbeats that keep a node primary, and a
/// refused command certainly had no effect. EXEC is sent once, since a
/// refused EXEC discards its queue.
fn query<T: redis::FromRedisValue>(con: &mut Connection, args: &[&str]) -> RedisResult<T> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        match query_once(con, args) {
            Err(err)
                if err.code() == Some("NOTPRIMARY")
                    && args[0] != "EXEC"
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            reply => return reply,
        }
    }
}

fn ok(con: &mut Connection, args: &[&str]) -> String {
    query(con, args).unwrap()
}

fn error(con: &mut Connection, args: &[&str]) -> redis::RedisError {
    match query_once::<Value>(con, args) {
        Err(err) => err,
        Ok(value) => panic!("{args:?} succeeded with {value:?}"),
    }
}

/// A command on node `index`, sent again while the node is between
/// leaders (a loaded machine can delay heartbeats past the lease): a
/// command refused with NOTPRIMARY certainly did not commit.
fn through_failover<T: redis::FromRedisValue>(
    cluster: &RespCluster,
    index: usize,
    con: &mut Connection,
    args: &[&str],
) -> T {
    for _ in 0..100 {
        match query_once::<T>(con, args) {
            Ok(reply) => return reply,
            Err(err) if err.code() == Some("NOTPRIMARY") => {
                cluster.wait_state(index, NodeState::Synced);
            }
            Err(err) => panic!("{args:?}: {err}"),
        }
    }
    panic!("{args:?} was refused 100 times");
}

/// Polls `INFO` on node `index` until it shows every one of `fields`
/// (bounded): views and states follow the leader's heartbeats.
fn wait_info(con: &mut Connection, fields: &[&str]) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let info: String = query(con, &["INFO"]).unwrap();
        if fields.iter().all(|f| info.contains(f)) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{fields:?} never all in {info}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// SET through a failover; see [`through_failover`].
fn set_through_failover(
    cluster: &RespCluster,
    index: usize,
    con: &mut Connection,
    key: &str,
    value: &str,
) {
    let reply: String = through_failover(cluster, index, con, &["SET", key, value]);
    assert_eq!(reply, "OK");
}

#[test]
fn commands_behave_as_in_redis() {
    let cluster = RespCluster::start(3);
    let mut con = cluster.client(0);
    assert_eq!(ok(&mut con, &["PING"]), "PONG");
    assert_eq!(ok(&mut con, &["SET", "k", "v"]), "OK");
    assert_eq!(ok(&mut con, &["GET", "k"]), "v");
    assert_eq!(
        query::<Option<String>>(&mut con, &["GET", "nope"]).unwrap(),
        None
    );
    assert_eq!(
        query::<Option<String>>(&mut con, &["SET", "k", "w", "NX"]).unwrap(),
        None
    );
    assert_eq!(ok(&mut con, &["SET", "k", "w", "XX"]), "OK");
    assert_eq!(query::<i64>(&mut con, &["INCR", "n"]).unwrap(), 1);
    assert_eq!(query::<i64>(&mut con, &["INCRBY", "n", "41"]).unwrap(), 42);
    assert_eq!(query::<i64>(&mut con, &["DECR", "n"]).unwrap(), 41);
    assert_eq!(query::<i64>(&mut con, &["APPEND", "s", "ab"]).unwrap(), 2);
    assert_eq!(query::<i64>(&mut con, &["APPEND", "s", "cd"]).unwrap(), 4);
    assert_eq!(query::<i64>(&mut con, &["STRLEN", "s"]).unwrap(), 4);
    assert_eq!(ok(&mut con, &["MSET", "a", "1", "b", "2"]), "OK");
    let values: Vec<Option<String>> = query(&mut con, &["MGET", "a", "zz", "b"]).unwrap();
    assert_eq!(values, vec![Some("1".into()), None, Some("2".into())]);
    assert_eq!(
        query::<i64>(&mut con, &["EXISTS", "a", "b", "zz"]).unwrap(),
        2
    );
    assert_eq!(query::<i64>(&mut con, &["DEL", "a", "zz"]).unwrap(), 1);
    assert_eq!(query::<i64>(&mut con, &["EXISTS", "a"]).unwrap(), 0);

    let err = error(&mut con, &["INCR", "s"]);
    assert!(err.to_string().contains("not an integer"), "{err}");
    let err = error(&mut con, &["GET"]);
    assert!(
        err.to_string().contains("wrong number of arguments"),
        "{err}"
    );
    let err = error(&mut con, &["NOSUCHCMD", "x"]);
    assert!(err.to_string().contains("unknown command"), "{err}");
    // The connection stays usable after command errors.
    assert_eq!(ok(&mut con, &["GET", "s"]), "abcd");
    cluster.shutdown();
}

#[test]
fn a_write_on_each_node_is_read_on_the_others() {
    let cluster = RespCluster::start(3);
    let mut clients: Vec<Connection> = (0..3).map(|i| cluster.client(i)).collect();
    for writer in 0..3 {
        let key = format!("from-{writer}");
        for round in 0..5 {
            let value = format!("{writer}.{round}");
            assert_eq!(ok(&mut clients[writer], &["SET", &key, &value]), "OK");
            // Causal reads: every node sees the write as soon as it is
            // acknowledged, with no waiting in the test.
            for reader in &mut clients {
                assert_eq!(ok(reader, &["GET", &key]), value);
            }
        }
    }
    cluster.shutdown();
}

#[test]
fn exec_is_nil_when_a_watched_key_changed_elsewhere() {
    let cluster = RespCluster::start(3);
    let (mut a, mut b) = (cluster.client(0), cluster.client(1));
    assert_eq!(ok(&mut a, &["SET", "balance", "100"]), "OK");

    assert_eq!(ok(&mut a, &["WATCH", "balance"]), "OK");
    assert_eq!(ok(&mut a, &["GET", "balance"]), "100");
    assert_eq!(ok(&mut b, &["SET", "balance", "50"]), "OK");
    assert_eq!(ok(&mut a, &["MULTI"]), "OK");
    assert_eq!(ok(&mut a, &["SET", "balance", "90"]), "QUEUED");
    assert_eq!(ok(&mut a, &["SET", "audit", "a"]), "QUEUED");
    let exec: Option<Vec<String>> = query(&mut a, &["EXEC"]).unwrap();
    assert_eq!(exec, None, "EXEC must be nil after a conflicting write");
    assert_eq!(ok(&mut b, &["GET", "balance"]), "50");
    assert_eq!(
        query::<Option<String>>(&mut b, &["GET", "audit"]).unwrap(),
        None
    );

    // Unchanged watched keys: EXEC runs every queued command atomically.
    assert_eq!(ok(&mut a, &["WATCH", "balance"]), "OK");
    assert_eq!(ok(&mut a, &["MULTI"]), "OK");
    assert_eq!(ok(&mut a, &["DECRBY", "balance", "10"]), "QUEUED");
    assert_eq!(ok(&mut a, &["GET", "balance"]), "QUEUED");
    let exec: Option<(i64, String)> = query(&mut a, &["EXEC"]).unwrap();
    assert_eq!(exec, Some((40, "40".into())));
    assert_eq!(ok(&mut b, &["GET", "balance"]), "40");

    // DISCARD drops the queue; a bad command aborts the whole EXEC.
    assert_eq!(ok(&mut a, &["MULTI"]), "OK");
    assert_eq!(ok(&mut a, &["SET", "balance", "0"]), "QUEUED");
    assert_eq!(ok(&mut a, &["DISCARD"]), "OK");
    assert_eq!(ok(&mut a, &["MULTI"]), "OK");
    assert_eq!(ok(&mut a, &["SET", "balance", "0"]), "QUEUED");
    error(&mut a, &["GET"]);
    let err = error(&mut a, &["EXEC"]);
    assert_eq!(err.code(), Some("EXECABORT"), "{err}");
    assert_eq!(ok(&mut b, &["GET", "balance"]), "40");
    cluster.shutdown();
}

#[test]
fn contended_increments_are_exact() {
    let cluster = RespCluster::start(3);
    let rounds = 15;
    std::thread::scope(|scope| {
        for client in 0..6 {
            let mut con = cluster.client(client % 3);
            scope.spawn(move || {
                for _ in 0..rounds {
                    // Plain INCR: the server retries certification conflicts.
                    query::<i64>(&mut con, &["INCR", "plain"]).unwrap();
                    // Optimistic locking: the client retries a nil EXEC.
                    loop {
                        assert_eq!(ok(&mut con, &["WATCH", "locked"]), "OK");
                        let value: Option<i64> = query(&mut con, &["GET", "locked"]).unwrap();
                        let next = (value.unwrap_or(0) + 1).to_string();
                        assert_eq!(ok(&mut con, &["MULTI"]), "OK");
                        assert_eq!(ok(&mut con, &["SET", "locked", &next]), "QUEUED");
                        let exec: RedisResult<Option<Vec<String>>> = query(&mut con, &["EXEC"]);
                        match exec {
                            Ok(Some(_)) => break,
                            Ok(None) => {}
                            // Refused outright: nothing ran; start again.
                            Err(err) if err.code() == Some("NOTPRIMARY") => {}
                            Err(err) => panic!("EXEC: {err}"),
                        }
                    }
                }
            });
        }
    });
    let mut con = cluster.client(2);
    assert_eq!(
        query::<i64>(&mut con, &["GET", "plain"]).unwrap(),
        6 * rounds
    );
    assert_eq!(
        query::<i64>(&mut con, &["GET", "locked"]).unwrap(),
        6 * rounds
    );
    let info: String = query(&mut con, &["INFO", "replication"]).unwrap();
    assert!(info.contains("wsrep_local_commits:"), "{info}");
    cluster.shutdown();
}

/// Sends raw bytes and returns everything the server answers before it
/// closes the connection.
fn raw_exchange(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn malformed_requests_get_an_error_and_the_connection_closes() {
    let cluster = RespCluster::start(3);
    let addr = cluster.client_addr(0);
    let answer = raw_exchange(addr, b"PING\r\n*1\r\n$x\r\nGET\r\n");
    assert_eq!(
        answer,
        "+PONG\r\n-ERR Protocol error: invalid bulk length\r\n"
    );
    let answer = raw_exchange(addr, b"*2\r\n$3\r\nGET\r\n:5\r\n");
    assert!(
        answer.starts_with("-ERR Protocol error: expected '$'"),
        "{answer:?}"
    );
    let answer = raw_exchange(addr, b"SET k \"unterminated\r\n");
    assert!(answer.starts_with("-ERR Protocol error"), "{answer:?}");
    // Pipelined commands are answered in order, then QUIT closes.
    let answer = raw_exchange(addr, b"SET p 1\r\nINCR p\r\nGET p\r\nQUIT\r\nGET p\r\n");
    assert_eq!(answer, "+OK\r\n:2\r\n$1\r\n2\r\n+OK\r\n");
    // The server still serves everyone else.
    let mut con = cluster.client(0);
    assert_eq!(ok(&mut con, &["GET", "p"]), "2");
    cluster.shutdown();
}

#[test]
fn hello_switches_a_connection_to_resp3_as_redis_does() {
    let cluster = RespCluster::start(1);
    let addr = cluster.client_addr(0);
    let answer = raw_exchange(
        addr,
        b"GET none\r\nHELLO 3 AUTH default secret SETNAME app\r\nGET none\r\nHELLO 2\r\nGET none\r\nQUIT\r\n",
    );
    let (before, rest) = answer.split_once("%7\r\n").expect("a RESP3 map");
    assert_eq!(before, "$-1\r\n");
    assert!(
        rest.starts_with("$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$5\r\n7.2.4\r\n$5\r\nproto\r\n:3\r\n$2\r\nid\r\n:"),
        "{rest:?}"
    );
    assert!(
        rest.contains("$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n_\r\n*14\r\n"),
        "RESP3 nil after HELLO 3, a flat array for HELLO 2: {rest:?}"
    );
    assert!(rest.ends_with("*0\r\n$-1\r\n+OK\r\n"), "{rest:?}");
    let answer = raw_exchange(
        addr,
        b"HELLO 4\r\nHELLO x\r\nHELLO 3 FOO\r\nHELLO 3 AUTH someone pw\r\nQUIT\r\n",
    );
    assert_eq!(
        answer,
        "-NOPROTO unsupported protocol version\r\n\
         -ERR Protocol version is not an integer or out of range\r\n\
         -ERR Syntax error in HELLO option 'FOO'\r\n\
         -WRONGPASS invalid username-password pair or user is disabled.\r\n\
         +OK\r\n"
    );
    cluster.shutdown();
}

#[test]
fn a_minority_node_refuses_work_and_heals() {
    let mut cluster = RespCluster::start(3);
    let mut con = cluster.client(0);
    wait_info(
        &mut con,
        &[
            "wsrep_cluster_size:3",
            "wsrep_cluster_status:Primary",
            "wsrep_local_state_comment:Synced",
            "wsrep_ready:ON",
        ],
    );
    cluster.wait_health(0, 200);
    set_through_failover(&cluster, 0, &mut con, "k", "before");

    cluster.stop(1);
    cluster.stop(2);
    cluster.wait_state(0, NodeState::NonPrimary);
    assert_eq!(cluster.health(0), 503);
    let err = error(&mut con, &["SET", "k", "lost"]);
    assert_eq!(err.code(), Some("NOTPRIMARY"), "{err}");
    assert!(
        err.to_string().contains("not in primary component"),
        "{err}"
    );
    let err = error(&mut con, &["GET", "k"]);
    assert_eq!(err.code(), Some("NOTPRIMARY"), "{err}");
    let info: String = query(&mut con, &["INFO", "replication"]).unwrap();
    assert!(info.contains("wsrep_ready:OFF"), "{info}");

    cluster.restart(1);
    cluster.restart(2);
    for index in 0..3 {
        cluster.wait_state(index, NodeState::Synced);
    }
    let before: String = through_failover(&cluster, 0, &mut con, &["GET", "k"]);
    assert_eq!(before, "before");
    set_through_failover(&cluster, 0, &mut con, "k", "after");
    let mut other = cluster.client(2);
    let after: String = through_failover(&cluster, 2, &mut other, &["GET", "k"]);
    assert_eq!(after, "after");
    cluster.shutdown();
}

#[test]
fn a_new_node_joins_with_a_full_state_transfer_and_leaves() {
    // A short log: by the time node 4 joins, the writes it needs are gone
    // from every log, so only a full state transfer can give them to it.
    let mut cluster = RespCluster::start_with(3, |config| config.log_retention = 40);
    let mut con = cluster.client(0);
    for n in 0..300 {
        let reply: String = query(&mut con, &["SET", &format!("k{n}"), &n.to_string()]).unwrap();
        assert_eq!(reply, "OK");
    }
    let joiner = cluster.join();
    cluster.wait_store(joiner);
    cluster.wait_state(joiner, NodeState::Synced);
    let transferred = cluster.store(joiner).node().status();
    assert!(!transferred.needs_state_transfer);

    let mut new = cluster.client(joiner);
    let values: Vec<String> =
        through_failover(&cluster, joiner, &mut new, &["MGET", "k0", "k150", "k299"]);
    assert_eq!(values, vec!["0", "150", "299"]);
    set_through_failover(&cluster, joiner, &mut new, "from-4", "hello");
    let seen: String = through_failover(&cluster, 0, &mut con, &["GET", "from-4"]);
    assert_eq!(seen, "hello");
    // The joiner is promoted to voter once its log caught up, and its view
    // then counts four members.
    cluster.wait_members(0, |m| m.len() == 4 && m.iter().all(|m| m.voter));
    wait_info(&mut new, &["wsrep_cluster_size:4", "wsrep_ready:ON"]);
    cluster.wait_health(joiner, 200);

    let listed: Vec<String> = query(&mut new, &["CERTUS", "MEMBERS"]).unwrap();
    assert_eq!(listed.len(), 4, "{listed:?}");
    assert!(
        listed.iter().all(|line| line.ends_with(" voter")),
        "{listed:?}"
    );

    // Node 2 leaves: the other three carry on, and it refuses writes.
    let mut leaving = cluster.client(1);
    assert_eq!(ok(&mut leaving, &["CERTUS", "LEAVE"]), "OK");
    let members = cluster.wait_members(0, |m| m.len() == 3);
    assert!(
        members.iter().all(|m| m.id.get() != 2 && m.voter),
        "{members:?}"
    );
    set_through_failover(&cluster, joiner, &mut new, "after-leave", "x");
    cluster.wait_state(1, NodeState::NonPrimary);
    let mut left = cluster.client(1);
    let err = error(&mut left, &["SET", "k", "v"]);
    assert_eq!(err.code(), Some("NOTPRIMARY"), "{err}");
    cluster.shutdown();
}

#[test]
fn a_member_that_cannot_run_is_forgotten() {
    let mut cluster = RespCluster::start(3);
    let mut con = cluster.client(0);
    assert_eq!(ok(&mut con, &["SET", "before", "1"]), "OK");
    let unknown = error(&mut con, &["CERTUS", "FORGET", "7"]).to_string();
    assert!(unknown.contains("node-7 is not a member"), "{unknown}");
    let arity = error(&mut con, &["CERTUS", "FORGET"]).to_string();
    assert!(
        arity.contains("wrong number of arguments for 'certus' command"),
        "{arity}"
    );
    let bad = error(&mut con, &["CERTUS", "FORGET", "x"]).to_string();
    assert!(
        bad.contains("value is not an integer or out of range"),
        "{bad}"
    );

    // Node 3's machine is gone for good: the others retire it.
    cluster.stop(2);
    let mut forgotten = false;
    for _ in 0..200 {
        match query_once::<String>(&mut con, &["CERTUS", "FORGET", "3"]) {
            Ok(reply) => {
                assert_eq!(reply, "OK");
                forgotten = true;
                break;
            }
            // Sent to the stopped leader, between leaders, or before the
            // new leader has heard its follower: nothing changed, so again.
            Err(err)
                if ["unreachable", "no leader", "not a majority"]
                    .iter()
                    .any(|transient| err.to_string().contains(transient)) =>
            {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(err) => panic!("CERTUS FORGET 3: {err}"),
        }
    }
    assert!(forgotten, "node 3 was never forgotten");
    let members = cluster.wait_members(1, |m| m.len() == 2);
    assert!(
        members.iter().all(|m| m.id.get() != 3 && m.voter),
        "{members:?}"
    );
    set_through_failover(&cluster, 0, &mut con, "after", "x");
    wait_info(&mut con, &["wsrep_cluster_size:2", "wsrep_ready:ON"]);
    let listed: Vec<String> = query(&mut con, &["CERTUS", "MEMBERS"]).unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    let mut other = cluster.client(1);
    let seen: Vec<Option<String>> = query(&mut other, &["MGET", "before", "after"]).unwrap();
    assert_eq!(seen, vec![Some("1".to_string()), Some("x".to_string())]);
    // Should it come back, it is no member: it takes no writes, and the
    // others do not count it.
    cluster.restart(2);
    cluster.wait_state(2, NodeState::NonPrimary);
    let mut back = cluster.client(2);
    let err = error(&mut back, &["SET", "k", "v"]);
    assert_eq!(err.code(), Some("NOTPRIMARY"), "{err}");
    set_through_failover(&cluster, 1, &mut other, "still", "2");
    assert_eq!(cluster.members(0).len(), 2);
    cluster.shutdown();
}

#[test]
fn a_node_whose_gap_left_every_log_gets_a_full_state_transfer() {
    let mut cluster = RespCluster::start_with(3, |config| config.log_retention = 40);
    let mut con = cluster.client(0);
    assert_eq!(ok(&mut con, &["SET", "before", "1"]), "OK");
    cluster.stop(2);
    for n in 0..300 {
        // Stopping the leader refuses writes until a new one is elected.
        set_through_failover(&cluster, 0, &mut con, &format!("k{n}"), &n.to_string());
    }
    assert_eq!(query::<i64>(&mut con, &["DEL", "before"]).unwrap(), 1);
    // Its memory engine restarts empty and its log ends long before what
    // the others retain: it must get everything from a donor.
    cluster.restart(2);
    cluster.wait_state(2, NodeState::Synced);
    let mut back = cluster.client(2);
    let values: Vec<Option<String>> =
        through_failover(&cluster, 2, &mut back, &["MGET", "k0", "k299", "before"]);
    assert_eq!(values, vec![Some("0".into()), Some("299".into()), None]);
    set_through_failover(&cluster, 2, &mut back, "k0", "again");
    let seen: String = through_failover(&cluster, 0, &mut con, &["GET", "k0"]);
    assert_eq!(seen, "again");
    cluster.shutdown();
}

/// A client whose replies pass `client_output_limit_bytes` is closed
/// without them (Redis's `client-output-buffer-limit`), whether one reply
/// (an `MGET`) or a pipeline of small ones passes it; others are served.
#[test]
fn a_client_past_the_output_limit_is_closed() {
    let cluster = RespCluster::start_with(1, |config| {
        config.client_output_limit_bytes = 64 << 10;
    });
    let mut con = cluster.client(0);
    let big = "x".repeat(40 << 10);
    assert_eq!(ok(&mut con, &["SET", "big", &big]), "OK");
    let value: String = query(&mut con, &["GET", "big"]).unwrap();
    assert_eq!(value.len(), big.len());

    let err = query_once::<Value>(&mut con, &["MGET", "big", "big"]).unwrap_err();
    assert!(err.is_io_error() || err.is_connection_dropped(), "{err}");

    let mut piped = cluster.client(0);
    let mut pipe = redis::pipe();
    for _ in 0..3 {
        pipe.cmd("GET").arg("big");
    }
    let err = pipe.query::<Vec<String>>(&mut piped).unwrap_err();
    assert!(err.is_io_error() || err.is_connection_dropped(), "{err}");

    let mut other = cluster.client(0);
    assert_eq!(ok(&mut other, &["PING"]), "PONG");
    let value: String = query(&mut other, &["GET", "big"]).unwrap();
    assert_eq!(value.len(), big.len());
    cluster.shutdown();
}

/// `GET /metrics` on the health port answers the Prometheus text format:
/// the wsrep-style gauges, certification counters by verdict, and the
/// fsync and commit latency histograms, which move with the writes.
#[test]
fn the_health_port_serves_prometheus_metrics() {
    let cluster = RespCluster::start(3);
    let mut con = cluster.client(0);
    for n in 0..5 {
        assert_eq!(ok(&mut con, &["SET", &format!("k{n}"), "v"]), "OK");
    }
    let (code, body) = cluster.metrics(0);
    assert_eq!(code, 200);
    let value = |name: &str| -> f64 {
        let line = body
            .lines()
            .find(|line| line.split(' ').next() == Some(name))
            .unwrap_or_else(|| panic!("no {name} in:\n{body}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert_eq!(value("certus_cluster_size"), 3.0);
    assert_eq!(value("certus_ready"), 1.0);
    assert_eq!(value("certus_local_state"), 4.0);
    assert_eq!(value("certus_failed"), 0.0);
    assert!(value("certus_commit_duration_seconds_count") >= 5.0);
    assert!(value("certus_log_fsync_duration_seconds_count") >= 1.0);
    assert!(value("certus_log_size_bytes") > 0.0);
    assert!(value("certus_commands_processed_total") >= 5.0);
    assert!(value("certus_certified_total{verdict=\"committed\"}") >= 5.0);
    assert!(body.contains("# TYPE certus_commit_duration_seconds histogram"));
    assert!(body.contains("certus_apply_duration_seconds_bucket{le=\"+Inf\"}"));
    // Every node talks to some peer (the leader to its followers, a
    // follower to the leader it forwards to or answers).
    assert!(
        body.lines()
            .any(|l| l.starts_with("certus_peer_sent_bytes_total{peer=") && !l.ends_with(" 0")),
        "no peer traffic in:\n{body}"
    );
    assert!(body.contains("certus_peer_round_trip_seconds_count{peer="));
    cluster.shutdown();
}
