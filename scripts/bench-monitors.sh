#!/usr/bin/env bash
# Benchmark: what does health monitoring cost the control plane per monitored instance?
#
# Usage: scripts/bench-monitors.sh [INSTANCES] [SECONDS]   (default 1000 instances, 90 s)
#        needs a release build: cargo build --release -p toygres-server
#
# One real instance is created through the API; INSTANCES-1 more instance records are cloned
# from it (cheap targets: they all point at that one PostgreSQL, with its credentials). In the
# same run it measures, over SECONDS each:
#   baseline: the server with the one instance (its monitor included),
#   loaded:   the server after a restart, monitoring all INSTANCES,
# the control-plane database's committed transactions per second (pg_stat_database) and the CPU
# of the server process and of the control-plane PostgreSQL, and reports the difference per
# monitored instance at the default 30 s interval.
set -euo pipefail

INSTANCES="${1:-1000}"
SECONDS_MEASURED="${2:-90}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${TOYGRES_BIN:-$ROOT/target/release/toygres}"
WORK="$(mktemp -d /tmp/toygres-bench-mon.XXXXXX)"
chmod 755 "$WORK"
PORT_API=18790
BASE="http://127.0.0.1:$PORT_API"
SOCKET_DIR="$WORK/controlplane/run"
TICKS="$(getconf CLK_TCK)"

[ -x "$BIN" ] || { echo "missing $BIN: run cargo build --release -p toygres-server" >&2; exit 2; }

psql_cp() { psql -h "$SOCKET_DIR" -U postgres -d postgres -Atq "$@"; }

start_server() {
    TOYGRES_LISTEN="127.0.0.1:$PORT_API" TOYGRES_DATA_DIR="$WORK" TOYGRES_PORT_RANGE="16600-16610" \
        RUST_LOG=warn "$BIN" serve >>"$WORK/server.log" 2>&1 &
    SERVER_PID=$!
    until curl -sf "$BASE/readyz" >/dev/null; do sleep 0.2; done
}

stop_server() {
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
}

cleanup() {
    [ -n "${SERVER_PID:-}" ] && stop_server
    local pg_ctl; pg_ctl="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)/pg_ctl"
    for data in "$WORK"/instances/*/data "$WORK/controlplane/data"; do
        [ -d "$data" ] || continue
        if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$pg_ctl" stop -D "$data" -m immediate >/dev/null 2>&1 || true
        else "$pg_ctl" stop -D "$data" -m immediate >/dev/null 2>&1 || true; fi
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

# CPU ticks of a process and its children that are still alive.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }

controlplane_ticks() {
    local pm; pm="$(head -1 "$WORK/controlplane/data/postmaster.pid")"
    local total=0 pid
    for pid in "$pm" $(pgrep -P "$pm"); do total=$((total + $(cpu_ticks "$pid"))); done
    echo "$total"
}

measure() {
    local label="$1" tx0 tx1 s0 s1 c0 c1
    tx0=$(psql_cp -c "SELECT xact_commit FROM pg_stat_database WHERE datname = 'postgres'")
    s0=$(cpu_ticks "$SERVER_PID"); c0=$(controlplane_ticks)
    sleep "$SECONDS_MEASURED"
    tx1=$(psql_cp -c "SELECT xact_commit FROM pg_stat_database WHERE datname = 'postgres'")
    s1=$(cpu_ticks "$SERVER_PID"); c1=$(controlplane_ticks)
    # Less the two transactions of this measurement itself.
    awk -v l="$label" -v tx=$((tx1 - tx0 - 2)) -v s=$((s1 - s0)) -v c=$((c1 - c0)) -v t="$SECONDS_MEASURED" -v k="$TICKS" \
        'BEGIN { printf "%s %.2f %.4f %.4f\n", l, tx / t, s / k / t, c / k / t }'
}

echo "starting the server and one real instance" >&2
start_server
OP=$(curl -sf -X POST "$BASE/instances" -H 'Content-Type: application/json' -d '{"name":"target"}' | grep -o '"operation":{"id":"[^"]*"' | cut -d'"' -f6)
until curl -sf "$BASE/operations/$OP" | grep -q '"status":"succeeded"'; do sleep 0.2; done
sleep 35   # its first health check has run

echo "baseline: 1 monitored instance, ${SECONDS_MEASURED}s" >&2
BASELINE=$(measure baseline)

echo "cloning $((INSTANCES - 1)) instance records pointing at the same PostgreSQL" >&2
psql_cp <<SQL
INSERT INTO toygres.instances (uid, name, state, backend, postgres_version, storage_gb, expose, host, port,
    database_name, username, sealed_password, last_operation_id)
SELECT 'ins_bench_' || i, 'bench-' || i, 'running', backend, postgres_version, storage_gb, expose, host, port,
    database_name, username, sealed_password, last_operation_id
FROM toygres.instances, generate_series(1, $((INSTANCES - 1))) AS i WHERE name = 'target';
SQL
echo "restarting the server: its start-up reconciler gives every running instance a monitor" >&2
stop_server
start_server
until [ "$(psql_cp -c "SELECT count(*) FROM toygres.instances WHERE state = 'running' AND health_checked_at IS NOT NULL AND monitor_id IS NOT NULL")" -ge "$INSTANCES" ]; do
    sleep 2
done
sleep 10

echo "loaded: $INSTANCES monitored instances, ${SECONDS_MEASURED}s" >&2
LOADED=$(measure loaded)

read -r _ btx bsrv bcp <<<"$BASELINE"
read -r _ ltx lsrv lcp <<<"$LOADED"
echo "                       tx/s    server CPU (cores)   control-plane PG CPU (cores)"
echo "baseline (1 instance): $btx   $bsrv   $bcp"
echo "loaded ($INSTANCES):      $ltx   $lsrv   $lcp"
awk -v n="$INSTANCES" -v bt="$btx" -v lt="$ltx" -v bs="$bsrv" -v ls="$lsrv" -v bc="$bcp" -v lc="$lcp" 'BEGIN {
    per = (lt - bt) / (n - 1)
    printf "per monitored instance: %.3f transactions/s (target < 1), %.3f ms server CPU/s, %.3f ms control-plane PG CPU/s\n",
        per, (ls - bs) / (n - 1) * 1000, (lc - bc) / (n - 1) * 1000
    printf "loaded/baseline: transactions %.1fx, server CPU %.1fx\n", lt / bt, (bs > 0 ? ls / bs : 0)
}'
