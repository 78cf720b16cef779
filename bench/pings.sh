#!/usr/bin/env bash
# The ping listener: how many durable pings a second `alertctl run`'s [http] listener
# takes (each one answered `200 OK` only once its signal is committed, synchronous=FULL),
# and a ping's latency under that load, side by side with the floor: the same number of
# one-row durable commits of a signal row (examples/bench_ping_floor.rs: the store's
# settings, one transaction per row, no HTTP, no judging), one after the other and from C
# threads. Goal (issue 19): at least 2,000 durable pings/s. Release build.
#
#   bench/pings.sh                      # C=64 connections, D=10 s, one heartbeat
#   C=8 D=20 bench/pings.sh
#
# The load is wrk (Debian's), T=2 threads on this 2-core machine beside the daemon: the
# figures include sharing the CPU with the load generator. Pings are recorded as the
# rows the run added to the signals table (its max id before and after), so a ping wrk
# counted but the daemon did not commit would show as a difference.
#
# Prints `alertctl ...` and `floor ...` lines: pings_per_s (wrk's requests/s), recorded
# (rows), non_2xx, p50/p99/max latency (wrk), daemon CPU seconds and % over the window.
set -euo pipefail
cd "$(dirname "$0")/.."
C=${C:-64}
D=${D:-10}
T=${T:-2}
PORT=${PORT:-18711}
W=${PINGS_WORK:-$PWD/target/bench-pings}
rm -rf "$W"
mkdir -p "$W"
cargo build --release -q --bin alertctl --example bench_ping_floor
CTL=target/release/alertctl
FLOOR=target/release/examples/bench_ping_floor
cat >"$W/alertcore.toml" <<TOML
[http]
listen = "127.0.0.1:$PORT"

[[heartbeats]]
name = "bench"
period = "1h"
TOML
max_id() {
  python3 -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print(c.execute("select coalesce(max(id),0) from signals").fetchone()[0])' "$W/state.db"
}
cpu_s() { awk '{print ($14+$15)/100}' "/proc/$1/stat"; }

echo "machine: $(nproc) cores, $(uname -r), $(df -h "$W" | awk 'NR==2{print $1" "$2}'), wrk -t$T -c$C -d${D}s"
ALERTCORE_LOG=warn "$CTL" --config "$W/alertcore.toml" --state "$W/state.db" run 2>"$W/daemon.log" &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  curl -fsS -o /dev/null "http://127.0.0.1:$PORT/ping/bench" 2>/dev/null && break
  sleep 0.05
done
wrk -t"$T" -c"$C" -d2s "http://127.0.0.1:$PORT/ping/bench" >/dev/null   # warm-up
before=$(max_id)
cpu0=$(cpu_s $PID)
wrk -t"$T" -c"$C" -d"${D}s" --latency "http://127.0.0.1:$PORT/ping/bench" >"$W/wrk.out"
cpu1=$(cpu_s $PID)
sleep 0.5
after=$(max_id)
kill -TERM $PID
wait $PID || true
trap - EXIT
recorded=$((after - before))
rps=$(awk '/^Requests\/sec/{printf "%.0f", $2}' "$W/wrk.out")
total=$(awk '/requests in/{print $1}' "$W/wrk.out")
non2xx=$(awk '/Non-2xx/{print $5}' "$W/wrk.out")
p50=$(awk '$1=="50%"{print $2}' "$W/wrk.out")
p99=$(awk '$1=="99%"{print $2}' "$W/wrk.out")
max=$(awk '/Latency/ && !/Distribution/{print $4; exit}' "$W/wrk.out")
cpu=$(awk -v a="$cpu0" -v b="$cpu1" -v d="$D" 'BEGIN{printf "%.2f %.0f", b-a, 100*(b-a)/d}')
echo "alertctl pings_per_s=$rps answered=$total recorded=$recorded non_2xx=${non2xx:-0} p50=$p50 p99=$p99 max=$max cpu_s_pct=\"$cpu\""
for threads in 1 "$C"; do
  rm -f "$W"/floor.db*
  echo "$("$FLOOR" "$W/floor.db" "$recorded" "$threads")"
done
