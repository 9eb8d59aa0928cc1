//! The raft log on disk: segment files of checksummed records and a small
//! state file ([`files`]) on a [`crate::disk`] (the operating system's, or
//! a simulation's), and the store openraft drives, which keeps the retained
//! entries and syncs appends in groups ([`store`]).

mod files;
mod index;
mod store;

pub(crate) use files::{read_state_file, write_state_file};
pub(crate) use store::{LogLimits, LogStore, ReadError};
pub use store::{LogStats, SyncMode};
