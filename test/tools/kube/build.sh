#!/usr/bin/env bash
# kube-apiserver, kube-controller-manager and kube-proxy from k8s.io/kubernetes, for the cluster test tier.
# go.mod (made by generate.sh) pins the tag and replaces every staging module with its published tag.
# Upstream's build settings (hack/lib/golang.sh, hack/lib/version.sh): static (CGO off, set by scripts/tools.mjs),
# -trimpath, tags selinux,notest, and the version stamped in, so /version and --version report the tag.
set -euo pipefail
OUT=$1
KV=$(go list -m -f '{{.Version}}' k8s.io/kubernetes)
MINOR=$(cut -d. -f2 <<<"$KV")
LDF="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  LDF+=" -X $p.gitVersion=$KV -X $p.gitMajor=1 -X $p.gitMinor=$MINOR -X $p.gitTreeState=clean"
done
CMDS=(kube-apiserver kube-controller-manager kube-proxy)
go build -trimpath -tags=selinux,notest -ldflags="$LDF" -o "$OUT/" "${CMDS[@]/#/k8s.io/kubernetes/cmd/}"
for b in "${CMDS[@]}"; do go version -m "$OUT/$b" > "$OUT/$b.buildinfo"; done   # provenance: every module version
"$OUT/kube-apiserver" --version
