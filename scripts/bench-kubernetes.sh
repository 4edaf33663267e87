#!/usr/bin/env bash
# Benchmark of the Kubernetes backend on a real API server (the testbed of
# scripts/kube-testbed.sh, with the test node agent): how many API requests the server makes per
# create and per delete (from the API server's audit log, as the ServiceAccount toygres), and
# how long each create step takes beyond the node agent's own work (initdb + start of the pod's
# PostgreSQL, which it logs).
#
# Usage: scripts/bench-kubernetes.sh [RUNS]    (default 5; internal instances, then as many public)
# Needs: a release build (cargo build --release -p toygres-server; cargo build --release -p
# toygres-activities --features testkit --bin toygres-node-agent) and the testbed binaries
# (scripts/kube-testbed-build.sh).
set -euo pipefail

RUNS="${1:-5}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${TOYGRES_BIN:-$ROOT/target/release/toygres}"
AGENT="${TOYGRES_NODE_AGENT_BIN:-$ROOT/target/release/toygres-node-agent}"
WORK="$(mktemp -d /tmp/toygres-bench-k8s.XXXXXX)"
chmod 755 "$WORK"
API_PORT="${TOYGRES_BENCH_PORT:-18790}"
API="http://127.0.0.1:$API_PORT"
SA_USER="system:serviceaccount:toygres:toygres"

for b in "$BIN" "$AGENT"; do
    [ -x "$b" ] || { echo "missing $b (see the usage above)" >&2; exit 2; }
done

cleanup() {
    [ -n "${SERVER_PID:-}" ] && kill -TERM "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true
    [ -n "${AGENT_PID:-}" ] && kill -INT "$AGENT_PID" 2>/dev/null && wait "$AGENT_PID" 2>/dev/null || true
    "$ROOT/scripts/kube-testbed.sh" stop "$WORK/cluster" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

"$ROOT/scripts/kube-testbed.sh" start "$WORK/cluster" >/dev/null
AUDIT="$WORK/cluster/audit.log"
KUBECONFIG="$WORK/cluster/admin.kubeconfig" RUST_LOG=info "$AGENT" --root "$WORK/node" \
    --finalizer-hold-ms 2000 >"$WORK/agent.log" 2>&1 &
AGENT_PID=$!
psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE toygres_bench_k8s_$$" >/dev/null
VERSION="$(ls /usr/lib/postgresql | sort -V | tail -1)"
KUBECONFIG="$WORK/cluster/toygres.kubeconfig" TOYGRES_BACKEND=kubernetes TOYGRES_K8S_VERSIONS="$VERSION" \
    KUBERNETES_SERVICE_HOST= TOYGRES_K8S_CONNECT=port-forward \
    DATABASE_URL="postgres://postgres@127.0.0.1:5432/toygres_bench_k8s_$$" \
    TOYGRES_DATA_DIR="$WORK/server" TOYGRES_LISTEN="127.0.0.1:$API_PORT" \
    TOYGRES_HEALTH_INTERVAL_SECS=3600 TOYGRES_DRIFT_INTERVAL_SECS=3600 RUST_LOG=warn \
    "$BIN" serve >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 300); do curl -fs "$API/readyz" >/dev/null 2>&1 && break; sleep 0.1; done

sa_requests() { grep -c "\"username\":\"$SA_USER\"" "$AUDIT" 2>/dev/null || true; }

# Polls an operation every 20 ms; prints "step ms" for each step it saw, then "total ms".
follow() {
    python3 - "$API" "$1" <<'PY'
import json, sys, time, urllib.request
api, op = sys.argv[1], sys.argv[2]
steps, current, since, start = [], None, None, time.monotonic()
while True:
    body = json.load(urllib.request.urlopen(f"{api}/operations/{op}"))
    now = time.monotonic()
    step = body.get("step")
    if step != current:
        if current is not None:
            steps.append((current, now - since))
        current, since = step, now
    if body["status"] in ("succeeded", "failed", "canceled"):
        if current is not None:
            steps.append((current, now - since))
        if body["status"] != "succeeded":
            sys.exit(f"operation {op} {body['status']}: {body.get('error')}")
        break
    time.sleep(0.02)
for step, seconds in steps:
    print(step, round(seconds * 1000))
print("total", round((time.monotonic() - start) * 1000))
PY
}

run() { # name expose
    local name="$1" expose="$2" before after op
    before="$(sa_requests)"
    op="$(curl -fs -XPOST "$API/instances" -H 'content-type: application/json' \
        -d "{\"name\":\"$name\",\"expose\":\"$expose\",\"dns_label\":\"$name\"}" \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["operation"]["id"])')"
    follow "$op" | sed "s/^/create $expose /" >> "$WORK/steps"
    sleep 1 # the audit log is written asynchronously
    after="$(sa_requests)"
    echo "create $expose $((after - before))" >> "$WORK/requests"
    before="$after"
    op="$(curl -fs -XDELETE "$API/instances/$name" \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["operation"]["id"])')"
    follow "$op" | sed "s/^/delete $expose /" >> "$WORK/steps"
    sleep 1
    after="$(sa_requests)"
    echo "delete $expose $((after - before))" >> "$WORK/requests"
}

for i in $(seq 1 "$RUNS"); do run "bench-internal-$i" internal; done
for i in $(seq 1 "$RUNS"); do run "bench-public-$i" public; done

# The node agent's own work per pod: initdb + start until its server runs.
grep -o 'elapsed_ms=[0-9]*' "$WORK/agent.log" | cut -d= -f2 > "$WORK/agent_ms" || true

python3 - "$WORK" <<'PY'
import statistics, sys, collections
work = sys.argv[1]
def median(values): return int(statistics.median(values)) if values else 0
requests = collections.defaultdict(list)
for line in open(f"{work}/requests"):
    op, expose, count = line.split()
    requests[(op, expose)].append(int(count))
steps = collections.defaultdict(list)
for line in open(f"{work}/steps"):
    op, expose, step, ms = line.split()
    steps[(op, expose, step)].append(int(ms))
agent = [int(x) for x in open(f"{work}/agent_ms").read().split()]
print("API requests by the server (ServiceAccount), median per operation:")
for (op, expose), counts in sorted(requests.items()):
    print(f"  {op:6} {expose:8} {median(counts):4}   (min {min(counts)}, max {max(counts)})")
print(f"node agent: pod start (initdb + start) median {median(agent)} ms over {len(agent)} pods")
print("steps, median ms:")
for (op, expose, step), values in sorted(steps.items()):
    print(f"  {op:6} {expose:8} {step:18} {median(values):6}")
PY
