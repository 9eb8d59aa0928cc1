//! The node: the public API a storage engine embeds.
//!
//! [`Node::begin`] opens a [`Transaction`] whose read view is the node's
//! visible watermark (after a causal wait, by default). The engine reads at
//! that view, records changes and keys, and calls [`Transaction::commit`],
//! which replicates the write-set, waits for certification, and returns once
//! the commit is visible on this node. Replicated write-sets from every node reach the
//! engine through its [`crate::apply::Applier`].
//!
//! [`Node::operation`] is the other way to change data: an
//! [`OperationHandle`] declares the keys of an opaque payload and submits
//! it; every node's applier executes it at its position in the total order
//! ([`crate::apply::Applier::execute`]) and the submitter gets the output
//! its own node computed. An operation never conflicts unless it watches a
//! key that changed.

mod commits;
mod config;
mod core;
mod error;
mod handle;
mod operation;
mod outcome;
mod read_views;
mod runtime;
mod shared;
mod state;
mod status;
mod transaction;

pub use config::NodeConfig;
pub use error::{ConfigError, Error, Failure};
pub use handle::{DonorGuard, Node, NodeTimings};
pub use operation::{OperationHandle, OperationOutcome};
pub use outcome::{CommitOutcome, Conflict};
pub use state::NodeState;
pub use status::Status;
pub use transaction::{Transaction, TxnOptions};
