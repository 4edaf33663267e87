#!/usr/bin/env bash
# Builds the test control plane once: kube-apiserver and kube-controller-manager from Debian's
# `kubernetes` source package with Debian's Go, into /var/cache/toygres-kube/<version>/ (outside the
# repository). A cache with both binaries for the wanted version is reused; another version builds
# anew. Prints the cache directory on its last line.
#
#   scripts/kube-testbed-build.sh            # build or reuse
#   TOYGRES_KUBE_VERSION=v1.20.2 scripts/kube-testbed-build.sh
#
# Needs root for apt (deb-src entry, golang-go, etcd-server, rsync) unless they are present.
# About 8.5 minutes and 1.3 GB of memory on 2 cores, run under `nice` so it yields to others.
set -euo pipefail

version="${TOYGRES_KUBE_VERSION:-v1.20.2}"
cache_root="${TOYGRES_KUBE_CACHE:-/var/cache/toygres-kube}"
cache="$cache_root/$version"
binaries=(kube-apiserver kube-controller-manager)

have_all() {
    for b in "${binaries[@]}"; do [ -x "$cache/$b" ] || return 1; done
}

if have_all; then
    echo "kube-testbed-build: reusing $cache" >&2
    echo "$cache"
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
need=()
command -v go >/dev/null 2>&1 || [ -x /usr/lib/go/bin/go ] || need+=(golang-go)
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
command -v rsync >/dev/null 2>&1 || need+=(rsync)
command -v dpkg-source >/dev/null 2>&1 || need+=(dpkg-dev)
if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ && ! grep -qs '^deb-src' /etc/apt/sources.list; then
    echo "kube-testbed-build: adding a deb-src entry for bookworm main" >&2
    cat > /etc/apt/sources.list.d/toygres-deb-src.sources <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    apt-get update -qq
elif [ "${#need[@]}" -gt 0 ]; then
    apt-get update -qq
fi
if [ "${#need[@]}" -gt 0 ]; then
    echo "kube-testbed-build: installing ${need[*]}" >&2
    apt-get install -y -qq "${need[@]}" >&2
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/toygres-kube-build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
cd "$work"
apt-get source --download-only kubernetes >&2
orig="$(ls kubernetes_*.orig.tar.* | head -n1)"
mkdir src
tar -xf "$orig" -C src --strip-components=1
cd src

mkdir -p "$work/home"
start=$(date +%s)
for b in "${binaries[@]}"; do
    echo "kube-testbed-build: building $b $version" >&2
    HOME="$work/home" GOPROXY=off GOFLAGS= nice -n 15 \
        make WHAT="cmd/$b" KUBE_GIT_VERSION="$version" >&2
done
echo "kube-testbed-build: built in $(( $(date +%s) - start ))s" >&2

mkdir -p "$cache.partial"
for b in "${binaries[@]}"; do
    install -m 0755 "_output/local/bin/linux/$(go env GOARCH)/$b" "$cache.partial/$b" 2>/dev/null \
        || install -m 0755 "$(find _output -type f -name "$b" | head -n1)" "$cache.partial/$b"
done
rm -rf "$cache"
mv "$cache.partial" "$cache"
echo "$cache"
