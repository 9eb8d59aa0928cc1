//! Apply: certified write-sets are applied by several workers in parallel
//! where their keys do not depend on each other, and committed strictly in
//! seqno order.
//!
//! [`ApplyScheduler`] makes the decisions (sans-IO); the node's worker pool
//! carries them out against the engine's [`Applier`].

mod applier;
pub(crate) mod pool;
mod scheduler;

pub use applier::{Applier, ApplyError, Recovered};
pub use scheduler::{ApplyScheduler, Job};
