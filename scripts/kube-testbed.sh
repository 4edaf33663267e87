#!/usr/bin/env bash
# A throwaway Kubernetes control plane on 127.0.0.1 for tests and for trying the Kubernetes
# backend by hand: etcd, kube-apiserver (token auth, RBAC, service-account tokens) and
# kube-controller-manager (all controllers) built by scripts/kube-testbed-build.sh. No kubelet:
# the test node agent (toygres-node-agent) plays the node and the cloud controller.
#
#   scripts/kube-testbed.sh start [DIR]   # starts it; prints `export` lines (also in DIR/env)
#   scripts/kube-testbed.sh stop  [DIR]   # stops what start started, removes DIR
#   scripts/kube-testbed.sh env   [DIR]   # prints the `export` lines again
#
# DIR defaults to $TOYGRES_KUBE_TESTBED_DIR or /tmp/toygres-kube-testbed. In DIR after start:
#   admin.kubeconfig    system:masters (for kubectl and test set-up)
#   toygres.kubeconfig  the ServiceAccount toygres of namespace toygres, bound by deploy/rbac.yaml
#   env                 KUBECONFIG (admin), TOYGRES_KUBE_TESTBED_DIR, TOYGRES_KUBE_TESTBED_SERVER
#   audit.log           one JSON line per completed API request (user, verb, object)
# Binaries: TOYGRES_KUBE_BIN (a directory with kube-apiserver and kube-controller-manager),
# or the cache of kube-testbed-build.sh (built when missing).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
action="${1:-}"
dir="${2:-${TOYGRES_KUBE_TESTBED_DIR:-/tmp/toygres-kube-testbed}}"
namespace="toygres"

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

stop() {
    [ -d "$dir" ] || return 0
    for name in kube-controller-manager kube-apiserver etcd; do
        pidfile="$dir/$name.pid"
        [ -f "$pidfile" ] || continue
        pid="$(cat "$pidfile")"
        if kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -9 "$pid" 2>/dev/null || true
        fi
        rm -f "$pidfile"
    done
    rm -rf "$dir"
}

print_env() {
    cat "$dir/env"
}

wait_for() { # what, command...
    local what="$1"; shift
    for _ in $(seq 1 300); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.2
    done
    echo "kube-testbed: $what did not come up; logs in $dir" >&2
    tail -n 20 "$dir"/*.log >&2 || true
    return 1
}

start() {
    if [ -f "$dir/env" ] && kill -0 "$(cat "$dir/kube-apiserver.pid" 2>/dev/null || echo 0)" 2>/dev/null; then
        echo "kube-testbed: already running in $dir" >&2
        print_env
        return 0
    fi
    stop
    local bin="${TOYGRES_KUBE_BIN:-}"
    if [ -z "$bin" ]; then
        bin="$("$root/scripts/kube-testbed-build.sh" | tail -n1)"
    fi
    for b in kube-apiserver kube-controller-manager; do
        [ -x "$bin/$b" ] || { echo "kube-testbed: $bin/$b is missing" >&2; return 2; }
    done
    command -v etcd >/dev/null || { echo "kube-testbed: etcd is not installed (etcd-server)" >&2; return 2; }
    command -v kubectl >/dev/null || { echo "kube-testbed: kubectl is not installed" >&2; return 2; }
    mkdir -p "$dir"
    chmod 700 "$dir"

    # A CA and the API server's serving certificate for 127.0.0.1; the service-account key.
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=toygres-testbed-ca" \
        -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
        -keyout "$dir/apiserver.key" -out "$dir/apiserver.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,IP:10.96.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' > "$dir/apiserver.ext"
    openssl x509 -req -in "$dir/apiserver.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
        -CAcreateserial -days 2 -extfile "$dir/apiserver.ext" -out "$dir/apiserver.crt" 2>/dev/null
    openssl genrsa -out "$dir/sa.key" 2048 2>/dev/null
    openssl rsa -in "$dir/sa.key" -pubout -out "$dir/sa.pub" 2>/dev/null
    local admin_token
    admin_token="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    printf '%s,admin,admin,"system:masters"\n' "$admin_token" > "$dir/tokens.csv"
    # Every request's metadata (who, verb, object) once complete, in DIR/audit.log: what
    # scripts/bench-kubernetes.sh counts.
    cat > "$dir/audit-policy.yaml" <<'POLICY'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived", "ResponseStarted"]
rules:
  - level: Metadata
POLICY

    local etcd_port etcd_peer api_port
    etcd_port="$(free_port)"; etcd_peer="$(free_port)"; api_port="$(free_port)"
    etcd --name testbed --data-dir "$dir/etcd" \
        --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
        --listen-peer-urls "http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
        --initial-cluster "testbed=http://127.0.0.1:$etcd_peer" \
        --quota-backend-bytes=1073741824 --unsafe-no-fsync >"$dir/etcd.log" 2>&1 &
    echo $! > "$dir/etcd.pid"
    wait_for etcd curl -fsS "http://127.0.0.1:$etcd_port/health"

    "$bin/kube-apiserver" \
        --etcd-servers="http://127.0.0.1:$etcd_port" \
        --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$api_port" --insecure-port=0 \
        --tls-cert-file="$dir/apiserver.crt" --tls-private-key-file="$dir/apiserver.key" \
        --token-auth-file="$dir/tokens.csv" --authorization-mode=Node,RBAC \
        --service-account-key-file="$dir/sa.pub" --service-account-signing-key-file="$dir/sa.key" \
        --service-account-issuer=https://kubernetes.default.svc \
        --service-cluster-ip-range=10.96.0.0/16 --endpoint-reconciler-type=none \
        --kubelet-preferred-address-types=InternalIP \
        --allow-privileged=false --profiling=false \
        --audit-policy-file="$dir/audit-policy.yaml" --audit-log-path="$dir/audit.log" \
        --audit-log-maxsize=200 --audit-log-maxbackup=1 \
        >"$dir/kube-apiserver.log" 2>&1 &
    echo $! > "$dir/kube-apiserver.pid"
    local server="https://127.0.0.1:$api_port"
    kubeconfig "$dir/admin.kubeconfig" "$server" "$admin_token" default
    wait_for kube-apiserver kubectl --kubeconfig "$dir/admin.kubeconfig" get --raw /readyz

    "$bin/kube-controller-manager" \
        --kubeconfig="$dir/admin.kubeconfig" --controllers='*' --leader-elect=false \
        --service-account-private-key-file="$dir/sa.key" --root-ca-file="$dir/ca.crt" \
        --use-service-account-credentials=false --port=0 --secure-port=0 \
        --node-monitor-grace-period=40s --pod-eviction-timeout=10m \
        >"$dir/kube-controller-manager.log" 2>&1 &
    echo $! > "$dir/kube-controller-manager.pid"

    local k=(kubectl --kubeconfig "$dir/admin.kubeconfig")
    "${k[@]}" create namespace "$namespace" >/dev/null
    "${k[@]}" apply -f "$root/deploy/rbac.yaml" >/dev/null
    # The token controller makes the ServiceAccount's token Secret (1.20).
    local secret=""
    for _ in $(seq 1 150); do
        secret="$("${k[@]}" -n "$namespace" get serviceaccount toygres -o jsonpath='{.secrets[0].name}' 2>/dev/null || true)"
        [ -n "$secret" ] && break
        sleep 0.2
    done
    [ -n "$secret" ] || { echo "kube-testbed: no token for ServiceAccount toygres" >&2; tail -n 20 "$dir/kube-controller-manager.log" >&2; return 1; }
    local sa_token
    sa_token="$("${k[@]}" -n "$namespace" get secret "$secret" -o jsonpath='{.data.token}' | base64 -d)"
    kubeconfig "$dir/toygres.kubeconfig" "$server" "$sa_token" "$namespace"

    cat > "$dir/env" <<ENV
export TOYGRES_KUBE_TESTBED_DIR=$dir
export TOYGRES_KUBE_TESTBED_SERVER=$server
export KUBECONFIG=$dir/admin.kubeconfig
ENV
    print_env
}

kubeconfig() { # file server token namespace
    local file="$1" server="$2" token="$3" ns="$4"
    cat > "$file" <<CONFIG
apiVersion: v1
kind: Config
clusters:
- name: testbed
  cluster:
    server: $server
    certificate-authority-data: $(base64 -w0 < "$dir/ca.crt")
users:
- name: user
  user:
    token: $token
contexts:
- name: testbed
  context: {cluster: testbed, user: user, namespace: $ns}
current-context: testbed
CONFIG
    chmod 600 "$file"
}

case "$action" in
    start) start ;;
    stop) stop ;;
    env) print_env ;;
    *) echo "usage: $0 start|stop|env [DIR]" >&2; exit 2 ;;
esac
