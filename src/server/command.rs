//! Parsing RESP commands into typed requests (sans-IO).
//!
//! Arity and syntax are checked here, before anything runs, so a bad command
//! inside `MULTI` is refused when it is queued, as Redis does.

use bytes::Bytes;

use super::resp::{Command, Protocol, Reply};

/// A data command: runs inside a transaction, alone or queued in `MULTI`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Get(Bytes),
    Set {
        key: Bytes,
        value: Bytes,
        when: SetWhen,
    },
    Del(Vec<Bytes>),
    Exists(Vec<Bytes>),
    MGet(Vec<Bytes>),
    MSet(Vec<(Bytes, Bytes)>),
    IncrBy(Bytes, i64),
    Append(Bytes, Bytes),
    Strlen(Bytes),
}

impl Op {
    /// Whether it writes without reading anything: its outcome and reply
    /// cannot depend on the snapshot it runs at.
    pub(crate) fn is_blind_write(&self) -> bool {
        matches!(
            self,
            Op::Set {
                when: SetWhen::Always,
                ..
            } | Op::MSet(_)
        )
    }
}

/// `SET`'s condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SetWhen {
    Always,
    /// `NX`: only when the key does not exist.
    Absent,
    /// `XX`: only when the key exists.
    Present,
}

/// Any command the server understands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Request {
    Data(Op),
    Ping(Option<Bytes>),
    Echo(Bytes),
    Quit,
    Info(Option<String>),
    Multi,
    Exec,
    Discard,
    Watch(Vec<Bytes>),
    Unwatch,
    /// A command a client library sends on connect that needs no action
    /// (`CLIENT SETNAME`, `SELECT 0`, `COMMAND DOCS`, ...): the fixed reply.
    Fixed(Reply),
    /// `CERTUS MEMBERS`: the cluster's members as this node knows them.
    Members,
    /// `CERTUS LEAVE`: remove this node from the cluster.
    Leave,
    /// `HELLO [protover [AUTH user pass] [SETNAME name]]`.
    Hello(Hello),
}

/// The arguments of `HELLO`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Hello {
    /// The protocol asked for; `None` keeps the current one.
    pub(crate) protocol: Option<Protocol>,
    /// `AUTH username password`.
    pub(crate) auth: Option<(Bytes, Bytes)>,
    /// `SETNAME name`.
    pub(crate) name: Option<Bytes>,
}

/// Parses one command. An `Err` is the error reply to send.
pub(crate) fn parse(command: &Command) -> Result<Request, Reply> {
    let Some((name, args)) = command.split_first() else {
        return Err(Reply::err("empty command"));
    };
    let lower = String::from_utf8_lossy(name).to_ascii_lowercase();
    let arity = |ok: bool| arity(ok, &lower);
    let request = match lower.as_str() {
        "get" => {
            arity(args.len() == 1)?;
            Request::Data(Op::Get(args[0].clone()))
        }
        "set" => {
            arity(args.len() >= 2)?;
            parse_set(args)?
        }
        "del" | "unlink" => {
            arity(!args.is_empty())?;
            Request::Data(Op::Del(args.to_vec()))
        }
        "exists" => {
            arity(!args.is_empty())?;
            Request::Data(Op::Exists(args.to_vec()))
        }
        "mget" => {
            arity(!args.is_empty())?;
            Request::Data(Op::MGet(args.to_vec()))
        }
        "mset" => {
            arity(!args.is_empty() && args.len() % 2 == 0)?;
            let pairs = args
                .chunks_exact(2)
                .map(|pair| (pair[0].clone(), pair[1].clone()));
            Request::Data(Op::MSet(pairs.collect()))
        }
        "incr" | "decr" => {
            arity(args.len() == 1)?;
            let by = if lower == "incr" { 1 } else { -1 };
            Request::Data(Op::IncrBy(args[0].clone(), by))
        }
        "incrby" | "decrby" => {
            arity(args.len() == 2)?;
            let by = parse_i64(&args[1])?;
            let by = if lower == "incrby" {
                by
            } else {
                by.checked_neg().ok_or_else(not_integer)?
            };
            Request::Data(Op::IncrBy(args[0].clone(), by))
        }
        "append" => {
            arity(args.len() == 2)?;
            Request::Data(Op::Append(args[0].clone(), args[1].clone()))
        }
        "strlen" => {
            arity(args.len() == 1)?;
            Request::Data(Op::Strlen(args[0].clone()))
        }
        _ => parse_control(&lower, args)?,
    };
    Ok(request)
}

/// Commands that are not data operations.
fn parse_control(lower: &str, args: &[Bytes]) -> Result<Request, Reply> {
    let arity = |ok: bool| arity(ok, lower);
    let request = match lower {
        "ping" => {
            arity(args.len() <= 1)?;
            Request::Ping(args.first().cloned())
        }
        "echo" => {
            arity(args.len() == 1)?;
            Request::Echo(args[0].clone())
        }
        "quit" => Request::Quit,
        "info" => Request::Info(
            args.first()
                .map(|s| String::from_utf8_lossy(s).to_ascii_lowercase()),
        ),
        "multi" => {
            arity(args.is_empty())?;
            Request::Multi
        }
        "exec" => {
            arity(args.is_empty())?;
            Request::Exec
        }
        "discard" => {
            arity(args.is_empty())?;
            Request::Discard
        }
        "watch" => {
            arity(!args.is_empty())?;
            Request::Watch(args.to_vec())
        }
        "unwatch" => {
            arity(args.is_empty())?;
            Request::Unwatch
        }
        "select" => {
            arity(args.len() == 1)?;
            if args[0].as_ref() != b"0" {
                return Err(Reply::err("DB index is out of range"));
            }
            Request::Fixed(Reply::Simple("OK"))
        }
        "client" => Request::Fixed(parse_client(args)?),
        // redis-cli asks for command documentation on start; an empty list
        // makes it fall back to plain completion.
        "command" => Request::Fixed(Reply::Array(Some(Vec::new()))),
        "certus" => {
            arity(args.len() == 1)?;
            match String::from_utf8_lossy(&args[0])
                .to_ascii_lowercase()
                .as_str()
            {
                "members" => Request::Members,
                "leave" => Request::Leave,
                other => {
                    return Err(Reply::err(format_args!(
                        "unknown subcommand '{other}' for 'certus' (MEMBERS, LEAVE)"
                    )));
                }
            }
        }
        "hello" => Request::Hello(parse_hello(args)?),
        _ => return Err(unknown_command(lower, args)),
    };
    Ok(request)
}

/// Redis's error for a wrong number of arguments to `name`.
fn arity(ok: bool, name: &str) -> Result<(), Reply> {
    if ok {
        Ok(())
    } else {
        Err(Reply::err(format_args!(
            "wrong number of arguments for '{name}' command"
        )))
    }
}

fn parse_set(args: &[Bytes]) -> Result<Request, Reply> {
    let mut when = SetWhen::Always;
    for option in &args[2..] {
        let option = String::from_utf8_lossy(option).to_ascii_lowercase();
        when = match (option.as_str(), when) {
            ("nx", SetWhen::Always | SetWhen::Absent) => SetWhen::Absent,
            ("xx", SetWhen::Always | SetWhen::Present) => SetWhen::Present,
            ("ex" | "px" | "exat" | "pxat" | "keepttl", _) => {
                return Err(Reply::err("key expiry is not supported by this store"));
            }
            _ => return Err(Reply::err("syntax error")),
        };
    }
    Ok(Request::Data(Op::Set {
        key: args[0].clone(),
        value: args[1].clone(),
        when,
    }))
}

/// `CLIENT SETNAME`, `CLIENT SETINFO` and `CLIENT ID`-style probes that
/// client libraries send on connect.
/// `HELLO`'s arguments, with Redis 7.2's errors.
fn parse_hello(args: &[Bytes]) -> Result<Hello, Reply> {
    let mut hello = Hello::default();
    let Some((version, mut rest)) = args.split_first() else {
        return Ok(hello);
    };
    let version = std::str::from_utf8(version)
        .ok()
        .and_then(|v| v.parse::<i64>().ok())
        .ok_or_else(|| Reply::err("Protocol version is not an integer or out of range"))?;
    hello.protocol = Some(match version {
        2 => Protocol::Resp2,
        3 => Protocol::Resp3,
        _ => return Err(Reply::Error("NOPROTO unsupported protocol version".into())),
    });
    while let Some((option, after)) = rest.split_first() {
        let name = String::from_utf8_lossy(option);
        match (name.to_ascii_lowercase().as_str(), after) {
            ("auth", [user, pass, tail @ ..]) => {
                hello.auth = Some((user.clone(), pass.clone()));
                rest = tail;
            }
            ("setname", [client, tail @ ..]) => {
                if client.iter().any(|&b| b <= b' ' || b > b'~') {
                    return Err(Reply::err(
                        "Client names cannot contain spaces, newlines or special characters.",
                    ));
                }
                hello.name = Some(client.clone());
                rest = tail;
            }
            _ => {
                return Err(Reply::err(format_args!(
                    "Syntax error in HELLO option '{name}'"
                )));
            }
        }
    }
    Ok(hello)
}

fn parse_client(args: &[Bytes]) -> Result<Reply, Reply> {
    let sub = args
        .first()
        .map(|s| String::from_utf8_lossy(s).to_ascii_lowercase())
        .unwrap_or_default();
    match sub.as_str() {
        "setname" | "setinfo" => Ok(Reply::Simple("OK")),
        "getname" => Ok(Reply::Bulk(None)),
        _ => Err(Reply::err(format_args!(
            "unknown subcommand '{sub}' for 'client'"
        ))),
    }
}

fn unknown_command(name: &str, args: &[Bytes]) -> Reply {
    let mut text = format!("unknown command '{name}', with args beginning with:");
    for arg in args.iter().take(3) {
        text.push_str(&format!(" '{}'", String::from_utf8_lossy(arg)));
    }
    Reply::err(text)
}

pub(crate) fn not_integer() -> Reply {
    Reply::err("value is not an integer or out of range")
}

/// A decimal `i64` exactly as Redis accepts it (no spaces, no `+`).
pub(crate) fn parse_i64(bytes: &[u8]) -> Result<i64, Reply> {
    let text = std::str::from_utf8(bytes).map_err(|_| not_integer())?;
    if text.starts_with('+') || text.len() > 20 {
        return Err(not_integer());
    }
    text.parse().map_err(|_| not_integer())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(text: &str) -> Command {
        text.split(' ')
            .map(|s| Bytes::from(s.to_string()))
            .collect()
    }

    #[test]
    fn data_commands_parse_case_insensitively() {
        assert_eq!(
            parse(&cmd("gEt k")),
            Ok(Request::Data(Op::Get(Bytes::from("k"))))
        );
        assert_eq!(
            parse(&cmd("DECRBY k 5")),
            Ok(Request::Data(Op::IncrBy(Bytes::from("k"), -5)))
        );
        assert_eq!(
            parse(&cmd("SET k v NX")),
            Ok(Request::Data(Op::Set {
                key: Bytes::from("k"),
                value: Bytes::from("v"),
                when: SetWhen::Absent
            }))
        );
    }

    #[test]
    fn bad_commands_get_redis_style_errors() {
        let error = |text: &str| match parse(&cmd(text)) {
            Err(Reply::Error(message)) => message,
            other => panic!("{text}: {other:?}"),
        };
        assert_eq!(
            error("GET"),
            "ERR wrong number of arguments for 'get' command"
        );
        assert_eq!(
            error("MSET a 1 b"),
            "ERR wrong number of arguments for 'mset' command"
        );
        assert_eq!(
            error("FLUSHALL now"),
            "ERR unknown command 'flushall', with args beginning with: 'now'"
        );
        assert_eq!(error("SET k v NX XX"), "ERR syntax error");
        assert!(error("SET k v EX 10").contains("expiry"));
        assert!(error("INCRBY k x").contains("not an integer"));
        assert!(error("DECRBY k -9223372036854775808").contains("not an integer"));
        assert!(error("SELECT 1").contains("out of range"));
        assert!(error("CERTUS REBOOT").contains("unknown subcommand 'reboot'"));
        assert_eq!(parse(&cmd("certus Members")), Ok(Request::Members));
        assert_eq!(parse(&cmd("CERTUS LEAVE")), Ok(Request::Leave));
    }

    #[test]
    fn integers_parse_as_redis_does() {
        assert_eq!(parse_i64(b"-42"), Ok(-42));
        assert_eq!(parse_i64(b"9223372036854775807"), Ok(i64::MAX));
        for bad in [
            &b"+1"[..],
            b" 1",
            b"1.0",
            b"",
            b"9223372036854775808",
            b"\xff",
        ] {
            assert!(parse_i64(bad).is_err(), "{bad:?}");
        }
    }
}
