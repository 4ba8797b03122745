#!/usr/bin/env bash
# A single-node Ray 2.60 cluster on loopback for the `target-ray` plugin's tests.
#
#   scripts/engines/ray.sh install       venv at .tools/ray with ray[default]==2.60.0 (idempotent)
#   scripts/engines/ray.sh start DIR     head node (GCS :6389, dashboard/Jobs API 127.0.0.1:8265)
#                                        with token auth; writes DIR/env (RAY_URL, RAY_TOKEN)
#   scripts/engines/ray.sh stop DIR      kills what that start started, nothing else (idempotent)
#
# Ports: RAY_GCS_PORT (6389: Redis holds 6379 here) and RAY_DASHBOARD_PORT (8265) override them.
# Every process of a start carries ATRIUM_RAY_START=<DIR> in its environment; `stop` kills
# exactly those and the processes in the session the start made (setsid; its id in DIR/sid,
# the PIDs once up in DIR/pids), never `ray stop` (which kills by name, host-wide).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
VENV=$ROOT/.tools/ray
RAY_VERSION=2.60.0
GCS_PORT=${RAY_GCS_PORT:-6389}
DASH_PORT=${RAY_DASHBOARD_PORT:-8265}
URL=http://127.0.0.1:$DASH_PORT

die() { echo "ray.sh: $*" >&2; exit 1; }
# shellcheck source=scripts/engines/session.sh
. "$ROOT/scripts/engines/session.sh"

# (by its dist-info: `ray --version` imports ray, which takes seconds)
installed() {
  [ -x "$VENV/bin/ray" ] && compgen -G "$VENV/lib/python3*/site-packages/ray-$RAY_VERSION.dist-info" >/dev/null
}

cmd_install() {
  if installed; then
    echo "ray $RAY_VERSION already at $VENV"
    return 0
  fi
  local t0=$SECONDS
  make_venv "$VENV" "ray[default]==$RAY_VERSION"
  [ "$("$VENV/bin/ray" --version | awk '{print $NF}')" = "$RAY_VERSION" ] ||
    die "installed, but $VENV/bin/ray does not report $RAY_VERSION"
  echo "installed ray $RAY_VERSION at $VENV in $((SECONDS - t0)) s"
}

# The PIDs of DIR's start: those in its session (DIR/sid), and those carrying its marker in
# their environment (Ray passes its environment on to every process it starts, also to jobs,
# which get sessions of their own). Not the marker alone: processes that set their title
# (ray::DashboardAgent, ray::RuntimeEnvAgent, ray-dashboard-*) overwrite what /proc shows of
# their environment and command line.
pids_of() {
  {
    grep -lzxF "ATRIUM_RAY_START=$1" /proc/[0-9]*/environ 2>/dev/null |
      sed 's|^/proc/||; s|/environ$||' || true
    session_of "$1"
  } | grep -vx "$$" | sort -un || true
}

cmd_stop() {
  local dir
  [ $# -eq 1 ] || die "usage: ray.sh stop DIR"
  [ -d "$1" ] || { echo "nothing to stop in $1"; return 0; }
  dir=$(cd "$1" && pwd)
  # SIGTERM leaves gcs_server, raylet and the runtime env agent running: SIGKILL after 5 s
  terminate "$dir" 5
  if [ "$TERMINATED" = none ]; then
    echo "ray in $dir is not running"
  else
    echo "stopped ray in $dir"
  fi
  # the logs stay in DIR/t (a short temp dir in /tmp for a long DIR goes)
  rm -f "$dir/sid" "$dir/pids" "$dir/env"
  if [ -f "$dir/tempdir" ]; then
    local t
    t=$(cat "$dir/tempdir")
    case "$t" in /tmp/atrium-ray-*) rm -rf "$t" ;; esac
    rm -f "$dir/tempdir"
  fi
}

cmd_start() {
  [ $# -eq 1 ] || die "usage: ray.sh start DIR"
  installed || die "ray $RAY_VERSION is not installed: run scripts/engines/ray.sh install"
  mkdir -p "$1"
  local dir
  dir=$(cd "$1" && pwd)
  cmd_stop "$dir" >/dev/null
  if curl -s -o /dev/null -m 2 "$URL/" || (exec 3<>"/dev/tcp/127.0.0.1/$GCS_PORT") 2>/dev/null; then
    die "port $DASH_PORT or $GCS_PORT of 127.0.0.1 is in use (another Ray?): not starting"
  fi
  # Ray puts unix sockets under its temp dir (session_<date>_<pid>/sockets/...), and a socket
  # path may be at most 107 bytes: a long DIR gets a short temp dir in /tmp instead.
  local tmp=$dir/t
  rm -rf "$tmp"
  if [ ${#tmp} -gt 40 ]; then
    tmp=$(mktemp -d /tmp/atrium-ray-XXXXXX)
    echo "$tmp" >"$dir/tempdir"
  fi
  mkdir -p "$tmp"
  local token
  token=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
  local t0 s0=$SECONDS
  t0=$(date +%s.%N)
  (
    export PATH="$VENV/bin:$PATH"
    export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0
    export RAY_AUTH_MODE=token RAY_AUTH_TOKEN="$token"
    export ATRIUM_RAY_START="$dir"
    export TMPDIR="$tmp" # else each start leaves a /tmp/pymp-* dir behind
    exec setsid "$VENV/bin/ray" start --head --port="$GCS_PORT" --num-cpus="$(nproc)" \
      --include-dashboard=true --dashboard-host=127.0.0.1 --dashboard-port="$DASH_PORT" \
      --node-ip-address=127.0.0.1 --temp-dir="$tmp" --disable-usage-stats
  ) </dev/null >"$dir/start.log" 2>&1 &
  local leader=$!
  # The subshell execs setsid, which (not being a group leader) execs ray: one PID, = the SID.
  echo "$leader $(started "$leader")" >"$dir/sid"
  local auth="Authorization: Bearer $token" code up="" why="in 60 s"
  for _ in $(seq 600); do
    code=$(curl -s -o /dev/null -w '%{http_code}' -m 2 "$URL/api/version" || true)
    if [ "$code" = 200 ] || [ "$code" = 401 ]; then
      # Readiness: the Jobs API answers with the token, and the head node's resources are in.
      if [ "$(curl -s -o /dev/null -w '%{http_code}' -m 2 -H "$auth" "$URL/api/jobs/" || true)" = 200 ] &&
        curl -s -m 2 -H "$auth" "$URL/api/cluster_status" | grep -q '"CPU"'; then
        up=1
        break
      fi
    fi
    if ! kill -0 "$leader" 2>/dev/null && [ -z "$(pids_of "$dir")" ]; then
      why="(ray start exited)"
      break
    fi
    sleep 0.1
    [ $((SECONDS - s0)) -ge 60 ] && break
  done
  if [ -z "$up" ]; then
    echo "ray.sh: the head node did not come up $why; $dir/start.log:" >&2
    tail -20 "$dir/start.log" >&2
    cmd_stop "$dir" >/dev/null || true
    exit 1
  fi
  pids_of "$dir" >"$dir/pids"
  umask 077
  printf 'RAY_URL=%s\nRAY_TOKEN=%s\n' "$URL" "$token" >"$dir/env"
  echo "# ray up in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s; processes: $(pids_of "$dir" | wc -l)" >&2
  cat "$dir/env"
}

case "${1:-}" in
  install) shift; cmd_install "$@" ;;
  start) shift; cmd_start "$@" ;;
  stop) shift; cmd_stop "$@" ;;
  *) die "usage: ray.sh install | start DIR | stop DIR" ;;
esac
