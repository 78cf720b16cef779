#!/usr/bin/env bash
# The journal chains against fail2ban and the journalctl floor, in one run: the 200,000-entry
# synthetic journal of ../shared/bench/fail2ban-journal.sh (10 % OpenSSH failed logins, the
# rest realistic noise) read by `alertctl run` through bench/journal-chains.toml's 20 rules,
# with the matches pushed down to journalctl and without, after that script's own floor
# (`journalctl -o json` to /dev/null) and fail2ban figures on the same files; then the
# README's sshd example alone with its match pushed down (fail2ban-server's workload:
# bench/journal-sshd.toml). Release build.
#
#   bench/journal.sh | tee journal.out        # ~6 min: fail2ban-journal.sh, then ours
#   PEERS=0 bench/journal.sh                   # ours only, on the journal a peers run left
#
# alertctl's figures come from bench/journal.py (its header says how it times and what it
# reads from /proc): entries_per_s is the whole file's entries over the time from spawn until
# the cursor saved in the state database is the last entry; cpu_s is alertctl's own CPU,
# journalctl_cpu_s its child's; rss_mib VmHWM, rss_anon_mib RssAnon at the end.
# Goals (issue): no pushdown >= 0.9 x the floor, pushdown >= fail2ban-server's rate, RSS < 20 MiB.
#
# Knobs: RUNS (3), PEERS (1), ENTRIES (200000, passed to the peers script), JOURNAL_TARGET
# (/tmp/alertcore-perf/target/journal: a cargo target dir of its own), PERF_LOCK.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
PEERS=${PEERS:-1}
export ENTRIES=${ENTRIES:-200000}
SHARED=../shared/bench
. "$SHARED/env.sh"
TARGET=${JOURNAL_TARGET:-$PERF_ROOT/target/journal}
LOCK=${PERF_LOCK:-/tmp/alertcore-bench.lock}
MAIN=$WORK/f2b-journal/main

cargo build --release --quiet --target-dir "$TARGET" --bin alertctl >&2
BIN=$TARGET/release/alertctl
echo "alertctl $(git rev-parse --short HEAD)$(git diff --quiet || echo +dirty) $(rustc --version)"
if [ "$PEERS" = 1 ]; then
  "$SHARED/fail2ban-journal.sh"
fi
[ -d "$MAIN" ] || { echo "no journal at $MAIN: run with PEERS=1 first" >&2; exit 1; }
mkdir -p "$WORK/journal-chains"
for pushdown in true false; do
  flock "$LOCK" /usr/bin/python3 bench/journal.py --alertctl "$BIN" --dir "$MAIN" \
    --template bench/journal-chains.toml --entries "$ENTRIES" --runs "$RUNS" \
    --pushdown "$pushdown" --work "$WORK/journal-chains"
done
# fail2ban-server's workload: the sshd example alone, its match pushed down
flock "$LOCK" /usr/bin/python3 bench/journal.py --alertctl "$BIN" --dir "$MAIN" \
  --template bench/journal-sshd.toml --entries "$ENTRIES" --runs "$RUNS" \
  --pushdown true --work "$WORK/journal-chains" --label sshd_only_pushdown
