#!/usr/bin/env bash
# Builds Meridian and the benchmark in release mode, then runs the full routing benchmark
# and writes bench/routing/RESULTS.md. Extra arguments go to routing-bench, e.g.
#   bench/routing/run.sh --quick --no-write
#   bench/routing/run.sh --scenario multi-model   # two models; its own section of RESULTS.md
#   bench/routing/run.sh --scenario multi-turn    # conversations and prefix caches; its own section
set -euo pipefail

cd "$(dirname "$0")/../.."

# Both steps are bounded so a wedged build or run cannot hang a CI job forever.
build_limit="${ROUTING_BENCH_BUILD_TIMEOUT_S:-1800}"
run_limit="${ROUTING_BENCH_RUN_TIMEOUT_S:-1200}"

timeout "$build_limit" cargo build --release --workspace
timeout "$run_limit" cargo run --release -p routing-bench -- "$@"
