//! An OpenStack control plane's state, written by clients on every node at
//! once (the active/active use Galera's users are told to avoid):
//! per-project instance quotas, instances whose state moves building →
//! active → deleted, a pool of fixed IPs each held by at most one live
//! instance, and scheduler claims against per-host capacity.
//!
//! - create: one Lua script checks the project's quota, claims the least
//!   used host with room, takes an address from the pool and records the
//!   instance as building (Nova's claim, atomic here);
//! - activate: `WATCH` the states, read the instance's, and `MULTI`/`EXEC`
//!   it to active only if it was building;
//! - delete: one Lua script marks a live instance deleted and gives back
//!   its quota, its host's capacity and its address;
//! - read: every table at once, in one `MULTI` (a snapshot).
//!
//! Every read, and every node's final state, must satisfy: usage equals
//! the live instances and stays within quota and capacity; the pool is
//! exactly the free addresses plus the held ones, each held by one live
//! instance that names it; a deleted instance holds nothing. Across the
//! history: an acknowledged create exists, a failed one does not, an
//! acknowledged delete is deleted and an acknowledged activation is no
//! longer building.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use redis::Connection;
use serde_json::{Value, json};

use super::{Verdict, Workload, before_commit, multi_exec, outcome_counts, settle};
use crate::client::{Outcome, Recorder};

const PROJECTS: u64 = 3;
const QUOTA: i64 = 5;
const HOSTS: u64 = 3;
const CAPACITY: i64 = 4;
const ADDRESSES: u64 = 10;

/// The tables, in the order the scripts take them as `KEYS`.
const TABLES: [&str; 10] = [
    "cp:quota",
    "cp:usage",
    "cp:capacity",
    "cp:used",
    "cp:free",
    "cp:held",
    "cp:state",
    "cp:project",
    "cp:host",
    "cp:ip",
];

const CREATE: &str = "local quota = tonumber(redis.call('HGET', KEYS[1], ARGV[1]))
local usage = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
if usage >= quota then return 'quota' end
local hosts = redis.call('HGETALL', KEYS[3])
local chosen, least = nil, nil
for i = 1, #hosts, 2 do
  local used = tonumber(redis.call('HGET', KEYS[4], hosts[i]) or '0')
  if used < tonumber(hosts[i + 1]) and (least == nil or used < least) then
    chosen, least = hosts[i], used
  end
end
if chosen == nil then return 'capacity' end
local ip = redis.call('SPOP', KEYS[5])
if not ip then return 'addresses' end
redis.call('HSET', KEYS[6], ip, ARGV[2])
redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
redis.call('HINCRBY', KEYS[4], chosen, 1)
redis.call('HSET', KEYS[7], ARGV[2], 'building')
redis.call('HSET', KEYS[8], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[9], ARGV[2], chosen)
redis.call('HSET', KEYS[10], ARGV[2], ip)
return {chosen, ip}";

const DELETE: &str = "local state = redis.call('HGET', KEYS[7], ARGV[1])
if not state then return 'missing' end
if state == 'deleted' then return 'deleted' end
local project = redis.call('HGET', KEYS[8], ARGV[1])
local host = redis.call('HGET', KEYS[9], ARGV[1])
local ip = redis.call('HGET', KEYS[10], ARGV[1])
redis.call('HSET', KEYS[7], ARGV[1], 'deleted')
redis.call('HINCRBY', KEYS[2], project, -1)
redis.call('HINCRBY', KEYS[4], host, -1)
redis.call('HDEL', KEYS[6], ip)
redis.call('SADD', KEYS[5], ip)
redis.call('HDEL', KEYS[10], ARGV[1])
return 'ok'";

/// The control-plane workload.
pub(crate) struct ControlPlane {
    next: AtomicU64,
    /// Instances whose create may have happened, for activate and delete.
    known: Mutex<Vec<u64>>,
}

fn address(n: u64) -> String {
    format!("10.0.0.{}", n + 1)
}

impl ControlPlane {
    pub(crate) fn new() -> ControlPlane {
        ControlPlane {
            next: AtomicU64::new(1),
            known: Mutex::new(Vec::new()),
        }
    }

    fn known(&self) -> std::sync::MutexGuard<'_, Vec<u64>> {
        self.known.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn script(
        con: &mut Connection,
        script: &str,
        args: &[String],
    ) -> redis::RedisResult<redis::Value> {
        redis::cmd("EVAL")
            .arg(script)
            .arg(TABLES.len())
            .arg(&TABLES[..])
            .arg(args)
            .query(con)
    }

    fn create(
        &self,
        con: &mut Connection,
        process: u64,
        recorder: &Recorder,
        rng: &mut fastrand::Rng,
    ) -> Outcome {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let project = format!("p{}", rng.u64(..PROJECTS));
        let value = json!({"id": id, "project": project});
        recorder.invoke(process, "create", value.clone());
        let reply = Self::script(con, CREATE, &[project.clone(), id.to_string()]);
        match reply {
            Ok(redis::Value::Array(placed)) => {
                let placed: Vec<String> = placed
                    .iter()
                    .filter_map(|v| redis::from_redis_value_ref(v).ok())
                    .collect();
                self.known().push(id);
                let done = json!({"id": id, "project": project, "placed": placed});
                recorder.complete(process, Outcome::Ok, "create", done);
                Outcome::Ok
            }
            Ok(refusal) => {
                let reason: String = redis::from_redis_value_ref(&refusal).unwrap_or_default();
                recorder.errored(process, Outcome::Fail, "create", value, &reason);
                Outcome::Fail
            }
            Err(err) => {
                let outcome = Outcome::of(&err);
                if outcome == Outcome::Info {
                    self.known().push(id);
                }
                recorder.errored(process, outcome, "create", value, &err);
                outcome
            }
        }
    }

    fn pick(&self, rng: &mut fastrand::Rng) -> Option<u64> {
        let known = self.known();
        (!known.is_empty()).then(|| known[rng.usize(..known.len())])
    }

    fn delete(&self, con: &mut Connection, process: u64, recorder: &Recorder, id: u64) -> Outcome {
        let value = json!({"id": id});
        recorder.invoke(process, "delete", value.clone());
        match Self::script(con, DELETE, &[id.to_string()]) {
            Ok(reply) => {
                let reason: String = redis::from_redis_value_ref(&reply).unwrap_or_default();
                if reason == "ok" {
                    recorder.complete(process, Outcome::Ok, "delete", value);
                    Outcome::Ok
                } else {
                    recorder.errored(process, Outcome::Fail, "delete", value, &reason);
                    Outcome::Fail
                }
            }
            Err(err) => {
                let outcome = Outcome::of(&err);
                recorder.errored(process, outcome, "delete", value, &err);
                outcome
            }
        }
    }

    fn activate(
        &self,
        con: &mut Connection,
        process: u64,
        recorder: &Recorder,
        id: u64,
    ) -> Outcome {
        let value = json!({"id": id});
        recorder.invoke(process, "activate", value.clone());
        let state = redis::cmd("WATCH")
            .arg("cp:state")
            .exec(con)
            .and_then(|()| {
                redis::cmd("HGET")
                    .arg("cp:state")
                    .arg(id)
                    .query::<Option<String>>(con)
            });
        match state {
            Ok(Some(state)) if state == "building" => {}
            Ok(other) => {
                let _ = redis::cmd("UNWATCH").exec(con);
                let reason = format!("state {other:?}");
                recorder.errored(process, Outcome::Fail, "activate", value, &reason);
                return Outcome::Fail;
            }
            Err(err) => {
                let outcome = before_commit(&err);
                recorder.errored(process, outcome, "activate", value, &err);
                return outcome;
            }
        }
        let reply = multi_exec(con, |pipe| {
            pipe.cmd("HSET").arg("cp:state").arg(id).arg("active");
        });
        if let Err(outcome) = settle(reply, 1, recorder, process, "activate", &value) {
            return outcome;
        }
        recorder.complete(process, Outcome::Ok, "activate", value);
        Outcome::Ok
    }

    /// Every table, in one snapshot.
    fn read_all(con: &mut Connection) -> redis::RedisResult<Value> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        for table in TABLES {
            if table == "cp:free" {
                pipe.cmd("SMEMBERS").arg(table);
            } else {
                pipe.cmd("HGETALL").arg(table);
            }
        }
        let replies: Vec<redis::Value> = pipe.query(con)?;
        let mut out = serde_json::Map::new();
        for (table, reply) in TABLES.iter().zip(replies) {
            let value = if *table == "cp:free" {
                let mut free: Vec<String> = redis::from_redis_value(reply)?;
                free.sort();
                json!(free)
            } else {
                let map: BTreeMap<String, String> = redis::from_redis_value(reply)?;
                json!(map)
            };
            out.insert((*table).to_string(), value);
        }
        Ok(Value::Object(out))
    }
}

impl Workload for ControlPlane {
    fn setup(&self, con: &mut Connection) -> Result<(), String> {
        let mut pipe = redis::pipe();
        for p in 0..PROJECTS {
            pipe.cmd("HSET")
                .arg("cp:quota")
                .arg(format!("p{p}"))
                .arg(QUOTA);
        }
        for h in 0..HOSTS {
            pipe.cmd("HSET")
                .arg("cp:capacity")
                .arg(format!("h{h}"))
                .arg(CAPACITY);
        }
        pipe.cmd("SADD")
            .arg("cp:free")
            .arg((0..ADDRESSES).map(address).collect::<Vec<_>>());
        pipe.exec(con)
            .map_err(|e| format!("control plane setup: {e}"))
    }

    fn step(
        &self,
        con: &mut Connection,
        process: u64,
        recorder: &Recorder,
        rng: &mut fastrand::Rng,
    ) -> Outcome {
        let roll = rng.u8(..100);
        let target = self.pick(rng);
        match (roll, target) {
            (0..40, _) | (_, None) => self.create(con, process, recorder, rng),
            (40..60, Some(id)) => self.activate(con, process, recorder, id),
            (60..85, Some(id)) => self.delete(con, process, recorder, id),
            _ => {
                recorder.invoke(process, "read", Value::Null);
                super::record_read(recorder, process, Self::read_all(con))
            }
        }
    }

    fn final_read(
        &self,
        con: &mut Connection,
        process: u64,
        recorder: &Recorder,
    ) -> Result<Value, String> {
        recorder.invoke(process, "read", Value::Null);
        super::record_final(recorder, process, Self::read_all(con))
    }

    fn check(&self, events: &[Value], finals: &[Value]) -> Verdict {
        let mut bad: Vec<String> = Vec::new();
        let mut reads = 0;
        for event in events
            .iter()
            .filter(|e| e["type"] == "ok" && e["f"] == "read")
        {
            reads += 1;
            bad.extend(
                violations(&event["value"])
                    .into_iter()
                    .map(|v| format!("event {}: {v}", event["index"])),
            );
        }
        let last = finals.first().cloned().unwrap_or(Value::Null);
        bad.extend(history_violations(events, &last));
        let count = |f: &str| {
            events
                .iter()
                .filter(|e| e["type"] == "ok" && e["f"] == f)
                .count()
        };
        let live = last["cp:state"]
            .as_object()
            .map_or(0, |s| s.values().filter(|v| *v != "deleted").count());
        Verdict {
            valid: bad.is_empty() && reads > 0,
            summary: json!({
                "operations": outcome_counts(events),
                "reads": reads,
                "created": count("create"),
                "activated": count("activate"),
                "deleted": count("delete"),
                "live_at_end": live,
                "violations": bad.len(),
                "violation_examples": bad.iter().take(8).collect::<Vec<_>>(),
            }),
        }
    }
}

fn table(snapshot: &Value, name: &str) -> BTreeMap<String, String> {
    serde_json::from_value(snapshot[name].clone()).unwrap_or_default()
}

fn number(map: &BTreeMap<String, String>, key: &str) -> i64 {
    map.get(key).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// What one snapshot of the tables breaks, if anything.
fn violations(snapshot: &Value) -> Vec<String> {
    let mut bad = Vec::new();
    let (state, project, host, ip) = (
        table(snapshot, "cp:state"),
        table(snapshot, "cp:project"),
        table(snapshot, "cp:host"),
        table(snapshot, "cp:ip"),
    );
    let (usage, used, held) = (
        table(snapshot, "cp:usage"),
        table(snapshot, "cp:used"),
        table(snapshot, "cp:held"),
    );
    let free: BTreeSet<String> =
        serde_json::from_value(snapshot["cp:free"].clone()).unwrap_or_default();
    if let Some((id, s)) = state
        .iter()
        .find(|(_, s)| !matches!(s.as_str(), "building" | "active" | "deleted"))
    {
        bad.push(format!("instance {id} in state {s:?}"));
    }
    let live: Vec<&String> = state
        .iter()
        .filter(|(_, s)| *s != "deleted")
        .map(|(id, _)| id)
        .collect();
    for p in (0..PROJECTS).map(|p| format!("p{p}")) {
        let count = live
            .iter()
            .filter(|id| project.get(**id) == Some(&p))
            .count() as i64;
        let usage = number(&usage, &p);
        if usage != count || usage > QUOTA {
            bad.push(format!(
                "project {p}: usage {usage}, {count} live, quota {QUOTA}"
            ));
        }
    }
    for h in (0..HOSTS).map(|h| format!("h{h}")) {
        let count = live.iter().filter(|id| host.get(**id) == Some(&h)).count() as i64;
        let used = number(&used, &h);
        if used != count || used > CAPACITY {
            bad.push(format!(
                "host {h}: used {used}, {count} live, capacity {CAPACITY}"
            ));
        }
    }
    let pool: BTreeSet<String> = (0..ADDRESSES).map(address).collect();
    let accounted: BTreeSet<String> = free.iter().chain(held.keys()).cloned().collect();
    if accounted != pool || free.iter().any(|a| held.contains_key(a)) {
        bad.push(format!("addresses: free {free:?}, held {held:?}"));
    }
    for (address, id) in &held {
        let holder_live = state.get(id).is_some_and(|s| s != "deleted");
        if !holder_live || ip.get(id) != Some(address) {
            bad.push(format!(
                "{address} held by {id} ({:?}, names {:?})",
                state.get(id),
                ip.get(id)
            ));
        }
    }
    for (id, s) in &state {
        let names = ip.get(id);
        let holds = names.is_some_and(|a| held.get(a) == Some(id));
        if (s != "deleted") != holds || (s == "deleted" && names.is_some()) {
            bad.push(format!("instance {id} ({s}) and address {names:?}"));
        }
    }
    bad
}

/// Acknowledged operations the final state contradicts.
fn history_violations(events: &[Value], last: &Value) -> Vec<String> {
    let state = table(last, "cp:state");
    let mut bad = Vec::new();
    for event in events.iter().filter(|e| e["type"] != "invoke") {
        let id = event["value"]["id"]
            .as_u64()
            .map(|id| id.to_string())
            .unwrap_or_default();
        let now = state.get(&id).map(String::as_str);
        let broken = match (event["f"].as_str(), event["type"].as_str()) {
            (Some("create"), Some("ok")) => now.is_none(),
            (Some("create"), Some("fail")) => now.is_some(),
            (Some("delete"), Some("ok")) => now != Some("deleted"),
            (Some("activate"), Some("ok")) => !matches!(now, Some("active" | "deleted")),
            _ => false,
        };
        if broken {
            bad.push(format!(
                "event {}: {} {} {id}, now {now:?}",
                event["index"], event["type"], event["f"]
            ));
        }
    }
    bad
}
