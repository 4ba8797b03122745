#!/usr/bin/env bash
# Runs the training benchmark: Atrium's Candle trainer next to scikit-learn / numpy in one
# script, same data, split and architecture, both on THREADS threads (default 1).
# Usage: [THREADS=N] bench/train.sh [--rounds N]
set -euo pipefail
cd "$(dirname "$0")/.."
if ! bench/.venv/bin/python -c "import sklearn, numpy" 2>/dev/null; then
  python3 -m venv bench/.venv
  bench/.venv/bin/pip install --quiet --disable-pip-version-check scikit-learn==1.9.1 numpy==2.4.6
fi
threads=${THREADS:-1}
cargo build --release -p atrium-bench --bin train-bench
export RAYON_NUM_THREADS=$threads OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads MKL_NUM_THREADS=$threads
exec target/release/train-bench --python bench/.venv/bin/python "$@"
