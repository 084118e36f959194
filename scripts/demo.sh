#!/usr/bin/env bash
# make demo: the real story on the embedded default. `spuff up demo` boots a
# local QEMU VM from the image make deps built, bootstraps and attaches it;
# inside it `git clone` over ssh signs with a key that exists only in your
# computer's ssh-agent; the audit log shows the signature; `spuff down demo`
# leaves no QEMU process, no files and no row. Each step says how long it
# took. Everything but the image cache lives in a scratch directory.
# Without QEMU it says so and runs scripts/demo-noqemu.sh (a process shed).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v qemu-system-x86_64 >/dev/null || ! command -v qemu-img >/dev/null; then
  printf '\n\033[1mQEMU is missing (scripts/setup-vm.sh installs it): this demo runs its shed as a\nlocal spuff-guest process instead of a VM.\033[0m\n'
  exec scripts/demo-noqemu.sh
fi
bin=$PWD/bin
real_cache=${XDG_CACHE_HOME:-$HOME/.cache}
work=$(mktemp -d /tmp/spuff-demo.XXXXXX)
upped=0 timings=()
source scripts/demo-lib.sh
export SPUFF_HOME=$work/laptop/.spuff XDG_DATA_HOME=$work/laptop/.local/share
cleanup() {
  if [[ $upped == 1 ]]; then "$bin/spuff" down --force demo >/dev/null 2>&1 || true; fi
  demo_stop
}
trap cleanup EXIT
now() { date +%s.%N; }
# timed NAME CMD...: runs CMD and records how long it took.
timed() {
  local name=$1 t0 t1; shift
  t0=$(now); "$@"; t1=$(now)
  local d; d=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}')
  timings+=("$(printf '%-44s %6ss' "$name" "$d")")
  echo "-- $name: ${d}s"
}
demo_laptop_and_server

say "start the broker: spuff-app --headless, signing with that agent"
mkdir -p "$SPUFF_HOME" && chmod 700 "$SPUFF_HOME"
printf 'ssh:\n  mode: agent-forward\nprovision:\n  provider: qemu\n  user: dev\n' > "$SPUFF_HOME/config.yaml" && chmod 600 "$SPUFF_HOME/config.yaml"
# The image make deps built stays where it is (~/.cache/spuff/images);
# the guest binaries come from make build (bin/linux-ARCH).
HOME=$work/laptop XDG_CACHE_HOME=$real_cache SPUFF_GUEST_BIN_DIR=$bin \
  "$bin/spuff-app" --headless >"$work/app.log" 2>&1 & pids+=($!)
wait_for "$SPUFF_HOME/run/spuff.sock"
spuff() { HOME=$work/laptop "$bin/spuff" "$@"; }

say "spuff up demo: a local VM (QEMU), cloud-init, the guest binaries, the bus"
upped=1
if ! timed "spuff up demo (boot to ready)" spuff up demo; then
  echo "spuff up failed; spuff-app's log:" >&2; tail -n 30 "$work/app.log" >&2; exit 1
fi
spuff list

say "inside the shed: its agent lists your key, yet holds nothing"
in_shed() { spuff ssh demo -- "$@"; }
timed "ssh-add -l in the shed" in_shed SSH_AUTH_SOCK=/run/spuff/ssh-agent.sock ssh-add -l
# The shed reaches your computer's loopback at 10.0.2.2 (QEMU user networking).
in_shed "mkdir -p ~/.ssh && echo '[10.0.2.2]:$port $hostkey' > ~/.ssh/known_hosts"

say "inside the shed: git clone over ssh, signed by your computer's agent"
timed "git clone in the shed" in_shed SSH_AUTH_SOCK=/run/spuff/ssh-agent.sock \
  GIT_SSH_COMMAND="'ssh -o BatchMode=yes'" \
  git clone -q "ssh://$user@10.0.2.2:$port$work/server/repo.git" repo
in_shed cat repo/README
echo "private keys in the shed's home and spuff's files (there should be none):"
in_shed "sudo grep -rl 'PRIVATE KEY' /home /etc/spuff /run/spuff /tmp 2>/dev/null || echo none"

say "the audit log on your computer"
spuff audit

say "spuff down demo: nothing left behind"
timed "spuff down demo" spuff down demo
upped=0
left=$(pgrep -f "$SPUFF_HOME/sheds" || true)
[[ -z $left ]] && echo "no QEMU process" || { echo "QEMU still running: $left" >&2; exit 1; }
[[ ! -e $SPUFF_HOME/sheds/demo ]] && echo "no ~/.spuff/sheds/demo" || { echo "files left in $SPUFF_HOME/sheds/demo" >&2; exit 1; }
spuff list --json | grep -q '"demo"' && { echo "demo still has a row" >&2; exit 1; } || echo "no state row"

say "how long each step took"
printf '%s\n' "${timings[@]}"
