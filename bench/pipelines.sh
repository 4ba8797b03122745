#!/usr/bin/env bash
# Pipeline orchestration overhead: a 10-step chain of trivial command steps and its fully
# cached rerun, from submit to completion minus the steps' own work (bench/RESULTS.md).
#   [SKIP_BUILD=1] bench/pipelines.sh [--atrium PATH] [--steps N] [--runs N]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${SKIP_BUILD:-}" ]; then
  cargo build --release -p atrium
fi
exec python3 bench/python/pipeline_bench.py "$@"
