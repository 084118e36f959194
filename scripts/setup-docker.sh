#!/usr/bin/env bash
# Installs the real peers of the docker-credentials tests: a registry
# (docker-registry), the host's credential helper (docker-credential-pass with
# pass and gnupg), and the registry clients: skopeo, podman and buildah from
# Debian (they read credHelpers, not credsStore), and crane, built from its Go
# module at a pinned version into ~/.cache/spuff/bin.
# Idempotent.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

crane_version=v0.22.1

if on_linux; then
	apt_install docker-registry golang-docker-credential-helpers pass gnupg skopeo podman buildah
else
	echo "setup-docker: install docker-registry, docker-credential-pass, pass, gnupg, skopeo, podman and buildah yourself on $(uname -s)"
fi

mkdir -p "$cache"
if [[ ! -x "$cache/crane" ]] || [[ "$("$cache/crane" version 2>/dev/null)" != "$crane_version" ]]; then
	echo "setup-docker: building crane $crane_version"
	GOBIN="$cache" CGO_ENABLED=0 go install "github.com/google/go-containerregistry/cmd/crane@${crane_version}"
fi

require setup-docker docker-registry docker-credential-pass pass gpg skopeo podman buildah
echo "setup-docker: docker-registry, docker-credential-pass, pass, gpg, skopeo, podman, buildah and crane $crane_version are ready"
