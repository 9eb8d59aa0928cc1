#!/usr/bin/env python3
"""Generates src/server/commands/table.rs from Redis's command metadata.

Redis describes every command in src/commands/*.json (arity, flags, ACL
categories, key positions, summary). certus answers COMMAND, checks arity
and declares keys from the same data, taken from a Redis 7.2 release:

    git clone --branch 7.2.4 https://github.com/redis/redis
    python3 scripts/gen-command-table.py redis > src/server/commands/table.rs
"""
import json
import pathlib
import sys

# The commands certus serves: (name, container or None).
COMMANDS = """
get set setnx setex psetex getset getex getdel mget mset msetnx incr decr
incrby decrby incrbyfloat append strlen getrange substr setrange
del unlink exists touch type rename renamenx copy randomkey keys scan
expire pexpire expireat pexpireat ttl pttl expiretime pexpiretime persist
dbsize flushdb flushall info time lastsave
hset hmset hsetnx hget hmget hdel hlen hstrlen hexists hincrby hincrbyfloat
hkeys hvals hgetall hrandfield hscan
sadd srem smembers sismember smismember scard spop srandmember smove
sinter sinterstore sunion sunionstore sdiff sdiffstore sintercard sscan
lpush rpush lpushx rpushx lpop rpop llen lindex lrange lset ltrim lrem
linsert lpos lmove rpoplpush lmpop blpop brpop blmove brpoplpush blmpop
zadd zincrby zrem zscore zmscore zcard zcount zlexcount zrange zrangestore
zrangebyscore zrevrangebyscore zrangebylex zrevrangebylex zrevrange zrank
zrevrank zpopmin zpopmax bzpopmin bzpopmax zremrangebyscore zremrangebyrank
zremrangebylex zunionstore zinterstore zscan
ping echo quit reset hello auth select
multi exec discard watch unwatch
client config command acl object memory
subscribe unsubscribe psubscribe punsubscribe publish pubsub
eval evalsha eval_ro evalsha_ro script
""".split()
SUBCOMMANDS = {
    "client": "id info list getname setname setinfo no-evict no-touch reply".split(),
    "config": "get set resetstat rewrite".split(),
    "command": "count info docs list getkeys".split(),
    "acl": "whoami users list cat getuser setuser deluser".split(),
    "object": "encoding freq refcount help".split(),
    "memory": "usage help".split(),
    "pubsub": "channels numsub numpat help".split(),
    "script": "load exists flush kill help".split(),
}

# JSON flag names as COMMAND INFO spells them (Redis's addReplyCommandFlags).
FLAG_NAMES = {
    "WRITE": "write", "READONLY": "readonly", "DENYOOM": "denyoom",
    "MODULE": "module", "ADMIN": "admin", "PUBSUB": "pubsub",
    "NOSCRIPT": "noscript", "BLOCKING": "blocking", "LOADING": "loading",
    "STALE": "stale", "SKIP_MONITOR": "skip_monitor",
    "SKIP_SLOWLOG": "skip_slowlog", "ASKING": "asking", "FAST": "fast",
    "NO_AUTH": "no_auth", "MAY_REPLICATE": "may_replicate",
    "NO_MANDATORY_KEYS": "no_mandatory_keys", "NO_ASYNC_LOADING": "no_async_loading",
    "NO_MULTI": "no_multi", "ALLOW_BUSY": "allow_busy",
}


def load(root, name, container):
    file = f"{container}-{name}.json" if container else f"{name}.json"
    data = json.loads((root / "src" / "commands" / file).read_text())
    (key, spec), = data.items()
    return key, spec


def categories(spec):
    """Explicit categories plus the implicit ones Redis adds
    (setImplicitACLCategories in src/server.c)."""
    flags = set(spec.get("command_flags", []))
    cats = [c.lower() for c in spec.get("acl_categories", [])]
    if "WRITE" in flags:
        cats.append("write")
    elif "READONLY" in flags and "scripting" not in cats:
        cats.append("read")
    if "ADMIN" in flags:
        cats += ["admin", "dangerous"]
    if "PUBSUB" in flags:
        cats.append("pubsub")
    if "FAST" in flags:
        cats.append("fast")
    if "BLOCKING" in flags:
        cats.append("blocking")
    if "FAST" not in flags:
        cats.append("slow")
    seen = []
    for c in cats:
        if c not in seen:
            seen.append(c)
    return seen


def legacy_range(spec):
    """COMMAND INFO's (first, last, step), as populateCommandLegacyRangeSpec
    derives it from the key specs."""
    first = last = step = 0
    for ks in spec.get("key_specs", []):
        begin = ks.get("begin_search", {}).get("index")
        rng = ks.get("find_keys", {}).get("range")
        if begin is None or rng is None:
            continue
        pos = begin["pos"]
        lastkey = rng["lastkey"]
        end = -1 if lastkey < 0 else pos + lastkey
        if first == 0:
            first, last, step = pos, end, rng["step"]
        elif end == -1 or (last != -1 and end > last):
            last = end
    return first, last, step


def movable(spec):
    """Redis's populateCommandMovableKeys: keys not at fixed positions."""
    return any(
        "index" not in ks.get("begin_search", {}) or "range" not in ks.get("find_keys", {})
        for ks in spec.get("key_specs", [])
    )


def key_specs(spec):
    """The key specs certus finds keys by: those that begin at an index
    (keyword and unknown ones are for commands certus does not serve)."""
    out = []
    for ks in spec.get("key_specs", []):
        begin = ks.get("begin_search", {}).get("index")
        find = ks.get("find_keys", {})
        if begin is None:
            continue
        if "range" in find:
            r = find["range"]
            found = f"Find::Range {{ last: {r['lastkey']}, step: {r['step']}, limit: {r['limit']} }}"
        elif "keynum" in find:
            k = find["keynum"]
            found = f"Find::Keynum {{ index: {k['keynumidx']}, first: {k['firstkey']}, step: {k['step']} }}"
        else:
            continue
        out.append(f"KeySpec {{ begin: {begin['pos']}, find: {found} }}")
    return out


def rust_str(text):
    return json.dumps(text)


def entry(name, container, spec):
    flags = [FLAG_NAMES[f] for f in spec.get("command_flags", []) if f in FLAG_NAMES]
    if movable(spec):
        flags.append("movablekeys")
    first, last, step = legacy_range(spec)
    specs = key_specs(spec)
    full = f"{container}|{name}" if container else name
    return (
        "    Spec {\n"
        f"        name: {rust_str(full)},\n"
        f"        arity: {spec['arity']},\n"
        f"        flags: &[{', '.join(rust_str(f) for f in flags)}],\n"
        f"        categories: &[{', '.join(rust_str('@' + c) for c in categories(spec))}],\n"
        f"        keys: ({first}, {last}, {step}),\n"
        f"        key_specs: &[{', '.join(specs)}],\n"
        f"        group: {rust_str(spec.get('group', ''))},\n"
        f"        since: {rust_str(spec.get('since', ''))},\n"
        f"        summary: {rust_str(spec.get('summary', ''))},\n"
        f"        complexity: {rust_str(spec.get('complexity', ''))},\n"
        "    },\n"
    )


def main():
    root = pathlib.Path(sys.argv[1])
    out = [
        "//! Command metadata generated by scripts/gen-command-table.py from Redis\n",
        "//! 7.2's src/commands/*.json (BSD-3-Clause): arity, flags, ACL\n",
        "//! categories, key positions and documentation. Do not edit by hand.\n\n",
        "use super::{Find, KeySpec, Spec};\n\n",
        "/// Every command certus serves, sorted by name; subcommands as\n",
        "/// `container|name`.\n",
        "pub(crate) static COMMANDS: &[Spec] = &[\n",
    ]
    rows = []
    for name in COMMANDS:
        rows.append((name, None, load(root, name, None)[1]))
        for sub in SUBCOMMANDS.get(name, []):
            rows.append((sub, name, load(root, sub, name)[1]))
    rows.sort(key=lambda r: (f"{r[1]}|{r[0]}" if r[1] else r[0]))
    out += [entry(*row) for row in rows]
    out.append("];\n")
    sys.stdout.write("".join(out))


if __name__ == "__main__":
    main()
