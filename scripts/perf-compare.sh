#!/usr/bin/env bash
# Side by side on this machine: certus against MariaDB Galera, etcd and
# Redis, all on loopback, all driven by the same load generator (the
# `loadgen` of ../shared/peers, backends mysql, etcd and resp), so the
# ratios in docs/performance.md compare like with like. Not part of CI:
# it needs those servers (see ../shared/peers/README.md) and takes minutes.
#
#   scripts/perf-compare.sh [SYSTEM...]     one JSON line per run to $OUT
#   SYSTEM: limits certus galera-durable galera-replicated etcd redis
#           certus-scaling: write with 1..256 clients through examples/load
#           (default: all of these)
#           certus-growth: write against value size (100 B..1 MiB), keys per
#             write-set (1..1000) and nodes (3 and 5)
#           certus-memory: MEMORY_S (default 600) seconds of writes at 64
#             clients, each node's resident memory sampled every 30 s
#   DURATION  seconds per run (default 20)       OUT  the JSONL file
#   PEERS     the harness (default ../shared/peers)
#   PEERS_TARGET  where its loadgen is built (default $CARGO_TARGET_DIR/peers)
#   ENGINE    certus's engine (default redb; rocksdb needs the feature build)
# Render with: python3 scripts/perf-table.py $OUT
set -euo pipefail
cd "$(dirname "$0")/.."
PEERS="${PEERS:-../shared/peers}"
DURATION="${DURATION:-20}"
target="${CARGO_TARGET_DIR:-target}"
OUT="${OUT:-/var/tmp/certus-perf/results-$(date -u +%Y%m%dT%H%M%SZ).jsonl}"
peers_target="${PEERS_TARGET:-$target/peers}"
LOADGEN="$peers_target/release/loadgen"
PHYS="$peers_target/release/physlimits"
LOAD="$target/release/examples/load"
CERTUS_EP=$(bash scripts/perf-cluster.sh endpoints)
GALERA_EP=127.0.0.1:3311,127.0.0.1:3312,127.0.0.1:3313
ETCD_EP=127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379
REDIS_EP=127.0.0.1:${REDIS_PORT:-6399}
mkdir -p "$(dirname "$OUT")"
log() { echo "perf-compare: $*" >&2; }

build() {
    local features=()
    [[ ${ENGINE:-redb} == rocksdb ]] && features=(--features rocksdb)
    cargo build --release --locked "${features[@]}" --bin certusd --example load
    CARGO_TARGET_DIR="$peers_target" cargo build --release --locked \
        --manifest-path "$PEERS/loadgen/Cargo.toml"
}

# record LABEL COMMAND... : runs a load command and appends its JSON line,
# with the label and the machine's load average before the run.
record() {
    local label=$1 load out
    shift
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    out=$("$@" --json) || log "exit $? from: $*"
    [[ -n $out ]] || out='{"error":"no output"}'
    echo "$out" | jq -c --arg lbl "$label" --arg load "$load" --arg cmd "$*" \
        '. + {"label": $lbl, "loadavg_before": $load, "command": $cmd}' | tee -a "$OUT" |
        jq -r '"  \(.label) \(.workload) c=\(.clients): \(.ops_per_s) ops/s p50=\(.p50_us)us p99=\(.p99_us)us errors=\(.errors) aborts=\(.aborts) verify=\(.verify.ok // "-")"' >&2
}

# matrix LABEL TOOL ENDPOINTS [tool args...]: the issue's table. TOOL is
# loadgen (with --backend in the args) or our examples/load; both take the
# same workload flags. Keys are preloaded once, before the first run.
matrix() {
    local label=$1 tool=$2 ep=$3 c preload=--preload
    shift 3
    local common=(--endpoints "$ep" --duration "$DURATION" --keys 100000 --hot 10
        --value-size 100 "$@")
    for c in 1 16 64; do
        record "$label" "$tool" "${common[@]}" --workload write --clients "$c" $preload
        preload=
    done
    record "$label" "$tool" "${common[@]}" --workload read --clients 16
    record "$label" "$tool" "${common[@]}" --workload contended --clients 16
}

rss_kb() { # rss_kb -> the certus nodes' resident memory, summed
    bash scripts/perf-cluster.sh status | awk '/rss/ {sum += $5} END {print sum + 0}'
}

certus() {
    bash scripts/perf-cluster.sh fresh
    # Our load tool: loadgen preloads RESP keys with 100,000 single SETs,
    # each a replicated transaction here (minutes); ours uses MULTI blocks.
    matrix certus "$LOAD" "$CERTUS_EP"
    bash scripts/perf-cluster.sh stop
}

certus_scaling() {
    bash scripts/perf-cluster.sh fresh
    local c
    for c in 1 4 16 64 128 256; do
        record certus-scaling "$LOAD" --workload write --clients "$c" --duration "$DURATION" \
            --endpoints "$CERTUS_EP" --keys 100000
    done
    log "certus nodes' resident memory after the scaling runs: $(rss_kb) kB"
    bash scripts/perf-cluster.sh stop
}

# growth: how the cost of a write grows with its size and with the cluster.
certus_growth() {
    local size keys c nodes
    bash scripts/perf-cluster.sh fresh
    for size in 100 1024 10240 102400 1048576; do
        record growth-value "$LOAD" --workload write --clients 16 --duration "$DURATION" \
            --endpoints "$CERTUS_EP" --keys 100000 --value-size "$size"
    done
    # A fresh cluster: the 1 MiB values leave compaction and GC behind.
    bash scripts/perf-cluster.sh fresh
    for keys in 1 10 100 1000; do
        record growth-keys "$LOAD" --workload write --clients 16 --duration "$DURATION" \
            --endpoints "$CERTUS_EP" --keys 100000 --keys-per-op "$keys"
    done
    for nodes in 3 5; do
        NODES=$nodes bash scripts/perf-cluster.sh fresh
        for c in 1 16 64; do
            record "growth-nodes-$nodes" "$LOAD" --workload write --clients "$c" \
                --duration "$DURATION" --keys 100000 \
                --endpoints "$(NODES=$nodes bash scripts/perf-cluster.sh endpoints)"
        done
        bash scripts/perf-cluster.sh stop
    done
}

# memory: a long write load; every node's RSS must level off, not climb.
certus_memory() {
    local secs=${MEMORY_S:-600} t
    bash scripts/perf-cluster.sh fresh
    record memory "$LOAD" --workload write --clients 64 --duration "$secs" \
        --endpoints "$CERTUS_EP" --keys 100000 --max-ops 1000000000 &
    local load=$!
    for ((t = 0; t <= secs; t += 30)); do
        bash scripts/perf-cluster.sh status |
            jq -R -s -c --argjson t "$t" '{label: "memory-rss", t_s: $t,
                rss_kb: [split("\n")[] | select(test("rss")) | split(" ")[4] | tonumber]}' |
            tee -a "$OUT" >&2
        sleep 30
    done
    wait "$load"
    bash scripts/perf-cluster.sh stop
}

limits() {
    "$PHYS" --dir /var/tmp | jq -c '{label: "limits"} + .' | tee -a "$OUT" >&2
}

systems=("$@")
((${#systems[@]})) || systems=(limits certus galera-durable galera-replicated etcd redis certus-scaling)
command -v jq >/dev/null || { log "jq missing (apt-get install -y jq)"; exit 1; }
build
log "results -> $OUT"
for system in "${systems[@]}"; do
    case "$system" in
        limits) limits ;;
        certus) certus ;;
        certus-scaling) certus_scaling ;;
        certus-growth) certus_growth ;;
        certus-memory) certus_memory ;;
        galera-durable | galera-replicated)
            GALERA_PROFILE=${system#galera-} "$PEERS/peers/galera.sh" start >&2
            matrix "$system" "$LOADGEN" "$GALERA_EP" --backend mysql
            [[ $system == galera-durable ]] &&
                record galera-causal "$LOADGEN" --backend mysql --endpoints "$GALERA_EP" \
                    --duration "$DURATION" --keys 100000 --workload read --clients 16 --mysql-sync-wait 1
            "$PEERS/peers/galera.sh" stop >&2
            ;;
        etcd)
            "$PEERS/peers/etcd.sh" start >&2
            matrix etcd "$LOADGEN" "$ETCD_EP" --backend etcd
            "$PEERS/peers/etcd.sh" stop >&2
            ;;
        redis)
            REDIS_PROFILE=memory "$PEERS/peers/redis.sh" start >&2
            matrix redis "$LOADGEN" "$REDIS_EP" --backend resp
            # The same workload through our tool, to compare the two clients.
            record redis-load "$LOAD" --endpoints "$REDIS_EP" --duration "$DURATION" \
                --keys 100000 --workload write --clients 64
            "$PEERS/peers/redis.sh" stop >&2
            ;;
        *) log "unknown system '$system'"; exit 2 ;;
    esac
done
log "done: $OUT"
echo "$OUT"
