#!/usr/bin/env bash
# actionlint from its Go module, for the release workflow's test (test/release-workflow.test.ts): GitHub Actions
# cannot run here, so the workflow is checked against actionlint's schema and expression types instead.
set -euo pipefail
go build -trimpath -ldflags='-s -w' -o "$1/actionlint" github.com/rhysd/actionlint/cmd/actionlint
"$1/actionlint" -version >/dev/null
