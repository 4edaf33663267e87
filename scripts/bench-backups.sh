#!/usr/bin/env bash
# Benchmark: a full backup and a restore of an instance with about 1 GB of data through Toygres,
# against the same pgBackRest commands run by hand on the same data, in the same run.
#
# Usage: scripts/bench-backups.sh [SCALE] [RUNS]   (pgbench scale, default 64 = about 1 GB;
#        runs, default 2; needs pgbackrest, pgbench and a release build:
#        cargo build --release -p toygres-server, or TOYGRES_BIN=<binary>)
#
# Toygres: POST /instances/{name}/backups -> operation succeeded; POST /instances with
# restore_from {backup_id} -> operation succeeded (a new instance that accepts connections).
# By hand: a cluster made by hand with the same data (pgbench -i at the same scale), archiving
# with the same pgBackRest options Toygres writes (its [global] section, repository moved);
# `pgbackrest backup --type=full`; `pgbackrest restore --set=<label> --type=immediate
# --target-action=promote` into an empty folder, then pg_ctl start until psql connects.
# Prints the medians and the ratios Toygres/by hand (target <= 1.10).
set -euo pipefail

SCALE="${1:-64}"
RUNS="${2:-2}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${TOYGRES_BIN:-$ROOT/target/release/toygres}"
PG_BIN="$(pg_config --bindir 2>/dev/null || ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
WORK="$(mktemp -d /tmp/toygres-bench-backups.XXXXXX)"
chmod 755 "$WORK"
PORT_API=18781
HAND_PORT=16390
PASSWORD="bench-password-$$-$RANDOM"

[ -x "$BIN" ] || { echo "missing $BIN: run cargo build --release -p toygres-server" >&2; exit 2; }
command -v pgbackrest >/dev/null || { echo "needs pgbackrest (apt-get install pgbackrest)" >&2; exit 2; }
command -v pgbench >/dev/null || PGBENCH="$PG_BIN/pgbench"
PGBENCH="${PGBENCH:-pgbench}"

as_pg() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

now_ms() { date +%s%3N; }

median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print int((a[NR/2]+a[NR/2+1])/2)}'; }

cleanup() {
    [ -n "${SERVER_PID:-}" ] && kill -TERM "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true
    for data in "$WORK"/hand/data "$WORK"/hand/restore-*; do
        [ -d "$data" ] && as_pg "$PG_BIN/pg_ctl" stop -D "$data" -m immediate >/dev/null 2>&1 || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

api() { curl -sf "$@"; }
json() { python3 -c 'import json,sys; v=json.load(sys.stdin)
for k in sys.argv[1].split("."): v=v[k] if not k.isdigit() else v[int(k)]
print(v if v is not None else "")' "$1"; }

wait_operation() {
    local op="$1" status
    while :; do
        status=$(api "http://127.0.0.1:$PORT_API/operations/$op" | json status)
        case "$status" in
            succeeded) return 0 ;;
            failed|canceled) echo "operation $op $status: $(api "http://127.0.0.1:$PORT_API/operations/$op")" >&2; exit 1 ;;
        esac
        sleep 0.05
    done
}

# --- Toygres ---------------------------------------------------------------------------------
mkdir -p "$WORK/server"
TOYGRES_LISTEN="127.0.0.1:$PORT_API" TOYGRES_DATA_DIR="$WORK/server" TOYGRES_PORT_RANGE="16600-16699" \
    TOYGRES_BACKUP_CHECK_INTERVAL_SECS=1 RUST_LOG=warn "$BIN" serve >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
until api "http://127.0.0.1:$PORT_API/readyz" >/dev/null 2>&1; do sleep 0.1; done

echo "creating bench-src and loading pgbench scale $SCALE into it" >&2
op=$(api -X POST "http://127.0.0.1:$PORT_API/instances" -H 'Content-Type: application/json' \
    -d "{\"name\":\"bench-src\",\"password\":\"$PASSWORD\"}" | json operation.id)
wait_operation "$op"
SRC_PORT=$(api "http://127.0.0.1:$PORT_API/instances/bench-src" | json port)
until [ -n "$(api "http://127.0.0.1:$PORT_API/instances/bench-src" | json backup.last_backup_at)" ]; do sleep 0.5; done
PGPASSWORD="$PASSWORD" "$PGBENCH" -i -q -s "$SCALE" -h 127.0.0.1 -p "$SRC_PORT" -U postgres postgres >/dev/null 2>&1
SIZE=$(PGPASSWORD="$PASSWORD" psql -h 127.0.0.1 -p "$SRC_PORT" -U postgres -d postgres -Atc "SELECT pg_size_pretty(pg_database_size('postgres'))")

# --- By hand: the same data, the same pgBackRest options ------------------------------------
echo "making the cluster by hand and loading the same data" >&2
HAND="$WORK/hand"
mkdir -p "$HAND/repo" "$HAND/work"
chmod 755 "$HAND"
[ "$(id -u)" -eq 0 ] && chown -R postgres "$HAND"
# Toygres's [global] section, with the repository and work folders moved to this cluster's.
CONF_SRC=$(ls "$WORK"/server/instances/bench-src/pgbackrest.conf)
{
    sed -n '/^\[global\]/,/^\[/p' "$CONF_SRC" | grep -v '^\[' \
        | grep -v -E '^(repo1-path|lock-path|log-path|spool-path)='
} > "$HAND/global.conf"
{
    echo "[global]"
    cat "$HAND/global.conf"
    echo "repo1-path=$HAND/repo"
    echo "lock-path=$HAND/work/lock"
    echo "log-path=$HAND/work/log"
    echo "spool-path=$HAND/work/spool"
    echo "[hand]"
    echo "pg1-path=$HAND/data"
    echo "pg1-socket-path=$HAND"
    echo "pg1-port=$HAND_PORT"
} > "$HAND/pgbackrest.conf"
mkdir -p "$HAND/work/lock" "$HAND/work/log" "$HAND/work/spool"
[ "$(id -u)" -eq 0 ] && chown -R postgres "$HAND"
as_pg "$PG_BIN/initdb" -D "$HAND/data" -U postgres -E UTF8 --locale=C --no-instructions --auth=trust >/dev/null
cat >> "$HAND/data/postgresql.conf" <<CONF
listen_addresses = ''
port = $HAND_PORT
unix_socket_directories = '$HAND'
archive_mode = on
archive_command = 'pgbackrest --config=$HAND/pgbackrest.conf --stanza=hand archive-push %p'
archive_timeout = 60
CONF
as_pg "$PG_BIN/pg_ctl" start -W -D "$HAND/data" -l "$HAND/postgres.log" >/dev/null
until as_pg psql -h "$HAND" -p "$HAND_PORT" -U postgres -d postgres -Atc 'SELECT 1' >/dev/null 2>&1; do sleep 0.05; done
as_pg pgbackrest --config="$HAND/pgbackrest.conf" --stanza=hand stanza-create >/dev/null
as_pg "$PGBENCH" -i -q -s "$SCALE" -h "$HAND" -p "$HAND_PORT" -U postgres postgres >/dev/null 2>&1

# --- Measurements, alternated ------------------------------------------------------------------
toygres_backup() {
    local start end op
    start=$(now_ms)
    op=$(api -X POST "http://127.0.0.1:$PORT_API/instances/bench-src/backups" -H 'Content-Type: application/json' \
        -d '{"type":"full"}' | json operation.id)
    wait_operation "$op"
    end=$(now_ms)
    echo $((end - start))
}

hand_backup() {
    local start end
    start=$(now_ms)
    as_pg pgbackrest --config="$HAND/pgbackrest.conf" --stanza=hand --type=full backup >/dev/null
    end=$(now_ms)
    echo $((end - start))
}

toygres_restore() {
    local i="$1" start end op backup
    backup=$(api "http://127.0.0.1:$PORT_API/instances/bench-src/backups" | json items.0.id)
    start=$(now_ms)
    op=$(api -X POST "http://127.0.0.1:$PORT_API/instances" -H 'Content-Type: application/json' \
        -d "{\"name\":\"bench-copy-$i\",\"restore_from\":{\"instance\":\"bench-src\",\"backup_id\":\"$backup\"}}" \
        | json operation.id)
    wait_operation "$op"
    end=$(now_ms)
    op=$(api -X DELETE "http://127.0.0.1:$PORT_API/instances/bench-copy-$i" | json operation.id)
    wait_operation "$op"
    echo $((end - start))
}

hand_restore() {
    local i="$1" start end label target="$HAND/restore-$1" port=$((HAND_PORT + 1))
    label=$(as_pg pgbackrest --config="$HAND/pgbackrest.conf" --stanza=hand --output=json info \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["backup"][-1]["label"])')
    mkdir -p "$target" && chmod 700 "$target"
    [ "$(id -u)" -eq 0 ] && chown postgres "$target"
    start=$(now_ms)
    as_pg pgbackrest --config="$HAND/pgbackrest.conf" --stanza=hand --pg1-path="$target" \
        --set="$label" --type=immediate --target-action=promote restore >/dev/null
    as_pg "$PG_BIN/pg_ctl" start -D "$target" -l "$HAND/restore-$i.log" \
        -o "-c port=$port -c archive_mode=off" >/dev/null
    until as_pg psql -h "$HAND" -p "$port" -U postgres -d postgres -Atc \
        'SELECT NOT pg_is_in_recovery()' 2>/dev/null | grep -q t; do sleep 0.05; done
    end=$(now_ms)
    as_pg "$PG_BIN/pg_ctl" stop -D "$target" -m fast >/dev/null
    rm -rf "$target"
    echo $((end - start))
}

echo "measuring $RUNS x (backup, restore) through Toygres and by hand; database size $SIZE" >&2
for kind in toygres_backup hand_backup toygres_restore hand_restore; do : > "$WORK/$kind.txt"; done
for i in $(seq 1 "$RUNS"); do
    hand_backup >> "$WORK/hand_backup.txt"
    toygres_backup >> "$WORK/toygres_backup.txt"
    toygres_restore "$i" >> "$WORK/toygres_restore.txt"
    hand_restore "$i" >> "$WORK/hand_restore.txt"
done

for kind in hand_backup toygres_backup hand_restore toygres_restore; do
    echo "$kind samples (ms): $(tr '\n' ' ' < "$WORK/$kind.txt")"
done
HB=$(median < "$WORK/hand_backup.txt"); TB=$(median < "$WORK/toygres_backup.txt")
HR=$(median < "$WORK/hand_restore.txt"); TR=$(median < "$WORK/toygres_restore.txt")
echo "database size: $SIZE"
echo "median backup:  by hand ${HB} ms, Toygres ${TB} ms"
echo "median restore: by hand ${HR} ms, Toygres ${TR} ms"
awk -v t="$TB" -v h="$HB" 'BEGIN { printf "ratio backup Toygres/by hand:  %.2f (target <= 1.10)\n", t / h }'
awk -v t="$TR" -v h="$HR" 'BEGIN { printf "ratio restore Toygres/by hand: %.2f (target <= 1.10)\n", t / h }'
