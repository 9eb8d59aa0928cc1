//! The Redis-protocol (RESP) front end of the reference store, and
//! [`Daemon`], a complete node as `certusd` runs it.
//!
//! Each client connection is a session ([`session`]) that maps commands
//! onto store transactions: one transaction per command, `MULTI`/`EXEC` as
//! one transaction, `WATCH` as a serializable transaction whose conflict is
//! `EXEC`'s nil reply. `INFO` reports the replication state under Galera's
//! `wsrep_` names, and an HTTP port answers load balancers' health checks.

mod command;
mod config;
mod connection;
mod daemon;
mod exec;
mod health;
mod info;
pub mod resp;
mod session;
mod supervisor;

pub use config::{DaemonConfig, DaemonConfigError, EngineKind, IsolationSetting, SyncSetting};
pub use daemon::{Daemon, DaemonError, Listeners};
