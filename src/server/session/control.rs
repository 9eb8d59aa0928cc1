//! Commands about the connection and the server: `PING`, `HELLO`,
//! `CLIENT`, `CONFIG`, `COMMAND`, `INFO`, `TIME` and the rest, with Redis
//! 7.2's replies and error texts, and certus's own `CERTUS`.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::{After, Mute, REDIS_VERSION, Session, auth};
use crate::server::commands::{
    self, COMMANDS, Spec, arity_error, lower, not_integer, parse_i64, unknown_subcommand,
};
use crate::server::info;
use crate::server::pubsub::Kind;
use crate::server::resp::{Command, Protocol, Reply};

/// Redis's error for a command it does not know: the name as sent, and
/// the first arguments (up to 128 bytes), each followed by a space.
pub(super) fn unknown_command(argv: &Command) -> Reply {
    let name = String::from_utf8_lossy(&argv[0]);
    let mut args = String::new();
    for arg in &argv[1..] {
        if args.len() >= 128 {
            break;
        }
        let room = 128 - args.len();
        let arg = String::from_utf8_lossy(arg);
        let arg: String = arg.chars().take(room).collect();
        args.push_str(&format!("'{arg}' "));
    }
    let name: String = name.chars().take(128).collect();
    Reply::err(format_args!(
        "unknown command '{name}', with args beginning with: {args}"
    ))
}

/// The spec of `container`'s subcommand in `argv[1]`, arity checked.
fn subcommand(container: &str, argv: &Command) -> Result<(&'static Spec, String), Reply> {
    let sub = argv.get(1).map(|s| lower(s)).unwrap_or_default();
    let name = format!("{container}|{sub}");
    let spec = commands::lookup(&name).ok_or_else(|| unknown_subcommand(container, &argv[1]))?;
    if !spec.accepts(argv.len()) {
        return Err(arity_error(&name));
    }
    Ok((spec, sub))
}

const SCRIPT_HELP: &[&str] = &[
    "EXISTS <sha1> [<sha1> ...]",
    "    Return information about the existence of the scripts in the script cache.",
    "FLUSH [ASYNC|SYNC]",
    "    Flush the Lua scripts cache. Very dangerous on replicas.",
    "    When called without the optional mode argument, the behavior is determined by the",
    "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
    "    * ASYNC: Asynchronously flush the scripts cache.",
    "    * SYNC: Synchronously flush the scripts cache.",
    "KILL",
    "    Kill the currently executing Lua script.",
    "LOAD <script>",
    "    Load a script into the scripts cache without executing it.",
];

impl Session {
    /// Runs a connection or server command (or answers an unknown one).
    pub(super) async fn control(&mut self, name: &str, argv: &Command) -> (Reply, After) {
        if name == "certus" {
            if argv.len() == 2 && lower(&argv[1]) == "backup" {
                return match self.store() {
                    Ok(_) => (Reply::ok(), After::Backup),
                    Err(reply) => (reply, After::Continue),
                };
            }
            return (self.certus(argv).await, After::Continue);
        }
        let Some(spec) = commands::lookup(name) else {
            return (unknown_command(argv), After::Continue);
        };
        if !spec.accepts(argv.len()) {
            return (arity_error(name), After::Continue);
        }
        let reply = match name {
            "ping" => match (self.subscribed_ping(argv), argv.get(1)) {
                (Some(reply), _) => reply,
                (None, None) => Reply::Simple("PONG"),
                (None, Some(text)) => Reply::Bulk(Some(text.clone())),
            },
            "subscribe" => self.subscribe(Kind::Channel, argv),
            "psubscribe" => self.subscribe(Kind::Pattern, argv),
            "unsubscribe" => self.unsubscribe(Kind::Channel, argv),
            "punsubscribe" => self.unsubscribe(Kind::Pattern, argv),
            "pubsub" => self.pubsub(argv),
            "script" => match subcommand("script", argv) {
                Ok((_, sub)) => self.script(&sub, argv),
                Err(reply) => reply,
            },
            "echo" => Reply::Bulk(Some(argv[1].clone())),
            "quit" => return (Reply::ok(), After::Close),
            "unwatch" => {
                self.set_watch(None);
                Reply::ok()
            }
            "reset" => self.reset(),
            "hello" => self.hello(argv),
            "auth" => self.auth(argv),
            "acl" => match subcommand("acl", argv) {
                Ok((_, sub)) => self.acl(&sub, argv),
                Err(reply) => reply,
            },
            "select" => match parse_i64(&argv[1]) {
                Ok(0) => Reply::ok(),
                Ok(n) if i32::try_from(n).is_ok() => Reply::err("DB index is out of range"),
                _ => not_integer(),
            },
            "client" => self.client(argv),
            "config" => self.config(argv),
            "command" => command(argv),
            "info" => self.info(&argv[1..]).await,
            "time" => time(),
            "lastsave" => Reply::Integer(self.started_unix()),
            // Every data command runs elsewhere; this is never reached for
            // them, but a spec without a handler must not panic.
            _ => unknown_command(argv),
        };
        (reply, After::Continue)
    }

    /// `SCRIPT EXISTS`, `KILL` and `HELP` (`LOAD` and `FLUSH` are
    /// ordered operations, run on every node).
    fn script(&self, sub: &str, argv: &Command) -> Reply {
        let scripts = &self.settings.scripts;
        match sub {
            "exists" => Reply::Array(Some(
                argv[2..]
                    .iter()
                    .map(|sha| Reply::Integer(i64::from(scripts.get(sha).is_some())))
                    .collect(),
            )),
            "kill" => scripts.kill(),
            "help" => commands::help("script", SCRIPT_HELP),
            _ => unknown_command(argv),
        }
    }

    fn started_unix(&self) -> i64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let up = self.settings.started.elapsed().as_secs();
        i64::try_from(now.saturating_sub(up)).unwrap_or(0)
    }

    /// `RESET`: the connection as it was when it connected.
    fn reset(&mut self) -> Reply {
        self.end_multi();
        self.unsubscribe_all();
        let user = self.initial_user();
        self.become_user(user);
        self.protocol = Protocol::Resp2;
        self.muted = Mute::No;
        self.settings.clients.update(self.id, |c| {
            c.name = None;
            c.resp = 2;
        });
        Reply::Simple("RESET")
    }

    /// `HELLO [protover [AUTH user pass] [SETNAME name]]`.
    fn hello(&mut self, argv: &Command) -> Reply {
        let mut rest = &argv[1..];
        let mut protocol = self.protocol;
        if let Some((version, after)) = rest.split_first() {
            protocol = match parse_i64(version) {
                Ok(2) => Protocol::Resp2,
                Ok(3) => Protocol::Resp3,
                Ok(_) => return Reply::Error("NOPROTO unsupported protocol version".into()),
                Err(_) => {
                    return Reply::err("Protocol version is not an integer or out of range");
                }
            };
            rest = after;
        }
        let mut name = None;
        let mut credentials = None;
        while let Some((option, after)) = rest.split_first() {
            match (lower(option).as_str(), after) {
                ("auth", [user, pass, tail @ ..]) => {
                    credentials = Some((user.clone(), pass.clone()));
                    rest = tail;
                }
                ("setname", [client, tail @ ..]) => {
                    if let Err(reply) = check_name(client) {
                        return reply;
                    }
                    name = Some(client.clone());
                    rest = tail;
                }
                _ => {
                    let option = String::from_utf8_lossy(option);
                    return Reply::err(format_args!("Syntax error in HELLO option '{option}'"));
                }
            }
        }
        if let Some((user, pass)) = credentials
            && !self.login(&user, &pass)
        {
            return auth::wrongpass();
        }
        if !self.authenticated() {
            return Reply::Error(
                "NOAUTH HELLO must be called with the client already authenticated, otherwise \
                 the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the \
                 client and select the RESP protocol version at the same time"
                    .into(),
            );
        }
        self.protocol = protocol;
        if let Some(mailbox) = &self.mailbox {
            mailbox.set_protocol(protocol);
        }
        let id = i64::try_from(self.id).unwrap_or(i64::MAX);
        self.settings.clients.update(self.id, |c| {
            c.resp = protocol.version();
            if name.is_some() {
                c.name = name;
            }
        });
        Reply::Map(vec![
            (Reply::bulk("server"), Reply::bulk("redis")),
            (Reply::bulk("version"), Reply::bulk(REDIS_VERSION)),
            (Reply::bulk("proto"), Reply::Integer(protocol.version())),
            (Reply::bulk("id"), Reply::Integer(id)),
            (Reply::bulk("mode"), Reply::bulk("standalone")),
            (Reply::bulk("role"), Reply::bulk("master")),
            (Reply::bulk("modules"), Reply::Array(Some(Vec::new()))),
        ])
    }

    fn client(&mut self, argv: &Command) -> Reply {
        let (_, sub) = match subcommand("client", argv) {
            Ok(found) => found,
            Err(reply) => return reply,
        };
        let clients = &self.settings.clients;
        match sub.as_str() {
            "id" => Reply::Integer(i64::try_from(self.id).unwrap_or(i64::MAX)),
            "getname" => Reply::Bulk(clients.get(self.id).and_then(|c| c.name)),
            "setname" => match check_name(&argv[2]) {
                Ok(()) => {
                    let name = (!argv[2].is_empty()).then(|| argv[2].clone());
                    clients.update(self.id, |c| c.name = name);
                    Reply::ok()
                }
                Err(reply) => reply,
            },
            "setinfo" => self.setinfo(&argv[2], &argv[3]),
            "info" => {
                let line = clients.get(self.id).map(|c| c.line()).unwrap_or_default();
                Reply::Verbatim(Bytes::from(format!("{line}\n")))
            }
            "list" => self.client_list(&argv[2..]),
            "no-evict" | "no-touch" => match lower(&argv[2]).as_str() {
                "on" | "off" => Reply::ok(),
                _ => commands::syntax_error(),
            },
            "reply" => match lower(&argv[2]).as_str() {
                "on" => {
                    self.muted = Mute::No;
                    Reply::ok()
                }
                "off" => {
                    self.muted = Mute::All;
                    Reply::ok()
                }
                "skip" => {
                    self.muted = Mute::Skip(2);
                    Reply::ok()
                }
                _ => commands::syntax_error(),
            },
            _ => unknown_subcommand("client", &argv[1]),
        }
    }

    fn setinfo(&mut self, attribute: &Bytes, value: &Bytes) -> Reply {
        if !value.iter().copied().all(printable) {
            return Reply::err(format_args!(
                "{} cannot contain spaces, newlines or special characters.",
                lower(attribute)
            ));
        }
        let value = (!value.is_empty()).then(|| value.clone());
        match lower(attribute).as_str() {
            "lib-name" => self
                .settings
                .clients
                .update(self.id, |c| c.lib_name = value),
            "lib-ver" => self.settings.clients.update(self.id, |c| c.lib_ver = value),
            other => return Reply::err(format_args!("Unrecognized option '{other}'")),
        }
        Reply::ok()
    }

    /// `CLIENT LIST [TYPE normal|master|replica|pubsub] [ID id ...]`.
    fn client_list(&self, args: &[Bytes]) -> Reply {
        let mut ids: Option<Vec<u64>> = None;
        let mut only_normal = true;
        match args.first().map(|a| lower(a)).as_deref() {
            None => {}
            Some("type") if args.len() == 2 => {
                only_normal = match lower(&args[1]).as_str() {
                    "normal" => true,
                    "master" | "replica" | "slave" | "pubsub" => false,
                    other => return Reply::err(format_args!("Unknown client type '{other}'")),
                };
            }
            Some("id") if args.len() >= 2 => {
                let mut wanted = Vec::new();
                for id in &args[1..] {
                    match parse_i64(id).ok().and_then(|n| u64::try_from(n).ok()) {
                        Some(id) if id > 0 => wanted.push(id),
                        _ => return Reply::err("Invalid client ID"),
                    }
                }
                ids = Some(wanted);
            }
            Some(_) => return commands::syntax_error(),
        }
        let mut text = String::new();
        for client in self.settings.clients.all() {
            if only_normal && ids.as_ref().is_none_or(|ids| ids.contains(&client.id)) {
                text.push_str(&client.line());
                text.push('\n');
            }
        }
        Reply::Verbatim(Bytes::from(text))
    }

    fn config(&self, argv: &Command) -> Reply {
        let (_, sub) = match subcommand("config", argv) {
            Ok(found) => found,
            Err(reply) => return reply,
        };
        let facts = &self.settings.facts;
        match sub.as_str() {
            "get" => facts.get(&argv[2..]),
            "set" => facts.set(&argv[2..]),
            "resetstat" => Reply::ok(),
            "rewrite" => Reply::err("The server is running without a config file"),
            _ => unknown_subcommand("config", &argv[1]),
        }
    }

    async fn info(&self, sections: &[Bytes]) -> Reply {
        let store = self.stores.borrow().clone();
        let sections: Vec<String> = sections.iter().map(|s| lower(s)).collect();
        let text = info::render(store.as_ref(), &self.settings, &sections).await;
        Reply::Verbatim(text.into())
    }

    /// `CERTUS MEMBERS`, `CERTUS LEAVE`, and `CERTUS FORGET <node id>`,
    /// which removes another member, one that may never run again (`CERTUS
    /// BACKUP` streams; see [`crate::server::backup`]).
    async fn certus(&self, argv: &Command) -> Reply {
        let sub = argv.get(1).map(|s| lower(s));
        let expected = if sub.as_deref() == Some("forget") {
            3
        } else {
            2
        };
        if argv.len() != expected {
            return arity_error("certus");
        }
        let Some(order) = &self.settings.order else {
            return Reply::err("this server has no cluster membership");
        };
        match sub.as_deref().unwrap_or_default() {
            "members" => {
                let lines = order.members().into_iter().map(|m| {
                    let role = if m.voter { "voter" } else { "learner" };
                    Reply::bulk(format!("{} {} {role}", m.id.get(), m.addr))
                });
                Reply::Array(Some(lines.collect()))
            }
            "leave" => match order.leave().await {
                Ok(()) => Reply::ok(),
                Err(err) => Reply::err(err),
            },
            "forget" => {
                let node = match parse_i64(&argv[2]) {
                    Ok(id) if id > 0 => crate::NodeId::new(id.unsigned_abs()),
                    _ => return not_integer(),
                };
                match order.remove(node).await {
                    Ok(()) => Reply::ok(),
                    Err(err) => Reply::err(err),
                }
            }
            other => Reply::err(format_args!(
                "unknown subcommand '{other}' for 'certus' (MEMBERS, LEAVE, FORGET, BACKUP)"
            )),
        }
    }
}

/// A byte a client name or library tag may hold: visible ASCII.
fn printable(b: u8) -> bool {
    (b'!'..=b'~').contains(&b)
}

/// A client name: no spaces, newlines or special characters.
fn check_name(name: &[u8]) -> Result<(), Reply> {
    if !name.iter().copied().all(printable) {
        return Err(Reply::err(
            "Client names cannot contain spaces, newlines or special characters.",
        ));
    }
    Ok(())
}

/// `TIME`: this node's clock, as Redis answers it (seconds and
/// microseconds, as bulk strings).
fn time() -> Reply {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Reply::Array(Some(vec![
        Reply::bulk(now.as_secs().to_string()),
        Reply::bulk(now.subsec_micros().to_string()),
    ]))
}

/// `COMMAND [COUNT | INFO name... | DOCS name... | LIST | GETKEYS cmd...]`.
fn command(argv: &Command) -> Reply {
    let top = || COMMANDS.iter().filter(|s| !s.name.contains('|'));
    let Some(sub) = argv.get(1).map(|s| lower(s)) else {
        return Reply::Array(Some(top().map(command_info).collect()));
    };
    if let Err(reply) = subcommand("command", argv) {
        return reply;
    }
    let named = |names: &[Bytes]| -> Vec<Option<&'static Spec>> {
        names.iter().map(|n| commands::lookup(&lower(n))).collect()
    };
    match sub.as_str() {
        "count" => Reply::len(top().count()),
        "list" => Reply::Array(Some(COMMANDS.iter().map(|s| Reply::bulk(s.name)).collect())),
        "info" if argv.len() == 2 => Reply::Array(Some(top().map(command_info).collect())),
        "info" => Reply::Array(Some(
            named(&argv[2..])
                .into_iter()
                .map(|s| s.map_or(Reply::Null, command_info))
                .collect(),
        )),
        "docs" => {
            let specs: Vec<&Spec> = if argv.len() == 2 {
                top().collect()
            } else {
                named(&argv[2..]).into_iter().flatten().collect()
            };
            Reply::Map(
                specs
                    .into_iter()
                    .map(|s| (Reply::bulk(s.name), docs(s)))
                    .collect(),
            )
        }
        "getkeys" => getkeys(&argv[2..]),
        _ => unknown_subcommand("command", &argv[1]),
    }
}

/// One command's `COMMAND INFO` entry, as Redis 7.2 lays it out.
fn command_info(spec: &'static Spec) -> Reply {
    let statuses = |names: &'static [&'static str]| {
        Reply::Set(names.iter().map(|n| Reply::Simple(n)).collect())
    };
    let (first, last, step) = spec.keys;
    let subcommands = subcommands(spec).map(command_info).collect();
    Reply::Array(Some(vec![
        Reply::bulk(spec.name),
        Reply::Integer(i64::from(spec.arity)),
        statuses(spec.flags),
        Reply::Integer(i64::from(first)),
        Reply::Integer(i64::from(last)),
        Reply::Integer(i64::from(step)),
        statuses(spec.categories),
        Reply::Set(Vec::new()),
        Reply::Array(Some(Vec::new())),
        Reply::Array(Some(subcommands)),
    ]))
}

fn subcommands(spec: &'static Spec) -> impl Iterator<Item = &'static Spec> {
    let prefix = format!("{}|", spec.name);
    COMMANDS.iter().filter(move |s| s.name.starts_with(&prefix))
}

fn docs(spec: &'static Spec) -> Reply {
    let mut fields = vec![
        (Reply::bulk("summary"), Reply::bulk(spec.summary)),
        (Reply::bulk("since"), Reply::bulk(spec.since)),
        (Reply::bulk("group"), Reply::bulk(spec.group)),
        (Reply::bulk("complexity"), Reply::bulk(spec.complexity)),
    ];
    let subs: Vec<(Reply, Reply)> = subcommands(spec)
        .map(|s| (Reply::bulk(s.name), docs(s)))
        .collect();
    if !subs.is_empty() {
        fields.push((Reply::bulk("subcommands"), Reply::Map(subs)));
    }
    Reply::Map(fields)
}

/// `COMMAND GETKEYS command arg ...`.
fn getkeys(argv: &[Bytes]) -> Reply {
    let Some(spec) = argv.first().and_then(|n| commands::lookup(&lower(n))) else {
        return Reply::err("Invalid command specified");
    };
    if !spec.accepts(argv.len()) {
        return Reply::err("Invalid number of arguments specified for command");
    }
    let keys: Vec<Reply> = spec
        .keys(argv)
        .map(|k| Reply::Bulk(Some(k.clone())))
        .collect();
    if keys.is_empty() {
        return Reply::err("The command has no key arguments");
    }
    Reply::Array(Some(keys))
}
