//! A small Redis-protocol client over turmoil's simulated TCP: commands go
//! out as arrays of bulk strings, replies are parsed as they arrive.

use std::io;

use turmoil::net::TcpStream;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
pub(crate) struct Resp {
    stream: TcpStream,
    input: Vec<u8>,
}

impl Resp {
    pub(crate) async fn connect(addr: &str) -> io::Result<Resp> {
        Ok(Resp {
            stream: TcpStream::connect(addr).await?,
            input: Vec::new(),
        })
    }

    /// Writes `commands` in one go (a pipeline).
    pub(crate) async fn send(&mut self, commands: &[Vec<String>]) -> io::Result<()> {
        let mut out = Vec::new();
        for command in commands {
            out.extend_from_slice(format!("*{}\r\n", command.len()).as_bytes());
            for arg in command {
                out.extend_from_slice(format!("${}\r\n{arg}\r\n", arg.len()).as_bytes());
            }
        }
        self.stream.write_all(&out).await
    }

    /// The next reply.
    pub(crate) async fn read(&mut self) -> io::Result<Value> {
        loop {
            match parse(&self.input) {
                Ok(Some((value, used))) => {
                    self.input.drain(..used);
                    return Ok(value);
                }
                Ok(None) => {}
                Err(reason) => return Err(io::Error::new(io::ErrorKind::InvalidData, reason)),
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            self.input.extend_from_slice(&chunk[..n]);
        }
    }

    /// Sends one command and reads its reply.
    pub(crate) async fn call(&mut self, command: Vec<String>) -> io::Result<Value> {
        self.send(&[command]).await?;
        self.read().await
    }
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
