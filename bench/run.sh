#!/usr/bin/env bash
# Runs the tracking benchmark: atrium serve vs mlflow server (pinned, SQLite backend), one process.
# Usage: bench/run.sh [--runs N] [--seconds S] [--threads N] [--queries N]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x bench/.venv/bin/mlflow ]; then
  python3 -m venv bench/.venv
  bench/.venv/bin/pip install --quiet --disable-pip-version-check mlflow==3.17.2
fi
cargo build --release -p atrium -p atrium-bench
exec target/release/tracking-bench --atrium target/release/atrium --mlflow bench/.venv/bin/mlflow "$@"
