#!/bin/sh
# Builds a real Kubernetes control-plane component (kube-apiserver by default,
# or kube-controller-manager) from the Go module proxy and caches it, so that
# the tests can run a real control plane on loopback
# (TestCoordinatorKubeAPIServer, the operator's tests).
#
# k8s.io/kubernetes cannot be `go install`ed (its go.mod replaces the staging
# modules with local paths), so a throw-away module requires it and replaces
# every staging module with its published version. Cold, this takes about
# 5 minutes on 2 cores for kube-apiserver and 10 for kube-controller-manager;
# the binary is cached and later runs return at once.
#
# Usage: build-kube-apiserver.sh [OUTPUT_DIR]
#   OUTPUT_DIR defaults to $(go env GOCACHE)/../sluice-testbin
#   KUBE_VERSION overrides the Kubernetes version (default 1.34.1).
#   KUBE_COMPONENT is the command to build: kube-apiserver (default) or
#   kube-controller-manager.
set -eu

V="${KUBE_VERSION:-1.34.1}"
C="${KUBE_COMPONENT:-kube-apiserver}"
case "$C" in
kube-apiserver | kube-controller-manager) ;;
*)
	echo "build-kube-apiserver: unknown KUBE_COMPONENT $C" >&2
	exit 2
	;;
esac
OUT="${1:-$(go env GOCACHE)/../sluice-testbin}"
BIN="$OUT/$C-v$V"

if [ -x "$BIN" ]; then
	echo "$BIN"
	exit 0
fi

mkdir -p "$OUT"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"

# The staging modules are published as v0.X.Y for Kubernetes v1.X.Y.
SV="v0.${V#1.}"

go mod init kapi >/dev/null 2>&1
# Read the staging list from k8s.io/kubernetes's own go.mod (its `=> ./staging/...` lines).
GOMOD="$(go mod download -json "k8s.io/kubernetes@v$V" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
if [ -z "$GOMOD" ]; then
	echo "build-kube-apiserver: cannot download k8s.io/kubernetes@v$V go.mod" >&2
	exit 1
fi
go mod edit -require="k8s.io/kubernetes@v$V"
for m in $(sed -n 's#^[[:space:]]*\(k8s.io/[^[:space:]]*\)[[:space:]]*=>[[:space:]]*\./staging/.*#\1#p' "$GOMOD" | sort -u); do
	go mod edit -replace="$m=$m@$SV"
done
cat > tools.go <<GO
//go:build tools

package kapi

import _ "k8s.io/kubernetes/cmd/$C"
GO
GOFLAGS=-mod=mod go mod tidy -e >/dev/null 2>&1 || true
CGO_ENABLED=0 go build -trimpath -o "$BIN.tmp" "k8s.io/kubernetes/cmd/$C"
mv "$BIN.tmp" "$BIN"
echo "$BIN"
