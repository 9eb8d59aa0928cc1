//! A session's subscriptions (`SUBSCRIBE`, `PSUBSCRIBE`, their `UN`
//! forms, `PUBSUB`): see [`crate::server::pubsub`] for how messages reach
//! every node's subscribers.

use std::collections::BTreeSet;

use bytes::{Bytes, BytesMut};

use super::Session;
use crate::server::commands::{arity_error, lower, unknown_subcommand};
use crate::server::pubsub::Kind;
use crate::server::resp::{Command, Protocol, Reply};

/// What a session is subscribed to.
#[derive(Debug, Default)]
pub(super) struct Subscriptions {
    channels: BTreeSet<Bytes>,
    patterns: BTreeSet<Bytes>,
}

impl Subscriptions {
    fn count(&self) -> usize {
        self.channels.len() + self.patterns.len()
    }

    fn of(&mut self, kind: Kind) -> &mut BTreeSet<Bytes> {
        match kind {
            Kind::Channel => &mut self.channels,
            Kind::Pattern => &mut self.patterns,
        }
    }
}

/// Commands a RESP2 client may send while subscribed.
const WHILE_SUBSCRIBED: &[&str] = &[
    "ping",
    "subscribe",
    "unsubscribe",
    "psubscribe",
    "punsubscribe",
    "ssubscribe",
    "sunsubscribe",
    "quit",
    "reset",
];

impl Session {
    /// Whether the session has any subscription.
    pub(super) fn subscribed(&self) -> bool {
        self.subscriptions.count() > 0
    }

    /// The error a RESP2 client gets for `name` while subscribed, if any.
    pub(super) fn refused_while_subscribed(&self, name: &str, shown: &str) -> Option<Reply> {
        (self.protocol == Protocol::Resp2 && self.subscribed() && !WHILE_SUBSCRIBED.contains(&name))
            .then(|| {
                Reply::err(format_args!(
                    "Can't execute '{shown}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
                ))
            })
    }

    /// `PING` of a subscribed RESP2 client: `["pong", message]`.
    pub(super) fn subscribed_ping(&self, argv: &Command) -> Option<Reply> {
        (self.protocol == Protocol::Resp2 && self.subscribed()).then(|| {
            let message = argv.get(1).cloned().unwrap_or_default();
            Reply::Array(Some(vec![Reply::bulk("pong"), Reply::Bulk(Some(message))]))
        })
    }

    /// A confirmation frame: `[kind, name or nil, subscriptions]`.
    fn confirmation(&self, what: &'static str, name: Option<Bytes>) -> Reply {
        Reply::Push(vec![
            Reply::bulk(what),
            Reply::Bulk(name),
            Reply::len(self.subscriptions.count()),
        ])
    }

    /// `SUBSCRIBE`/`PSUBSCRIBE name [name ...]`: one confirmation each.
    pub(super) fn subscribe(&mut self, kind: Kind, argv: &Command) -> Reply {
        let Some(mailbox) = self.mailbox.clone() else {
            return Reply::err("this connection cannot receive messages");
        };
        mailbox.set_protocol(self.protocol);
        let what = match kind {
            Kind::Channel => "subscribe",
            Kind::Pattern => "psubscribe",
        };
        let mut out = BytesMut::new();
        for name in &argv[1..] {
            if self.subscriptions.of(kind).insert(name.clone()) {
                self.settings.channels.subscribe(kind, name, &mailbox);
            }
            self.confirmation(what, Some(name.clone()))
                .encode_as(&mut out, self.protocol);
        }
        Reply::Raw(out.freeze())
    }

    /// `UNSUBSCRIBE`/`PUNSUBSCRIBE [name ...]` (none: all of them): one
    /// confirmation each, or one with nil when there was nothing.
    pub(super) fn unsubscribe(&mut self, kind: Kind, argv: &Command) -> Reply {
        let what = match kind {
            Kind::Channel => "unsubscribe",
            Kind::Pattern => "punsubscribe",
        };
        let names: Vec<Bytes> = if argv.len() > 1 {
            argv[1..].to_vec()
        } else {
            self.subscriptions.of(kind).iter().cloned().collect()
        };
        let mut out = BytesMut::new();
        if names.is_empty() {
            self.confirmation(what, None)
                .encode_as(&mut out, self.protocol);
        }
        for name in names {
            if self.subscriptions.of(kind).remove(&name) {
                self.settings.channels.unsubscribe(kind, &name, self.id);
            }
            self.confirmation(what, Some(name))
                .encode_as(&mut out, self.protocol);
        }
        Reply::Raw(out.freeze())
    }

    /// Ends every subscription (`RESET`, and when the client leaves).
    pub(super) fn unsubscribe_all(&mut self) {
        for kind in [Kind::Channel, Kind::Pattern] {
            for name in std::mem::take(self.subscriptions.of(kind)) {
                self.settings.channels.unsubscribe(kind, &name, self.id);
            }
        }
    }

    /// `PUBSUB CHANNELS [pattern]`, `NUMSUB [channel ...]`, `NUMPAT`,
    /// `HELP`: this node's subscriptions.
    pub(super) fn pubsub(&self, argv: &Command) -> Reply {
        let sub = lower(&argv[1]);
        let channels = &self.settings.channels;
        match (sub.as_str(), argv.len()) {
            ("channels", 2 | 3) => {
                let active = channels.active(argv.get(2).map(|p| p.as_ref()));
                Reply::Array(Some(
                    active.into_iter().map(|c| Reply::Bulk(Some(c))).collect(),
                ))
            }
            ("numsub", _) => Reply::Array(Some(
                argv[2..]
                    .iter()
                    .flat_map(|c| {
                        [
                            Reply::Bulk(Some(c.clone())),
                            Reply::len(channels.subscribers(c)),
                        ]
                    })
                    .collect(),
            )),
            ("numpat", 2) => Reply::len(channels.patterns()),
            ("help", 2) => pubsub_help(),
            ("channels" | "numpat" | "help", _) => arity_error(&format!("pubsub|{sub}")),
            _ => unknown_subcommand("pubsub", &argv[1]),
        }
    }
}

fn pubsub_help() -> Reply {
    let lines = [
        "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "CHANNELS [<pattern>]",
        "    Return the currently active channels matching a <pattern> (default: '*').",
        "NUMPAT",
        "    Return number of subscriptions to patterns.",
        "NUMSUB [<channel> ...]",
        "    Return the number of subscribers for the specified channels, excluding",
        "    pattern subscriptions(default: no channels).",
        "HELP",
        "    Print this help.",
    ];
    Reply::Array(Some(lines.iter().map(|l| Reply::Simple(l)).collect()))
}
