#!/usr/bin/env bash
# A boot where many units fail at once (issue 5): BURST_PROCS `alertctl failure` handler
# processes started together against one state file, with one webhook notifier posting
# to bench/http-counter.py on 127.0.0.1, which counts open connections and requests in
# flight. After the last process exits, `alertctl flush` runs until the outbox holds no
# pending row. Release build.
#
#   bench/burst.sh                                   # 1000 processes, 1000 units, default limit
#   BURST_UNITS=200 bench/burst.sh                   # 200 units x 5 failures each
#   BURST_MAX_CONCURRENT="default 64" bench/burst.sh # one run per value of max_concurrent
#   BURST_DELAY_MS=50 bench/burst.sh                 # the receiver answers after 50 ms
#   BURST_MEM=1 bench/burst.sh                       # also memory (slows the run down)
#
# Each run reports, from the first start:
#   exit_s       when the last handler process had exited
#   delivered_s  when the receiver answered the last webhook
#   empty_s      when the outbox held no pending row (after the flushes: `flushes` runs)
# and peak open TCP connections and requests in flight at the receiver, deliveries
# (must be one per unit: every unit is one streak, threshold 1, no reminders), the
# number of handler processes that exited non-zero (with their codes), and the rows
# left pending or failed. It fails if a webhook is missing or duplicated.
#
# BURST_MEM=1 runs each handler under `/usr/bin/time -f %M` (max RSS of each process)
# and samples /proc every BURST_SAMPLE_MS (default 20) for the sum of the RSS of the
# alertctl processes alive at once (shared pages, such as the binary's text, count once
# per process) and for MemTotal - MemAvailable above what it was before the start. The
# sampling takes CPU from the burst, so its times are not the burst's times.
#
# Other knobs: BURST_REPS (1), BURST_PARALLEL (0: all at once; K: at most K handlers
# at a time, through xargs -P K), BURST_FLUSH_MAX (200 flush runs at most), BURST_KEEP=1
# (keep the work directory). Needs sqlite3 and /usr/bin/python3 (and /usr/bin/time for
# BURST_MEM). Paths must not contain spaces.
set -euo pipefail
cd "$(dirname "$0")/.."

PROCS=${BURST_PROCS:-1000}
UNITS=${BURST_UNITS:-1000}
LIMITS=${BURST_MAX_CONCURRENT:-default}
DELAY=${BURST_DELAY_MS:-0}
MEM=${BURST_MEM:-0}
REPS=${BURST_REPS:-1}
PARALLEL=${BURST_PARALLEL:-0}
FLUSH_MAX=${BURST_FLUSH_MAX:-200}
SAMPLE_MS=${BURST_SAMPLE_MS:-20}
PY=/usr/bin/python3

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'bench/burst.sh: %s\n' "$*" >&2; exit 1; }
load() { cut -d' ' -f1-3 /proc/loadavg; }
now() { date +%s.%N; }
command -v sqlite3 >/dev/null || die "sqlite3 is required"
[ -x "$PY" ] || die "/usr/bin/python3 is required"
[ "$MEM" = 0 ] || [ -x /usr/bin/time ] || die "BURST_MEM=1 needs /usr/bin/time (apt-get install time)"
[ "$UNITS" -le "$PROCS" ] || UNITS=$PROCS

log "building alertctl (release)"
cargo build --release --quiet --bin alertctl
target_dir=$(cargo metadata --format-version 1 --no-deps |
  "$PY" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
ALERTCTL=$target_dir/release/alertctl

work=$(mktemp -d "${TMPDIR:-/tmp}/alertcore-burst.XXXXXX")
recv_pid=
sampler_pid=
cleanup() {
  if [ -n "$sampler_pid" ]; then kill "$sampler_pid" 2>/dev/null || true; fi
  if [ -n "$recv_pid" ]; then kill "$recv_pid" 2>/dev/null || true; fi
  if [ -n "${BURST_KEEP:-}" ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# --- the receiver ------------------------------------------------------------------
# shellcheck source=bench/receiver.sh
. bench/receiver.sh
start_receiver "$work" "$DELAY"
stats() { curl -sf "http://127.0.0.1:$ctl/stats${1:-}"; }
stats_reset() { curl -sf -X DELETE "http://127.0.0.1:$ctl/stats" >/dev/null; }

# --- one burst ------------------------------------------------------------------------
# sampler OUT MATCH: sums the RSS of the alertctl processes alive at each sample whose
# command line holds MATCH, until OUT.stop exists, then writes "peak_sum_kib peak_procs
# peak_used_kib samples" to OUT
sampler() {
  "$PY" - "$1" "$SAMPLE_MS" "$2" <<'EOF' &
import os, sys, time
out, every, mine = sys.argv[1], float(sys.argv[2]) / 1000, sys.argv[3].encode()
page = os.sysconf("SC_PAGE_SIZE") // 1024
def used():
    m = {}
    with open("/proc/meminfo") as f:
        for line in f:
            k, v = line.split(":", 1)
            m[k] = int(v.split()[0])
    return m["MemTotal"] - m["MemAvailable"]
base = used()
peak_sum = peak_procs = peak_used = samples = 0
while not os.path.exists(out + ".stop"):
    total = procs = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                s = f.read()
        except OSError:
            continue
        if s[s.index("(") + 1:s.rindex(")")] != "alertctl" or s[s.rindex(")") + 2] == "Z":
            continue
        try:  # ours only: other alertctl processes on the machine are not counted
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if mine not in f.read():
                    continue
        except OSError:
            continue
        procs += 1
        total += int(s[s.rindex(")") + 2:].split()[21]) * page
    peak_sum, peak_procs = max(peak_sum, total), max(peak_procs, procs)
    peak_used = max(peak_used, used() - base)
    samples += 1
    time.sleep(every)
with open(out, "w") as f:
    f.write(f"{peak_sum} {peak_procs} {peak_used} {samples}\n")
EOF
  sampler_pid=$!
}

# burst DIR LIMIT REP: one run; appends a result line to $work/results.txt
burst() {
  local dir=$1 limit=$2 rep=$3 config state i start t_exit t_empty flushes=0 pending
  mkdir -p "$dir"
  config=$dir/alertcore.toml
  state=$dir/state.db
  {
    echo '[notifiers.hook]'
    echo 'type = "webhook"'
    echo "url = \"http://127.0.0.1:$port/hook\""
    [ "$limit" = default ] || echo "max_concurrent = $limit"
  } >"$config"
  "$ALERTCTL" --config "$config" config check >/dev/null || die "config check failed"
  "$ALERTCTL" --config "$config" --state "$state" status >/dev/null # create the state file
  # the command of handler i, one per line, for xargs or the loop
  for ((i = 0; i < PROCS; i++)); do
    echo "$i burst-$((i % UNITS)).service"
  done >"$dir/jobs"
  local run=("$ALERTCTL" --config "$config" --state "$state")
  stats_reset
  if [ "$MEM" != 0 ]; then sampler "$dir/rss" "$state"; fi
  log "$PROCS handlers, $UNITS units, max_concurrent $limit, receiver delay ${DELAY} ms, repetition $rep (load $(load); cargo/rustc running: $(pgrep -c -x 'cargo|rustc' || true))"
  start=$(now)
  if [ "$PARALLEL" = 0 ]; then
    local pids=() ids=()
    while read -r i unit; do
      if [ "$MEM" = 0 ]; then
        "${run[@]}" failure "$unit" --result exit-code --exit-status 1 >/dev/null 2>"$dir/err.$i" &
      else
        /usr/bin/time -f '%M %e %x' -o "$dir/time.$i" \
          "${run[@]}" failure "$unit" --result exit-code --exit-status 1 >/dev/null 2>"$dir/err.$i" &
      fi
      pids+=($!)
      ids+=("$i")
    done <"$dir/jobs"
    for ((i = 0; i < ${#pids[@]}; i++)); do
      local rc=0
      wait "${pids[$i]}" || rc=$?
      echo "${ids[$i]} $rc" >>"$dir/codes"
    done
  else
    # xargs -P: at most PARALLEL at a time; each writes its own exit code
    export ALERTCTL dir MEM config state
    xargs -P "$PARALLEL" -L 1 bash -c '
      i=$1 unit=$2 rc=0 ac=("$ALERTCTL" --config "$config" --state "$state")
      if [ "$MEM" = 0 ]; then "${ac[@]}" failure "$unit" --result exit-code --exit-status 1 >/dev/null 2>"$dir/err.$i" || rc=$?
      else /usr/bin/time -f "%M %e %x" -o "$dir/time.$i" "${ac[@]}" failure "$unit" --result exit-code --exit-status 1 >/dev/null 2>"$dir/err.$i" || rc=$?; fi
      echo "$i $rc" >>"$dir/codes"' _ <"$dir/jobs" || true
  fi
  t_exit=$(now)
  # then flush until nothing is pending (a row left over a limit is due now); give up
  # after FLUSH_MAX flushes or 5 in a row that change nothing (say, rows leased by a
  # handler that exited without recording its attempt: sent again when the lease ends)
  local last=-1 still=0
  while :; do
    pending=$(sqlite3 "$state" "SELECT count(*) FROM notifications WHERE status = 'pending'")
    [ "$pending" = 0 ] && break
    if [ "$pending" = "$last" ]; then still=$((still + 1)); else still=0; fi
    last=$pending
    if [ "$flushes" -ge "$FLUSH_MAX" ] || [ "$still" -ge 5 ]; then
      log "still $pending pending after $flushes flushes; giving up"
      break
    fi
    "${run[@]}" flush >/dev/null 2>>"$dir/flush.err" || true
    flushes=$((flushes + 1))
  done
  t_empty=$(now)
  sqlite3 -header "$state" "SELECT id, service, attempts, next_attempt_ms, lease_ms, error
    FROM notifications WHERE status != 'delivered'" >"$dir/left.txt"
  if [ "$MEM" != 0 ]; then
    touch "$dir/rss.stop"
    wait "$sampler_pid" || true
    sampler_pid=
  fi
  stats "?wait=$UNITS&timeout=10" >"$dir/stats.json"
  sqlite3 "$state" "SELECT status, count(*) FROM notifications GROUP BY status" >"$dir/rows.txt"
  [ ! -s "$dir/flush.err" ] || { log "stderr of the flushes:"; sed "s|$dir|DIR|g" "$dir/flush.err" | sort | uniq -c | sort -rn | head -3 >&2; }
  "$PY" - "$dir" "$start" "$t_exit" "$t_empty" "$flushes" "$PROCS" "$UNITS" "$limit" "$DELAY" "$MEM" <<'EOF' >>"$work/results.txt"
import collections, glob, json, os, statistics, sys
d, start, t_exit, t_empty = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
flushes, procs, units, limit, delay, mem = sys.argv[5:11]
s = json.load(open(f"{d}/stats.json"))
codes = collections.Counter()
for line in open(f"{d}/codes"):
    codes[int(line.split()[1])] += 1
nonzero = sum(n for c, n in codes.items() if c != 0)
rows = {k: int(v) for k, v in (l.split("|") for l in open(f"{d}/rows.txt").read().split())}
dups = {k: n for k, n in s["by_key"].items() if n != 1}
want = {f"burst-{u}.service failure" for u in range(int(units))}
missing = want - set(s["by_key"])
problems = []
if dups:
    # each copy: (connection accepted, header read, answered) in s from the start, and
    # the connection's number
    rel = {k: [(round(a - start, 2), round(b - start, 2), round(e - start, 2), c)
               for a, b, e, c in v]
           for k, v in list(s["repeats"].items())[:5]}
    problems.append(f"duplicated ({len(dups)}): {rel}")
if missing: problems.append(f"missing: {sorted(missing)[:5]} ({len(missing)})")
if set(s["by_key"]) - want: problems.append(f"unexpected: {sorted(set(s['by_key']) - want)[:5]}")
if s["bad_requests"]: problems.append(f"{s['bad_requests']} bad requests")
left = {k: v for k, v in rows.items() if k != "delivered"}
if left: problems.append(f"outbox rows not delivered: {left}")
if sum(rows.values()) != int(units): problems.append(f"{sum(rows.values())} outbox rows for {units} units")
if codes.keys() - {0}: problems.append(f"handlers exited non-zero: {dict(codes)}")
out = {
    "procs": procs, "units": units, "max_concurrent": limit, "delay_ms": delay, "mem": mem,
    "exit_s": round(t_exit - start, 2),
    "delivered_s": round((s["last_answer"] or start) - start, 2),
    "empty_s": round(t_empty - start, 2),
    "flushes": int(flushes),
    "deliveries": s["requests"],
    "peak_connections": s["peak_connections"],
    "peak_in_flight": s["peak_in_flight"],
    "connections_opened": s["accepted_connections"],
    "nonzero_exits": nonzero,
    "exit_codes": dict(sorted(codes.items())),
    "rows": rows,
    "problems": problems,
}
if mem != "0":
    rss = []
    for f in glob.glob(f"{d}/time.*"):
        lines = [l for l in open(f).read().split("\n") if l.strip()]
        if lines:
            rss.append(int(lines[-1].split()[0]))
    peak_sum, peak_procs, peak_used, samples = map(int, open(f"{d}/rss").read().split())
    out.update({
        "max_rss_kib": max(rss), "median_rss_kib": int(statistics.median(rss)),
        "peak_sum_rss_kib": peak_sum, "peak_alertctl_alive": peak_procs,
        "peak_mem_used_kib": peak_used, "samples": samples,
    })
print(json.dumps(out))
EOF
  tail -1 "$work/results.txt" >&2
  if [ "$(find "$dir" -name 'err.*' -size +0 | wc -l)" != 0 ]; then
    log "stderr of some handlers (first 3 distinct lines):"
    cat "$dir"/err.* | sed "s|$dir|DIR|g" | sort | uniq -c | sort -rn | head -3 >&2
  fi
}

log "machine: $(nproc) cores, kernel $(uname -r), load $(load); alertctl $($ALERTCTL --version)"
: >"$work/results.txt"
for limit in $LIMITS; do
  for ((rep = 1; rep <= REPS; rep++)); do
    burst "$work/run.$limit.$rep" "$limit" "$rep"
  done
done
log "done (load $(load))"

"$PY" - "$work/results.txt" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
mem = any(r["mem"] != "0" for r in rows)
head = ["procs", "units", "max_concurrent", "delay ms", "exit s", "delivered s", "empty s",
        "flushes", "deliveries", "peak conns", "peak in flight", "exit != 0"]
if mem:
    head += ["max RSS/proc", "median RSS", "peak sum RSS", "alive at once", "peak used"]
print("| " + " | ".join(head) + " |")
print("|" + "---|" * len(head))
bad = False
for r in rows:
    cells = [r["procs"], r["units"], r["max_concurrent"], r["delay_ms"], r["exit_s"],
             r["delivered_s"], r["empty_s"], r["flushes"], r["deliveries"],
             r["peak_connections"], r["peak_in_flight"],
             f'{r["nonzero_exits"]} {r["exit_codes"]}' if r["nonzero_exits"] else 0]
    if mem:
        mib = lambda k: f'{r[k] / 1024:.1f} MiB' if k in r else "-"
        cells += [mib("max_rss_kib"), mib("median_rss_kib"), mib("peak_sum_rss_kib"),
                  r.get("peak_alertctl_alive", "-"), mib("peak_mem_used_kib")]
    print("| " + " | ".join(str(c) for c in cells) + " |")
    if r["problems"]:
        bad = True
        print(f"PROBLEM: {'; '.join(r['problems'])}; rows {r['rows']}", file=sys.stderr)
sys.exit(1 if bad else 0)
EOF
