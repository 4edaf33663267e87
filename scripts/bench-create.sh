#!/usr/bin/env bash
# Benchmark: how close is "POST /instances -> operation succeeded" to the floor, the same work
# done by hand with the same PostgreSQL binaries (initdb + start + first connection)?
#
# Usage: scripts/bench-create.sh [RUNS]        (default 10; needs a release build:
#        cargo build --release -p toygres-server)
# Prints the median of each and their ratio. Runs as root or as a normal user.
set -euo pipefail
# shellcheck source=lib/floor.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/floor.sh"

RUNS="${1:-10}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${TOYGRES_BIN:-$ROOT/target/release/toygres}"
PG_BIN="$(pg_config --bindir 2>/dev/null || ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
WORK="$(mktemp -d /tmp/toygres-bench.XXXXXX)"
chmod 755 "$WORK"
PORT_API=18780
PASSWORD="bench-password-$$-$RANDOM"

[ -x "$BIN" ] || { echo "missing $BIN: run cargo build --release -p toygres-server" >&2; exit 2; }



median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print int((a[NR/2]+a[NR/2+1])/2)}'; }

cleanup() {
    [ -n "${SERVER_PID:-}" ] && kill -TERM "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true
    for data in "$WORK"/floor-*/data "$WORK"/server/instances/*/data; do
        [ -d "$data" ] && as_pg "$PG_BIN/pg_ctl" stop -D "$data" -m immediate >/dev/null 2>&1 || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT



server_once() {
    local i="$1" start end op status
    start=$(now_ms)
    op=$(field "$(curl -sf -X POST "http://127.0.0.1:$PORT_API/instances" -H 'Content-Type: application/json' -d "{\"name\":\"bench-$i\"}")" id)
    while :; do
        status=$(field "$(curl -sf "http://127.0.0.1:$PORT_API/operations/$op")" status)
        case "$status" in
            succeeded) break ;;
            failed|canceled) echo "operation $op $status" >&2; exit 1 ;;
        esac
        sleep 0.01
    done
    end=$(now_ms)
    local del
    del=$(curl -sf -X DELETE "http://127.0.0.1:$PORT_API/instances/bench-$i")
    del=$(field "${del#*\"operation\":}" id)
    until [ "$(field "$(curl -sf "http://127.0.0.1:$PORT_API/operations/$del")" status)" = succeeded ]; do sleep 0.05; done
    echo $((end - start))
}

mkdir -p "$WORK/server"
TOYGRES_LISTEN="127.0.0.1:$PORT_API" TOYGRES_DATA_DIR="$WORK/server" TOYGRES_PORT_RANGE="16500-16599" \
    RUST_LOG=warn "$BIN" serve >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
until curl -sf "http://127.0.0.1:$PORT_API/readyz" >/dev/null; do sleep 0.1; done

# Alternate the two so that drift in machine speed affects both alike.
echo "measuring $RUNS x (floor: initdb + start + first connection by hand; server: POST -> succeeded)" >&2
: > "$WORK/floor.txt"; : > "$WORK/server.txt"
for i in $(seq 1 "$RUNS"); do
    floor_once "$i" "$((16400 + $i))" >> "$WORK/floor.txt"
    server_once "$i" >> "$WORK/server.txt"
done
FLOOR=$(median < "$WORK/floor.txt")
SERVER=$(median < "$WORK/server.txt")

echo "floor samples (ms):  $(tr '\n' ' ' < "$WORK/floor.txt")"
echo "server samples (ms): $(tr '\n' ' ' < "$WORK/server.txt")"
echo "median floor:  ${FLOOR} ms"
echo "median server: ${SERVER} ms"
awk -v s="$SERVER" -v f="$FLOOR" 'BEGIN { printf "ratio server/floor: %.2f (target <= 1.30)\n", s / f }'
