#!/usr/bin/env bash
# Runs the plumbing load generator (optimised build) and prints its table;
# figures also land in benches/results/plumbing.json (git-ignored).
#
#   benches/run.sh                         # 3 s warm-up + 10 s per target, 32 connections
#   BENCH_SECONDS=5 BENCH_CONNECTIONS=64 benches/run.sh
#
# Knobs: BENCH_SECONDS, BENCH_WARMUP_SECONDS, BENCH_CONNECTIONS,
# BENCH_CLIENT_THREADS, BENCH_OUTPUT (a path, or "-" for none).
# Extra arguments go to cargo (e.g. `--features testing`).
set -euo pipefail
cd "$(dirname "$0")/.."
# The bench needs only goforward-core (a dev-dependency with `testing`):
# skipping the facade's default features saves compiling auth/rest/realtime/storage.
exec cargo bench --bench plumbing --no-default-features "$@"
