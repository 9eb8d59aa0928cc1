# The one test command (README, CI): read-only checks, then every test, then
# builds of the fuzz target and the benchmarks.
CARGO ?= cargo
# The debug build compiles RocksDB once (about 15 minutes cold); the benches
# do not need it, so the release build never compiles it. `failpoints` lets
# the Jepsen suite fill a node's disk (never in a release build).
FEATURES ?= --features rocksdb,failpoints,next-version

.PHONY: test deps fmt-check embedder clippy unit example-smoke jepsen-smoke real-clients simulation fuzz-build bench-build fix bench cluster jepsen-build jepsen jepsen-matrix perf-compare

test: deps fmt-check embedder clippy unit example-smoke jepsen-smoke real-clients simulation fuzz-build bench-build

# A C++ compiler and libclang for RocksDB, from Debian, when missing.
deps:
	bash scripts/build-deps.sh

fmt-check:
	$(CARGO) fmt --all --check
	$(CARGO) fmt --manifest-path fuzz/Cargo.toml --check

# The library as an embedder gets it (no default features): it builds, its
# tests pass, and it pulls in no product dependency.
embedder:
	bash scripts/check-embedder.sh

clippy:
	$(CARGO) clippy --all-targets $(FEATURES) --locked -- -D warnings

unit:
	$(CARGO) test $(FEATURES) --locked

# The README's cluster under load for two seconds, then again on the same
# data: each run exits non-zero unless every node ends identical and the
# money adds up, so the second also proves the cluster resumed its data.
example-smoke:
	dir=$$(mktemp -d) && \
	$(CARGO) run $(FEATURES) --locked --example cluster -- --seconds 2 --load --dir $$dir && \
	$(CARGO) run $(FEATURES) --locked --example cluster -- --seconds 2 --load --dir $$dir; \
	status=$$?; rm -rf $$dir; exit $$status

# The Jepsen-style suite (examples/jepsen) runs real certusd processes.
WORKLOAD ?= append
NEMESIS ?= partition,kill
TIME ?= 60
ISOLATION ?= snapshot
ENGINE ?= fjall
JEPSEN = $${CARGO_TARGET_DIR:-target}/debug/examples/jepsen

jepsen-build:
	$(CARGO) build $(FEATURES) --locked --bins --examples

# One combination: make jepsen WORKLOAD=bank NEMESIS=pause,member TIME=30
jepsen: jepsen-build
	$(JEPSEN) --workload $(WORKLOAD) --nemesis $(NEMESIS) --time $(TIME) \
		--isolation $(ISOLATION) --engine $(ENGINE) $(if $(OUT),--out $(OUT))

# Every workload with every nemesis, TIME seconds each.
jepsen-matrix: jepsen-build
	TIME=$(TIME) ENGINE=$(ENGINE) bash scripts/jepsen-matrix.sh

# CI: short runs covering every workload and nemesis, both isolation
# modes and the three durable engines (about five minutes).
jepsen-smoke: jepsen-build
	$(JEPSEN) --workload append --nemesis partition,kill --time 15 --seed 1
	$(JEPSEN) --workload register --nemesis kill-all,pause --isolation serializable --time 15 --seed 2
	$(JEPSEN) --workload bank --nemesis member,kill-majority --engine rocksdb --time 15 --seed 3
	$(JEPSEN) --workload set --nemesis partition,pause --engine redb --time 15 --seed 4
	$(JEPSEN) --workload mixed --nemesis partition,kill --time 15 --seed 5
	$(JEPSEN) --workload register --nemesis disk-full,engine-io,corrupt-log,log-io --time 15 --seed 6
	$(JEPSEN) --workload queue --nemesis partition,kill --time 15 --seed 7
	$(JEPSEN) --workload hash --nemesis pause,member --engine rocksdb --time 15 --seed 8
	$(JEPSEN) --workload controlplane --nemesis kill,partition,member --time 15 --seed 9

# Real Redis clients against a real cluster: the newest redis-py (default
# settings and RESP2) and redis-benchmark's default tests, none may fail.
real-clients: jepsen-build
	bash scripts/real-clients.sh

# Deterministic simulation (tests/simulation): SEEDS seeds from FIRST, or
# the one SEED, replayed exactly. `--cfg tokio_unstable` lets turmoil seed
# tokio's own random choices; it changes every crate's flags, so the build
# has its own target directory (without RocksDB, which it does not use).
# CI runs 48 seeds and the regression seeds (about two minutes on two
# cores, one seed per core at a time). A night's search, on seeds never run
# before: `make simulation SEEDS=10000 FIRST=100000 2>&1 | tee sim.log`
# (about four seconds per seed per core; failures are listed at the end,
# each with the SEED that replays it).
SEEDS ?= 48
FIRST ?= 1
SIM_TARGET = $${CARGO_TARGET_DIR:-target}-sim
simulation:
	CARGO_TARGET_DIR=$(SIM_TARGET) RUSTFLAGS="--cfg tokio_unstable" \
	CERTUS_SIM_SEEDS=$(SEEDS) CERTUS_SIM_FIRST=$(FIRST) $(if $(SEED),CERTUS_SIM_SEED=$(SEED)) \
		$(CARGO) test --locked --test simulation

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

# certus side by side with MariaDB Galera, etcd and Redis on this machine,
# through one load generator (minutes; needs those servers, never in CI):
# the table of docs/performance.md comes from its output.
perf-compare:
	bash scripts/perf-compare.sh
