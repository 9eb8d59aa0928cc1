//! Running data commands inside a store transaction.
//!
//! A command's own failures (an `INCR` of a non-number) are error replies
//! and leave the transaction usable, as inside Redis's `EXEC`; a failure of
//! the store ends the whole transaction.

use bytes::{Bytes, BytesMut};

use super::command::{Op, SetWhen, not_integer, parse_i64};
use super::resp::Reply;
use crate::kv::{KvError, KvTransaction};

/// Runs `op` in `txn` and returns its reply.
pub(crate) fn run(op: &Op, txn: &mut KvTransaction) -> Result<Reply, KvError> {
    let reply = match op {
        Op::Get(key) => Reply::Bulk(txn.get(key)?),
        Op::Set { key, value, when } => {
            let allowed = match when {
                SetWhen::Always => true,
                SetWhen::Absent => txn.get(key)?.is_none(),
                SetWhen::Present => txn.get(key)?.is_some(),
            };
            if !allowed {
                return Ok(Reply::Bulk(None));
            }
            txn.put(key.clone(), value.clone())?;
            Reply::Simple("OK")
        }
        Op::Del(keys) => {
            let mut removed = 0;
            for key in keys {
                if txn.get(key)?.is_some() {
                    txn.delete(key.clone())?;
                    removed += 1;
                }
            }
            Reply::Integer(removed)
        }
        Op::Exists(keys) => {
            let mut present = 0;
            for key in keys {
                present += i64::from(txn.get(key)?.is_some());
            }
            Reply::Integer(present)
        }
        Op::MGet(keys) => {
            let mut values = Vec::with_capacity(keys.len());
            for key in keys {
                values.push(Reply::Bulk(txn.get(key)?));
            }
            Reply::Array(Some(values))
        }
        Op::MSet(pairs) => {
            for (key, value) in pairs {
                txn.put(key.clone(), value.clone())?;
            }
            Reply::Simple("OK")
        }
        Op::IncrBy(key, by) => incr_by(txn, key, *by)?,
        Op::Append(key, suffix) => {
            let mut value = BytesMut::from(txn.get(key)?.unwrap_or_default().as_ref());
            value.extend_from_slice(suffix);
            let len = len_reply(value.len());
            txn.put(key.clone(), value.freeze())?;
            len
        }
        Op::Strlen(key) => len_reply(txn.get(key)?.map_or(0, |v| v.len())),
    };
    Ok(reply)
}

fn incr_by(txn: &mut KvTransaction, key: &Bytes, by: i64) -> Result<Reply, KvError> {
    let current = match txn.get(key)? {
        None => 0,
        Some(value) => match parse_i64(&value) {
            Ok(n) => n,
            Err(_) => return Ok(not_integer()),
        },
    };
    let Some(next) = current.checked_add(by) else {
        return Ok(Reply::err("increment or decrement would overflow"));
    };
    txn.put(key.clone(), Bytes::from(next.to_string()))?;
    Ok(Reply::Integer(next))
}

fn len_reply(len: usize) -> Reply {
    Reply::Integer(i64::try_from(len).unwrap_or(i64::MAX))
}
