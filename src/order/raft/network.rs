//! openraft's network over the peer transport.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use openraft::error::{
    NetworkError, RPCError, ReplicationClosed, StreamingError, Timeout, Unreachable,
};
use openraft::network::{RPCOption, RPCTypes};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{BasicNode, EntryPayload, RaftNetworkFactory, RaftNetworkV2};

use super::delivery::OrderSnapshot;
use super::delivery::Raft;
use super::messages::{PeerRequest, PeerResponse};
use super::types::{LogEntry, LogId, TypeConfig, Vote};
use crate::net::{ClientConfig, NetError, PeerClient};
use crate::order::RemoteError;

pub(crate) type Client = PeerClient<PeerRequest, PeerResponse>;

/// One client per peer, shared by raft replication, forwarding and reads.
pub(crate) struct Peers {
    config: Arc<ClientConfig>,
    clients: Mutex<HashMap<u64, Client>>,
}

impl Peers {
    pub(crate) fn new(config: ClientConfig) -> Self {
        Peers {
            config: Arc::new(config),
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// The client for `id` at `addr`, replacing one made for another address.
    pub(crate) fn client(&self, id: u64, addr: &str) -> Client {
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(client) = clients.get(&id).filter(|c| c.addr() == addr) {
            return client.clone();
        }
        let client = PeerClient::start(
            self.config.clone(),
            Some(crate::NodeId::new(id)),
            addr.to_string(),
        );
        clients.insert(id, client.clone());
        client
    }

    /// Each peer link's traffic, by node id.
    pub(crate) fn traffic(&self) -> Vec<(u64, crate::net::PeerTraffic)> {
        let clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        let mut traffic: Vec<_> = clients.iter().map(|(id, c)| (*id, c.traffic())).collect();
        traffic.sort_by_key(|(id, _)| *id);
        traffic
    }

    /// The connection to the leader `raft` knows of, or why there is none.
    /// The metrics are borrowed only while the address is looked up.
    pub(crate) fn leader(&self, raft: &Raft) -> Result<Client, &'static str> {
        let (leader, addr) = leader_addr(&raft.metrics().borrow_watched())?;
        Ok(self.client(leader, &addr))
    }

    /// A one-off client for whichever member listens at `addr`, for a
    /// joining node that knows only addresses: it may only ask to join.
    pub(crate) fn seed(&self, addr: &str) -> Client {
        PeerClient::start(self.config.clone(), None, addr.to_string())
    }
}

/// The leader `metrics` names and its peer address, or why it has none.
pub(crate) fn leader_addr(
    metrics: &openraft::RaftMetrics<TypeConfig>,
) -> Result<(u64, String), &'static str> {
    let leader = metrics.current_leader.ok_or("no leader is known")?;
    let node = metrics.membership_config.membership().get_node(&leader);
    let addr = node.ok_or("the leader's address is unknown")?.addr.clone();
    Ok((leader, addr))
}

/// Hands openraft a link per target.
#[derive(Clone)]
pub(crate) struct Network {
    pub(crate) me: u64,
    pub(crate) peers: Arc<Peers>,
    /// See [`append_bytes`].
    pub(crate) append_bytes: usize,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerLink;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> PeerLink {
        PeerLink {
            me: self.me,
            target,
            client: self.peers.client(target, &node.addr),
            append_bytes: self.append_bytes,
        }
    }
}

/// openraft's connection to one peer.
pub(crate) struct PeerLink {
    me: u64,
    target: u64,
    client: Client,
    append_bytes: usize,
}

impl PeerLink {
    fn rpc_error(&self, err: NetError, action: RPCTypes, ttl: Duration) -> RPCError<TypeConfig> {
        match err {
            NetError::Timeout { .. } => RPCError::Timeout(Timeout {
                action,
                id: self.me,
                target: self.target,
                timeout: ttl,
            }),
            err if err.not_sent() => RPCError::Unreachable(Unreachable::from_string(err)),
            err => RPCError::Network(NetworkError::from_string(err)),
        }
    }

    async fn call(
        &self,
        req: PeerRequest,
        action: RPCTypes,
        ttl: Duration,
    ) -> Result<PeerResponse, RPCError<TypeConfig>> {
        self.client
            .call(&req, ttl)
            .await
            .map_err(|e| self.rpc_error(e, action, ttl))
    }
}

impl PeerLink {
    async fn vote_rpc(
        &self,
        req: PeerRequest,
        ttl: Duration,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.call(req, RPCTypes::Vote, ttl).await? {
            PeerResponse::Vote(result) => result.map_err(remote),
            _ => Err(unexpected("vote")),
        }
    }
}

/// Bytes of entry payload one append request carries at most, unless its
/// first entry alone is larger: 4 MiB, or less where entries are bounded
/// smaller, so a request always fits the peer frame (four entries' worth).
pub(crate) fn append_bytes(max_entry_bytes: usize) -> usize {
    max_entry_bytes.saturating_mul(2).min(4 << 20)
}

/// Keeps the longest prefix of `entries` within `max_bytes` of payload (at
/// least one entry). Returns the last kept entry's log id when it dropped any.
fn shorten(entries: &mut Vec<LogEntry>, max_bytes: usize) -> Option<LogId> {
    let mut bytes = 0;
    let keep = entries
        .iter()
        .position(|entry| {
            bytes += match &entry.payload {
                EntryPayload::Normal(submission) => submission.frame.len(),
                _ => 0,
            };
            bytes > max_bytes
        })
        .map_or(entries.len(), |over| over.max(1));
    if keep == entries.len() {
        return None;
    }
    entries.truncate(keep);
    entries.last().map(|entry| entry.log_id)
}

fn unexpected(what: &str) -> RPCError<TypeConfig> {
    RPCError::Network(NetworkError::from_string(format!(
        "peer answered a {what} request with another kind of response"
    )))
}

fn remote(err: RemoteError) -> RPCError<TypeConfig> {
    RPCError::Network(NetworkError::from_string(format!("peer failed: {err}")))
}

impl RaftNetworkV2<TypeConfig> for PeerLink {
    type SnapshotData = ();

    /// Sends at most [`append_bytes`] of entries (always at least one):
    /// openraft bounds a request by entry count only, and a lagging peer's
    /// batch of large write-sets would not fit a frame or a round trip's
    /// time, so the same request would fail forever. A peer that took the
    /// shortened request matched only the entries sent.
    async fn append_entries(
        &mut self,
        mut rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let ttl = option.soft_ttl();
        let shortened_to = shorten(&mut rpc.entries, self.append_bytes);
        match self
            .call(PeerRequest::Append(rpc), RPCTypes::AppendEntries, ttl)
            .await?
        {
            PeerResponse::Append(Ok(AppendEntriesResponse::Success)) if shortened_to.is_some() => {
                Ok(AppendEntriesResponse::PartialSuccess(shortened_to))
            }
            PeerResponse::Append(result) => result.map_err(remote),
            _ => Err(unexpected("append")),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.vote_rpc(PeerRequest::Vote(rpc), option.soft_ttl())
            .await
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.vote_rpc(PeerRequest::PreVote(rpc), option.soft_ttl())
            .await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: OrderSnapshot,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let ttl = option.soft_ttl();
        let req = PeerRequest::Snapshot {
            vote,
            meta: snapshot.meta,
        };
        let response = tokio::select! {
            biased;
            closed = cancel => return Err(StreamingError::Closed(closed)),
            response = self.call(req, RPCTypes::InstallSnapshot, ttl) => response,
        };
        let into_streaming = |e: RPCError<TypeConfig>| match e {
            RPCError::Timeout(t) => StreamingError::Timeout(t),
            RPCError::Unreachable(u) => StreamingError::Unreachable(u),
            RPCError::Network(n) => StreamingError::Network(n),
            RPCError::RemoteError(r) => StreamingError::Network(NetworkError::from_string(r)),
        };
        match response.map_err(into_streaming)? {
            PeerResponse::Snapshot(result) => result.map_err(|e| into_streaming(remote(e))),
            _ => Err(into_streaming(unexpected("snapshot"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::raft::types::Submission;

    fn entries(sizes: &[usize]) -> Vec<LogEntry> {
        let leader = openraft::impls::leader_id_adv::LeaderId {
            term: 1,
            node_id: 1,
        };
        (1..)
            .zip(sizes)
            .map(|(index, &size)| LogEntry {
                log_id: openraft::LogId::new(leader, index),
                payload: EntryPayload::Normal(Submission {
                    frame: bytes::Bytes::from(vec![0; size]),
                    stamp: crate::ids::ClusterTime::ZERO,
                }),
            })
            .collect()
    }

    #[test]
    fn an_append_keeps_the_longest_prefix_within_the_byte_bound() {
        let mut fits = entries(&[10, 10, 10]);
        assert_eq!(shorten(&mut fits, 30), None);
        assert_eq!(fits.len(), 3);

        let mut over = entries(&[10, 10, 10]);
        let last = shorten(&mut over, 25).map(|id| id.index);
        assert_eq!((over.len(), last), (2, Some(2)));

        // A first entry larger than the bound still goes, alone.
        let mut huge = entries(&[100, 1]);
        let last = shorten(&mut huge, 25).map(|id| id.index);
        assert_eq!((huge.len(), last), (1, Some(1)));
    }
}
