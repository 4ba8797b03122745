#!/usr/bin/env bash
# Runs the whole test suite: unit tests, end-to-end tests against SQLite and PostgreSQL, the
# MLflow client compatibility suite (creates tests/python/.venv with the pinned client), MLflow's
# own REST tests (tests/peer), the schemathesis fuzz run and the CLI tests, then the unit tests of
# the built-in strategy plugins (scripted metric traces, TPE vs random), which run natively.
# Every test binary runs even when an earlier one fails; the last line sums them all up.
# Needs PostgreSQL on 127.0.0.1:5432 (ATRIUM_TEST_PG overrides the URL); installs and starts a
# single-node Slurm and a Ray head node (scripts/engines/) for the compute-target tests and stops
# them at the end (the Ray venv stays in .tools/ray between runs); likewise SeaweedFS as the S3
# store of the storage-s3 plugin and the scale-out tests (venv in .tools/seaweedfs).
set -uo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
start=$SECONDS
# uv, pinned, for the job environment tests (idempotent)
./scripts/uv.sh
# a single-node Slurm cluster and a Ray head node for the compute-target tests
# (tests/tests/slurm.rs, tests/tests/ray.rs), stopped on exit
engines=$(mktemp -d /tmp/atrium-engines.XXXXXX)
chmod 755 "$engines" # Slurm's munged runs as its own user
trap 'scripts/engines/slurm.sh stop "$engines/slurm" >/dev/null 2>&1; scripts/engines/ray.sh stop "$engines/ray" >/dev/null 2>&1; scripts/engines/seaweedfs.sh stop "$engines/s3" >/dev/null 2>&1; rm -rf "$engines"; rm -f "$log"' EXIT
if scripts/engines/slurm.sh install && scripts/engines/slurm.sh start "$engines/slurm" >/dev/null; then
  export ATRIUM_TEST_SLURM_ENV="$engines/slurm/env"
else
  echo "test.sh: Slurm did not start; the Slurm tests will fail" >&2
fi
if scripts/engines/ray.sh install && scripts/engines/ray.sh start "$engines/ray" >/dev/null; then
  export ATRIUM_TEST_RAY_ENV="$engines/ray/env"
else
  echo "test.sh: Ray did not start; the Ray tests will fail" >&2
fi
# SeaweedFS (S3) for the storage-s3 plugin and the scale-out tests (tests/tests/storage_s3.rs,
# tests/tests/replicas.rs); its S3_* variables are exported for the plugin's live tests
if scripts/engines/seaweedfs.sh install && scripts/engines/seaweedfs.sh start "$engines/s3" >/dev/null; then
  export ATRIUM_TEST_S3_ENV="$engines/s3/env"
  set -a
  . "$engines/s3/env"
  set +a
else
  echo "test.sh: SeaweedFS did not start; the S3 tests will fail" >&2
fi
cargo test --workspace --no-fail-fast "$@" 2>&1 | tee "$log"
host=${PIPESTATUS[0]}
(cd plugins && cargo test --no-fail-fast -p strategy-core -p sampler-random -p sampler-grid -p sampler-tpe \
  -p stop-bandit -p stop-median -p stop-truncation -p stop-asha -p bad-sampler -p scorer-tabular -p scorer-digits -p target-slurm -p target-ray -p storage-s3) 2>&1 | tee -a "$log"
plugins=${PIPESTATUS[0]}
# Sum cargo's per-binary "test result:" lines into one summary.
awk -v secs=$((SECONDS - start)) -v host="$host" -v plugins="$plugins" '
  /^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) ig += $i } ; b++ }
  END { printf "SUMMARY: %d passed, %d failed, %d ignored in %d test binaries, %d s; %s\n", p, f, ig, b, secs, (host == 0 && plugins == 0 && f == 0) ? "ok" : "FAILED" }' "$log"
[ "$host" -eq 0 ] && [ "$plugins" -eq 0 ]
