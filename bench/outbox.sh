#!/usr/bin/env bash
# Outbox throughput in one process (issue 5): notifications enqueued and delivered per
# second by `Engine` + `SqliteStore` on a file, with one webhook notifier posting to
# bench/http-counter.py on 127.0.0.1 (examples/webhook_throughput.rs: the first failure
# of N services from CONCURRENCY tasks, every event one outbox row and one POST; rows
# left over the notifier's max_concurrent are flushed inside the timed span).
#
#   bench/outbox.sh                                  # max_concurrent default (8), 32, 1000
#   OUTBOX_LIMITS="default 64" OUTBOX_REPS=3 bench/outbox.sh
#   OUTBOX_SIZES="250 500 1000" bench/outbox.sh      # how the rate depends on N
#
# Then examples/bench_outbox_claim.rs: what one store call costs while the notifier is
# at its limit, by the number of rows waiting (OUTBOX_CLAIM_SIZES; empty: skip).
#
# Knobs: OUTBOX_N (1000), OUTBOX_CONCURRENCY (32 tasks), OUTBOX_LIMITS, OUTBOX_REPS (5,
# median reported with each repetition beside it), OUTBOX_SIZES (extra runs of the first
# limit at these N), OUTBOX_TMPFS=1 (also with the state file on /dev/shm),
# OUTBOX_DELAY_MS (the receiver's delay, 0). Needs /usr/bin/python3 and curl.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${OUTBOX_N:-1000}
CONCURRENCY=${OUTBOX_CONCURRENCY:-32}
LIMITS=${OUTBOX_LIMITS:-default 32 1000}
REPS=${OUTBOX_REPS:-5}
SIZES=${OUTBOX_SIZES:-}
TMPFS=${OUTBOX_TMPFS:-0}
DELAY=${OUTBOX_DELAY_MS:-0}
CLAIM_SIZES=${OUTBOX_CLAIM_SIZES-0,100,300,1000,2000}
PY=/usr/bin/python3

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'bench/outbox.sh: %s\n' "$*" >&2; exit 1; }
load() { cut -d' ' -f1-3 /proc/loadavg; }

log "building (release)"
cargo build --release --quiet --example webhook_throughput --example bench_outbox_claim
target_dir=$(cargo metadata --format-version 1 --no-deps |
  "$PY" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
THROUGHPUT=$target_dir/release/examples/webhook_throughput
CLAIM=$target_dir/release/examples/bench_outbox_claim

work=$(mktemp -d "${TMPDIR:-/tmp}/alertcore-outbox.XXXXXX")
shm=/dev/shm/alertcore-outbox.$$
recv_pid=
cleanup() {
  if [ -n "$recv_pid" ]; then kill "$recv_pid" 2>/dev/null || true; fi
  rm -rf "$shm" "$work"
}
trap cleanup EXIT

# shellcheck source=bench/receiver.sh
. bench/receiver.sh
start_receiver "$work" "$DELAY"

# one LIMIT N DIR: one run; prints "rate drained peak_connections"
one() {
  local limit=$1 n=$2 dir=$3 out rate drained
  curl -sf -X DELETE "http://127.0.0.1:$ctl/stats" >/dev/null
  local env=(TMPDIR="$dir" WEBHOOK_URL="http://127.0.0.1:$port/hook" N="$n" CONCURRENCY="$CONCURRENCY")
  [ "$limit" = default ] || env+=(MAX_CONCURRENT="$limit")
  out=$(env "${env[@]}" "$THROUGHPUT") || die "webhook_throughput failed: $out"
  rate=$(sed -n 's/^notifications_per_s=//p' <<<"$out")
  drained=$(sed -n 's/^drained=//p' <<<"$out")
  curl -sf "http://127.0.0.1:$ctl/stats?wait=$n&timeout=10" >"$work/stats.json"
  "$PY" - "$work/stats.json" "$n" "$rate" "$drained" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
n = int(sys.argv[2])
dups = [k for k, v in s["by_key"].items() if v != 1]
if s["requests"] != n or dups:
    sys.exit(f"receiver: {s['requests']} requests for {n} alerts, duplicated {dups[:3]}")
print(sys.argv[3], sys.argv[4], s["peak_connections"])
EOF
}

: >"$work/results.txt"
series() { # series LABEL LIMIT N DIR
  local label=$1 limit=$2 n=$3 dir=$4 rep rates=() drains=() conns=()
  for ((rep = 1; rep <= REPS; rep++)); do
    one "$limit" "$n" "$dir" >"$work/one.txt"
    read -r r d c <"$work/one.txt"
    log "$label, max_concurrent $limit, N $n, rep $rep: $r/s (drained $d, peak connections $c; load $(load))"
    rates+=("$r"); drains+=("$d"); conns+=("$c")
  done
  "$PY" - "$label" "$limit" "$n" "${rates[*]}" "${drains[*]}" "${conns[*]}" <<'EOF' >>"$work/results.txt"
import statistics, sys
label, limit, n = sys.argv[1:4]
rates = [float(x) for x in sys.argv[4].split()]
drains = [int(x) for x in sys.argv[5].split()]
conns = [int(x) for x in sys.argv[6].split()]
print(f"| {label} | {limit} | {n} | {statistics.median(rates):.0f}/s "
      f"({','.join(f'{r:.0f}' for r in rates)}) | {max(drains)} | {max(conns)} |")
EOF
}

log "machine: $(nproc) cores, kernel $(uname -r), load $(load); $CONCURRENCY tasks"
for limit in $LIMITS; do
  series "engine, state on disk" "$limit" "$N" "$work"
  if [ "$TMPFS" != 0 ]; then mkdir -p "$shm"; series "engine, state on tmpfs" "$limit" "$N" "$shm"; fi
done
first=${LIMITS%% *}
for n in $SIZES; do series "engine, state on disk" "$first" "$n" "$work"; done

echo "| run | max_concurrent | N | notifications/s, median (each) | most drained at the end | peak connections |"
echo "|---|---|---|---|---|---|"
cat "$work/results.txt"

if [ -n "$CLAIM_SIZES" ]; then
  log "bench_outbox_claim --sizes $CLAIM_SIZES (load $(load))"
  "$CLAIM" --sizes "$CLAIM_SIZES" --dir "$work"
fi
log "done (load $(load))"
