#!/usr/bin/env bash
# Meridian's performance harness. Bounded: every step runs under `timeout`.
#
#   bench/run.sh            full run (about 30 minutes), writes bench/RESULTS.md
#   bench/run.sh --smoke    seconds per phase, writes target/perf-smoke.md (CI runs this)
#
# The full run installs what is missing (nginx, haproxy, wrk, valgrind from Debian; oha
# from crates.io; LiteLLM proxy and vllm-router from PyPI into bench/.venv and
# bench/.venv-vllm, each pinned), builds in release mode, runs the selection
# micro-benchmark and then perf-bench, which starts every system on loopback, measures,
# stops them all and writes bench/RESULTS.md.
#
# The smoke checks that the harness still works end to end, so it installs only what it
# cannot run without (nginx, the upstream and a peer; wrk; valgrind) and builds nothing
# new: it runs the debug build (`cargo build --workspace`, which CI has just done) and
# skips the micro-benchmark. HAProxy, LiteLLM and vllm-router run when they are already
# installed and oha's latency and http2 phases when oha is; what it left out is named in
# its report.
#
# Other arguments go to perf-bench (see `target/release/perf-bench --help`). With `--only`,
# perf-bench replaces only the sections of bench/RESULTS.md it measured and keeps the rest.
# What routing by model costs (Meridian without and with `models:` declared, on chat bodies
# of 1, 10 and 100 KiB; part of the full run and the smoke), alone:
#   target/release/perf-bench --only instructions-models --systems meridian [--body-kib 1,100]
# What prompt-cache affinity costs for a key already known (Meridian on 1 KiB chat
# completions with affinity off and on, without and with models, the key from the prompt
# prefix or an x-session-id header; five processes under callgrind, about 10 minutes; part
# of the full run, and of the smoke with two of the five), alone:
#   target/release/perf-bench --only instructions-affinity --systems meridian [--instr-runs 3]
# What reading token usage costs on whole and streamed answers (Meridian without models on
# 1 KiB chat completions answered as one JSON, streamed, and streamed with
# stream_options.include_usage, at 16 and 256 output tokens; the instructions per request
# and per extra streamed chunk; part of the full run and, with at most 32 tokens, the
# smoke), alone:
#   target/release/perf-bench --only instructions-streams --systems meridian [--stream-tokens 16,256]
# HTTP/2 next to HTTP/1.1 (Meridian with listen.h2c and bare Pingora with --h2c, in front of
# mock regions reached over HTTP/1.1 and over h2c, loaded by oha over HTTP/1.1, h2c, and
# h2c multiplexed: req/s, proxy CPU per request, and instructions per request under
# callgrind; part of the full run, and of the smoke when oha is installed; about 12
# minutes), alone:
#   target/release/perf-bench --only http2 --systems meridian,pingora-rr [--h2-instr-requests 10000]
set -euo pipefail
cd "$(dirname "$0")/.."

OHA_VERSION=1.16.0

smoke=0
for a in "$@"; do
    [ "$a" = "--smoke" ] && smoke=1
done

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v nginx >/dev/null || missing+=(nginx-light)
command -v wrk >/dev/null || missing+=(wrk)
command -v valgrind >/dev/null || missing+=(valgrind)
if [ "$smoke" = 0 ]; then
    command -v haproxy >/dev/null || missing+=(haproxy)
fi
if [ ${#missing[@]} -gt 0 ]; then
    echo "bench: installing ${missing[*]}"
    # Keep the packages' own services from starting: the harness runs its own instances.
    policy=/usr/sbin/policy-rc.d
    added_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
        as_root chmod +x "$policy"
        added_policy=1
    fi
    as_root timeout 600 apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq --no-install-recommends "${missing[@]}"
    [ "$added_policy" = 1 ] && as_root rm -f "$policy"
fi
export PATH="$HOME/.cargo/bin:$PATH"

if [ "$smoke" = 1 ]; then
    timeout 1800 cargo build --workspace --quiet
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    exec timeout 1200 target/debug/perf-bench --bin-dir target/debug --out target/perf-smoke.md "$@"
fi

if ! command -v oha >/dev/null; then
    echo "bench: installing oha $OHA_VERSION from crates.io"
    timeout 1200 cargo install --locked --quiet oha --version "$OHA_VERSION"
fi
# Each pinned with every dependency (pip freeze of a working install), so each run
# measures the same LiteLLM and the same vllm-router.
if [ ! -x bench/.venv/bin/litellm ]; then
    echo "bench: installing LiteLLM proxy (bench/litellm-requirements.txt) into bench/.venv"
    python3 -m venv bench/.venv
    timeout 1200 bench/.venv/bin/pip install --quiet -r bench/litellm-requirements.txt
fi
if [ ! -x bench/.venv-vllm/bin/vllm-router ]; then
    echo "bench: installing vllm-router (bench/vllm-router-requirements.txt) into bench/.venv-vllm"
    python3 -m venv bench/.venv-vllm
    timeout 1200 bench/.venv-vllm/bin/pip install --quiet -r bench/vllm-router-requirements.txt
fi

timeout 1800 cargo build --release --workspace --quiet
timeout 900 cargo bench --quiet --bench selection -- --warm-up-time 1 --measurement-time 3

# 10,000 idle client connections need as many descriptors in the client and the proxies.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
timeout 3000 target/release/perf-bench "$@"
