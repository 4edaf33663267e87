#!/usr/bin/env bash
# Benchmark: fast create. In one run, alternating so that drift in machine speed hits all alike:
#   floor     initdb + start + first connection with the password, by hand (bench-create.sh's);
#   template  POST /instances -> operation succeeded, on a server without a warm pool (the
#             instance is a copy of the template cluster);
#   pool      the same on a server with a warm pool (TOYGRES_WARM_POOL=2: a started copy is
#             claimed), each create made only once the pool holds a ready cluster again.
# Then CONCURRENT creates at once through the API (template server): all must reach running with
# distinct ports and data of their own; creates per second against the floor's rate.
#
# Usage: scripts/bench-fast-create.sh [RUNS] [CONCURRENT]   (defaults 15 and 50; needs a release
#        build: cargo build --release -p toygres-server)
# Prints medians and p90s, the ratios to the floor, and the concurrent phase's rate.
set -euo pipefail
# shellcheck source=lib/floor.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/floor.sh"

RUNS="${1:-15}"
CONCURRENT="${2:-50}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${TOYGRES_BIN:-$ROOT/target/release/toygres}"
PG_BIN="$(pg_config --bindir 2>/dev/null || ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
WORK="$(mktemp -d /tmp/toygres-fast.XXXXXX)"
chmod 755 "$WORK"
API_TEMPLATE=18790
API_POOL=18791
PASSWORD="bench-password-$$-$RANDOM"

[ -x "$BIN" ] || { echo "missing $BIN: run cargo build --release -p toygres-server" >&2; exit 2; }



# median and p90 (nearest rank) of the numbers on stdin
stats() { sort -n | awk '{a[NR]=$1} END {m = (NR%2) ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2); p = a[int((NR*9+9)/10)]; printf "%d %d\n", m, p}'; }

PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; done
    # Instances run as ids of their own (as root): their postmasters are stopped by signal.
    for pidfile in "$WORK"/floor-*/data/postmaster.pid "$WORK"/server-*/instances/*/data/postmaster.pid \
        "$WORK"/server-*/instances/.ports/*/data/postmaster.pid; do
        [ -e "$pidfile" ] && kill -QUIT "$(head -1 "$pidfile")" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT


number() {
    local body="$1" key="$2"
    [[ "$body" =~ \"$key\":([0-9]+) ]] && printf '%s' "${BASH_REMATCH[1]}"
}

# Polls operation $2 on server $1 every $3 seconds (default 5 ms) until it succeeds.
wait_succeeded() {
    local api="$1" op="$2" pause="${3:-0.005}" status
    while :; do
        status=$(field "$(curl -sf "http://127.0.0.1:$api/operations/$op")" status)
        case "$status" in
            succeeded) return 0 ;;
            failed|canceled) echo "operation $op $status" >&2; exit 1 ;;
        esac
        sleep "$pause"
    done
}

delete_instance() {
    local api="$1" name="$2" del
    del=$(curl -sf -X DELETE "http://127.0.0.1:$api/instances/$name")
    wait_succeeded "$api" "$(field "${del#*\"operation\":}" id)"
}

# Creates instance $2 on server $1 (timed: POST -> succeeded), then deletes it (not timed).
create_once() {
    local api="$1" name="$2" start end op
    start=$(now_ms)
    op=$(field "$(curl -sf -X POST "http://127.0.0.1:$api/instances" -H 'Content-Type: application/json' -d "{\"name\":\"$name\"}")" id)
    wait_succeeded "$api" "$op"
    end=$(now_ms)
    echo "$(number "$(curl -sf "http://127.0.0.1:$api/instances/$name")" port) $((end - start))"
}

# The ports of the pool's ready, unclaimed clusters on the pool server.
ready_pool_ports() {
    local slot dir
    for slot in "$WORK"/server-pool/instances/.pool/*/slot.json; do
        [ -e "$slot" ] || continue
        dir="$(dirname "$slot")"
        [ -e "$dir/instance.json" ] && continue
        grep -q '"ready": true' "$slot" && grep -o '"port": [0-9]*' "$slot" | grep -o '[0-9]*'
    done
}

start_server() {
    local kind="$1" api="$2" ports="$3" pool="$4"
    mkdir -p "$WORK/server-$kind"
    # Backups stay on (each create makes its stanza, each server archives), but the scheduler's
    # first full backup of every new instance would compete with the next measurement: it
    # looks only once an hour here.
    TOYGRES_LISTEN="127.0.0.1:$api" TOYGRES_DATA_DIR="$WORK/server-$kind" TOYGRES_PORT_RANGE="$ports" \
        TOYGRES_WARM_POOL="$pool" TOYGRES_BACKUP_CHECK_INTERVAL_SECS=3600 \
        RUST_LOG="${TOYGRES_BENCH_LOG:-warn}" "$BIN" serve >"$WORK/server-$kind.log" 2>&1 &
    PIDS+=($!)
    until curl -sf "http://127.0.0.1:$api/readyz" >/dev/null; do sleep 0.1; done
}

start_server template "$API_TEMPLATE" 16500-16599 0
start_server pool "$API_POOL" 16600-16649 2

# The first create of each server makes its template (once per build of the binaries).
create_once "$API_TEMPLATE" warm-up >/dev/null && delete_instance "$API_TEMPLATE" warm-up
until [ "$(ready_pool_ports | wc -l)" -ge 2 ]; do sleep 0.1; done

echo "measuring $RUNS x (floor by hand; create from the template; create from the warm pool)" >&2
: > "$WORK/floor.txt"; : > "$WORK/template.txt"; : > "$WORK/pool.txt"
fallbacks=0
for i in $(seq 1 "$RUNS"); do
    # Each round starts on a quiet machine: the pool refilled after the last claim, and a pause
    # for the deletes of the last round to finish their work.
    until [ -n "$(ready_pool_ports)" ]; do sleep 0.05; done
    sleep 1
    floor_once "$i" "$((16400 + $i % 90))" >> "$WORK/floor.txt"
    read -r _ ms < <(create_once "$API_TEMPLATE" "tpl-$i")
    echo "$ms" >> "$WORK/template.txt"
    delete_instance "$API_TEMPLATE" "tpl-$i"
    sleep 1
    pooled=" $(ready_pool_ports | tr '\n' ' ')"
    read -r port ms < <(create_once "$API_POOL" "pool-$i")
    echo "$ms" >> "$WORK/pool.txt"
    [[ "$pooled" == *" $port "* ]] || fallbacks=$((fallbacks + 1))
    delete_instance "$API_POOL" "pool-$i"
done
read -r FLOOR FLOOR_P90 < <(stats < "$WORK/floor.txt")
read -r TEMPLATE TEMPLATE_P90 < <(stats < "$WORK/template.txt")
read -r POOL POOL_P90 < <(stats < "$WORK/pool.txt")
echo "floor samples (ms):    $(tr '\n' ' ' < "$WORK/floor.txt")"
echo "template samples (ms): $(tr '\n' ' ' < "$WORK/template.txt")"
echo "pool samples (ms):     $(tr '\n' ' ' < "$WORK/pool.txt")"
echo "pool creates that found no ready cluster (fell back to a copy): $fallbacks"
printf "%-10s %8s %8s %8s\n" "" "median" "p90" "ratio"
printf "%-10s %6d ms %6d ms %8s\n" floor "$FLOOR" "$FLOOR_P90" "1.00"
awk -v m="$TEMPLATE" -v p="$TEMPLATE_P90" -v f="$FLOOR" 'BEGIN { printf "%-10s %6d ms %6d ms %8.2f  (target <= 0.25)\n", "template", m, p, m / f }'
awk -v m="$POOL" -v p="$POOL_P90" -v f="$FLOOR" 'BEGIN { printf "%-10s %6d ms %6d ms %8.2f  (target <= 0.10)\n", "pool", m, p, m / f }'

echo "creating $CONCURRENT instances at once (template server)" >&2
mkdir -p "$WORK/many"
start=$(now_ms)
waiting=()
for i in $(seq 1 "$CONCURRENT"); do
    curl -sf -X POST "http://127.0.0.1:$API_TEMPLATE/instances" -H 'Content-Type: application/json' \
        -d "{\"name\":\"many-$i\"}" > "$WORK/many/$i.json" &
    waiting+=($!)
done
# (a bare `wait` would wait for the servers too)
for pid in "${waiting[@]}"; do wait "$pid"; done
waiting=()
for i in $(seq 1 "$CONCURRENT"); do
    # Every 100 ms: fifty pollers must not starve the creates they time.
    wait_succeeded "$API_TEMPLATE" "$(field "$(cat "$WORK/many/$i.json")" id)" 0.1 &
    waiting+=($!)
done
for pid in "${waiting[@]}"; do wait "$pid"; done
end=$(now_ms)
ELAPSED=$((end - start))
# Distinct ports, and data of each instance's own: a row written in each, read back alone.
ports=()
for i in $(seq 1 "$CONCURRENT"); do
    body="$(curl -sf "http://127.0.0.1:$API_TEMPLATE/instances/many-$i")"
    [ "$(field "$body" state)" = running ] || { echo "many-$i is not running: $body" >&2; exit 1; }
    port="$(number "$body" port)"
    password="$(field "$(cat "$WORK/many/$i.json")" password)"
    ports+=("$port")
    PGPASSWORD="$password" psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -qAtc \
        "CREATE TABLE mine (who text); INSERT INTO mine VALUES ('many-$i')"
    echo "$port $password many-$i" >> "$WORK/many/credentials"
done
distinct=$(printf '%s\n' "${ports[@]}" | sort -u | wc -l)
[ "$distinct" -eq "$CONCURRENT" ] || { echo "only $distinct distinct ports for $CONCURRENT instances" >&2; exit 1; }
while read -r port password name; do
    seen="$(PGPASSWORD="$password" psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -qAtc "SELECT string_agg(who, ',') FROM mine")"
    [ "$seen" = "$name" ] || { echo "$name on $port holds '$seen'" >&2; exit 1; }
done < "$WORK/many/credentials"
echo "$CONCURRENT concurrent creates: all running, $distinct distinct ports, each with only its own data"
awk -v n="$CONCURRENT" -v e="$ELAPSED" -v f="$FLOOR" 'BEGIN {
    rate = n / (e / 1000); floor_rate = 1000 / f
    printf "wall time %d ms: %.2f creates/s; the floor one at a time: %.2f/s; ratio %.2f\n", e, rate, floor_rate, rate / floor_rate }'
