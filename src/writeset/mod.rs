//! Write-sets: the unit of replication.
//!
//! A write-set carries its origin node, the transaction's id on that node, the
//! read view it executed against, the keys it touches with their
//! [`KeyKind`], its row operations, and (for serializable transactions) the
//! keys it read. It travels as a [`crate::frame`] with a postcard body.
//!
//! An [`Operation`] is the other thing a node can order: an opaque payload
//! with the keys it will read and write, executed by every node at its
//! position instead of carrying row changes.

mod builder;
mod key;
mod operation;
mod write_set;

pub use builder::WriteSetBuilder;
pub use key::{Isolation, KeyKind};
pub use operation::{Operation, OperationBuilder, Scope};
pub use write_set::{KeyEntry, RowOp, WriteSet};
