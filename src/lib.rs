#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod apply;
mod cause;
pub mod certify;
#[cfg(feature = "check")]
pub mod check;
pub mod clock;
mod disk;
pub mod frame;
#[doc(hidden)]
pub mod fuzzing;
mod histogram;
mod ids;
pub mod kv;
pub mod net;
pub mod node;
pub mod order;
pub mod protocol;
#[cfg(feature = "server")]
pub mod server;
pub mod simulation;
mod task;
pub mod transfer;
pub mod writeset;

pub use cause::Cause;
pub use histogram::{Histogram, HistogramSnapshot};
pub use ids::{ClusterTime, NodeId, Seqno, TxnId};
