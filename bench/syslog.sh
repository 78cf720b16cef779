#!/usr/bin/env bash
# Syslog throughput (BENCHMARKS.md): messages per second through the syslog notifier, over
# UDP and over a unix datagram socket, next to a plain socket loop sending the same bytes
# (and a loop that formats each of those messages with one format!, for the cost of any
# fresh message at all).
#
#   bench/syslog.sh                  # 3 repetitions of 5 rounds of 100000 messages each
#   BENCH_REPS=5 N=200000 ROUNDS=3 bench/syslog.sh
#
# Receivers are threads of the program itself (examples/syslog_throughput.rs), so nothing
# needs installing. Each repetition prints one line per transport with the medians of its
# rounds; the last lines are the medians over the repetitions. The machine has 2 cores
# and other work moves single runs a lot: compare within one run, not across runs.
set -euo pipefail
cd "$(dirname "$0")/.."

REPS=${BENCH_REPS:-3}
export N=${N:-100000} ROUNDS=${ROUNDS:-5}

echo "== building (release)" >&2
cargo build --release --quiet --example syslog_throughput
target_dir=$(cargo metadata --format-version 1 --no-deps |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
bin=$target_dir/release/examples/syslog_throughput

out=$(mktemp "${TMPDIR:-/tmp}/alertcore-syslog-bench.XXXXXX")
trap 'rm -f "$out"' EXIT
for rep in $(seq "$REPS"); do
  echo "== repetition $rep/$REPS (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
  "$bin" | grep -v '^round=' | tee -a "$out"
done

echo "== medians over $REPS repetitions (N=$N, ROUNDS=$ROUNDS)"
# median KEY TRANSPORT: the median of KEY=value over the summary lines of TRANSPORT.
median() {
  grep "^transport=$2 " "$out" | tr ' ' '\n' | sed -n "s/^$1=//p" | sort -g |
    awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
for t in udp unix; do
  p=$(median plain_msgs_per_s "$t"); f=$(median formatted_msgs_per_s "$t"); q=$(median notifier_msgs_per_s "$t")
  awk -v t="$t" -v p="$p" -v f="$f" -v q="$q" 'BEGIN {
    printf "transport=%s plain_msgs_per_s=%.0f formatted_msgs_per_s=%.0f notifier_msgs_per_s=%.0f ratio=%.2f ratio_formatted=%.2f\n", t, p, f, q, q / p, q / f }'
done
