//! The Prometheus endpoint: `GET /metrics` on the health port, in the
//! Prometheus text format, through the Prometheus project's own client
//! (`prometheus-client`). Every value is read at scrape time from what the
//! node already publishes (its status, its log, its timings, the clients),
//! so serving metrics adds no work to the write path beyond the timings.
//!
//! Names follow etcd's and mysqld_exporter's conventions: `certus_` and the
//! Galera status variable where there is one (`wsrep_cluster_size` is
//! `certus_cluster_size`), `_total` for counters, base units in the name
//! (`_seconds`, `_bytes`). docs/operations.md lists them with the panels an
//! operator needs.

use std::fmt::{self, Write as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};
use tokio::sync::watch;

use super::clients::Clients;
use crate::HistogramSnapshot;
use crate::kv::KvStore;
use crate::node::{NodeState, Status};
use crate::order::{RaftOrder, TotalOrder};

/// The `Content-Type` of what [`Metrics::render`] writes.
pub(crate) const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// What a scrape reads.
#[derive(Debug)]
struct NodeCollector {
    stores: watch::Receiver<Option<KvStore>>,
    order: Arc<RaftOrder>,
    clients: Arc<Clients>,
    expired_keys: Arc<AtomicU64>,
}

/// The node's metrics registry.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
}

impl Metrics {
    pub(crate) fn new(
        stores: watch::Receiver<Option<KvStore>>,
        order: Arc<RaftOrder>,
        clients: Arc<Clients>,
        expired_keys: Arc<AtomicU64>,
    ) -> Self {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(NodeCollector {
            stores,
            order,
            clients,
            expired_keys,
        }));
        Metrics { registry }
    }

    /// Every metric now, in the Prometheus text format.
    pub(crate) fn render(&self) -> String {
        let mut out = String::with_capacity(8 << 10);
        if let Err(err) =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
        {
            // Writing to a String cannot fail; a collector's error is ours.
            let _ = writeln!(out, "# encoding failed: {err}");
        }
        out
    }
}

impl Collector for NodeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let (status, timings) = match self.stores.borrow().as_ref() {
            Some(store) => (Some(store.node().status()), Some(store.node().timings())),
            None => (None, None),
        };
        replication(&mut encoder, status.as_ref(), &self.order)?;
        if let Some(status) = &status {
            certification(&mut encoder, status)?;
        }
        let flow = self.order.flow_control();
        counter(
            &mut encoder,
            "certus_flow_control_paused_seconds",
            "Time admission was paused by flow control (wsrep_flow_control_paused).",
            flow.paused.as_secs_f64(),
        )?;
        counter(
            &mut encoder,
            "certus_flow_control_sent",
            "Flow-control pauses this node asked for (wsrep_flow_control_sent).",
            flow.pauses_sent,
        )?;
        gauge(
            &mut encoder,
            "certus_flow_control_active",
            "1 while flow control holds admission or this node asks it to.",
            i64::from(flow.active),
        )?;
        let protocols = self.order.protocols();
        gauge(
            &mut encoder,
            "certus_protocol",
            "The protocol version this node speaks.",
            i64::from(protocols.own.get()),
        )?;
        gauge(
            &mut encoder,
            "certus_cluster_protocol",
            "The protocol version the cluster runs at (rises once every member speaks a newer one).",
            i64::from(protocols.cluster.get()),
        )?;
        let log = self.order.log_stats();
        histogram(
            &mut encoder,
            "certus_log_fsync_duration",
            "Duration of the ordering log's fsyncs.",
            &log.fsync,
        )?;
        gauge(
            &mut encoder,
            "certus_log_size_bytes",
            "Bytes in the ordering log's segment files.",
            to_i64(log.bytes),
        )?;
        if let Some(timings) = &timings {
            histogram(
                &mut encoder,
                "certus_commit_duration",
                "Local commits and operations, from submission to outcome.",
                &timings.commit,
            )?;
            histogram(
                &mut encoder,
                "certus_apply_duration",
                "Engine apply batches.",
                &timings.apply,
            )?;
        }
        peers(&mut encoder, &self.order)?;
        clients(&mut encoder, &self.clients, &self.expired_keys)
    }
}

/// Galera's numbers for `wsrep_local_state`: 1 joining, 2 donor, 3 joined,
/// 4 synced; 0 for states Galera has no number for.
fn local_state(state: NodeState) -> i64 {
    match state {
        NodeState::Joining => 1,
        NodeState::Donor => 2,
        NodeState::Joined => 3,
        NodeState::Synced => 4,
        _ => 0,
    }
}

fn replication(
    encoder: &mut DescriptorEncoder,
    status: Option<&Status>,
    order: &RaftOrder,
) -> fmt::Result {
    let primary = status.is_some_and(|s| s.view.as_ref().is_some_and(|v| v.primary));
    let ready = primary && status.is_some_and(|s| s.state.accepts_writes());
    let size = status
        .and_then(|s| s.view.as_ref())
        .map_or(0, |v| v.members.len());
    gauge(
        encoder,
        "certus_cluster_size",
        "Members of the current view (wsrep_cluster_size).",
        to_i64(size as u64),
    )?;
    gauge(
        encoder,
        "certus_primary",
        "1 while this node is in the primary component.",
        i64::from(primary),
    )?;
    gauge(
        encoder,
        "certus_ready",
        "1 while this node accepts writes (wsrep_ready).",
        i64::from(ready),
    )?;
    gauge(
        encoder,
        "certus_leader",
        "1 while this node leads the ordering layer.",
        i64::from(order.is_leader()),
    )?;
    gauge(
        encoder,
        "certus_failed",
        "1 when the node failed or its ordering core stopped.",
        i64::from(
            order.failure().is_some() || status.is_some_and(|s| s.state == NodeState::Failed),
        ),
    )?;
    gauge(
        encoder,
        "certus_serving",
        "1 while the node serves a store (0 during a state transfer or a restart).",
        i64::from(status.is_some()),
    )?;
    let Some(status) = status else {
        return Ok(());
    };
    gauge(
        encoder,
        "certus_local_state",
        "Galera's wsrep_local_state: 1 joining, 2 donor, 3 joined, 4 synced, 0 other.",
        local_state(status.state),
    )?;
    gauge(
        encoder,
        "certus_last_committed",
        "The last position visible here (wsrep_last_committed).",
        to_i64(status.last_visible.get()),
    )?;
    gauge(
        encoder,
        "certus_apply_queue",
        "Positions delivered but not yet visible (wsrep_local_recv_queue).",
        to_i64(status.apply_queue as u64),
    )
}

fn certification(encoder: &mut DescriptorEncoder, status: &Status) -> fmt::Result {
    let verdicts = [
        ("committed", status.cert.committed),
        ("aborted", status.cert.aborted),
        ("duplicate", status.cert.duplicates),
        ("skipped", status.cert.skipped),
    ];
    let mut family = encoder.encode_descriptor(
        "certus_certified",
        "Positions certified here, by verdict, for all origins.",
        None,
        MetricType::Counter,
    )?;
    for (verdict, count) in verdicts {
        let labels = [("verdict", verdict)];
        let metric = family.encode_family(&labels)?;
        ConstCounter::new(count).encode(metric)?;
    }
    counter(
        encoder,
        "certus_local_commits",
        "Local transactions certification committed (wsrep_local_commits).",
        status.local_commits,
    )?;
    counter(
        encoder,
        "certus_local_cert_failures",
        "Local transactions certification aborted (wsrep_local_cert_failures).",
        status.local_cert_failures,
    )?;
    gauge(
        encoder,
        "certus_cert_index_keys",
        "Keys in the certification index (wsrep_cert_index_size).",
        to_i64(status.cert_index_keys as u64),
    )?;
    gauge(
        encoder,
        "certus_cert_index_bytes",
        "Bytes the certification index and duplicate table hold (bounded by certification_index_bytes).",
        to_i64(status.cert_index_bytes),
    )
}

/// Reads one counter of a peer link's traffic.
type Field = fn(&crate::net::PeerTraffic) -> u64;

/// Per peer link (`peer` = the node id): round trips of this node's
/// requests, and the bytes of requests and answers.
fn peers(encoder: &mut DescriptorEncoder, order: &RaftOrder) -> fmt::Result {
    let traffic = order.peer_traffic();
    let label = |id: crate::NodeId| [("peer", id.get().to_string())];
    let mut family = encoder.encode_descriptor(
        "certus_peer_round_trip",
        "Requests to a peer, from sending to its answer.",
        Some(&Unit::Seconds),
        MetricType::Histogram,
    )?;
    for (id, t) in &traffic {
        let labels = label(*id);
        let r = &t.round_trip;
        family
            .encode_family(&labels)?
            .encode_histogram::<NoLabelSet>(r.sum, r.count, &r.buckets, None)?;
    }
    let bytes: [(&str, &str, Field); 2] = [
        (
            "certus_peer_sent_bytes",
            "Request bytes sent to a peer.",
            |t| t.sent,
        ),
        (
            "certus_peer_received_bytes",
            "Answer bytes received from a peer.",
            |t| t.received,
        ),
    ];
    for (name, help, value) in bytes {
        let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
        for (id, t) in &traffic {
            let labels = label(*id);
            ConstCounter::new(value(t)).encode(family.encode_family(&labels)?)?;
        }
    }
    Ok(())
}

fn clients(encoder: &mut DescriptorEncoder, clients: &Clients, expired: &AtomicU64) -> fmt::Result {
    gauge(
        encoder,
        "certus_connected_clients",
        "Client connections open now.",
        to_i64(clients.count() as u64),
    )?;
    counter(
        encoder,
        "certus_connections_received",
        "Client connections accepted.",
        clients.connections_received.load(Ordering::Relaxed),
    )?;
    counter(
        encoder,
        "certus_rejected_connections",
        "Client connections refused at max_clients.",
        clients.rejected_connections.load(Ordering::Relaxed),
    )?;
    counter(
        encoder,
        "certus_commands_processed",
        "Client commands processed.",
        clients.commands_processed.load(Ordering::Relaxed),
    )?;
    counter(
        encoder,
        "certus_expired_keys",
        "Keys the reaper removed on this node.",
        expired.load(Ordering::Relaxed),
    )
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: i64) -> fmt::Result {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// A counter; the text format adds `_total` to `name`.
fn counter<N>(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: N) -> fmt::Result
where
    ConstCounter<N>: EncodeMetric,
{
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// A histogram in seconds; the text format adds `_seconds` to `name`.
fn histogram(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    snapshot: &HistogramSnapshot,
) -> fmt::Result {
    let mut metric =
        encoder.encode_descriptor(name, help, Some(&Unit::Seconds), MetricType::Histogram)?;
    metric.encode_histogram::<NoLabelSet>(snapshot.sum, snapshot.count, &snapshot.buckets, None)
}
