#!/usr/bin/env bash
# Refreshes the apt package lists once on a new machine (or when they are
# older than a day), so the setup scripts after this one can install.
set -euo pipefail
[[ "$(uname -s)" == Linux ]] || exit 0
command -v apt-get >/dev/null || exit 0
stamp="${SPUFF_CACHE:-${HOME}/.cache/spuff}/apt-updated"
mkdir -p "$(dirname "$stamp")"
if [[ -z "$(find "$stamp" -mmin -1440 2>/dev/null)" ]] || [[ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e lock -e partial)" ]]; then
	sudo=()
	if [[ $(id -u) -ne 0 ]]; then sudo=(sudo); fi
	echo "setup-apt: refreshing package lists"
	"${sudo[@]}" apt-get update -qq
	touch "$stamp"
fi
