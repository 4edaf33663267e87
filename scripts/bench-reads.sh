#!/usr/bin/env bash
# Benchmark: do the API's reads scale with history? Requests/s and p99 of the hot GETs, each as a
# ratio to /healthz measured in the same run, against a control plane holding 100,000 instance rows.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: scripts/bench-reads.sh [-d SECONDS] [-r ROUNDS] [-n ROWS] [-B] [-q] [-h]

Builds the release binary (cargo build --release -p toygres-server --bin toygres), starts
`toygres serve` on a temporary data dir (embedded control plane, local backend), creates one real
instance through the API (`bench-live`, running), then loads ROWS instance rows of history
straight into the embedded control-plane database with psql (schema `toygres`, over its unix
socket): mostly deleted (earlier incarnations of re-used names) and failed, one create operation
each and a delete for each deleted one, all finished long ago. Then it runs wrk (100 connections,
2 threads, SECONDS each) ROUNDS times over, alternating:

  healthz        GET /healthz                     (the baseline: no database)
  name-deleted   GET /instances/db-6              (deleted three times: its latest row is deleted)
  name-live      GET /instances/bench-live        (running, the oldest row of all)
  page-100       GET /instances?limit=100         (100 failed instances, the first page)
  operation      GET /operations/{id}             (a finished operation of the history)

and reports, per endpoint, the median over rounds of requests/s, of p99 latency, of the ratio
to /healthz in the same round and of the CPU time per request of the server process and of the
control-plane PostgreSQL (wrk itself takes the rest of the 2 cores), against the targets: by name >= 0.3x /healthz with p99 < 10 ms,
a 100-item page >= 5,000 requests/s. Any non-2xx answer or socket error fails the run.

  -d SECONDS  duration of each wrk run (default 10)
  -r ROUNDS   rounds of the five runs (default 3)
  -n ROWS     instance rows to load (default 100000)
  -B          do not build; use TOYGRES_BIN (default: the release binary under the target dir),
              e.g. a binary built from an older commit, to compare before and after
  -q          also measure the by-name lookup and the page's query alone with pgbench (prepared,
              10 clients, the SQL of toygres-activities/src/metadata/reads.rs) on the same database
  -h          this help

Needs: wrk (Debian: apt-get install -y wrk), psql and pgbench (postgresql-client), curl. It
installs nothing. The machine's load average is printed before and after: read results from a
quiet machine only.
EOF
}

DURATION=10
ROUNDS=3
ROWS=100000
BUILD=1
PGBENCH=0
while getopts "d:r:n:Bqh" opt; do
    case "$opt" in
        d) DURATION="$OPTARG" ;;
        r) ROUNDS="$OPTARG" ;;
        n) ROWS="$OPTARG" ;;
        B) BUILD=0 ;;
        q) PGBENCH=1 ;;
        h) usage; exit 0 ;;
        *) usage >&2; exit 2 ;;
    esac
done
[[ "$DURATION" =~ ^[0-9]+$ && "$ROUNDS" =~ ^[0-9]+$ && "$ROWS" =~ ^[0-9]+$ ]] || { usage >&2; exit 2; }
[ "$ROWS" -ge 1000 ] || { echo "-n: at least 1000 rows" >&2; exit 2; }

for tool in wrk psql curl; do
    command -v "$tool" >/dev/null || { echo "missing $tool (Debian: apt-get install -y wrk postgresql-client curl)" >&2; exit 2; }
done
if [ "$PGBENCH" -eq 1 ]; then
    command -v pgbench >/dev/null || { echo "missing pgbench (Debian: apt-get install -y postgresql-client)" >&2; exit 2; }
fi

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

WORK="$(mktemp -d /tmp/toygres-bench-reads.XXXXXX)"
chmod 755 "$WORK"
PORT_API="${TOYGRES_BENCH_PORT:-18791}"
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
    for data in "$WORK"/instances/*/data "$WORK/controlplane/data"; do
        [ -d "$data" ] || continue
        if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$pg_ctl" stop -D "$data" -m immediate >/dev/null 2>&1 || true
        else "$pg_ctl" stop -D "$data" -m immediate >/dev/null 2>&1 || true; fi
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

echo "load before: $(uptime)" >&2
echo "starting $BIN serve on $BASE (data dir $WORK)" >&2
TOYGRES_LISTEN="127.0.0.1:$PORT_API" TOYGRES_DATA_DIR="$WORK" TOYGRES_PORT_RANGE="16620-16630" \
    RUST_LOG=warn "$BIN" serve >>"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 300); do
    curl -sf "$BASE/readyz" >/dev/null 2>&1 && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; exit 1; }
    sleep 0.2
done
curl -sf "$BASE/readyz" >/dev/null || { echo "the server did not get ready" >&2; cat "$WORK/server.log" >&2; exit 1; }

echo "creating one real instance, bench-live" >&2
OP=$(curl -sf -X POST "$BASE/instances" -H 'Content-Type: application/json' -d '{"name":"bench-live"}' \
    | grep -o '"operation":{"id":"[^"]*"' | cut -d'"' -f6)
[ -n "$OP" ] || { echo "the create was refused" >&2; exit 1; }
for _ in $(seq 1 600); do
    status=$(curl -sf "$BASE/operations/$OP" | grep -o '"status":"[a-z]*"' | head -1 | cut -d'"' -f4)
    [ "$status" = succeeded ] && break
    [ "$status" = failed ] && { echo "creating bench-live failed" >&2; exit 1; }
    sleep 0.2
done
[ "$status" = succeeded ] || { echo "bench-live did not get running" >&2; exit 1; }

# History: NAMES = 40% of ROWS names; the i-th row loaded is an incarnation of
# `db-<(i-1) % NAMES + 1>`. Rows 1..(ROWS - NAMES) are deleted, and each name's one row after them
# is its latest incarnation: 60% failed, 40% deleted (no fake running or unfinished rows: the reconciler would
# start monitors or workflows for them). Every operation is finished and its workflow history
# pruned, as the server's retention leaves old ones.
NAMES=$((ROWS * 2 / 5))
HISTORY=$((ROWS - NAMES))
echo "loading $ROWS instance rows ($HISTORY earlier incarnations, $NAMES names) and their operations" >&2
psql_cp <<SQL
SET search_path = toygres;
BEGIN;
INSERT INTO instances (uid, name, state, backend, postgres_version, storage_gb, expose, host, port,
    sealed_password, error_code, error_message, last_operation_id, created_at, updated_at, deleted_at)
SELECT 'uid_bench_' || g.i, 'db-' || g.n, g.state, live.backend, live.postgres_version,
    live.storage_gb, live.expose, live.host, live.port, live.sealed_password,
    CASE WHEN g.state = 'failed' THEN 'deploy_failed' END,
    CASE WHEN g.state = 'failed' THEN 'the deploy failed: no space left on device' END,
    'op_' || substr(md5(CASE WHEN g.state = 'deleted' THEN 'd' ELSE 'c' END || g.i), 1, 24),
    g.at, g.at, CASE WHEN g.state = 'deleted' THEN g.at + interval '1 hour' END
FROM (
    SELECT i, ((i - 1) % $NAMES) + 1 AS n,
        CASE WHEN i <= $HISTORY OR i % 5 IN (0, 1) THEN 'deleted' ELSE 'failed' END AS state,
        now() - interval '1 year' + i * interval '1 minute' AS at
    FROM generate_series(1, $ROWS) AS i
) AS g, (SELECT * FROM instances WHERE name = 'bench-live') AS live
ORDER BY g.i;

INSERT INTO operations (id, kind, instance_id, instance_name, status, step, progress_done,
    progress_total, error_code, error_message, error_retryable, created_at, started_at, finished_at,
    history_pruned_at)
SELECT 'op_' || substr(md5('c' || substr(uid, 11)), 1, 24), 'create', id, name,
    CASE WHEN state = 'failed' THEN 'failed' ELSE 'succeeded' END, 'complete', 5, 5,
    error_code, error_message, CASE WHEN state = 'failed' THEN false END,
    created_at, created_at, created_at + interval '2 seconds', created_at + interval '2 days'
FROM instances WHERE uid LIKE 'uid_bench_%' ORDER BY id;

INSERT INTO operations (id, kind, instance_id, instance_name, status, step, progress_done,
    progress_total, created_at, started_at, finished_at, history_pruned_at)
SELECT 'op_' || substr(md5('d' || substr(uid, 11)), 1, 24), 'delete', id, name, 'succeeded',
    'mark_deleted', 5, 5, deleted_at - interval '1 minute', deleted_at - interval '1 minute',
    deleted_at, deleted_at + interval '2 days'
FROM instances WHERE uid LIKE 'uid_bench_%' AND state = 'deleted' ORDER BY id;
COMMIT;
VACUUM ANALYZE instances;
VACUUM ANALYZE operations;
SQL
echo "rows by state: $(psql_cp -c "SELECT string_agg(state || '=' || n, ' ' ORDER BY state) FROM (SELECT state, count(*) AS n FROM toygres.instances GROUP BY state) AS s")" >&2

# A finished operation from the middle of the history.
OPERATION_ID=$(psql_cp -c "SELECT id FROM toygres.operations WHERE kind = 'create' AND instance_name = 'db-$((NAMES / 2))' ORDER BY created_at LIMIT 1")
DELETED_NAME=db-6
[ "$(psql_cp -c "SELECT state FROM toygres.instances WHERE name = '$DELETED_NAME' ORDER BY id DESC LIMIT 1")" = deleted ] \
    || { echo "$DELETED_NAME should be deleted" >&2; exit 1; }

ENDPOINTS=(healthz name-deleted name-live page-100 operation)
declare -A PATHS=(
    [healthz]="/healthz"
    [name-deleted]="/instances/$DELETED_NAME"
    [name-live]="/instances/bench-live"
    [page-100]="/instances?limit=100"
    [operation]="/operations/$OPERATION_ID"
)
for endpoint in "${ENDPOINTS[@]}"; do
    code=$(curl -s -o /dev/null -w '%{http_code}' "$BASE${PATHS[$endpoint]}")
    [ "$code" = 200 ] || { echo "$endpoint: GET ${PATHS[$endpoint]} answered $code" >&2; exit 1; }
done
items=$(curl -sf "$BASE/instances?limit=100" | grep -o '"name":"' | wc -l)
[ "$items" -eq 100 ] || { echo "page-100 returned $items items" >&2; exit 1; }
echo "page-100 answers $(curl -sf "$BASE/instances?limit=100" | wc -c) bytes, name-deleted $(curl -sf "$BASE${PATHS[name-deleted]}" | wc -c)" >&2

TICKS="$(getconf CLK_TCK)"
# CPU ticks of a process (all its threads).
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
# CPU ticks of the control-plane PostgreSQL: the postmaster with the children it reaped, and its
# live children (the backends of the server's pools, autovacuum, ...).
controlplane_ticks() {
    local pm total pid
    pm="$(head -1 "$WORK/controlplane/data/postmaster.pid")"
    total=$(awk '{ print $14 + $15 + $16 + $17 }' "/proc/$pm/stat")
    for pid in $(pgrep -P "$pm"); do total=$((total + $(cpu_ticks "$pid"))); done
    echo "$total"
}

# One wrk run: prints "requests_per_second p99_ms server_cpu_us_per_request pg_cpu_us_per_request".
run_wrk() {
    local url="$1" seconds="$2" out s0 c0 s1 c1
    s0=$(cpu_ticks "$SERVER_PID"); c0=$(controlplane_ticks)
    out=$(wrk -t2 -c100 -d"${seconds}s" --latency "$url")
    s1=$(cpu_ticks "$SERVER_PID"); c1=$(controlplane_ticks)
    if grep -q "Non-2xx\|Socket errors" <<<"$out"; then
        echo "wrk against $url: errors:" >&2
        echo "$out" >&2
        exit 1
    fi
    awk -v s=$((s1 - s0)) -v c=$((c1 - c0)) -v k="$TICKS" '
        /requests in/ { total = $1 }
        /^Requests\/sec:/ { rps = $2 }
        $1 == "99%" {
            v = $2
            if (v ~ /us$/) { sub(/us$/, "", v); p99 = v / 1000 }
            else if (v ~ /ms$/) { sub(/ms$/, "", v); p99 = v }
            else if (v ~ /m$/) { sub(/m$/, "", v); p99 = v * 60000 }
            else if (v ~ /s$/) { sub(/s$/, "", v); p99 = v * 1000 }
        }
        END { printf "%s %.3f %.1f %.1f\n", rps, p99, s / k * 1e6 / total, c / k * 1e6 / total }' <<<"$out"
}

echo "warming up (2 s each)" >&2
for endpoint in "${ENDPOINTS[@]}"; do run_wrk "$BASE${PATHS[$endpoint]}" 2 >/dev/null; done

RESULTS="$WORK/results"
: >"$RESULTS"
for round in $(seq 1 "$ROUNDS"); do
    for endpoint in "${ENDPOINTS[@]}"; do
        read -r rps p99 server_us pg_us <<<"$(run_wrk "$BASE${PATHS[$endpoint]}" "$DURATION")"
        echo "round $round $endpoint: $rps requests/s, p99 $p99 ms, CPU per request: server $server_us us, control-plane PostgreSQL $pg_us us" >&2
        echo "$round $endpoint $rps $p99 $server_us $pg_us" >>"$RESULTS"
    done
done

PGBENCH_LINES=""
if [ "$PGBENCH" -eq 1 ]; then
    # The SQL of reads.rs (LATEST_INSTANCE, LIST_LIVE_INSTANCES), prepared, as the server sends it
    # (the first page's cursor name is 'a' here, as pgbench takes no empty value: before every name).
    echo 'SELECT * FROM instances WHERE name = :name ORDER BY id DESC LIMIT 1;' >"$WORK/by-name.sql"
    echo "SELECT * FROM instances WHERE state <> 'deleted' AND (name, id) > (:after, 0) ORDER BY name, id LIMIT 101;" >"$WORK/page.sql"
    for query in by-name page; do
        tps=$(PGOPTIONS='-c search_path=toygres' pgbench -h "$SOCKET_DIR" -U postgres -n -M prepared -c 10 -j 2 \
            -T "$DURATION" -D name="$DELETED_NAME" -D after=a -f "$WORK/$query.sql" postgres 2>"$WORK/pgbench.err" \
            | awk '/^tps/ { print $3 }') || true
        [ -n "$tps" ] || { echo "pgbench failed:" >&2; cat "$WORK/pgbench.err" >&2; exit 1; }
        PGBENCH_LINES+="$(printf '%-14s %10.0f queries/s (pgbench, prepared, 10 clients)' "$query-sql" "$tps")"$'\n'
    done
fi
echo "load after: $(uptime)" >&2

awk -v rows="$ROWS" -v rounds="$ROUNDS" -v seconds="$DURATION" '
    function median(list, n,   i, j, t, a) {
        n = split(list, a, " ")
        for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
        return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    { rps[$2] = rps[$2] " " $3; p99[$2] = p99[$2] " " $4; at[$1, $2] = $3
      srv[$2] = srv[$2] " " $5; pg[$2] = pg[$2] " " $6 }
    END {
        split("healthz name-deleted name-live page-100 operation", names, " ")
        for (r = 1; r <= rounds; r++) for (k in names) { e = names[k]; ratio[e] = ratio[e] " " at[r, e] / at[r, "healthz"] }
        printf "%d instance rows, wrk -t2 -c100, %d s x %d rounds (medians)\n", rows, seconds, rounds
        printf "%-14s %12s %10s %12s %12s %12s  %s\n", "endpoint", "requests/s", "p99 ms", "x /healthz", "server us/r", "pg us/r", "target"
        miss = 0
        for (k = 1; k <= 5; k++) {
            e = names[k]; m = median(rps[e]); p = median(p99[e]); q = median(ratio[e]); target = ""
            if (e ~ /^name-/) { ok = (q >= 0.3 && p < 10); target = ">= 0.3x, p99 < 10 ms: " (ok ? "met" : "MISSED") }
            else if (e == "page-100") { ok = (m >= 5000); target = ">= 5,000/s: " (ok ? "met" : "MISSED") }
            else ok = 1
            if (!ok) miss = 1
            printf "%-14s %12.0f %10.2f %12.3f %12.0f %12.0f  %s\n", e, m, p, q, median(srv[e]), median(pg[e]), target
        }
        exit miss ? 3 : 0
    }' "$RESULTS" && status=0 || status=$?
printf '%s' "$PGBENCH_LINES"
[ "$status" -eq 0 ] || [ "$status" -eq 3 ] || exit "$status"
[ "$status" -eq 0 ] || echo "a target was missed" >&2
exit "$status"
