# Shared by the engine scripts (ray.sh, seaweedfs.sh), sourced: the processes a `start DIR`
# made, found by the session `setsid` gave it (its id and its leader's start time in DIR/sid)
# and stopped by PID, never by name; and the venv an engine installs into. The sourcing script
# defines `die` and `pids_of DIR` (which may add processes found otherwise to `session_of`).

# Field 22 of /proc/PID/stat: when PID started (clock ticks since boot).
started() {
  { sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $20 }'; } 2>/dev/null || true
}

# The PIDs in the session `setsid` made for DIR's start, zombies and this shell left out.
# DIR/sid holds the session id and when its leader started: a PID reused as the leader of
# another session is not taken for ours (the number cannot be reused while a process of ours is
# in the session).
session_of() {
  [ -f "$1/sid" ] || return 0
  local sid st now
  read -r sid st <"$1/sid" || true
  [ -n "$sid" ] || return 0
  now=$(started "$sid")
  if [ -n "$now" ] && [ "$now" != "$st" ]; then
    return 0
  fi
  awk -v s="$sid" '{ sub(/^.*\) /, ""); if ($4 == s && $1 != "Z") { f = FILENAME; sub(/^\/proc\//, "", f); sub(/\/stat$/, "", f); print f } }' \
    /proc/[0-9]*/stat 2>/dev/null | grep -vx "$$" | sort -n || true
}

# Waits at most SECS for DIR's processes to be gone; fails if some are left.
wait_gone() {
  local dir=$1 end=$(($(date +%s%N) + $2 * 1000000000))
  while [ -n "$(pids_of "$dir")" ]; do
    [ "$(date +%s%N)" -ge "$end" ] && return 1
    sleep 0.1
  done
}

# Stops DIR's processes: SIGTERM, SIGKILL after SECS, dying if any survive. Sets TERMINATED to
# none (nothing ran), term (all went on SIGTERM) or kill (SIGKILL was needed).
terminate() {
  local dir=$1 secs=$2 pids
  pids=$(pids_of "$dir" | tr '\n' ' ')
  if [ -z "${pids// /}" ]; then
    TERMINATED=none
    return 0
  fi
  # shellcheck disable=SC2086
  kill -TERM $pids 2>/dev/null || true
  TERMINATED=term
  if ! wait_gone "$dir" "$secs"; then
    TERMINATED=kill
    # shellcheck disable=SC2086
    kill -KILL $(pids_of "$dir") 2>/dev/null || true
    wait_gone "$dir" 5 || true
    [ -z "$(pids_of "$dir")" ] || die "processes of $dir survived SIGKILL: $(pids_of "$dir" | tr '\n' ' ')"
  fi
}

# A fresh venv at VENV with PACKAGE... installed from PyPI (python3-venv from apt if missing).
make_venv() {
  local venv=$1
  shift
  if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    apt-get update -qq && apt-get install -y -qq python3-venv
  fi
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "$@"
}
