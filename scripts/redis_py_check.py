#!/usr/bin/env python3
"""redis-py, with its default settings, against a certus cluster.

Usage: redis_py_check.py host:port host:port ...

With REDIS_PASSWORD set, every client authenticates, and a client without
it must be refused; with CERTUS_TLS_DIR set too (the cluster's ca.pem and a
client certificate node-100.pem/.key), each node's TLS port (its port +
100) is checked as well.

Every check asserts what Redis 7.2 answers. The clients connect to
different nodes, so each write is read back elsewhere. Exits non-zero on
the first failure, naming it.
"""
import os
import sys
import time

import redis


def check(nodes, **options):
    clients = [redis.Redis(host=h, port=int(p), **options) for h, p in nodes]
    a, b = clients[0], clients[-1]
    print(f"redis-py {redis.__version__}, protocol {a.connection_pool.get_connection().protocol}")
    a.flushall()

    # Strings and counters, read back on another node.
    assert a.ping() is True
    assert a.set("greeting", "hello") is True
    assert b.get("greeting") == b"hello"
    assert a.set("greeting", "x", nx=True) is None
    assert a.set("greeting", "hi", xx=True, get=True) == b"hello"
    assert b.incr("visits") == 1 and a.incrby("visits", 41) == 42
    assert b.decr("visits") == 41
    assert a.incrbyfloat("price", 1.5) == 1.5
    assert a.append("greeting", "!") == 3 and b.strlen("greeting") == 3
    assert a.mset({"k1": "1", "k2": "2"}) is True
    assert b.mget("k1", "k2", "nope") == [b"1", b"2", None]
    assert a.msetnx({"k1": "x", "k3": "3"}) is False
    assert a.getrange("greeting", 0, 1) == b"hi" and a.setrange("greeting", 0, "HI") == 3
    assert b.getdel("k2") == b"2" and b.exists("k2") == 0
    assert a.getset("k1", "one") == b"1"

    # Expiry by the cluster's clock.
    assert a.set("session", "s", ex=100) is True
    assert 0 < b.ttl("session") <= 100
    assert a.expire("session", 200, gt=True) is True
    assert b.persist("session") is True and a.ttl("session") == -1
    assert a.set("short", "s", px=200) is True
    deadline = time.time() + 30
    while b.exists("short"):
        assert time.time() < deadline, "a key with PX 200 never expired"
        time.sleep(0.02)
    assert a.getex("session", ex=50) == b"s" and 0 < b.pttl("session") <= 50_000

    # Keyspace.
    assert set(a.keys("k*")) == {b"k1"}
    assert sorted(b.scan_iter(match="k*", count=2)) == sorted(a.keys("k*"))
    assert a.type("greeting") == b"string" and a.type("nothing") == b"none"
    assert a.rename("greeting", "salute") is True and b.get("salute") == b"HI!"
    assert a.copy("salute", "salute2") is True
    assert b.dbsize() == len(a.keys("*"))
    assert a.randomkey() is not None
    assert a.delete("salute", "salute2", "nothing") == 2

    # Pipelines keep their order; transactions are atomic; WATCH works.
    with a.pipeline(transaction=False) as pipe:
        for _ in range(10):
            pipe.incr("seq")
        assert pipe.execute() == list(range(1, 11))
    with b.pipeline() as pipe:
        pipe.set("t1", "1").incr("t2").get("t1")
        assert pipe.execute() == [True, 1, b"1"]

    def add_one(pipe):
        value = int(pipe.get("balance") or 0)
        pipe.multi()
        pipe.set("balance", value + 1)

    for _ in range(5):
        a.transaction(add_one, "balance")
    assert b.get("balance") == b"5"
    with a.pipeline() as pipe:
        pipe.watch("balance")
        b.set("balance", "100")
        pipe.multi()
        pipe.set("balance", "0")
        try:
            pipe.execute()
            raise AssertionError("EXEC succeeded after a watched key changed")
        except redis.WatchError:
            pass
    assert a.get("balance") == b"100"

    # Errors keep Redis's texts and leave the connection usable.
    for call, text in [
        (lambda: a.incr("salute2") if a.set("salute2", "x") else None, "not an integer"),
        (lambda: a.execute_command("SET", "k", "v", "EX", "0"), "invalid expire time"),
        (lambda: a.execute_command("NOSUCHCOMMAND"), "unknown command"),
        (lambda: a.execute_command("SELECT", "1"), "DB index is out of range"),
    ]:
        try:
            call()
            raise AssertionError(f"expected an error containing {text!r}")
        except redis.ResponseError as err:
            assert text in str(err), f"{err!r} lacks {text!r}"
    assert a.ping() is True

    # What tools and frameworks probe.
    info = b.info()
    assert info["redis_version"].startswith("7.2") and info["loading"] == 0
    assert "db0" in info and info["db0"]["keys"] >= 1
    assert a.config_get("save") == {"save": ""}
    assert a.client_setname("checker") is True and a.client_getname() == "checker"
    assert any(c["name"] == "checker" for c in a.client_list())
    assert isinstance(a.client_id(), int) and a.time()[0] > 1_600_000_000
    assert a.command_count() > 50
    assert a.flushall() is True and b.dbsize() == 0


def check_security(nodes, password):
    host, port = nodes[0]
    try:
        redis.Redis(host=host, port=int(port)).get("k")
        raise AssertionError("a client without the password was served")
    except redis.exceptions.AuthenticationError:
        pass
    try:
        redis.Redis(host=host, port=int(port), password="wrong").ping()
        raise AssertionError("a wrong password was accepted")
    except redis.exceptions.AuthenticationError:
        pass
    tls = os.environ.get("CERTUS_TLS_DIR")
    if not tls:
        return
    for certfile in (f"{tls}/node-100.pem", None):
        client = redis.Redis(
            host=host, port=int(port) + 100, password=password, ssl=True,
            ssl_ca_certs=f"{tls}/ca.pem", ssl_certfile=certfile,
            ssl_keyfile=certfile and f"{tls}/node-100.key")
        assert client.set("over-tls", "yes") is True
        assert client.get("over-tls") == b"yes"
    print("redis-py: AUTH refused without the password; TLS with and without a client certificate")


def main():
    nodes = [e.split(":") for e in sys.argv[1:]]
    password = os.environ.get("REDIS_PASSWORD")
    check(nodes, password=password)
    check(nodes, protocol=2, password=password)
    if password:
        check_security(nodes, password)
    print("redis-py: every check passed, with the default protocol and with RESP2")


if __name__ == "__main__":
    main()
