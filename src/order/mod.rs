//! Ordering: total-order broadcast of write-sets and membership views.
//!
//! The node depends only on the [`TotalOrder`] trait; state transfer and
//! the daemon also use [`Cluster`] (membership and peer calls) beside it.
//! [`InProcessOrder`] is a deterministic implementation of both for nodes
//! in one process; [`RaftOrder`] puts consensus behind the same traits.

mod cluster;
mod error;
mod in_process;
mod raft;
mod total_order;
mod view;

pub use cluster::{Cluster, Member};
pub use error::{OrderError, PeerError, RemoteError};
pub use in_process::{InProcessConfig, InProcessEndpoint, InProcessOrder};
pub(crate) use raft::judge_request;
pub use raft::{LogStats, RaftOrder, RaftOrderConfig, StartError, SyncMode};
pub use total_order::{
    ConsumerState, Entry, Event, EventStream, FlowControlStats, OrderFuture, PeerFuture,
    PeerService, TotalOrder,
};
pub use view::View;
