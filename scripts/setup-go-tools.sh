#!/usr/bin/env bash
# Go-built tools the checks need, cached under ~/.cache/spuff/bin at the
# version pinned in lib.sh; a bumped pin rebuilds.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
mkdir -p "$cache"
if [[ "$(built_version "$cache/staticcheck")" != "$staticcheck_version" ]]; then
	echo "setup-go-tools: building staticcheck $staticcheck_version"
	GOBIN="$cache" go install "honnef.co/go/tools/cmd/staticcheck@${staticcheck_version}"
fi
