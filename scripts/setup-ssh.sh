#!/usr/bin/env bash
# Installs the real peers of the ssh-agent tests: OpenSSH's client and agent
# (ssh, ssh-agent, ssh-add, ssh-keygen), its server (the tests run their own
# sshd on a loopback port) and git. Idempotent and quiet.
set -euo pipefail

if [[ "$(uname -s)" == Linux ]]; then
	installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
	missing=()
	for p in openssh-client openssh-server git; do
		installed "$p" || missing+=("$p")
	done
	if ((${#missing[@]})); then
		sudo=()
		if [[ $(id -u) -ne 0 ]]; then sudo=(sudo); fi
		"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	fi
else
	echo "setup-ssh: install OpenSSH (client and server) and git yourself on $(uname -s)"
fi

for t in ssh ssh-agent ssh-add ssh-keygen git; do
	command -v "$t" >/dev/null || { echo "setup-ssh: $t still missing" >&2; exit 1; }
done
[[ -x /usr/sbin/sshd ]] || command -v sshd >/dev/null || { echo "setup-ssh: sshd still missing" >&2; exit 1; }
