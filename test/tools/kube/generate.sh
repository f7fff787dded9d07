#!/usr/bin/env bash
# Regenerates go.mod and go.sum of this module for one Kubernetes tag: `bash generate.sh v1.35.8`.
# k8s.io/kubernetes requires its staging modules (k8s.io/api, k8s.io/client-go, ...) at v0.0.0 and replaces them with
# ./staging paths, so it cannot be fetched as a dependency until our own module replaces every one of them with its
# published tag, v0.<minor>.<patch> for Kubernetes v1.<minor>.<patch>. The list is read from that tag's own go.mod, so
# it never goes stale. Not run by the build: the result is committed, and go.sum pins every module it fetches.
set -euo pipefail
KV=${1:?usage: generate.sh vX.Y.Z (a k8s.io/kubernetes tag)}
SV="v0.${KV#v1.}"
export GOTOOLCHAIN=local GOFLAGS=-mod=mod
cd "$(dirname "$0")"
rm -f go.mod go.sum
go mod init drain-coordinator.test/tools/kube
KGOMOD=$(go mod download -json "k8s.io/kubernetes@$KV" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
# The go and godebug lines set the binaries' default GODEBUG: keep Kubernetes' own, not this toolchain's.
go mod edit -go="$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$KGOMOD")"
sed -n '/^godebug /p' "$KGOMOD" >> go.mod
# Replaces must be in place before `go get`, or it looks for k8s.io/api@v0.0.0 and fails.
for m in $(sed -n 's#^[[:space:]]*\(k8s\.io/[^[:space:]]*\) => \./staging/src/.*#\1#p' "$KGOMOD"); do
  go mod edit -replace="$m=$m@$SV"
done
# `tool` directives keep the commands (and so their whole dependency graph) in go.mod, pinned by go.sum.
for c in kube-apiserver kube-controller-manager kube-proxy; do go get -tool "k8s.io/kubernetes/cmd/$c@$KV"; done
go mod tidy
echo "kube tools module now at $KV (staging $SV)"
