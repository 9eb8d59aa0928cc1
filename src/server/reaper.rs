//! Expiry in the order: the leader's node removes keys whose deadline
//! passed, and keeps the cluster time moving while keys wait to expire.
//!
//! A key is dead from the first position whose cluster time reaches its
//! deadline (every read filters it out), but two things need an ordered
//! operation: reclaiming its storage, and the cluster time itself, which
//! only moves when the leader stamps something. So the node that leads
//! the ordering layer looks, every [`TICK`], at the expiry index of its
//! own snapshot; keys due by its clock go in one operation that removes
//! each key still due at its deadline (every node checks that at the
//! operation's position, against the cluster time there). While keys
//! wait to expire and nothing else is ordered, it orders an empty
//! operation at most every [`IDLE_TICK`], so `TTL` counts down and a
//! deadline is reached on an idle cluster too.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::db;
use super::executor::{Batch, BatchKind};
use crate::ids::NodeId;
use crate::kv::{KvError, KvStore};
use crate::node::TxnOptions;
use crate::order::Cluster;

/// How often the leader's node looks for keys due.
pub(crate) const TICK: Duration = Duration::from_millis(25);
/// How far the cluster time may trail the leader's clock, while keys wait
/// to expire, before an empty operation moves it.
pub(crate) const IDLE_TICK: Duration = Duration::from_millis(250);
/// Keys removed by one operation, at most.
const BATCH: usize = 256;

/// Runs until `shutdown`: on this node while it leads.
pub(crate) async fn run(
    node: NodeId,
    stores: watch::Receiver<Option<KvStore>>,
    order: Arc<dyn Cluster>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backlog = false;
    loop {
        // A full batch leaves more keys due: the next pass starts at once.
        let pause = if backlog { Duration::ZERO } else { TICK };
        tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => return,
            () = tokio::time::sleep(pause) => {}
        }
        backlog = false;
        if order.leader() != Some(node) {
            continue;
        }
        let Some(store) = stores.borrow().clone() else {
            continue;
        };
        match reap(node, &store).await {
            Ok(full) => backlog = full,
            Err(err) => tracing::debug!(error = %err, "expiry pass failed; the next tick retries"),
        }
    }
}

/// One pass: orders the removal of the keys due now by this node's clock,
/// or an empty operation when the cluster time lags while keys wait.
/// Returns whether it removed a full batch (more may be due).
async fn reap(node: NodeId, store: &KvStore) -> Result<bool, KvError> {
    let now = crate::clock::now(node).as_millis();
    let mut txn = store
        .begin_with(TxnOptions::default().causal(false))
        .await?;
    let (start, end) = db::expiries_due(now);
    let due: Vec<(bytes::Bytes, u64)> = txn
        .scan(&start, &end, BATCH)?
        .into_iter()
        .filter_map(|(stored, _)| db::parse_expiry_key(&stored))
        .collect();
    let lag = now.saturating_sub(txn.time().as_millis());
    let waiting = !due.is_empty() || {
        let (all, all_end) = db::all_expiries();
        !txn.scan(&all, &all_end, 1)?.is_empty()
    };
    drop(txn);
    let full = due.len() >= BATCH;
    let kind = if !due.is_empty() {
        BatchKind::Expire(due)
    } else if waiting && lag >= IDLE_TICK.as_millis() as u64 {
        BatchKind::Pipeline(Vec::new())
    } else {
        return Ok(false);
    };
    let batch = Batch { resp3: false, kind };
    batch.submit(store, None).await?;
    Ok(full)
}
