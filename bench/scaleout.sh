#!/usr/bin/env bash
# Scale-out (bench/RESULTS.md "Scale-out"): ingest through two replicas on one PostgreSQL vs
# one, artifact upload/download through the storage-s3 datastore vs boto3 straight to the same
# SeaweedFS, and endpoint requests/s through two replicas vs one. Needs PostgreSQL on
# 127.0.0.1:5432 (the postgres user, trust auth) and wrk; starts its own SeaweedFS (S3 on
# 127.0.0.1:8533) with scripts/engines/seaweedfs.sh.
#   [SKIP_BUILD=1] bench/scaleout.sh [--atrium PATH] [--processes N] [--batches N] [--sizes 64,256]
#                  [--seconds S] [--only ingest,artifacts,endpoint]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/engines/seaweedfs.sh install >/dev/null
if ! command -v wrk >/dev/null; then
  apt-get install -y wrk || { apt-get update && apt-get install -y wrk; }
fi
if [ -z "${SKIP_BUILD:-}" ]; then
  cargo build --release -p atrium
fi
exec .tools/seaweedfs/bin/python bench/python/scaleout_bench.py "$@"
