//! The `INFO` reply: Redis's sections with the fields clients and tools
//! read, and a replication section that also carries Galera's `wsrep_%`
//! status variables, so operators find the fields they know.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use super::db::Db;
use super::session::{REDIS_VERSION, SessionSettings};
use crate::kv::KvStore;
use crate::node::{NodeState, Status, TxnOptions};
use crate::order::FlowControlStats;
use crate::protocol::Protocols;

/// The sections `INFO` with no argument (or `default`) prints.
const DEFAULT: [&str; 9] = [
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "cluster",
    "keyspace",
];

/// The `INFO` text for `sections` (none, `default`, `all` or `everything`
/// for the default set). `store` is `None` while a state transfer loads.
pub(crate) async fn render(
    store: Option<&KvStore>,
    settings: &SessionSettings,
    sections: &[String],
) -> String {
    let everything = sections.is_empty()
        || sections
            .iter()
            .any(|s| matches!(s.as_str(), "all" | "everything" | "default"));
    let want = |name: &str| everything || sections.iter().any(|s| s == name);
    let keyspace = match (want("keyspace"), store) {
        (true, Some(store)) => keyspace(store).await,
        _ => Vec::new(),
    };
    let status = store.map(|s| s.node().status());
    let mut out = String::new();
    for name in DEFAULT.into_iter().filter(|name| want(name)) {
        let fields = match name {
            "keyspace" => keyspace.clone(),
            other => section(other, store, status.as_ref(), settings),
        };
        let title = match name {
            "cpu" => "CPU".to_string(),
            other => format!("{}{}", other[..1].to_ascii_uppercase(), &other[1..]),
        };
        let _ = write!(out, "# {title}\r\n");
        for (field, value) in fields {
            let _ = write!(out, "{field}:{value}\r\n");
        }
        out.push_str("\r\n");
    }
    out
}

/// The fields of one section other than `keyspace`.
fn section(
    name: &str,
    store: Option<&KvStore>,
    status: Option<&Status>,
    settings: &SessionSettings,
) -> Vec<(&'static str, String)> {
    match name {
        "server" => server(settings, status),
        "clients" => clients(settings),
        "memory" => memory(settings),
        "persistence" => persistence(store.is_none(), settings),
        "stats" => stats(settings),
        "replication" => match (store, status) {
            (Some(store), Some(status)) => replication(
                status,
                store.node().flow_control(),
                store.node().protocols(),
            ),
            _ => vec![("role", "master".into()), ("connected_slaves", "0".into())],
        },
        "cpu" => cpu(),
        "cluster" => vec![("cluster_enabled", "0".into())],
        _ => Vec::new(),
    }
}

fn server(settings: &SessionSettings, status: Option<&Status>) -> Vec<(&'static str, String)> {
    let uptime = settings.started.elapsed().as_secs();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let node = status.map_or(0, |s| s.node_id.get());
    vec![
        ("redis_version", REDIS_VERSION.into()),
        ("redis_git_sha1", "00000000".into()),
        ("redis_git_dirty", "0".into()),
        ("redis_mode", "standalone".into()),
        (
            "os",
            format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
        ),
        ("arch_bits", (usize::BITS).to_string()),
        ("multiplexing_api", "epoll".into()),
        ("process_id", std::process::id().to_string()),
        ("process_supervised", "no".into()),
        (
            "run_id",
            format!(
                "{:040x}",
                u128::from(node) << 64 | u128::from(uptime ^ now.as_secs())
            ),
        ),
        ("tcp_port", settings.facts.port.to_string()),
        ("server_time_usec", now.as_micros().to_string()),
        ("uptime_in_seconds", uptime.to_string()),
        ("uptime_in_days", (uptime / 86_400).to_string()),
        ("hz", "10".into()),
        ("configured_hz", "10".into()),
        (
            "executable",
            std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        ),
        ("certus_version", env!("CARGO_PKG_VERSION").into()),
        ("node_id", node.to_string()),
    ]
}

fn clients(settings: &SessionSettings) -> Vec<(&'static str, String)> {
    vec![
        ("connected_clients", settings.clients.count().to_string()),
        ("cluster_connections", "0".into()),
        ("maxclients", settings.facts.max_clients.to_string()),
        ("client_recent_max_input_buffer", "0".into()),
        ("client_recent_max_output_buffer", "0".into()),
        ("blocked_clients", settings.waiters.blocked().to_string()),
        ("tracking_clients", "0".into()),
        ("clients_in_timeout_table", "0".into()),
    ]
}

/// This process's resident memory, from /proc (0 where there is none).
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn human(bytes: u64) -> String {
    const UNITS: [(&str, f64); 3] = [("G", 1_073_741_824.0), ("M", 1_048_576.0), ("K", 1024.0)];
    let value = bytes as f64;
    for (unit, size) in UNITS {
        if value >= size {
            return format!("{:.2}{unit}", value / size);
        }
    }
    format!("{bytes}B")
}

fn memory(settings: &SessionSettings) -> Vec<(&'static str, String)> {
    let rss = resident_bytes();
    let (scripts, script_bytes) = settings.scripts.usage();
    vec![
        ("used_memory", rss.to_string()),
        ("used_memory_human", human(rss)),
        ("used_memory_rss", rss.to_string()),
        ("used_memory_rss_human", human(rss)),
        ("used_memory_peak", rss.to_string()),
        ("used_memory_peak_human", human(rss)),
        ("used_memory_scripts_eval", script_bytes.to_string()),
        ("number_of_cached_scripts", scripts.to_string()),
        ("maxmemory", "0".into()),
        ("maxmemory_human", "0B".into()),
        ("maxmemory_policy", "noeviction".into()),
        ("mem_allocator", "libc".into()),
    ]
}

fn persistence(loading: bool, settings: &SessionSettings) -> Vec<(&'static str, String)> {
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        .saturating_sub(settings.started.elapsed().as_secs());
    vec![
        ("loading", u8::from(loading).to_string()),
        ("async_loading", "0".into()),
        ("rdb_changes_since_last_save", "0".into()),
        ("rdb_bgsave_in_progress", "0".into()),
        ("rdb_last_save_time", start.to_string()),
        ("rdb_last_bgsave_status", "ok".into()),
        ("aof_enabled", "1".into()),
        ("aof_rewrite_in_progress", "0".into()),
        ("aof_last_write_status", "ok".into()),
    ]
}

fn stats(settings: &SessionSettings) -> Vec<(&'static str, String)> {
    let clients = &settings.clients;
    let load = |n: &std::sync::atomic::AtomicU64| n.load(Ordering::Relaxed).to_string();
    vec![
        (
            "total_connections_received",
            load(&clients.connections_received),
        ),
        (
            "total_commands_processed",
            load(&clients.commands_processed),
        ),
        ("instantaneous_ops_per_sec", "0".into()),
        ("rejected_connections", load(&clients.rejected_connections)),
        ("expired_keys", load(&settings.expired_keys)),
        ("evicted_keys", "0".into()),
        ("keyspace_hits", "0".into()),
        ("keyspace_misses", "0".into()),
        ("pubsub_channels", "0".into()),
        ("pubsub_patterns", "0".into()),
    ]
}

fn cpu() -> Vec<(&'static str, String)> {
    // utime and stime, in clock ticks of (almost always) 1/100 s.
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |at: usize| {
        fields
            .get(at)
            .and_then(|t| t.parse::<f64>().ok())
            .map_or(0.0, |t| t / 100.0)
    };
    vec![
        ("used_cpu_sys", format!("{:.6}", ticks(12))),
        ("used_cpu_user", format!("{:.6}", ticks(11))),
    ]
}

/// `db0:keys=N,expires=M,avg_ttl=0`: counted on a snapshot of this node
/// at its visible watermark (a scan of every key; no causal wait).
async fn keyspace(store: &KvStore) -> Vec<(&'static str, String)> {
    let options = TxnOptions::default().causal(false);
    let Ok(mut txn) = store.begin_with(options).await else {
        return Vec::new();
    };
    let mut db = Db::new(&mut txn, 0);
    let (mut keys, mut expires, mut from) = (0usize, 0usize, 0u64);
    loop {
        let Ok((found, next)) = db.scan_from(from, 4096) else {
            return Vec::new();
        };
        keys += found.len();
        expires += found.iter().filter(|(_, r)| r.deadline.is_some()).count();
        match next {
            Some(next) => from = next,
            None => break,
        }
    }
    if keys == 0 {
        return Vec::new();
    }
    vec![("db0", format!("keys={keys},expires={expires},avg_ttl=0"))]
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

/// Redis's replication fields, then the four watermarks under their certus
/// names, after Galera's for the three it has (docs/glossary.md maps them).
fn replication(
    status: &Status,
    flow: FlowControlStats,
    protocols: Protocols,
) -> Vec<(&'static str, String)> {
    let (delivered, certified) = (status.last_delivered.get(), status.last_certified.get());
    let (applied, visible) = (status.last_applied.get(), status.last_visible.get());
    let mut fields = vec![
        ("role", "master".into()),
        ("connected_slaves", "0".into()),
        ("master_failover_state", "no-failover".into()),
        ("master_repl_offset", visible.to_string()),
    ];
    fields.extend(standing(status));
    fields.extend([
        ("wsrep_last_delivered", delivered.to_string()),
        ("wsrep_last_committed", certified.to_string()),
        ("wsrep_last_applied", visible.to_string()),
        ("certus_last_delivered", delivered.to_string()),
        ("certus_last_certified", certified.to_string()),
        ("certus_last_applied", applied.to_string()),
        ("certus_last_visible", visible.to_string()),
        (
            "certus_cluster_time_ms",
            status.visible_time.as_millis().to_string(),
        ),
        ("certus_protocol", protocols.own.to_string()),
        ("certus_cluster_protocol", protocols.cluster.to_string()),
    ]);
    fields.extend(counters(status, flow));
    fields
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
