#!/usr/bin/env bash
# The performance benchmarks of BENCHMARKS.md: each target measured side by side with
# its floor, in the same run, on release builds.
#
#   bench/run.sh                 # everything, a few minutes on 2 cores
#   BENCH_RUNS=10 BENCH_REPS=1 BENCH_PROCS=200 bench/run.sh   # a quick look
#   BENCH_ONLY="2 4" bench/run.sh                              # some targets only
#
#   1  alertctl failure, console notifier   vs  bench_floor: a Rust process that opens,
#                                               reads, inserts, commits and closes as
#                                               SqliteStore does                   <= 1.5x
#      (the sqlite3 CLI's one-row insert beside it, as a reference row)
#   2  alertctl failure, email to a local SMTP sink
#                                           vs  bench_email_floor: the same row as
#                                               bench_floor, then one plain SMTP session
#                                               sending the same message           <= 2x
#   3  BENCH_PROCS concurrent alertctl failure on one state file
#                                           vs  as many bench_floor processes      <= 2x
#   4  Engine + SqliteStore events/s in one process, one event at a time
#                                           vs  a bare rusqlite insert+commit loop
#                                               (synchronous = FULL)               >= 0.9x
#   4b the same with BENCH_TASKS (32) tasks at once (group commit)
#                                           vs  the loop with synchronous = NORMAL >= 0.5x
#
# Process timings are hyperfine medians; every comparison is repeated BENCH_REPS times
# and the median ratio is reported, because other work on the machine (compiles, other
# fsyncs) moves single runs a lot. Needs hyperfine, sqlite3 and python3-aiosmtpd (Debian
# packages; installed here when running as root). Paths must not contain spaces.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${BENCH_RUNS:-20}          # hyperfine runs per command
WARMUP=${BENCH_WARMUP:-3}       # hyperfine warmup runs per command
REPS=${BENCH_REPS:-5}           # repetitions of each comparison
PROCS=${BENCH_PROCS:-1000}      # concurrent processes in target 3
UNITS=${BENCH_UNITS:-20}        # units they share
SECONDS_PER_ROUND=${BENCH_SECONDS:-2}   # target 4: seconds per side per round
ROUNDS=${BENCH_ROUNDS:-3}               # target 4: rounds
TASKS=${BENCH_TASKS:-32}                # target 4b: tasks sending at once

log() { printf '\n== %s\n' "$*" >&2; }
die() { printf 'bench/run.sh: %s\n' "$*" >&2; exit 1; }

# --- tools -------------------------------------------------------------------------
need=()
command -v hyperfine >/dev/null || need+=(hyperfine)
command -v sqlite3 >/dev/null || need+=(sqlite3)
/usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null || need+=(python3-aiosmtpd)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "bench/run.sh: missing ${need[*]} (apt-get install ${need[*]})" >&2
  fi
fi
command -v hyperfine >/dev/null || die "hyperfine is required"
command -v sqlite3 >/dev/null || die "sqlite3 is required"
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

# --- build -------------------------------------------------------------------------
log "building (release)"
cargo build --release --quiet --bin alertctl --example bench_floor --example bench_email_floor \
  --example engine_throughput
target_dir=$(cargo metadata --format-version 1 --no-deps |
  "$PY" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
ALERTCTL=$target_dir/release/alertctl
FLOOR=$target_dir/release/examples/bench_floor
EMAIL_FLOOR=$target_dir/release/examples/bench_email_floor
THROUGHPUT=$target_dir/release/examples/engine_throughput

work=$(mktemp -d "${TMPDIR:-/tmp}/alertcore-bench.XXXXXX")
sink_pid=
cleanup() {
  if [ -n "$sink_pid" ]; then kill "$sink_pid" 2>/dev/null || true; fi
  if [ -n "${BENCH_KEEP:-}" ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

# One row per target: name|floor|measured|ratio|limit|verdict
results=$work/results.txt
: >"$results"
record() { printf '%s|%s|%s|%s|%s|%s\n' "$@" >>"$results"; }

load() { cut -d' ' -f1-3 /proc/loadavg; }

# hyperfine_reps NAME CMD... : REPS hyperfine runs of the commands (each given as
# "prepare::command"), JSON in $work/NAME.REP.json. The first command is the floor.
hyperfine_reps() {
  local name=$1; shift
  local rep args spec
  for ((rep = 1; rep <= REPS; rep++)); do
    args=()
    for spec in "$@"; do args+=(--prepare "${spec%%::*}"); done
    for spec in "$@"; do args+=("${spec#*::}"); done
    log "$name, repetition $rep/$REPS (load $(load))"
    hyperfine -N --style basic --warmup "$WARMUP" --runs "$RUNS" \
      --export-json "$work/$name.$rep.json" "${args[@]}" >&2
  done
}

# summarize NAME INDEX [FLOOR_INDEX] : "floor_ms measured_ms ratio" from the medians,
# median over reps; the floor is the first command unless FLOOR_INDEX says otherwise
summarize() {
  "$PY" - "$work" "$1" "$2" "$REPS" "${3:-0}" <<'EOF'
import json, statistics, sys
work, name, index, reps, floor = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
floors, measured, ratios = [], [], []
for rep in range(1, reps + 1):
    results = json.load(open(f"{work}/{name}.{rep}.json"))["results"]
    f, m = results[floor]["median"], results[index]["median"]
    floors.append(f); measured.append(m); ratios.append(m / f)
print(f"{statistics.median(floors)*1e3:.1f} {statistics.median(measured)*1e3:.1f} "
      f"{statistics.median(ratios):.2f} "
      + ",".join(f"{r:.2f}" for r in ratios))
EOF
}

verdict() { # verdict RATIO LIMIT [ge]
  "$PY" -c 'import sys; r, l = float(sys.argv[1]), float(sys.argv[2]); ok = r >= l if sys.argv[3] == "ge" else r <= l; print("pass" if ok else "MISS")' "$1" "$2" "${3:-le}"
}

# --- target 1: one alertctl failure, console notifier --------------------------------
t1() {
  local dir=$work/t1 floor_db state
  mkdir -p "$dir"
  floor_db=$dir/floor.db
  state=$dir/state.db
  sqlite3 "$floor_db" "PRAGMA journal_mode = WAL; CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);" >/dev/null
  "$FLOOR" --init "$dir/rust-floor.db"
  "$ALERTCTL" --state "$state" status >/dev/null # create and migrate the state file
  local fail="failure bench-alert.service --result exit-code --exit-status 1"
  local again="failure bench-again.service --result exit-code --exit-status 1"
  hyperfine_reps t1 \
    "sqlite3 $floor_db 'DELETE FROM t'::sqlite3 $floor_db \"INSERT INTO t (v) VALUES ('x')\"" \
    "$ALERTCTL --state $state clear bench-alert.service::$ALERTCTL --state $state $fail" \
    "bash -c '$ALERTCTL --state $state clear bench-again.service && $ALERTCTL --state $state $again'::$ALERTCTL --state $state $again" \
    "sqlite3 $dir/rust-floor.db 'DELETE FROM events'::$FLOOR $dir/rust-floor.db"
  local s f m r all
  # the floor is bench_floor (command 3): it opens and closes its database as the store
  # does, so both leave a short write-ahead log in place
  read -r f m r all <<<"$(summarize t1 1 3)"
  record "1. alertctl failure, console, alert sent" "bench_floor $f ms" "$m ms" "$r ($all)" "<= 1.5" "$(verdict "$r" 1.5)"
  read -r f m r all <<<"$(summarize t1 2 3)"
  record "1b. same, repeat failure (suppressed)" "bench_floor $f ms" "$m ms" "$r ($all)" "<= 1.5" "$(verdict "$r" 1.5)"
  read -r f m r all <<<"$(summarize t1 0 3)"
  record "(ref) sqlite3 CLI, one-row insert" "bench_floor $f ms" "$m ms" "$r ($all)" "-" "info"
  # the alerts went out and were recorded
  s=$(sqlite3 "$state" "SELECT count(*) FROM notifications WHERE service = 'bench-alert.service' AND status = 'delivered'")
  [ "$s" -ge "$RUNS" ] || die "target 1: only $s delivered alerts recorded"
}

# --- target 2: one alertctl failure, email to a local SMTP sink ----------------------
t2() {
  local dir=$work/t2 floor_db state config port http f m r all
  mkdir -p "$dir"
  floor_db=$dir/floor.db
  state=$dir/state.db
  config=$dir/alertcore.toml
  if ! "$PY" -c 'import aiosmtpd' 2>/dev/null; then
    record "2. alertctl failure, email" "-" "not measured" "-" "<= 2" "SKIP (no python3-aiosmtpd)"
    return
  fi
  read -r port http <<<"$("$PY" -c 'import socket
ps = [socket.socket() for _ in range(2)]
for s in ps: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ps])')"
  "$PY" tests/peers/smtp-sink.py --port "$port" --http-port "$http" \
    --ready-file "$dir/ready" >"$dir/sink.log" 2>&1 &
  sink_pid=$!
  for _ in $(seq 100); do [ -s "$dir/ready" ] && break; sleep 0.1; done
  [ -s "$dir/ready" ] || die "target 2: the SMTP sink did not start: $(cat "$dir/sink.log")"
  cat >"$config" <<EOF
[notifiers.mail]
type = "email"
url = "smtp://127.0.0.1:$port"
from = "alertcore <alertcore@example.org>"
to = ["ops@example.org"]
EOF
  if ! "$ALERTCTL" --config "$config" config check >"$dir/check.log" 2>&1; then
    record "2. alertctl failure, email" "-" "not measured" "-" "<= 2" "SKIP (config check: $(tr '\n' ' ' <"$dir/check.log"))"
    return
  fi
  "$EMAIL_FLOOR" --init "$floor_db"
  local ac="$ALERTCTL --config $config --state $state"
  local fail="failure bench-mail.service --result exit-code --exit-status 1"
  # one alert first: the floor sends the very message alertctl sent
  $ac $fail >/dev/null 2>&1 || die "target 2: alertctl failure did not send its alert"
  "$PY" -c 'import sys, urllib.request
sys.stdout.buffer.write(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/messages/1/raw").read())' "$http" >"$dir/alert.eml"
  [ -s "$dir/alert.eml" ] || die "target 2: the sink has no message from alertctl"
  hyperfine_reps t2 \
    "true::$EMAIL_FLOOR $floor_db 127.0.0.1:$port $dir/alert.eml alertcore@example.org ops@example.org" \
    "$ac clear bench-mail.service::$ac $fail"
  read -r f m r all <<<"$(summarize t2 1)"
  # every alert reached the sink (the floor's sessions say EHLO bench, lettre's do not)
  local sent got
  sent=$(sqlite3 "$state" "SELECT count(*) FROM notifications WHERE status = 'delivered'")
  got=$("$PY" -c 'import json, sys, urllib.request
ms = json.load(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/messages"))
print(sum(1 for m in ms if m["helo"] != "bench"))' "$http")
  if [ "$sent" != "$got" ] || [ "$sent" -lt "$RUNS" ]; then
    die "target 2: $sent alerts recorded as delivered, $got messages at the sink"
  fi
  record "2. alertctl failure, email to SMTP sink" "bench_email_floor $f ms" "$m ms" "$r ($all)" "<= 2" "$(verdict "$r" 2)"
  # What the sink itself takes per message: one of our alerts, unchanged, sent again over
  # a fresh connection (EHLO, MAIL, RCPT, DATA, QUIT) from one long-lived Python process,
  # so no process start is counted. alertctl's email path cannot be faster than this.
  local session
  session=$("$PY" - "$port" "$dir/alert.eml" "$((REPS * RUNS))" <<'EOF'
import smtplib, statistics, sys, time
port, msg, n = int(sys.argv[1]), open(sys.argv[2], "rb").read(), int(sys.argv[3])
times = []
for _ in range(n):
    start = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port, local_hostname="bench") as s:
        s.sendmail("alertcore@example.org", ["ops@example.org"], msg)
    times.append(time.perf_counter() - start)
print(f"{statistics.median(times) * 1e3:.1f}")
EOF
)
  record "(ref) one SMTP session to the same sink, in-process" "-" "$session ms" "-" "-" "info"
  kill "$sink_pid" 2>/dev/null || true
  wait "$sink_pid" 2>/dev/null || true
  sink_pid=
}

# --- target 3: PROCS concurrent processes on one state file -------------------------
# spawn KIND DB : starts PROCS processes at once, waits for all; prints "ms failed"
spawn() {
  local kind=$1 db=$2 i start end failed=0 pids=()
  start=$(date +%s%N)
  for ((i = 0; i < PROCS; i++)); do
    if [ "$kind" = floor ]; then
      "$FLOOR" "$db" "bench-$((i % UNITS)).service" >/dev/null 2>>"$db.err" &
    else
      "$ALERTCTL" --state "$db" failure "bench-$((i % UNITS)).service" \
        --result exit-code --exit-status 1 >/dev/null 2>>"$db.err" &
    fi
    pids+=($!)
  done
  for i in "${pids[@]}"; do wait "$i" || failed=$((failed + 1)); done
  end=$(date +%s%N)
  echo "$(((end - start) / 1000000)) $failed"
}

t3() {
  local dir=$work/t3 rep ms failed n f m r all floors=() alerts=()
  mkdir -p "$dir"
  for ((rep = 1; rep <= REPS; rep++)); do
    for kind in floor alertctl; do
      local db=$dir/$kind.$rep.db
      if [ "$kind" = floor ]; then "$FLOOR" --init "$db"; else "$ALERTCTL" --state "$db" status >/dev/null; fi
      log "target 3: $PROCS concurrent $kind processes, repetition $rep/$REPS (load $(load))"
      read -r ms failed <<<"$(spawn "$kind" "$db")"
      echo "   $ms ms, $failed failed" >&2
      [ "$failed" = 0 ] || die "target 3: $failed $kind processes failed: $(tail -5 "$db.err")"
      if [ "$kind" = floor ]; then
        n=$(sqlite3 "$db" "SELECT count(*) FROM events")
        [ "$n" = "$PROCS" ] || die "target 3: floor recorded $n of $PROCS events"
        floors+=("$ms")
      else
        # nothing lost: every failure in the history, every unit's streak counted,
        # exactly one alert per unit, delivered
        n=$(sqlite3 "$db" "SELECT count(*) FROM failures")
        [ "$n" = "$PROCS" ] || die "target 3: $n of $PROCS failures recorded"
        n=$("$ALERTCTL" --state "$db" status --json | "$PY" -c 'import json, sys
print(sum(s["consecutive_failures"] for s in json.load(sys.stdin)["services"]))')
        [ "$n" = "$PROCS" ] || die "target 3: streaks add up to $n, not $PROCS"
        n=$(sqlite3 "$db" "SELECT count(*) FROM notifications WHERE status = 'delivered'")
        local units=$((PROCS < UNITS ? PROCS : UNITS))
        [ "$n" = "$units" ] || die "target 3: $n alerts delivered, expected $units (one per unit)"
        alerts+=("$ms")
      fi
    done
  done
  read -r f m r all <<<"$("$PY" - "${floors[*]}" "${alerts[*]}" <<'EOF'
import statistics, sys
f = [float(x) for x in sys.argv[1].split()]
m = [float(x) for x in sys.argv[2].split()]
r = [b / a for a, b in zip(f, m)]
print(f"{statistics.median(f):.0f} {statistics.median(m):.0f} {statistics.median(r):.2f} "
      + ",".join(f"{x:.2f}" for x in r))
EOF
)"
  record "3. $PROCS concurrent alertctl failure, $UNITS units" "$PROCS x bench_floor $f ms" "$m ms" "$r ($all)" "<= 2" "$(verdict "$r" 2)"
}

# --- target 4: the engine in one process ---------------------------------------------
t4() {
  local out ep fp r
  # one event at a time against the FULL loop; TASKS at once (group commit) against the
  # NORMAL loop (no fsync per commit)
  log "target 4: engine_throughput, $ROUNDS rounds of ${SECONDS_PER_ROUND}s per side (load $(load))"
  out=$("$THROUGHPUT" --seconds "$SECONDS_PER_ROUND" --rounds "$ROUNDS" --dir "$work")
  echo "$out" >&2
  ep=$(sed -n 's/^events_per_s=//p' <<<"$out")
  fp=$(sed -n 's/^floor_events_per_s=//p' <<<"$out")
  r=$(sed -n 's/^ratio=//p' <<<"$out")
  record "4. Engine + SqliteStore, one event at a time, events/s" "rusqlite loop, FULL, $fp/s" "$ep/s" "$r" ">= 0.9" "$(verdict "$r" 0.9 ge)"
  log "target 4b: the same, $TASKS tasks at once, against synchronous = NORMAL (load $(load))"
  out=$("$THROUGHPUT" --seconds "$SECONDS_PER_ROUND" --rounds "$ROUNDS" --dir "$work" --tasks "$TASKS" --floor-sync normal)
  echo "$out" >&2
  ep=$(sed -n 's/^events_per_s=//p' <<<"$out")
  fp=$(sed -n 's/^floor_events_per_s=//p' <<<"$out")
  r=$(sed -n 's/^ratio=//p' <<<"$out")
  record "4b. Engine + SqliteStore, $TASKS tasks at once, events/s" "rusqlite loop, NORMAL, $fp/s" "$ep/s" "$r" ">= 0.5" "$(verdict "$r" 0.5 ge)"
}

log "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), kernel $(uname -r), load $(load)"
for t in ${BENCH_ONLY:-1 2 3 4}; do "t$t"; done

log "summary (load now $(load); ratios: median over $REPS repetitions, then each)"
{
  echo "| target | floor | measured | ratio | limit | verdict |"
  echo "|---|---|---|---|---|---|"
  while IFS='|' read -r a b c d e f; do echo "| $a | $b | $c | $d | $e | $f |"; done <"$results"
}
