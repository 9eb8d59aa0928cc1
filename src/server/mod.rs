//! The Redis-protocol (RESP) front end of the reference store, and
//! [`Daemon`], a complete node as `certusd` runs it.
//!
//! Each client connection is a session ([`session`]): commands that only
//! read run on a causal snapshot of this node; commands that write, and
//! `MULTI`/`EXEC` blocks, become ordered operations every node executes at
//! their position ([`executor`]), so no command ever fails on a conflict;
//! `WATCH` is the operation's condition. Keys expire by the cluster time
//! ([`db`], [`reaper`]). `INFO` reports Redis's sections and the
//! replication state under Galera's `wsrep_` names, and an HTTP port
//! answers load balancers' health checks.

mod acl;
pub mod backup;
mod blocking;
mod clients;
mod commands;
mod config;
mod connection;
mod daemon;
mod db;
mod executor;
mod glob;
mod health;
mod info;
mod metrics;
mod params;
mod pubsub;
mod reaper;
pub mod resp;
mod scripting;
mod session;
mod supervisor;
mod tls;

pub use acl::AclError;
pub use config::{
    ClientTlsFiles, DaemonConfig, DaemonConfigError, EngineKind, IsolationSetting, SyncSetting,
};
pub use daemon::{Daemon, DaemonError, Listeners, engine_opener};
pub use supervisor::EngineOpener;
pub use tls::TlsAuthClients;

/// Puts the ordering log of the node whose data directory is `data_dir` on
/// a disk that fails on command: its writes fail with `ENOSPC` while
/// `switch` says [`crate::kv::Fault::DiskFull`], its syncs with `EIO`
/// while it says [`crate::kv::Fault::Io`] (certusd's
/// `CERTUS_ENGINE_FAULT_FILE`, for the consistency suite). For testing
/// only.
#[cfg(feature = "failpoints")]
pub fn fail_log_disk(data_dir: &std::path::Path, switch: crate::kv::FaultSwitch) {
    let disk = crate::disk::FaultyDisk(switch);
    crate::disk::mount(&data_dir.join("log"), std::sync::Arc::new(disk));
}
