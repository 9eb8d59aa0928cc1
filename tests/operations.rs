//! Ordered operations through the library, as an embedding engine uses
//! them: a payload and its keys go in, every node executes it at its
//! position, and the submitter gets the output its node computed. Three
//! nodes in one process over the in-process order, with a tiny executor.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

use std::sync::Arc;

use bytes::Bytes;
use certus::kv::{
    Engine, Execution, Executor, Keyspace, KvError, KvStore, MemoryEngine, StoreConfig,
};
use certus::node::{CommitOutcome, NodeState, OperationOutcome, TxnOptions};
use certus::order::{InProcessConfig, InProcessOrder};
use certus::writeset::{Operation, Scope};
use certus::{ClusterTime, NodeId};

/// `incr <key>` adds one to a decimal counter and returns it; `time`
/// returns the cluster time it ran at; `flush` deletes every key.
struct Counters;

impl Executor for Counters {
    fn execute(&self, op: &Operation, keys: &mut Execution<'_>) -> Result<Bytes, KvError> {
        let text = String::from_utf8_lossy(op.payload()).into_owned();
        let mut words = text.split(' ');
        match (words.next(), words.next()) {
            (Some("incr"), Some(key)) => {
                let key = Bytes::copy_from_slice(key.as_bytes());
                let old = keys.get(&key)?;
                let n: u64 = old.map_or(0, |v| String::from_utf8_lossy(&v).parse().unwrap());
                let next = Bytes::from((n + 1).to_string());
                keys.put(key, next.clone())?;
                Ok(next)
            }
            (Some("time"), None) => Ok(Bytes::from(keys.time().as_millis().to_string())),
            (Some("flush"), None) => {
                for (key, _) in keys.scan(b"", b"\xff", usize::MAX)? {
                    keys.delete(key)?;
                }
                Ok(Bytes::from_static(b"flushed"))
            }
            _ => Ok(Bytes::from_static(b"unknown")),
        }
    }
}

async fn cluster() -> (InProcessOrder, Vec<KvStore>) {
    let (hub, stores, _) = cluster_with(|_| {}).await;
    (hub, stores)
}

/// Three nodes, each with its store configured by `configure`, and their
/// engines.
async fn cluster_with(
    configure: impl Fn(&mut StoreConfig),
) -> (InProcessOrder, Vec<KvStore>, Vec<Arc<MemoryEngine>>) {
    let ids: Vec<NodeId> = (1..=3).map(NodeId::new).collect();
    let hub = InProcessOrder::new(InProcessConfig::default(), ids.clone());
    let (mut stores, mut engines) = (Vec::new(), Vec::new());
    for id in ids {
        let order = Arc::new(hub.endpoint(id).unwrap());
        let engine = Arc::new(MemoryEngine::new());
        engines.push(engine.clone());
        let mut config = StoreConfig::new(id);
        configure(&mut config);
        let store = KvStore::open_with(config, engine, order, Arc::new(Counters));
        stores.push(store.await.unwrap());
    }
    for store in &stores {
        let mut status = store.node().watch_status();
        status
            .wait_for(|s| s.state == NodeState::Synced)
            .await
            .unwrap();
    }
    (hub, stores, engines)
}

async fn incr(store: &KvStore, key: &str) -> OperationOutcome {
    let mut op = store.operation(format!("incr {key}")).unwrap();
    op.read(key.to_string());
    op.write(key.to_string());
    op.submit().await.unwrap()
}

fn output(outcome: &OperationOutcome) -> u64 {
    match outcome {
        OperationOutcome::Executed { output, .. } => {
            String::from_utf8_lossy(output).parse().unwrap()
        }
        other => panic!("expected an execution, got {other:?}"),
    }
}

/// Every node increments one hot key at once: nothing conflicts, every
/// increment sees the one before, and every replica ends with the total.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_increments_of_one_key_never_conflict() {
    let (hub, stores) = cluster().await;
    let mut tasks = Vec::new();
    for store in &stores {
        for _ in 0..50 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move { incr(&store, "hot").await }));
        }
    }
    let mut seen = Vec::new();
    for task in tasks {
        seen.push(output(&task.await.unwrap()));
    }
    seen.sort_unstable();
    assert_eq!(
        seen,
        (1..=150).collect::<Vec<_>>(),
        "each increment saw the one before"
    );
    let target = hub.last_seqno();
    for store in &stores {
        store.node().wait_visible(target).await.unwrap();
        let (_, rows) = store.dump().await.unwrap();
        assert_eq!(rows, [(Bytes::from("hot"), Bytes::from("150"))]);
        assert_eq!(store.node().status().local_cert_failures, 0);
    }
}

/// A transaction whose snapshot predates an operation's write to its key
/// aborts (first committer wins over both kinds); an operation watching a
/// key written after its view aborts and executes nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_and_watches_conflict_with_operations() {
    let (_hub, stores) = cluster().await;
    let mut txn = stores[0].begin().await.unwrap();
    let view = txn.read_view();
    assert_eq!(output(&incr(&stores[1], "k").await), 1);
    txn.put(Bytes::from("k"), Bytes::from("9")).unwrap();
    let outcome = txn.commit().await.unwrap();
    assert!(matches!(outcome, CommitOutcome::Conflict(_)), "{outcome:?}");

    let mut watching = stores[2].operation("incr k").unwrap();
    watching.read("k");
    watching.write("k");
    watching.watch(view, "k");
    let outcome = watching.submit().await.unwrap();
    assert!(
        matches!(outcome, OperationOutcome::Conflict(_)),
        "{outcome:?}"
    );
    assert_eq!(
        output(&incr(&stores[2], "k").await),
        2,
        "the watched increment ran nowhere"
    );

    let mut txn = stores[0]
        .begin_with(TxnOptions::default().causal(true))
        .await
        .unwrap();
    assert_eq!(txn.get(b"k").unwrap(), Some(Bytes::from("2")));
}

/// Operations read the cluster time of their position, which the leader
/// stamped, whatever the executing node's clock; reads see the time of
/// their read view.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_and_reads_see_the_cluster_time_of_their_position() {
    let (hub, stores) = cluster().await;
    hub.set_time(Some(ClusterTime::from_millis(5_000)));
    let run = |store: &KvStore| {
        let op = store.operation("time").unwrap();
        async move { op.submit().await.unwrap() }
    };
    assert_eq!(output(&run(&stores[0]).await), 5_000);
    hub.set_time(Some(ClusterTime::from_millis(4_000)));
    assert_eq!(
        output(&run(&stores[1]).await),
        5_000,
        "time never runs backwards"
    );
    hub.set_time(Some(ClusterTime::from_millis(7_000)));
    assert_eq!(output(&run(&stores[2]).await), 7_000);
    let txn = stores[2].begin().await.unwrap();
    assert_eq!(txn.time(), ClusterTime::from_millis(7_000));
}

/// An operation that writes every key orders around everything: the
/// increments before it are gone, the ones after start again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operation_over_every_key_flushes_in_order() {
    let (hub, stores) = cluster().await;
    for key in ["a", "b", "c"] {
        assert_eq!(output(&incr(&stores[0], key).await), 1);
    }
    let mut flush = stores[1].operation("flush").unwrap();
    flush.cover(Scope::WritesAll);
    assert!(matches!(
        flush.submit().await.unwrap(),
        OperationOutcome::Executed { .. }
    ));
    assert_eq!(output(&incr(&stores[2], "a").await), 1);
    let target = hub.last_seqno();
    for store in &stores {
        store.node().wait_visible(target).await.unwrap();
        let (_, rows) = store.dump().await.unwrap();
        assert_eq!(rows, [(Bytes::from("a"), Bytes::from("1"))]);
    }
}

/// Garbage collection after operations: each write removes the version it
/// read and hid, so a hot key keeps one version however often it was
/// incremented, and a flush leaves nothing. The full scan a store starts
/// with has finished before the writes, so the queue alone collects them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collection_after_operations_keeps_one_version_per_live_key() {
    let (hub, stores, engines) = cluster_with(|config| config.gc_every = u64::MAX).await;
    let versions = |engine: &MemoryEngine| engine.scan(b"d", b"e", usize::MAX).unwrap().len();
    for store in &stores {
        let stats = store.collect_garbage().unwrap();
        assert!(!stats.full_scan_pending, "{stats:?}");
    }
    for round in 0..20 {
        assert_eq!(
            output(&incr(&stores[round % 3], "hot").await),
            round as u64 + 1
        );
    }
    assert_eq!(output(&incr(&stores[0], "cold").await), 1);
    let target = hub.last_seqno();
    for (store, engine) in stores.iter().zip(&engines) {
        store.node().wait_visible(target).await.unwrap();
        assert_eq!(versions(engine), 21);
        let stats = store.collect_garbage().unwrap();
        assert_eq!(stats.versions_removed, 19, "{stats:?}");
        assert!(!stats.full_scan_pending, "{stats:?}");
        assert_eq!(versions(engine), 2);
    }

    let mut flush = stores[1].operation("flush").unwrap();
    flush.cover(Scope::WritesAll);
    let outcome = flush.submit().await.unwrap();
    assert!(
        matches!(outcome, OperationOutcome::Executed { .. }),
        "{outcome:?}"
    );
    let target = hub.last_seqno();
    for (store, engine) in stores.iter().zip(&engines) {
        store.node().wait_visible(target).await.unwrap();
        let stats = store.collect_garbage().unwrap();
        assert_eq!(stats.versions_removed, 4, "two values, two tombstones");
        assert_eq!(versions(engine), 0);
        let (_, rows) = store.dump().await.unwrap();
        assert!(rows.is_empty(), "{rows:?}");
    }
}
