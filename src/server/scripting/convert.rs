//! Between Redis replies and Lua values, by Redis 7.2's rules
//! (`redisProtocolToLuaType` and `luaReplyToRedisReply` in script_lua.c):
//! a status is `{ok=...}`, an error `{err=...}`, a nil `false` under RESP2,
//! and a script's `{double=...}`, `{map=...}`, `{set=...}` tables become
//! RESP3 types.

use bytes::Bytes;
use mlua::{Lua, Table, Value};

use crate::server::resp::{Reply, format_double};

/// Nesting a reply or a returned table may reach: past it the script gets
/// Redis's `reached lua stack limit`.
const MAX_DEPTH: usize = 200;

/// The protocol a script sees command replies in (`redis.setresp`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Resp {
    Two,
    Three,
}

/// A command's reply as the script sees it.
pub(super) fn reply_to_lua(lua: &Lua, reply: Reply, resp: Resp) -> mlua::Result<Value> {
    let resp3 = resp == Resp::Three;
    let nil = || {
        if resp3 {
            Value::Nil
        } else {
            Value::Boolean(false)
        }
    };
    Ok(match reply {
        Reply::Simple(text) => field(lua, "ok", Value::String(lua.create_string(text)?))?,
        Reply::Status(text) => field(lua, "ok", Value::String(lua.create_string(text)?))?,
        Reply::Error(text) => error_table(lua, &format!("-{text}"))?,
        Reply::Integer(n) => Value::Number(n as f64),
        Reply::Bulk(Some(bytes)) => Value::String(lua.create_string(bytes)?),
        Reply::Bulk(None) | Reply::Array(None) | Reply::Null => nil(),
        Reply::Array(Some(items)) | Reply::Push(items) => array(lua, items, resp)?,
        Reply::Set(items) if resp3 => {
            let set = lua.create_table()?;
            for item in items {
                set.raw_set(reply_to_lua(lua, item, resp)?, true)?;
            }
            field(lua, "set", Value::Table(set))?
        }
        Reply::Set(items) => array(lua, items, resp)?,
        Reply::Map(pairs) if resp3 => {
            let map = lua.create_table()?;
            for (key, value) in pairs {
                map.raw_set(
                    reply_to_lua(lua, key, resp)?,
                    reply_to_lua(lua, value, resp)?,
                )?;
            }
            field(lua, "map", Value::Table(map))?
        }
        Reply::Pairs(pairs) if resp3 => {
            let items = pairs
                .into_iter()
                .map(|(a, b)| Reply::Array(Some(vec![a, b])))
                .collect();
            array(lua, items, resp)?
        }
        Reply::Map(pairs) | Reply::Pairs(pairs) => {
            let items = pairs.into_iter().flat_map(|(a, b)| [a, b]).collect();
            array(lua, items, resp)?
        }
        Reply::Double(d) if resp3 => field(lua, "double", Value::Number(d))?,
        Reply::Double(d) => Value::String(lua.create_string(format_double(d))?),
        Reply::Boolean(b) if resp3 => Value::Boolean(b),
        Reply::Boolean(b) => Value::Number(if b { 1.0 } else { 0.0 }),
        Reply::BigNumber(digits) if resp3 => {
            field(lua, "big_number", Value::String(lua.create_string(digits)?))?
        }
        Reply::BigNumber(digits) => Value::String(lua.create_string(digits)?),
        Reply::Verbatim(text) if resp3 => {
            let inner = lua.create_table()?;
            inner.raw_set("format", "txt")?;
            inner.raw_set("string", lua.create_string(text)?)?;
            field(lua, "verbatim_string", Value::Table(inner))?
        }
        Reply::Verbatim(text) => Value::String(lua.create_string(text)?),
        Reply::Raw(_) => error_table(lua, "ERR unexpected encoded reply")?,
    })
}

fn array(lua: &Lua, items: Vec<Reply>, resp: Resp) -> mlua::Result<Value> {
    let table = lua.create_table_with_capacity(items.len(), 0)?;
    for (at, item) in items.into_iter().enumerate() {
        table.raw_set(at + 1, reply_to_lua(lua, item, resp)?)?;
    }
    Ok(Value::Table(table))
}

fn field(lua: &Lua, name: &str, value: Value) -> mlua::Result<Value> {
    let table = lua.create_table()?;
    table.raw_set(name, value)?;
    Ok(Value::Table(table))
}

/// Redis's error table (`luaPushErrorBuff`): `{err="CODE message"}`, the
/// code `ERR` unless the text starts with `-CODE` (a command's error reply
/// is passed so); no trailing newline.
pub(super) fn error_table(lua: &Lua, text: &str) -> mlua::Result<Value> {
    field(
        lua,
        "err",
        Value::String(lua.create_string(error_text(text))?),
    )
}

/// The text of an error as Redis keeps it in an error table: `-CODE
/// message` becomes `CODE message`, anything else `ERR text`; line feeds
/// trimmed from the message's ends.
pub(super) fn error_text(text: &str) -> String {
    let trim = |message: &str| message.trim_matches(['\r', '\n']).to_string();
    match text.strip_prefix('-') {
        Some(coded) => match coded.split_once(' ') {
            Some((code, message)) => format!("{code} {}", trim(message)),
            None => format!("ERR {}", trim(coded)),
        },
        None => format!("ERR {}", trim(text)),
    }
}

/// What a script returned, as the reply its client gets. `resp` is the
/// script's protocol (a boolean is RESP2's `1`/nil unless it chose 3).
pub(super) fn lua_to_reply(value: &Value, resp: Resp) -> Reply {
    to_reply(value, resp, 0)
}

fn to_reply(value: &Value, resp: Resp, depth: usize) -> Reply {
    if depth > MAX_DEPTH {
        return Reply::err("reached lua stack limit");
    }
    match value {
        Value::String(text) => Reply::Bulk(Some(Bytes::copy_from_slice(&text.as_bytes()))),
        Value::Boolean(b) if resp == Resp::Three => Reply::Boolean(*b),
        Value::Boolean(true) => Reply::Integer(1),
        Value::Boolean(false) => Reply::Bulk(None),
        Value::Integer(n) => Reply::Integer(*n),
        Value::Number(n) => Reply::Integer(*n as i64),
        Value::Table(table) => table_to_reply(table, resp, depth),
        _ => Reply::Null,
    }
}

fn table_to_reply(table: &Table, resp: Resp, depth: usize) -> Reply {
    let text = |name: &str| match table.raw_get::<Value>(name) {
        Ok(Value::String(s)) => Some(s.to_string_lossy()),
        _ => None,
    };
    if let Some(err) = text("err") {
        return Reply::Error(err);
    }
    if let Some(ok) = text("ok") {
        return Reply::Status(ok.replace(['\r', '\n'], " "));
    }
    match table.raw_get::<Value>("double") {
        Ok(Value::Number(d)) => return Reply::Double(d),
        Ok(Value::Integer(d)) => return Reply::Double(d as f64),
        _ => {}
    }
    if let Some(digits) = text("big_number") {
        return Reply::BigNumber(digits.replace(['\r', '\n'], " "));
    }
    if let Ok(Value::Table(verbatim)) = table.raw_get::<Value>("verbatim_string") {
        let format = verbatim.raw_get::<Value>("format");
        if let (Ok(Value::String(_)), Ok(Value::String(s))) =
            (format, verbatim.raw_get::<Value>("string"))
        {
            return Reply::Verbatim(Bytes::copy_from_slice(&s.as_bytes()));
        }
    }
    if let Ok(Value::Table(map)) = table.raw_get::<Value>("map") {
        let pairs = map
            .pairs::<Value, Value>()
            .filter_map(Result::ok)
            .map(|(k, v)| (to_reply(&k, resp, depth + 1), to_reply(&v, resp, depth + 1)))
            .collect();
        return Reply::Map(pairs);
    }
    if let Ok(Value::Table(set)) = table.raw_get::<Value>("set") {
        let items = set
            .pairs::<Value, Value>()
            .filter_map(Result::ok)
            .map(|(k, _)| to_reply(&k, resp, depth + 1))
            .collect();
        return Reply::Set(items);
    }
    let mut items = Vec::new();
    for at in 1.. {
        match table.raw_get::<Value>(at) {
            Ok(Value::Nil) | Err(_) => break,
            Ok(item) => items.push(to_reply(&item, resp, depth + 1)),
        }
    }
    Reply::Array(Some(items))
}

/// A script's argument to `redis.call`: a string, or a number written as
/// Redis writes a double; `None` for anything else.
pub(super) fn argument(value: &Value) -> Option<Bytes> {
    match value {
        Value::String(text) => Some(Bytes::copy_from_slice(&text.as_bytes())),
        Value::Integer(n) => Some(Bytes::from(n.to_string())),
        Value::Number(n) => Some(Bytes::from(format_double(*n))),
        _ => None,
    }
}
