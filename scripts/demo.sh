#!/usr/bin/env bash
# make demo: the broker headless, one shed as a process, attached over unix;
# a ping through the pipeline, then the audit lines. Everything runs in a
# scratch directory and is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$PWD/bin
work=$(mktemp -d /tmp/spuff-demo.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
wait_for() { for _ in $(seq 1 200); do [ -S "$1" ] && return 0; sleep 0.05; done; echo "timed out waiting for $1" >&2; exit 1; }

export HOME=$work/home SPUFF_HOME=$work/home/.spuff XDG_DATA_HOME=$work/home/.local/share
mkdir -p "$SPUFF_HOME" && chmod 700 "$SPUFF_HOME"
unset SSH_AUTH_SOCK

say "start the broker: spuff-app --headless"
"$bin/spuff-app" --headless >"$work/app.log" 2>&1 & pids+=($!)
wait_for "$SPUFF_HOME/run/spuff.sock"
"$bin/spuff" status

say "start a shed (spuff-guest serve) and attach it"
run=$work/shed/run
"$bin/linux-$(go env GOARCH)/spuff-guest" serve --run-dir "$run" --aws-listen off >"$work/guest.log" 2>&1 & pids+=($!)
wait_for "$run/guest.sock"
"$bin/spuff" attach demo "unix://$run/bus.sock"
for _ in $(seq 1 100); do "$bin/spuff" list | grep -q connected && break; sleep 0.05; done
"$bin/spuff" list

say "from inside the shed: ping the host through the pipeline"
"$bin/linux-$(go env GOARCH)/spuff-guest" ping --run-dir "$run" -c 3

say "the audit log on the host"
"$bin/spuff" audit

say "detach and stop"
"$bin/spuff" detach demo
