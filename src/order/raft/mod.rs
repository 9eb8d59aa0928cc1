//! The networked ordering layer: openraft behind [`TotalOrder`].
//!
//! The raft log index is the global seqno. The log lives in checksummed
//! segment files ([`log_files`]) kept in memory for reads ([`log_store`]);
//! openraft's state machine ([`delivery`]) only publishes how far the log
//! is applied, and each node's event feed ([`stream`]) reads the entries
//! from the log. Peers talk over [`crate::net`]. No openraft type appears
//! in this module's public items.
//!
//! [`TotalOrder`]: crate::order::TotalOrder

mod config;
mod delivery;
mod flow;
mod flow_control;
mod forwarder;
mod liveness;
mod log_files;
mod log_store;
mod membership;
mod messages;
mod monitor;
mod network;
mod order;
mod service;
mod stream;
mod sync_points;
mod types;

pub use config::RaftOrderConfig;
pub use log_store::SyncMode;
pub use membership::Member;
pub use order::{RaftOrder, StartError};

#[cfg(test)]
mod conformance;
