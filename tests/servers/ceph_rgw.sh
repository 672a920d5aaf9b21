#!/usr/bin/env bash
# Throw-away Ceph RADOS Gateway on 127.0.0.1 for the test suite: a real S3 server that
# enforces SigV4 (moto does not check presigned URLs). One ceph-mon, one memstore ceph-osd
# (objects live in RAM) and radosgw/beast; no mgr, no systemd, every file under DIR.
#
#   ceph_rgw.sh up DIR     env: RGW_PORT MON_PORT S3_ACCESS_KEY S3_SECRET_KEY
#   ceph_rgw.sh down DIR   stops what `up` started in DIR, then deletes DIR
#
# The mon listens on MON_PORT (msgr v2) and MON_PORT+1 (msgr v1).
# Exit codes: 0 ok, 1 failure (daemons stopped, logs kept in DIR/log), 2 usage,
# 3 Ceph missing and not root.
set -euo pipefail

readonly PACKAGES=(radosgw ceph-mon ceph-osd ceph-common)
readonly DAEMON_ORDER=(rgw osd mon)   # radosgw first; the OSD needs the mon to stop cleanly

die() { echo "ceph_rgw.sh: $*" >&2; exit 1; }

usage() { echo "usage: ceph_rgw.sh up|down DIR" >&2; exit 2; }

# Install the Ceph daemons if absent; only root can, anyone else gets exit code 3.
ensure_packages() {
    local bin missing=0
    for bin in radosgw ceph-mon ceph-osd ceph radosgw-admin monmaptool ceph-authtool; do
        command -v "$bin" >/dev/null || missing=1
    done
    [[ $missing == 0 ]] && return 0
    if [[ $(id -u) != 0 ]]; then
        echo "ceph_rgw.sh: Ceph is not installed; run as root (installs automatically) or" \
            "install: apt-get install ${PACKAGES[*]}" >&2
        exit 3
    fi
    local aptlog
    aptlog=$(mktemp)
    export DEBIAN_FRONTEND=noninteractive
    # Retry after refreshing the package lists, which are empty on a fresh image.
    if ! apt_install >"$aptlog" 2>&1 && ! { apt-get update -qq && apt_install; } >>"$aptlog" 2>&1
    then
        tail -n 20 "$aptlog" >&2
        rm -f "$aptlog"
        die "apt-get install ${PACKAGES[*]} failed"
    fi
    rm -f "$aptlog"
}

# Waits for dpkg's lock: the browser test may be installing Chromium at the same moment.
apt_install() { apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=600 "${PACKAGES[@]}"; }

# True if something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
    # shellcheck disable=SC2016  # $1 is expanded by the inner bash
    timeout 1 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null
}

# True once radosgw answers an anonymous GET / with 200; needs neither curl nor python.
rgw_ready() {
    local status
    # shellcheck disable=SC2016  # $1 is expanded by the inner bash
    status=$(timeout 2 bash -c '
        exec 3<>"/dev/tcp/127.0.0.1/$1"
        printf "GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" >&3
        head -n 1 <&3' _ "$1" 2>/dev/null) || return 1
    [[ $status == "HTTP/1."[01]" 200"* ]]
}

# True once the OSD map lists osd.ID as up.
osd_up() {
    local dump
    dump=$(ceph -c "$1/ceph.conf" --connect-timeout 5 osd dump 2>/dev/null) || return 1
    [[ $dump == *$'\n'"osd.$2 up"* ]]
}

# Poll CHECK... until it succeeds; fail fast if daemon NAME dies, or after SECS seconds.
wait_for() {
    local dir=$1 name=$2 secs=$3 pid deadline
    shift 3
    pid=$(<"$dir/run/$name.fgpid")
    deadline=$((SECONDS + secs))
    until "$@"; do
        exited "$pid" && die "$name exited during startup, see $dir/log/$name.out"
        ((SECONDS < deadline)) || die "$name not ready after $secs s, see $dir/log"
        sleep 0.25
    done
}

write_conf() {
    local dir=$1 fsid=$2 mon_addrs=$3
    cat >"$dir/ceph.conf" <<EOF
[global]
fsid = $fsid
mon host = $mon_addrs
public addr = 127.0.0.1
# No cephx inside the throw-away cluster; S3 request signing is still enforced by radosgw.
auth cluster required = none
auth service required = none
auth client required = none
keyring = $dir/keyring
run dir = $dir/run
crash dir = $dir/crash
log file = $dir/log/\$name.log
admin socket = $dir/run/\$name.asok
pid file = $dir/run/\$name.pid
# A single OSD must be allowed to hold every replica.
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
mon allow pool size one = true
mon data avail crit = 0

[mon]
mon data = $dir/mon.\$id
mon cluster log file = $dir/log/cluster.log
# Default 1 s; 0.1 s brings a cold start from ~13 s down to a few seconds.
paxos propose interval = 0.1

[osd]
osd data = $dir/osd.\$id
osd objectstore = memstore
memstore device bytes = 2147483648

[client]
# With auth none the clients otherwise insist on a secure mon session and radosgw hangs.
ms mon client mode = crc

[client.rgw.gw]
# tcp_nodelay: without it beast's small writes wait on the client's delayed ACK, and every
# response with a body (GET, listings) took ~50 ms instead of ~5 ms: RGW was the slowest
# server of the suite.
rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT tcp_nodelay=1
rgw data = $dir/rgw
# The lifecycle worker sleeps in 5 s steps and delays shutdown; tests do not need it.
rgw enable lc threads = false
# Reclaim deleted objects' data within seconds (default: after 2 h) so the RAM store cannot fill up.
rgw gc obj min wait = 5
rgw gc processor period = 5
EOF
}

# Start a daemon in the foreground of a background job; its pid goes to run/NAME.fgpid.
spawn() {
    local dir=$1 name=$2
    shift 2
    "$@" -c "$dir/ceph.conf" -f </dev/null >"$dir/log/$name.out" 2>&1 &
    echo $! >"$dir/run/$name.fgpid"
}

cmd_up() {
    local dir=$1
    : "${RGW_PORT:?RGW_PORT is required}" "${MON_PORT:?MON_PORT is required}"
    : "${S3_ACCESS_KEY:?S3_ACCESS_KEY is required}" "${S3_SECRET_KEY:?S3_SECRET_KEY is required}"
    ensure_packages

    [[ -d $dir ]] && cmd_down "$dir"
    mkdir -p "$dir"/{mon.a,rgw,run,log,crash}
    dir=$(cd "$dir" && pwd)
    # On any failure stop what was started but keep DIR so the caller can read the logs.
    # shellcheck disable=SC2064  # DIR is fixed now; only $? is read at exit
    trap "[[ \$? == 0 ]] || stop_all $(printf %q "$dir")" EXIT

    local fsid osd_uuid osd_id mon_addrs setup_log="$dir/log/setup.out"
    fsid=$(cat /proc/sys/kernel/random/uuid)
    mon_addrs="[v2:127.0.0.1:$MON_PORT,v1:127.0.0.1:$((MON_PORT + 1))]"
    write_conf "$dir" "$fsid" "$mon_addrs"

    ceph-authtool --create-keyring "$dir/keyring" --gen-key -n mon. --cap mon 'allow *' \
        >"$setup_log" 2>&1
    monmaptool --create --fsid "$fsid" --addv a "$mon_addrs" "$dir/monmap" >>"$setup_log" 2>&1
    ceph-mon -c "$dir/ceph.conf" --mkfs -i a --monmap "$dir/monmap" --keyring "$dir/keyring" \
        >>"$setup_log" 2>&1
    spawn "$dir" mon ceph-mon -i a
    wait_for "$dir" mon 30 port_open "$MON_PORT"

    # `osd new` also waits (bounded) for the mon to form its quorum of one.
    osd_uuid=$(cat /proc/sys/kernel/random/uuid)
    osd_id=$(ceph -c "$dir/ceph.conf" --connect-timeout 15 osd new "$osd_uuid" 2>>"$setup_log") ||
        die "mon not reachable on port $MON_PORT, see $dir/log"
    mkdir -p "$dir/osd.$osd_id"
    ceph-osd -c "$dir/ceph.conf" -i "$osd_id" --mkfs --osd-uuid "$osd_uuid" >>"$setup_log" 2>&1
    spawn "$dir" osd ceph-osd -i "$osd_id"
    wait_for "$dir" osd 60 osd_up "$dir" "$osd_id"

    spawn "$dir" rgw radosgw -n client.rgw.gw
    wait_for "$dir" rgw 60 rgw_ready "$RGW_PORT"

    radosgw-admin -c "$dir/ceph.conf" user create --uid=tester --display-name=tester \
        --access-key="$S3_ACCESS_KEY" --secret-key="$S3_SECRET_KEY" >"$dir/log/user.json" \
        2>>"$setup_log" || die "radosgw-admin user create failed, see $dir/log"
    trap - EXIT
    echo "radosgw up: http://127.0.0.1:$RGW_PORT"
}

# True if PID is gone or a zombie (an orphan waiting for init to reap it).
exited() {
    local state
    state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 0
    [[ $state == Z ]]
}

# Stop one recorded daemon: TERM, up to 10 s, then KILL. Skips a pid reused by another program.
stop_daemon() {
    local dir=$1 name=$2 pidfile="$1/run/$2.fgpid" pid cmdline i
    [[ -f $pidfile ]] || return 0
    pid=$(<"$pidfile")
    cmdline=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || cmdline=""
    if ! exited "$pid" && [[ $cmdline == *"$dir/ceph.conf"* ]]; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 100; i++)); do
            exited "$pid" && break
            sleep 0.1
        done
        exited "$pid" || kill -KILL "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            exited "$pid" && break
            sleep 0.1
        done
    fi
    rm -f "$pidfile"
}

stop_all() {
    local name
    for name in "${DAEMON_ORDER[@]}"; do
        stop_daemon "$1" "$name"
    done
}

cmd_down() {
    local dir=$1
    [[ -d $dir ]] || return 0
    dir=$(cd "$dir" && pwd)
    stop_all "$dir"
    rm -rf "$dir"
}

[[ $# == 2 ]] || usage
case $1 in
    up) cmd_up "$2" ;;
    down) cmd_down "$2" ;;
    *) usage ;;
esac
