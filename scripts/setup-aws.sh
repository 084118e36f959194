#!/usr/bin/env bash
# Installs the real peers of the aws-credentials tests: MinIO (STS and S3)
# and its admin client mc, both built from their Go modules at pinned
# versions into ~/.cache/spuff/bin, the AWS CLI v2 from Debian (awscli) and
# Debian's boto3 (python3-boto3: the old SDK that reads only the exported
# container token).
# `setup-aws.sh bench` (or SPUFF_BENCH=1) also builds aws-vault, the peer
# the credential benchmark stands beside. Idempotent: a binary already built
# at its pinned version is kept.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

minio_version=v0.0.0-20260212201848-7aac2a2c5b7c
mc_version=v0.0.0-20250313080218-cf909e1063a9
aws_vault_version=v7.2.0

bench="${SPUFF_BENCH:-0}"
if [[ "${1:-}" == bench ]]; then bench=1; fi

if on_linux; then
	apt_install awscli python3-boto3
else
	echo "setup-aws: install the AWS CLI v2 and boto3 yourself on $(uname -s)"
fi

# build MODULE/PATH VERSION BINARY builds one pinned binary unless present.
build() {
	local pkg=$1 version=$2 bin=$3
	if [[ "$(built_version "$cache/$bin")" == "$version" ]]; then
		return 0
	fi
	echo "setup-aws: building $bin $version (a few minutes the first time)"
	if GOBIN="$cache" go install "${pkg}@${version}"; then
		return 0
	fi
	# go install also asks the proxy for the module's version list (to
	# report deprecations) and gives up when that list is refused; a
	# throwaway module requiring only this one builds the same binary.
	echo "setup-aws: go install failed; building $bin in a scratch module"
	local tmp
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' RETURN
	(
		cd "$tmp"
		go mod init spuff-setup-aws >/dev/null 2>&1
		go get "${pkg}@${version}"
		go build -o "$cache/$bin" "$pkg"
	)
}

mkdir -p "$cache"
build github.com/minio/minio "$minio_version" minio
build github.com/minio/mc "$mc_version" mc
if [[ "$bench" == 1 ]]; then
	build github.com/99designs/aws-vault/v7 "$aws_vault_version" aws-vault
fi

if on_linux && ! /usr/bin/aws --version 2>&1 | grep -q '^aws-cli/2'; then
	echo "setup-aws: /usr/bin/aws is not the AWS CLI v2" >&2
	exit 1
fi
echo "setup-aws: minio $minio_version, mc $mc_version and the AWS CLI are ready$([[ "$bench" == 1 ]] && echo ", aws-vault $aws_vault_version too")"
