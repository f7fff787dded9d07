#!/usr/bin/env bash
# kustomize from its Go module, for the manifest tests: no root, no Debian package needed.
set -euo pipefail
go build -trimpath -ldflags='-s -w' -o "$1/kustomize" sigs.k8s.io/kustomize/kustomize/v5
"$1/kustomize" version >/dev/null
