# The one test command (README, CI): read-only checks, then every test, then
# builds of the fuzz target and the benchmarks.
CARGO ?= cargo
# The debug build compiles RocksDB once (about 15 minutes cold); the benches
# do not need it, so the release build never compiles it.
FEATURES ?= --features rocksdb

.PHONY: test fmt-check clippy unit example-smoke fuzz-build bench-build fix bench cluster

test: fmt-check clippy unit example-smoke fuzz-build bench-build

fmt-check:
	$(CARGO) fmt --all --check
	$(CARGO) fmt --manifest-path fuzz/Cargo.toml --check

clippy:
	$(CARGO) clippy --all-targets $(FEATURES) --locked -- -D warnings

unit:
	$(CARGO) test $(FEATURES) --locked

# The README's cluster under load for two seconds; it exits non-zero unless
# every node ends identical and the money adds up.
example-smoke:
	$(CARGO) run $(FEATURES) --locked --example cluster -- --seconds 2

# Stable toolchains build the target without coverage instrumentation; run it
# with `cargo +nightly fuzz run writeset_decode` from fuzz/.
fuzz-build:
	$(CARGO) build --manifest-path fuzz/Cargo.toml --locked

bench-build:
	$(CARGO) bench --no-run --locked

# Rewrites files: formatting and machine-applicable lint fixes.
fix:
	$(CARGO) fmt --all
	$(CARGO) fmt --manifest-path fuzz/Cargo.toml
	$(CARGO) clippy --all-targets $(FEATURES) --fix --allow-dirty -- -D warnings

bench:
	$(CARGO) bench --bench certify

cluster:
	$(CARGO) run --release --example cluster
