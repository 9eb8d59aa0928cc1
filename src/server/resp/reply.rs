//! Replies and their wire forms in RESP2 and RESP3.
//!
//! RESP3 (`HELLO 3`) adds typed nulls, maps, sets, doubles, booleans, big
//! numbers, verbatim strings and out-of-band push frames; RESP2 sends each
//! of them as the nearest RESP2 type, exactly as Redis 7.2 does.

use bytes::{BufMut, Bytes, BytesMut};

/// The protocol a connection speaks: RESP2 until `HELLO 3` switches it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Protocol {
    /// RESP2, every connection's start.
    #[default]
    Resp2,
    /// RESP3: typed nulls, maps, sets, doubles and more.
    Resp3,
}

impl Protocol {
    /// The version number `HELLO` speaks of.
    #[must_use]
    pub fn version(self) -> i64 {
        match self {
            Protocol::Resp2 => 2,
            Protocol::Resp3 => 3,
        }
    }
}

/// A reply to a client.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Reply {
    /// `+OK`: a short status line (no `\r` or `\n`).
    Simple(&'static str),
    /// A status line built at run time (`+string` for `TYPE`).
    Status(String),
    /// `-ERR ...`: an error line; newlines in the text are replaced.
    Error(String),
    /// `:42`.
    Integer(i64),
    /// `$3\r\nabc`, or the nil bulk string (`$-1`; RESP3 `_`).
    Bulk(Option<Bytes>),
    /// `*n` followed by the elements, or the nil array (`*-1`; RESP3 `_`).
    Array(Option<Vec<Reply>>),
    /// RESP3 `%n` of key and value pairs; RESP2 sends a flat array.
    Map(Vec<(Reply, Reply)>),
    /// Pairs (a field and its value, a member and its score): RESP3 sends
    /// an array of two-element arrays, RESP2 one flat array, as Redis's
    /// `HRANDFIELD ... WITHVALUES` and `ZRANGE ... WITHSCORES` do.
    Pairs(Vec<(Reply, Reply)>),
    /// RESP3 `~n`; RESP2 sends an array.
    Set(Vec<Reply>),
    /// RESP3 `,1.5`; RESP2 sends the number as a bulk string.
    Double(f64),
    /// RESP3 `#t`/`#f`; RESP2 sends `:1`/`:0`.
    Boolean(bool),
    /// RESP3 `(` and the digits; RESP2 sends a bulk string.
    BigNumber(String),
    /// RESP3 `=` text with the `txt` format (INFO); RESP2 sends a bulk string.
    Verbatim(Bytes),
    /// RESP3 `>n`, an out-of-band message; RESP2 sends an array.
    Push(Vec<Reply>),
    /// RESP3 `_`; RESP2 sends the nil bulk string.
    Null,
    /// Replies already encoded in the connection's protocol (what an
    /// ordered operation computed), written as they are.
    Raw(Bytes),
}

impl Reply {
    /// A bulk string reply.
    #[must_use]
    pub fn bulk(value: impl Into<Bytes>) -> Reply {
        Reply::Bulk(Some(value.into()))
    }

    /// An error reply with the usual `ERR` prefix.
    #[must_use]
    pub fn err(message: impl std::fmt::Display) -> Reply {
        Reply::Error(format!("ERR {message}"))
    }

    /// `+OK`.
    #[must_use]
    pub fn ok() -> Reply {
        Reply::Simple("OK")
    }

    /// An integer reply from a count or length.
    #[must_use]
    pub fn len(len: usize) -> Reply {
        Reply::Integer(i64::try_from(len).unwrap_or(i64::MAX))
    }

    /// Whether it is an error reply.
    #[must_use]
    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }

    /// Appends the RESP2 wire form to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        self.encode_as(out, Protocol::Resp2);
    }

    /// Appends the wire form in `protocol` to `out`.
    pub fn encode_as(&self, out: &mut BytesMut, protocol: Protocol) {
        let resp3 = protocol == Protocol::Resp3;
        match self {
            Reply::Bulk(None) | Reply::Array(None) | Reply::Null if resp3 => out.put_u8(b'_'),
            Reply::Bulk(None) | Reply::Null => out.put_slice(b"$-1"),
            Reply::Array(None) => out.put_slice(b"*-1"),
            Reply::Simple(text) => line(out, b'+', text.as_bytes()),
            Reply::Status(text) => line(out, b'+', text.as_bytes()),
            Reply::Error(text) => line(out, b'-', text.as_bytes()),
            Reply::Integer(n) => {
                out.put_u8(b':');
                out.put_slice(n.to_string().as_bytes());
            }
            Reply::Boolean(b) if resp3 => out.put_slice(if *b { b"#t" } else { b"#f" }),
            Reply::Boolean(b) => out.put_slice(if *b { b":1" } else { b":0" }),
            Reply::Double(d) if resp3 => {
                out.put_u8(b',');
                out.put_slice(format_double(*d).as_bytes());
            }
            Reply::Double(d) => bulk(out, b'$', format_double(*d).as_bytes()),
            Reply::BigNumber(digits) if resp3 => line(out, b'(', digits.as_bytes()),
            Reply::BigNumber(digits) => bulk(out, b'$', digits.as_bytes()),
            Reply::Bulk(Some(value)) => bulk(out, b'$', value),
            Reply::Verbatim(text) if resp3 => {
                out.put_u8(b'=');
                put_len(out, text.len() + 4);
                out.put_slice(b"txt:");
                out.put_slice(text);
            }
            Reply::Verbatim(text) => bulk(out, b'$', text),
            Reply::Raw(bytes) => {
                out.put_slice(bytes);
                return;
            }
            // Each element is a complete reply with its own line end.
            Reply::Array(Some(items)) => return aggregate(out, b'*', items, protocol),
            Reply::Set(items) => {
                let tag = if resp3 { b'~' } else { b'*' };
                return aggregate(out, tag, items, protocol);
            }
            Reply::Push(items) => {
                let tag = if resp3 { b'>' } else { b'*' };
                return aggregate(out, tag, items, protocol);
            }
            Reply::Pairs(pairs) if resp3 => {
                out.put_u8(b'*');
                put_len(out, pairs.len());
                for (first, second) in pairs {
                    out.put_slice(b"*2\r\n");
                    first.encode_as(out, protocol);
                    second.encode_as(out, protocol);
                }
                return;
            }
            Reply::Map(pairs) | Reply::Pairs(pairs) => {
                let (tag, len) = if resp3 {
                    (b'%', pairs.len())
                } else {
                    (b'*', 2 * pairs.len())
                };
                out.put_u8(tag);
                put_len(out, len);
                for (key, value) in pairs {
                    key.encode_as(out, protocol);
                    value.encode_as(out, protocol);
                }
                return;
            }
        }
        out.put_slice(b"\r\n");
    }

    /// The wire form in `protocol`.
    #[must_use]
    pub fn to_bytes(&self, protocol: Protocol) -> Bytes {
        let mut out = BytesMut::new();
        self.encode_as(&mut out, protocol);
        out.freeze()
    }
}

/// A one-line reply: tag, text with line breaks replaced.
fn line(out: &mut BytesMut, tag: u8, text: &[u8]) {
    out.put_u8(tag);
    for &b in text {
        out.put_u8(if b == b'\r' || b == b'\n' { b' ' } else { b });
    }
}

/// A length-prefixed string without its final line end.
fn bulk(out: &mut BytesMut, tag: u8, value: &[u8]) {
    out.put_u8(tag);
    put_len(out, value.len());
    out.put_slice(value);
}

fn aggregate(out: &mut BytesMut, tag: u8, items: &[Reply], protocol: Protocol) {
    out.put_u8(tag);
    put_len(out, items.len());
    for item in items {
        item.encode_as(out, protocol);
    }
}

/// An aggregate's length and its line end.
fn put_len(out: &mut BytesMut, len: usize) {
    out.put_slice(len.to_string().as_bytes());
    out.put_slice(b"\r\n");
}

/// A double as Redis 7.2's `d2string` writes it: `nan`, `inf`, `-inf`,
/// `0`, `-0`, an integral value within ±2^62 as an integer, and otherwise
/// the shortest digits that read back the same (Grisu, as Redis's fpconv),
/// plain or in scientific notation by fpconv's rules.
pub(crate) fn format_double(d: f64) -> String {
    if d.is_nan() {
        return "nan".into();
    }
    if d.is_infinite() {
        return if d > 0.0 { "inf" } else { "-inf" }.into();
    }
    if d == 0.0 {
        return if d.is_sign_negative() { "-0" } else { "0" }.into();
    }
    const HALF: f64 = (i64::MAX / 2) as f64;
    if (-HALF..=HALF).contains(&d) && d.fract() == 0.0 {
        return format!("{}", d as i64);
    }
    // Rust's `{:e}` gives the same shortest digits: "d.ddde-7".
    let scientific = format!("{:e}", d.abs());
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let sign = if d < 0.0 { "-" } else { "" };
    format!("{sign}{}", emit_digits(&digits, exponent, d < 0.0))
}

/// fpconv's `emit_digits`: `digits` (no dot) with the first digit at
/// `exponent`.
fn emit_digits(digits: &str, exponent: i32, negative: bool) -> String {
    let ndigits = i32::try_from(digits.len()).unwrap_or(i32::MAX);
    // The power of ten of the last digit.
    let k = exponent - (ndigits - 1);
    let exp = exponent.abs();
    if k >= 0 && exp < ndigits + 7 {
        return format!("{digits}{}", "0".repeat(k.unsigned_abs() as usize));
    }
    if k < 0 && (k > -7 || exp < 4) {
        let offset = ndigits + k;
        return if offset <= 0 {
            format!("0.{}{digits}", "0".repeat(offset.unsigned_abs() as usize))
        } else {
            let (whole, fraction) = digits.split_at(offset.unsigned_abs() as usize);
            format!("{whole}.{fraction}")
        };
    }
    let keep = digits.len().min(18 - usize::from(negative));
    let digits = &digits[..keep];
    let mut out = digits[..1].to_string();
    if digits.len() > 1 {
        out.push('.');
        out.push_str(&digits[1..]);
    }
    let sign = if exponent < 0 { '-' } else { '+' };
    format!("{out}e{sign}{exp}")
}
