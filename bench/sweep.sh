#!/usr/bin/env bash
# Runs the sweep benchmark: the same 50-trial sweeps on digits through `atrium serve` (one job
# slot, one thread) and through Optuna + scikit-learn's MLPClassifier (one thread), in one
# script; then the strategy-overhead benchmark (built-in sampler/stopper components vs Optuna's
# ask/tell, no training).
# Usage: [SKIP_BUILD=1] [SKIP_STRATEGY=1] [SKIP_WALL=1] bench/sweep.sh [sweep_bench.py options]
#   e.g. bench/sweep.sh --seeds 0 --configs random,tpe-median
set -euo pipefail
cd "$(dirname "$0")/.."
if ! bench/.venv/bin/python -c "import sklearn, numpy, optuna" 2>/dev/null; then
  python3 -m venv bench/.venv
  bench/.venv/bin/pip install --quiet --disable-pip-version-check \
    scikit-learn==1.9.1 numpy==2.4.6 optuna==5.0.0
fi
if [ -z "${SKIP_BUILD:-}" ]; then
  cargo build --release -p atrium -p atrium-bench
fi
export RAYON_NUM_THREADS=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
if [ -z "${SKIP_WALL:-}" ]; then
  bench/.venv/bin/python bench/python/sweep_bench.py --atrium target/release/atrium "$@"
fi
if [ -z "${SKIP_STRATEGY:-}" ]; then
  echo
  target/release/sweep-bench --python bench/.venv/bin/python
fi
