//! The reference key-value store.
//!
//! It is built only on certus's public API ([`crate::node`],
//! [`crate::apply::Applier`], [`crate::order::TotalOrder`]), as any
//! third-party engine would embed it. Data lives in an [`Engine`] as
//! versions tagged with the seqno that wrote them ([`MvccStore`]): a
//! transaction reads the newest version at or below its read view, its own
//! writes take precedence, deletes leave tombstones, the applied watermark
//! and the certification checkpoint are written by one atomic batch, and
//! versions older than every open read view are garbage-collected.
//!
//! Ordered operations run through an [`Executor`] the embedding program
//! supplies ([`KvStore::open_with`]); an [`Execution`] and a
//! [`KvTransaction`] are both a [`Keyspace`], so code written against that
//! trait runs in either.

mod engine;
mod error;
mod execution;
mod faulty;
#[cfg(feature = "fjall")]
mod fjall_engine;
mod gc;
mod keyspace;
mod layout;
mod memory;
mod mvcc;
#[cfg(feature = "redb")]
mod redb_engine;
#[cfg(feature = "rocksdb")]
mod rocks;
mod store;
mod transaction;

pub use engine::{BatchOp, Engine, WriteBatch};
pub use error::{EngineError, KvError};
pub use execution::{Execution, Executor};
pub use faulty::{Fault, FaultSwitch, FaultyEngine};
#[cfg(feature = "fjall")]
pub use fjall_engine::FjallEngine;
pub use gc::GcStats;
pub use keyspace::Keyspace;
#[cfg(feature = "server")]
pub(crate) use keyspace::successor as successor_key;
pub use memory::MemoryEngine;
pub use mvcc::{ExportChunk, MvccStore};
#[cfg(feature = "redb")]
pub use redb_engine::RedbEngine;
#[cfg(feature = "rocksdb")]
pub use rocks::RocksEngine;
pub use store::{KvStore, StoreConfig};
pub use transaction::KvTransaction;
