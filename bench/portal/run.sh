#!/usr/bin/env bash
# Portal benchmark: Atrium's portal vs MLflow's own UI (mlflow server, pinned), the same data in
# both, measured in one headless Chromium (Playwright driving Debian's /usr/bin/chromium).
# Usage: bench/portal/run.sh [--runs N] [--reps N] [--timeout S] [--only atrium|mlflow]
#                            [--only-steps runs,sort,filter,chart,compare] [--no-http]
# Needs target/release/atrium (cargo build --release -p atrium); never builds it. Writes the
# table to bench/portal/RESULTS.md (the measured part) and raw numbers to
# bench/portal/results.json, screenshots to bench/portal/shots/.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
HERE=bench/portal
VENV=$HERE/.venv
if [ ! -x "$VENV/bin/mlflow" ] || [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import playwright' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check mlflow==3.17.2 playwright==1.65.2
fi
CHROMIUM=${ATRIUM_CHROMIUM:-/usr/bin/chromium}
[ -x "$CHROMIUM" ] || { echo "no chromium at $CHROMIUM (apt-get install chromium)"; exit 1; }
[ -x target/release/atrium ] || { echo "target/release/atrium missing: cargo build --release -p atrium"; exit 1; }

TMP=$(mktemp -d /tmp/portal-bench.XXXXXX)
APID=""; MPID=""
cleanup() {
  for p in $APID $MPID; do kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null || true; done
  sleep 2
  for p in $APID $MPID; do kill -KILL -- "-$p" 2>/dev/null || true; done
  if [ -n "${KEEP_TMP:-}" ]; then echo "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

T_START=$(date +%s)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
echo "load average at start: $LOAD_START"

# a private copy of the binary: a rebuild during the run must not swap it under the server
cp target/release/atrium "$TMP/atrium"
BIN_DATE=$(date -r target/release/atrium '+%F %T')
mkdir -p "$TMP/atrium-data"
# each server in its own session (process group), stopped by that group's id
ATRIUM_LOG=warn setsid "$TMP/atrium" serve --listen 127.0.0.1:0 --data-dir "$TMP/atrium-data" \
  >"$TMP/atrium.out" 2>"$TMP/atrium.err" &
APID=$!

free_port() { "$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
MPORT=$(free_port)
mkdir -p "$TMP/mlflow"
# MLflow's defaults otherwise (uvicorn, its default worker count); run from its own temp dir
(cd "$TMP/mlflow" && exec setsid "$ROOT/$VENV/bin/mlflow" server --host 127.0.0.1 --port "$MPORT" \
  --backend-store-uri "sqlite:///$TMP/mlflow/mlflow.db" --default-artifact-root "$TMP/mlflow/artifacts" \
  >"$TMP/mlflow.log" 2>&1) &
MPID=$!

AURL=""
for _ in $(seq 1 300); do
  AURL=$(sed -n 's/^atrium listening on //p' "$TMP/atrium.out" | head -1)
  [ -n "$AURL" ] && break
  kill -0 "$APID" 2>/dev/null || { cat "$TMP/atrium.err"; echo "atrium exited"; exit 1; }
  sleep 0.2
done
[ -n "$AURL" ] || { echo "atrium never listened"; exit 1; }
TOKEN=$(tr -d '[:space:]' <"$TMP/atrium-data/admin.token")
MURL="http://127.0.0.1:$MPORT"
for _ in $(seq 1 900); do
  curl -fsS "$MURL/health" >/dev/null 2>&1 && break
  kill -0 "$MPID" 2>/dev/null || { tail -20 "$TMP/mlflow.log"; echo "mlflow exited"; exit 1; }
  sleep 0.2
done
curl -fsS "$MURL/health" >/dev/null || { echo "mlflow never became healthy"; exit 1; }
echo "atrium $AURL (pid $APID), mlflow $MURL (pid $MPID, $("$VENV/bin/mlflow" --version))"

"$VENV/bin/python" "$HERE/bench.py" --atrium "$AURL" --atrium-token "$TOKEN" \
  --mlflow "$MURL" --mlflow-db "$TMP/mlflow/mlflow.db" --chromium "$CHROMIUM" \
  --out "$TMP/table.md" --json "$HERE/results.json" --shots "$HERE/shots" "$@"

LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
T_END=$(date +%s)
"$VENV/bin/python" "$HERE/write_results.py" --json "$HERE/results.json" --table "$TMP/table.md" \
  --load-start "$LOAD_START" --load-end "$LOAD_END" --wall "$((T_END - T_START))" \
  --command "bench/portal/run.sh $*" --mlflow-version "$("$VENV/bin/mlflow" --version)" \
  --atrium-version "$("$TMP/atrium" --version 2>/dev/null || echo unknown); binary built $BIN_DATE, sha256 $(sha256sum "$TMP/atrium" | cut -c1-12); tree $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- host 2>/dev/null || echo " + uncommitted changes in: $(git diff --name-only HEAD -- host | tr '\n' ' ')")" \
  --out "$HERE/RESULTS.md"
echo "load average at end: $LOAD_END; wall $((T_END - T_START)) s; wrote $HERE/RESULTS.md"
