#!/usr/bin/env bash
# Real Redis clients against a real three-node certusd cluster (part of
# `make test`): the newest redis-py with its default settings (RESP3) and
# with RESP2, Celery end to end (tasks sent through one node, run by a
# worker on another, results awaited on a third), then every test of
# redis-benchmark's default list but XADD
# (streams are not served yet): strings, lists with LRANGE of 100 to 600
# elements, sets, hashes and sorted sets, with their defaults but the
# request count (50 clients, one hot key each), which must all finish
# without an error. The
# cluster requires a password, and each node also has a TLS client port:
# redis-py and redis-cli use it, with and without a client certificate.
# Installs Debian's redis-tools and redis-py (into a virtual environment)
# when missing.
#   CERTUSD   the binary (default: the debug build)
#   REQUESTS  requests per redis-benchmark test (default 5000)
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
export CERTUSD="${CERTUSD:-$target/debug/certusd}"
export PERF_SCRATCH="${PERF_SCRATCH:-$(mktemp -d)}"
export ENGINE="${ENGINE:-redb}"
export REQUIREPASS="${REQUIREPASS:-real-clients-password}"
export CLIENT_TLS=true
requests="${REQUESTS:-5000}"

if ! command -v redis-benchmark >/dev/null; then
    echo "installing redis-tools"
    sudo=""
    if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends redis-tools
fi
venv="${CERTUS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/certus/venv}"
if ! "$venv/bin/python" -c "import redis, celery, kombu.transport.redis" 2>/dev/null; then
    echo "installing redis-py and Celery into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade redis "celery[redis]" packaging
fi

cleanup() {
    bash scripts/perf-cluster.sh stop >/dev/null 2>&1 || true
    rm -rf "$PERF_SCRATCH"
}
trap cleanup EXIT
bash scripts/perf-cluster.sh fresh
endpoints=$(bash scripts/perf-cluster.sh endpoints)

REDIS_PASSWORD="$REQUIREPASS" CERTUS_TLS_DIR="$PERF_SCRATCH/tls" \
    "$venv/bin/python" scripts/redis_py_check.py ${endpoints//,/ }
# A task queue framework end to end.
REDIS_PASSWORD="$REQUIREPASS" timeout 600 "$venv/bin/python" scripts/celery_check.py ${endpoints//,/ }

port=${endpoints%%,*}
port=${port##*:}
tls="$PERF_SCRATCH/tls"
answer=$(redis-cli --tls --cacert "$tls/ca.pem" --cert "$tls/node-100.pem" --key "$tls/node-100.key" \
    -p $((port + 100)) --user default --pass "$REQUIREPASS" --no-auth-warning PING)
[[ $answer == PONG ]] || { echo "redis-cli over TLS answered: $answer" >&2; exit 1; }
answer=$(redis-cli -p "$port" GET anything 2>&1)
[[ $answer == *NOAUTH* ]] || { echo "redis-cli without a password got: $answer" >&2; exit 1; }
tests=ping_inline,ping_mbulk,set,get,incr,lpush,rpush,lpop,rpop,sadd,hset,spop,zadd,zpopmin,lrange_100,lrange_300,lrange_500,lrange_600,mset
out=$(timeout 1200 redis-benchmark -p "$port" -a "$REQUIREPASS" -q -n "$requests" \
    -t "$tests" 2>&1 | tr '\r' '\n')
results=$(grep "requests per second" <<<"$out" || true)
echo "$results"
# LRANGE_100 ... LRANGE_600 follow one "LPUSH (needed to benchmark LRANGE)".
expected=$(( $(tr ',' '\n' <<<"$tests" | wc -l) + 1 ))
if grep -qi "error" <<<"$out" || [ "$(wc -l <<<"$results")" -ne "$expected" ]; then
    echo "redis-benchmark did not finish every test cleanly:" >&2
    grep -v "rps=" <<<"$out" | tail -20 >&2
    exit 1
fi
echo "real clients: redis-py (password, TLS), redis-cli (TLS, NOAUTH) and redis-benchmark passed"
