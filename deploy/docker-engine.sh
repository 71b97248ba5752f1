#!/usr/bin/env bash
# The Docker engine kpy's docker runtime runs against: a dockerd of its own,
# on its own socket, pidfile, exec root and data root, so that it never
# touches a system Docker on the same machine.
#
#   bash deploy/docker-engine.sh install   # docker.io and busybox-static, if missing
#   bash deploy/docker-engine.sh start     # dockerd in the background; waits until it answers
#   bash deploy/docker-engine.sh image     # kpy.local/busybox:latest and :2, built offline
#   bash deploy/docker-engine.sh stop      # stops that dockerd, by the pid in its pidfile
#   eval "$(bash deploy/docker-engine.sh env)"
#
# KPY_DOCKER_DIR (default /run/kpy-docker) holds the socket, the pidfile, the
# exec root and dockerd.log; KPY_DOCKER_DATA (default /var/lib/kpy-docker)
# holds images and containers. Every subcommand is idempotent. Needs root.
#
# The engine's bridge is 172.30.0.0/16 (--bip), and containers get addresses
# from its lower half only (--fixed-cidr 172.30.0.0/17): the upper half,
# 172.30.128.0/17, is never given to a container, so kpy-apiserver may take
# Service cluster IPs from it (--service-cluster-ip-range inside it) knowing
# a packet to one stays on this machine's bridge. kpy-apiserver knows these
# two values (kpy/apiserver/service_alloc.py): change them together. An
# engine started before these flags must be stopped and started again.
# `start` also makes that upper half local to this machine (a `local` route
# on lo): the host then answers containers' ARP for a service IP, so their
# packets reach kpy-proxy's PREROUTING rules, and one no rule handles is
# answered here (refused), never sent on. `stop` removes the route.
set -euo pipefail

DIR="${KPY_DOCKER_DIR:-/run/kpy-docker}"
DATA="${KPY_DOCKER_DATA:-/var/lib/kpy-docker}"
SOCKET="$DIR/docker.sock"
PIDFILE="$DIR/dockerd.pid"
LOG="$DIR/dockerd.log"
HOST="unix://$SOCKET"
START_TIMEOUT="${KPY_DOCKER_START_TIMEOUT:-60}"
STOP_TIMEOUT=30
IMAGE=kpy.local/busybox
BRIDGE_IP=172.30.0.1/16     # the bridge's address and subnet
CONTAINER_CIDR=172.30.0.0/17 # what containers get; the rest is for service IPs
SERVICE_CIDR=172.30.128.0/17 # Service cluster IPs (kpy-proxy routes them)
TAGS=(latest 2)

say() { echo "docker-engine: $*" >&2; }
die() {
    say "$*"
    exit 1
}

need_root() {
    [[ $(id -u) == 0 ]] || die "must run as root (dockerd needs it); try: sudo bash $0 $1"
}

# The pid in the pidfile if that process is a live dockerd, else nothing.
running_pid() {
    local pid
    [[ -s $PIDFILE ]] || return 0
    pid=$(<"$PIDFILE")
    [[ $pid =~ ^[0-9]+$ ]] || return 0
    # A pid is reused once its process is gone: trust it only if it is dockerd.
    if [[ $(cat "/proc/$pid/comm" 2>/dev/null) == dockerd ]]; then
        echo "$pid"
    fi
}

answers() {
    docker -H "$HOST" version >/dev/null 2>&1
}

cmd_install() {
    need_root install
    local missing=()
    command -v dockerd >/dev/null || missing+=(docker.io)
    command -v busybox >/dev/null || missing+=(busybox-static)
    if ((${#missing[@]} == 0)); then
        say "dockerd and busybox are installed"
        return
    fi
    say "installing ${missing[*]} with apt-get (a minute on a fresh machine)..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

cmd_start() {
    need_root start
    command -v dockerd >/dev/null || die "dockerd is not installed; run: bash $0 install"
    local pid
    pid=$(running_pid)
    if [[ -n $pid ]] && answers; then
        service_route add
        say "dockerd is already running (pid $pid) on $HOST"
        return
    fi
    [[ -z $pid ]] || die "dockerd (pid $pid, from $PIDFILE) runs but does not answer on $HOST; \
run: bash $0 stop, then start again (log: $LOG)"
    mkdir -p "$DIR" "$DATA"
    rm -f "$PIDFILE" "$SOCKET"
    # setsid: the engine must outlive the shell that started it, and not
    # receive that shell's Ctrl-C.
    setsid dockerd \
        --host "$HOST" \
        --pidfile "$PIDFILE" \
        --exec-root "$DIR/exec" \
        --data-root "$DATA" \
        --bip "$BRIDGE_IP" \
        --fixed-cidr "$CONTAINER_CIDR" \
        </dev/null >"$LOG" 2>&1 &
    pid=$!
    local waited=0
    until answers; do
        if ! kill -0 "$pid" 2>/dev/null; then
            die "dockerd exited during start-up; the end of its log ($LOG):
$(tail -n 20 "$LOG")"
        fi
        if ((waited >= START_TIMEOUT * 10)); then
            die "dockerd (pid $pid) did not answer on $HOST within ${START_TIMEOUT}s; \
it is still running (stop it with: bash $0 stop); the end of its log ($LOG):
$(tail -n 20 "$LOG")"
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    # dockerd wrote its own pid there; both must agree for `stop` to be right.
    [[ $(cat "$PIDFILE" 2>/dev/null) == "$pid" ]] || echo "$pid" >"$PIDFILE"
    service_route add
    say "dockerd started (pid $pid) on $HOST; log: $LOG"
}

# `service_route add|del`: the local route of $SERVICE_CIDR (see the top).
service_route() {
    if [[ $1 == add ]]; then
        ip route replace local "$SERVICE_CIDR" dev lo table local
    else
        ip route del local "$SERVICE_CIDR" dev lo table local 2>/dev/null || true
    fi
}

cmd_image() {
    answers || die "no engine answers on $HOST; run: bash $0 start"
    local tag missing=()
    for tag in "${TAGS[@]}"; do
        docker -H "$HOST" image inspect "$IMAGE:$tag" >/dev/null 2>&1 || missing+=("$tag")
    done
    if ((${#missing[@]} == 0)); then
        say "$IMAGE:{${TAGS[*]}} are present"
        return
    fi
    local busybox context
    busybox=$(command -v busybox) || die "busybox is not installed; run: bash $0 install"
    # FROM scratch has no libc: a dynamically linked busybox would not run.
    if LC_ALL=C ldd "$busybox" >/dev/null 2>&1; then
        die "$busybox is dynamically linked; install busybox-static (bash $0 install)"
    fi
    context=$(mktemp -d)
    trap 'rm -rf "$context"' RETURN
    cp "$busybox" "$context/busybox"
    # FROM scratch needs no registry; RUN uses the engine's own runc.
    cat >"$context/Dockerfile" <<'EOF'
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN ["/bin/busybox", "mkdir", "-p", "/tmp", "/root", "/etc", "/www"]
RUN ["/bin/busybox", "chmod", "1777", "/tmp"]
ENV PATH=/bin
CMD ["/bin/sh"]
EOF
    say "building $IMAGE:{${TAGS[*]}} from $busybox..."
    DOCKER_BUILDKIT=0 docker -H "$HOST" build -q -t "$IMAGE:${TAGS[0]}" "$context" >/dev/null
    for tag in "${TAGS[@]:1}"; do
        docker -H "$HOST" tag "$IMAGE:${TAGS[0]}" "$IMAGE:$tag"
    done
    say "built $IMAGE:{${TAGS[*]}}"
}

cmd_stop() {
    need_root stop
    local pid waited=0
    pid=$(running_pid)
    if [[ -z $pid ]]; then
        say "no dockerd runs from $PIDFILE"
        return
    fi
    kill -TERM "$pid"
    # dockerd stops its containers first, 10 s each at most in parallel.
    while [[ -d /proc/$pid ]] && ((waited < STOP_TIMEOUT * 10)); do
        sleep 0.1
        waited=$((waited + 1))
    done
    if [[ -d /proc/$pid ]]; then
        say "dockerd (pid $pid) still runs after ${STOP_TIMEOUT}s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$PIDFILE"
    service_route del
    say "dockerd (pid $pid) stopped"
}

cmd_env() {
    echo "export DOCKER_HOST=$HOST"
}

case "${1:-}" in
install | start | image | stop | env) "cmd_$1" ;;
*)
    echo "usage: bash $0 install|start|image|stop|env" >&2
    exit 2
    ;;
esac
