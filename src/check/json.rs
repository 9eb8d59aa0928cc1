//! Histories in Elle's JSON form: one object per event, as a JSON array or
//! one object per line (JSON Lines):
//!
//! ```text
//! {"index": 0, "type": "invoke", "process": 0, "time": 0, "f": "txn",
//!  "value": [["append", 1, 2], ["r", 1, null]]}
//! ```
//!
//! Keys may be integers or strings; they are written back as they were.
//! rw-register micro-ops are `["w", k, v]` and `["r", k, v]`; a history with
//! any of them is a register history, where a nil read is a read of nil.

use serde_json::{Value, json};

use super::history::{Event, EventType, History, HistoryError, Mop};

fn malformed(message: impl Into<String>) -> HistoryError {
    HistoryError::Malformed(message.into())
}

/// Reads a history from Elle JSON (an array, or one event per line).
///
/// # Errors
/// [`HistoryError::Malformed`] naming the first bad event, or the history's
/// own errors.
pub fn read_json(text: &str) -> Result<History, HistoryError> {
    let trimmed = text.trim_start();
    let values: Vec<Value> = if trimmed.starts_with('[') {
        serde_json::from_str(trimmed).map_err(|e| malformed(e.to_string()))?
    } else {
        trimmed
            .lines()
            .filter(|line| !line.trim().is_empty())
            .enumerate()
            .map(|(n, line)| {
                serde_json::from_str(line).map_err(|e| malformed(format!("line {}: {e}", n + 1)))
            })
            .collect::<Result<_, _>>()?
    };
    let mut events = values
        .iter()
        .enumerate()
        .map(|(n, value)| event(value).map_err(|e| malformed(format!("event {n}: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    if events.iter().flat_map(|e| &e.value).any(Mop::is_register) {
        for mop in events.iter_mut().flat_map(|e| e.value.iter_mut()) {
            if let Mop::Read {
                key,
                elements: None,
            } = mop
            {
                let key = std::mem::take(key);
                *mop = Mop::ReadRegister { key, value: None };
            }
        }
    }
    History::new(events)
}

fn event(value: &Value) -> Result<Event, String> {
    let kind = match value.get("type").and_then(Value::as_str) {
        Some("invoke") => EventType::Invoke,
        Some("ok") => EventType::Ok,
        Some("fail") => EventType::Fail,
        Some("info") => EventType::Info,
        other => {
            let shown = other.unwrap_or("(missing)");
            return Err(format!("type {shown:?} is not invoke, ok, fail or info"));
        }
    };
    let process = value
        .get("process")
        .and_then(Value::as_u64)
        .ok_or("process must be a non-negative integer")?;
    let time = value.get("time").and_then(Value::as_u64).unwrap_or(0);
    let mops = match value.get("value") {
        Some(Value::Array(mops)) => mops.iter().map(mop).collect::<Result<_, _>>()?,
        Some(Value::Null) | None => Vec::new(),
        Some(other) => return Err(format!("value {other} is not a list of micro-ops")),
    };
    Ok(Event::new(process, kind, time, mops))
}

fn key(value: &Value) -> Result<String, String> {
    match value {
        Value::Number(n) => Ok(n.to_string()),
        Value::String(s) => Ok(s.clone()),
        other => Err(format!("key {other} is neither a number nor a string")),
    }
}

fn element(value: &Value) -> Result<i64, String> {
    value
        .as_i64()
        .ok_or_else(|| format!("element {value} is not an integer"))
}

fn mop(value: &Value) -> Result<Mop, String> {
    let parts = value
        .as_array()
        .ok_or("a micro-op must be [f, key, value]")?;
    let [f, k, v] = parts.as_slice() else {
        return Err(format!("micro-op {value} does not have three parts"));
    };
    let key = key(k)?;
    match f.as_str() {
        Some("append") => Ok(Mop::Append {
            key,
            element: element(v)?,
        }),
        Some("w") => Ok(Mop::Write {
            key,
            value: element(v)?,
        }),
        Some("r") => {
            let elements = match v {
                Value::Null => None,
                Value::Array(items) => Some(items.iter().map(element).collect::<Result<_, _>>()?),
                Value::Number(_) => {
                    let value = Some(element(v)?);
                    return Ok(Mop::ReadRegister { key, value });
                }
                other => {
                    return Err(format!(
                        "read value {other} is not a list, an integer or null"
                    ));
                }
            };
            Ok(Mop::Read { key, elements })
        }
        _ => Err(format!("micro-op {value} is not append, w or r")),
    }
}

/// Writes a history as JSON Lines, one event per line.
#[must_use]
pub fn write_json_lines(history: &History) -> String {
    let mut out = String::new();
    for event in history.events() {
        let kind = match event.kind {
            EventType::Invoke => "invoke",
            EventType::Ok => "ok",
            EventType::Fail => "fail",
            EventType::Info => "info",
        };
        let value: Vec<Value> = event.value.iter().map(mop_json).collect();
        let line = json!({
            "index": event.index,
            "type": kind,
            "process": event.process,
            "time": event.time,
            "f": "txn",
            "value": value,
        });
        out.push_str(&line.to_string());
        out.push('\n');
    }
    out
}

fn key_json(key: &str) -> Value {
    key.parse::<i64>()
        .map_or_else(|_| Value::from(key), Value::from)
}

fn mop_json(mop: &Mop) -> Value {
    match mop {
        Mop::Append { key, element } => json!(["append", key_json(key), element]),
        Mop::Read { key, elements } => json!(["r", key_json(key), elements]),
        Mop::Write { key, value } => json!(["w", key_json(key), value]),
        Mop::ReadRegister { key, value } => json!(["r", key_json(key), value]),
    }
}
