//! Write-sets: the unit of replication.
//!
//! A write-set carries its origin node, the transaction's id on that node, the
//! read view it executed against, the keys it touches with their
//! [`KeyKind`], its row operations, and (for serializable transactions) the
//! keys it read. It travels as a [`crate::frame`] with a postcard body.

mod builder;
mod key;
mod write_set;

pub use builder::WriteSetBuilder;
pub use key::{Isolation, KeyKind};
pub use write_set::{KeyEntry, RowOp, WriteSet};
