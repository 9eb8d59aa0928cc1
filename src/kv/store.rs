//! [`KvStore`]: the reference key-value store, embedding a [`Node`] through
//! its public API exactly as a third-party engine would.

use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use tokio::task::JoinHandle;

use super::engine::Engine;
use super::error::KvError;
use super::execution::Executor;
use super::gc::GcStats;
use super::mvcc::{ExportChunk, MvccStore};
use super::transaction::KvTransaction;
use crate::ids::{NodeId, Seqno};
use crate::node::{Node, NodeConfig, OperationHandle, TxnOptions};
use crate::order::TotalOrder;

/// How the store runs.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreConfig {
    /// The replication node's settings.
    pub node: NodeConfig,
    /// Run a garbage-collection step every this many applied positions.
    pub gc_every: u64,
    /// Keys examined per collection step.
    pub gc_budget: usize,
    /// Keys queued for collection before falling back to a full scan.
    pub gc_queue: usize,
}

impl StoreConfig {
    /// Defaults for `node_id`.
    #[must_use]
    pub fn new(node_id: NodeId) -> Self {
        StoreConfig {
            node: NodeConfig::new(node_id),
            gc_every: 1024,
            gc_budget: 4096,
            gc_queue: 1 << 16,
        }
    }
}

/// A replicated, multi-version key-value store. Cheap to clone.
#[derive(Clone, Debug)]
pub struct KvStore {
    inner: Arc<StoreInner>,
}

#[derive(Debug)]
struct StoreInner {
    node: Node,
    mvcc: Arc<MvccStore>,
    gc_budget: usize,
    gc_task: Mutex<Option<JoinHandle<()>>>,
}

impl StoreInner {
    fn take_gc_task(&self) -> Option<JoinHandle<()>> {
        self.gc_task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

impl Drop for StoreInner {
    fn drop(&mut self) {
        if let Some(task) = self.take_gc_task() {
            task.abort();
        }
    }
}

impl KvStore {
    /// Opens the store on `engine`, recovering its replicated state, and
    /// joins the cluster through `order`.
    ///
    /// # Errors
    /// [`KvError::Node`] when the node cannot start (see [`Node::start`]).
    pub async fn open(
        config: StoreConfig,
        engine: Arc<dyn Engine>,
        order: Arc<dyn TotalOrder>,
    ) -> Result<KvStore, KvError> {
        Self::start(config, engine, order, None).await
    }

    /// As [`KvStore::open`], running the ordered operations of
    /// [`KvStore::operation`] with `executor`.
    ///
    /// # Errors
    /// As [`KvStore::open`].
    pub async fn open_with(
        config: StoreConfig,
        engine: Arc<dyn Engine>,
        order: Arc<dyn TotalOrder>,
        executor: Arc<dyn Executor>,
    ) -> Result<KvStore, KvError> {
        Self::start(config, engine, order, Some(executor)).await
    }

    async fn start(
        config: StoreConfig,
        engine: Arc<dyn Engine>,
        order: Arc<dyn TotalOrder>,
        executor: Option<Arc<dyn Executor>>,
    ) -> Result<KvStore, KvError> {
        crate::node::ConfigError::require_positive(&[
            ("gc_every", config.gc_every),
            ("gc_budget", config.gc_budget as u64),
            ("gc_queue", config.gc_queue as u64),
        ])
        .map_err(|err| KvError::Node(err.into()))?;
        let mut mvcc = MvccStore::new(engine, config.gc_queue);
        if let Some(executor) = executor {
            mvcc = mvcc.with_executor(executor);
        }
        let mvcc = Arc::new(mvcc);
        let node = Node::start(config.node, order, mvcc.clone()).await?;
        let gc_task = tokio::spawn(gc_loop(
            node.clone(),
            mvcc.clone(),
            config.gc_every,
            config.gc_budget,
        ));
        let inner = StoreInner {
            node,
            mvcc,
            gc_budget: config.gc_budget,
            gc_task: Mutex::new(Some(gc_task)),
        };
        Ok(KvStore {
            inner: Arc::new(inner),
        })
    }

    /// The replication node underneath.
    #[must_use]
    pub fn node(&self) -> &Node {
        &self.inner.node
    }

    /// Begins a transaction with the node's defaults (causal reads, snapshot
    /// isolation).
    ///
    /// # Errors
    /// See [`Node::begin_with`].
    pub async fn begin(&self) -> Result<KvTransaction, KvError> {
        self.begin_with(TxnOptions::default()).await
    }

    /// Begins a transaction.
    ///
    /// # Errors
    /// See [`Node::begin_with`].
    pub async fn begin_with(&self, options: TxnOptions) -> Result<KvTransaction, KvError> {
        let txn = self.inner.node.begin_with(options).await?;
        Ok(KvTransaction::new(txn, self.inner.mvcc.clone()))
    }

    /// Starts an ordered operation carrying `payload` for the executor
    /// this store was opened with; see [`Node::operation`].
    ///
    /// # Errors
    /// See [`Node::operation`].
    pub fn operation(&self, payload: impl Into<Bytes>) -> Result<OperationHandle, KvError> {
        Ok(self.inner.node.operation(payload)?)
    }

    /// Every live key on this node at its applied watermark, with that
    /// watermark. No causal wait: this is the local state, for comparing
    /// replicas.
    ///
    /// # Errors
    /// [`KvError`] from the node or the engine.
    pub async fn dump(&self) -> Result<(Seqno, Vec<(Bytes, Bytes)>), KvError> {
        let txn = self
            .inner
            .node
            .begin_with(TxnOptions::default().causal(false))
            .await?;
        let read_view = txn.read_view();
        let entries = self.inner.mvcc.snapshot(read_view)?;
        drop(txn);
        Ok((read_view, entries))
    }

    /// Live keys as of `read_view` after `after`, for a state transfer; see
    /// [`MvccStore::export_chunk`]. Hold a transaction whose read view is at
    /// or below `read_view` meanwhile, so garbage collection keeps them.
    ///
    /// # Errors
    /// [`KvError::Engine`].
    pub fn export_chunk(
        &self,
        read_view: Seqno,
        after: Option<&[u8]>,
        max_keys: usize,
        max_bytes: usize,
    ) -> Result<ExportChunk, KvError> {
        Ok(self
            .inner
            .mvcc
            .export_chunk(read_view, after, max_keys, max_bytes)?)
    }

    /// Runs one garbage-collection step now, at the node's read horizon.
    ///
    /// # Errors
    /// [`KvError::Engine`].
    pub fn collect_garbage(&self) -> Result<GcStats, KvError> {
        let horizon = self.inner.node.read_horizon();
        Ok(self
            .inner
            .mvcc
            .collect_garbage(horizon, self.inner.gc_budget)?)
    }

    /// Stops garbage collection and the node, and waits until neither
    /// touches the engine any more. Open transactions still hold it until
    /// they are dropped.
    pub async fn shutdown(&self) {
        if let Some(task) = self.inner.take_gc_task() {
            task.abort();
            if let Err(err) = task.await
                && err.is_panic()
            {
                std::panic::resume_unwind(err.into_panic());
            }
        }
        self.inner.node.shutdown().await;
        let mvcc = self.inner.mvcc.clone();
        if let Some(Err(err)) = crate::task::blocking(move || mvcc.sync()).await {
            tracing::warn!(error = %err, "syncing the store at shutdown failed");
        }
    }
}

/// Collects garbage every `every` applied positions, at the read horizon.
async fn gc_loop(node: Node, mvcc: Arc<MvccStore>, every: u64, budget: usize) {
    let mut status = node.watch_status();
    loop {
        let due = node.last_visible().get().saturating_add(every);
        let reached = status.wait_for(|s| s.last_visible.get() >= due || s.state.is_terminal());
        match reached.await {
            Ok(s) if !s.state.is_terminal() => {}
            _ => return,
        }
        let (step, horizon) = (mvcc.clone(), node.read_horizon());
        // Engine writes block: off the async threads, like apply.
        match crate::task::blocking(move || step.collect_garbage(horizon, budget)).await {
            Some(Ok(stats)) => tracing::trace!(?stats, "garbage collection step"),
            Some(Err(err)) => tracing::warn!(error = %err, "garbage collection step failed"),
            None => return,
        }
    }
}
