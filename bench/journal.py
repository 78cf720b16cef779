#!/usr/bin/env python3
"""Times `alertctl run` reading a finished journal through its chains (bench/journal.sh).

usage: journal.py --alertctl BIN --dir DIR --template TOML --entries N --runs R
                  --pushdown true|false --work W [--label L]

Per run: a fresh state dir W/run-K, the template with @DIR@, @PUSHDOWN@, @STATE@ filled in
(and checkpoint_after = "100ms", so the end is seen at most that late), then
`alertctl --config C --state S run`. The end is the moment the cursor saved in the state
database is the last entry journalctl would hand over (the last entry of DIR, or of DIR
with the matches the daemon logs it pushed down): polled every 10 ms with sqlite3. Timed
from spawn, so start-up is included. At the end, before SIGTERM: alertctl's CPU
(utime+stime), its journalctl child's CPU, VmHWM and RssAnon. Prints one line per run and
the median line:
  alertctl_journal <label> entries=N secs=.. entries_per_s=.. cpu_s=.. journalctl_cpu_s=..
                   rss_mib=.. rss_anon_mib=.. alerts=.. floor_beside_s=.. x_floor_beside=..
Before each run the floor (`journalctl --directory DIR -o json > /dev/null`, as
../shared/bench/fail2ban-journal.sh times it) runs once: x_floor_beside is that run's
time over alertctl's, and the median line gives the median of those ratios.
"""
import argparse
import json
import os
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import time

TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def status(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def children(pid):
    out = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return out


def last_cursor(directory, matches):
    out = subprocess.run(["journalctl", "--directory", directory, "--merge", "-o", "json", "-n", "1", *matches],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["__CURSOR"]


def one(a, k):
    state = os.path.join(a.work, f"run-{k}")
    shutil.rmtree(state, ignore_errors=True)
    os.makedirs(state)
    text = open(a.template).read().replace("@DIR@", a.dir).replace("@PUSHDOWN@", a.pushdown).replace("@STATE@", state)
    text = text.replace("[journal]\n", "[journal]\ncheckpoint_after = \"100ms\"\n", 1)
    config = os.path.join(state, "alertcore.toml")
    open(config, "w").write(text)
    db = os.path.join(state, "state.db")
    log = open(os.path.join(state, "daemon.log"), "w")
    env = dict(os.environ, ALERTCORE_LOG="info")
    t0 = time.monotonic()
    p = subprocess.Popen([a.alertctl, "--config", config, "--state", db, "run"], stdout=subprocess.DEVNULL, stderr=log, env=env)
    try:
        matches = None
        want = None
        child = None
        while True:
            time.sleep(0.01)
            if p.poll() is not None:
                sys.exit(f"alertctl exited: {open(log.name).read()}")
            if matches is None:
                text = open(log.name).read()
                m = re.search(r"matches handed to journalctl: (.*)", text)
                if m:
                    matches = m.group(1).split()
                elif "started:" in text:
                    matches = []
                else:
                    continue
                want = last_cursor(a.dir, matches)
            if child is None:
                kids = children(p.pid)
                child = kids[0] if kids else None
            try:
                con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.01)
                row = con.execute("SELECT state FROM sources WHERE kind = 'journal-cursor'").fetchone()
                con.close()
            except sqlite3.Error:
                row = None
            if row and row[0] == want:
                secs = time.monotonic() - t0
                break
            if time.monotonic() - t0 > 600:
                sys.exit("alertctl did not reach the last entry in 600 s")
        own = cpu_s(p.pid)
        jcpu = cpu_s(child) if child else 0.0
        hwm, anon = status(p.pid, "VmHWM"), status(p.pid, "RssAnon")
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=30)
    alerts = sum(1 for _ in open(os.path.join(state, "alerts.log"))) if os.path.exists(os.path.join(state, "alerts.log")) else 0
    return dict(secs=secs, entries_per_s=a.entries / secs, cpu_s=own, journalctl_cpu_s=jcpu,
                rss_mib=hwm, rss_anon_mib=anon, alerts=alerts, matched=len(matches or []) > 0)


def floor_secs(a):
    """The floor beside each run: `journalctl --directory DIR -o json > /dev/null`, the
    command ../shared/bench/fail2ban-journal.sh times as its floor, timed just before."""
    t0 = time.monotonic()
    subprocess.run(["journalctl", "--directory", a.dir, "-o", "json"], stdout=subprocess.DEVNULL, check=True)
    return time.monotonic() - t0


def line(label, a, r):
    return (f"alertctl_journal {label} entries={a.entries} secs={r['secs']:.3f} entries_per_s={r['entries_per_s']:.0f} "
            f"cpu_s={r['cpu_s']:.2f} journalctl_cpu_s={r['journalctl_cpu_s']:.2f} rss_mib={r['rss_mib']:.1f} "
            f"rss_anon_mib={r['rss_anon_mib']:.1f} alerts={r['alerts']} "
            f"floor_beside_s={r['floor_secs']:.3f} x_floor_beside={r['x_floor']:.2f}")


def main():
    ap = argparse.ArgumentParser()
    for k in ("alertctl", "dir", "template", "work", "pushdown"):
        ap.add_argument("--" + k, required=True)
    ap.add_argument("--entries", type=int, required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--label", default=None)
    a = ap.parse_args()
    label = a.label or ("pushdown" if a.pushdown == "true" else "no_pushdown")
    runs = []
    for k in range(a.runs):
        f = floor_secs(a)
        r = one(a, k)
        # the machine's speed drifts by a fifth over minutes: each run is set beside a
        # floor run made just before it, and the median of those ratios is reported
        r["floor_secs"] = f
        r["x_floor"] = f / r["secs"]
        runs.append(r)
        print("  run: " + line(label, a, r), flush=True)
    med = {k: statistics.median(r[k] for r in runs) for k in ("secs", "cpu_s", "journalctl_cpu_s", "rss_mib", "rss_anon_mib", "alerts",
                                                           "floor_secs", "x_floor")}
    med["entries_per_s"] = a.entries / med["secs"]
    print(line(label, a, med), flush=True)


if __name__ == "__main__":
    main()
