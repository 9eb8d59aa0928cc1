#!/usr/bin/env bash
# Installs what building certus needs beyond the Rust toolchain, when it is
# missing: a C/C++ compiler and make for RocksDB, and libclang for its
# bindings (bindgen). Debian packages only; does nothing when all are there.
set -euo pipefail

need=()
command -v make >/dev/null || need+=(make)
command -v cc >/dev/null || need+=(build-essential)
command -v c++ >/dev/null || need+=(g++)
if ! ls /usr/lib/llvm-*/lib/libclang.so* >/dev/null 2>&1; then
    need+=(libclang-dev)
fi
if ((${#need[@]})); then
    echo "installing build dependencies: ${need[*]}"
    sudo=""
    if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true
