#!/usr/bin/env bash
# The polling daemon against Monit: `alertctl run` with N cheap `tcp` checks to local
# listeners at a 10 s interval, side by side with ../shared/bench/monit-checks.sh (Monit
# 5.33, the same workload and the same harness definitions) - scheduling lag p50/p99, CPU %,
# RSS, missed runs. Goals: lag p99 < 50 ms, CPU and RSS at or under Monit's in the same run,
# nothing missed. Release build.
#
#   bench/checks.sh                              # NS="100 1000 10000": ~80 s per N (+ up to 70 s
#                                                # waiting for an earlier run's TIME_WAITs)
#   bench/checks.sh --with-monit                 # then Monit on the same NS, in the same run
#   NS=10000 MEASURE_S=120 MONIT=1 bench/checks.sh | tee checks.out
#   NS="100 1000" MEASURE_S=20 SELFTEST=0 bench/checks.sh     # a quick look
#
# One fresh alertctl per N (`alertctl --config W/nN/alertcore.toml --state W/nN/state.db run`,
# W = CHECKS_WORK): check i is `name = "cNNNNN"`, `kind = "tcp"`, `address = "127.0.0.1"`,
# `port = PORT_BASE + i % PORTS`, `send = "cNNNNN\n"`, `interval = "${INTERVAL}s"`,
# `timeout = "5s"`; `[daemon]` defaults; no notifiers (the console one: every check passes,
# nothing is sent). bench/checks.py listens on those ports, stamps each connection as it
# accepts it and reads the id the check sends: Monit's harness tells a check by its place in
# Monit's serial order, alertctl runs checks concurrently, each at its own phase. It samples
# alertctl's /proc/PID/stat and VmRSS every 0.1 s and, after the window, reads the daemon's
# own view from its SIGUSR1 line (`R runs, M missed, start lag p50 X p99 Y`).
#
# Prints a machine line, the listener self-test (accept lag = how late the listener stamps a
# connection: the error bar of all timings), then per N
#   alertctl n=N interval=10 lag_p50_ms=.. lag_p99_ms=.. lag_max_ms=.. cpu_pct=.. rss_mib=..
#            missed=.. own_lag_p50_ms=.. own_lag_p99_ms=.. other_cpu_pct=.. + details
# and one `slice` line per INTERVAL of the window; field meanings: bench/checks.py's header.
# With MONIT=1 (or --with-monit), monit-checks.sh's output follows (NS, INTERVAL and MEASURE_S
# passed through, XML_NS= and SELFTEST=0): its `monit n=N ... lag_p99_ms= cpu_pct= rss_mib=
# missed=` lines are the ones to set beside ours. other_cpu_pct is the noise from elsewhere on
# this 2-core machine: compare within one run, and only runs where it is small.
#
# Knobs (environment): NS (100 1000 10000), INTERVAL (10), MEASURE_S (60: the window, after
# WARMUP (INTERVAL + 5: alertctl spreads its first runs over the first interval)), PORT_BASE
# (18500) and PORTS (16: checks round-robin over PORT_BASE..+PORTS-1, the self-test on the next
# PORTS ports; monit-checks.sh's are 18300..), SETTLE_TW (2000: before each run, wait <= 70 s
# until the TIME_WAIT sockets earlier runs left towards those ports are at most this many),
# SELFTEST (1), MONIT (0), MONIT_PORT_BASE (18300: monit-checks.sh's PORT_BASE), MONIT_SCRIPT
# (../shared/bench/monit-checks.sh), PERF_LOCK (/tmp/alertcore-bench.lock: taken around the
# measurement phase; released before monit-checks.sh, which takes it itself), CHECKS_WORK
# (/tmp/alertcore-perf/checks), CHECKS_TARGET (/tmp/alertcore-perf/target/alertctl: a cargo
# target dir of its own, so the build does not fight the workspace's). ALERTCORE_LOG reaches
# alertctl (default info: one line per change of a check's state, so N at the first runs).
#
# Needs cargo, /usr/bin/python3 (stdlib), ss, flock. Everything it starts is stopped by its PID
# (driver: SIGTERM -> it stops alertctl; trap: the PID file, checked against the command line).
set -euo pipefail
cd "$(dirname "$0")/.."

for arg in "$@"; do
  case $arg in
    --with-monit) MONIT=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench/checks.sh: unknown argument $arg (--with-monit)" >&2; exit 2 ;;
  esac
done

NS=${NS:-100 1000 10000}
INTERVAL=${INTERVAL:-10}
MEASURE_S=${MEASURE_S:-60}
WARMUP=${WARMUP:-$((INTERVAL + 5))}
PORT_BASE=${PORT_BASE:-18500}
PORTS=${PORTS:-16}
SETTLE_TW=${SETTLE_TW:-2000}
SELFTEST=${SELFTEST:-1}
MONIT=${MONIT:-0}
MONIT_PORT_BASE=${MONIT_PORT_BASE:-18300}
MONIT_SCRIPT=${MONIT_SCRIPT:-$(pwd)/../shared/bench/monit-checks.sh}
PERF_LOCK=${PERF_LOCK:-/tmp/alertcore-bench.lock}
WORK=${CHECKS_WORK:-/tmp/alertcore-perf/checks}
TARGET=${CHECKS_TARGET:-/tmp/alertcore-perf/target/alertctl}
PY=/usr/bin/python3
DRIVER=bench/checks.py
ALERTCTL=$TARGET/release/alertctl

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'bench/checks.sh: %s\n' "$*" >&2; exit 2; }
[ -x "$PY" ] || die "/usr/bin/python3 is required"
command -v ss >/dev/null || die "ss (iproute2) is required"
command -v flock >/dev/null || die "flock (util-linux) is required"
if [ "$MONIT" = 1 ]; then [ -x "$MONIT_SCRIPT" ] || [ -r "$MONIT_SCRIPT" ] || die "$MONIT_SCRIPT missing"; fi

machine_line() {
  echo "machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r), $(date -u +%FT%TZ); $(noise_line)"
}
# load average and CPU/IO pressure (PSI avg10): another process on this 2-core machine shows here
noise_line() {
  echo "load $(cut -d' ' -f1-3 /proc/loadavg), cpu-pressure $(awk '/some/{sub("avg10=","",$2); print $2}' /proc/pressure/cpu 2>/dev/null)%, io-pressure $(awk '/some/{sub("avg10=","",$2); print $2}' /proc/pressure/io 2>/dev/null)%"
}

# ---- build (outside the measurement lock)
log "building alertctl (release, $TARGET)"
CARGO_TARGET_DIR=$TARGET cargo build --release --quiet -p alertctl || die "cargo build failed"
[ -x "$ALERTCTL" ] || die "$ALERTCTL missing after the build"

PORT_LIST=$(seq -s, "$PORT_BASE" $((PORT_BASE + PORTS - 1)))
SELFTEST_PORTS=$(seq -s, $((PORT_BASE + PORTS)) $((PORT_BASE + 2 * PORTS - 1)))  # its TIME_WAITs stay off the checks' ports
port_free() { ! ss -Hltn "sport = :$1" | grep -q .; }
for p in $(seq "$PORT_BASE" $((PORT_BASE + 2 * PORTS - 1))); do
  port_free "$p" || die "127.0.0.1:$p is in use; set PORT_BASE"
done

# ---- everything started below is stopped by PID: the driver (a background job we wait for)
# and the alertctl it started (its PID in $WORK/alertctl.pid while it runs)
mkdir -p "$WORK"
PIDFILE=$WORK/alertctl.pid
DRIVER_PID=
stop_pid() {  # stop_pid PID: SIGTERM, wait <= 30 s, SIGKILL
  kill "$1" 2>/dev/null || return 0
  for _ in $(seq 300); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
}
stop_alertctl() {  # the alertctl a driver started, if that driver died without stopping it
  local p
  [ -s "$PIDFILE" ] || return 0
  p=$(cat "$PIDFILE")
  # only if that PID is still our alertctl (a stale file's PID may have been reused)
  if tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -qF -- "--config $WORK/"; then stop_pid "$p"; fi
  rm -f "$PIDFILE"
}
cleanup() {
  if [ -n "$DRIVER_PID" ]; then stop_pid "$DRIVER_PID"; fi
  stop_alertctl
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
driver() {  # run the driver as a background job, wait for it (so a signal reaches the trap at once)
  "$PY" "$DRIVER" "$@" &
  DRIVER_PID=$!
  local rc=0
  wait "$DRIVER_PID" || rc=$?
  DRIVER_PID=
  return $rc
}

stop_alertctl   # a stale PID file from an interrupted earlier run

# ---- measurement phase, under the exclusive lock
mkdir -p "$(dirname "$PERF_LOCK")"
exec 9>>"$PERF_LOCK"
t0=$(date +%s)
flock 9
waited=$(( $(date +%s) - t0 ))
[ "$waited" -gt 0 ] && log "waited ${waited}s for $PERF_LOCK"

machine_line
echo "alertctl $("$ALERTCTL" --version | awk '{print $NF}') ($(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo '+dirty')); \
checks round-robin over 127.0.0.1:$PORT_BASE..$((PORT_BASE + PORTS - 1)); interval=$INTERVAL; \
measure ${MEASURE_S}s after ${WARMUP}s of warm-up"
if [ "$SELFTEST" = 1 ]; then
  driver selftest --ports "$SELFTEST_PORTS" --rate 1000 --seconds 5 --burst 10000
fi
for n in $NS; do
  driver run --n "$n" --ports "$PORT_LIST" --dir "$WORK/n$n" --alertctl "$ALERTCTL" \
    --interval "$INTERVAL" --measure "$MEASURE_S" --warmup "$WARMUP" --pidfile "$PIDFILE" \
    --settle-tw "$SETTLE_TW" || echo "FAILED alertctl n=$n (see $WORK/n$n)"
  stop_alertctl
  echo "  after: $(noise_line)"
done
flock -u 9
exec 9>&-

# ---- Monit on the same workload, right after (it takes PERF_LOCK itself)
if [ "$MONIT" = 1 ]; then
  log "Monit: $MONIT_SCRIPT"
  NS=$NS INTERVAL=$INTERVAL MEASURE_S=$MEASURE_S XML_NS= SELFTEST=0 PORT_BASE=$MONIT_PORT_BASE \
    PORTS=$PORTS SETTLE_TW=$SETTLE_TW PERF_LOCK=$PERF_LOCK bash "$MONIT_SCRIPT" || echo "FAILED monit-checks.sh"
fi
