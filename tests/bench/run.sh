#!/usr/bin/env bash
# Runs the load shapes against a server pinned to one core, with the load
# tool on the other, several times each, and prints min/median/max.
#
#   tests/bench/run.sh [-reps 3] [-shapes "fanout closed knee stall idle churn"] [-server CMD]
#
# -server runs another server speaking the protocol instead of this repo's
# (it must listen on $PORT on 127.0.0.1); measured side by side, same pinning.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPS=3
SHAPES="fanout closed knee stall idle churn"
SERVER=""
while [ $# -gt 0 ]; do
  case "$1" in
    -reps) REPS=$2; shift 2 ;;
    -shapes) SHAPES=$2; shift 2 ;;
    -server) SERVER=$2; shift 2 ;;
    *) echo "unknown flag $1" >&2; exit 2 ;;
  esac
done
OUT=$(mktemp -d)
go build -o "$OUT/party-sockets" .
go build -o "$OUT/loadgen" ./cmd/loadgen
[ -n "$SERVER" ] || SERVER="$OUT/party-sockets"

# one_run SHAPE ARGS...: start a fresh server on core 0, run the tool on core 1,
# print the tool's JSON line.
one_run() {
  local port pid
  # Ports below the ephemeral range (32768+), where the tool's own client
  # sockets live; a server that cannot start is retried on another port.
  for _ in 1 2 3 4 5; do
    port=$((10000 + RANDOM % 20000))
    # The loads exceed the abuse limits on purpose (300 msg/s per member,
    # 10,000 connections from one address): switch those off for the run.
    PORT=$port HOST=127.0.0.1 LOG_LEVEL=warn MSG_RATE=0 MAX_CONNS_PER_IP=0 FRAMES_PER_SEC=0 BYTES_PER_SEC=0 \
      UPGRADES_PER_SEC=0 CREATES_PER_MIN=0 MAX_PENDING_CONNS=1048576 \
      taskset -c 0 $SERVER 2>/dev/null &
    pid=$!
    for _ in $(seq 100); do curl -sf "127.0.0.1:$port/health" >/dev/null && break; sleep 0.05; done
    curl -sf "127.0.0.1:$port/health" >/dev/null && break
    kill "$pid" 2>/dev/null || true
  done
  taskset -c 1 "$OUT/loadgen" -url "ws://127.0.0.1:$port/" -pid "$pid" "$@" 2>"$OUT/loadgen.err" | tail -1 || true
  grep -q . "$OUT/loadgen.err" && sed 's/^/    tool: /' "$OUT/loadgen.err" | grep -E "loadgen:|lost [1-9]|errors [1-9]" >&2 || true
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# stats FIELD...: min/median/max of a JSON field over the runs on stdin.
stats() {
  python3 -c '
import json, sys
rows = [json.loads(l) for l in sys.stdin if l.startswith("{")]
def get(r, path):
    for k in path.split("."):
        r = r.get(k, {}) if isinstance(r, dict) else {}
    return r if isinstance(r, (int, float)) else None
for path in sys.argv[1:]:
    v = sorted(x for x in (get(r, path) for r in rows) if x is not None)
    if not v: print(f"  {path}: no data"); continue
    print(f"  {path}: min {v[0]:.4g}  median {v[len(v)//2]:.4g}  max {v[-1]:.4g}  (n={len(v)})")
failed = sum(1 for r in rows if r.get("failed"))
if failed: print(f"  FAILED RUNS (lost or reordered messages, or errors): {failed}")
' "$@"
}

for shape in $SHAPES; do
  case $shape in
    fanout)
      echo "== fanout: 50 rooms x 8, 20 msg/s per member, 10 s"
      for _ in $(seq "$REPS"); do one_run -shape fanout -rooms 50 -size 8 -rate 20 -duration 10s; done |
        stats deliveries_per_cpu_s delivered_per_s fanout.Latency.P99 fanout.Latency.P50 ;;
    closed)
      echo "== closed loop: 50 rooms x 8, 32 in flight per member, 10 s"
      for _ in $(seq "$REPS"); do one_run -shape closed -rooms 50 -size 8 -window 32 -duration 10s; done |
        stats delivered_per_s server_cpu_s deliveries_per_cpu_s ;;
    knee)
      echo "== open loop, rising rate: p99 per rate (50 rooms x 8, 8 s each)"
      for rate in 100 150 175 200 250 300; do
        echo " rate $rate msg/s per member"
        for _ in $(seq "$REPS"); do one_run -shape fanout -rooms 50 -size 8 -rate "$rate" -duration 8s; done |
          stats fanout.Latency.P99 delivered_per_s
      done ;;
    stall)
      echo "== isolation: fanout at 20 msg/s, with no member and with one member per room that stops reading"
      for stall in 0 1; do
        echo " stalled members per room: $stall"
        for _ in $(seq "$REPS"); do one_run -shape fanout -rooms 50 -size 8 -rate 20 -duration 10s -stall "$stall"; done |
          stats fanout.Latency.P50 fanout.Latency.P99 fanout.Latency.Max
      done ;;
    idle)
      echo "== idle: 10,000 connections in rooms of 4, RSS at the end of a 20 s hold"
      for _ in $(seq "$REPS"); do one_run -shape idle -conns 10000 -size 4 -duration 20s; done |
        stats rss_per_conn_bytes ;;
    churn)
      echo "== room cycle: create, 3 joins, one broadcast, all close; 16 in parallel, 10 s"
      for _ in $(seq "$REPS"); do one_run -shape churn -parallel 16 -size 4 -duration 10s; done |
        stats cpu_per_cycle_us churn.Cycles ;;
  esac
done
rm -rf "$OUT"
