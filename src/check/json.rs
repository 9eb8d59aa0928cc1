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

use super::history::{At, Event, EventType, History, HistoryError, Malformed, Mop};

fn malformed(at: At, problem: Malformed) -> HistoryError {
    HistoryError::Malformed { at, problem }
}

fn not_json(at: At, err: serde_json::Error) -> HistoryError {
    malformed(at, Malformed::Json(crate::Cause::new(err)))
}

/// Reads a history from Elle JSON (an array, or one event per line).
///
/// # Errors
/// [`HistoryError::Malformed`] naming the first bad event, or the history's
/// own errors.
pub fn read_json(text: &str) -> Result<History, HistoryError> {
    let trimmed = text.trim_start();
    let values: Vec<Value> = if trimmed.starts_with('[') {
        serde_json::from_str(trimmed).map_err(|e| not_json(At::Input, e))?
    } else {
        trimmed
            .lines()
            .filter(|line| !line.trim().is_empty())
            .enumerate()
            .map(|(n, line)| serde_json::from_str(line).map_err(|e| not_json(At::Line(n + 1), e)))
            .collect::<Result<_, _>>()?
    };
    let mut events = values
        .iter()
        .enumerate()
        .map(|(n, value)| event(value).map_err(|e| malformed(At::Event(n), e)))
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

fn event(value: &Value) -> Result<Event, Malformed> {
    let kind = match value.get("type").and_then(Value::as_str) {
        Some("invoke") => EventType::Invoke,
        Some("ok") => EventType::Ok,
        Some("fail") => EventType::Fail,
        Some("info") => EventType::Info,
        other => {
            let found = other.map_or_else(|| "(missing)".into(), |t| format!("{t:?}"));
            return Err(Malformed::Type { found });
        }
    };
    let process = value
        .get("process")
        .and_then(Value::as_u64)
        .ok_or(Malformed::Process)?;
    let time = value.get("time").and_then(Value::as_u64).unwrap_or(0);
    let mops = match value.get("value") {
        Some(Value::Array(mops)) => mops.iter().map(mop).collect::<Result<_, _>>()?,
        Some(Value::Null) | None => Vec::new(),
        Some(other) => {
            let found = other.to_string();
            return Err(Malformed::Value { found });
        }
    };
    Ok(Event::new(process, kind, time, mops))
}

fn key(value: &Value) -> Result<String, Malformed> {
    match value {
        Value::Number(n) => Ok(n.to_string()),
        Value::String(s) => Ok(s.clone()),
        other => Err(Malformed::Key {
            found: other.to_string(),
        }),
    }
}

fn element(value: &Value) -> Result<i64, Malformed> {
    value.as_i64().ok_or_else(|| Malformed::Element {
        found: value.to_string(),
    })
}

fn mop(value: &Value) -> Result<Mop, Malformed> {
    let found = || value.to_string();
    let Some([f, k, v]) = value.as_array().map(Vec::as_slice) else {
        return Err(Malformed::MopShape { found: found() });
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
                    return Err(Malformed::Read {
                        found: other.to_string(),
                    });
                }
            };
            Ok(Mop::Read { key, elements })
        }
        _ => Err(Malformed::MopFunction { found: found() }),
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
