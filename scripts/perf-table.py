#!/usr/bin/env python3
"""The side-by-side table of docs/performance.md from perf-compare.sh's JSONL.

    python3 scripts/perf-table.py RESULTS.jsonl [--plot PNG]

Prints markdown: one row per system (the issue's columns), certus's ratios
to durable Galera against each target, and the scaling runs. With --plot
(needs python3-matplotlib) it draws throughput and p99 against clients.
"""
import json
import sys

NAMES = {
    "certus": "certus 3 nodes, sync=always, causal reads",
    "galera-durable": "MariaDB Galera 3 nodes, flush_log_at_trx_commit=1",
    "galera-replicated": "MariaDB Galera 3 nodes, flush_log_at_trx_commit=2",
    "etcd": "etcd 3 nodes",
    "redis": "Redis 1 node, in memory (upper bound)",
}


def load(path):
    runs = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                runs.append(json.loads(line))
    return runs


def find(runs, label, workload, clients):
    for run in runs:
        if (run.get("label"), run.get("workload"), run.get("clients")) == (label, workload, clients):
            return run
    return None


def num(x):
    return "-" if x is None else f"{round(x):,}"


def ms(us):
    return "-" if us is None else f"{us / 1000:.1f} ms"


def field(run, key):
    return None if run is None else run.get(key)


def system_rows(runs):
    out = ["| system | write, 1 client | write, 64 clients | p99 at 64 | read, 16 clients | contended RMW, 16 clients |",
           "|---|---|---|---|---|---|"]
    for label, name in NAMES.items():
        w1, w64 = find(runs, label, "write", 1), find(runs, label, "write", 64)
        r16, c16 = find(runs, label, "read", 16), find(runs, label, "contended", 16)
        if not any((w1, w64, r16, c16)):
            continue
        read = num(field(r16, "ops_per_s"))
        causal = find(runs, "galera-causal", "read", 16) if label == "galera-durable" else None
        if causal:
            read += f" ({num(causal['ops_per_s'])} with wsrep_sync_wait=1)"
        contended = num(field(c16, "ops_per_s"))
        if c16:
            ok = (c16.get("verify") or {}).get("ok")
            contended += f" ({num(c16.get('aborts'))} aborts, sum {'ok' if ok else 'WRONG'})"
        out.append(f"| {name} | {num(field(w1, 'ops_per_s'))} (p50 {ms(field(w1, 'p50_us'))}) "
                   f"| {num(field(w64, 'ops_per_s'))} | {ms(field(w64, 'p99_us'))} | {read} | {contended} |")
    return out


def ratio(a, b):
    return None if not a or not b else a / b


def target_rows(runs):
    g = lambda w, c: find(runs, "galera-durable", w, c)
    c = lambda w, n: find(runs, "certus", w, n)
    limits = next((r for r in runs if r.get("label") == "limits"), None)
    rows = ["| target | measured | met |", "|---|---|---|"]

    def row(text, value, met):
        rows.append(f"| {text} | {value} | {'yes' if met else 'no'} |")

    tput = ratio(field(c("write", 64), "ops_per_s"), field(g("write", 64), "ops_per_s"))
    if tput is not None:
        row("write at 64 clients: >= 10x Galera's throughput", f"{tput:.2f}x", tput >= 10)
    p99 = ratio(field(c("write", 64), "p99_us"), field(g("write", 64), "p99_us"))
    if p99 is not None:
        row("p99 at 64 clients: <= 1/5 of Galera's", f"{p99:.2f} of Galera's", p99 <= 0.2)
    w1 = c("write", 1)
    if w1 and limits:
        budget = limits["append_4k_fdatasync"]["p50_us"] + 3 * limits["tcp_loopback_rtt"]["p50_us"] + 100
        row(f"write at 1 client: p50 <= 1 fsync + 3 RTT + 100 us = {budget:.0f} us",
            f"{w1['p50_us']} us", w1["p50_us"] <= budget)
    reads = ratio(field(c("read", 16), "ops_per_s"), field(g("read", 16), "ops_per_s"))
    if reads is not None:
        row("causal reads at 16 clients: >= 2x Galera", f"{reads:.2f}x", reads >= 2)
    rmw = ratio(field(c("contended", 16), "ops_per_s"), field(g("contended", 16), "ops_per_s"))
    if rmw is not None:
        ok = (c("contended", 16).get("verify") or {}).get("ok")
        row("contended RMW at 16 clients: >= 3x Galera, sums match", f"{rmw:.2f}x, sums {'match' if ok else 'DIFFER'}",
            rmw >= 3 and ok)
    return rows


def scaling_rows(runs):
    scaling = sorted((r for r in runs if r.get("label") == "certus-scaling"), key=lambda r: r["clients"])
    if not scaling:
        return []
    rows = ["| clients | ops/s | p50 | p99 | errors |", "|---|---|---|---|---|"]
    for r in scaling:
        rows.append(f"| {r['clients']} | {num(r['ops_per_s'])} | {ms(r['p50_us'])} | {ms(r['p99_us'])} | {r['errors']} |")
    return rows


def growth_rows(runs):
    """How a write's cost grows: value size, keys per write-set, nodes."""
    series = [
        ("growth-value", "value size", lambda r: size(r["value_size"])),
        ("growth-keys", "keys per write-set", lambda r: str(r.get("keys_per_op", 1))),
        ("growth-nodes-3", "3 nodes, clients", lambda r: str(r["clients"])),
        ("growth-nodes-5", "5 nodes, clients", lambda r: str(r["clients"])),
    ]
    rows = []
    for label, what, key in series:
        group = [r for r in runs if r.get("label") == label]
        if not group:
            continue
        if rows:
            rows.append("")
        rows += [f"| {what} | writes/s | rows/s | p50 | p99 | errors |", "|---|---|---|---|---|---|"]
        for r in group:
            rows_per_s = r["ops_per_s"] * r.get("keys_per_op", 1)
            rows.append(f"| {key(r)} | {num(r['ops_per_s'])} | {num(rows_per_s)} | {ms(r['p50_us'])} | "
                        f"{ms(r['p99_us'])} | {r['errors']} |")
    return rows


def size(n):
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n // scale} {unit}"
    return f"{n} B"


def memory_rows(runs):
    samples = [r for r in runs if r.get("label") == "memory-rss"]
    if not samples:
        return []
    rows = ["| minute | " + " | ".join(f"node {i + 1} RSS" for i in range(len(samples[0]["rss_kb"]))) + " |",
            "|---" * (1 + len(samples[0]["rss_kb"])) + "|"]
    for r in samples:
        if r["t_s"] % 60 == 0:
            rows.append(f"| {r['t_s'] // 60} | " + " | ".join(f"{kb / 1024:.0f} MiB" for kb in r["rss_kb"]) + " |")
    return rows


def plot(runs, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    scaling = sorted((r for r in runs if r.get("label") == "certus-scaling"), key=lambda r: r["clients"])
    clients = [r["clients"] for r in scaling]
    fig, left = plt.subplots(figsize=(7, 4))
    left.plot(clients, [r["ops_per_s"] for r in scaling], "o-", color="tab:blue")
    left.set_xscale("log", base=2)
    left.set_xlabel("clients")
    left.set_ylabel("writes/s", color="tab:blue")
    right = left.twinx()
    right.plot(clients, [r["p99_us"] / 1000 for r in scaling], "s--", color="tab:red")
    right.set_ylabel("p99 latency (ms)", color="tab:red")
    left.set_title("certus, 3 nodes on loopback, sync=always: writes against clients")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv):
    if not argv or argv[0].startswith("-"):
        print(__doc__, file=sys.stderr)
        return 2
    runs = load(argv[0])
    print("\n".join(system_rows(runs)))
    print()
    print("\n".join(target_rows(runs)))
    scaling = scaling_rows(runs)
    if scaling:
        print()
        print("\n".join(scaling))
    for extra in (growth_rows(runs), memory_rows(runs)):
        if extra:
            print()
            print("\n".join(extra))
    if "--plot" in argv:
        plot(runs, argv[argv.index("--plot") + 1])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
