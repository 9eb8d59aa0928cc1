//! A sick node never stalls the cluster. One node of three runs on an
//! engine whose writes fail on command (a full disk): while it is sick the
//! other two keep committing (with a flow-control limit small enough that
//! any pause it asked for would stop them), it answers as failed, and once
//! the disk has room again it comes back by itself, in the same process,
//! with every write.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use certus::kv::{Engine, Fault, FaultSwitch, FaultyEngine, MemoryEngine};
use certus::node::{Failure, NodeState};
use certus::server::{DaemonConfig, EngineOpener};
use common::resp::RespCluster;
use redis::{Connection, RedisResult, cmd};

/// The longest any wait here may take.
const BOUND: Duration = Duration::from_secs(60);

/// `SET key value`, sent again while the node answers NOTPRIMARY (a
/// loaded machine can delay heartbeats; a refused command had no effect).
fn set(con: &mut Connection, key: &str, value: &str) {
    let deadline = Instant::now() + BOUND;
    loop {
        let reply: RedisResult<String> = cmd("SET").arg(key).arg(value).query(con);
        match reply {
            Ok(reply) => return assert_eq!(reply, "OK"),
            Err(err) if err.code() == Some("NOTPRIMARY") && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(err) => panic!("SET {key}: {err}"),
        }
    }
}

/// `MGET` of `keys` on a node, sent again while it is not serving yet.
fn mget(con: &mut Connection, keys: &[String]) -> Vec<Option<String>> {
    let deadline = Instant::now() + BOUND;
    loop {
        let reply: RedisResult<Vec<Option<String>>> = cmd("MGET").arg(keys).query(con);
        match reply {
            Ok(values) => return values,
            Err(err) if Instant::now() < deadline => {
                pause_while_unavailable(&err);
            }
            Err(err) => panic!("MGET: {err}"),
        }
    }
}

fn pause_while_unavailable(err: &redis::RedisError) {
    assert!(
        matches!(err.code(), Some("NOTPRIMARY" | "LOADING")) || err.is_io_error(),
        "unexpected: {err}"
    );
    std::thread::sleep(Duration::from_millis(20));
}

/// An engine opener whose memory engine survives in-process restarts and
/// fails writes while `switch` says so.
fn faulty(switch: &FaultSwitch) -> EngineOpener {
    let engine: Arc<dyn Engine> = Arc::new(FaultyEngine::new(
        Arc::new(MemoryEngine::new()),
        switch.clone(),
    ));
    Arc::new(move || Ok(engine.clone()))
}

/// Polls `check` until it gives a value (bounded).
fn poll<T>(check: impl Fn() -> Option<T>) -> T {
    let deadline = Instant::now() + BOUND;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "never happened");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn small_flow_control(config: &mut DaemonConfig) {
    config.fc_limit = 8;
    config.log_retention = 40;
}

/// Writes `count` keys named `prefix<n>`, alternating between nodes 0
/// and 1; returns the keys.
fn write_on_the_healthy(cluster: &RespCluster, prefix: &str, count: usize) -> Vec<String> {
    let mut clients = [cluster.client(0), cluster.client(1)];
    let keys: Vec<String> = (0..count).map(|n| format!("{prefix}{n}")).collect();
    for (n, key) in keys.iter().enumerate() {
        set(&mut clients[n % 2], key, &n.to_string());
    }
    keys
}

fn expected(keys: &[String]) -> Vec<Option<String>> {
    (0..keys.len()).map(|n| Some(n.to_string())).collect()
}

#[test]
fn a_node_whose_disk_fills_up_fails_alone_and_comes_back_by_itself() {
    let switch = FaultSwitch::new();
    let cluster = RespCluster::start_engines(
        3,
        small_flow_control,
        vec![None, None, Some(faulty(&switch))],
    );
    let before = write_on_the_healthy(&cluster, "before", 10);
    let sick = cluster.store(2);
    switch.set(Fault::DiskFull);

    // Many times the flow-control limit: a pause from the sick node would
    // have stopped these.
    let during = write_on_the_healthy(&cluster, "during", 200);
    // It failed at the first engine write after the switch (it may apply
    // behind the others' acknowledgements): applying a write-set, or
    // making applied ones visible, whichever reached the engine first.
    let status = poll(|| Some(sick.node().status()).filter(|s| s.state == NodeState::Failed));
    let (Some(Failure::Apply { source, .. }) | Some(Failure::MakeVisible { source, .. })) =
        &status.failure
    else {
        panic!("not an engine failure: {status:?}");
    };
    assert!(source.to_string().contains("No space left"), "{source}");
    assert_eq!(cluster.health(0), 200);
    assert_eq!(
        cluster.pauses_sent(2),
        0,
        "the failed node asked for a pause"
    );

    switch.set(Fault::None);
    // The next write finds it restarted and applying.
    let after = write_on_the_healthy(&cluster, "after", 10);
    cluster.wait_state(2, NodeState::Synced);
    let mut back = cluster.client(2);
    for keys in [&before, &during, &after] {
        assert_eq!(mget(&mut back, keys), expected(keys));
    }
    assert_ne!(
        cluster.store(2).node().status().state,
        NodeState::Failed,
        "the node was not replaced"
    );
    cluster.shutdown();
}

#[test]
fn a_voter_receiving_a_state_transfer_never_holds_the_others_back() {
    let switch = FaultSwitch::new();
    let mut cluster = RespCluster::start_engines(
        3,
        small_flow_control,
        vec![None, None, Some(faulty(&switch))],
    );
    cluster.stop(2);
    // Past the retained log: node 3 can only come back by a full transfer.
    let missed = write_on_the_healthy(&cluster, "missed", 300);
    // And its disk is full, so the transfer cannot finish yet.
    switch.set(Fault::DiskFull);
    cluster.restart(2);
    // Once the leader reaches it, it learns its gap is gone and starts a
    // transfer: its store is out of service until one succeeds.
    poll(|| cluster.try_store(2).is_none().then_some(()));
    assert_eq!(cluster.health(2), 503);
    let during = write_on_the_healthy(&cluster, "during", 200);
    if let Some(store) = cluster.try_store(2) {
        panic!(
            "the transfer finished on a full disk: {:?}",
            store.node().status()
        );
    }
    assert_eq!(cluster.pauses_sent(2), 0, "the joiner asked for a pause");

    switch.set(Fault::None);
    cluster.wait_state(2, NodeState::Synced);
    let mut back = cluster.client(2);
    assert_eq!(mget(&mut back, &missed), expected(&missed));
    assert_eq!(mget(&mut back, &during), expected(&during));
    cluster.wait_health(2, 200);
    cluster.shutdown();
}
