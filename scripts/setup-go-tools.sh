#!/usr/bin/env bash
# Go-built tools the checks need, cached under ~/.cache/spuff/bin.
set -euo pipefail
cache="${HOME}/.cache/spuff/bin"
mkdir -p "$cache"
if [ ! -x "$cache/staticcheck" ]; then
  echo "installing staticcheck"
  GOBIN="$cache" go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
fi
