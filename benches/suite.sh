#!/usr/bin/env bash
# The benchmark suite in one command: builds and runs every criterion bench
# of the main workspace, the memory, cold-start and fairness benches, and
# the Extism peer (its own workspace in benches/peer, so the main build
# never compiles a second wasmtime), then writes the summary of medians,
# ratios against the floors of this run, and the goals, to
# $CARGO_TARGET_DIR/bench-summary.md (target/bench-summary.md by default)
# and stdout.
#
#   benches/suite.sh                  # everything (about 15 minutes on 2 vCPU,
#                                     # plus the builds; `nats` needs nats-server)
#   benches/suite.sh runtime engine   # only these main-workspace benches
#                                     # (the peer and the summary always run)
#
# Environment: CARGO (default `cargo`), CARGO_TARGET_DIR (default
# <repo>/target), REYNA_PEER_TARGET_DIR (default $CARGO_TARGET_DIR/peer).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"

cargo="${CARGO:-cargo}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target}"
peer_target="${REYNA_PEER_TARGET_DIR:-$CARGO_TARGET_DIR/peer}"
# Figures older than this are not from this run; the summary leaves them out.
export REYNA_SUITE_SINCE="$(date +%s)"

benches=("$@")
if [ "${#benches[@]}" -eq 0 ]; then
    benches=(runtime engine word_count memory coldstart fairness websocket store api_load nats)
fi
bench_args=()
for b in "${benches[@]}"; do bench_args+=(--bench "$b"); done

if command -v rustup >/dev/null 2>&1; then
    toolchain="$(sed -n 's/^channel = "\(.*\)"/\1/p' rust-toolchain.toml)"
    rustup target add --toolchain "$toolchain" wasm32-unknown-unknown >/dev/null
fi

echo "== build: the reyna binary (cold-start bench) and the peer plugin"
"$cargo" build --locked --profile bench -p reyna --bin reyna
(cd benches/peer && CARGO_TARGET_DIR="$peer_target" \
    "$cargo" build --locked -p peer-word-count --target wasm32-unknown-unknown --profile plugin)

echo "== main workspace: ${benches[*]}"
REYNA_BIN="$CARGO_TARGET_DIR/release/reyna" \
    "$cargo" bench --locked -p reyna-benches "${bench_args[@]}"

echo "== peer: extism"
# Its criterion results go next to the main workspace's, for the summary.
criterion_home="$CARGO_TARGET_DIR/criterion"
(cd benches/peer && CARGO_TARGET_DIR="$peer_target" CRITERION_HOME="$criterion_home" \
    REYNA_PEER_WASM="$peer_target/wasm32-unknown-unknown/plugin/peer_word_count.wasm" \
    "$cargo" bench --locked -p reyna-peer-extism --bench extism)

echo "== summary"
"$cargo" bench --locked -p reyna-benches --bench summary
