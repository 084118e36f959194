#!/usr/bin/env bash
# Runs every Fuzz target in the module, each for BUDGET: a duration ("60s")
# or an input count ("20000x").
#
# `make test` uses a count. Go's fuzz coordinator (go1.26 and older) can fail
# a target with a bare "context deadline exceeded" when a -fuzztime duration
# expires while a worker is mid-call (go.dev/issue/75804); a count sets no
# deadline, so CI cannot trip on it. For duration runs (`make fuzz`) that bare
# failure is tolerated only when no crasher was written and the target's
# corpus then replays clean: anything else is a finding and fails.
set -euo pipefail
budget=${1:-60s}
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT

crashers() { find "$1/testdata/fuzz/$2" -type f 2>/dev/null | sort || true; }

grep -rl --include='*_test.go' '^func Fuzz' . | sort | while read -r f; do
  pkg=./$(dirname "${f#./}")
  for name in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$f" | sed 's/^func //'); do
    echo "fuzz $pkg $name ($budget)"
    before=$(crashers "$pkg" "$name")
    if go test -run='^$' -fuzz="^${name}\$" -fuzztime="$budget" "$pkg" >"$log" 2>&1; then
      continue
    fi
    after=$(crashers "$pkg" "$name")
    if [[ "$budget" != *x && "$before" == "$after" ]] &&
      grep -q '^    context deadline exceeded$' "$log" &&
      ! grep -q 'Failing input written' "$log" &&
      go test -run="^${name}\$" "$pkg" >/dev/null 2>&1; then
      echo "  fuzz coordinator stopped on its deadline with no finding (go.dev/issue/75804); corpus replays clean"
      continue
    fi
    cat "$log"
    exit 1
  done
done
