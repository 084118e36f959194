#!/usr/bin/env bash
# Installs the real peers of the ssh-agent tests: OpenSSH's client and agent
# (ssh, ssh-agent, ssh-add, ssh-keygen), its server (the tests run their own
# sshd on a loopback port) and git. Idempotent and quiet.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

if on_linux; then
	apt_install openssh-client openssh-server git
else
	echo "setup-ssh: install OpenSSH (client and server) and git yourself on $(uname -s)"
fi

require setup-ssh ssh ssh-agent ssh-add ssh-keygen git
[[ -x /usr/sbin/sshd ]] || command -v sshd >/dev/null || { echo "setup-ssh: sshd still missing" >&2; exit 1; }
