//! RESP, the Redis serialization protocol, as a sans-IO codec: requests
//! in (the same in RESP2 and RESP3), [`Reply`] out in either version.
//!
//! Clients send commands as arrays of bulk strings (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`)
//! or, from a terminal, as inline text lines (`GET k\r\n`). [`decode`]
//! takes whatever bytes have arrived and returns one complete command, or
//! `None` when more bytes are needed, consuming exactly that command's bytes.
//! Every length is checked against [`Limits`] before anything is allocated.
//! A malformed request is a [`RespError`]; as in Redis, the server answers it
//! with an error reply and closes the connection, because the byte stream
//! can no longer be split into commands.

use bytes::{Buf, Bytes, BytesMut};
use thiserror::Error;

mod reply;

pub(crate) use reply::format_double;
pub use reply::{Protocol, Reply};

/// Upper bounds on what one request may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Arguments in one command.
    pub max_args: usize,
    /// Bytes in one argument.
    pub max_bulk: usize,
    /// Bytes in one inline command line.
    pub max_inline: usize,
    /// The limits are those of a connection that has not authenticated:
    /// exceeding them is reported as Redis does for such a connection.
    pub unauthenticated: bool,
}

impl Default for Limits {
    /// Redis's own defaults: 512 MiB per bulk string is far more than a
    /// write-set may hold, so this store caps it at 32 MiB.
    fn default() -> Self {
        Limits {
            max_args: 1 << 20,
            max_bulk: 32 << 20,
            max_inline: 64 << 10,
            unauthenticated: false,
        }
    }
}

impl Limits {
    /// What a connection that has not authenticated may send, as Redis
    /// bounds it: 10 arguments of at most 16 KiB each.
    #[must_use]
    pub fn unauthenticated() -> Self {
        Limits {
            max_args: 10,
            max_bulk: 16 << 10,
            max_inline: 16 << 10,
            unauthenticated: true,
        }
    }
}

/// Why a request could not be parsed. The connection cannot continue.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RespError {
    /// A length or count field is not a number in range.
    #[error("Protocol error: invalid {what} length")]
    BadLength {
        /// Which length: "multibulk" or "bulk".
        what: &'static str,
    },
    /// A length or count beyond what a connection that has not
    /// authenticated may send.
    #[error("Protocol error: unauthenticated {what} length")]
    Unauthenticated {
        /// Which length: "multibulk" or "bulk".
        what: &'static str,
    },
    /// A byte where another was required.
    #[error("Protocol error: expected '{expected}', got '{got}'")]
    Unexpected {
        /// The required byte.
        expected: char,
        /// The byte found.
        got: char,
    },
    /// An inline command line is too long or its quoting is unbalanced.
    #[error("Protocol error: {0}")]
    Inline(&'static str),
}

/// One parsed command: its arguments, the name first.
pub type Command = Vec<Bytes>;

/// Parses one command from the front of `buf`, consuming its bytes.
///
/// # Errors
/// [`RespError`] when the bytes cannot be a valid request.
pub fn decode(buf: &mut BytesMut, limits: &Limits) -> Result<Option<Command>, RespError> {
    match buf.first() {
        None => Ok(None),
        Some(b'*') => decode_array(buf, limits),
        Some(_) => decode_inline(buf, limits),
    }
}

/// The position of the first `\r\n` at or after `from`.
fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|at| from + at)
}

/// Parses `<prefix><number>\r\n` at `at`; returns the number and the index
/// after the line, or `None` when the line is incomplete.
fn read_number(
    buf: &[u8],
    at: usize,
    what: &'static str,
    limits: &Limits,
) -> Result<Option<(i64, usize)>, RespError> {
    let max = if what == "bulk" {
        limits.max_bulk
    } else {
        limits.max_args
    };
    let Some(end) = find_crlf(buf, at + 1) else {
        // A length line longer than any valid one is an error, not a wait.
        return if buf.len() - at > 32 {
            Err(RespError::BadLength { what })
        } else {
            Ok(None)
        };
    };
    let digits =
        std::str::from_utf8(&buf[at + 1..end]).map_err(|_| RespError::BadLength { what })?;
    let n: i64 = digits.parse().map_err(|_| RespError::BadLength { what })?;
    if n < -1 {
        return Err(RespError::BadLength { what });
    }
    if n > i64::try_from(max).unwrap_or(i64::MAX) {
        return Err(if limits.unauthenticated {
            RespError::Unauthenticated { what }
        } else {
            RespError::BadLength { what }
        });
    }
    Ok(Some((n, end + 2)))
}

fn decode_array(buf: &mut BytesMut, limits: &Limits) -> Result<Option<Command>, RespError> {
    let Some((count, mut at)) = read_number(buf, 0, "multibulk", limits)? else {
        return Ok(None);
    };
    if count <= 0 {
        // `*0` and `*-1` are empty requests; Redis skips them.
        buf.advance(at);
        return Ok(Some(Vec::new()));
    }
    let count = usize::try_from(count).map_err(|_| RespError::BadLength { what: "multibulk" })?;
    let mut spans = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        let Some(&first) = buf.get(at) else {
            return Ok(None);
        };
        if first != b'$' {
            return Err(RespError::Unexpected {
                expected: '$',
                got: char::from(first),
            });
        }
        let Some((len, start)) = read_number(buf, at, "bulk", limits)? else {
            return Ok(None);
        };
        let len = usize::try_from(len).map_err(|_| RespError::BadLength { what: "bulk" })?;
        let end = start + len;
        if buf.len() < end + 2 {
            return Ok(None);
        }
        if &buf[end..end + 2] != b"\r\n" {
            return Err(RespError::Unexpected {
                expected: '\r',
                got: char::from(buf[end]),
            });
        }
        spans.push((start, end));
        at = end + 2;
    }
    let frame = buf.split_to(at).freeze();
    Ok(Some(
        spans.into_iter().map(|(s, e)| frame.slice(s..e)).collect(),
    ))
}

fn decode_inline(buf: &mut BytesMut, limits: &Limits) -> Result<Option<Command>, RespError> {
    let Some(newline) = buf.iter().position(|&b| b == b'\n') else {
        return if buf.len() > limits.max_inline {
            Err(RespError::Inline("too big inline request"))
        } else {
            Ok(None)
        };
    };
    if newline > limits.max_inline {
        return Err(RespError::Inline("too big inline request"));
    }
    let line = buf.split_to(newline + 1);
    let text = line.strip_suffix(b"\n").unwrap_or(&line);
    let text = text.strip_suffix(b"\r").unwrap_or(text);
    let args = split_inline(text).ok_or(RespError::Inline("unbalanced quotes in request"))?;
    if args.len() > limits.max_args {
        return Err(RespError::Inline("too many arguments in inline request"));
    }
    Ok(Some(args))
}

/// Splits an inline line into arguments: whitespace-separated, with
/// double quotes (and `\"` escapes) or single quotes grouping.
fn split_inline(text: &[u8]) -> Option<Command> {
    let mut args = Vec::new();
    let mut i = 0;
    while i < text.len() {
        if text[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let mut arg = Vec::new();
        let quote = match text[i] {
            q @ (b'"' | b'\'') => {
                i += 1;
                Some(q)
            }
            _ => None,
        };
        loop {
            let Some(&c) = text.get(i) else {
                if quote.is_some() {
                    return None;
                }
                break;
            };
            match quote {
                Some(q) if c == q => {
                    i += 1;
                    break;
                }
                Some(b'"') if c == b'\\' && i + 1 < text.len() => {
                    arg.push(text[i + 1]);
                    i += 2;
                }
                None if c.is_ascii_whitespace() => break,
                _ => {
                    arg.push(c);
                    i += 1;
                }
            }
        }
        args.push(Bytes::from(arg));
    }
    Some(args)
}

#[cfg(test)]
mod tests;
