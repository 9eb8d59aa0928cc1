//! Node configuration.

use std::time::Duration;

use super::error::{ConfigError, Error};
use crate::certify::CertConfig;
use crate::ids::NodeId;

/// How one node runs. [`NodeConfig::new`] gives production defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeConfig {
    /// This node's identity, unique in the cluster.
    pub node_id: NodeId,
    /// Cluster-wide certification settings; must match on every node.
    pub cert: CertConfig,
    /// Apply worker tasks. Each applies up to 32 ready write-sets in one
    /// engine call ([`crate::apply::Applier::apply_batch`]).
    pub apply_workers: usize,
    /// Positions that may wait between delivery and the commit watermark.
    /// When full, the node stops taking deliveries, which holds back the
    /// whole cluster through the ordering layer's flow control.
    pub apply_queue: usize,
    /// Bytes of write-sets that may wait between delivery and the commit
    /// watermark (at least one is always taken): with `apply_queue`, what
    /// holds back delivery, and with it the cluster.
    pub apply_queue_bytes: usize,
    /// Local transactions that may be committing at once.
    pub max_inflight_commits: usize,
    /// Largest encoded write-set accepted, in bytes.
    pub max_write_set_bytes: usize,
    /// Positions between certification checkpoints handed to the engine.
    pub checkpoint_interval: u64,
    /// Bytes of delivered write-sets after which a checkpoint is taken
    /// even before `checkpoint_interval` positions: a restart replays at
    /// most about this much of the log, and the log can be purged up to
    /// the last checkpoint ([`crate::order::TotalOrder::release`]).
    pub checkpoint_bytes: u64,
    /// Whether transactions wait to see every commit made anywhere in the
    /// cluster before they begin (causal reads, Galera's `wsrep_sync_wait=1`).
    pub causal_reads: bool,
    /// How long a causal wait or a commit waits before giving up. A commit
    /// that gives up reports [`Error::OutcomeUnknown`].
    pub wait_timeout: Duration,
    /// This process's incarnation, stamped into transaction ids. `None`
    /// asks the ordering layer for one above every earlier incarnation and
    /// the wall clock ([`crate::order::TotalOrder::next_epoch`]).
    pub epoch: Option<u64>,
}

impl NodeConfig {
    /// Defaults for `node_id`.
    #[must_use]
    pub fn new(node_id: NodeId) -> Self {
        NodeConfig {
            node_id,
            cert: CertConfig::default(),
            apply_workers: 4,
            apply_queue: 4096,
            apply_queue_bytes: 256 << 20,
            max_inflight_commits: 4096,
            max_write_set_bytes: 32 << 20,
            checkpoint_interval: 16_384,
            checkpoint_bytes: 64 << 20,
            causal_reads: true,
            wait_timeout: Duration::from_secs(30),
            epoch: None,
        }
    }

    /// Checks every setting is usable.
    ///
    /// # Errors
    /// [`Error::Config`] naming the first bad setting.
    pub fn validate(&self) -> Result<(), Error> {
        ConfigError::require_positive(&[
            ("cert.window", self.cert.window),
            ("cert.index_bytes", self.cert.index_bytes),
            ("apply_workers", self.apply_workers as u64),
            ("apply_queue", self.apply_queue as u64),
            ("max_inflight_commits", self.max_inflight_commits as u64),
            ("max_write_set_bytes", self.max_write_set_bytes as u64),
            ("checkpoint_interval", self.checkpoint_interval),
            ("checkpoint_bytes", self.checkpoint_bytes),
            ("apply_queue_bytes", self.apply_queue_bytes as u64),
        ])?;
        if self.max_write_set_bytes > u32::MAX as usize {
            return Err(ConfigError::AboveMax {
                setting: "max_write_set_bytes",
                max: u64::from(u32::MAX),
            }
            .into());
        }
        if self.apply_queue < self.apply_workers {
            return Err(ConfigError::QueueBelowWorkers.into());
        }
        if self.wait_timeout.is_zero() {
            return Err(ConfigError::NotPositive {
                setting: "wait_timeout",
            }
            .into());
        }
        Ok(())
    }
}
