//! The commands: their metadata (generated from Redis's own, in
//! [`table`]), their classes, and the data commands themselves, written
//! once against [`Db`] so they run the same in a read-only snapshot on one
//! node and in an ordered operation on every node.
//!
//! A data command's replies and error texts are Redis 7.2's. It reads the
//! clock only through [`Db::now`] (the cluster time), so its effect is the
//! same on every node.

mod expire;
mod keyspace;
mod strings;
mod table;

use bytes::Bytes;

use super::db::Db;
use super::resp::Reply;
use crate::kv::KvError;

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
    /// First key, last key (negative: from the end), step.
    pub(crate) keys: (i32, i32, i32),
    pub(crate) group: &'static str,
    pub(crate) since: &'static str,
    pub(crate) summary: &'static str,
    pub(crate) complexity: &'static str,
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

    /// The command's keys in `argv`, by its key positions.
    pub(crate) fn keys<'a>(&self, argv: &'a [Bytes]) -> impl Iterator<Item = &'a Bytes> + 'a {
        let (first, last, step) = self.keys;
        let len = i64::try_from(argv.len()).unwrap_or(i64::MAX);
        let last = if last < 0 {
            len + i64::from(last)
        } else {
            i64::from(last).min(len - 1)
        };
        let (first, step) = (i64::from(first), i64::from(step).max(1));
        let positions = (first > 0).then_some(first..=last).into_iter().flatten();
        positions
            .step_by(usize::try_from(step).unwrap_or(1))
            .filter_map(|at| usize::try_from(at).ok().and_then(|at| argv.get(at)))
    }

    /// How the server runs it.
    pub(crate) fn class(&self) -> Class {
        match self.name {
            "flushall" | "flushdb" => Class::WriteAll,
            "keys" | "scan" | "dbsize" | "randomkey" => Class::ReadAll,
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

/// Whether `name` is a data command (runs against [`Db`]).
fn is_data(name: &str) -> bool {
    strings::handler(name).is_some()
        || keyspace::handler(name).is_some()
        || expire::handler(name).is_some()
}

/// A data command: `argv` with the name first.
pub(crate) type Handler = fn(&mut Db<'_>, &[Bytes]) -> Result<Reply, KvError>;

/// Runs the data command `argv` (arity already checked) against `db`.
///
/// # Errors
/// [`KvError`] when the store fails; a command's own failure is its reply.
pub(crate) fn run(db: &mut Db<'_>, name: &str, argv: &[Bytes]) -> Result<Reply, KvError> {
    let handler = strings::handler(name)
        .or_else(|| keyspace::handler(name))
        .or_else(|| expire::handler(name));
    match handler {
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
mod tests;
