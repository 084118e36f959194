#!/usr/bin/env bash
# The fallback of make demo where QEMU is missing (scripts/demo.sh runs
# it): the shed is a spuff-guest process on this machine, not a VM. A key
# that exists only on "your computer" clones a repository from inside it.
# The broker runs headless with your ssh-agent; the shed (spuff-guest
# serve) is attached over unix; a local sshd serves a bare git repository;
# git clone runs in the shed through its SSH_AUTH_SOCK; then the audit log
# shows what was signed. Everything lives in a scratch directory
# and is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$PWD/bin
guestbin=$bin/linux-$(go env GOARCH)
work=$(mktemp -d /tmp/spuff-demo.XXXXXX)
source scripts/demo-lib.sh
trap demo_stop EXIT

demo_laptop_and_server

say "start the broker: spuff-app --headless, signing with that agent"
export SPUFF_HOME=$work/laptop/.spuff XDG_DATA_HOME=$work/laptop/.local/share
mkdir -p "$SPUFF_HOME" && chmod 700 "$SPUFF_HOME"
printf 'ssh:\n  mode: agent-forward\n' > "$SPUFF_HOME/config.yaml" && chmod 600 "$SPUFF_HOME/config.yaml"
HOME=$work/laptop "$bin/spuff-app" --headless >"$work/app.log" 2>&1 & pids+=($!)
wait_for "$SPUFF_HOME/run/spuff.sock"

say "start a shed (spuff-guest serve) and attach it over unix"
shed=$work/shed && mkdir -p "$shed/home"
env -u SSH_AUTH_SOCK HOME="$shed/home" "$guestbin/spuff-guest" serve --run-dir "$shed/run" --aws-listen off >"$work/guest.log" 2>&1 & pids+=($!)
wait_for "$shed/run/guest.sock"
"$bin/spuff" attach demo "unix://$shed/run/bus.sock"
for _ in $(seq 1 100); do "$bin/spuff" list | grep -q connected && break; sleep 0.05; done
"$bin/spuff" list

say "inside the shed: its agent lists the key, yet holds nothing"
in_shed() { env -i PATH="$PATH" HOME="$shed/home" SSH_AUTH_SOCK="$shed/run/ssh-agent.sock" "$@"; }
in_shed ssh-add -l
echo "[127.0.0.1]:$port $hostkey" > "$shed/home/known_hosts"

say "inside the shed: git clone over ssh"
in_shed GIT_SSH_COMMAND="ssh -F none -o BatchMode=yes -o UserKnownHostsFile=$shed/home/known_hosts -o IdentityFile=$shed/home/no-key" \
  git clone "ssh://$user@127.0.0.1:$port$work/server/repo.git" "$shed/home/repo"
cat "$shed/home/repo/README"
if grep -rlq "PRIVATE KEY" "$shed" 2>/dev/null; then echo "a private key reached the shed!" >&2; exit 1; fi
echo "no private key anywhere under the shed's directories"

say "the audit log on your computer"
"$bin/spuff" audit

say "detach and stop"
"$bin/spuff" detach demo
