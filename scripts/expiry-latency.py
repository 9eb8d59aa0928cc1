#!/usr/bin/env python3
"""How long after its deadline an expiring key is gone, on a healthy cluster.

Usage: expiry-latency.py host:port host:port ... [--keys N]

For each of N keys: SET it with PX (100 to 400 ms) on one node, read its
deadline back (PEXPIRETIME: the cluster's clock), then poll EXISTS on
another node every millisecond until it is gone. Prints the delay between
the deadline and the first read that no longer saw the key, by the
machine's clock (the leader's clock when the cluster runs on loopback), as
percentiles. Bounded: each key is given 10 s.
"""
import random
import sys
import time

import redis


def main():
    args = sys.argv[1:]
    keys = 50
    if "--keys" in args:
        at = args.index("--keys")
        keys = int(args[at + 1])
        del args[at : at + 2]
    nodes = [redis.Redis(host=h, port=int(p)) for h, p in (a.split(":") for a in args)]
    delays = []
    for i in range(keys):
        writer, reader = nodes[i % len(nodes)], nodes[(i + 1) % len(nodes)]
        key = f"expiry-latency:{i}"
        writer.set(key, "v", px=random.randint(100, 400))
        deadline = writer.pexpiretime(key)
        give_up = time.time() + 10
        while reader.exists(key):
            if time.time() > give_up:
                sys.exit(f"{key} still exists 10 s after it was set")
            time.sleep(0.001)
        delays.append(time.time() * 1000 - deadline)
    delays.sort()

    def pct(p):
        return delays[min(len(delays) - 1, int(p / 100 * len(delays)))]

    print(
        f"expiry delay over {keys} keys (ms after the deadline): "
        f"min {delays[0]:.1f} p50 {pct(50):.1f} p90 {pct(90):.1f} "
        f"p99 {pct(99):.1f} max {delays[-1]:.1f}"
    )


if __name__ == "__main__":
    main()
