//! A deterministic total order for nodes that share one process: tests,
//! examples, and applications that want several replicas in one binary.
//!
//! One sequencer assigns positions; each member reads the shared log at its
//! own pace. A test can [`InProcessOrder::isolate`] a member (it stops
//! receiving, cannot submit, and is told it left the primary component) and
//! [`InProcessOrder::heal`] it (it catches up from the log, as incremental
//! state transfer would). Membership changes take a position, as they do in
//! a consensus log. Submissions wait while any connected, subscribed member
//! lags `fc_limit` positions behind: cluster-wide flow control. As a
//! [`Cluster`], a member can leave for good, and members call each other's
//! [`PeerService`] directly, so state transfer runs here as over the network.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;

use super::cluster::{self, Cluster};
use super::error::{OrderError, PeerError};
use super::total_order::{
    ConsumerState, Entry, Event, EventStream, OrderFuture, PeerService, TotalOrder,
};
use super::view::View;
use crate::ids::{ClusterTime, NodeId, Seqno};

/// Limits of the in-process order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InProcessConfig {
    /// Positions kept in the shared log; a member that falls further behind
    /// needs a full state transfer.
    pub retention: usize,
    /// Submissions wait while a connected member lags this many positions.
    pub fc_limit: u64,
    /// Largest accepted entry in bytes.
    pub max_entry_bytes: usize,
}

impl Default for InProcessConfig {
    fn default() -> Self {
        InProcessConfig {
            retention: 1 << 20,
            fc_limit: 1024,
            max_entry_bytes: 64 << 20,
        }
    }
}

/// The shared sequencer. Cloning gives another handle to the same cluster.
#[derive(Clone, Debug)]
pub struct InProcessOrder {
    hub: Arc<Hub>,
}

#[derive(Debug)]
struct Hub {
    state: Mutex<HubState>,
    /// Bumped on every change a waiter may care about.
    changed: watch::Sender<u64>,
    services: Services,
}

/// Each member's registered peer service.
#[derive(Default)]
struct Services(Mutex<BTreeMap<NodeId, Arc<dyn PeerService>>>);

impl Services {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<NodeId, Arc<dyn PeerService>>> {
        // Inserts and lookups cannot panic half-way.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.lock().keys()).finish()
    }
}

#[derive(Debug)]
enum Logged {
    Frame(Bytes, ClusterTime),
    View(View),
}

#[derive(Debug)]
struct Member {
    connected: bool,
    /// It left the cluster ([`Cluster::leave`]): it counts for no majority
    /// and is outside every primary component from then on.
    left: bool,
    /// The last position delivered to this member's subscription.
    cursor: Seqno,
    /// Set while the member is outside the primary component: the last
    /// position it may still read, the one it had reached the component
    /// when it left.
    cut: Option<Seqno>,
    /// A view to deliver once the member has read up to the view's
    /// position: the non-primary view of a cut member, or the current
    /// primary view for a subscription that starts past its position.
    pending_view: Option<View>,
    /// The live subscription's id, 0 for none.
    subscription: u64,
    /// The subscription's consumer is synced: only then does it hold
    /// submissions back.
    synced: bool,
}

#[derive(Debug)]
struct HubState {
    config: InProcessConfig,
    members: BTreeMap<NodeId, Member>,
    log: VecDeque<Logged>,
    /// The position of `log[0]`.
    first_retained: Seqno,
    last_seqno: Seqno,
    view_id: u64,
    primary: bool,
    /// The last logged primary view.
    primary_view: Option<View>,
    /// The time entries are stamped with, when a test set it; otherwise
    /// the submitting member's clock.
    time: Option<ClusterTime>,
    next_subscription: u64,
}

impl InProcessOrder {
    /// A cluster of `members`, all connected. The first position is the
    /// initial membership view.
    ///
    /// # Panics
    /// Panics if `members` is empty or `config.retention` is zero.
    pub fn new(config: InProcessConfig, members: impl IntoIterator<Item = NodeId>) -> Self {
        assert!(
            config.retention > 0,
            "the log must retain at least one position"
        );
        let members: BTreeMap<_, _> = members
            .into_iter()
            .map(|id| {
                let member = Member {
                    connected: true,
                    left: false,
                    cursor: Seqno::ZERO,
                    cut: None,
                    pending_view: None,
                    subscription: 0,
                    synced: false,
                };
                (id, member)
            })
            .collect();
        assert!(!members.is_empty(), "a cluster needs members");
        let mut state = HubState {
            config,
            members,
            log: VecDeque::new(),
            first_retained: Seqno::new(1),
            last_seqno: Seqno::ZERO,
            view_id: 0,
            primary: false,
            primary_view: None,
            time: None,
            next_subscription: 1,
        };
        state.install_views();
        let (changed, _) = watch::channel(0);
        InProcessOrder {
            hub: Arc::new(Hub {
                state: Mutex::new(state),
                changed,
                services: Services::default(),
            }),
        }
    }

    /// The ordering handle for `node`.
    ///
    /// # Errors
    /// [`OrderError::UnknownMember`] if `node` is not a member.
    pub fn endpoint(&self, node: NodeId) -> Result<InProcessEndpoint, OrderError> {
        if !self.hub.lock().members.contains_key(&node) {
            return Err(OrderError::UnknownMember { node });
        }
        Ok(InProcessEndpoint {
            hub: self.hub.clone(),
            node,
        })
    }

    /// Cuts `node` off from the others.
    ///
    /// # Errors
    /// [`OrderError::UnknownMember`] if `node` is not a member.
    pub fn isolate(&self, node: NodeId) -> Result<(), OrderError> {
        self.set_connected(node, false)
    }

    /// Reconnects `node`; it resumes reading the log where it stopped.
    ///
    /// # Errors
    /// [`OrderError::UnknownMember`] if `node` is not a member.
    pub fn heal(&self, node: NodeId) -> Result<(), OrderError> {
        self.set_connected(node, true)
    }

    /// Stamps every entry ordered from now on with `time` instead of the
    /// submitting member's clock (`None` returns to the clock): a test's
    /// control over the cluster time.
    pub fn set_time(&self, time: Option<ClusterTime>) {
        self.hub.lock().time = time;
    }

    /// The last ordered position.
    #[must_use]
    pub fn last_seqno(&self) -> Seqno {
        self.hub.lock().last_seqno
    }

    fn set_connected(&self, node: NodeId, connected: bool) -> Result<(), OrderError> {
        {
            let mut state = self.hub.lock();
            let member = state
                .members
                .get_mut(&node)
                .ok_or(OrderError::UnknownMember { node })?;
            if member.connected == connected {
                return Ok(());
            }
            member.connected = connected;
            state.install_views();
        }
        self.hub.bump();
        Ok(())
    }
}

impl Hub {
    fn lock(&self) -> MutexGuard<'_, HubState> {
        // The state is only mutated in short sections that cannot panic
        // half-way, so a poisoned lock still guards consistent data.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn bump(&self) {
        self.changed
            .send_modify(|generation| *generation = generation.wrapping_add(1));
    }
}

impl Member {
    /// Connected and still a member: it may be in the primary component.
    fn present(&self) -> bool {
        self.connected && !self.left
    }
}

impl HubState {
    /// Recomputes the primary component after a connectivity change and
    /// tells every member what it now belongs to. The primary component's
    /// view is logged (it takes a position). A member outside it is cut
    /// where it left: it reads the log up to that position, then receives
    /// a non-primary view, and nothing more until it rejoins.
    fn install_views(&mut self) {
        let connected: Vec<NodeId> = self
            .members
            .iter()
            .filter(|(_, m)| m.present())
            .map(|(id, _)| *id)
            .collect();
        let voters = self.members.values().filter(|m| !m.left).count();
        self.primary = 2 * connected.len() > voters;
        self.view_id += 1;
        let (view_id, left_at, primary) = (self.view_id, self.last_seqno, self.primary);
        for (id, member) in &mut self.members {
            if primary && member.present() {
                member.cut = None;
                member.pending_view = None;
                continue;
            }
            let cut = *member.cut.get_or_insert(left_at);
            let members = if member.present() {
                connected.clone()
            } else {
                vec![*id]
            };
            member.pending_view = Some(View {
                id: view_id,
                members,
                primary: false,
                seqno: cut,
            });
        }
        if primary {
            let seqno = self.last_seqno.next();
            let view = View {
                id: view_id,
                members: connected,
                primary: true,
                seqno,
            };
            self.primary_view = Some(view.clone());
            self.append(Logged::View(view));
        }
    }

    fn append(&mut self, entry: Logged) -> Seqno {
        self.last_seqno = self.last_seqno.next();
        self.log.push_back(entry);
        if self.log.len() > self.config.retention {
            self.log.pop_front();
            self.first_retained = self.first_retained.next();
        }
        assert_eq!(
            self.first_retained.get() + self.log.len() as u64 - 1,
            self.last_seqno.get(),
            "in-process log positions out of step"
        );
        self.last_seqno
    }

    /// Whether a connected, subscribed member lags too far for new entries.
    fn flow_control_blocks(&self) -> bool {
        self.members.values().any(|m| {
            m.present()
                && m.subscription != 0
                && m.synced
                && self.last_seqno.distance_from(m.cursor) >= self.config.fc_limit
        })
    }

    fn can_order(&self, node: NodeId) -> Result<(), OrderError> {
        let member = self
            .members
            .get(&node)
            .ok_or(OrderError::UnknownMember { node })?;
        if !member.present() || !self.primary {
            return Err(OrderError::NotPrimary);
        }
        Ok(())
    }
}

/// One member's handle on an [`InProcessOrder`].
#[derive(Clone, Debug)]
pub struct InProcessEndpoint {
    hub: Arc<Hub>,
    node: NodeId,
}

impl TotalOrder for InProcessEndpoint {
    fn node_id(&self) -> NodeId {
        self.node
    }

    fn submit(&self, frame: Bytes) -> OrderFuture<'_, ()> {
        Box::pin(async move {
            let mut changes = self.hub.changed.subscribe();
            loop {
                changes.borrow_and_update();
                {
                    let mut state = self.hub.lock();
                    let max = state.config.max_entry_bytes;
                    if frame.len() > max {
                        return Err(OrderError::TooLarge {
                            len: frame.len(),
                            max,
                        });
                    }
                    state.can_order(self.node)?;
                    if !state.flow_control_blocks() {
                        let stamp = state.time.unwrap_or_else(|| crate::clock::now(self.node));
                        state.append(Logged::Frame(frame, stamp));
                        break;
                    }
                }
                changes.changed().await.map_err(|_| OrderError::Closed)?;
            }
            self.hub.bump();
            Ok(())
        })
    }

    fn set_consumer_state(&self, consumer: ConsumerState) {
        let synced = consumer == ConsumerState::Synced;
        let changed = {
            let mut state = self.hub.lock();
            state.members.get_mut(&self.node).is_some_and(|member| {
                let changed = member.synced != synced;
                member.synced = synced;
                changed
            })
        };
        if changed {
            // A member that stops being synced no longer holds anyone.
            self.hub.bump();
        }
    }

    fn sync_point(&self) -> OrderFuture<'_, Seqno> {
        Box::pin(async move {
            let state = self.hub.lock();
            state.can_order(self.node)?;
            Ok(state.last_seqno)
        })
    }

    fn subscribe(&self, after: Seqno) -> Result<Box<dyn EventStream>, OrderError> {
        let subscription = {
            let mut state = self.hub.lock();
            if after > state.last_seqno {
                return Err(OrderError::UnknownPosition {
                    requested: after,
                    last: state.last_seqno,
                });
            }
            if after.next() < state.first_retained {
                let first_retained = state.first_retained;
                return Err(OrderError::StateTransferRequired {
                    requested: after,
                    first_retained,
                });
            }
            let subscription = state.next_subscription;
            state.next_subscription += 1;
            let node = self.node;
            let current = state.primary_view.clone();
            let member = state
                .members
                .get_mut(&node)
                .ok_or(OrderError::UnknownMember { node })?;
            member.cursor = after;
            member.subscription = subscription;
            member.synced = false;
            if member.cut.is_none() {
                // The log will not replay a view at or before `after`:
                // announce the current one first.
                member.pending_view = current.filter(|view| view.seqno <= after);
            }
            subscription
        };
        self.hub.bump();
        Ok(Box::new(InProcessStream {
            hub: self.hub.clone(),
            node: self.node,
            subscription,
            changes: self.hub.changed.subscribe(),
            announced: None,
        }))
    }
}

impl Cluster for InProcessEndpoint {
    /// Every member that has not left, all voters, named `in-process`.
    fn members(&self) -> Vec<cluster::Member> {
        let state = self.hub.lock();
        let present = state.members.iter().filter(|(_, m)| !m.left);
        present
            .map(|(id, _)| cluster::Member::new(*id, "in-process", true))
            .collect()
    }

    /// One sequencer orders everything: there is no leader.
    fn leader(&self) -> Option<NodeId> {
        None
    }

    /// Like a consensus membership change, leaving takes a position (the
    /// new primary view) and needs the primary component.
    fn leave(&self) -> OrderFuture<'_, ()> {
        self.remove(self.node)
    }

    /// As leaving, for any member; the sequencer has no quorum to lose.
    fn remove(&self, node: NodeId) -> OrderFuture<'_, ()> {
        Box::pin(async move {
            {
                let mut state = self.hub.lock();
                state.can_order(self.node)?;
                match state.members.get_mut(&node) {
                    Some(member) if !member.left => member.left = true,
                    _ => return Err(OrderError::UnknownMember { node }),
                }
                state.install_views();
            }
            self.hub.bump();
            Ok(())
        })
    }

    fn set_peer_service(&self, service: Arc<dyn PeerService>) -> bool {
        let mut services = self.hub.services.lock();
        if services.contains_key(&self.node) {
            return false;
        }
        services.insert(self.node, service);
        true
    }

    /// Both ends must be connected members; the target must have a service.
    fn call_peer(&self, node: NodeId, request: Bytes, timeout: Duration) -> OrderFuture<'_, Bytes> {
        Box::pin(async move {
            {
                let state = self.hub.lock();
                let target = state
                    .members
                    .get(&node)
                    .filter(|m| !m.left)
                    .ok_or(OrderError::UnknownMember { node })?;
                let caller = state.members.get(&self.node);
                if !target.present() || !caller.is_some_and(Member::present) {
                    let source = PeerError::Disconnected;
                    return Err(OrderError::Peer { node, source });
                }
            }
            let service = { self.hub.services.lock().get(&node).cloned() };
            let peer = |source| OrderError::Peer { node, source };
            let service = service.ok_or(peer(PeerError::NoService))?;
            match tokio::time::timeout(timeout, service.handle(self.node, request)).await {
                Ok(answer) => answer.map_err(|e| peer(PeerError::Remote(e))),
                Err(_) => Err(peer(PeerError::TimedOut { after: timeout })),
            }
        })
    }
}

struct InProcessStream {
    hub: Arc<Hub>,
    node: NodeId,
    subscription: u64,
    changes: watch::Receiver<u64>,
    /// The position of a logged view already announced, whose barrier comes
    /// next.
    announced: Option<Seqno>,
}

impl InProcessStream {
    /// The next event if one is ready, under the hub lock.
    fn poll_ready(&mut self) -> Result<Option<Event>, OrderError> {
        let mut guard = self.hub.lock();
        let state = &mut *guard;
        let member = state
            .members
            .get_mut(&self.node)
            .ok_or(OrderError::Closed)?;
        if member.subscription != self.subscription {
            return Err(OrderError::Closed);
        }
        if member
            .pending_view
            .as_ref()
            .is_some_and(|view| member.cursor >= view.seqno)
        {
            return Ok(member.pending_view.take().map(Event::View));
        }
        if member.cursor >= member.cut.unwrap_or(state.last_seqno) {
            return Ok(None);
        }
        let seqno = member.cursor.next();
        if seqno < state.first_retained {
            let first_retained = state.first_retained;
            return Err(OrderError::StateTransferRequired {
                requested: member.cursor,
                first_retained,
            });
        }
        let offset = seqno.distance_from(state.first_retained) as usize;
        let mut stamp = ClusterTime::ZERO;
        let entry = match &state.log[offset] {
            Logged::Frame(frame, time) => {
                stamp = *time;
                Entry::Submitted(frame.clone())
            }
            // A view is announced before its position, so the node's state
            // changes before its watermark passes the view.
            Logged::View(view) if self.announced != Some(seqno) => {
                self.announced = Some(seqno);
                return Ok(Some(Event::View(view.clone())));
            }
            Logged::View(_) => Entry::Barrier,
        };
        member.cursor = seqno;
        Ok(Some(Event::Ordered {
            seqno,
            entry,
            stamp,
        }))
    }
}

impl EventStream for InProcessStream {
    fn next(&mut self) -> OrderFuture<'_, Event> {
        Box::pin(async move {
            loop {
                self.changes.borrow_and_update();
                if let Some(event) = self.poll_ready()? {
                    // A cursor moved: wake submitters held by flow control.
                    self.hub.bump();
                    return Ok(event);
                }
                self.changes
                    .changed()
                    .await
                    .map_err(|_| OrderError::Closed)?;
            }
        })
    }
}

impl Drop for InProcessStream {
    fn drop(&mut self) {
        let mut state = self.hub.lock();
        if let Some(member) = state.members.get_mut(&self.node)
            && member.subscription == self.subscription
        {
            member.subscription = 0;
        }
        drop(state);
        self.hub.bump();
    }
}
