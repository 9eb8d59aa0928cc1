#!/usr/bin/env bash
# What an engine that embeds certus (`default-features = false`) compiles:
# the replication library alone. Fails when a product dependency (the RESP
# server's, the daemon's, a durable engine's or the checker's) leaks into it,
# or when the library does not build and pass its tests on its own.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo=${CARGO:-cargo}

tree=$($cargo tree --locked --no-default-features -e normal --prefix none)
leaked=$(grep -E '^(clap|toml|tracing-subscriber|tikv-jemallocator|redb|fjall|lsm-tree|rocksdb|librocksdb-sys|serde_json) ' <<<"$tree" | sort -u || true)
if [ -n "$leaked" ]; then
    echo "product dependencies in the embedder's build:" >&2
    echo "$leaked" >&2
    exit 1
fi
echo "embedder build: $(sort -u <<<"$tree" | wc -l) crates, certus included"

$cargo clippy --locked --no-default-features --all-targets -- -D warnings
$cargo test --locked --no-default-features --lib
