#!/usr/bin/env bash
# Job dispatch latency of the built-in targets: a trivial command job (`true`) submitted,
# dispatched and completed on `local` (in the host process) and `local-process` (a worker
# process per job), N jobs each against one `atrium serve`. One JSON line per target;
# bench/RESULTS.md has the figures.
#   [SKIP_BUILD=1] bench/dispatch.sh [--atrium PATH] [--jobs N] [--compute T...] [--slurm-env DIR/env]
#       [--ray-env DIR/env] [--sweep-trials N]
# (--slurm-env / --ray-env: also compute targets on the engines scripts/engines/ started, next to
# the same job through sbatch / the Ray Jobs API; --sweep-trials: an N-trial sweep on each)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${SKIP_BUILD:-}" ]; then
  cargo build --release -p atrium
fi
exec python3 bench/python/dispatch_bench.py "$@"
