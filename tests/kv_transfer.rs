//! The store's side of a full state transfer: exporting live rows in
//! chunks, importing them, and discarding an import that never finished.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use certus::Seqno;
use certus::apply::Applier;
use certus::certify::{CertConfig, Certifier};
use certus::kv::{Engine, MemoryEngine, MvccStore};
use common::{Cluster, bounded, retry};

#[tokio::test]
async fn chunks_cover_every_live_row_once_in_key_order() {
    bounded(async {
        let cluster = Cluster::start(1, |_| {}).await;
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
