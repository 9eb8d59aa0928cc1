//! Lua scripts (`EVAL`, `EVALSHA`, `SCRIPT`), as Redis 7.2 runs them, but
//! on every node.
//!
//! A script that may write is an ordered operation like any write command:
//! every node runs it at the operation's position, against the same state,
//! at the same cluster time, so every node makes the same changes and
//! computes the same reply; no script ever aborts on a conflict. Redis 7
//! replicates a script's effects and so tolerates a script whose effects
//! differ from run to run; here the script itself runs everywhere, so
//! everything it can observe is made the same on every node:
//!
//! - each run gets a fresh interpreter ([`lua`]): nothing a script leaves
//!   behind (a global, a changed library table, the collector's state)
//!   reaches the next one;
//! - `math.random` is Redis's own generator, seeded from the operation's
//!   position; `redis.call('TIME')` answers the cluster time;
//! - the run-time limit counts Lua instructions, not seconds, and the
//!   memory limit counts the interpreter's bytes, so a script that passes
//!   either fails at the same point on every node;
//! - commands inside a script run through the same handlers as from a
//!   client, with the same seeded random choices.
//!
//! A script's operation declares the keys in `KEYS`. A script that touches
//! anything else (a key built from `ARGV`, `KEYS *`, `FLUSHALL`) stops on
//! every node at the same point, the operation's effects are dropped, and
//! it runs again in an operation that covers every key (the executor's
//! `Output::Widen`). Connection commands are refused, except `TIME`,
//! `PING` and `ECHO`.
//!
//! The script cache is per node and in memory, as in Redis: `SCRIPT LOAD`,
//! `EVAL` and `SCRIPT FLUSH` are ordered operations, so every node that
//! runs them fills or empties its cache at the same point, and a node
//! serving `EVALSHA` sends the script's text in the operation, so no other
//! node needs it. A node that restarts starts with an empty cache, as a
//! restarted Redis does; clients answer `NOSCRIPT` with `EVAL`.
//!
//! `EVAL_RO`, `EVALSHA_RO` and scripts declared `#!lua flags=no-writes`
//! run on a snapshot of the serving node, and only these can be stopped by
//! `SCRIPT KILL` (a script running in an operation runs on every node and
//! is never killed on one).

mod cjson;
mod convert;
mod libs;
pub(crate) mod lua;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;

use super::resp::Reply;

/// Script bytes one node's cache holds at most; the oldest scripts are
/// dropped past it (a client gets `NOSCRIPT` and sends `EVAL`).
const CACHE_BYTES: usize = 64 * 1024 * 1024;

/// This node's scripts: the cache `EVALSHA` resolves from, and the
/// read-only runs `SCRIPT KILL` can stop.
#[derive(Debug, Default)]
pub(crate) struct Scripts {
    cache: Mutex<Cache>,
    running: Mutex<Vec<Arc<Running>>>,
    /// Scripts (by SHA-1) that touched keys they did not declare: this
    /// node submits them covering every key from the start (bounded: a
    /// forgotten one only costs one more probe).
    wide: Mutex<std::collections::BTreeSet<String>>,
}

/// Scripts remembered as needing every key, at most.
const WIDE_SCRIPTS: usize = 4096;

#[derive(Debug, Default)]
struct Cache {
    bodies: HashMap<String, Bytes>,
    /// Insertion order, oldest first, for eviction.
    order: VecDeque<String>,
    bytes: usize,
}

/// One script run, as `SCRIPT KILL` sees it.
#[derive(Debug)]
pub(crate) struct Running {
    /// Runs on a snapshot of this node only (killable).
    read_only: bool,
    killed: AtomicBool,
}

impl Running {
    /// Whether `SCRIPT KILL` asked this run to stop.
    pub(crate) fn killed(&self) -> bool {
        self.killed.load(Ordering::Relaxed)
    }
}

/// Unregisters a run when it ends.
#[derive(Debug)]
pub(crate) struct RunGuard<'a> {
    scripts: &'a Scripts,
    run: Arc<Running>,
}

impl RunGuard<'_> {
    pub(crate) fn run(&self) -> Arc<Running> {
        self.run.clone()
    }
}

impl Drop for RunGuard<'_> {
    fn drop(&mut self) {
        lock(&self.scripts.running).retain(|run| !Arc::ptr_eq(run, &self.run));
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Scripts {
    /// Caches `body`, whose SHA-1 in hex is `sha` (the caller has it).
    pub(crate) fn add(&self, sha: &str, body: &Bytes) {
        let mut cache = lock(&self.cache);
        if cache.bodies.contains_key(sha) {
            return;
        }
        while cache.bytes + body.len() > CACHE_BYTES {
            let Some(oldest) = cache.order.pop_front() else {
                break;
            };
            if let Some(old) = cache.bodies.remove(&oldest) {
                cache.bytes -= old.len();
            }
        }
        cache.bytes += body.len();
        cache.order.push_back(sha.to_string());
        cache.bodies.insert(sha.to_string(), body.clone());
    }

    /// The cached script whose SHA-1 is `sha` (either case).
    pub(crate) fn get(&self, sha: &[u8]) -> Option<Bytes> {
        if sha.len() != 40 {
            return None;
        }
        let sha = String::from_utf8_lossy(sha).to_ascii_lowercase();
        lock(&self.cache).bodies.get(&sha).cloned()
    }

    /// Remembers that the script `sha` touches keys it does not declare.
    pub(crate) fn mark_wide(&self, sha: String) {
        let mut wide = lock(&self.wide);
        if wide.len() >= WIDE_SCRIPTS {
            wide.clear();
        }
        wide.insert(sha);
    }

    /// Whether the script `body` touched keys it did not declare before.
    pub(crate) fn is_wide(&self, body: &[u8]) -> bool {
        let wide = lock(&self.wide);
        !wide.is_empty() && wide.contains(&sha1hex(body))
    }

    /// `SCRIPT FLUSH`.
    pub(crate) fn flush(&self) {
        *lock(&self.cache) = Cache::default();
    }

    /// Scripts cached, and their bytes (`INFO memory`).
    pub(crate) fn usage(&self) -> (usize, usize) {
        let cache = lock(&self.cache);
        (cache.bodies.len(), cache.bytes)
    }

    /// Registers a run until the guard drops.
    pub(crate) fn start(&self, read_only: bool) -> RunGuard<'_> {
        let run = Arc::new(Running {
            read_only,
            killed: AtomicBool::new(false),
        });
        lock(&self.running).push(run.clone());
        RunGuard { scripts: self, run }
    }

    /// `SCRIPT KILL`: stops this node's read-only runs.
    pub(crate) fn kill(&self) -> Reply {
        let running = lock(&self.running);
        if running.is_empty() {
            return Reply::Error("NOTBUSY No scripts in execution right now.".into());
        }
        let killable: Vec<_> = running.iter().filter(|run| run.read_only).collect();
        if killable.is_empty() {
            return Reply::Error(
                "UNKILLABLE The busy script runs in an ordered operation on every node \
                 and cannot be killed on one; it ends at its instruction limit."
                    .into(),
            );
        }
        for run in killable {
            run.killed.store(true, Ordering::Relaxed);
        }
        Reply::ok()
    }
}

/// Whether a script may publish: its text names `PUBLISH` (in any case),
/// so its operation is ordered among publications; a script that calls it
/// by a name it builds at run time is refused the call.
pub(crate) fn may_publish(body: &[u8]) -> bool {
    body.windows(7)
        .any(|window| window.eq_ignore_ascii_case(b"publish"))
}

/// SHA-1 of `bytes` in lower-case hex, as Redis names scripts.
pub(crate) fn sha1hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, bytes);
    digest
        .as_ref()
        .iter()
        .fold(String::with_capacity(40), |mut out, byte| {
            let _ = write!(out, "{byte:02x}");
            out
        })
}

/// What a script's `#!lua` line declares.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Flags {
    /// No shebang: Redis's compatibility mode.
    pub(crate) compat: bool,
    pub(crate) no_writes: bool,
}

/// Reads a script's shebang (Redis's `evalExtractShebangFlags`): its flags
/// and the length of the line (the script compiles without it, keeping
/// its line feed so line numbers stay), or Redis's error text.
pub(crate) fn shebang(body: &[u8]) -> Result<(Flags, usize), String> {
    if !body.starts_with(b"#!") {
        return Ok((
            Flags {
                compat: true,
                no_writes: false,
            },
            0,
        ));
    }
    let end = body
        .iter()
        .position(|&b| b == b'\n')
        .ok_or_else(|| "Invalid script shebang".to_string())?;
    let line = String::from_utf8_lossy(&body[..end]);
    let mut parts = line.split_ascii_whitespace();
    let engine = parts
        .next()
        .ok_or_else(|| "Invalid engine in script shebang".to_string())?;
    if engine != "#!lua" {
        return Err(format!("Unexpected engine in script shebang: {engine}"));
    }
    let mut flags = Flags::default();
    for part in parts {
        let Some(list) = part.strip_prefix("flags=") else {
            return Err(format!("Unknown lua shebang option: {part}"));
        };
        for flag in list.split(',').filter(|f| !f.is_empty()) {
            match flag {
                "no-writes" => flags.no_writes = true,
                "allow-oom" | "allow-stale" | "no-cluster" | "allow-cross-slot-keys" => {}
                other => return Err(format!("Unexpected flag in script shebang: {other}")),
            }
        }
    }
    Ok((flags, end))
}

#[cfg(test)]
mod tests;
