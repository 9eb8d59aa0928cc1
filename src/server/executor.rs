//! Redis commands as ordered operations: what a session submits (a
//! [`Batch`] of commands with their keys declared) and what every node's
//! store runs at the operation's position ([`RedisExecutor`]).
//!
//! Every node executes the same commands against the same state at the
//! same cluster time, so every node makes the same change and computes the
//! same replies; only the node the client is connected to sends them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::blocking::Waiters;
use super::commands::{self, Class, arity_error, lower};
use super::db::{self, Db};
use super::pubsub::Channels;
use super::resp::{Protocol, Reply};
use super::scripting::{Scripts, may_publish};
use crate::ids::Seqno;
use crate::kv::{Execution, Executor, KvError, KvStore};
use crate::node::OperationOutcome;
use crate::writeset::{Operation, Scope};

/// What one Redis operation carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Batch {
    /// The protocol the replies are encoded in (the client's).
    pub(crate) resp3: bool,
    pub(crate) kind: BatchKind,
}

/// The kinds of Redis operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum BatchKind {
    /// Pipelined commands, run one after another: one reply each.
    Pipeline(Vec<Vec<Bytes>>),
    /// A `MULTI` ... `EXEC` block: the commands' replies, or nothing at
    /// all when a watched key expired since `WATCH` (Redis aborts then;
    /// a watched key written since is certification's abort).
    Exec {
        commands: Vec<Vec<Bytes>>,
        watched: Vec<Bytes>,
        /// The cluster time at `WATCH`.
        watch_time: u64,
    },
    /// The reaper: remove each key still due at its deadline.
    Expire(Vec<(Bytes, u64)>),
    /// The same commands again, in an operation that covers every key: a
    /// script among them touched a key it did not declare (see
    /// [`Output::Widen`]).
    Wide(Box<BatchKind>),
}

impl BatchKind {
    /// The client commands it runs (none for the reaper's).
    pub(crate) fn commands(&self) -> &[Vec<Bytes>] {
        match self {
            BatchKind::Pipeline(commands) | BatchKind::Exec { commands, .. } => commands,
            BatchKind::Expire(_) => &[],
            BatchKind::Wide(inner) => inner.commands(),
        }
    }

    /// Whether one of its commands runs a script.
    fn scripted(&self) -> bool {
        self.scripts().next().is_some()
    }

    /// The texts of the scripts it runs.
    pub(crate) fn scripts(&self) -> impl Iterator<Item = &Bytes> {
        self.commands()
            .iter()
            .filter_map(|argv| match argv.first() {
                Some(name) if name.eq_ignore_ascii_case(b"eval") => argv.get(1),
                _ => None,
            })
    }
}

/// What executing a batch returned, per command, encoded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Output {
    Replies(Vec<Bytes>),
    /// A watched key expired: `EXEC` answers nil.
    Aborted,
    /// A script touched a key its operation did not declare: every node
    /// dropped the operation's effects at the same point, and the batch is
    /// to be submitted again as [`BatchKind::Wide`].
    Widen,
}

impl Batch {
    fn protocol(&self) -> Protocol {
        if self.resp3 {
            Protocol::Resp3
        } else {
            Protocol::Resp2
        }
    }

    /// Submits the batch as an operation on `store`, its keys declared
    /// (and `watch`, the view and keys of `WATCH`, as its condition), and
    /// returns the outcome and the replies.
    pub(crate) async fn submit(
        &self,
        store: &KvStore,
        watch: Option<(Seqno, &[Bytes])>,
    ) -> Result<Submitted, KvError> {
        let payload = postcard::to_allocvec(self).map_err(|err| {
            KvError::Node(crate::node::Error::Encode(
                crate::frame::FrameError::MalformedBody {
                    kind: crate::frame::FrameKind::Operation,
                    reason: err.to_string(),
                },
            ))
        })?;
        let mut op = store.operation(payload)?;
        for (key, write) in self.declared() {
            if write {
                op.write(db::record_key(&key));
            } else {
                op.read(db::record_key(&key));
            }
        }
        if self.publishes() {
            op.write(db::publications_key());
        }
        op.cover(self.scope());
        if let Some((view, keys)) = watch {
            for key in keys {
                op.read(db::record_key(key));
                op.watch(view, db::record_key(key));
            }
        }
        Ok(match op.submit().await? {
            OperationOutcome::Executed { output, .. } => {
                match postcard::from_bytes::<Output>(&output) {
                    Ok(Output::Replies(replies)) => Submitted::Replies(replies),
                    Ok(Output::Aborted) => Submitted::Aborted,
                    Ok(Output::Widen) => Submitted::Widen,
                    Err(_) => Submitted::Replies(vec![
                        Reply::err("this node could not read its own output")
                            .to_bytes(self.protocol()),
                    ]),
                }
            }
            OperationOutcome::Conflict(_) => Submitted::Conflict,
        })
    }

    /// Every key the commands name, and whether they write it.
    fn declared(&self) -> Vec<(Bytes, bool)> {
        if let BatchKind::Expire(keys) = &self.kind {
            return keys.iter().map(|(key, _)| (key.clone(), true)).collect();
        }
        let mut keys = Vec::new();
        for argv in self.kind.commands() {
            let Some(spec) = commands::resolve(argv) else {
                continue;
            };
            let write = spec.class() != Class::Read;
            keys.extend(spec.keys(argv).map(|key| (key.clone(), write)));
        }
        keys
    }

    /// Whether a command publishes (and so runs in the order of
    /// publications).
    fn publishes(&self) -> bool {
        let publish = |argv: &Vec<Bytes>| {
            argv.first()
                .is_some_and(|name| name.eq_ignore_ascii_case(b"publish"))
        };
        self.kind.commands().iter().any(publish)
            || self.kind.scripts().any(|body| may_publish(body))
    }

    /// The widest scope of its commands.
    fn scope(&self) -> Scope {
        if let BatchKind::Wide(_) = self.kind {
            return Scope::WritesAll;
        }
        let mut scope = Scope::Keys;
        for argv in self.kind.commands() {
            let class = argv
                .first()
                .and_then(|name| commands::lookup(&lower(name)))
                .map(commands::Spec::class);
            scope = match class {
                Some(Class::WriteAll) => Scope::WritesAll,
                Some(Class::ReadAll) if scope == Scope::Keys => Scope::ReadsAll,
                _ => scope,
            };
        }
        scope
    }
}

/// How a submitted batch ended.
#[derive(Debug)]
pub(crate) enum Submitted {
    /// It ran: each command's encoded reply.
    Replies(Vec<Bytes>),
    /// A watched key expired since `WATCH`: nothing ran.
    Aborted,
    /// Certification aborted it (a watched key was written, or it waited
    /// longer than the certification window): nothing ran.
    Conflict,
    /// A script touched a key it did not declare: nothing ran; submit it
    /// again as [`BatchKind::Wide`].
    Widen,
}

/// Runs Redis batches at their position. Counts the keys it reaped (every
/// node reaps the same keys), for `INFO`'s `expired_keys`; its commands
/// wake this node's clients blocked on a key they filled, deliver
/// publications to this node's subscribers and keep this node's script
/// cache.
#[derive(Debug, Default)]
pub(crate) struct RedisExecutor {
    pub(crate) expired_keys: Arc<AtomicU64>,
    pub(crate) waiters: Arc<Waiters>,
    pub(crate) channels: Arc<Channels>,
    pub(crate) scripts: Arc<Scripts>,
}

impl Executor for RedisExecutor {
    fn execute(&self, op: &Operation, keys: &mut Execution<'_>) -> Result<Bytes, KvError> {
        let seed = keys.seqno().get();
        let output = match postcard::from_bytes::<Batch>(op.payload()) {
            Ok(batch) => self.run_batch(keys, seed, &batch)?,
            // The same bytes on every node: every node answers the same.
            Err(_) => Output::Replies(vec![
                Reply::err("malformed operation payload").to_bytes(Protocol::Resp2),
            ]),
        };
        let encoded = postcard::to_allocvec(&output).unwrap_or_default();
        Ok(Bytes::from(encoded))
    }
}

impl RedisExecutor {
    /// Runs `batch`; when a script in it needs more keys than it declared,
    /// drops everything it wrote and asks for it again, widened.
    fn run_batch(
        &self,
        keys: &mut Execution<'_>,
        seed: u64,
        batch: &Batch,
    ) -> Result<Output, KvError> {
        let mut db = Db::new(keys, seed)
            .with_channels(&self.channels)
            .with_waiters(&self.waiters)
            .with_scripts(&self.scripts, false);
        if let BatchKind::Wide(_) = batch.kind {
            db = db.with_every_key();
        } else if batch.kind.scripted() {
            db = db.with_deferred_publications();
        }
        let output = self.run(&mut db, &batch.kind, batch.protocol())?;
        if db.needs_widening() {
            drop(db);
            keys.discard();
            for body in batch.kind.scripts() {
                self.scripts
                    .mark_wide(crate::server::scripting::sha1hex(body));
            }
            return Ok(Output::Widen);
        }
        for (channel, message) in db.take_deferred() {
            self.channels.publish(&channel, &message);
        }
        Ok(output)
    }

    fn run(
        &self,
        db: &mut Db<'_>,
        kind: &BatchKind,
        protocol: Protocol,
    ) -> Result<Output, KvError> {
        let run_all = |db: &mut Db<'_>, commands: &[Vec<Bytes>]| {
            commands
                .iter()
                .map(|argv| Ok(run_command(db, argv)?.to_bytes(protocol)))
                .collect::<Result<Vec<Bytes>, KvError>>()
        };
        Ok(match kind {
            BatchKind::Pipeline(commands) => Output::Replies(run_all(db, commands)?),
            BatchKind::Exec {
                commands,
                watched,
                watch_time,
            } => {
                for key in watched {
                    let deadline = db.lookup_deadline(key)?;
                    if deadline.is_some_and(|d| d > *watch_time && d <= db.now()) {
                        return Ok(Output::Aborted);
                    }
                }
                Output::Replies(run_all(db, commands)?)
            }
            BatchKind::Expire(due) => {
                let mut reaped = 0;
                for (key, deadline) in due {
                    reaped += u64::from(db.reap(key, *deadline)?);
                }
                self.expired_keys.fetch_add(reaped, Ordering::Relaxed);
                Output::Replies(vec![Reply::Integer(reaped as i64).to_bytes(protocol)])
            }
            BatchKind::Wide(inner) => self.run(db, inner, protocol)?,
        })
    }
}

/// Runs one data command, checking what the session checked when it was
/// submitted (the same on every node).
pub(crate) fn run_command(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    let Some(name) = argv.first().map(|n| lower(n)) else {
        return Ok(Reply::err("empty command"));
    };
    let Some(container) = commands::lookup(&name) else {
        return Ok(Reply::err(format_args!("unknown command '{name}'")));
    };
    let spec = commands::resolve(argv).unwrap_or(container);
    if spec.class() == Class::Session {
        return Ok(Reply::err(format_args!("unknown command '{name}'")));
    }
    if !container.accepts(argv.len()) {
        return Ok(arity_error(&name));
    }
    if !spec.accepts(argv.len()) {
        return Ok(arity_error(spec.name));
    }
    commands::run(db, spec.name, argv)
}
