//! The commands: their metadata (generated from Redis's own, in
//! [`table`]), their classes, and the data commands themselves, written
//! once against [`Db`] so they run the same in a read-only snapshot on one
//! node and in an ordered operation on every node.
//!
//! A data command's replies and error texts are Redis 7.2's. It reads the
//! clock only through [`Db::now`] (the cluster time), so its effect is the
//! same on every node.

mod cursor;
mod expire;
mod hashes;
mod keyspace;
pub(crate) mod lists;
mod objects;
mod scripts;
mod sets;
mod strings;
mod table;
mod zsets;

use bytes::Bytes;

use super::db::Db;
use super::resp::Reply;
use crate::kv::KvError;

pub(crate) use objects::help;
pub(crate) use table::COMMANDS;

/// A command's metadata, as `COMMAND INFO` and `COMMAND DOCS` report it.
#[derive(Debug)]
pub(crate) struct Spec {
    /// Lower case; a subcommand as `container|name`.
    pub(crate) name: &'static str,
    /// Redis's arity: the exact argument count with the name, or at least
    /// its absolute value when negative.
    pub(crate) arity: i32,
    pub(crate) flags: &'static [&'static str],
    pub(crate) categories: &'static [&'static str],
    /// First key, last key (negative: from the end), step: the legacy
    /// range `COMMAND INFO` reports.
    pub(crate) keys: (i32, i32, i32),
    /// Where its keys are, as Redis's key specs say.
    pub(crate) key_specs: &'static [KeySpec],
    pub(crate) group: &'static str,
    pub(crate) since: &'static str,
    pub(crate) summary: &'static str,
    pub(crate) complexity: &'static str,
}

/// One of a command's key specs (Redis's `begin_search` by index and
/// `find_keys`).
#[derive(Debug)]
pub(crate) struct KeySpec {
    /// The argument where the search begins.
    pub(crate) begin: i32,
    pub(crate) find: Find,
}

/// How a key spec finds its keys from where it begins.
#[derive(Debug)]
pub(crate) enum Find {
    /// Keys up to `last` (relative to the beginning; negative: from the
    /// end), every `step`; with `last` -1 and a `limit`, only the first
    /// 1/`limit` of the rest.
    Range { last: i32, step: i32, limit: i32 },
    /// The argument at `index` (relative) counts the keys, which start at
    /// `first` after it, every `step`.
    Keynum { index: i32, first: i32, step: i32 },
}

impl KeySpec {
    /// The argument positions of its keys in `argv` (past the end ones are
    /// dropped; a malformed count finds none).
    fn positions(&self, argv: &[Bytes]) -> Vec<usize> {
        let argc = i64::try_from(argv.len()).unwrap_or(i64::MAX);
        let begin = i64::from(self.begin);
        let (start, end, step) = match self.find {
            Find::Range { last, step, limit } => {
                let end = match i64::from(last) {
                    -1 if limit > 1 => begin + (argc - begin) / i64::from(limit) - 1,
                    last if last < 0 => argc + last,
                    last => begin + last,
                };
                (begin, end, i64::from(step))
            }
            Find::Keynum { index, first, step } => {
                let count = argv
                    .get(usize::try_from(begin + i64::from(index)).unwrap_or(usize::MAX))
                    .and_then(|n| parse_i64(n).ok())
                    .filter(|n| *n > 0)
                    .unwrap_or(0);
                let start = begin + i64::from(index) + i64::from(first);
                let step = i64::from(step).max(1);
                (start, start + (count - 1) * step, step)
            }
        };
        let step = usize::try_from(step.max(1)).unwrap_or(1);
        (start.max(1)..=end.min(argc - 1))
            .step_by(step)
            .filter_map(|at| usize::try_from(at).ok())
            .collect()
    }
}

/// How the server runs a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    /// Reads its keys: a snapshot on this node will do.
    Read,
    /// Writes its keys: an ordered operation.
    Write,
    /// Reads every key (`KEYS`, `SCAN`): a snapshot, or an operation that
    /// waits for everything before it.
    ReadAll,
    /// Writes every key (`FLUSHALL`).
    WriteAll,
    /// Acts on the connection or the server, not on data.
    Session,
}

impl Spec {
    /// Whether `argc` arguments (the name included) fit the arity.
    pub(crate) fn accepts(&self, argc: usize) -> bool {
        let argc = i64::try_from(argc).unwrap_or(i64::MAX);
        let arity = i64::from(self.arity);
        if arity >= 0 {
            argc == arity
        } else {
            argc >= -arity
        }
    }

    pub(crate) fn has_flag(&self, flag: &str) -> bool {
        self.flags.contains(&flag)
    }

    /// The command's keys in `argv`, by its key specs, in spec order.
    pub(crate) fn keys<'a>(&self, argv: &'a [Bytes]) -> impl Iterator<Item = &'a Bytes> + 'a {
        self.key_specs
            .iter()
            .flat_map(|spec| spec.positions(argv))
            .filter_map(|at| argv.get(at))
    }

    /// Whether it names keys at all.
    #[cfg(test)]
    pub(crate) fn has_keys(&self) -> bool {
        !self.key_specs.is_empty()
    }

    /// How the server runs it.
    pub(crate) fn class(&self) -> Class {
        match self.name {
            "flushall" | "flushdb" => Class::WriteAll,
            "keys" | "scan" | "dbsize" | "randomkey" => Class::ReadAll,
            // Every node delivers it to its subscribers, and every node
            // keeps its script cache: they are ordered.
            "publish" | "eval" | "evalsha" | "script|load" | "script|flush" => Class::Write,
            name if !is_data(name) => Class::Session,
            _ if self.has_flag("write") => Class::Write,
            _ => Class::Read,
        }
    }
}

/// The spec of `name` (lower case; `container|sub` for a subcommand).
pub(crate) fn lookup(name: &str) -> Option<&'static Spec> {
    COMMANDS
        .binary_search_by(|spec| spec.name.cmp(name))
        .ok()
        .map(|at| &COMMANDS[at])
}

/// The spec a command line runs by: its subcommand's when the command is
/// a container and `argv[1]` names one of its subcommands, else its own.
pub(crate) fn resolve(argv: &[Bytes]) -> Option<&'static Spec> {
    let name = lower(argv.first()?);
    let spec = lookup(&name)?;
    let sub = argv
        .get(1)
        .and_then(|sub| lookup(&format!("{name}|{}", lower(sub))));
    Some(sub.unwrap_or(spec))
}

/// Whether `name` (or the container of the subcommand `name`) is a data
/// command (runs against [`Db`]).
fn is_data(name: &str) -> bool {
    handler_of(name).is_some()
}

/// The handler of `name`: its own, or its container's (which then reads
/// the subcommand itself).
fn handler_of(name: &str) -> Option<Handler> {
    let container = name.split('|').next().unwrap_or(name);
    handler(name).or_else(|| handler(container))
}

/// Redis's error for a subcommand a container does not have.
pub(crate) fn unknown_subcommand(container: &str, sub: &[u8]) -> Reply {
    let sub: String = String::from_utf8_lossy(sub).chars().take(128).collect();
    Reply::err(format_args!(
        "unknown subcommand '{sub}'. Try {} HELP.",
        container.to_ascii_uppercase()
    ))
}

/// A data command: `argv` with the name first.
pub(crate) type Handler = fn(&mut Db<'_>, &[Bytes]) -> Result<Reply, KvError>;

/// The data command `name`, by the module of its type.
fn handler(name: &str) -> Option<Handler> {
    strings::handler(name)
        .or_else(|| keyspace::handler(name))
        .or_else(|| expire::handler(name))
        .or_else(|| hashes::handler(name))
        .or_else(|| sets::handler(name))
        .or_else(|| lists::handler(name))
        .or_else(|| zsets::handler(name))
        .or_else(|| objects::handler(name))
        .or_else(|| scripts::handler(name))
}

/// Runs the data command `argv` (arity already checked) against `db`;
/// `name` is its spec's (a subcommand's `container|sub`).
///
/// # Errors
/// [`KvError`] when the store fails; a command's own failure is its reply.
pub(crate) fn run(db: &mut Db<'_>, name: &str, argv: &[Bytes]) -> Result<Reply, KvError> {
    match handler_of(name) {
        Some(handler) => handler(db, argv),
        None => Ok(Reply::err(format_args!("unknown command '{name}'"))),
    }
}

/// Redis's error for a wrong number of arguments to `name`.
pub(crate) fn arity_error(name: &str) -> Reply {
    Reply::err(format_args!(
        "wrong number of arguments for '{name}' command"
    ))
}

pub(crate) fn syntax_error() -> Reply {
    Reply::err("syntax error")
}

pub(crate) fn not_integer() -> Reply {
    Reply::err("value is not an integer or out of range")
}

pub(crate) fn not_float() -> Reply {
    Reply::err("value is not a valid float")
}

/// A decimal `i64` exactly as Redis's `string2ll` accepts it: no sign but
/// `-`, no leading zero, no spaces, at most 20 characters.
pub(crate) fn parse_i64(bytes: &[u8]) -> Result<i64, Reply> {
    let invalid = || not_integer();
    if bytes.is_empty() || bytes.len() > 20 {
        return Err(invalid());
    }
    if bytes == b"0" {
        return Ok(0);
    }
    let (negative, digits) = match bytes.strip_prefix(b"-") {
        Some(digits) => (true, digits),
        None => (false, bytes),
    };
    if !matches!(digits.first(), Some(b'1'..=b'9')) || !digits.iter().all(u8::is_ascii_digit) {
        return Err(invalid());
    }
    let mut value: i64 = 0;
    for &d in digits {
        let d = i64::from(d - b'0');
        value = value.checked_mul(10).ok_or_else(invalid)?;
        value = if negative {
            value.checked_sub(d)
        } else {
            value.checked_add(d)
        }
        .ok_or_else(invalid)?;
    }
    Ok(value)
}

/// A float as Redis's `string2ld` accepts it: no spaces, nothing trailing,
/// not NaN (infinities pass, and the arithmetic refuses them).
pub(crate) fn parse_f64(bytes: &[u8]) -> Result<f64, Reply> {
    let text = std::str::from_utf8(bytes).map_err(|_| not_float())?;
    if text.is_empty() || text.starts_with(|c: char| c.is_ascii_whitespace()) {
        return Err(not_float());
    }
    match text.parse::<f64>() {
        Ok(value) if !value.is_nan() => Ok(value),
        _ => Err(not_float()),
    }
}

/// A float as Redis writes a stored one (`INCRBYFLOAT`): plain decimal
/// notation, no exponent, no trailing zeros. Redis computes in `long
/// double`; this store in `f64`, so the last digits of inexact sums may
/// differ.
pub(crate) fn format_float(value: f64) -> String {
    let text = format!("{value}");
    if text == "-0" { "0".into() } else { text }
}

/// The positions `start..=stop` select in a list or sorted set of `len`
/// by Redis's range rules (negative counts from the end, the ends are
/// clamped): the first position and how many, or `None` when empty.
pub(crate) fn span(len: u64, start: i64, stop: i64) -> Option<(u64, u64)> {
    let len = i64::try_from(len).unwrap_or(i64::MAX);
    let from_end = |at: i64| if at < 0 { len.saturating_add(at) } else { at };
    let (start, stop) = (from_end(start).max(0), from_end(stop));
    if start > stop || start >= len {
        return None;
    }
    let stop = stop.min(len - 1);
    Some((start.unsigned_abs(), (stop - start + 1).unsigned_abs()))
}

/// Lower-case `bytes` as a `String` (command names, options).
pub(crate) fn lower(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_ascii_lowercase()
}

/// Unwraps a parse result inside a handler: an `Err` is the reply.
macro_rules! reply_on_err {
    ($result:expr) => {
        match $result {
            Ok(value) => value,
            Err(reply) => return Ok(reply),
        }
    };
}
pub(crate) use reply_on_err;

#[cfg(test)]
pub(crate) mod tests;
