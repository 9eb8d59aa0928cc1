#!/usr/bin/env bash
# Every workload against every nemesis, TIME seconds each (transactional
# workloads in both isolation modes), on the certusd and jepsen binaries
# built by `make jepsen-build`. Prints one line per run and exits non-zero
# if any run found an anomaly, lost a write or did not recover.
#   TIME=60 ENGINE=redb OUT=/tmp/matrix scripts/jepsen-matrix.sh
set -uo pipefail
cd "$(dirname "$0")/.."
time="${TIME:-60}"
engine="${ENGINE:-fjall}"
out="${OUT:-$(mktemp -d)}"
jepsen="${CARGO_TARGET_DIR:-target}/debug/examples/jepsen"
workloads="${WORKLOADS:-append register mixed bank set queue hash controlplane}"
nemeses="${NEMESES:-none kill kill-majority kill-all pause partition member disk-full engine-io corrupt-log log-io}"
failed=0
for workload in $workloads; do
    isolations="snapshot"
    case "$workload" in append|register|mixed) isolations="snapshot serializable" ;; esac
    for isolation in $isolations; do
        for nemesis in $nemeses; do
            dir="$out/$workload-$nemesis-$isolation"
            mkdir -p "$dir"
            "$jepsen" --workload "$workload" --nemesis "$nemesis" --isolation "$isolation" \
                --engine "$engine" --time "$time" --out "$dir" > "$dir/run.log" 2>&1
            status=$?
            line=$(grep '^jepsen-result:' "$dir/run.log" || echo "jepsen-result: $workload $nemesis $isolation ${time}s ERROR (exit $status)")
            echo "$line"
            [ "$status" -eq 0 ] || failed=1
        done
    done
done
echo "results in $out"
exit "$failed"
