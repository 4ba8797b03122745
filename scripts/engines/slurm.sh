#!/usr/bin/env bash
# A single-node Slurm 22.05 with slurmrestd on loopback, for the Slurm compute target's tests
# (see ENGINES.md, section "Slurm"). Needs root; no systemd or cgroups.
#
#   slurm.sh install      apt-get the packages (skipped when they are there)
#   slurm.sh start DIR    munged + slurmctld + slurmd + slurmrestd, everything under DIR (job
#                         output in DIR/out); waits until the REST API answers and the node
#                         takes jobs (at most 30 s), then writes DIR/env
#   slurm.sh stop DIR     cancels the jobs still queued or running, stops their processes and
#                         the daemons (SIGTERM, SIGKILL after 5 s); idempotent
#
# DIR/env holds SLURM_URL, SLURM_JWT_KEY_B64 (base64 of slurmrestd's HS256 key: sign
# {"iat","exp","sun"} with it), SLURM_USER, SLURM_PARTITION,
# SLURM_CONF, and SLURM_TOKEN (a JWT valid for a day). Ports: REST 6820,
# slurmctld 6817, slurmd 6818 (SLURM_REST_PORT, SLURMCTLD_PORT, SLURMD_PORT override them);
# RealMemory is min(4000, 3/4 of the machine's) MB unless SLURM_REAL_MEMORY says otherwise.
# Keys and state stay in DIR across restarts; delete DIR for a fresh cluster.
set -euo pipefail

REST_PORT=${SLURM_REST_PORT:-6820}
CTLD_PORT=${SLURMCTLD_PORT:-6817}
SLURMD_PORT=${SLURMD_PORT:-6818}
API=v0.0.38

die() { echo "slurm.sh: $*" >&2; exit 1; }

jwt_plugin() {
    local f
    for f in /usr/lib/*/slurm-wlm/auth_jwt.so /usr/lib/slurm-wlm/auth_jwt.so /usr/lib/slurm/auth_jwt.so; do
        [[ -e $f ]] && { echo "$f"; return 0; }
    done
    return 1
}

cmd_install() {
    if command -v slurmrestd >/dev/null && command -v slurmctld >/dev/null &&
        command -v munged >/dev/null && jwt_plugin >/dev/null; then
        echo "slurm.sh: Slurm is installed ($(jwt_plugin))"
        return 0
    fi
    local pkgs=(slurm-wlm slurmrestd slurm-wlm-jwt-plugin munge) i
    export DEBIAN_FRONTEND=noninteractive
    if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
        apt-get -o DPkg::Lock::Timeout=60 update -q || true
    fi
    for i in 1 2 3 4 5; do
        # Lock::Timeout waits for a held dpkg lock; the loop also covers the lists' lock and
        # missing or stale package lists (then update first)
        if apt-get -o DPkg::Lock::Timeout=60 install -y --no-install-recommends "${pkgs[@]}"; then
            jwt_plugin >/dev/null || die "installed, but auth_jwt.so is not where expected"
            return 0
        fi
        echo "slurm.sh: apt-get install failed (try $i of 5); updating the lists and retrying" >&2
        sleep $((i * 2))
        apt-get -o DPkg::Lock::Timeout=60 update -q || true
    done
    die "apt-get install ${pkgs[*]} failed"
}

# The daemon named $1 from pidfile $2, if it runs and belongs to this DIR ($3): its pid.
live_pid() {
    local name=$1 file=$2 dir=$3 pid
    [[ -f $file ]] || return 1
    pid=$(tr -dc '0-9' <"$file")
    [[ -n $pid ]] && alive "$pid" || return 1
    [[ $(cat /proc/"$pid"/comm 2>/dev/null) == "$name" ]] || return 1
    tr '\0' ' ' </proc/"$pid"/cmdline 2>/dev/null | grep -qF -- "$dir/" || return 1
    echo "$pid"
}

daemon_pids() {
    local S=$1 p
    p=$(live_pid slurmrestd "$S/run/slurmrestd.pid" "$S") && echo "$p"
    p=$(live_pid slurmd "$S/run/slurmd.pid" "$S") && echo "$p"
    p=$(live_pid slurmctld "$S/run/slurmctld.pid" "$S") && echo "$p"
    p=$(live_pid munged "$S/munge/munged.pid" "$S") && echo "$p"
    return 0
}

# Processes of jobs still running on this node (`scontrol listpids` asks their slurmstepd
# through the spool directory), while slurmd is up.
job_pids() {
    local S=$1
    [[ -f $S/etc/slurm.conf ]] || return 0
    live_pid slurmd "$S/run/slurmd.pid" "$S" >/dev/null || return 0
    SLURM_CONF=$S/etc/slurm.conf timeout 5 scontrol listpids 2>/dev/null |
        awk 'NR > 1 && $1 ~ /^[0-9]+$/ { print $1 }' | sort -u
    return 0
}

cancel_jobs() {
    local S=$1 ids
    [[ -f $S/etc/slurm.conf ]] || return 0
    live_pid slurmctld "$S/run/slurmctld.pid" "$S" >/dev/null || return 0
    ids=$(SLURM_CONF=$S/etc/slurm.conf timeout 5 squeue -h -o %i 2>/dev/null) || return 0
    # shellcheck disable=SC2086
    if [[ -n $ids ]]; then SLURM_CONF=$S/etc/slurm.conf timeout 5 scancel $ids 2>/dev/null || true; fi
}

# The slurmstepd parents of the pids given.
stepd_pids() {
    local p pp
    for p in "$@"; do
        pp=$(awk '{ print $4 }' /proc/"$p"/stat 2>/dev/null) || continue
        [[ $(cat /proc/"$pp"/comm 2>/dev/null) == slurmstepd ]] && echo "$pp"
    done | sort -u
    return 0
}

# Whether pid $1 runs (a zombie does not: without an init that reaps, daemons stay zombies).
alive() {
    local st
    st=$(awk '{ print $3 }' /proc/"$1"/stat 2>/dev/null) || return 1
    [[ -n $st && $st != Z && $st != X ]]
}

cmd_stop() {
    local S=$1 jobs stepds daemons pids p i
    [[ -d $S ]] || { echo "slurm.sh: nothing runs in $S"; return 0; }
    # jobs still queued or running are cancelled (so a restart does not requeue and rerun
    # them), then their processes on the node are stopped with the daemons
    cancel_jobs "$S"
    jobs=$(job_pids "$S")
    # shellcheck disable=SC2086
    stepds=$(stepd_pids $jobs)
    daemons=$(daemon_pids "$S")
    pids=$(echo $jobs $stepds $daemons)
    if [[ -z $pids ]]; then
        echo "slurm.sh: nothing runs in $S"
        return 0
    fi
    # jobs get SIGTERM; slurmstepd ignores it (it would wait KillWait), so it gets SIGKILL
    # shellcheck disable=SC2086
    if [[ -n $jobs ]]; then kill -TERM $jobs 2>/dev/null || true; fi
    # shellcheck disable=SC2086
    if [[ -n $stepds ]]; then kill -KILL $stepds 2>/dev/null || true; fi
    # shellcheck disable=SC2086
    if [[ -n $daemons ]]; then kill -TERM $daemons 2>/dev/null || true; fi
    for i in $(seq 50); do
        local left=""
        for p in $pids; do if alive "$p"; then left+=" $p"; fi; done
        [[ -z $left ]] && break
        sleep 0.1
    done
    for p in $pids; do
        if alive "$p"; then
            echo "slurm.sh: pid $p ($(cat /proc/"$p"/comm 2>/dev/null)) ignored SIGTERM; killing it" >&2
            kill -KILL "$p" 2>/dev/null || true
        fi
    done
    rm -f "$S/run/slurmrestd.pid"
    echo "slurm.sh: stopped Slurm in $S"
}

# A failed start: the logs' tails, what did start stopped, then exit 1.
fail() {
    local S=$1 msg=$2
    shift 2
    tail -n 15 "$@" >&2 2>/dev/null || true
    cmd_stop "$S" >&2 || true
    die "$msg"
}

port_busy() { (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; }

cmd_start() {
    local S=$1 t0 node mem memtotal hw p
    t0=$(date +%s.%N)
    [[ $(id -u) == 0 ]] || die "start needs root"
    command -v slurmrestd >/dev/null || die "Slurm is not installed (slurm.sh install)"
    jwt_plugin >/dev/null || die "auth_jwt.so is missing (apt-get install slurm-wlm-jwt-plugin)"
    id munge >/dev/null 2>&1 || die "user munge is missing (apt-get install munge)"
    command -v curl >/dev/null || die "curl is missing (apt-get install curl)"
    [[ $S != *[[:space:]]* ]] || die "DIR must not contain whitespace (it goes into slurm.conf): '$S'"
    mkdir -p "$S"
    S=$(cd "$S" && pwd -P)
    cmd_stop "$S" >/dev/null
    for p in "$REST_PORT" "$CTLD_PORT" "$SLURMD_PORT"; do
        port_busy "$p" && die "127.0.0.1:$p is in use (Slurm started from another DIR?)"
    done

    node=$(hostname -s)
    mkdir -p "$S"/{etc,state,spool/"$node",log,run,munge,out}
    chmod 755 "$S"
    chmod 1777 "$S/out" # job output; jobs may run as other users
    chown munge:munge "$S/munge"
    chmod 711 "$S/munge" # munged refuses a socket directory without o+x
    # munged runs as user munge: every directory above DIR must let it through
    runuser -u munge -- test -x "$S/munge" \
        || die "user munge cannot reach $S/munge: a directory above DIR is not o+x (mktemp -d makes 0700 ones; chmod 755 it)"
    if [[ ! -s $S/munge/munge.key ]]; then
        dd if=/dev/urandom of="$S/munge/munge.key" bs=1024 count=1 status=none
    fi
    chown munge:munge "$S/munge/munge.key"
    chmod 400 "$S/munge/munge.key"
    if [[ ! -s $S/etc/jwt_hs256.key ]]; then
        dd if=/dev/urandom of="$S/etc/jwt_hs256.key" bs=32 count=1 status=none
    fi
    chmod 600 "$S/etc/jwt_hs256.key"

    # the hardware line (CPUs, sockets, cores, threads) as slurmd sees it; our own RealMemory
    hw=$(slurmd -C 2>/dev/null | head -1 | tr ' ' '\n' |
        grep -E '^(CPUs|Boards|SocketsPerBoard|CoresPerSocket|ThreadsPerCore)=' | tr '\n' ' ') || true
    [[ $hw == *CPUs=* ]] || hw="CPUs=$(nproc)"
    memtotal=$(awk '/^MemTotal:/ { print int($2 / 1024) }' /proc/meminfo)
    mem=${SLURM_REAL_MEMORY:-$((memtotal * 3 / 4 < 4000 ? memtotal * 3 / 4 : 4000))}

    export SLURM_CONF=$S/etc/slurm.conf
    cat >"$SLURM_CONF" <<EOF
# written by scripts/engines/slurm.sh
ClusterName=atrium
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
AuthType=auth/munge
AuthInfo=socket=$S/munge/munge.socket.2
AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key=$S/etc/jwt_hs256.key
StateSaveLocation=$S/state
SlurmdSpoolDir=$S/spool/%n
SlurmctldPidFile=$S/run/slurmctld.pid
SlurmdPidFile=$S/run/slurmd.pid
SlurmctldLogFile=$S/log/slurmctld.log
SlurmdLogFile=$S/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MinJobAge=3600
# Atrium retries an attempt itself: a failed node ends a job instead of rerunning it
JobRequeue=0
KillWait=10
MpiDefault=none
GresTypes=gpu
MailProg=/bin/true
NodeName=$node NodeAddr=127.0.0.1 ${hw}RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    chmod 644 "$SLURM_CONF"

    runuser -u munge -- munged --socket="$S/munge/munge.socket.2" --key-file="$S/munge/munge.key" \
        --pid-file="$S/munge/munged.pid" --log-file="$S/munge/munged.log" \
        --seed-file="$S/munge/munged.seed" </dev/null >>"$S/log/munged.out" 2>&1 ||
        fail "$S" "munged did not start" "$S/log/munged.out" "$S/munge/munged.log"
    # both daemonize once they are listening and write their pidfiles
    slurmctld -f "$SLURM_CONF" </dev/null >>"$S/log/slurmctld.out" 2>&1 ||
        fail "$S" "slurmctld did not start" "$S/log/slurmctld.out" "$S/log/slurmctld.log"
    slurmd -f "$SLURM_CONF" </dev/null >>"$S/log/slurmd.out" 2>&1 ||
        fail "$S" "slurmd did not start" "$S/log/slurmd.out" "$S/log/slurmd.log"
    # slurmrestd refuses root (-u nobody); its cwd becomes the WorkDir of jobs that give none
    (cd "$S/out" && SLURM_JWT=daemon exec setsid slurmrestd -f "$SLURM_CONF" -u nobody \
        -a rest_auth/jwt -s openapi/$API "127.0.0.1:$REST_PORT" \
        </dev/null >>"$S/log/slurmrestd.log" 2>&1) &
    echo $! >"$S/run/slurmrestd.pid"

    local url="http://127.0.0.1:$REST_PORT" token="" code="" state="" deadline
    deadline=$(($(date +%s) + 30))
    while :; do
        if [[ -z $token ]]; then
            token=$(scontrol token username=root lifespan=600 2>/dev/null | sed -n 's/^SLURM_JWT=//p') || token=""
        fi
        if [[ -n $token ]]; then
            code=$(curl -s -o /dev/null -w '%{http_code}' -m 2 -H "X-SLURM-USER-NAME: root" \
                -H "X-SLURM-USER-TOKEN: $token" "$url/slurm/$API/ping") || code=000
            state=$(sinfo -h -N -n "$node" -o %t 2>/dev/null | head -1) || state=""
            # idle on a fresh cluster; mix/alloc/comp when recovered jobs hold it (a "*" or
            # down/drain/unk: slurmd has not registered yet)
            [[ $code == 200 && $state =~ ^(idle|mix|alloc|comp)$ ]] && break
        fi
        if (($(date +%s) >= deadline)); then
            fail "$S" "not ready after 30 s (token: ${token:+yes}, ping: $code, node: ${state:-?})" \
                "$S/log/slurmctld.log" "$S/log/slurmd.log" "$S/log/slurmrestd.log"
        fi
        sleep 0.1
    done

    {
        echo "SLURM_URL=$url"
        echo "SLURM_JWT_KEY_B64=$(base64 -w0 "$S/etc/jwt_hs256.key")"
        echo "SLURM_USER=root"
        echo "SLURM_PARTITION=debug"
        echo "SLURM_CONF=$SLURM_CONF"
        # a ready JWT (one day), for token_secret
        echo "SLURM_TOKEN=$(scontrol token username=root lifespan=86400 | sed -n 's/^SLURM_JWT=//p')"
    } >"$S/env"
    cat "$S/env"
    echo "slurm.sh: Slurm is up in $S (node $node, ${hw}RealMemory=$mem) after $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s" >&2
}

case "${1:-}" in
install) cmd_install ;;
start) [[ -n ${2:-} ]] || die "usage: slurm.sh start DIR"; cmd_start "$2" ;;
stop)
    [[ -n ${2:-} ]] || die "usage: slurm.sh stop DIR"
    d=$2
    [[ -d $d ]] && d=$(cd "$d" && pwd -P)
    cmd_stop "$d"
    ;;
*) die "usage: slurm.sh install | start DIR | stop DIR" ;;
esac
