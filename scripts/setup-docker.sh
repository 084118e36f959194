#!/usr/bin/env bash
# Installs the real peers of the docker-credentials tests: a registry
# (docker-registry), the host's credential helper (docker-credential-pass with
# pass and gnupg), and two registry clients: skopeo from Debian and crane,
# built from its Go module at a pinned version into ~/.cache/spuff/bin.
# Idempotent.
set -euo pipefail

crane_version=v0.22.1
cache="${SPUFF_CACHE:-${HOME}/.cache/spuff}/bin"

if [[ "$(uname -s)" == Linux ]]; then
	installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
	missing=()
	for p in docker-registry golang-docker-credential-helpers pass gnupg skopeo; do
		installed "$p" || missing+=("$p")
	done
	if ((${#missing[@]})); then
		sudo=()
		if [[ $(id -u) -ne 0 ]]; then sudo=(sudo); fi
		"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
	fi
else
	echo "setup-docker: install docker-registry, docker-credential-pass, pass, gnupg and skopeo yourself on $(uname -s)"
fi

mkdir -p "$cache"
if [[ ! -x "$cache/crane" ]] || [[ "$("$cache/crane" version 2>/dev/null)" != "$crane_version" ]]; then
	echo "setup-docker: building crane $crane_version"
	GOBIN="$cache" CGO_ENABLED=0 go install "github.com/google/go-containerregistry/cmd/crane@${crane_version}"
fi

for t in docker-registry docker-credential-pass pass gpg skopeo; do
	command -v "$t" >/dev/null || { echo "setup-docker: $t still missing" >&2; exit 1; }
done
echo "setup-docker: docker-registry, docker-credential-pass, pass, gpg, skopeo and crane $crane_version are ready"
