#!/usr/bin/env bash
# Measures one ingest of a generated dataset into a fresh server, by hand,
# the way sessions 6-9 steered ingest CPU and memory (see benches/README.md).
#
#   benches/measure-ingest.sh cpu       [BIN]  CPU seconds, peak and idle RSS (SIZE, default small)
#   benches/measure-ingest.sh callgrind [BIN]  instructions of the server (SPANS, default 100000)
#   benches/measure-ingest.sh heaptrack [BIN]  peak heap and its largest parts (SIZE)
#
# BIN defaults to target/release/spanlake; the generator is always that
# binary. heaptrack sees only the system allocator: build BIN with the
# `#[global_allocator]` line of api/src/main.rs commented out. Old and new
# builds are best compared alternately, several runs each: CPU seconds vary
# by ±15% from run to run on a 2-core machine, callgrind's counts by <1%.
# Extra server environment (MIMALLOC_PURGE_DELAY=...) passes through;
# FSYNC=never sets the WAL's fsync policy (default always, as the server's);
# MAX_BLOCK_BYTES=... the ingester's (default the server's).
set -euo pipefail

MODE=${1:?usage: measure-ingest.sh cpu|callgrind|heaptrack [BIN]}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$(realpath "${2:-$ROOT/target/release/spanlake}")
GEN=$ROOT/target/release/spanlake
OUT=${OUT:-$ROOT/target/measure-ingest}
HTTP_PORT=${HTTP_PORT:-3298}
GRPC_PORT=${GRPC_PORT:-4397}

rm -rf "$OUT/data" && mkdir -p "$OUT/data"
# A short trace_idle_period under valgrind: it slows the server so much
# that every trace would otherwise still be live when its head is cut.
IDLE=""
[ "$MODE" = callgrind ] && IDLE="  trace_idle_period: 1ms"
cat > "$OUT/config.yaml" <<YAML
server:
  http_listen_port: $HTTP_PORT
  log_level: warn
distributor:
  receivers:
    otlp:
      protocols:
        grpc:
          endpoint: 127.0.0.1:$GRPC_PORT
ingester:
  max_block_duration: 30s
${MAX_BLOCK_BYTES:+  max_block_bytes: $MAX_BLOCK_BYTES}
$IDLE
compactor:
  compaction:
    compaction_cycle: 24h
storage:
  trace:
    local:
      path: $OUT/data/blocks
    wal:
      path: $OUT/data/wal
      fsync: ${FSYNC:-always}
YAML

case "$MODE" in
  cpu) WRAP=() ;;
  callgrind) WRAP=(valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.out") ;;
  heaptrack) WRAP=(heaptrack -o "$OUT/heaptrack") ;;
  *) echo "unknown mode $MODE" >&2; exit 2 ;;
esac
"${WRAP[@]}" "$BIN" serve -c "$OUT/config.yaml" > "$OUT/server.log" 2>&1 &
PID=$!
for _ in $(seq 600); do curl -sf "localhost:$HTTP_PORT/ready" > /dev/null && break; sleep 0.5; done
# heaptrack is a script that starts the server as a child; valgrind runs it in its own process.
[ "$MODE" = heaptrack ] && PID=$(pgrep -n -f "^$BIN serve -c $OUT/config.yaml")
cpu_ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }

T0=$(cpu_ticks)
if [ "$MODE" = callgrind ]; then
  "$GEN" gen --spans "${SPANS:-100000}" --seed 42 --send "grpc://127.0.0.1:$GRPC_PORT" --connections 4 > "$OUT/gen.log"
else
  "$GEN" gen --size "${SIZE:-small}" --seed 42 --send "grpc://127.0.0.1:$GRPC_PORT" --connections 4 > "$OUT/gen.log"
fi
curl -sf -X POST "localhost:$HTTP_PORT/flush"
T1=$(cpu_ticks)
HWM=$(awk '/VmHWM/{print $2}' "/proc/$PID/status")
sleep 3
RSS=$(awk '/VmRSS/{print $2}' "/proc/$PID/status")
kill -INT "$PID"
while kill -0 "$PID" 2> /dev/null; do sleep 0.5; done
wait || true

echo "$(tail -1 "$OUT/gen.log")"
awk -v t="$((T1 - T0))" -v hwm="$HWM" -v rss="$RSS" 'BEGIN { printf "server CPU s: %.2f, peak RSS MiB: %d, RSS 3 s after the flush MiB: %d\n", t / 100, hwm / 1024, rss / 1024 }'
case "$MODE" in
  callgrind) grep -E "refs" "$OUT/server.log" ;;
  heaptrack)
    heaptrack_print -f "$OUT/heaptrack.zst" --print-flamegraph "$OUT/peak.folded" --flamegraph-cost-type peak -n 0 2> /dev/null | grep "peak heap"
    # The largest parts of the peak, by the innermost two of our frames.
    python3 - "$OUT/peak.folded" <<'PY'
import collections, re, sys
parts = collections.Counter()
for line in open(sys.argv[1]):
    stack, _, size = line.rstrip().rpartition(" ")
    ours = [re.sub(r"::h[0-9a-f]{16}$", "", f) for f in stack.split(";") if "spanlake_" in f]
    parts[" <- ".join(reversed(ours[-2:])) or "other"] += int(size)
for name, size in parts.most_common(12):
    print(f"{size / 1e6:8.2f} MB  {name[:160]}")
PY
    ;;
esac
