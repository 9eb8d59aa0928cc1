//! A rolling upgrade: a three-node cluster is moved, one node at a time,
//! to a simulated next protocol version (feature `next-version`: write-sets
//! and operations in a format the current version does not read), with
//! writes on every node at every step. The cluster stays at the lower
//! protocol while any node speaks only it (a node that met a frame it
//! cannot read would fail, not skip it), rises once every node speaks the
//! next, keeps it across restarts, and a node cannot then be downgraded.

#![cfg(feature = "next-version")]
#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod common;

use std::time::{Duration, Instant};

use certus::node::NodeState;
use certus::protocol::Protocol;
use certus::server::{DaemonConfig, EngineKind};
use common::resp::RespCluster;
use redis::{RedisResult, cmd};

const BOUND: Duration = Duration::from_secs(60);

fn durable(config: &mut DaemonConfig) {
    config.engine = EngineKind::Redb;
}

/// `SET` of `round-<node>-<n>` on every node, sent again while a node
/// answers NOTPRIMARY or is restarting (a refused command had no effect).
fn write_round(cluster: &RespCluster, round: &str) -> Vec<String> {
    let mut keys = Vec::new();
    for node in 0..3 {
        let mut con = cluster.client(node);
        for n in 0..20 {
            let key = format!("{round}-{node}-{n}");
            let deadline = Instant::now() + BOUND;
            loop {
                let reply: RedisResult<String> = cmd("SET").arg(&key).arg(&key).query(&mut con);
                match reply {
                    Ok(reply) => break assert_eq!(reply, "OK"),
                    Err(err) if err.code() == Some("NOTPRIMARY") && Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    Err(err) => panic!("SET {key} on node {node}: {err}"),
                }
            }
            keys.push(key);
        }
    }
    keys
}

/// Every node holds every key of `rounds`, and none failed.
fn check_everywhere(cluster: &RespCluster, rounds: &[Vec<String>]) {
    for node in 0..3 {
        cluster.wait_state(node, NodeState::Synced);
        let mut con = cluster.client(node);
        for keys in rounds {
            let deadline = Instant::now() + BOUND;
            let values: Vec<Option<String>> = loop {
                match cmd("MGET").arg(keys).query(&mut con) {
                    Ok(values) => break values,
                    // A restart moves the leadership: a causal read waits
                    // for the next one.
                    Err(err) if err.code() == Some("NOTPRIMARY") && Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    Err(err) => panic!("MGET on node {node}: {err}"),
                }
            };
            let expected: Vec<Option<String>> = keys.iter().cloned().map(Some).collect();
            assert_eq!(values, expected, "node {node}");
        }
    }
}

/// Node `node`'s own and cluster protocol, as INFO shows them.
fn info_protocols(cluster: &RespCluster, node: usize) -> (u16, u16) {
    let info: String = cmd("INFO")
        .arg("replication")
        .query(&mut cluster.client(node))
        .unwrap();
    let field = |name: &str| -> u16 {
        info.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .unwrap_or_else(|| panic!("no {name} in {info}"))
            .trim()
            .parse()
            .unwrap()
    };
    (field("certus_protocol"), field("certus_cluster_protocol"))
}

/// Restarts node `node` speaking `protocol`, and waits until it is synced.
fn restart_speaking(cluster: &mut RespCluster, node: usize, protocol: Protocol) {
    cluster.stop(node);
    cluster.config_mut(node).protocol = Some(protocol.get());
    cluster.restart(node);
    cluster.wait_state(node, NodeState::Synced);
}

fn wait_cluster_protocol(cluster: &RespCluster, protocol: Protocol) {
    let deadline = Instant::now() + BOUND;
    for node in 0..3 {
        while cluster.store(node).node().protocols().cluster != protocol {
            assert!(
                Instant::now() < deadline,
                "node {node} never reached {protocol}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn a_rolling_upgrade_runs_at_the_lower_protocol_until_every_node_speaks_the_next() {
    let (current, next) = (Protocol::CURRENT, Protocol::NEXT);
    let (v, w) = (current.get(), next.get());
    let mut cluster = RespCluster::start_with(3, durable);
    let mut rounds = vec![write_round(&cluster, "before")];

    // One node upgraded at a time; the others still speak only `current`,
    // so everyone writes its formats: a frame of `next` would fail them.
    for (step, node) in [2, 0].into_iter().enumerate() {
        restart_speaking(&mut cluster, node, next);
        rounds.push(write_round(&cluster, &format!("mixed{step}")));
        check_everywhere(&cluster, &rounds);
        assert_eq!(info_protocols(&cluster, node), (w, v));
        for other in 0..3 {
            assert_eq!(cluster.store(other).node().protocols().cluster, current);
        }
    }
    assert_eq!(info_protocols(&cluster, 1), (v, v));

    // The last one: the leader orders the change, every node applies it.
    restart_speaking(&mut cluster, 1, next);
    wait_cluster_protocol(&cluster, next);
    rounds.push(write_round(&cluster, "upgraded"));
    check_everywhere(&cluster, &rounds);
    for node in 0..3 {
        assert_eq!(info_protocols(&cluster, node), (w, w));
    }

    // A restart keeps the cluster's protocol (it is in the log and kept
    // beside it), and writes go on in the new formats.
    cluster.stop(0);
    cluster.restart(0);
    assert_eq!(cluster.store(0).node().protocols().cluster, next);
    cluster.wait_state(0, NodeState::Synced);
    rounds.push(write_round(&cluster, "restarted"));
    check_everywhere(&cluster, &rounds);

    // The cluster moved past `current`: a node cannot go back to it.
    cluster.stop(1);
    cluster.config_mut(1).protocol = Some(v);
    let refused = cluster
        .try_restart(1)
        .expect_err("a downgraded node started");
    let message = format!("{refused}");
    assert!(
        message.contains(&format!("records cluster protocol {w}, newer than the {v}")),
        "{message}"
    );
    cluster.config_mut(1).protocol = Some(w);
    cluster.restart(1);
    check_everywhere(&cluster, &rounds);
    cluster.shutdown();
}
