#!/usr/bin/env bash
# Runs the load shapes against a server pinned to one core, with the load
# tool on the other, several times each, and prints min/median/max.
#
#   tests/bench/run.sh [-reps 3] [-shapes "fanout closed knee stall idle heartbeat churn"] [-server CMD]
#   tests/bench/run.sh -ref DIR -bun BIN [-reps 3] [-shapes ...]
#
# -server runs another server speaking the protocol instead of this repo's
# (it must listen on $PORT on 127.0.0.1); measured side by side, same pinning.
# -ref DIR -bun BIN is side-by-side mode: DIR is a checkout of the reference
# relay (tim4724/Party-Sockets 2.3.1, not part of this repo: its source has
# no licence), BIN a Bun binary (the npm package @oven/bun-linux-x64 ships
# one). Every run alternates ours, reference, ours, ...; each shape prints
# both and the ratio ours/reference per pair, as min/median/max. Without the
# reference it says so and runs ours alone.
# -base BIN alternates ours with another build of this server (same
# settings), e.g. the build before a change; -loadgen "ARGS" adds arguments
# to every run of the tool (e.g. -recover).
set -euo pipefail
cd "$(dirname "$0")/../.."
REPS=3
SHAPES="fanout closed knee stall idle churn"
SERVER=""
REF=""
BUN=""
BASE=""
EXTRA=""
while [ $# -gt 0 ]; do
  case "$1" in
    -reps) REPS=$2; shift 2 ;;
    -shapes) SHAPES=$2; shift 2 ;;
    -server) SERVER=$2; shift 2 ;;
    -ref) REF=$2; shift 2 ;;
    -base) BASE=$2; shift 2 ;;
    -loadgen) EXTRA=$2; shift 2 ;;
    -bun) BUN=$2; shift 2 ;;
    *) echo "unknown flag $1" >&2; exit 2 ;;
  esac
done
OUT=$(mktemp -d)
go build -o "$OUT/party-sockets" .
go build -o "$OUT/loadgen" ./cmd/loadgen
[ -n "$SERVER" ] || SERVER="$OUT/party-sockets"
WHO="ours"
if [ -n "$BASE" ]; then
  WHO="ours base"
  echo "side by side: ours ($SERVER) and the base build ($BASE)"
elif [ -n "$REF$BUN" ]; then
  if [ -f "$REF/server.ts" ] && [ -x "$BUN" ]; then
    WHO="ours ref"
    echo "side by side: ours ($SERVER) and the reference ($REF, bun $("$BUN" --version))"
  else
    echo "skipping the reference: need -ref DIR with server.ts (got '$REF') and an executable -bun (got '$BUN')" >&2
  fi
fi

# one_run WHO SHAPE ARGS...: start a fresh server (ours or ref) on core 0,
# run the tool on core 1, print the tool's JSON line tagged with WHO.
one_run() {
  local who=$1; shift
  local port pid
  # Ports below the ephemeral range (32768+), where the tool's own client
  # sockets live; a server that cannot start is retried on another port.
  for _ in 1 2 3 4 5; do
    port=$((10000 + RANDOM % 20000))
    # The loads exceed the abuse limits on purpose (300 msg/s per member,
    # 10,000 connections from one address): switch those off for the run.
    if [ "$who" = ref ]; then
      (cd "$REF" && PORT=$port exec taskset -c 0 "$BUN" run server.ts >/dev/null 2>&1) &
    else
      local bin=$SERVER
      [ "$who" = base ] && bin=$BASE
      PORT=$port HOST=127.0.0.1 LOG_LEVEL=warn MSG_RATE=0 MAX_CONNS_PER_IP=0 FRAMES_PER_SEC=0 BYTES_PER_SEC=0 \
        UPGRADES_PER_SEC=0 CREATES_PER_MIN=0 MAX_PENDING_CONNS=1048576 \
        taskset -c 0 $bin 2>/dev/null &
    fi
    pid=$!
    for _ in $(seq 100); do curl -sf "127.0.0.1:$port/health" >/dev/null && break; sleep 0.05; done
    curl -sf "127.0.0.1:$port/health" >/dev/null && break
    kill "$pid" 2>/dev/null || true
  done
  taskset -c 1 "$OUT/loadgen" -url "ws://127.0.0.1:$port/" -pid "$pid" $EXTRA "$@" 2>"$OUT/loadgen.err" | tail -1 |
    sed "s/^{/{\"who\":\"$who\",/" || true
  grep -q . "$OUT/loadgen.err" &&
    sed 's/^/    tool: /' "$OUT/loadgen.err" | grep -E "loadgen:|lost [1-9]|errors [1-9]" >&2 || true
  # The measurement is over: SIGKILL, not a drain (rooms whose members
  # vanished without a close frame are kept for the host grace).
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# stats FIELD...: min/median/max of a JSON field over the runs on stdin,
# per server; side by side, also the ratio ours/ref of each alternating pair.
stats() {
  python3 -c '
import json, sys
rows = [json.loads(l) for l in sys.stdin if l.startswith("{")]
def get(r, path):
    for k in path.split("."):
        r = r.get(k, {}) if isinstance(r, dict) else {}
    return r if isinstance(r, (int, float)) else None
def mmm(v):
    v = sorted(v)
    return f"min {v[0]:.4g}  median {v[len(v)//2]:.4g}  max {v[-1]:.4g}  (n={len(v)})"
whos = sorted({r.get("who", "ours") for r in rows}, key=lambda w: w != "ours")
for path in sys.argv[1:]:
    per = {w: [get(r, path) for r in rows if r.get("who", "ours") == w] for w in whos}
    for w in whos:
        v = [x for x in per[w] if x is not None]
        print(f"  {w:4} {path}: " + (mmm(v) if v else "no data"))
    if len(whos) == 2:
        other = whos[1]
        pairs = [a / b for a, b in zip(per["ours"], per[other]) if a is not None and b]
        if pairs: print(f"  ratio ours/{other} {path}: " + mmm(pairs))
for w in whos:
    failed = sum(1 for r in rows if r.get("failed") and r.get("who", "ours") == w)
    if failed: print(f"  {w}: FAILED RUNS (lost or reordered messages, or errors): {failed}")
' "$@"
}

# runs ARGS...: REPS runs of the tool, alternating the servers of $WHO.
runs() {
  for _ in $(seq "$REPS"); do
    for who in $WHO; do one_run "$who" "$@"; done
  done
}

for shape in $SHAPES; do
  case $shape in
    fanout)
      echo "== fanout: 50 rooms x 8, 20 msg/s per member, 10 s"
      runs -shape fanout -rooms 50 -size 8 -rate 20 -duration 10s |
        stats deliveries_per_cpu_s delivered_per_s fanout.Latency.P99 fanout.Latency.P50 ;;
    closed)
      echo "== closed loop: 50 rooms x 8, 32 in flight per member, 10 s"
      runs -shape closed -rooms 50 -size 8 -window 32 -duration 10s |
        stats delivered_per_s server_cpu_s deliveries_per_cpu_s ;;
    knee)
      echo "== open loop, rising rate: p99 per rate (50 rooms x 8, 8 s each)"
      for rate in 100 150 175 200 250 300; do
        echo " rate $rate msg/s per member"
        runs -shape fanout -rooms 50 -size 8 -rate "$rate" -duration 8s |
          stats fanout.Latency.P99 delivered_per_s
      done ;;
    stall)
      echo "== isolation: fanout at 20 msg/s, with no member and with one member per room that stops reading"
      for stall in 0 1; do
        echo " stalled members per room: $stall"
        runs -shape fanout -rooms 50 -size 8 -rate 20 -duration 10s -stall "$stall" |
          stats fanout.Latency.P50 fanout.Latency.P99 fanout.Latency.Max
      done ;;
    idle)
      echo "== idle: 10,000 connections in rooms of 4, RSS at the end of a 20 s hold"
      runs -shape idle -conns 10000 -size 4 -duration 20s |
        stats rss_per_conn_bytes ;;
    heartbeat)
      echo "== idle with the clients' heartbeat: 10,000 connections in rooms of 4, 20 s hold, without and with a ping each per 3 s"
      for hb in 0 3s; do
        echo " heartbeat $hb"
        runs -shape idle -conns 10000 -size 4 -duration 20s -heartbeat "$hb" |
          stats rss_per_conn_bytes idle.HoldCPU idle.Pings
      done ;;
    churn)
      echo "== room cycle: create, 3 joins, one broadcast, all close; 16 in parallel, 10 s"
      runs -shape churn -parallel 16 -size 4 -duration 10s |
        stats cpu_per_cycle_us churn.Cycles ;;
  esac
done
rm -rf "$OUT"
