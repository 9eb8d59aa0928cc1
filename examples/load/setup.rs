//! The untimed parts of a run: preloading keys, resetting the counters, and
//! checking the counters afterwards.

use serde_json::{Value as Json, json};
use tokio::task::JoinSet;

use crate::client::{Conn, connect};
use crate::resp::Value;

/// Keys per `MULTI` block while preloading.
const PRELOAD_BATCH: u64 = 500;
/// Connections preloading at once.
const PRELOAD_CONNECTIONS: u64 = 4;

/// The key of data row `k` of the write, read and mixed workloads (the
/// clients' hot path writes the same form into a reused buffer).
pub(crate) fn data_key(k: u64) -> String {
    format!("kv:{k:012}")
}

/// The key of counter `i` of the contended workload.
pub(crate) fn hot_key(i: u64) -> String {
    format!("hot:{i:04}")
}

/// Writes every key `kv:0` .. `kv:keys-1`, in `MULTI` blocks over a few
/// connections spread across the endpoints.
pub(crate) async fn preload(
    endpoints: &[String],
    keys: u64,
    value_size: usize,
    seed: u64,
) -> Result<(), String> {
    let mut tasks = JoinSet::new();
    for part in 0..PRELOAD_CONNECTIONS {
        let endpoint = endpoints[part as usize % endpoints.len()].clone();
        tasks.spawn(async move {
            let mut conn = connect(&endpoint).await?;
            let mut value = vec![b'p'; value_size];
            let stamp = format!("{:08x}", seed & 0xffff_ffff);
            value[..stamp.len()].copy_from_slice(stamp.as_bytes());
            let mut first = part * PRELOAD_BATCH;
            while first < keys {
                let last = (first + PRELOAD_BATCH).min(keys);
                let sets = (first..last).map(data_key);
                let sets: Vec<(String, &[u8])> = sets.map(|key| (key, value.as_slice())).collect();
                transaction(&mut conn, &sets).await?;
                first += PRELOAD_BATCH * PRELOAD_CONNECTIONS;
            }
            Ok::<(), String>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| format!("preload task: {e}"))??;
    }
    Ok(())
}

/// Sets every counter to zero.
pub(crate) async fn reset_hot(endpoint: &str, hot: u64) -> Result<(), String> {
    let mut conn = connect(endpoint).await?;
    let sets: Vec<(String, &[u8])> = (0..hot).map(|i| (hot_key(i), b"0".as_slice())).collect();
    transaction(&mut conn, &sets).await
}

/// Reads the counters through every endpoint: each must see the same sum,
/// and it must equal the commits counted, give or take those whose outcome
/// is unknown.
pub(crate) async fn verify(endpoints: &[String], hot: u64, commits: u64, ambiguous: u64) -> Json {
    let mut sums = Vec::new();
    for endpoint in endpoints {
        match sum_counters(endpoint, hot).await {
            Ok(sum) => sums.push(json!(sum)),
            Err(err) => {
                return json!({"ok": false, "error": format!("{endpoint}: {err}")});
            }
        }
    }
    let in_range = |sum: &Json| {
        sum.as_u64()
            .is_some_and(|s| s >= commits && s <= commits + ambiguous)
    };
    let same = sums.windows(2).all(|pair| pair[0] == pair[1]);
    json!({
        "ok": same && sums.iter().all(in_range),
        "commits": commits,
        "ambiguous": ambiguous,
        "sums": sums,
    })
}

async fn sum_counters(endpoint: &str, hot: u64) -> Result<u64, String> {
    let mut conn = connect(endpoint).await?;
    let mut sum = 0u64;
    for i in 0..hot {
        let reply = conn
            .call(&["GET", hot_key(i).as_str()])
            .await
            .map_err(|e| e.to_string())?;
        let count = match &reply {
            Value::Bulk(Some(bytes)) => {
                std::str::from_utf8(bytes).ok().and_then(|t| t.parse().ok())
            }
            Value::Bulk(None) => Some(0),
            _ => None,
        };
        sum += count.ok_or_else(|| format!("counter {i}: {reply:?}"))?;
    }
    Ok(sum)
}

/// `MULTI`, one `SET` per pair, `EXEC`, written at once; fails unless
/// `EXEC` ran every command.
async fn transaction(conn: &mut Conn, sets: &[(String, &[u8])]) -> Result<(), String> {
    conn.push(&["MULTI"]);
    for (key, value) in sets {
        conn.push(&[b"SET".as_slice(), key.as_bytes(), value]);
    }
    conn.push(&["EXEC"]);
    conn.flush().await.map_err(|e| e.to_string())?;
    for _ in 0..=sets.len() {
        let reply = conn.read().await.map_err(|e| e.to_string())?;
        if let Some(code) = reply.error_code() {
            return Err(format!("preload: {code}: {reply:?}"));
        }
    }
    match conn.read().await.map_err(|e| e.to_string())? {
        Value::Array(Some(replies)) if replies.len() == sets.len() => Ok(()),
        other => Err(format!("preload EXEC: {other:?}")),
    }
}
