#!/usr/bin/env bash
# A certusd cluster on loopback for measurements (three nodes unless
# NODES says otherwise), in the shape of ../shared/peers/peers/*.sh:
# start | stop | status | reset | fresh (reset, then start) | endpoints.
#   node N: clients on 127.0.0.1:(6379+N), peers on 7100+N, health on 9200+N
#   NODES         how many nodes (default 3; at most 9)
#   PERF_SCRATCH  data and logs (default /var/tmp/certus-perf)
#   CERTUSD       the binary (default: the release build)
#   ENGINE        fjall | rocksdb | redb | memory (default fjall)
#   SYNC          always | batch (default always: fsync before acknowledging)
#   CAUSAL        true | false (default true: causal reads)
#   INSECURE_PEERS true for plaintext peer links (default: mutual TLS with
#                 certificates `certusd certs` makes under PERF_SCRATCH/tls)
#   REQUIREPASS   a password clients must AUTH with (default: none)
#   LOG_RETENTION log entries kept (default: certusd's, 100,000)
#   LOG_RETENTION_BYTES log bytes kept (default: certusd's, 1 GiB; lower it
#                 on a small disk)
#   CLIENT_TLS    true for a TLS client port on 127.0.0.1:(6479+N) too, with
#                 client certificates optional (PERF_SCRATCH/tls/node-100.*
#                 is one)
set -euo pipefail
cd "$(dirname "$0")/.."
scratch="${PERF_SCRATCH:-/var/tmp/certus-perf}"
certusd="${CERTUSD:-${CARGO_TARGET_DIR:-target}/release/certusd}"
engine="${ENGINE:-fjall}"
sync="${SYNC:-always}"
causal="${CAUSAL:-true}"
nodes="${NODES:-3}"
insecure="${INSECURE_PEERS:-false}"
requirepass="${REQUIREPASS:-}"
client_tls="${CLIENT_TLS:-false}"
[[ $nodes =~ ^[1-9]$ ]] || { echo "NODES must be 1 to 9" >&2; exit 2; }
ENDPOINTS=$(seq -s, -f "127.0.0.1:%g" 6380 $((6379 + nodes)))

config() { # config N -> node N's TOML
    local n=$1
    cat <<EOF
node_id = $n
cluster = "certus-perf"
data_dir = "$scratch/node$n"
peer_listen = "127.0.0.1:$((7100 + n))"
client_listen = "127.0.0.1:$((6379 + n))"
health_listen = "127.0.0.1:$((9200 + n))"
engine = "$engine"
sync = "$sync"
causal_reads = $causal
EOF
    if [[ $insecure == true ]]; then
        echo "insecure_peers = true"
    else
        echo "peer_ca = \"$scratch/tls/ca.pem\""
        echo "peer_cert = \"$scratch/tls/node-$n.pem\""
        echo "peer_key = \"$scratch/tls/node-$n.key\""
    fi
    if [[ -n $requirepass ]]; then echo "requirepass = \"$requirepass\""; fi
    if [[ -n ${LOG_RETENTION:-} ]]; then echo "log_retention = $LOG_RETENTION"; fi
    if [[ -n ${LOG_RETENTION_BYTES:-} ]]; then echo "log_retention_bytes = $LOG_RETENTION_BYTES"; fi
    if [[ $client_tls == true ]]; then
        echo "tls_listen = \"127.0.0.1:$((6479 + n))\""
        echo "tls_cert = \"$scratch/tls/node-$n.pem\""
        echo "tls_key = \"$scratch/tls/node-$n.key\""
        echo "tls_ca = \"$scratch/tls/ca.pem\""
        echo "tls_auth_clients = \"optional\""
    fi
    echo "[initial_members]"
    local m
    for m in $(seq 1 "$nodes"); do echo "$m = \"127.0.0.1:$((7100 + m))\""; done
}

pid_of() { # pid_of N -> the pid if node N runs this cluster's certusd
    local file="$scratch/node$1.pid" pid
    [[ -f $file ]] || return 1
    pid=$(cat "$file")
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$scratch/node$1.toml" || return 1
    echo "$pid"
}

synced() { # synced N -> the health check says 200
    { exec 3<>"/dev/tcp/127.0.0.1/$((9200 + $1))"; } 2>/dev/null || return 1
    printf 'GET / HTTP/1.0\r\n\r\n' >&3
    head -c 12 <&3 | grep -q 200
    local status=$?
    exec 3<&-
    return $status
}

all_synced() {
    local n
    for n in $(seq 1 "$nodes"); do synced "$n" || return 1; done
}

listening() { # listening PORT -> something accepts connections there
    { exec 4<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
    exec 4<&-
}

start() {
    [[ -x $certusd ]] || { echo "no certusd at $certusd (cargo build --release --bin certusd)" >&2; exit 1; }
    mkdir -p "$scratch"
    local n port
    for n in $(seq 1 "$nodes"); do
        pid_of "$n" >/dev/null && continue
        # Another cluster (another PERF_SCRATCH) on these ports would answer
        # the health checks below in this one's place.
        for port in $((6379 + n)) $((7100 + n)) $((9200 + n)); do
            if listening "$port"; then
                echo "port $port is in use by something this script did not start" >&2
                exit 1
            fi
        done
        if [[ ! -f $scratch/tls/node-$n.key ]]; then
            "$certusd" certs --dir "$scratch/tls" --cluster certus-perf --node "$n" \
                --host 127.0.0.1 --host localhost >/dev/null
        fi
        if [[ $client_tls == true && ! -f $scratch/tls/node-100.key ]]; then
            "$certusd" certs --dir "$scratch/tls" --cluster certus-perf --node 100 >/dev/null
        fi
        config "$n" >"$scratch/node$n.toml"
        RUST_LOG="${RUST_LOG:-warn}" nohup "$certusd" --config="$scratch/node$n.toml" \
            >>"$scratch/node$n.log" 2>&1 &
        echo $! >"$scratch/node$n.pid"
    done
    for _ in $(seq 1 300); do # at most 30 s
        if all_synced; then
            echo "certus: $nodes nodes synced ($engine, sync=$sync, causal=$causal): $ENDPOINTS"
            return 0
        fi
        sleep 0.1
    done
    echo "certus: not synced after 30 s; see $scratch/node*.log" >&2
    exit 1
}

stop() { # every node this script may have started, whatever NODES is now
    local n pid
    for n in $(seq 1 9); do
        pid=$(pid_of "$n") || continue
        kill -TERM "$pid"
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        rm -f "$scratch/node$n.pid"
    done
}

status() {
    local n pid
    for n in $(seq 1 "$nodes"); do
        if pid=$(pid_of "$n"); then
            echo "node$n pid $pid rss $(awk '/VmRSS/ {print $2, $3}' "/proc/$pid/status")"
        else
            echo "node$n stopped"
        fi
    done
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    reset) stop; rm -rf "$scratch" ;;
    fresh) stop; rm -rf "$scratch"; start ;;
    endpoints) echo "$ENDPOINTS" ;;
    *) echo "usage: $0 start|stop|status|reset|fresh|endpoints" >&2; exit 2 ;;
esac
