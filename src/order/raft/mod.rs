//! The networked ordering layer: openraft behind [`TotalOrder`].
//!
//! The raft log index is the global seqno. The log lives in checksummed
//! segment files, the newest entries cached in memory ([`log`]);
//! openraft's state machine ([`delivery`]) only publishes how far the log
//! is applied, and each node's event feed ([`stream`]) reads the entries
//! from the log. Peers talk over [`crate::net`]. The decisions taken on
//! every heartbeat and for flow control are pure rules ([`monitor`] and
//! [`flow`], each a `rule.rs` beside its `shell.rs`), and so is which peer
//! may ask what ([`admission`]). The leader raises the cluster protocol
//! through the log once every member speaks a newer one ([`upgrade`]). No
//! openraft type
//! appears in this module's public items.
//!
//! [`TotalOrder`]: crate::order::TotalOrder

mod admission;
mod config;
mod delivery;
mod flow;
mod forwarder;
mod log;
mod membership;
mod messages;
mod monitor;
mod network;
mod order;
mod service;
mod stream;
mod sync_points;
mod types;
mod upgrade;

pub use config::RaftOrderConfig;
pub use log::{LogStats, SyncMode};
pub use order::{RaftOrder, StartError};
pub(crate) use service::judge_request;

#[cfg(test)]
mod conformance;
#[cfg(all(test, feature = "certs"))]
mod hostile_tests;
