# shellcheck shell=bash
# Shared by the create benchmarks (sourced, not run): the floor they are measured against, the
# same work done by hand with the same PostgreSQL binaries, and helpers to time and read answers.
# The sourcing script sets PG_BIN (the binaries' folder), WORK (a scratch folder) and PASSWORD.

# Runs a command as postgres when root (initdb refuses root), else as this user.
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

now_ms() { date +%s%3N; }

# floor_once I PORT: initdb (scram-sha-256, password from a file), pg_ctl start, then psql until
# the first `SELECT version()` with the password succeeds; prints the milliseconds it took.
floor_once() {
    local dir="$WORK/floor-$1" port="$2"
    mkdir -p "$dir" && chmod 755 "$dir"
    [ "$(id -u)" -eq 0 ] && chown postgres "$dir"
    local start end
    start=$(now_ms)
    (umask 077; printf '%s' "$PASSWORD" > "$dir/pw")
    [ "$(id -u)" -eq 0 ] && chown postgres "$dir/pw"
    as_pg "$PG_BIN/initdb" -D "$dir/data" -U postgres -E UTF8 --locale=C --no-instructions \
        --auth=scram-sha-256 --pwfile="$dir/pw" >/dev/null
    rm -f "$dir/pw"
    printf "listen_addresses = '127.0.0.1'\nport = %d\nunix_socket_directories = ''\n" "$port" >> "$dir/data/postgresql.conf"
    as_pg "$PG_BIN/pg_ctl" start -W -D "$dir/data" -l "$dir/log" >/dev/null
    until PGPASSWORD="$PASSWORD" psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -Atc 'SELECT version()' >/dev/null 2>&1; do
        sleep 0.01
    done
    end=$(now_ms)
    as_pg "$PG_BIN/pg_ctl" stop -D "$dir/data" -m immediate >/dev/null
    rm -rf "$dir"
    echo $((end - start))
}

# The value of a top-level-unique "key":"value" string field in a JSON body (no process spawn,
# so polling adds no measurement overhead).
field() {
    local body="$1" key="$2"
    [[ "$body" =~ \"$key\":\"([^\"]*)\" ]] && printf '%s' "${BASH_REMATCH[1]}"
}
