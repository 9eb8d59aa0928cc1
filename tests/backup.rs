//! Backup and restore end to end: write, back up a running node (nothing
//! pauses), write more, restore the file into every node of a fresh
//! cluster, and the restored cluster holds exactly the state at the
//! backup's position, and takes writes. A damaged file is refused whole.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.

mod common;

use certus::server::backup::{self, BackupError};
use certus::server::{DaemonConfig, EngineKind};
use common::resp::RespCluster;
use redis::{Connection, cmd};

fn set(con: &mut Connection, key: &str, value: &str) {
    let reply: String = cmd("SET").arg(key).arg(value).query(con).unwrap();
    assert_eq!(reply, "OK");
}

fn get(con: &mut Connection, key: &str) -> Option<String> {
    cmd("GET").arg(key).query(con).unwrap()
}

fn durable(config: &mut DaemonConfig) {
    config.engine = EngineKind::Redb;
}

#[test]
fn a_backup_restores_into_a_new_cluster_at_its_position() {
    let files = tempfile::tempdir().unwrap();
    let file = files.path().join("cluster.backup");
    let source = RespCluster::start(3);
    let mut con = source.client(0);
    for n in 0..100 {
        set(&mut con, &format!("k{n}"), &format!("a{n}"));
    }
    let ttl: String = cmd("SET")
        .arg("session")
        .arg("s")
        .arg("EX")
        .arg(3600)
        .query(&mut con)
        .unwrap();
    assert_eq!(ttl, "OK");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let addr = source.client_addr(1).to_string();
    let summary = runtime.block_on(backup::fetch(&addr, None, &file)).unwrap();
    // 101 keys, and the expiry index's row for the one with a TTL.
    assert_eq!(summary.keys, 102);
    assert!(file.exists() && !file.with_extension("tmp").exists());
    // After the backup: none of this may be restored.
    set(&mut con, "k0", "changed");
    set(&mut con, "k200", "new");
    let _: i64 = cmd("DEL").arg("k5").query(&mut con).unwrap();
    source.shutdown();

    // A damaged copy is refused whole, before anything is written.
    let damaged = files.path().join("damaged.backup");
    let mut bytes = std::fs::read(&file).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    std::fs::write(&damaged, bytes).unwrap();
    let scratch = files.path().join("scratch");
    let mut config = DaemonConfig::new(1, scratch.clone(), "127.0.0.1:0", "127.0.0.1:0");
    config.engine = EngineKind::Redb;
    let refused = backup::restore(&config, &damaged).unwrap_err();
    assert!(
        matches!(refused, BackupError::Frame(_) | BackupError::Corrupt(_)),
        "{refused}"
    );
    assert!(!scratch.exists(), "a refused restore wrote something");

    let restore = |config: &DaemonConfig| {
        let restored = backup::restore(config, &file).unwrap();
        assert_eq!(restored.keys, 102);
        // Only into an empty data directory.
        let again = backup::restore(config, &file).unwrap_err();
        assert!(matches!(again, BackupError::NotEmpty(_)), "{again}");
    };
    let target = RespCluster::start_prepared(3, durable, Vec::new(), &restore);
    for node in 0..3 {
        // The new cluster's time goes on from the backup's, from its first
        // position: a TTL read before anything was written is still right.
        let time = target.status(node).visible_time;
        assert!(time >= summary.time, "{time:?} before {:?}", summary.time);
    }
    for node in 0..3 {
        let mut con = target.client(node);
        assert_eq!(get(&mut con, "k0").as_deref(), Some("a0"));
        assert_eq!(get(&mut con, "k5").as_deref(), Some("a5"));
        assert_eq!(get(&mut con, "k99").as_deref(), Some("a99"));
        assert_eq!(get(&mut con, "k200"), None);
        let size: i64 = cmd("DBSIZE").query(&mut con).unwrap();
        assert_eq!(size, 101);
        let ttl: i64 = cmd("TTL").arg("session").query(&mut con).unwrap();
        assert!((3000..=3600).contains(&ttl), "ttl {ttl}");
    }
    let mut con = target.client(2);
    set(&mut con, "after", "restore");
    let mut other = target.client(0);
    assert_eq!(get(&mut other, "after").as_deref(), Some("restore"));
    target.shutdown();
}
