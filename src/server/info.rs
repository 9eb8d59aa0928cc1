//! The `INFO` reply: Redis's `field:value` lines, with a replication section
//! named after Galera's `wsrep_%` status variables so operators find the
//! fields they know.

use std::fmt::Write as _;

use crate::kv::KvStore;
use crate::node::{NodeState, Status};
use crate::order::FlowControlStats;

/// The `INFO` text for `section` (`None`, `all`, `everything` or `default`
/// for every section).
pub(crate) fn render(store: &KvStore, section: Option<&str>) -> String {
    let status = store.node().status();
    let want = |name: &str| {
        matches!(section, None | Some("all" | "everything" | "default")) || section == Some(name)
    };
    let mut out = String::new();
    if want("server") {
        server(&mut out, &status);
    }
    if want("replication") {
        replication(&mut out, &status, store.node().flow_control());
    }
    out
}

fn server(out: &mut String, status: &Status) {
    let _ = write!(
        out,
        "# Server\r\ncertus_version:{}\r\nnode_id:{}\r\n\r\n",
        env!("CARGO_PKG_VERSION"),
        status.node_id.get()
    );
}

/// Galera's name for a node state (`wsrep_local_state_comment`).
pub(crate) fn state_comment(state: NodeState) -> &'static str {
    match state {
        NodeState::Joining => "Joining",
        NodeState::Joined => "Joined",
        NodeState::Synced => "Synced",
        NodeState::Donor => "Donor/Desynced",
        NodeState::NonPrimary => "Non-primary",
        NodeState::Failed => "Failed",
        NodeState::Closed => "Closed",
    }
}

/// The four watermarks under their certus names, after Galera's for the
/// three it has (docs/glossary.md maps them).
fn watermarks(status: &Status) -> [(&'static str, String); 7] {
    let (delivered, certified) = (status.last_delivered.get(), status.last_certified.get());
    let (applied, visible) = (status.last_applied.get(), status.last_visible.get());
    [
        ("wsrep_last_delivered", delivered.to_string()),
        ("wsrep_last_committed", certified.to_string()),
        ("wsrep_last_applied", visible.to_string()),
        ("certus_last_delivered", delivered.to_string()),
        ("certus_last_certified", certified.to_string()),
        ("certus_last_applied", applied.to_string()),
        ("certus_last_visible", visible.to_string()),
    ]
}

fn replication(out: &mut String, status: &Status, flow: FlowControlStats) {
    out.push_str("# Replication\r\n");
    let fields = standing(status)
        .into_iter()
        .chain(watermarks(status))
        .chain(counters(status, flow));
    for (name, value) in fields {
        let _ = write!(out, "{name}:{value}\r\n");
    }
    out.push_str("\r\n");
}

/// Where the node stands in the cluster.
fn standing(status: &Status) -> [(&'static str, String); 4] {
    let primary = status.view.as_ref().is_some_and(|v| v.primary);
    let cluster_size = status.view.as_ref().map_or(0, |v| v.members.len());
    let ready = status.state.accepts_writes();
    [
        ("wsrep_cluster_size", cluster_size.to_string()),
        (
            "wsrep_cluster_status",
            if primary { "Primary" } else { "non-Primary" }.into(),
        ),
        (
            "wsrep_local_state_comment",
            state_comment(status.state).into(),
        ),
        ("wsrep_ready", if ready { "ON" } else { "OFF" }.into()),
    ]
}

/// The digest, the counters, flow control and the failure, if any.
fn counters(status: &Status, flow: FlowControlStats) -> [(&'static str, String); 10] {
    [
        (
            "certus_cert_digest",
            status
                .cert_digest
                .map_or_else(|| "unknown".to_string(), |h| h.to_string()),
        ),
        ("wsrep_apply_queue", status.apply_queue.to_string()),
        ("wsrep_local_commits", status.local_commits.to_string()),
        (
            "wsrep_local_cert_failures",
            status.local_cert_failures.to_string(),
        ),
        ("wsrep_cert_index_size", status.cert_index_keys.to_string()),
        (
            "wsrep_flow_control_paused_ns",
            flow.paused.as_nanos().to_string(),
        ),
        ("wsrep_flow_control_sent", flow.pauses_sent.to_string()),
        (
            "wsrep_flow_control_active",
            if flow.active { "true" } else { "false" }.into(),
        ),
        ("wsrep_malformed_write_sets", status.malformed.to_string()),
        (
            "wsrep_failure",
            status
                .failure
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default()
                .replace(['\r', '\n'], " "),
        ),
    ]
}
