//! Ordering: total-order broadcast of write-sets and membership views.
//!
//! The node depends only on the [`TotalOrder`] trait. [`InProcessOrder`] is
//! a deterministic implementation for nodes in one process; the networked
//! implementation puts consensus behind the same trait.

mod error;
mod in_process;
mod raft;
mod total_order;
mod view;

pub use error::OrderError;
pub use in_process::{InProcessConfig, InProcessEndpoint, InProcessOrder};
pub use raft::{Member, RaftOrder, RaftOrderConfig, StartError, SyncMode};
pub use total_order::{
    Entry, Event, EventStream, FlowControlStats, OrderFuture, PeerFuture, PeerService, TotalOrder,
};
pub use view::View;
