//! The store's side of a full state transfer: exporting live rows in
//! chunks, importing them, and discarding an import that never finished.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use certus::apply::Applier;
use certus::certify::{CertConfig, Certifier};
use certus::kv::{
    Engine, Fault, FaultSwitch, FaultyEngine, KvError, KvStore, MemoryEngine, MvccStore,
    StoreConfig,
};
use certus::order::{Cluster, InProcessConfig, InProcessOrder, OrderError, TotalOrder};
use certus::transfer::{self, Donor};
use certus::{NodeId, Seqno};
use common::{bounded, retry};
use tokio::sync::watch;

#[tokio::test]
async fn chunks_cover_every_live_row_once_in_key_order() {
    bounded(async {
        let cluster = common::Cluster::start(1, |_| {}).await;
        let store = cluster.store(0);
        for n in 0..7 {
            retry(store, |txn| txn.put(format!("k{n}"), n.to_string())).await;
        }
        retry(store, |txn| txn.delete("k3")).await;
        let (at, expected) = store.dump().await.unwrap();
        let mut rows = Vec::new();
        let mut after: Option<Bytes> = None;
        let mut chunks = 0;
        loop {
            let chunk = store
                .export_chunk(at, after.as_deref(), 2, usize::MAX)
                .unwrap();
            assert!(chunk.entries.len() <= 2);
            rows.extend(chunk.entries);
            chunks += 1;
            match chunk.next {
                Some(key) => after = Some(key),
                None => break,
            }
        }
        assert_eq!(rows, expected);
        assert_eq!(rows.len(), 6);
        assert!(chunks >= 3, "{chunks} chunks for 6 rows of at most 2");
    })
    .await;
}

fn rows(engine: &MemoryEngine) -> usize {
    engine.scan(b"", b"\xff", usize::MAX).unwrap().len()
}

#[test]
fn an_unfinished_import_is_discarded_when_the_store_opens() {
    let engine = Arc::new(MemoryEngine::new());
    let mvcc = MvccStore::new(engine.clone(), 16);
    mvcc.begin_import().unwrap();
    let half = [(Bytes::from("a"), Bytes::from("1"))];
    mvcc.import(Seqno::new(9), &half).unwrap();
    drop(mvcc);
    let reopened = MvccStore::new(engine.clone(), 16);
    let recovered = reopened.recover().unwrap();
    assert_eq!(recovered.last_visible, Seqno::ZERO);
    assert!(recovered.checkpoint.is_none());
    assert_eq!(rows(&engine), 0, "the half-copied rows were kept");
}

#[test]
fn a_finished_import_replaces_what_was_there() {
    let engine = Arc::new(MemoryEngine::new());
    let mvcc = MvccStore::new(engine.clone(), 16);
    mvcc.import(Seqno::new(1), &[(Bytes::from("old"), Bytes::from("x"))])
        .unwrap();
    mvcc.begin_import().unwrap();
    let checkpoint = Certifier::new(CertConfig::default()).checkpoint().unwrap();
    let at = checkpoint.seqno();
    mvcc.import(at, &[(Bytes::from("new"), Bytes::from("y"))])
        .unwrap();
    mvcc.finish_import(&checkpoint).unwrap();
    let recovered = MvccStore::new(engine.clone(), 16).recover().unwrap();
    assert_eq!(recovered.last_visible, at);
    assert_eq!(recovered.checkpoint.unwrap().seqno(), at);
    assert_eq!(mvcc.read_at(b"new", at).unwrap(), Some(Bytes::from("y")));
    assert_eq!(mvcc.read_at(b"old", Seqno::new(5)).unwrap(), None);
}

/// Three members of one in-process order that keeps only eight positions,
/// so a store opened after a few writes needs a full state transfer.
fn short_log_cluster() -> InProcessOrder {
    let config = InProcessConfig {
        retention: 8,
        ..InProcessConfig::default()
    };
    InProcessOrder::new(config, [1, 2, 3].map(NodeId::new))
}

/// Node `id`'s store on `engine`.
fn open_on(
    hub: &InProcessOrder,
    id: u64,
    engine: &Arc<MemoryEngine>,
) -> impl std::future::Future<Output = Result<KvStore, KvError>> + use<> {
    let order: Arc<dyn TotalOrder> = Arc::new(hub.endpoint(NodeId::new(id)).unwrap());
    KvStore::open(StoreConfig::new(NodeId::new(id)), engine.clone(), order)
}

/// Node 1's store, serving state transfers while `slot` lives.
async fn donor_on(hub: &InProcessOrder) -> (KvStore, watch::Sender<Option<KvStore>>) {
    let donor = open_on(hub, 1, &Arc::new(MemoryEngine::new()))
        .await
        .unwrap();
    let (slot, served) = watch::channel(Some(donor.clone()));
    let endpoint = hub.endpoint(NodeId::new(1)).unwrap();
    assert!(endpoint.set_peer_service(Donor::start(served)));
    (donor, slot)
}

/// A whole state transfer over the in-process order: the joiner's gap has
/// left the log, it fetches the data from a donor through
/// [`Cluster::call_peer`], and then serves what the donor serves.
#[tokio::test]
async fn a_full_state_transfer_runs_over_the_in_process_order() {
    bounded(async {
        let hub = short_log_cluster();
        let endpoint = |id: u64| Arc::new(hub.endpoint(NodeId::new(id)).unwrap());
        let open = |id: u64, engine: &Arc<MemoryEngine>| open_on(&hub, id, engine);
        let (donor, slot) = donor_on(&hub).await;
        for n in 0..20 {
            retry(&donor, |txn| txn.put(format!("k{n}"), n.to_string())).await;
        }
        retry(&donor, |txn| txn.delete("k7")).await;

        let engine = Arc::new(MemoryEngine::new());
        let gap = open(3, &engine).await.unwrap_err();
        assert!(
            matches!(
                gap,
                KvError::Node(certus::node::Error::Order(
                    OrderError::StateTransferRequired { .. }
                ))
            ),
            "{gap:?}"
        );
        let joiner: Arc<dyn Cluster> = endpoint(3);
        assert_eq!(joiner.members().len(), 3);
        let at = transfer::fetch(&*joiner, engine.clone()).await.unwrap();
        let joined = open(3, &engine).await.unwrap();
        retry(&donor, |txn| txn.put("after", "transfer")).await;
        let (donor_at, expected) = donor.dump().await.unwrap();
        joined.node().wait_visible(donor_at).await.unwrap();
        let (_, copied) = joined.dump().await.unwrap();
        assert!(at < donor_at);
        assert_eq!(copied, expected, "the joiner serves what the donor serves");
        assert_eq!(
            copied.len(),
            20,
            "19 transferred rows and one written after"
        );

        // Node 2 has no peer service, node 1 left: no donor remains.
        endpoint(1).leave().await.unwrap();
        assert_eq!(joiner.members().len(), 2);
        let again = transfer::fetch(&*joiner, Arc::new(MemoryEngine::new())).await;
        assert!(
            matches!(again, Err(transfer::TransferError::NoDonor { .. })),
            "{again:?}"
        );
        drop(slot);
        for store in [donor, joined] {
            store.shutdown().await;
        }
    })
    .await;
}

/// A joiner whose disk is full fails transfer after transfer (more than a
/// donor serves at once); once it has room, its next attempt is served:
/// the transfers it left unfinished do not hold the donor's places.
#[tokio::test]
async fn transfers_a_joiner_left_unfinished_do_not_lock_it_out() {
    bounded(async {
        let hub = short_log_cluster();
        let (donor, slot) = donor_on(&hub).await;
        for n in 0..20 {
            retry(&donor, |txn| txn.put(format!("k{n}"), n.to_string())).await;
        }
        let joiner: Arc<dyn Cluster> = Arc::new(hub.endpoint(NodeId::new(3)).unwrap());
        let switch = FaultSwitch::new();
        switch.set(Fault::DiskFull);
        let engine: Arc<dyn Engine> = Arc::new(FaultyEngine::new(
            Arc::new(MemoryEngine::new()),
            switch.clone(),
        ));
        for attempt in 0..4 {
            let failed = transfer::fetch(&*joiner, engine.clone()).await;
            let err = failed.expect_err("stored on a full disk").to_string();
            assert!(err.contains("No space left"), "attempt {attempt}: {err}");
        }
        switch.set(Fault::None);
        let at = transfer::fetch(&*joiner, engine.clone()).await.unwrap();
        assert!(at > Seqno::ZERO);
        drop(slot);
        donor.shutdown().await;
    })
    .await;
}

/// A certification checkpoint larger than any one transfer message (96 MiB)
/// streams in pieces: 104 distinct 1 MiB keys in the certification index
/// make one of over 104 MiB, which the joiner receives whole and certifies
/// from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_over_the_message_limit_streams_in_pieces() {
    bounded(async {
        let hub = short_log_cluster();
        let endpoint = |id: u64| Arc::new(hub.endpoint(NodeId::new(id)).unwrap());
        let open = |id: u64, engine: &Arc<MemoryEngine>| open_on(&hub, id, engine);
        let (donor, slot) = donor_on(&hub).await;
        const KEYS: usize = 104;
        for n in 0..KEYS {
            let mut key = vec![b'k'; 1 << 20];
            key[..8].copy_from_slice(&(n as u64).to_be_bytes());
            let key = Bytes::from(key);
            retry(&donor, |txn| txn.put(key.clone(), "v")).await;
        }
        assert!(donor.node().status().cert_index_keys >= KEYS);

        let engine = Arc::new(MemoryEngine::new());
        let joiner: Arc<dyn Cluster> = endpoint(3);
        transfer::fetch(&*joiner, engine.clone()).await.unwrap();
        let joined = open(3, &engine).await.unwrap();
        let status = joined.node().status();
        assert!(
            status.cert_index_keys >= KEYS,
            "the checkpoint did not carry the index: {status:?}"
        );
        assert_eq!(
            status.cert_digest,
            donor
                .node()
                .status()
                .cert_digest
                .filter(|_| { donor.node().status().last_certified == status.last_certified }),
            "the joiner certifies as the donor does"
        );
        let (_, copied) = joined.dump().await.unwrap();
        assert_eq!(copied.len(), KEYS);
        drop(slot);
        for store in [donor, joined] {
            store.shutdown().await;
        }
    })
    .await;
}
