#!/usr/bin/env bash
# helm from its Go module, for the post-renderer tests (`helm template --post-renderer`): no download of a release binary.
set -euo pipefail
go build -trimpath -ldflags='-s -w' -o "$1/helm" helm.sh/helm/v3/cmd/helm
"$1/helm" version --short >/dev/null
