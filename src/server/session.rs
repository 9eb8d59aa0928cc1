//! One client connection's state: `MULTI` queues and `WATCH`ed keys, mapped
//! onto certification.
//!
//! - A command outside `MULTI` is its own transaction: it begins (a causal
//!   read by default), runs, commits, and is run again from a fresh snapshot
//!   when certification aborts it. Retrying is safe because nothing of an
//!   aborted attempt was applied anywhere, and it gives `INCR` and `APPEND`
//!   Redis's atomicity.
//! - `MULTI` ... `EXEC` without `WATCH` runs every queued command in one
//!   transaction begun at `EXEC`, retried the same way.
//! - `WATCH` begins a serializable transaction at once and declares the
//!   watched keys as read. `EXEC` runs the queued commands in it, so
//!   certification aborts it when any watched key (or a key read inside)
//!   was written after the `WATCH`: `EXEC` then answers nil, exactly what
//!   Redis clients expect from optimistic locking, and nothing is retried.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};

use bytes::Bytes;

use tokio::sync::watch;

use super::command::{Hello, Op, Request, parse};
use super::exec;
use super::info;
use super::resp::{Command, Protocol, Reply};
use crate::kv::{KvError, KvStore, KvTransaction};
use crate::node::{CommitOutcome, Conflict, Error, TxnOptions};
use crate::order::Cluster;
use crate::writeset::Isolation;

/// Settings shared by every session of a server.
#[derive(Debug)]
pub(crate) struct SessionSettings {
    /// Isolation of transactions without `WATCH`.
    pub(crate) isolation: Isolation,
    /// Attempts for a transaction that certification keeps aborting.
    pub(crate) max_attempts: u32,
    /// Commands queued in one `MULTI`, at most.
    pub(crate) max_queued: usize,
    /// Bytes of arguments queued in one `MULTI`, at most.
    pub(crate) max_queued_bytes: usize,
    /// The ordering layer, for `CERTUS MEMBERS` and `CERTUS LEAVE`.
    pub(crate) order: Option<Arc<dyn Cluster>>,
    /// The next connection's client id, as `HELLO` and `CLIENT ID` report.
    pub(crate) next_client_id: AtomicU64,
}

/// The Redis release whose replies the server follows, as `HELLO` reports
/// it to clients that check versions.
pub(crate) const REDIS_VERSION: &str = "7.2.4";

/// What the connection does after a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum After {
    Continue,
    Close,
}

/// A queued `MULTI` command.
#[derive(Debug)]
enum Queued {
    Op(Op),
    /// A command whose reply does not depend on data (`PING`).
    Fixed(Reply),
}

#[derive(Debug, Default)]
struct Multi {
    queued: Vec<Queued>,
    /// Bytes of the queued commands' arguments.
    bytes: usize,
    /// A command was refused while queueing: `EXEC` discards everything.
    refused: bool,
}

/// One connection's session.
#[derive(Debug)]
pub(crate) struct Session {
    /// The daemon's current store (none during a full state transfer).
    stores: watch::Receiver<Option<KvStore>>,
    settings: Arc<SessionSettings>,
    multi: Option<Multi>,
    watch: Option<KvTransaction>,
    /// What the connection speaks; `HELLO` switches it.
    protocol: Protocol,
    id: u64,
    name: Option<Bytes>,
}

impl Session {
    pub(crate) fn new(
        stores: watch::Receiver<Option<KvStore>>,
        settings: Arc<SessionSettings>,
    ) -> Self {
        let id = settings
            .next_client_id
            .fetch_add(1, AtomicOrdering::Relaxed);
        Session {
            stores,
            settings,
            multi: None,
            watch: None,
            protocol: Protocol::Resp2,
            id,
            name: None,
        }
    }

    /// The protocol this session's replies are encoded in.
    pub(crate) fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// `HELLO`: authenticates (no password is configured, so the default
    /// user takes any, as Redis's `nopass` default user does), names the
    /// connection, switches its protocol, and describes the server.
    fn hello(&mut self, hello: Hello) -> Reply {
        if let Some((user, _)) = &hello.auth
            && user.as_ref() != b"default"
        {
            return Reply::Error(
                "WRONGPASS invalid username-password pair or user is disabled.".into(),
            );
        }
        if let Some(name) = hello.name {
            self.name = Some(name);
        }
        if let Some(protocol) = hello.protocol {
            self.protocol = protocol;
        }
        let proto = match self.protocol {
            Protocol::Resp3 => 3,
            _ => 2,
        };
        let id = i64::try_from(self.id).unwrap_or(i64::MAX);
        Reply::Map(vec![
            (Reply::bulk("server"), Reply::bulk("redis")),
            (Reply::bulk("version"), Reply::bulk(REDIS_VERSION)),
            (Reply::bulk("proto"), Reply::Integer(proto)),
            (Reply::bulk("id"), Reply::Integer(id)),
            (Reply::bulk("mode"), Reply::bulk("standalone")),
            (Reply::bulk("role"), Reply::bulk("master")),
            (Reply::bulk("modules"), Reply::Array(Some(Vec::new()))),
        ])
    }

    /// Handles one command and returns its reply.
    pub(crate) async fn handle(&mut self, command: &Command) -> (Reply, After) {
        let request = match parse(command) {
            Ok(request) => request,
            Err(reply) => {
                if let Some(multi) = &mut self.multi {
                    multi.refused = true;
                }
                return (reply, After::Continue);
            }
        };
        let reply = match (request, self.multi.is_some()) {
            (Request::Quit, _) => return (Reply::Simple("OK"), After::Close),
            (Request::Exec, true) => self.exec().await,
            (Request::Discard, true) => {
                self.multi = None;
                self.watch = None;
                Reply::Simple("OK")
            }
            (request, true) => {
                let size = command.iter().map(bytes::Bytes::len).sum();
                self.queue(request, size)
            }
            (request, false) => self.run(request).await,
        };
        (reply, After::Continue)
    }

    /// Inside `MULTI`: queues data commands and those whose reply is fixed.
    fn queue(&mut self, request: Request, size: usize) -> Reply {
        let queued = match request {
            Request::Multi => return Reply::err("MULTI calls can not be nested"),
            Request::Watch(_) => return Reply::err("WATCH inside MULTI is not allowed"),
            Request::Data(op) => Queued::Op(op),
            Request::Ping(None) => Queued::Fixed(Reply::Simple("PONG")),
            Request::Ping(Some(text)) | Request::Echo(text) => Queued::Fixed(Reply::bulk(text)),
            Request::Info(section) => Queued::Fixed(self.info(section.as_deref())),
            Request::Fixed(reply) => Queued::Fixed(reply),
            Request::Members | Request::Leave => {
                return Reply::err("CERTUS commands cannot be queued in MULTI");
            }
            Request::Hello(hello) => Queued::Fixed(self.hello(hello)),
            Request::Unwatch | Request::Exec | Request::Discard | Request::Quit => {
                Queued::Fixed(Reply::Simple("OK"))
            }
        };
        let settings = &self.settings;
        let Some(multi) = self.multi.as_mut() else {
            return Reply::err("not in MULTI");
        };
        if multi.queued.len() >= settings.max_queued
            || multi.bytes + size > settings.max_queued_bytes
        {
            multi.refused = true;
            return Reply::err("too much queued in MULTI");
        }
        multi.bytes += size;
        multi.queued.push(queued);
        Reply::Simple("QUEUED")
    }

    async fn run(&mut self, request: Request) -> Reply {
        match request {
            Request::Data(op) => match self.atomic(&[Queued::Op(op)]).await {
                Ok(mut replies) => replies.pop().unwrap_or(Reply::Bulk(None)),
                Err(reply) => reply,
            },
            Request::Ping(None) => Reply::Simple("PONG"),
            Request::Ping(Some(text)) | Request::Echo(text) => Reply::bulk(text),
            Request::Info(section) => self.info(section.as_deref()),
            Request::Multi => {
                self.multi = Some(Multi::default());
                Reply::Simple("OK")
            }
            Request::Exec => Reply::err("EXEC without MULTI"),
            Request::Discard => Reply::err("DISCARD without MULTI"),
            Request::Watch(keys) => self.watch(keys).await,
            Request::Unwatch => {
                self.watch = None;
                Reply::Simple("OK")
            }
            Request::Fixed(reply) => reply,
            Request::Members => self.members(),
            Request::Leave => self.leave().await,
            Request::Hello(hello) => self.hello(hello),
            Request::Quit => Reply::Simple("OK"),
        }
    }

    /// The store to run on, or the error for a node between stores.
    fn store(&self) -> Result<KvStore, Reply> {
        self.stores.borrow().clone().ok_or_else(|| {
            Reply::Error("LOADING this node is receiving a full state transfer".into())
        })
    }

    async fn watch(&mut self, keys: Vec<bytes::Bytes>) -> Reply {
        if self.watch.is_none() {
            let options = TxnOptions::isolation(Isolation::Serializable);
            let store = match self.store() {
                Ok(store) => store,
                Err(reply) => return reply,
            };
            match store.begin_with(options).await {
                Ok(txn) => self.watch = Some(txn),
                Err(err) => return error_reply(&err),
            }
        }
        let Some(txn) = self.watch.as_mut() else {
            return Reply::err("WATCH failed");
        };
        for key in keys {
            if let Err(err) = txn.watch(key) {
                self.watch = None;
                return error_reply(&err);
            }
        }
        Reply::Simple("OK")
    }

    async fn exec(&mut self) -> Reply {
        let multi = self.multi.take().unwrap_or_default();
        let watched = self.watch.take();
        if multi.refused {
            return Reply::Error(
                "EXECABORT Transaction discarded because of previous errors.".to_string(),
            );
        }
        let result = match watched {
            // A conflict of a watching transaction is EXEC's nil reply.
            Some(txn) => match Self::attempt(txn, &multi.queued).await {
                Ok(Attempt::Committed(replies)) => Ok(Some(replies)),
                Ok(Attempt::Conflict(_)) => Ok(None),
                Err(reply) => Err(reply),
            },
            None => self.atomic(&multi.queued).await.map(Some),
        };
        match result {
            Ok(replies) => Reply::Array(replies),
            Err(reply) => reply,
        }
    }

    /// Runs `queued` in one transaction begun now, again from a fresh
    /// snapshot while certification aborts it.
    ///
    /// Commands that only write read nothing, so they skip the causal wait
    /// at the first attempt: their position in the order already puts them
    /// after every commit acknowledged before, and a snapshot older than a
    /// concurrent write to the same key only costs a certification abort.
    /// A retry waits, so it does not meet the same conflict again.
    async fn atomic(&self, queued: &[Queued]) -> Result<Vec<Reply>, Reply> {
        let options = TxnOptions::isolation(self.settings.isolation);
        let blind = queued.iter().all(|item| match item {
            Queued::Op(op) => op.is_blind_write(),
            Queued::Fixed(_) => true,
        });
        let store = self.store()?;
        for attempt in 0..self.settings.max_attempts {
            let options = if blind && attempt == 0 {
                options.causal(false)
            } else {
                options
            };
            let txn = store
                .begin_with(options)
                .await
                .map_err(|e| error_reply(&e))?;
            match Self::attempt(txn, queued).await? {
                Attempt::Committed(replies) => return Ok(replies),
                Attempt::Conflict(conflict) if conflict.is_retryable() => {}
                Attempt::Conflict(conflict) => return Err(conflict_reply(&conflict)),
            }
        }
        Err(Reply::Error(format!(
            "CONFLICT certification aborted all {} attempts; nothing was committed",
            self.settings.max_attempts
        )))
    }

    async fn attempt(mut txn: KvTransaction, queued: &[Queued]) -> Result<Attempt, Reply> {
        let mut replies = Vec::with_capacity(queued.len());
        for item in queued {
            replies.push(match item {
                Queued::Op(op) => exec::run(op, &mut txn).map_err(|e| error_reply(&e))?,
                Queued::Fixed(reply) => reply.clone(),
            });
        }
        match txn.commit().await.map_err(|e| error_reply(&e))? {
            CommitOutcome::Committed { .. } => Ok(Attempt::Committed(replies)),
            CommitOutcome::Conflict(conflict) => Ok(Attempt::Conflict(conflict)),
        }
    }

    /// One line per member: id, peer address, voter or learner.
    fn members(&self) -> Reply {
        let Some(order) = &self.settings.order else {
            return Reply::err("this server has no cluster membership");
        };
        let lines = order.members().into_iter().map(|m| {
            let role = if m.voter { "voter" } else { "learner" };
            Reply::bulk(format!("{} {} {role}", m.id.get(), m.addr))
        });
        Reply::Array(Some(lines.collect()))
    }

    /// Removes this node from the cluster; it stops taking writes.
    async fn leave(&self) -> Reply {
        let Some(order) = &self.settings.order else {
            return Reply::err("this server has no cluster membership");
        };
        match order.leave().await {
            Ok(()) => Reply::Simple("OK"),
            Err(err) => Reply::err(err),
        }
    }

    fn info(&self, section: Option<&str>) -> Reply {
        match self.store() {
            Ok(store) => Reply::Verbatim(info::render(&store, section).into()),
            Err(reply) => reply,
        }
    }
}

enum Attempt {
    Committed(Vec<Reply>),
    Conflict(Conflict),
}

fn conflict_reply(conflict: &Conflict) -> Reply {
    Reply::Error(format!(
        "CONFLICT certification aborted the transaction: {:?}",
        conflict.reason
    ))
}

/// The error reply for a failed store operation. The first word is a code a
/// client can match on.
pub(crate) fn error_reply(err: &KvError) -> Reply {
    let code = match err {
        KvError::Node(Error::NotPrimary) => "NOTPRIMARY",
        KvError::Node(Error::OutcomeUnknown) => "UNKNOWN",
        KvError::Node(Error::Timeout { .. }) => "TIMEOUT",
        KvError::Node(Error::ShutDown) => "SHUTDOWN",
        _ => "ERR",
    };
    Reply::Error(format!("{code} {err}"))
}
