//! The embedding API against a recording engine: a resubmitted write-set is
//! applied once, entries that are not write-sets are skipped identically on
//! every node, oversized write-sets never reach the order, and a restarted
//! node rejoins and syncs without a membership change.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use certus::apply::{Applier, ApplyError, Recovered};
use certus::certify::CertCheckpoint;
use certus::node::{CommitOutcome, Error, Node, NodeConfig, NodeState};
use certus::order::{InProcessConfig, InProcessOrder, TotalOrder};
use certus::writeset::{Isolation, WriteSet, WriteSetBuilder};
use certus::{NodeId, Seqno, TxnId};
use common::bounded;

/// Records every apply and the committed watermark, and recovers from them.
#[derive(Default)]
struct Recorder {
    state: Mutex<Recorded>,
}

#[derive(Default)]
struct Recorded {
    applied: BTreeMap<Seqno, WriteSet>,
    committed: Seqno,
    checkpoint: Option<CertCheckpoint>,
}

impl Recorder {
    fn applied_txns(&self) -> Vec<(NodeId, TxnId)> {
        let state = self.state.lock().unwrap();
        state
            .applied
            .values()
            .map(|ws| (ws.origin(), ws.txn_id()))
            .collect()
    }
}

impl Applier for Recorder {
    fn recover(&self) -> Result<Recovered, ApplyError> {
        let state = self.state.lock().unwrap();
        Ok(Recovered {
            last_visible: state.committed,
            checkpoint: state.checkpoint.clone(),
        })
    }

    fn apply(&self, seqno: Seqno, ws: &WriteSet) -> Result<(), ApplyError> {
        self.state.lock().unwrap().applied.insert(seqno, ws.clone());
        Ok(())
    }

    fn make_visible(
        &self,
        upto: Seqno,
        checkpoint: Option<&CertCheckpoint>,
    ) -> Result<(), ApplyError> {
        let mut state = self.state.lock().unwrap();
        assert!(upto >= state.committed, "the commit watermark went back");
        state.committed = upto;
        if let Some(checkpoint) = checkpoint {
            state.checkpoint = Some(checkpoint.clone());
        }
        Ok(())
    }
}

struct Harness {
    hub: InProcessOrder,
    recorders: Vec<Arc<Recorder>>,
    nodes: Vec<Node>,
}

impl Harness {
    async fn start(configure: fn(&mut NodeConfig)) -> Harness {
        let ids: Vec<NodeId> = (1..=3).map(NodeId::new).collect();
        let hub = InProcessOrder::new(InProcessConfig::default(), ids.clone());
        let recorders: Vec<_> = ids.iter().map(|_| Arc::new(Recorder::default())).collect();
        let mut harness = Harness {
            hub,
            recorders,
            nodes: Vec::new(),
        };
        for index in 0..ids.len() {
            let node = harness.open(index, configure).await;
            harness.nodes.push(node);
        }
        harness
    }

    async fn open(&self, index: usize, configure: fn(&mut NodeConfig)) -> Node {
        let id = NodeId::new(index as u64 + 1);
        let mut config = NodeConfig::new(id);
        configure(&mut config);
        let order = Arc::new(self.hub.endpoint(id).unwrap());
        Node::start(config, order, self.recorders[index].clone())
            .await
            .unwrap()
    }

    /// Waits until every node applied every position ordered so far.
    async fn wait_all_applied(&self) -> Seqno {
        let last = self.hub.last_seqno();
        for node in &self.nodes {
            node.wait_visible(last).await.unwrap();
        }
        last
    }

    fn submit(&self, index: usize, frame: Bytes) -> impl Future<Output = ()> + '_ {
        let endpoint = self.hub.endpoint(self.nodes[index].id()).unwrap();
        async move { endpoint.submit(frame).await.unwrap() }
    }
}

fn defaults(_: &mut NodeConfig) {}

fn foreign_write_set(origin: NodeId, txn_id: TxnId) -> Bytes {
    let mut builder = WriteSetBuilder::new(origin, txn_id, Seqno::ZERO, Isolation::Snapshot);
    builder.put(Bytes::from_static(b"k"), Bytes::from_static(b"v"));
    builder.build().encode(1 << 20).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resubmitted_write_set_is_applied_exactly_once_everywhere() {
    bounded(async {
        let harness = Harness::start(defaults).await;
        // An origin that retries through another member after losing the
        // answer: the same (origin, txn id) is ordered twice.
        let (origin, txn_id) = (NodeId::new(7), TxnId::new(42, 1));
        let frame = foreign_write_set(origin, txn_id);
        harness.submit(0, frame.clone()).await;
        harness.submit(1, frame).await;
        harness.wait_all_applied().await;
        for (node, recorder) in harness.nodes.iter().zip(&harness.recorders) {
            assert_eq!(recorder.applied_txns(), vec![(origin, txn_id)]);
            let cert = node.status().cert;
            assert_eq!(
                (cert.committed, cert.duplicates),
                (1, 1),
                "on {}",
                node.id()
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_that_are_not_write_sets_are_skipped_identically() {
    bounded(async {
        let harness = Harness::start(defaults).await;
        let good = foreign_write_set(NodeId::new(7), TxnId::new(1, 1));
        let mut corrupt = good.to_vec();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 0x40;
        harness.submit(0, Bytes::from_static(b"not a frame")).await;
        harness.submit(1, Bytes::from(corrupt)).await;
        harness.submit(2, good).await;
        let last = harness.wait_all_applied().await;
        for (node, recorder) in harness.nodes.iter().zip(&harness.recorders) {
            let status = node.status();
            assert_eq!(status.malformed, 2, "on {}", node.id());
            assert_eq!(status.last_visible, last);
            assert_eq!(
                recorder.applied_txns(),
                vec![(NodeId::new(7), TxnId::new(1, 1))]
            );
        }
        // The cluster keeps working after them.
        let mut txn = harness.nodes[1].begin().await.unwrap();
        txn.put("after", "ok").unwrap();
        assert!(matches!(
            txn.commit().await.unwrap(),
            CommitOutcome::Committed { .. }
        ));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_write_set_is_refused_before_it_is_ordered() {
    fn small(config: &mut NodeConfig) {
        config.max_write_set_bytes = 1024;
    }
    bounded(async {
        let harness = Harness::start(small).await;
        let before = harness.hub.last_seqno();
        let mut txn = harness.nodes[0].begin().await.unwrap();
        let err = txn.put("big", vec![7u8; 4096]).unwrap_err();
        assert!(
            matches!(err, Error::WriteSetTooLarge { max: 1024, .. }),
            "{err:?}"
        );
        // The transaction is spoiled: it refuses to commit, nothing is ordered.
        let err = txn.commit().await.unwrap_err();
        assert!(
            matches!(err, Error::WriteSetTooLarge { max: 1024, .. }),
            "{err:?}"
        );
        assert_eq!(
            harness.hub.last_seqno(),
            before,
            "an oversized write-set was ordered"
        );
        // Size is checked as a transaction grows, not only at commit.
        let mut txn = harness.nodes[0].begin().await.unwrap();
        txn.put("a", vec![1u8; 400]).unwrap();
        txn.put("b", vec![2u8; 400]).unwrap();
        let err = txn.put("c", vec![3u8; 400]).unwrap_err();
        assert!(
            matches!(err, Error::WriteSetTooLarge { max: 1024, .. }),
            "{err:?}"
        );
        // One within bounds commits.
        let mut txn = harness.nodes[0].begin().await.unwrap();
        txn.put("a", vec![1u8; 400]).unwrap();
        txn.put("b", vec![2u8; 400]).unwrap();
        let outcome = txn.commit().await.unwrap();
        assert_eq!(
            outcome,
            CommitOutcome::Committed {
                seqno: before.next()
            }
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_syncs_without_a_membership_change() {
    fn small_checkpoints(config: &mut NodeConfig) {
        config.checkpoint_interval = 4;
    }
    bounded(async {
        let mut harness = Harness::start(small_checkpoints).await;
        for round in 0..12 {
            let mut txn = harness.nodes[round % 3].begin().await.unwrap();
            txn.put(format!("k{round}"), "v").unwrap();
            assert!(matches!(
                txn.commit().await.unwrap(),
                CommitOutcome::Committed { .. }
            ));
        }
        let last = harness.wait_all_applied().await;
        harness.nodes[2].shutdown().await;
        let applied_before = harness.recorders[2].applied_txns().len();
        harness.nodes[2] = harness.open(2, small_checkpoints).await;
        let mut status = harness.nodes[2].watch_status();
        status
            .wait_for(|s| s.state == NodeState::Synced)
            .await
            .unwrap();
        assert_eq!(harness.nodes[2].last_visible(), last);
        // Nothing was applied twice: recovery certified from the checkpoint
        // without applying again.
        assert_eq!(harness.recorders[2].applied_txns().len(), applied_before);
        let mut txn = harness.nodes[2].begin().await.unwrap();
        txn.put("k0", "again").unwrap();
        assert!(matches!(
            txn.commit().await.unwrap(),
            CommitOutcome::Committed { .. }
        ));
    })
    .await;
}

/// An ordering handle that orders every submission but never answers it:
/// what a follower sees when the leader's reply is lost with a connection
/// and every retry goes into a dead link.
struct LostAnswers(Arc<dyn TotalOrder>);

impl TotalOrder for LostAnswers {
    fn node_id(&self) -> NodeId {
        self.0.node_id()
    }

    fn submit(&self, frame: Bytes) -> certus::order::OrderFuture<'_, ()> {
        Box::pin(async move {
            self.0.submit(frame).await?;
            std::future::pending().await
        })
    }

    fn sync_point(&self) -> certus::order::OrderFuture<'_, Seqno> {
        self.0.sync_point()
    }

    fn subscribe(
        &self,
        after: Seqno,
    ) -> Result<Box<dyn certus::order::EventStream>, certus::order::OrderError> {
        self.0.subscribe(after)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_verdict_settles_a_commit_whose_submission_never_returns() {
    bounded(async {
        let hub = InProcessOrder::new(InProcessConfig::default(), [NodeId::new(1)]);
        let endpoint: Arc<dyn TotalOrder> = Arc::new(hub.endpoint(NodeId::new(1)).unwrap());
        let order = Arc::new(LostAnswers(endpoint));
        let recorder = Arc::new(Recorder::default());
        let node = Node::start(NodeConfig::new(NodeId::new(1)), order, recorder.clone())
            .await
            .unwrap();
        let mut txn = node.begin().await.unwrap();
        txn.put("k", "v").unwrap();
        let outcome = txn.commit().await.unwrap();
        assert!(
            matches!(outcome, CommitOutcome::Committed { .. }),
            "{outcome:?}"
        );
        assert_eq!(recorder.applied_txns().len(), 1);
    })
    .await;
}
