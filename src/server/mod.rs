//! The Redis-protocol (RESP) front end of the reference store.

pub mod resp;
