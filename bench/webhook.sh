#!/usr/bin/env bash
# The webhook benchmarks of BENCHMARKS.md, each measured beside its reference in the
# same run, on release builds, against tests/peers/http-sink.py on 127.0.0.1:
#
#   a  alertctl failure with a webhook notifier (one process, one alert, one POST)
#        vs  bench_webhook_floor: one SQLite row + one raw HTTP POST           <= 1.5x
#   b  the engine in one process delivering N webhooks (webhook_throughput)
#        vs  Prometheus Alertmanager turning N alerts into N webhooks          >= 1x
#
#   bench/webhook.sh                      # both, a few minutes on 2 cores
#   BENCH_ONLY=b BENCH_REPS=3 bench/webhook.sh
#
# (a) Process timings are hyperfine medians; the comparison is repeated BENCH_REPS times
#     and the median ratio is reported. Before each timed alertctl run a prepare step
#     clears the unit, so every run is a first failure that sends its alert.
# (b) Alertmanager (Debian's prometheus-alertmanager, tests/peers/start-alertmanager.sh
#     --group-by-alert: one group, so one webhook, per alert; group_wait 100ms) gets N
#     alerts with distinct label sets, POSTed to /api/v2/alerts in batches of 64 as
#     Prometheus sends them; its rate is N over the time from the first POST to the
#     sink's record of the N-th webhook. webhook_throughput gets the first failure of N
#     services (N alerts) and times the same span. The two alternate, BENCH_REPS times,
#     each repetition with a fresh Alertmanager that is stopped before the engine runs.
#
# Reference rows, to tell where the time goes: (a) the same alertctl run with the console
# notifier (alertctl without any transport); (b) the engine with its state file on tmpfs
# (where fsync costs nothing), the engine with the notifier's max_concurrent raised to
# BENCH_CONCURRENCY (so no row waits in the outbox for a free slot; the measured row uses
# the default, 8), and the webhook notifier called alone, without engine and store
# (webhook_throughput MODE=notifier).
#
# Needs hyperfine, sqlite3, curl, prometheus-alertmanager and /usr/bin/python3 (Debian
# packages; installed here when running as root). Paths must not contain spaces.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${BENCH_RUNS:-20}     # hyperfine runs per command
WARMUP=${BENCH_WARMUP:-3}  # hyperfine warmup runs per command
REPS=${BENCH_REPS:-5}      # repetitions of each comparison
N=${BENCH_N:-1000}         # webhooks per throughput run
CONCURRENCY=${BENCH_CONCURRENCY:-32}

log() { printf '\n== %s\n' "$*" >&2; }
die() { printf 'bench/webhook.sh: %s\n' "$*" >&2; exit 1; }

# --- tools -------------------------------------------------------------------------
need=()
command -v hyperfine >/dev/null || need+=(hyperfine)
command -v sqlite3 >/dev/null || need+=(sqlite3)
command -v curl >/dev/null || need+=(curl)
command -v prometheus-alertmanager >/dev/null || need+=(prometheus-alertmanager)
[ -x /usr/bin/python3 ] || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    die "missing ${need[*]} (apt-get install ${need[*]})"
  fi
fi
PY=/usr/bin/python3

# --- build -------------------------------------------------------------------------
log "building (release)"
cargo build --release --quiet --bin alertctl --example bench_webhook_floor --example webhook_throughput
target_dir=$(cargo metadata --format-version 1 --no-deps |
  "$PY" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
work=$(mktemp -d "${TMPDIR:-/tmp}/alertcore-bench-webhook.XXXXXX")
sink_pid=
am_pid=
shm=/dev/shm/alertcore-bench-webhook.$$
cleanup() {
  if [ -n "$sink_pid" ]; then kill "$sink_pid" 2>/dev/null || true; fi
  if [ -n "$am_pid" ]; then kill "$am_pid" 2>/dev/null || true; fi
  rm -rf "$shm"
  if [ -n "${BENCH_KEEP:-}" ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

# Every program runs from a copy, as it would once installed. The linker writes its
# output through a shared mapping, which leaves the file in the page cache as 4 KiB
# pages, and loading a program from those costs more than from the large folios a
# plain copy (or a read from disk) gets: here alertctl failure took 5.9 ms as linked
# and 5.3 ms as a copy, and both 5.2 ms after dropping the caches (BENCHMARKS.md).
mkdir "$work/bin"
cp "$target_dir/release/alertctl" "$target_dir/release/examples/bench_webhook_floor" \
  "$target_dir/release/examples/webhook_throughput" "$work/bin/"
ALERTCTL=$work/bin/alertctl
FLOOR=$work/bin/bench_webhook_floor
THROUGHPUT=$work/bin/webhook_throughput

results=$work/results.txt
: >"$results"
record() { printf '%s|%s|%s|%s|%s|%s\n' "$@" >>"$results"; }
load() { cut -d' ' -f1-3 /proc/loadavg; }
verdict() { # verdict RATIO LIMIT [ge]
  "$PY" -c 'import sys; r, l = float(sys.argv[1]), float(sys.argv[2]); ok = r >= l if sys.argv[3] == "ge" else r <= l; print("pass" if ok else "MISS")' "$1" "$2" "${3:-le}"
}
free_ports() { # free_ports K: K ports free a moment ago
  "$PY" -c 'import socket, sys
ps = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in ps: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ps])' "$1"
}

# --- the sink ----------------------------------------------------------------------
read -r port am_port <<<"$(free_ports 2)"
"$PY" tests/peers/http-sink.py --port "$port" --ready-file "$work/sink.ready" >"$work/sink.log" 2>&1 &
sink_pid=$!
for _ in $(seq 100); do [ -s "$work/sink.ready" ] && break; sleep 0.1; done
[ -s "$work/sink.ready" ] || die "the HTTP sink did not start: $(cat "$work/sink.log")"
SINK=http://127.0.0.1:$port
sink_clear() { curl -sf -X DELETE "$SINK/__requests" >/dev/null; }

# --- a: one alertctl failure with a webhook notifier --------------------------------
ta() {
  local dir=$work/a config state ac rep args
  mkdir -p "$dir"
  config=$dir/alertcore.toml
  state=$dir/state.db
  cat >"$config" <<EOF
[notifiers.hook]
type = "webhook"
url = "$SINK/alertctl"
EOF
  printf '[notifiers.screen]\ntype = "console"\n' >"$dir/console.toml"
  "$ALERTCTL" --config "$config" config check >/dev/null || die "a: config check failed"
  "$ALERTCTL" --state "$state" status >/dev/null # create and migrate the state file
  "$ALERTCTL" --state "$dir/console.db" status >/dev/null
  "$FLOOR" --init "$dir/floor.db"
  ac="$ALERTCTL --config $config --state $state"
  cc="$ALERTCTL --config $dir/console.toml --state $dir/console.db"
  local fail="failure bench-hook.service --result exit-code --exit-status 1"
  sink_clear
  for ((rep = 1; rep <= REPS; rep++)); do
    log "a: alertctl failure + webhook vs floor, repetition $rep/$REPS (load $(load))"
    # The third command sends the same alert to the console notifier: what alertctl
    # costs without any transport. The webhook's own cost is the difference.
    hyperfine -N --style basic --warmup "$WARMUP" --runs "$RUNS" \
      --export-json "$work/a.$rep.json" \
      --prepare "sqlite3 $dir/floor.db 'DELETE FROM events'" \
      --prepare "$ac clear bench-hook.service" \
      --prepare "$cc clear bench-hook.service" \
      "$FLOOR $dir/floor.db $SINK/floor" \
      "$ac $fail" \
      "$cc $fail" >&2
  done
  # every run delivered: each alertctl run is one POST to /alertctl, recorded as delivered
  local runs=$(((RUNS + WARMUP) * REPS)) got delivered
  got=$(curl -sf "$SINK/__requests" | "$PY" -c 'import json, sys
print(sum(1 for r in json.load(sys.stdin) if r["path"] == "/alertctl" and r["status"] == 200))')
  delivered=$(sqlite3 "$state" "SELECT count(*) FROM notifications WHERE status = 'delivered'")
  [ "$got" = "$runs" ] && [ "$delivered" = "$runs" ] ||
    die "a: $runs runs, $got webhooks at the sink, $delivered recorded as delivered"
  local f m r all
  read -r f m r all <<<"$(summarize_a 1)"
  record "a. alertctl failure, webhook to HTTP sink" "bench_webhook_floor $f ms" "$m ms" "$r ($all)" "<= 1.5" "$(verdict "$r" 1.5)"
  read -r f m r all <<<"$(summarize_a 2)"
  record "(ref) alertctl failure, console notifier" "bench_webhook_floor $f ms" "$m ms" "$r ($all)" "-" "info"
}

# summarize_a INDEX: "floor_ms measured_ms ratio each-ratio" for command INDEX of (a),
# medians of each repetition, then the median over repetitions
summarize_a() {
  "$PY" - "$work" "$REPS" "$1" <<'EOF'
import json, statistics, sys
work, reps, index = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
floors, measured, ratios = [], [], []
for rep in range(1, reps + 1):
    res = json.load(open(f"{work}/a.{rep}.json"))["results"]
    f, m = res[0]["median"], res[index]["median"]
    floors.append(f); measured.append(m); ratios.append(m / f)
print(f"{statistics.median(floors)*1e3:.1f} {statistics.median(measured)*1e3:.1f} "
      f"{statistics.median(ratios):.2f} " + ",".join(f"{r:.2f}" for r in ratios))
EOF
}

# --- b: webhooks per second, engine vs Alertmanager ---------------------------------
# am_run REP: N alerts into Alertmanager; prints alerts/s from the first POST to the
# N-th webhook at the sink.
am_run() {
  sink_clear
  "$PY" - "$am_port" "$SINK" "$N" "$1" <<'EOF'
import json, sys, time, urllib.request
am, sink, n, rep = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
alerts = [{"labels": {"alertname": "BenchFailed", "service": f"svc-{i:06}.service",
                      "host": "bench", "severity": "critical", "run": rep},
           "annotations": {"summary": f"svc-{i:06}.service failed"}, "startsAt": now}
          for i in range(n)]
start = time.time()
for i in range(0, n, 64):
    req = urllib.request.Request(f"http://127.0.0.1:{am}/api/v2/alerts",
                                 data=json.dumps(alerts[i:i + 64]).encode(),
                                 headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req).read()
# this repetition's firing alerts only: the resolved notices of earlier repetitions
# (Alertmanager sends them once its resolve_timeout, 5 min, has passed) come here too
def ours(r):
    return (r["path"] == "/am" and r["json"]["status"] == "firing"
            and all(a["labels"].get("run") == rep for a in r["json"]["alerts"]))
deadline, want = time.time() + 120, n
while True:  # the sink waits for `want` requests of any kind; then count ours
    every = json.load(urllib.request.urlopen(f"{sink}/__requests?wait={want}&timeout=120"))
    reqs = [r for r in every if ours(r)]
    got = sum(len(r["json"]["alerts"]) for r in reqs)
    if (len(reqs) >= n and got >= n) or time.time() > deadline or len(every) < want:
        break
    want = len(every) + n - len(reqs)
if len(reqs) < n or got < n:
    sys.exit(f"alertmanager: {len(reqs)} webhooks with {got} alerts, wanted {n}")
end = sorted(r["t"] for r in reqs)[n - 1]
print(f"{n / (end - start):.0f}")
EOF
}

# engine_run [VAR=VALUE...]: webhook_throughput's rate, with extra environment
engine_run() {
  local out rate got
  sink_clear
  out=$(env "$@" WEBHOOK_URL="$SINK/engine" N="$N" CONCURRENCY="$CONCURRENCY" "$THROUGHPUT")
  rate=$(sed -n 's/^notifications_per_s=//p' <<<"$out")
  # only what came to /engine: Alertmanager goes on posting to /am (the resolved
  # notices of earlier repetitions, once its resolve_timeout has passed)
  got=$(curl -sf "$SINK/__requests" | "$PY" -c 'import json, sys
print(sum(1 for r in json.load(sys.stdin) if r["path"] == "/engine"))')
  [ "$got" = "$N" ] || die "b: webhook_throughput delivered $got of $N: $out"
  echo "$rate"
}

tb() {
  local dir=$work/b rep ams=() engines=() tmpfs=() alone=() raised=() a e t n l r all
  mkdir -p "$shm"
  for ((rep = 1; rep <= REPS; rep++)); do
    log "b: $N webhooks, Alertmanager then engine, repetition $rep/$REPS (load $(load))"
    # A fresh Alertmanager for each repetition, stopped before the engine runs: one
    # that lives on holds every alert it got (resolve_timeout 5 min) and flushes each
    # alert's group every group_interval (1 s), work that would run beside the engine's
    # runs and beside its own later ones.
    bash tests/peers/start-alertmanager.sh "$dir/$rep" "$SINK/am" "$am_port" --group-by-alert >&2
    am_pid=$(cat "$dir/$rep/alertmanager.pid")
    a=$(am_run "$rep")
    kill "$am_pid"
    # (gone, or a zombie: its parent, the start script, has exited)
    for _ in $(seq 200); do
      [ "$(cut -d' ' -f3 "/proc/$am_pid/stat" 2>/dev/null || echo Z)" = Z ] && break
      sleep 0.05
    done
    [ "$(cut -d' ' -f3 "/proc/$am_pid/stat" 2>/dev/null || echo Z)" = Z ] ||
      die "b: Alertmanager (pid $am_pid) did not stop within 10 s"
    am_pid=
    e=$(engine_run)
    # where the engine's time goes: the same with the state file on tmpfs (fsync is
    # free there), and the notifier alone (no engine, no store)
    t=$(engine_run TMPDIR="$shm")
    n=$(engine_run MODE=notifier)
    l=$(engine_run MAX_CONCURRENT="$CONCURRENCY")
    echo "   alertmanager $a/s, engine $e/s (state on tmpfs $t/s, notifier alone $n/s, max_concurrent $CONCURRENCY $l/s)" >&2
    ams+=("$a"); engines+=("$e"); tmpfs+=("$t"); alone+=("$n"); raised+=("$l")
  done
  median() { "$PY" -c 'import statistics, sys; print(f"{statistics.median(float(x) for x in sys.argv[1:]):.0f}")' "$@"; }
  read -r a e r all <<<"$("$PY" - "${ams[*]}" "${engines[*]}" <<'EOF'
import statistics, sys
a = [float(x) for x in sys.argv[1].split()]
e = [float(x) for x in sys.argv[2].split()]
r = [y / x for x, y in zip(a, e)]
print(f"{statistics.median(a):.0f} {statistics.median(e):.0f} {statistics.median(r):.2f} "
      + ",".join(f"{x:.2f}" for x in r))
EOF
)"
  record "b. $N webhooks/s, engine in one process (higher is better)" "Alertmanager $a/s" "$e/s" "$r ($all)" ">= 1" "$(verdict "$r" 1 ge)"
  record "(ref) the same, state file on tmpfs" "Alertmanager $a/s" "$(median "${tmpfs[@]}")/s" "-" "-" "info"
  record "(ref) the webhook notifier alone, no engine" "Alertmanager $a/s" "$(median "${alone[@]}")/s" "-" "-" "info"
  record "(ref) engine, max_concurrent = $CONCURRENCY (default 8)" "Alertmanager $a/s" "$(median "${raised[@]}")/s" "-" "-" "info"
}

log "machine: $(nproc) cores, kernel $(uname -r), load $(load)"
for t in ${BENCH_ONLY:-a b}; do "t$t"; done

log "summary (load now $(load); ratios: median over $REPS repetitions, then each)"
{
  echo "| target | reference | measured | ratio | limit | verdict |"
  echo "|---|---|---|---|---|---|"
  while IFS='|' read -r a b c d e f; do echo "| $a | $b | $c | $d | $e | $f |"; done <"$results"
}
