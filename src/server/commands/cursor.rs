//! The cursor and options every `SCAN` relative takes (`SCAN`, `HSCAN`,
//! `SSCAN`, `ZSCAN`), as Redis 7.2's `scanGenericCommand` parses them.
//!
//! A cursor is one more than the next hash to visit, 0 starting and ending
//! a scan: keys and members sort by hash, so whatever node answers each
//! call, everything present for the whole scan is returned.

use bytes::Bytes;

use super::{lower, parse_i64, syntax_error};
use crate::server::db::Kind;
use crate::server::glob;
use crate::server::resp::Reply;

/// What a scan call asked for.
#[derive(Debug)]
pub(super) struct ScanArgs {
    /// The hash to start at.
    pub(super) from: u64,
    pub(super) count: usize,
    pattern: Option<Bytes>,
    /// `TYPE` (keyspace only): `Some(None)` for a name no type has, which
    /// matches nothing (Redis 7.2 does not refuse it).
    kind: Option<Option<Kind>>,
}

/// The cursor argument, as Redis's `parseScanCursorOrReply` takes it.
pub(super) fn parse_cursor(arg: &[u8]) -> Result<u64, Reply> {
    std::str::from_utf8(arg)
        .ok()
        .filter(|text| !text.starts_with(|c: char| c.is_ascii_whitespace() || c == '+'))
        .and_then(|text| text.parse::<u64>().ok())
        .ok_or_else(|| Reply::err("invalid cursor"))
}

impl ScanArgs {
    /// The options from `argv[first..]` after `cursor`; `TYPE` only for
    /// the keyspace.
    pub(super) fn parse(
        cursor: u64,
        argv: &[Bytes],
        first: usize,
        keyspace: bool,
    ) -> Result<ScanArgs, Reply> {
        let mut args = ScanArgs {
            from: cursor.saturating_sub(1),
            count: 10,
            pattern: None,
            kind: None,
        };
        let mut i = first;
        while i < argv.len() {
            let (option, value) = (lower(&argv[i]), argv.get(i + 1));
            match (option.as_str(), value) {
                ("count", Some(value)) => {
                    let n = parse_i64(value)?;
                    if n < 1 {
                        return Err(syntax_error());
                    }
                    args.count = usize::try_from(n).unwrap_or(usize::MAX).min(1 << 16);
                }
                ("match", Some(value)) => {
                    args.pattern = (value.as_ref() != b"*").then(|| value.clone());
                }
                ("type", Some(value)) if keyspace => args.kind = Some(Kind::from_name(value)),
                _ => return Err(syntax_error()),
            }
            i += 2;
        }
        Ok(args)
    }

    /// Whether `name` (a key, field or member) passes `MATCH`.
    pub(super) fn matches(&self, name: &[u8]) -> bool {
        self.pattern.as_ref().is_none_or(|p| glob::matches(p, name))
    }

    /// Whether a key of `kind` passes `TYPE`.
    pub(super) fn matches_kind(&self, kind: Kind) -> bool {
        self.kind.is_none_or(|k| k == Some(kind))
    }
}

/// A scan's reply: the next cursor (`None`: the end) and what was found.
pub(super) fn reply(next: Option<u64>, found: Vec<Reply>) -> Reply {
    let next = next.map_or(0, |hash| hash + 1);
    Reply::Array(Some(vec![
        Reply::Bulk(Some(Bytes::from(next.to_string()))),
        Reply::Array(Some(found)),
    ]))
}

/// The reply to a scan of a missing key: the end, and nothing.
pub(super) fn empty() -> Reply {
    reply(None, Vec::new())
}
