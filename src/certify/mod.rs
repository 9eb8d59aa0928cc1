//! Certification: deciding commit or abort for each write-set, identically on
//! every node, from the delivery order alone.
//!
//! The rule (default, snapshot isolation with first-committer-wins): a
//! write-set delivered at seqno `s` with read view `r` aborts when one of its
//! keys conflicts (per Galera's [`matrix`](relation)) with a write-set that
//! committed at a seqno in `(r, s)`, whichever node it came from. Serializable
//! write-sets also abort when a key they read was written in `(r, s)`. A read
//! view more than [`CertConfig::window`] behind `s` aborts with a distinct
//! reason, and a repeated (origin, transaction id) reports its first verdict.

mod certifier;
mod checkpoint;
mod dedup;
mod digest;
mod index;
mod matrix;
mod verdict;

pub use certifier::{CertConfig, CertStats, Certifier};
pub use checkpoint::CertCheckpoint;
pub use digest::CertDigest;
pub use matrix::{Relation, relation};
pub use verdict::{AbortReason, FirstOutcome, Verdict};

#[cfg(test)]
mod tests;
