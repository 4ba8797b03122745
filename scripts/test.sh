#!/usr/bin/env bash
# Runs the whole test suite: unit tests, end-to-end tests against SQLite and PostgreSQL, the
# MLflow client compatibility suite (creates tests/python/.venv with the pinned client) and the
# CLI tests, then the unit tests of the built-in strategy plugins (scripted metric traces, TPE
# vs random), which run natively. Needs PostgreSQL on 127.0.0.1:5432 (ATRIUM_TEST_PG overrides
# the URL).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace "$@"
(cd plugins && cargo test -p strategy-core -p sampler-random -p sampler-grid -p sampler-tpe \
  -p stop-bandit -p stop-median -p stop-truncation -p stop-asha -p bad-sampler -p scorer-tabular -p scorer-digits)
