#!/usr/bin/env python3
"""Driver for bench/checks.sh (stdlib only): an identifying TCP listener on 127.0.0.1, its
self-test, and one `alertctl run` with N `tcp` checks. The harness design and every
definition follow ../shared/bench/monit-checks.py (Monit's side of this comparison), so the
figures of the two are comparable; what differs is said below.

usage:
  checks.py selftest --ports P[,P..] [--rate 1000] [--seconds 5] [--burst 10000]
  checks.py run --n N --ports P[,P..] --dir DIR --alertctl PATH [--interval 10] [--measure 60]
                [--warmup 15] [--grace 2] [--pidfile F] [--settle-tw 2000]
  checks.py client ...   (internal: the self-test's connecting side, a separate process)

The listener: one thread, one epoll over the PORTS listening sockets (non-blocking, backlog 4096)
and the accepted connections. Each connection is stamped with time.monotonic() (CLOCK_MONOTONIC,
comparable across processes) as it is accepted, as Monit's harness does; the listener then reads
up to the newline the check sends (`send = "cNNNNN\\n"`) to learn which check it was, and closes.
(Monit checks serially in config order, so its harness tells check i by its position on its
port; alertctl runs checks concurrently, each at its own phase, so they say who they are.)
A connection that closes, or sends 64 bytes, without a well-formed id counts as `unidentified`.

selftest: a separate client process connects serially, sends `cNNNNN\\n` and closes, first paced
at --rate for --seconds, then back to back (--burst connections); it stamps the moment each
connect() returned.
  accept_lag_ms  listener's accept stamp - client's connect-returned stamp (matched by id): how
                 late the listener sees a connection = the error bar on its stamps
  connect_ms     how long connect() took (grows if the listener fell behind and its queue filled)

run: writes an alertcore.toml (no notifiers: the console one, which nothing reaches since every
check passes; `[daemon]` defaults; check i = `name = "cNNNNN"`, `kind = "tcp"`, `address =
"127.0.0.1"`, `port = PORTS[i % len(PORTS)]`, `send = "cNNNNN\\n"`, `interval = INTERVAL`, `timeout
= "5s"`), starts `alertctl --config DIR/alertcore.toml --state DIR/state.db run` with a fresh state
file, and samples /proc/PID/stat (utime+stime) and /proc/PID/status (VmRSS) every 0.1 s. alertctl
spreads the first runs over the first interval (a hash of each name), so the window measured is
[start + --warmup, start + --warmup + --measure]. --grace (2) s after its end the driver stops
counting connections (so a run due just before the end is still seen), sends SIGUSR1 (alertctl prints every check and `R runs, M missed, start lag p50 X
p99 Y` to stderr, then runs every check once more), waits for that line, stops alertctl (SIGTERM,
its PID) and prints
  alertctl n=N interval=.. lag_p50_ms=.. lag_p99_ms=.. lag_max_ms=.. cpu_pct=.. rss_mib=.. missed=..
           own_lag_p50_ms=.. own_lag_p99_ms=.. other_cpu_pct=.. + details
  lag_*_ms   per check: (time between its connections in consecutive runs) - INTERVAL, over every
             pair of consecutive connections of one check whose later one is in the window;
             p50/p99/max over all checks and pairs (Monit's definition: for Monit this is its
             cycle time; for a fixed-rate scheduler it is the run-to-run jitter, and a skipped
             run shows as one lag of a whole INTERVAL)
  cpu_pct    utime+stime delta / wall time between the samples just before the window's start and
             its end, % of one core
  rss_mib    max VmRSS sampled in the window; hwm_mib VmHWM (peak since start) at its end
  missed     runs due in the window that did not connect: each check's due times are its first
             connection + k * INTERVAL (alertctl keeps a fixed rate), each connection of the check
             belongs to the nearest due time, and a due time in the window with none (before the end
             of the grace) is missed (a check never seen at all misses round(MEASURE / INTERVAL));
             extra: connections beyond one per due time in the window; unidentified: connections
             without an id
  runs       connections belonging to due times in the window; checks_per_s = runs / MEASURE
  cpu_us_per_run      alertctl's CPU in the window / runs (Monit's: cpu_pct * period_s / 100 / N)
  wakeups_per_run     voluntary context switches of alertctl's main thread (the tokio runtime's) in
                      the window / runs: how often it went to sleep and was woken again
  own_*      the daemon's own figures from its SIGUSR1 line: own_runs, own_missed (due times it
             skipped since it started), own_lag_p50_ms/p99 (due time -> start of the run, a
             concurrency slot included, over its latest 65,536 runs, warm-up runs included)
  start_s    alertctl start -> first connection (config, state file, scheduler start-up)
  first_round_s  alertctl start -> the N-th check's first connection
  timewait   TIME_WAIT sockets towards the listener ports when the window ended (alertctl closes
             first, so they are its); timewait_start: at alertctl's start, after waiting (<= 70 s)
             for those of earlier runs to fall to <= --settle-tw
  listener_cpu_pct    this process (listener thread + sampler) over the same window
  other_cpu_pct       all other CPU use on the machine in that window (/proc/stat busy - alertctl -
                      this process), % of one core of the machine's nproc*100: noise from elsewhere
then one `slice` line per INTERVAL of the window: connections seen, lag p99/max of the pairs
ending in it, and alertctl's CPU in it (a checkpoint or a flush shows here).
"""
import argparse
import os
import re
import resource
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from array import array

CLK_TCK = os.sysconf("SC_CLK_TCK")
ID_RE = re.compile(rb"^c(\d{1,9})\n")
MAX_LINE = 64


class Listener:
    """One epoll thread: accept (stamp), read `cNNNNN\\n`, close. stamps[id] = [t, ...]."""

    def __init__(self, ports):
        self.ports = ports
        self.stamps = {}
        self.unidentified = 0
        self.accepted = 0
        self.cutoff = None  # stamps after this monotonic time are not recorded
        self.socks = {}
        for p in ports:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", p))
            s.listen(4096)
            s.setblocking(False)
            self.socks[s.fileno()] = s
        self.wake_r, self.wake_w = os.pipe()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        ep = select.epoll()
        for fd in self.socks:
            ep.register(fd, select.EPOLLIN)
        ep.register(self.wake_r, select.EPOLLIN)
        mono, read, close = time.monotonic, os.read, os.close
        accepts = {fd: s._accept for fd, s in self.socks.items()}  # C-level accept: (fd, addr)
        pending = {}  # fd -> [stamp, bytes so far]
        stamps = self.stamps
        try:
            while True:
                for fd, _ in ep.poll():
                    acc = accepts.get(fd)
                    if acc is not None:
                        while True:  # drain the accept queue
                            try:
                                cfd, _ = acc()
                            except (BlockingIOError, InterruptedError):
                                break
                            except OSError:
                                return
                            t = mono()
                            self.accepted += 1
                            # the connection is blocking, but read only when epoll says readable
                            pending[cfd] = [t, b""]
                            ep.register(cfd, select.EPOLLIN)
                        continue
                    if fd == self.wake_r:
                        return
                    ent = pending.get(fd)
                    if ent is None:
                        continue
                    try:
                        data = read(fd, MAX_LINE)
                    except OSError:
                        data = b""
                    buf = ent[1] + data
                    if data and b"\n" not in buf and len(buf) < MAX_LINE:
                        ent[1] = buf
                        continue
                    del pending[fd]
                    ep.unregister(fd)
                    close(fd)
                    t = ent[0]
                    if self.cutoff is not None and t > self.cutoff:
                        continue
                    m = ID_RE.match(buf)
                    if m is None:
                        self.unidentified += 1
                        continue
                    i = int(m.group(1))
                    v = stamps.get(i)
                    if v is None:
                        stamps[i] = [t]
                    else:
                        v.append(t)
        finally:
            for fd in list(pending):
                close(fd)
            ep.close()

    def total(self):
        return sum(len(v) for v in list(self.stamps.values())) + self.unidentified

    def clear(self):
        self.stamps.clear()
        self.unidentified = 0
        self.accepted = 0

    def stop(self):
        try:
            os.write(self.wake_w, b"x")
        except OSError:
            pass
        self.thread.join(5)
        for s in self.socks.values():
            s.close()
        os.close(self.wake_r)
        os.close(self.wake_w)


def pct(xs, q):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, int(round(q / 100 * (len(xs) - 1)))))
    return xs[k]


def cpu_self():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def on_sigterm(*_):
    raise SystemExit(143)  # run the finally blocks: alertctl is stopped by its PID


# ---------------------------------------------------------------- self-test of the listener
def client(a):
    ports = [int(p) for p in a.ports.split(",")]
    out = array("d")
    t0 = time.monotonic() + 0.05
    mono = time.monotonic
    for i in range(a.count):
        if a.rate > 0:
            d = t0 + i / a.rate - mono()
            if d > 0:
                time.sleep(d)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        t1 = mono()
        s.connect(("127.0.0.1", ports[i % len(ports)]))
        t2 = mono()
        s.sendall(b"c%05d\n" % i)
        s.close()
        out.append(t1)
        out.append(t2)
    with open(a.out, "wb") as f:
        out.tofile(f)


def selftest(a):
    ports = [int(p) for p in a.ports.split(",")]
    lst = Listener(ports)
    tmp = f"/tmp/alertcore-checks-client.{os.getpid()}"
    try:
        for label, count, rate in (("paced", int(a.rate * a.seconds), a.rate), ("burst", a.burst, 0.0)):
            lst.clear()
            c0 = cpu_self()
            w0 = time.monotonic()
            subprocess.run([sys.executable, __file__, "client", "--ports", a.ports, "--count", str(count),
                            "--rate", str(rate), "--out", tmp], check=True)
            deadline = time.monotonic() + 5
            while lst.total() < count and time.monotonic() < deadline:
                time.sleep(0.01)
            wall = time.monotonic() - w0
            lcpu = cpu_self() - c0
            arr = array("d")
            with open(tmp, "rb") as f:
                arr.frombytes(f.read())
            t1, t2 = arr[0::2], arr[1::2]
            conn_ms = [(y - x) * 1e3 for x, y in zip(t1, t2)]
            lags = [(lst.stamps[i][0] - t2[i]) * 1e3 for i in range(count) if lst.stamps.get(i)]
            span = t2[-1] - t1[0]
            print(f"listener {label} ports={len(ports)} conns={count} client_rate={count / span:.0f}/s "
                  f"accepted={lst.accepted} identified={len(lags)} unidentified={lst.unidentified} "
                  f"accept_lag_ms p50={pct(lags, 50):.3f} p99={pct(lags, 99):.3f} "
                  f"max={max(lags) if lags else float('nan'):.3f} connect_ms p50={pct(conn_ms, 50):.3f} "
                  f"p99={pct(conn_ms, 99):.3f} max={max(conn_ms):.3f} "
                  f"listener_cpu_pct={100 * lcpu / wall:.1f} (of the test's {wall:.1f} s)", flush=True)
    finally:
        lst.stop()
        try:
            os.unlink(tmp)
        except OSError:
            pass


# ---------------------------------------------------------------- one alertctl run
def proc_cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return int(rest[11]) + int(rest[12])  # fields 14 utime, 15 stime (all threads)


def machine_busy_s():
    """CPU seconds all cores spent not idle/iowait since boot (/proc/stat first line)"""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / CLK_TCK  # user nice system idle iowait irq softirq steal


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "Threads", "voluntary_ctxt_switches"):
                out[k] = int(v.split()[0])
    return out


def write_config(a, ports):
    d = os.path.abspath(a.dir)
    conf = os.path.join(d, "alertcore.toml")
    lines = [
        "# bench/checks.py: N tcp checks against its listener; no notifiers (the console one),",
        "# [daemon] defaults",
    ]
    for i in range(a.n):
        lines.append(f'\n[[checks]]\nname = "c{i:05d}"\nkind = "tcp"\naddress = "127.0.0.1"\n'
                     f'port = {ports[i % len(ports)]}\nsend = "c{i:05d}\\n"\n'
                     f'interval = "{a.interval}s"\ntimeout = "5s"')
    with open(conf, "w") as f:
        f.write("\n".join(lines) + "\n")
    return conf


def timewait_count(ports):
    try:
        out = subprocess.run(["ss", "-Htan", "state", "time-wait"], capture_output=True, text=True).stdout
    except OSError:
        return "nan"
    ps = {str(p) for p in ports}
    return sum(1 for line in out.splitlines() if line.split() and line.split()[-1].rsplit(":", 1)[-1] in ps)


OWN_RE = re.compile(r"(\d+) runs, (\d+) missed, start lag p50 (\S+) p99 (\S+)")
DUR_RE = re.compile(r"^([0-9.]+)(ns|µs|us|ms|s)$")
DUR_MS = {"ns": 1e-6, "µs": 1e-3, "us": 1e-3, "ms": 1.0, "s": 1e3}


def dur_ms(s):
    """Rust's Debug of a Duration (`1.234567ms`, `812µs`, `2.5s`, `0ns`) in ms"""
    m = DUR_RE.match(s)
    return float(m.group(1)) * DUR_MS[m.group(2)] if m else float("nan")


def own_line(log, offset, timeout):
    """the last `R runs, M missed, ...` line alertctl wrote to LOG after OFFSET, waiting <= timeout"""
    deadline = time.monotonic() + timeout
    while True:
        with open(log, "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
        found = OWN_RE.findall(text)
        if found or time.monotonic() > deadline:
            return found[-1] if found else None
        time.sleep(0.1)


def run(a):
    signal.signal(signal.SIGTERM, on_sigterm)
    ports = [int(p) for p in a.ports.split(",")]
    os.makedirs(a.dir, exist_ok=True)
    for f in os.listdir(a.dir):
        if f.startswith("state.db") or f in ("alertctl.log",):
            os.unlink(os.path.join(a.dir, f))
    conf = write_config(a, ports)
    state = os.path.join(os.path.abspath(a.dir), "state.db")
    logpath = os.path.join(a.dir, "alertctl.log")
    lst = Listener(ports)
    samples = []  # (mono, alertctl cpu ticks, VmRSS kB, own cpu s, machine busy s, main thread's
    #              voluntary context switches)
    # let TIME_WAIT sockets left by earlier runs towards these ports expire first (Linux: 60 s)
    t_settle = time.monotonic()
    tw_start = timewait_count(ports)
    while tw_start > a.settle_tw and time.monotonic() - t_settle < a.settle_max:
        time.sleep(2)
        tw_start = timewait_count(ports)
    out = open(logpath, "wb")
    env = dict(os.environ)
    for k in ("ALERTCORE_CONFIG", "ALERTCORE_STATE", "ALERTCORE_NOW", "ALERTCORE_TRACE", "NOTIFY_SOCKET",
              "WATCHDOG_USEC", "WATCHDOG_PID", "INVOCATION_ID"):
        env.pop(k, None)
    t_start = time.monotonic()
    p = subprocess.Popen([a.alertctl, "--config", conf, "--state", state, "run"], stdout=out,
                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    if a.pidfile:
        with open(a.pidfile, "w") as f:
            f.write(f"{p.pid}\n")
    w0 = t_start + a.warmup
    w1 = w0 + a.measure
    own = None
    try:
        while True:
            now = time.monotonic()
            if p.poll() is not None:
                raise SystemExit(f"alertctl exited early (rc={p.returncode}); see {logpath}")
            ps = proc_status(p.pid)
            samples.append((now, proc_cpu_ticks(p.pid), ps["VmRSS"], cpu_self(), machine_busy_s(),
                            ps["voluntary_ctxt_switches"]))
            if now >= w1 + a.grace:
                break
            time.sleep(0.1)
        lst.cutoff = time.monotonic()
        st = proc_status(p.pid)
        tw = timewait_count(ports)
        out.flush()
        offset = os.path.getsize(logpath)
        p.send_signal(signal.SIGUSR1)
        own = own_line(logpath, offset, a.own_timeout)
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if a.pidfile:
            try:
                os.unlink(a.pidfile)
            except OSError:
                pass
        lst.stop()
        out.close()
    res = analyse(a, lst, samples, t_start, w0, w1)
    if own:
        res.update(own_runs=own[0], own_missed=own[1], own_lag_p50_ms=f"{dur_ms(own[2]):.2f}",
                   own_lag_p99_ms=f"{dur_ms(own[3]):.2f}")
    else:
        res.update(own_runs="nan", own_missed="nan", own_lag_p50_ms="nan", own_lag_p99_ms="nan")
    warn = err = 0
    with open(logpath, errors="replace") as f:
        for line in f:
            if " WARN " in line:
                warn += 1
            elif " ERROR " in line:
                err += 1
    res.update(hwm_mib=f"{st['VmHWM'] / 1024:.1f}", threads=st["Threads"], timewait=tw,
               timewait_start=tw_start, log_warn=warn, log_error=err, rc=p.returncode)
    keys = ["n", "interval", "lag_p50_ms", "lag_p99_ms", "lag_max_ms", "cpu_pct", "rss_mib", "missed",
            "own_lag_p50_ms", "own_lag_p99_ms", "other_cpu_pct",
            "own_runs", "own_missed", "runs", "checks_per_s", "cpu_us_per_run", "wakeups_per_run", "extra", "unidentified", "never_seen",
            "hwm_mib", "threads", "start_s", "first_round_s", "window_s", "timewait_start", "timewait",
            "log_warn", "log_error", "rc", "listener_cpu_pct"]
    print("alertctl " + " ".join(f"{k}={res[k]}" for k in keys), flush=True)
    for s in res["slices"]:
        print("  slice " + s, flush=True)


def analyse(a, lst, samples, t_start, w0, w1):
    iv = float(a.interval)
    lags = []  # (t of the later connection, lag ms)
    missed = extra = runs = never = 0
    firsts = []
    expect_each = round(a.measure / iv)
    for i in range(a.n):
        ts = sorted(lst.stamps.get(i, ()))
        if not ts:
            never += 1
            missed += expect_each
            continue
        firsts.append(ts[0])
        for x, y in zip(ts, ts[1:]):
            if w0 <= y <= w1:
                lags.append((y, (y - x - iv) * 1e3))
        # the check's fixed grid: due times ref + j * iv; each connection belongs to the nearest
        # one; a due time in the window wants exactly one
        ref = ts[0]
        per_due = {}
        for t in ts:
            j = round((t - ref) / iv)
            per_due[j] = per_due.get(j, 0) + 1
        j = max(0, int((w0 - ref) // iv))
        while ref + j * iv <= w1:
            if ref + j * iv >= w0:
                c = per_due.get(j, 0)
                runs += c
                missed += c == 0
                extra += max(0, c - 1)
            j += 1
    unknown = set(lst.stamps) - set(range(a.n))
    extra += sum(len(lst.stamps[i]) for i in unknown)

    def before(t):
        return max((s for s in samples if s[0] <= t), key=lambda s: s[0])

    s0, s1 = before(w0), before(w1)
    cpu_pct = 100 * (s1[1] - s0[1]) / CLK_TCK / (s1[0] - s0[0])
    lcpu_pct = 100 * (s1[3] - s0[3]) / (s1[0] - s0[0])
    other_pct = 100 * (s1[4] - s0[4]) / (s1[0] - s0[0]) - cpu_pct - lcpu_pct
    rss = max(s[2] for s in samples if s0[0] <= s[0] <= s1[0])
    wakeups = (s1[5] - s0[5]) / runs if runs else float("nan")
    lv = [x for _, x in lags]
    slices = []
    k = 0
    while w0 + k * iv < w1 - 1e-6:
        lo, hi = w0 + k * iv, min(w1, w0 + (k + 1) * iv)
        sl = [x for t, x in lags if lo <= t < hi]
        cnt = sum(1 for v in lst.stamps.values() for t in v if lo <= t < hi)
        a0, a1 = before(lo), before(hi)
        c = 100 * (a1[1] - a0[1]) / CLK_TCK / (a1[0] - a0[0]) if a1[0] > a0[0] else float("nan")
        slices.append(f"k={k} start_s={lo - t_start:.1f} count={cnt} lag_p99_ms={pct(sl, 99):.1f} "
                      f"lag_max_ms={max(sl) if sl else float('nan'):.1f} cpu_pct={c:.2f}")
        k += 1
    return dict(
        n=a.n, interval=a.interval,
        lag_p50_ms=f"{pct(lv, 50):.1f}", lag_p99_ms=f"{pct(lv, 99):.1f}",
        lag_max_ms=f"{max(lv):.1f}" if lv else "nan",
        cpu_pct=f"{cpu_pct:.2f}", rss_mib=f"{rss / 1024:.1f}", wakeups_per_run=f"{wakeups:.2f}",
        cpu_us_per_run=f"{cpu_pct / 100 * (s1[0] - s0[0]) / runs * 1e6:.0f}" if runs else "nan",
        missed=missed, extra=extra, unidentified=lst.unidentified, never_seen=never,
        runs=runs, checks_per_s=f"{runs / (w1 - w0):.1f}",
        start_s=f"{min(firsts) - t_start:.3f}" if firsts else "nan",
        first_round_s=f"{max(firsts) - t_start:.3f}" if len(firsts) == a.n else "nan",
        window_s=f"{s1[0] - s0[0]:.1f}",
        listener_cpu_pct=f"{lcpu_pct:.2f}", other_cpu_pct=f"{other_pct:.1f}",
        slices=slices,
    )


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("selftest")
    s.add_argument("--ports", required=True)
    s.add_argument("--rate", type=float, default=1000)
    s.add_argument("--seconds", type=float, default=5)
    s.add_argument("--burst", type=int, default=10000)
    c = sub.add_parser("client")
    c.add_argument("--ports", required=True)
    c.add_argument("--count", type=int, required=True)
    c.add_argument("--rate", type=float, required=True)
    c.add_argument("--out", required=True)
    r = sub.add_parser("run")
    r.add_argument("--n", type=int, required=True)
    r.add_argument("--ports", required=True)
    r.add_argument("--dir", required=True)
    r.add_argument("--alertctl", required=True)
    r.add_argument("--interval", type=int, default=10)
    r.add_argument("--measure", type=float, default=60)
    r.add_argument("--warmup", type=float, default=15)
    r.add_argument("--pidfile")
    r.add_argument("--settle-tw", type=int, default=2000)
    r.add_argument("--settle-max", type=float, default=70)
    r.add_argument("--grace", type=float, default=2)
    r.add_argument("--own-timeout", type=float, default=30)
    a = ap.parse_args()
    {"selftest": selftest, "client": client, "run": run}[a.cmd](a)


if __name__ == "__main__":
    main()
