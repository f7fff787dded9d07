#!/usr/bin/env bash
# etcd from go.etcd.io/etcd/server/v3 (a main package), for the cluster test tier. Its own module, apart from kube:
# sharing one would let minimal version selection lift etcd's gRPC and OpenTelemetry to Kubernetes' versions.
# `go install ...@v3.6.x` is refused (server/go.mod replaces api, client and pkg with ../ paths); as a dependency of
# this module those replaces are ignored and the same-tag modules it requires are used, which is the same code.
# Upstream's settings (scripts/build_lib.sh): CGO off (set by scripts/tools.mjs), the tag stamped as GitSHA.
set -euo pipefail
OUT=$1
EV=$(go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)
go build -trimpath -ldflags="-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=$EV" -o "$OUT/etcd" go.etcd.io/etcd/server/v3
go version -m "$OUT/etcd" > "$OUT/etcd.buildinfo"
"$OUT/etcd" --version
