#!/usr/bin/env bash
# Meridian's performance harness. On a fresh Debian machine it installs what is missing
# (nginx, haproxy, wrk from Debian; oha from crates.io; LiteLLM proxy from PyPI into
# bench/.venv), builds in release mode, runs the selection micro-benchmark and then
# perf-bench, which starts every system on loopback, measures, stops them all and writes
# bench/RESULTS.md. Bounded: every step runs under `timeout`.
#
#   bench/run.sh            full run (about 10 minutes), writes bench/RESULTS.md
#   bench/run.sh --smoke    seconds per phase, writes target/perf-smoke.md (CI runs this)
#
# Other arguments go to perf-bench (see `target/release/perf-bench --help`).
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
command -v haproxy >/dev/null || missing+=(haproxy)
command -v wrk >/dev/null || missing+=(wrk)
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
if ! command -v oha >/dev/null; then
    echo "bench: installing oha $OHA_VERSION from crates.io"
    timeout 1200 cargo install --locked --quiet oha --version "$OHA_VERSION"
fi
export PATH="$HOME/.cargo/bin:$PATH"
if [ ! -x bench/.venv/bin/litellm ]; then
    # Pinned with every dependency (pip freeze of a working install), so each run
    # measures the same LiteLLM.
    echo "bench: installing LiteLLM proxy (bench/litellm-requirements.txt) into bench/.venv"
    python3 -m venv bench/.venv
    timeout 1200 bench/.venv/bin/pip install --quiet -r bench/litellm-requirements.txt
fi

timeout 1800 cargo build --release --workspace --quiet
if [ "$smoke" = 1 ]; then
    timeout 900 cargo bench --quiet --bench selection -- --warm-up-time 0.2 --measurement-time 0.5 --sample-size 10 >/dev/null
    out=(--out target/perf-smoke.md)
else
    timeout 900 cargo bench --quiet --bench selection -- --warm-up-time 1 --measurement-time 3
    out=()
fi

# 10,000 idle client connections need as many descriptors in the client and the proxies.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
timeout 2400 target/release/perf-bench "${out[@]}" "$@"
