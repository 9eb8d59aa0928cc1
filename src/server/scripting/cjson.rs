//! `cjson`, as lua-cjson 2.1 in Redis encodes and decodes: tables whose
//! keys are all positive integers are arrays (holes are `null`, an
//! excessively sparse one is an error), other tables objects; numbers as
//! `%.14g`; `/` escaped; `cjson.null` is the null light userdata.

use mlua::{Lua, Table, Value};

/// Nesting `cjson.encode` follows at most (lua-cjson's default).
const MAX_DEPTH: usize = 1000;

pub(super) fn library(lua: &Lua) -> mlua::Result<Table> {
    let table = lua.create_table()?;
    table.raw_set(
        "encode",
        lua.create_function(|lua, value: Value| {
            let mut out = Vec::new();
            encode(&value, 0, &mut out).map_err(mlua::Error::runtime)?;
            lua.create_string(out)
        })?,
    )?;
    table.raw_set(
        "decode",
        lua.create_function(|lua, text: mlua::LuaString| {
            let parsed: serde_json::Value =
                serde_json::from_slice(&text.as_bytes()).map_err(|err| {
                    mlua::Error::runtime(format!(
                        "Expected value but found invalid token at character {}",
                        err.column()
                    ))
                })?;
            to_lua(lua, parsed)
        })?,
    )?;
    table.raw_set("null", Value::NULL)?;
    Ok(table)
}

fn encode(value: &Value, depth: usize, out: &mut Vec<u8>) -> Result<(), String> {
    match value {
        Value::String(text) => string(&text.as_bytes(), out),
        Value::Integer(n) => number(*n as f64, out)?,
        Value::Number(n) => number(*n, out)?,
        Value::Boolean(true) => out.extend_from_slice(b"true"),
        Value::Boolean(false) => out.extend_from_slice(b"false"),
        Value::Nil => out.extend_from_slice(b"null"),
        Value::LightUserData(data) if data.0.is_null() => out.extend_from_slice(b"null"),
        Value::Table(table) => {
            let depth = depth + 1;
            if depth > MAX_DEPTH {
                return Err(format!("Cannot serialise, excessive nesting ({depth})"));
            }
            match array_length(table)? {
                Some(len) if len > 0 => {
                    out.push(b'[');
                    for at in 1..=len {
                        if at > 1 {
                            out.push(b',');
                        }
                        let item: Value = table.raw_get(at).map_err(|e| e.to_string())?;
                        encode(&item, depth, out)?;
                    }
                    out.push(b']');
                }
                _ => object(table, depth, out)?,
            }
        }
        other => {
            return Err(format!(
                "Cannot serialise {}: type not supported",
                other.type_name()
            ));
        }
    }
    Ok(())
}

fn object(table: &Table, depth: usize, out: &mut Vec<u8>) -> Result<(), String> {
    out.push(b'{');
    let mut first = true;
    for pair in table.pairs::<Value, Value>() {
        let (key, item) = pair.map_err(|e| e.to_string())?;
        if !first {
            out.push(b',');
        }
        first = false;
        match &key {
            Value::String(text) => string(&text.as_bytes(), out),
            Value::Integer(n) => quoted_number(*n as f64, out)?,
            Value::Number(n) => quoted_number(*n, out)?,
            other => {
                return Err(format!(
                    "Cannot serialise {}: table key must be a number or string",
                    other.type_name()
                ));
            }
        }
        out.push(b':');
        encode(&item, depth, out)?;
    }
    out.push(b'}');
    Ok(())
}

fn quoted_number(n: f64, out: &mut Vec<u8>) -> Result<(), String> {
    out.push(b'"');
    number(n, out)?;
    out.push(b'"');
    Ok(())
}

/// The length of a table that is an array (every key a positive integer),
/// `None` for an object; an excessively sparse array is an error.
fn array_length(table: &Table) -> Result<Option<usize>, String> {
    let (mut max, mut items) = (0.0_f64, 0.0_f64);
    for pair in table.pairs::<Value, Value>() {
        let (key, _) = pair.map_err(|e| e.to_string())?;
        let k = match key {
            Value::Integer(k) => k as f64,
            Value::Number(k) => k,
            _ => return Ok(None),
        };
        if k < 1.0 || k.floor() != k {
            return Ok(None);
        }
        max = max.max(k);
        items += 1.0;
    }
    if max > items * 2.0 && max > 10.0 {
        return Err("Cannot serialise table: excessively sparse array".into());
    }
    Ok(Some(max as usize))
}

fn number(n: f64, out: &mut Vec<u8>) -> Result<(), String> {
    if !n.is_finite() {
        return Err("Cannot serialise number: must not be NaN or Inf".into());
    }
    out.extend_from_slice(format_g14(n).as_bytes());
    Ok(())
}

/// C's `%.14g`.
pub(super) fn format_g14(n: f64) -> String {
    const PRECISION: i32 = 14;
    if n == 0.0 {
        return if n.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let scientific = format!("{:.*e}", (PRECISION - 1) as usize, n);
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if !(-4..PRECISION).contains(&exponent) {
        let mantissa = trim_zeros(mantissa);
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.unsigned_abs())
    } else {
        let decimals = usize::try_from(PRECISION - 1 - exponent).unwrap_or(0);
        trim_zeros(&format!("{n:.decimals$}")).to_string()
    }
}

fn trim_zeros(text: &str) -> &str {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        text
    }
}

fn string(bytes: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    for &byte in bytes {
        match byte {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'/' => out.extend_from_slice(b"\\/"),
            b'\x08' => out.extend_from_slice(b"\\b"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\x0c' => out.extend_from_slice(b"\\f"),
            b'\r' => out.extend_from_slice(b"\\r"),
            0..=0x1f | 0x7f => out.extend_from_slice(format!("\\u{byte:04x}").as_bytes()),
            _ => out.push(byte),
        }
    }
    out.push(b'"');
}

fn to_lua(lua: &Lua, value: serde_json::Value) -> mlua::Result<Value> {
    Ok(match value {
        serde_json::Value::Null => Value::NULL,
        serde_json::Value::Bool(b) => Value::Boolean(b),
        serde_json::Value::Number(n) => Value::Number(n.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(s) => Value::String(lua.create_string(s)?),
        serde_json::Value::Array(items) => {
            let table = lua.create_table_with_capacity(items.len(), 0)?;
            for (at, item) in items.into_iter().enumerate() {
                table.raw_set(at + 1, to_lua(lua, item)?)?;
            }
            Value::Table(table)
        }
        serde_json::Value::Object(map) => {
            let table = lua.create_table_with_capacity(0, map.len())?;
            for (key, item) in map {
                table.raw_set(key, to_lua(lua, item)?)?;
            }
            Value::Table(table)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::format_g14;

    #[test]
    fn numbers_print_as_percent_14g() {
        assert_eq!(format_g14(1.0), "1");
        assert_eq!(format_g14(-2.5), "-2.5");
        assert_eq!(format_g14(0.1), "0.1");
        assert_eq!(format_g14(1e20), "1e+20");
        assert_eq!(format_g14(123_456_789_012_345.0), "1.2345678901234e+14");
        assert_eq!(format_g14(0.000_01), "1e-05");
        assert_eq!(format_g14(1.0 / 3.0), "0.33333333333333");
    }
}
