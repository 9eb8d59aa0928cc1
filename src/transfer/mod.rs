//! Full state transfer (SST): how a node whose missing positions are gone
//! from every log gets a complete copy of the data from a donor.
//!
//! ```text
//!  joiner                                   donor (a synced voter)
//!  ──────                                   ─────
//!  Begin ─────────────────────────────────▶ open a read view; the node
//!                                           hands over its certification
//!                                           checkpoint at its last certified
//!                                           position P and turns *donor*;
//!  ◀──── Begun { id, P, checkpoint } ────── wait until P is applied
//!  wipe the store, mark it incomplete
//!  Chunk { after } ───────────────────────▶ live keys as of P after `after`
//!  ◀──── Chunk { entries, next } ────────── (each message its own crc32 frame)
//!  store them as versions at P; repeat
//!  End ───────────────────────────────────▶ release the read view; donor
//!  ◀──── Ended { keys, crc } ────────────── is synced again
//!  compare the whole-transfer digest;
//!  applied = P, checkpoint stored, mark removed (one durable batch)
//! ```
//!
//! The joiner then starts its node as after a restart: the certifier
//! resumes from the checkpoint at P and the log delivers P+1 onwards, so it
//! certifies exactly as the donor does. The copy is logical (live rows read
//! through MVCC at P), so any engine can give or take one, and the donor
//! serves clients throughout. Messages ride the ordering layer's peer
//! connections ([`crate::order::PeerService`]).

mod donor;
mod joiner;
mod messages;

pub use donor::Donor;
pub use joiner::{Corruption, TransferError, fetch};
#[cfg(feature = "server")]
pub(crate) use messages::Digest as RowDigest;
