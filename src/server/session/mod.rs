//! One client connection's session: how its commands become reads on this
//! node and operations ordered across the cluster.
//!
//! - Commands that only read run on a snapshot of this node, after a
//!   causal wait: they see every write acknowledged anywhere before they
//!   started, and are never ordered.
//! - Commands that write become an ordered operation ([`Batch`]): every
//!   node runs them at their position, so none can conflict, and this node
//!   answers with the replies it computed. Pipelined commands that arrive
//!   together travel in one operation (reads among them run there too), so
//!   a pipeline costs one round of ordering and keeps its order.
//! - `MULTI` ... `EXEC` is one operation (or one snapshot, when it only
//!   reads); `WATCH` records the position it was called at, and `EXEC`
//!   carries the watched keys as the operation's condition: certification
//!   aborts it, and `EXEC` answers nil, when one was written after it.
//!   `WATCH` holds nothing open, so it never holds back garbage collection.

mod auth;
mod blocking;
mod control;
mod pubsub;

use std::sync::Arc;
use std::sync::atomic::Ordering as AtomicOrdering;

use bytes::{Bytes, BytesMut};
use tokio::sync::watch;

use super::acl::{Acl, User};
use super::clients::Clients;
use super::commands::{self, Class, lower};
use super::db::Db;
use super::executor::{Batch, BatchKind, Submitted, run_command};
use super::params::ServerFacts;
use super::resp::{Command, Protocol, Reply};
use crate::ids::Seqno;
use crate::kv::{KvError, KvStore};
use crate::node::{Error, TxnOptions};
use crate::order::Cluster;
use crate::writeset::Isolation;

/// Settings shared by every session of a server.
#[derive(Debug)]
pub(crate) struct SessionSettings {
    /// Isolation of the snapshots read-only commands run on.
    pub(crate) isolation: Isolation,
    /// Submissions of an operation that certification aborted for its age.
    pub(crate) max_attempts: u32,
    /// Commands queued in one `MULTI`, at most.
    pub(crate) max_queued: usize,
    /// Bytes of arguments queued in one `MULTI`, at most.
    pub(crate) max_queued_bytes: usize,
    /// Pipelined commands gathered into one operation, at most.
    pub(crate) max_run: usize,
    /// Bytes of arguments gathered into one operation, at most.
    pub(crate) max_run_bytes: usize,
    /// The ordering layer, for `CERTUS MEMBERS`, `LEAVE` and `FORGET`.
    pub(crate) order: Option<Arc<dyn Cluster>>,
    /// Every connected client, and the counters of `INFO stats`.
    pub(crate) clients: Arc<Clients>,
    /// What `CONFIG GET` and `INFO` report.
    pub(crate) facts: ServerFacts,
    /// Keys the reaper removed on this node.
    pub(crate) expired_keys: Arc<std::sync::atomic::AtomicU64>,
    /// This node's clients blocked on keys, woken by its executor.
    pub(crate) waiters: Arc<crate::server::blocking::Waiters>,
    /// This node's pub/sub subscriptions, delivered to by its executor.
    pub(crate) channels: Arc<crate::server::pubsub::Channels>,
    /// This node's script cache, kept by its executor.
    pub(crate) scripts: Arc<crate::server::scripting::Scripts>,
    /// When the server started.
    pub(crate) started: std::time::Instant,
    /// The users, and what each may run.
    pub(crate) acl: Arc<Acl>,
    /// Reply bytes one client's commands may gather before it is closed
    /// (Redis's `client-output-buffer-limit`, a hard limit).
    pub(crate) max_output_bytes: usize,
}

/// The Redis release whose replies the server follows, as `HELLO` and
/// `INFO` report it to clients that check versions.
pub(crate) const REDIS_VERSION: &str = "7.2.4";

/// What the connection does after a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum After {
    Continue,
    Close,
    /// `CERTUS BACKUP`: the connection streams a backup, then closes.
    Backup,
}

/// A command queued in `MULTI`.
#[derive(Debug)]
enum Queued {
    Data(Command),
    /// A command about the connection or the server, run at `EXEC` here.
    Session(Command),
}

#[derive(Debug, Default)]
struct Multi {
    queued: Vec<Queued>,
    /// Bytes of the queued commands' arguments.
    bytes: usize,
    /// A command was refused while queueing: `EXEC` discards everything.
    refused: bool,
}

/// What `WATCH` observed: the position and cluster time it was called at,
/// and the keys.
#[derive(Debug)]
struct Watch {
    view: Seqno,
    time: u64,
    keys: Vec<Bytes>,
}

/// Data commands gathered from a pipeline, not yet run.
#[derive(Debug, Default)]
struct Run {
    commands: Vec<Command>,
    bytes: usize,
    writes: bool,
}

/// One connection's session.
#[derive(Debug)]
pub(crate) struct Session {
    /// The daemon's current store (none during a full state transfer).
    stores: watch::Receiver<Option<KvStore>>,
    settings: Arc<SessionSettings>,
    multi: Option<Multi>,
    watch: Option<Watch>,
    /// What the connection speaks; `HELLO` switches it.
    protocol: Protocol,
    id: u64,
    /// `CLIENT REPLY OFF` (or `SKIP` for the next command) mutes replies;
    /// neither is answered itself, as in Redis.
    muted: Mute,
    /// Who runs the commands; `None` until `AUTH` when a password is
    /// required.
    user: Option<Arc<User>>,
    /// A reply passed the client output limit: the client is closed.
    over_output_limit: bool,
    /// Says true once the client's connection closed (a blocked client
    /// stops waiting).
    hangup: watch::Receiver<bool>,
    /// Where this client's pub/sub messages go (its connection writes
    /// them), and what it is subscribed to.
    mailbox: Option<Arc<crate::server::pubsub::Mailbox>>,
    subscriptions: pubsub::Subscriptions,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mute {
    No,
    /// Skip this many replies (`CLIENT REPLY SKIP`: its own and the next).
    Skip(u8),
    All,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.unsubscribe_all();
        self.settings.clients.disconnect(self.id);
    }
}

impl Session {
    pub(crate) fn new(
        stores: watch::Receiver<Option<KvStore>>,
        settings: Arc<SessionSettings>,
        addr: Option<std::net::SocketAddr>,
        laddr: Option<std::net::SocketAddr>,
    ) -> Self {
        let id = settings.clients.connect(addr, laddr);
        let mut session = Session {
            stores,
            settings,
            multi: None,
            watch: None,
            protocol: Protocol::Resp2,
            id,
            muted: Mute::No,
            user: None,
            over_output_limit: false,
            hangup: watch::channel(false).1,
            mailbox: None,
            subscriptions: pubsub::Subscriptions::default(),
        };
        session.become_user(session.initial_user());
        session
    }

    /// Gives the session the mailbox its connection writes messages from.
    pub(crate) fn set_mailbox(&mut self, mailbox: Arc<crate::server::pubsub::Mailbox>) {
        self.mailbox = Some(mailbox);
    }

    /// This client's id.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Has the session learn from `hangup` when its client's connection
    /// closes.
    pub(crate) fn set_hangup(&mut self, hangup: watch::Receiver<bool>) {
        self.hangup = hangup;
    }

    /// The protocol this session's replies are encoded in.
    pub(crate) fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// Answers every command of a pipeline, in order, into `out`.
    /// Consecutive data commands outside `MULTI` run together.
    pub(crate) async fn handle_all(&mut self, commands: Vec<Command>, out: &mut BytesMut) -> After {
        let mut run = Run::default();
        for argv in commands {
            if self.past_output_limit(out) {
                return After::Close;
            }
            self.settings
                .clients
                .commands_processed
                .fetch_add(1, AtomicOrdering::Relaxed);
            if let Some(reply) = self.refused_in_subscribed_mode(&argv) {
                self.flush(&mut run, out).await;
                self.emit(&reply, out);
                continue;
            }
            if let Err(reply) = self.permit(&argv) {
                self.flush(&mut run, out).await;
                if let Some(multi) = self.multi.as_mut() {
                    multi.refused = true;
                }
                self.emit(&reply, out);
                continue;
            }
            let argv = self.with_script_text(argv);
            match self.data_class(&argv) {
                Some(_) if self.multi.is_none() && blocks(&argv) => {
                    self.flush(&mut run, out).await;
                    let reply = self.block(argv).await;
                    self.emit(&reply, out);
                }
                Some(class) if self.multi.is_none() => {
                    run.bytes += argv.iter().map(Bytes::len).sum::<usize>();
                    run.writes |= matches!(class, Class::Write | Class::WriteAll);
                    run.commands.push(argv);
                    if run.commands.len() >= self.settings.max_run
                        || run.bytes >= self.settings.max_run_bytes
                    {
                        self.flush(&mut run, out).await;
                    }
                }
                _ => {
                    self.flush(&mut run, out).await;
                    let (reply, after) = self.handle(argv).await;
                    if after == After::Backup {
                        return After::Backup;
                    }
                    self.emit(&reply, out);
                    if after == After::Close {
                        return After::Close;
                    }
                }
            }
        }
        self.flush(&mut run, out).await;
        if self.past_output_limit(out) {
            return After::Close;
        }
        After::Continue
    }

    /// Whether this client's replies passed the output limit; if so they
    /// are dropped unsent and the client is to be closed, as Redis closes
    /// a client over its `client-output-buffer-limit`.
    fn past_output_limit(&mut self, out: &mut BytesMut) -> bool {
        if !self.over_output_limit && out.len() <= self.settings.max_output_bytes {
            return false;
        }
        self.close_for_output(out.len());
        out.clear();
        true
    }

    /// Writes `reply` unless replies are muted.
    fn emit(&mut self, reply: &Reply, out: &mut BytesMut) {
        if self.unmuted() {
            reply.encode_as(out, self.protocol);
        }
    }

    /// The error for a command a subscribed RESP2 client may not send.
    fn refused_in_subscribed_mode(&self, argv: &Command) -> Option<Reply> {
        if !self.subscribed() {
            return None;
        }
        let name = lower(argv.first()?);
        let shown = commands::resolve(argv).map_or_else(|| name.clone(), |s| s.name.to_string());
        self.refused_while_subscribed(&name, &shown)
    }

    /// Whether the next reply is sent (`CLIENT REPLY`); a `SKIP` is used up.
    fn unmuted(&mut self) -> bool {
        match self.muted {
            Mute::No => true,
            Mute::Skip(n) => {
                self.muted = if n > 1 { Mute::Skip(n - 1) } else { Mute::No };
                false
            }
            Mute::All => false,
        }
    }

    /// `EVALSHA sha ...` as `EVAL script ...` when this node has the
    /// script: the operation carries its text, so every node runs it
    /// whatever its own cache holds (an unknown one answers `NOSCRIPT`).
    fn with_script_text(&self, mut argv: Command) -> Command {
        let name = match argv.first() {
            Some(name) if name.eq_ignore_ascii_case(b"evalsha") => "eval",
            Some(name) if name.eq_ignore_ascii_case(b"evalsha_ro") => "eval_ro",
            _ => return argv,
        };
        if let Some(body) = argv.get(1).and_then(|sha| self.settings.scripts.get(sha)) {
            argv[0] = Bytes::from_static(name.as_bytes());
            argv[1] = body;
        }
        argv
    }

    /// The class of a well-formed data command; `None` for anything else
    /// (connection and server commands, unknown commands, bad arity). A
    /// data container (`OBJECT`, `MEMORY`) checks its subcommands itself.
    fn data_class(&self, argv: &Command) -> Option<Class> {
        let command = commands::lookup(&lower(argv.first()?))?;
        let class = commands::resolve(argv)?.class();
        (class != Class::Session && command.accepts(argv.len())).then_some(class)
    }

    /// Runs the gathered data commands: on a snapshot here when none
    /// writes, else as one ordered operation.
    async fn flush(&mut self, run: &mut Run, out: &mut BytesMut) {
        let Run {
            commands, writes, ..
        } = std::mem::take(run);
        if commands.is_empty() {
            return;
        }
        if let Some(argv) = commands.last() {
            let name = lower(&argv[0]);
            self.settings.clients.update(self.id, |c| c.command = name);
        }
        let count = commands.len();
        let replies = if writes {
            self.order(BatchKind::Pipeline(commands), None).await
        } else {
            self.read(commands).await
        };
        let replies = match replies {
            Ok(Some(replies)) => replies,
            // Every command gets an answer, the same one.
            Ok(None) => vec![Reply::err("operation aborted").to_bytes(self.protocol); count],
            Err(reply) => vec![reply.to_bytes(self.protocol); count],
        };
        for reply in replies {
            if self.unmuted() {
                out.extend_from_slice(&reply);
            }
        }
    }

    /// The store this session's commands run on now, if any.
    pub(crate) fn current_store(&self) -> Option<KvStore> {
        self.stores.borrow().clone()
    }

    /// The store to run on, or the error for a node between stores.
    fn store(&self) -> Result<KvStore, Reply> {
        self.stores.borrow().clone().ok_or_else(|| {
            Reply::Error(
                "LOADING this node is loading its dataset (a state transfer or a restart)".into(),
            )
        })
    }

    /// Runs read-only commands on one causal snapshot of this node.
    async fn read(&mut self, commands: Vec<Command>) -> Result<Option<Vec<Bytes>>, Reply> {
        let store = self.store()?;
        let options = TxnOptions::isolation(self.settings.isolation);
        let mut txn = store
            .begin_with(options)
            .await
            .map_err(|e| error_reply(&e))?;
        let (protocol, budget) = (self.protocol, self.settings.max_output_bytes);
        let scripts = self.settings.scripts.clone();
        // Engine reads block: off the async workers that carry the
        // ordering layer's heartbeats, unless they are few and fast.
        let inline = runs_inline(&commands);
        let mut run = move || {
            let mut db = Db::new(&mut txn, fresh_seed())
                .with_budget(budget)
                .with_scripts(&scripts, true);
            let mut replies = Vec::with_capacity(commands.len());
            for argv in &commands {
                let reply = run_command(&mut db, argv).map_err(|e| error_reply(&e))?;
                replies.push(reply.to_bytes(protocol));
            }
            Ok((replies, db.exceeded()))
        };
        let ran = if inline {
            Some(run())
        } else {
            crate::task::blocking(run).await
        };
        let ran =
            ran.unwrap_or_else(|| Err(Reply::Error("SHUTDOWN the server is stopping".into())));
        let (replies, exceeded) = ran?;
        if exceeded {
            self.over_output_limit = true;
        }
        Ok(Some(replies))
    }

    /// A reply of this client passed the output limit: it is closed, with
    /// Redis's log line.
    fn close_for_output(&self, bytes: usize) {
        let limit = self.settings.max_output_bytes;
        tracing::warn!(
            client = self.id,
            bytes,
            limit,
            "Client id={} closed for overcoming of output buffer limits.",
            self.id
        );
    }

    /// Orders `kind` as one operation and returns its replies: `None` when
    /// it was aborted (a watched key changed).
    async fn order(
        &self,
        kind: BatchKind,
        watch: Option<&Watch>,
    ) -> Result<Option<Vec<Bytes>>, Reply> {
        let store = self.store()?;
        let scripts = &self.settings.scripts;
        // A script known to touch undeclared keys goes wide at once.
        let kind = if kind.scripts().any(|body| scripts.is_wide(body)) {
            BatchKind::Wide(Box::new(kind))
        } else {
            kind
        };
        let mut batch = Batch {
            resp3: self.protocol == Protocol::Resp3,
            kind,
        };
        let condition = watch.map(|w| (w.view, w.keys.as_slice()));
        for _ in 0..self.settings.max_attempts {
            let submitted = batch
                .submit(&store, condition)
                .await
                .map_err(|e| error_reply(&e))?;
            match submitted {
                Submitted::Replies(replies) => return Ok(Some(replies)),
                Submitted::Aborted => return Ok(None),
                // A script touched a key it did not declare; nothing ran.
                Submitted::Widen if !matches!(batch.kind, BatchKind::Wide(_)) => {
                    let kind = std::mem::replace(&mut batch.kind, BatchKind::Pipeline(Vec::new()));
                    batch.kind = BatchKind::Wide(Box::new(kind));
                }
                Submitted::Widen => {
                    return Err(Reply::err("a script asked for a wider operation twice"));
                }
                // A watched key changed: the client decides, as with Redis.
                Submitted::Conflict if watch.is_some() => return Ok(None),
                // Ordered too late to execute (it waited out the whole
                // certification window): nothing ran, so again.
                Submitted::Conflict => {}
            }
        }
        Err(Reply::Error(format!(
            "TIMEOUT the operation was ordered too late to run {} times; nothing was executed",
            self.settings.max_attempts
        )))
    }

    /// Handles one command that is not run with others: connection and
    /// server commands, `MULTI` and its queue, and malformed commands.
    async fn handle(&mut self, argv: Command) -> (Reply, After) {
        let Some(name) = argv.first().map(|n| lower(n)) else {
            return (Reply::err("empty command"), After::Continue);
        };
        // `cmd=` shows a subcommand as Redis does: `client|list`.
        let shown = match argv.get(1) {
            Some(sub) if matches!(name.as_str(), "client" | "config" | "command") => {
                format!("{name}|{}", lower(sub))
            }
            _ => name.clone(),
        };
        self.settings.clients.update(self.id, |c| {
            c.command = shown;
            c.last_command = std::time::Instant::now();
        });
        if self.multi.is_some()
            && !matches!(
                name.as_str(),
                "exec" | "discard" | "multi" | "watch" | "quit" | "reset"
            )
        {
            return (self.queue(argv), After::Continue);
        }
        match name.as_str() {
            "multi" => (self.multi(), After::Continue),
            "exec" => (self.exec().await, After::Continue),
            "discard" => (self.discard(), After::Continue),
            "watch" => (self.watch(&argv).await, After::Continue),
            _ => self.control(&name, &argv).await,
        }
    }

    fn multi(&mut self) -> Reply {
        if self.multi.is_some() {
            return Reply::err("MULTI calls can not be nested");
        }
        self.multi = Some(Multi::default());
        self.settings.clients.update(self.id, |c| c.multi = Some(0));
        Reply::ok()
    }

    fn discard(&mut self) -> Reply {
        if self.multi.is_none() {
            return Reply::err("DISCARD without MULTI");
        }
        self.end_multi();
        Reply::ok()
    }

    fn end_multi(&mut self) {
        self.multi = None;
        self.set_watch(None);
        self.settings.clients.update(self.id, |c| c.multi = None);
    }

    fn set_watch(&mut self, watch: Option<Watch>) {
        let watching = watch.as_ref().map_or(0, |w| w.keys.len());
        self.watch = watch;
        self.settings
            .clients
            .update(self.id, |c| c.watching = watching);
    }

    /// Inside `MULTI`: checks the command exists and its arity (Redis
    /// refuses the `EXEC` then), and queues it.
    fn queue(&mut self, argv: Command) -> Reply {
        let name = lower(&argv[0]);
        let spec = commands::lookup(&name);
        let refusal = match spec {
            None if name == "certus" => {
                Some(Reply::err("Command not allowed inside a transaction"))
            }
            None => Some(control::unknown_command(&argv)),
            Some(spec) if !spec.accepts(argv.len()) => Some(commands::arity_error(&name)),
            Some(_) => None,
        };
        let settings = self.settings.clone();
        let Some(multi) = self.multi.as_mut() else {
            return Reply::err("not in MULTI");
        };
        let size = argv.iter().map(Bytes::len).sum::<usize>();
        if refusal.is_none()
            && (multi.queued.len() >= settings.max_queued
                || multi.bytes + size > settings.max_queued_bytes)
        {
            multi.refused = true;
            return Reply::err("too many commands queued in MULTI");
        }
        if let Some(reply) = refusal {
            multi.refused = true;
            return reply;
        }
        let data = commands::resolve(&argv).is_some_and(|s| s.class() != Class::Session);
        multi.bytes += size;
        multi.queued.push(if data {
            Queued::Data(argv)
        } else {
            Queued::Session(argv)
        });
        let queued = multi.queued.len();
        settings.clients.update(self.id, |c| c.multi = Some(queued));
        Reply::Simple("QUEUED")
    }

    async fn exec(&mut self) -> Reply {
        let Some(multi) = self.multi.take() else {
            return Reply::err("EXEC without MULTI");
        };
        let watch = self.watch.take();
        self.end_multi();
        if multi.refused {
            return Reply::Error(
                "EXECABORT Transaction discarded because of previous errors.".into(),
            );
        }
        let data: Vec<Command> = multi
            .queued
            .iter()
            .filter_map(|q| match q {
                Queued::Data(argv) => Some(argv.clone()),
                Queued::Session(_) => None,
            })
            .collect();
        let writes = data
            .iter()
            .any(|argv| matches!(self.data_class(argv), Some(Class::Write | Class::WriteAll)));
        let replies = if data.is_empty() && watch.is_none() {
            Ok(Some(Vec::new()))
        } else if !writes && watch.is_none() {
            self.read(data).await
        } else {
            let kind = BatchKind::Exec {
                commands: data,
                watched: watch.as_ref().map(|w| w.keys.clone()).unwrap_or_default(),
                watch_time: watch.as_ref().map_or(0, |w| w.time),
            };
            self.order(kind, watch.as_ref()).await
        };
        let mut replies = match replies {
            Ok(Some(replies)) => replies.into_iter(),
            Ok(None) => return Reply::Array(None),
            Err(reply) => return reply,
        };
        let mut items = Vec::with_capacity(multi.queued.len());
        for queued in multi.queued {
            items.push(match queued {
                Queued::Data(_) => Reply::Raw(replies.next().unwrap_or_default()),
                Queued::Session(argv) => {
                    let name = lower(&argv[0]);
                    self.control(&name, &argv).await.0
                }
            });
        }
        Reply::Array(Some(items))
    }

    /// `WATCH`: the position and cluster time of a causal read now.
    async fn watch(&mut self, argv: &Command) -> Reply {
        if self.multi.is_some() {
            return Reply::err("WATCH inside MULTI is not allowed");
        }
        if argv.len() < 2 {
            return commands::arity_error("watch");
        }
        let store = match self.store() {
            Ok(store) => store,
            Err(reply) => return reply,
        };
        let keys = argv[1..].to_vec();
        let watch = match self.watch.take() {
            // A later WATCH adds keys; all share the first one's position,
            // so a change between the two aborts too (never too few).
            Some(mut watch) => {
                watch.keys.extend(keys);
                watch
            }
            None => match store.begin().await {
                Ok(txn) => Watch {
                    view: txn.read_view(),
                    time: txn.time().as_millis(),
                    keys,
                },
                Err(err) => return error_reply(&err),
            },
        };
        self.set_watch(Some(watch));
        Reply::ok()
    }
}

/// Reads run on the async worker serving the connection, rather than on a
/// blocking thread, when they are at most this many commands...
const INLINE_COMMANDS: usize = 8;
/// ...each with at most this many arguments (its name included).
const INLINE_ARGS: usize = 8;

/// Whether `commands` are few and each one Redis flags `fast` (O(1) or
/// O(log N): `GET`, `EXISTS`, `TTL`, a short `MGET`), so running them here
/// costs less than the two thread hand-offs of a blocking thread (a read
/// from the engine's cache takes microseconds; the hop back and forth, a
/// context switch each way). Anything larger, or a scan, still runs off
/// the async workers that carry the ordering layer's heartbeats.
/// Whether `argv` is a blocking command (outside `MULTI`, it waits).
fn blocks(argv: &Command) -> bool {
    argv.first()
        .and_then(|name| commands::lookup(&lower(name)))
        .is_some_and(|spec| spec.has_flag("blocking"))
}

fn runs_inline(commands: &[Command]) -> bool {
    commands.len() <= INLINE_COMMANDS
        && commands.iter().all(|argv| {
            argv.len() <= INLINE_ARGS
                && argv
                    .first()
                    .and_then(|name| commands::lookup(&lower(name)))
                    // DBSIZE is fast in Redis, a scan here (`ReadAll`).
                    .is_some_and(|spec| spec.has_flag("fast") && spec.class() == Class::Read)
        })
}

/// A seed no two reads share, for `RANDOMKEY` on a snapshot.
fn fresh_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
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
