//! The hot keys of the transactional workloads: a few keys written at once,
//! each retired after a fixed number of writes (as Elle's generators do, so
//! reads stay short), with every written value unique.

use redis::Connection;

/// Active keys, with how often each was written.
pub(crate) struct KeyPool {
    active: Vec<(u64, u32)>,
    next_key: u64,
    next_value: i64,
    per_key: u32,
}

impl KeyPool {
    /// `active` keys at once, each retired after `per_key` writes.
    pub(crate) fn new(active: usize, per_key: u32) -> KeyPool {
        let active = active as u64;
        KeyPool {
            active: (0..active).map(|k| (k, 0)).collect(),
            next_key: active,
            next_value: 1,
            per_key,
        }
    }

    /// A random active key, with a fresh value to write half the time
    /// (`None`: read it).
    pub(crate) fn pick(&mut self, rng: &mut fastrand::Rng) -> (u64, Option<i64>) {
        let slot = rng.usize(..self.active.len());
        let key = self.active[slot].0;
        if rng.bool() {
            return (key, None);
        }
        let value = self.next_value;
        self.next_value += 1;
        self.active[slot].1 += 1;
        if self.active[slot].1 >= self.per_key {
            self.active[slot] = (self.next_key, 0);
            self.next_key += 1;
        }
        (key, Some(value))
    }

    /// Every key used so far is below this.
    pub(crate) fn used(&self) -> u64 {
        self.next_key
    }
}

/// Reads `keys` with `MGET`, 500 at a time.
///
/// # Errors
/// The read's error, as text.
pub(crate) fn mget(con: &mut Connection, keys: &[String]) -> Result<Vec<redis::Value>, String> {
    let mut values = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(500) {
        let part: Vec<redis::Value> = redis::cmd("MGET")
            .arg(chunk)
            .query(con)
            .map_err(|e| format!("final read: {e}"))?;
        values.extend(part);
    }
    Ok(values)
}
