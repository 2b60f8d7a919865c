#!/usr/bin/env bash
# attacks.sh OLD NEW [REPS]: what one address's attacks cost two builds of
# the server, side by side on this machine: cmd/attackcost against each,
# alternating (old, new, old, new, ...), server pinned to core 0 and the
# tool to core 1. OLD and NEW are server binaries or git revisions (built
# into a temporary directory). Prints one JSON line per attack and run,
# tagged with the build.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -ge 2 ] || { echo "usage: $0 OLD NEW [REPS]" >&2; exit 2; }
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
build() { # build REV-or-BINARY NAME
  if [ -x "$1" ]; then echo "$1"; return; fi
  git worktree add -q --detach "$OUT/$2-src" "$1" >/dev/null
  (cd "$OUT/$2-src" && go build -o "$OUT/$2" .)
  git worktree remove --force "$OUT/$2-src"
  echo "$OUT/$2"
}
OLD=$(build "$1" old)
NEW=$(build "$2" new)
go build -o "$OUT/attackcost" ./cmd/attackcost
for rep in $(seq "${3:-2}"); do
  for which in old new; do
    bin=$OLD; [ $which = new ] && bin=$NEW
    taskset -c 1 "$OUT/attackcost" -server "$bin" -cpu 0 -duration 3s | sed "s/^{/{\"build\":\"$which\",\"rep\":$rep,/"
  done
done
