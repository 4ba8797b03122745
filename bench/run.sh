#!/usr/bin/env bash
# Runs the tracking benchmark: atrium serve vs mlflow server and FastTrackML (pinned, SQLite
# backends), one process.
# Usage: bench/run.sh [--runs N] [--seconds S] [--threads N] [--queries N] [--also-normal]
#                     [--skip-mlflow] [--skip-fasttrackml]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x bench/.venv/bin/mlflow ]; then
  python3 -m venv bench/.venv
  bench/.venv/bin/pip install --quiet --disable-pip-version-check mlflow==3.17.2
fi
if [ ! -x bench/.venv/bin/fml ]; then
  # the wheel ships the Go server binary `fml`; its Python dependencies (an older mlflow client)
  # are not needed to run the server and would replace the pinned mlflow
  bench/.venv/bin/pip install --quiet --disable-pip-version-check --no-deps fasttrackml==0.6.0
fi
cargo build --release -p atrium -p atrium-bench
exec target/release/tracking-bench --atrium target/release/atrium --mlflow bench/.venv/bin/mlflow \
  --fasttrackml bench/.venv/bin/fml "$@"
