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
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [[ -n "${SSH_AGENT_PID:-}" ]] && kill "$SSH_AGENT_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
wait_for() { for _ in $(seq 1 200); do [ -S "$1" ] && return 0; sleep 0.05; done; echo "timed out waiting for $1" >&2; exit 1; }
sshd=$(command -v sshd || echo /usr/sbin/sshd)
free_port() {  # a loopback port nothing answers on
  local p
  for _ in $(seq 1 50); do
    p=$(shuf -i 20000-60000 -n 1)
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
  echo "no free port" >&2; exit 1
}
port=$(free_port)
user=$(id -un)

say "your computer: a key in an ssh-agent, and a git server that trusts it"
mkdir -p "$work/laptop" "$work/server" && chmod 700 "$work/laptop"
ssh-keygen -q -t ed25519 -N '' -C demo-laptop -f "$work/laptop/id_ed25519"
eval "$(ssh-agent -a "$work/laptop/agent.sock")" >/dev/null
ssh-add -q "$work/laptop/id_ed25519"
rm "$work/laptop/id_ed25519"   # from now on the key lives only in the agent
ssh-add -l
ssh-keygen -q -t ed25519 -N '' -f "$work/server/host_key"
cp "$work/laptop/id_ed25519.pub" "$work/server/authorized_keys"
mkdir -p /run/sshd 2>/dev/null || true
cat > "$work/server/sshd_config" <<CONF
Port $port
ListenAddress 127.0.0.1
HostKey $work/server/host_key
PidFile $work/server/sshd.pid
AuthorizedKeysFile $work/server/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
CONF
"$sshd" -D -f "$work/server/sshd_config" -E "$work/server/sshd.log" & pids+=($!)
git init -q --bare -b main "$work/server/repo.git"
seed=$work/server/seed && git init -q -b main "$seed"
echo "hello from a repository only your key can read" > "$seed/README"
git -C "$seed" add README
git -C "$seed" -c user.name=Demo -c user.email=demo@example.com commit -q -m "first commit"
git -C "$seed" push -q "$work/server/repo.git" main

# Your computer has been to that server before: its known_hosts names it,
# which is how the audit log can say where a shed signed in.
mkdir -p "$work/laptop/.ssh"
echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$work/server/host_key.pub")" > "$work/laptop/.ssh/known_hosts"

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
echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$work/server/host_key.pub")" > "$shed/home/known_hosts"

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
