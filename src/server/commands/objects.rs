//! `OBJECT` and `MEMORY USAGE`: how a key is stored, in Redis 7.2's
//! terms; and `PUBLISH`, which stores nothing.
//!
//! certus stores every type the same way (members under their own store
//! keys), so `OBJECT ENCODING` answers the encoding Redis 7.2 would use for
//! the value as it is now, by Redis's default thresholds (a hash of at
//! most 128 fields of at most 64 bytes is a `listpack`, and so on; Redis
//! does not convert back when a value shrinks, so a value that once grew
//! may differ). `MEMORY USAGE` estimates the bytes the key's rows take in
//! the store, sampling members as Redis samples them.

use bytes::Bytes;

use super::{
    Handler, arity_error, lower, parse_i64, reply_on_err, syntax_error, unknown_subcommand,
};
use crate::kv::KvError;
use crate::server::db::members::Collection;
use crate::server::db::{Db, Kind, Record};
use crate::server::resp::Reply;

pub(super) fn handler(name: &str) -> Option<Handler> {
    let handler: Handler = match name {
        "object" => object,
        "memory" => memory,
        "publish" => publish,
        _ => return None,
    };
    Some(handler)
}

/// `PUBLISH channel message`, as every node runs it (see
/// [`crate::server::pubsub`]): this node's receivers.
fn publish(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    Ok(Reply::len(db.publish(&argv[1], &argv[2])))
}

/// Redis's `addReplyHelp`: the header, the lines, and `HELP` itself.
pub(crate) fn help(container: &str, lines: &[&'static str]) -> Reply {
    let mut out = vec![Reply::Status(format!(
        "{} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        container.to_ascii_uppercase()
    ))];
    out.extend(lines.iter().map(|line| Reply::Simple(line)));
    out.push(Reply::Simple("HELP"));
    out.push(Reply::Simple("    Print this help."));
    Reply::Array(Some(out))
}

const OBJECT_HELP: &[&str] = &[
    "ENCODING <key>",
    "    Return the kind of internal representation used in order to store the value",
    "    associated with a <key>.",
    "FREQ <key>",
    "    Return the access frequency index of the <key>. The returned integer is",
    "    proportional to the logarithm of the recent access frequency of the key.",
    "REFCOUNT <key>",
    "    Return the number of references of the value associated with the specified",
    "    <key>.",
];

/// `OBJECT ENCODING|FREQ|REFCOUNT key` and `OBJECT HELP`.
fn object(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    let sub = lower(&argv[1]);
    let arity = match sub.as_str() {
        "help" => 2,
        "encoding" | "freq" | "refcount" => 3,
        _ => return Ok(unknown_subcommand("object", &argv[1])),
    };
    if argv.len() != arity {
        return Ok(arity_error(&format!("object|{sub}")));
    }
    if sub == "help" {
        return Ok(help("object", OBJECT_HELP));
    }
    let Some(record) = db.lookup(&argv[2])? else {
        return Ok(Reply::Null);
    };
    Ok(match sub.as_str() {
        "encoding" => Reply::bulk(encoding(db, &argv[2], &record)?),
        "refcount" => Reply::Integer(1),
        // Redis's answer under its default policy (noeviction): certus
        // keeps no access counts.
        _ => Reply::err(
            "An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.",
        ),
    })
}

/// Whether `value` is stored by Redis as an integer (`string2l`).
fn is_integer(value: &[u8]) -> bool {
    super::parse_i64(value).is_ok()
}

/// The encoding Redis 7.2 would give `record`'s value at `key`.
fn encoding(db: &mut Db<'_>, key: &[u8], record: &Record) -> Result<&'static str, KvError> {
    if record.kind == Kind::String {
        return Ok(match record.value.len() {
            len if len <= 20 && is_integer(&record.value) => "int",
            len if len <= 44 => "embstr",
            _ => "raw",
        });
    }
    let Some(found) = db.collection(key, record.kind)?.ok().flatten() else {
        return Ok("none");
    };
    // Set members may be an intset up to 512; everything else is small
    // only up to 128 members.
    let small_limit = if record.kind == Kind::Set { 512 } else { 128 };
    let members = if found.meta.len <= small_limit {
        Some(sample(db, record.kind, &found, small_limit)?)
    } else {
        None
    };
    let short = |limit: usize| {
        members
            .as_ref()
            .filter(|m| m.len() <= 128)
            .is_some_and(|m| {
                m.iter()
                    .all(|(name, value)| name.len() <= limit && value.len() <= limit)
            })
    };
    Ok(match record.kind {
        Kind::Hash if short(64) => "listpack",
        Kind::Hash => "hashtable",
        Kind::Set
            if members
                .as_ref()
                .is_some_and(|m| m.iter().all(|(name, _)| is_integer(name))) =>
        {
            "intset"
        }
        Kind::Set if short(64) => "listpack",
        Kind::Set => "hashtable",
        Kind::ZSet if short(64) => "listpack",
        Kind::ZSet => "skiplist",
        // A list is one listpack while it fits Redis's 8 KiB node.
        _ => match &members {
            Some(m) if m.iter().map(|(_, e)| e.len() + 11).sum::<usize>() <= 8192 => "listpack",
            _ => "quicklist",
        },
    })
}

/// Up to `count` of a collection's members, as names and values: a hash's
/// fields, a set's or sorted set's members (a sorted set's value is its
/// score), a list's elements (as values, with no name).
fn sample(
    db: &mut Db<'_>,
    kind: Kind,
    collection: &Collection,
    count: u64,
) -> Result<Vec<(Bytes, Bytes)>, KvError> {
    let limit = usize::try_from(count).unwrap_or(usize::MAX);
    let found = db.members(collection.key(), b"", limit)?;
    let name = |sub: &Bytes| {
        let hashed = match kind {
            Kind::List => return Bytes::new(),
            // By-name entries come first, after their tag byte.
            Kind::ZSet => sub.slice(1.min(sub.len())..),
            _ => sub.clone(),
        };
        crate::server::db::members::parse_hashed(&hashed).map_or_else(Bytes::new, |(_, name)| name)
    };
    Ok(found
        .into_iter()
        .map(|(sub, value)| (name(&sub), value))
        .collect())
}

const MEMORY_HELP: &[&str] = &[
    "USAGE <key> [SAMPLES <count>]",
    "    Return memory in bytes used by <key> and its value. Nested values are",
    "    sampled up to <count> times (default: 5, 0 means sample all).",
];

/// Bytes a store row costs beyond its key and value (its version key's
/// prefix, seqno and tag).
const ROW_OVERHEAD: usize = 16;

/// `MEMORY USAGE key [SAMPLES count]` and `MEMORY HELP`.
fn memory(db: &mut Db<'_>, argv: &[Bytes]) -> Result<Reply, KvError> {
    let sub = lower(&argv[1]);
    match sub.as_str() {
        "help" if argv.len() == 2 => return Ok(help("memory", MEMORY_HELP)),
        "usage" if argv.len() >= 3 => {}
        "help" | "usage" => return Ok(arity_error(&format!("memory|{sub}"))),
        _ => return Ok(unknown_subcommand("memory", &argv[1])),
    }
    let mut samples = 5u64;
    let mut i = 3;
    while i < argv.len() {
        if i + 1 < argv.len() && argv[i].eq_ignore_ascii_case(b"samples") {
            let n = reply_on_err!(parse_i64(&argv[i + 1]));
            if n < 0 {
                return Ok(syntax_error());
            }
            samples = if n == 0 { u64::MAX } else { n.unsigned_abs() };
            i += 2;
        } else {
            return Ok(syntax_error());
        }
    }
    let key = &argv[2];
    let Some(record) = db.lookup(key)? else {
        return Ok(Reply::Null);
    };
    let own = key.len() + 5 + 9 + record.value.len() + ROW_OVERHEAD;
    if record.kind == Kind::String {
        return Ok(Reply::len(own));
    }
    let Some(found) = db.collection(key, record.kind)?.ok().flatten() else {
        return Ok(Reply::len(own));
    };
    let taken = sample(db, record.kind, &found, samples.min(found.meta.len))?;
    let per_member =
        |(name, value): &(Bytes, Bytes)| key.len() + 9 + name.len() + value.len() + ROW_OVERHEAD;
    let sampled: usize = taken.iter().map(per_member).sum();
    let count = taken.len().max(1);
    // A sorted set stores each member twice (by name and by score).
    let copies = if record.kind == Kind::ZSet { 2 } else { 1 };
    let members = sampled / count * found.len() * copies;
    Ok(Reply::len(own + members))
}
