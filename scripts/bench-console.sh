#!/usr/bin/env bash
# Benchmark: how long does the console's instance list take on the server with 1,000 instances,
# against the REST API listing the same 1,000 instances as JSON (the baseline), measured in the
# same run, request after request (one at a time: the latency a user waits for).
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: scripts/bench-console.sh [-n REQUESTS] [-r ROUNDS] [-B] [-h]

Builds the release binary (cargo build --release -p toygres-server --bin toygres), starts
`toygres serve` on a temporary data dir (embedded control plane, local backend, no tokens),
loads 1,000 live instance rows (state failed, with endpoints and errors, so that every column
renders and no workflow or monitor starts for them) and their create operations straight into
the embedded control-plane database with psql, then, ROUNDS times, alternating, sends REQUESTS
sequential requests (curl, one connection each, on loopback) to:

  api-1000       GET /instances?limit=500, then the next page with its cursor (the baseline: the
                 same 1,000 instances as the API's JSON; its time is the sum of both pages)
  console-1000   GET /console/instances?limit=1000 (the console's page with all 1,000 rows)
  console-50     GET /console/instances (the default page of 50)
  healthz        GET /healthz (no database, no rendering: the floor)

and reports per endpoint the median over rounds of the median and p95 time in milliseconds
(curl's time_total), the ratio of console-1000 to api-1000 in the same round, and the sizes of
the answers. Target: console-1000 under 200 ms. Any answer but 200 fails the run.

  -n REQUESTS  requests per endpoint per round (default 50)
  -r ROUNDS    rounds (default 3)
  -B           do not build; use TOYGRES_BIN (default: the release binary under the target dir)
  -h           this help

Needs: psql (postgresql-client), curl, python3. Installs nothing. The machine's load average is
printed before and after: read results from a quiet machine only.
EOF
}

REQUESTS=50
ROUNDS=3
BUILD=1
while getopts "n:r:Bh" opt; do
    case "$opt" in
        n) REQUESTS="$OPTARG" ;;
        r) ROUNDS="$OPTARG" ;;
        B) BUILD=0 ;;
        h) usage; exit 0 ;;
        *) usage >&2; exit 2 ;;
    esac
done
[[ "$REQUESTS" =~ ^[0-9]+$ && "$ROUNDS" =~ ^[0-9]+$ && "$REQUESTS" -ge 5 && "$ROUNDS" -ge 1 ]] || { usage >&2; exit 2; }
for tool in psql curl python3; do
    command -v "$tool" >/dev/null || { echo "missing $tool (Debian: apt-get install -y postgresql-client curl python3)" >&2; exit 2; }
done

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
if [ "$BUILD" -eq 1 ]; then
    echo "building the release binary" >&2
    (cd "$ROOT" && cargo build --release -p toygres-server --bin toygres) >&2
    BIN="$TARGET_DIR/release/toygres"
else
    BIN="${TOYGRES_BIN:-$TARGET_DIR/release/toygres}"
fi
[ -x "$BIN" ] || { echo "missing $BIN" >&2; exit 2; }

WORK="$(mktemp -d /tmp/toygres-bench-console.XXXXXX)"
chmod 755 "$WORK"
PORT_API="${TOYGRES_BENCH_PORT:-18792}"
BASE="http://127.0.0.1:$PORT_API"
SOCKET_DIR="$WORK/controlplane/run"
SERVER_PID=""

psql_cp() { psql -h "$SOCKET_DIR" -U postgres -d postgres -v ON_ERROR_STOP=1 -Atq "$@"; }

cleanup() {
    if [ -n "$SERVER_PID" ]; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    local pg_ctl; pg_ctl="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)/pg_ctl"
    local data="$WORK/controlplane/data"
    if [ -d "$data" ]; then
        if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$pg_ctl" stop -D "$data" -m immediate >/dev/null 2>&1 || true
        else "$pg_ctl" stop -D "$data" -m immediate >/dev/null 2>&1 || true; fi
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

echo "load before: $(uptime)" >&2
echo "starting $BIN serve on $BASE (data dir $WORK)" >&2
TOYGRES_LISTEN="127.0.0.1:$PORT_API" TOYGRES_DATA_DIR="$WORK" TOYGRES_PORT_RANGE="16640-16650" \
    RUST_LOG=warn "$BIN" serve >>"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 300); do
    curl -sf "$BASE/readyz" >/dev/null 2>&1 && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; exit 1; }
    sleep 0.2
done
curl -sf "$BASE/readyz" >/dev/null || { echo "the server did not get ready" >&2; cat "$WORK/server.log" >&2; exit 1; }

echo "loading 1,000 instance rows and their create operations" >&2
psql_cp <<'SQL'
SET search_path = toygres;
BEGIN;
INSERT INTO instances (uid, name, state, backend, postgres_version, storage_gb, expose, host, port,
    sealed_password, error_code, error_message, last_operation_id, created_at, updated_at)
SELECT 'uid_bench_' || i, 'db-' || lpad(i::text, 4, '0'), 'failed', 'local', '15', 10 + i % 90,
    'internal', '127.0.0.1', 20000 + i, 'sealed:v1:not-a-real-password',
    'connection_failed', 'the instance did not answer SELECT 1 in time',
    'op_' || substr(md5('c' || i), 1, 24), now() - interval '1 day' + i * interval '1 second',
    now() - interval '1 day' + i * interval '1 second'
FROM generate_series(1, 1000) AS i;
INSERT INTO operations (id, kind, instance_id, instance_name, status, step, progress_done,
    progress_total, error_code, error_message, error_retryable, created_at, started_at, finished_at)
SELECT last_operation_id, 'create', id, name, 'failed', 'test_connection', 4, 6, error_code,
    error_message, true, created_at, created_at, created_at + interval '30 seconds'
FROM instances WHERE uid LIKE 'uid_bench_%';
COMMIT;
VACUUM ANALYZE instances;
VACUUM ANALYZE operations;
SQL

rows=$(curl -sf "$BASE/console/instances?limit=1000" | grep -o '<tr>' | wc -l)
[ "$rows" -eq 1001 ] || { echo "console-1000 rendered $rows table rows (expected 1000 and the header)" >&2; exit 1; }
CURSOR=$(curl -sf "$BASE/instances?limit=500" | python3 -c 'import json,sys; print(json.load(sys.stdin)["next_cursor"])')
[ -n "$CURSOR" ] && [ "$CURSOR" != None ] || { echo "the API's first page has no next_cursor" >&2; exit 1; }
second=$(curl -sf "$BASE/instances?limit=500&cursor=$CURSOR" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(len(d["items"]), d["next_cursor"])')
[ "$second" = "500 None" ] || { echo "the API's second page: $second" >&2; exit 1; }
echo "sizes: console-1000 $(curl -sf "$BASE/console/instances?limit=1000" | wc -c) bytes," \
    "api-1000 $(( $(curl -sf "$BASE/instances?limit=500" | wc -c) + $(curl -sf "$BASE/instances?limit=500&cursor=$CURSOR" | wc -c) )) bytes," \
    "console-50 $(curl -sf "$BASE/console/instances" | wc -c) bytes" >&2

# One timing in ms: the time_total of each URL given, summed (api-1000 is two requests).
timed() {
    local total=0 url out code seconds
    for url in "$@"; do
        out=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' "$url")
        code=${out%% *}; seconds=${out#* }
        [ "$code" = 200 ] || { echo "GET $url answered $code" >&2; exit 1; }
        total=$(python3 -c "print($total + $seconds * 1000)")
    done
    echo "$total"
}

RESULTS="$WORK/results.txt"
: > "$RESULTS"
ENDPOINTS=(api-1000 console-1000 console-50 healthz)
for round in $(seq 1 "$ROUNDS"); do
    for endpoint in "${ENDPOINTS[@]}"; do
        case "$endpoint" in
            api-1000) urls=("$BASE/instances?limit=500" "$BASE/instances?limit=500&cursor=$CURSOR") ;;
            console-1000) urls=("$BASE/console/instances?limit=1000") ;;
            console-50) urls=("$BASE/console/instances") ;;
            healthz) urls=("$BASE/healthz") ;;
        esac
        timed "${urls[@]}" >/dev/null   # warm-up
        for _ in $(seq 1 "$REQUESTS"); do
            echo "$round $endpoint $(timed "${urls[@]}")" >>"$RESULTS"
        done
    done
    echo "round $round done" >&2
done
echo "load after: $(uptime)" >&2

python3 - "$RESULTS" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
by = {}
for round_, endpoint, ms in rows:
    by.setdefault(endpoint, {}).setdefault(int(round_), []).append(float(ms))
def p95(values):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(0.95 * (len(values) - 1))))]
print(f"{'endpoint':<14}{'median ms':>11}{'p95 ms':>9}{'x api-1000':>12}")
for endpoint in ["healthz", "api-1000", "console-50", "console-1000"]:
    rounds = by[endpoint]
    medians = [statistics.median(v) for v in rounds.values()]
    p95s = [p95(v) for v in rounds.values()]
    ratios = [statistics.median(rounds[r]) / statistics.median(by["api-1000"][r]) for r in rounds]
    print(f"{endpoint:<14}{statistics.median(medians):>11.1f}{statistics.median(p95s):>9.1f}{statistics.median(ratios):>12.2f}")
console = statistics.median([statistics.median(v) for v in by["console-1000"].values()])
print(f"target: console-1000 under 200 ms: {'met' if console < 200 else 'NOT met'} ({console:.1f} ms median)")
PY
