//! The connected clients of one server, as `CLIENT LIST`, `CLIENT INFO`
//! and `INFO clients` report them, and the server-wide counters of `INFO
//! stats`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use bytes::Bytes;

/// What one connection shows of itself.
#[derive(Clone, Debug)]
pub(crate) struct ClientInfo {
    pub(crate) id: u64,
    pub(crate) addr: Option<SocketAddr>,
    pub(crate) laddr: Option<SocketAddr>,
    pub(crate) name: Option<Bytes>,
    pub(crate) lib_name: Option<Bytes>,
    pub(crate) lib_ver: Option<Bytes>,
    pub(crate) connected: Instant,
    pub(crate) last_command: Instant,
    /// The last command's name, as `cmd=` shows it.
    pub(crate) command: String,
    /// Commands queued in `MULTI`, or `None` outside it.
    pub(crate) multi: Option<usize>,
    pub(crate) watching: usize,
    pub(crate) resp: i64,
    /// The user the connection runs as.
    pub(crate) user: String,
}

impl ClientInfo {
    pub(crate) fn new(id: u64, addr: Option<SocketAddr>, laddr: Option<SocketAddr>) -> Self {
        let now = Instant::now();
        ClientInfo {
            id,
            addr,
            laddr,
            name: None,
            lib_name: None,
            lib_ver: None,
            connected: now,
            last_command: now,
            command: "NULL".into(),
            multi: None,
            watching: 0,
            resp: 2,
            user: "default".into(),
        }
    }

    /// One `CLIENT LIST` line, in Redis 7.2's field order (memory fields
    /// this server does not track are zero).
    pub(crate) fn line(&self) -> String {
        let text = |b: &Option<Bytes>| {
            b.as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default()
        };
        let addr = |a: Option<SocketAddr>| a.map(|a| a.to_string()).unwrap_or_default();
        let flags = match (self.multi.is_some(), self.watching > 0) {
            (true, _) => "x",
            _ => "N",
        };
        let mut out = String::new();
        let _ = write!(
            out,
            "id={} addr={} laddr={} fd=-1 name={} age={} idle={} flags={flags} db=0 sub=0 \
             psub=0 ssub=0 multi={} watch={} qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 \
             rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd={} user={} \
             redir=-1 resp={} lib-name={} lib-ver={}",
            self.id,
            addr(self.addr),
            addr(self.laddr),
            text(&self.name),
            self.connected.elapsed().as_secs(),
            self.last_command.elapsed().as_secs(),
            self.multi
                .map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX)),
            self.watching,
            self.command,
            self.user,
            self.resp,
            text(&self.lib_name),
            text(&self.lib_ver),
        );
        out
    }
}

/// Every connected client, and the counters of `INFO stats`.
#[derive(Debug, Default)]
pub(crate) struct Clients {
    connected: Mutex<BTreeMap<u64, ClientInfo>>,
    next_id: AtomicU64,
    pub(crate) connections_received: AtomicU64,
    pub(crate) rejected_connections: AtomicU64,
    pub(crate) commands_processed: AtomicU64,
}

impl Clients {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Clients {
            next_id: AtomicU64::new(1),
            ..Clients::default()
        })
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<u64, ClientInfo>> {
        // Inserts, updates and removals cannot panic half-way.
        self.connected
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a new connection and returns its id.
    pub(crate) fn connect(&self, addr: Option<SocketAddr>, laddr: Option<SocketAddr>) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.connections_received.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(id, ClientInfo::new(id, addr, laddr));
        id
    }

    pub(crate) fn disconnect(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// Changes what client `id` shows.
    pub(crate) fn update(&self, id: u64, change: impl FnOnce(&mut ClientInfo)) {
        if let Some(info) = self.lock().get_mut(&id) {
            change(info);
        }
    }

    pub(crate) fn get(&self, id: u64) -> Option<ClientInfo> {
        self.lock().get(&id).cloned()
    }

    /// Every client, by id.
    pub(crate) fn all(&self) -> Vec<ClientInfo> {
        self.lock().values().cloned().collect()
    }

    pub(crate) fn count(&self) -> usize {
        self.lock().len()
    }
}
