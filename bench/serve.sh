#!/usr/bin/env bash
# Runs the serving benchmark: the same digits MLP served by `mlflow models serve --workers 2`
# (pinned MLflow, scikit-learn MLPClassifier) and by an Atrium online endpoint (built-in
# scorer-tabular, 2 instances), under the same wrk load (-t2 -c16 and -t1 -c1, one single-row
# MLflow dataframe_split request body), in one script; then Atrium's density (MiB per idle
# deployment over N endpoints) and cold/warm first-request latency after a restart.
# Usage: [SKIP_BUILD=1] bench/serve.sh [--seconds S] [--density N] [--atrium PATH] [--json OUT]
#   e.g. SKIP_BUILD=1 bench/serve.sh --atrium target/debug/atrium --seconds 5 --density 50
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x bench/.venv/bin/mlflow ] || \
   ! bench/.venv/bin/python -c "import sklearn, numpy, pandas, requests, mlflow" 2>/dev/null; then
  python3 -m venv bench/.venv
  bench/.venv/bin/pip install --quiet --disable-pip-version-check \
    mlflow==3.17.2 scikit-learn==1.9.1 numpy==2.4.6
fi
if ! command -v wrk >/dev/null; then
  apt-get install -y wrk || { apt-get update && apt-get install -y wrk; }
fi
if [ -z "${SKIP_BUILD:-}" ]; then
  cargo build --release -p atrium
fi
exec bench/.venv/bin/python bench/python/serve_bench.py "$@"
