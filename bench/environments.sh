#!/usr/bin/env bash
# Environment cache vs the usual way: the time a job waits for its environment when Atrium's
# cache has it (a hit), next to `python -m venv` + `pip install` of the same requirements (pip's
# own cache warm), plus Atrium's cold build with uv (uv's download cache warm). One JSON line
# per measurement; bench/RESULTS.md has the figures.
#   bench/environments.sh [REQUIREMENT...]   (default: mlflow-skinny==3.17.2)
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/uv.sh
reqs=("$@")
[ ${#reqs[@]} -gt 0 ] || reqs=("mlflow-skinny==3.17.2")
cargo build -q --release -p atrium-environments --example cache_bench
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export UV_CACHE_DIR=$work/uv-cache
# warm uv's and pip's download caches once, so both sides measure installs, not downloads
./target/release/examples/cache_bench "$work/warm" "${reqs[@]}" --hits 1 >/dev/null
python3 -m venv "$work/pipwarm" && "$work/pipwarm/bin/pip" install -q "${reqs[@]}"
for rep in 1 2 3; do
  echo -n "atrium rep $rep: "
  ./target/release/examples/cache_bench "$work/atrium-$rep" "${reqs[@]}" --hits 50
  start=$(date +%s.%N)
  python3 -m venv "$work/venv-$rep" && "$work/venv-$rep/bin/pip" install -q "${reqs[@]}"
  end=$(date +%s.%N)
  echo "venv+pip rep $rep: {\"seconds\": $(echo "$end - $start" | bc)}"
done
