//! A small asynchronous Redis-protocol client over any byte stream: commands
//! go out as arrays of bulk strings, replies are parsed as they arrive.
//! Shared by the simulation (over turmoil's TCP) and the load tool (over
//! tokio's), each of which includes this file with `#[path]`.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// One reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Value {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Value>>),
}

impl Value {
    /// The error code of an error reply (`CONFLICT`, `NOTPRIMARY`, ...).
    pub(crate) fn error_code(&self) -> Option<&str> {
        match self {
            Value::Error(text) => text.split_whitespace().next(),
            _ => None,
        }
    }
}

/// One connection.
pub(crate) struct Resp<S> {
    stream: S,
    /// Received bytes; those before `start` are already parsed.
    input: Vec<u8>,
    start: usize,
    /// Encoded commands not written yet.
    output: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Resp<S> {
    pub(crate) fn new(stream: S) -> Resp<S> {
        Resp {
            stream,
            input: Vec::with_capacity(4096),
            start: 0,
            output: Vec::with_capacity(4096),
        }
    }

    /// Queues one command; [`Resp::flush`] writes it.
    pub(crate) fn push<A: AsRef<[u8]>>(&mut self, command: &[A]) {
        encode_len(&mut self.output, b'*', command.len());
        for arg in command {
            let arg = arg.as_ref();
            encode_len(&mut self.output, b'$', arg.len());
            self.output.extend_from_slice(arg);
            self.output.extend_from_slice(b"\r\n");
        }
    }

    /// Writes every queued command in one go (a pipeline).
    pub(crate) async fn flush(&mut self) -> io::Result<()> {
        let result = self.stream.write_all(&self.output).await;
        self.output.clear();
        result
    }

    /// The next reply.
    pub(crate) async fn read(&mut self) -> io::Result<Value> {
        loop {
            match parse(&self.input[self.start..]) {
                Ok(Some((value, used))) => {
                    self.start += used;
                    if self.start == self.input.len() {
                        self.input.clear();
                        self.start = 0;
                    }
                    return Ok(value);
                }
                Ok(None) => {}
                Err(reason) => return Err(io::Error::new(io::ErrorKind::InvalidData, reason)),
            }
            if self.start > 0 {
                self.input.drain(..self.start);
                self.start = 0;
            }
            let filled = self.input.len();
            self.input.resize(filled + 4096, 0);
            let read = self.stream.read(&mut self.input[filled..]).await;
            let n = *read.as_ref().unwrap_or(&0);
            self.input.truncate(filled + n);
            if read? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    /// Sends one command and reads its reply.
    pub(crate) async fn call<A: AsRef<[u8]>>(&mut self, command: &[A]) -> io::Result<Value> {
        self.push(command);
        self.flush().await?;
        self.read().await
    }
}

/// Appends `<kind><len>\r\n`.
fn encode_len(out: &mut Vec<u8>, kind: u8, len: usize) {
    out.push(kind);
    out.extend_from_slice(len.to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// A reply from the front of `input` and the bytes it used; `None` when it
/// is not complete yet.
fn parse(input: &[u8]) -> Result<Option<(Value, usize)>, String> {
    let Some(end) = input.windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let Some((&kind, line)) = input[..end].split_first() else {
        return Err("empty reply line".into());
    };
    let line = std::str::from_utf8(line).map_err(|e| e.to_string())?;
    let after = end + 2;
    let number = || line.parse::<i64>().map_err(|e| format!("{line:?}: {e}"));
    match kind {
        b'+' => Ok(Some((Value::Simple(line.to_string()), after))),
        b'-' => Ok(Some((Value::Error(line.to_string()), after))),
        b':' => Ok(Some((Value::Int(number()?), after))),
        b'$' => {
            let Ok(len) = usize::try_from(number()?) else {
                return Ok(Some((Value::Bulk(None), after)));
            };
            if input.len() < after + len + 2 {
                return Ok(None);
            }
            let body = input[after..after + len].to_vec();
            Ok(Some((Value::Bulk(Some(body)), after + len + 2)))
        }
        b'*' => {
            let Ok(count) = usize::try_from(number()?) else {
                return Ok(Some((Value::Array(None), after)));
            };
            let mut items = Vec::with_capacity(count.min(1024));
            let mut at = after;
            for _ in 0..count {
                let Some((item, used)) = parse(&input[at..])? else {
                    return Ok(None);
                };
                items.push(item);
                at += used;
            }
            Ok(Some((Value::Array(Some(items)), at)))
        }
        other => Err(format!("unknown reply type {:?}", other as char)),
    }
}
