#!/usr/bin/env bash
# Creates a local kind cluster for the Kubernetes backend and its namespace and RBAC, then
# prints how to point `toygres serve` at it. Needs kind and kubectl on PATH.
set -euo pipefail

cluster="${TOYGRES_KIND_CLUSTER:-toygres}"
namespace="${TOYGRES_K8S_NAMESPACE:-toygres}"
root="$(cd "$(dirname "$0")/.." && pwd)"

for tool in kind kubectl; do
    command -v "$tool" >/dev/null || { echo "kind-up: $tool is not installed" >&2; exit 2; }
done

if ! kind get clusters | grep -qx "$cluster"; then
    kind create cluster --name "$cluster"
fi
kubeconfig="$(mktemp -t "kind-$cluster.XXXXXX")"
kind get kubeconfig --name "$cluster" > "$kubeconfig"
export KUBECONFIG="$kubeconfig"

kubectl create namespace "$namespace" --dry-run=client -o yaml | kubectl apply -f -
sed "s/namespace: toygres/namespace: $namespace/" "$root/deploy/rbac.yaml" | kubectl apply -f -

cat <<MSG
kind cluster '$cluster' is up, namespace '$namespace' ready.
Run the server against it. Instances are ClusterIP (internal) unless created with
--expose public: the server reaches them through a port-forward (TOYGRES_K8S_CONNECT=auto), so
their connection test and health checks work from this machine. kind has no load balancer, so
public instances stay not-ready unless you install one (e.g. cloud-provider-kind).

  KUBECONFIG=$kubeconfig TOYGRES_BACKEND=kubernetes TOYGRES_K8S_NAMESPACE=$namespace \\
      TOYGRES_K8S_VERSIONS=16,17 toygres serve

Then, from another shell, the curl scripts (they talk to http://127.0.0.1:8080):

  scripts/create-instance.sh orders-db > create.json
  scripts/wait-operation.sh "\$(python3 -c 'import json; print(json.load(open("create.json"))["operation"]["id"])')"
  scripts/get-instance.sh orders-db
  scripts/delete-instance.sh orders-db

Clients inside the cluster connect to orders-db.$namespace.svc.cluster.local:5432; from this
machine: kubectl -n $namespace port-forward pod/orders-db-0 5432:5432.

Opt-in backend test against it:

  kubectl create namespace toygres-test
  KUBECONFIG=$kubeconfig cargo test -p toygres-activities --lib real_cluster
MSG
