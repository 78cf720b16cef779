//! The daemon under a real systemd: the SHIPPED `systemd/alertcore.service` (Type=notify,
//! WatchdogSec=, Restart=on-failure, its ExecStartPost=/ExecStopPost=/ExecReload= lines
//! and the hardening, as shipped, pointed at the binary under test), with a test drop-in
//! for the config and state of a work dir, a shorter watchdog and restart delay:
//!
//! (a) `systemctl start` returns once the daemon sent READY=1, and its STATUS= line
//!     counts the checks;
//! (b) a check's result flows: a `command` check the test fails and passes writes a
//!     failure line, then a recovery line, to a `file` notifier;
//! (c) `systemctl reload` with a bad config fails and says where (the shipped
//!     `ExecReload=alertctl config check`); a SIGHUP that bypasses that check is refused
//!     by the daemon with its `file:line:col` in the journal; the running config's checks
//!     keep running, and a good config reloads in the same process;
//! (d) a scheduler loop that stalls (`ALERTCORE_TEST_STALL_AFTER`, debug builds) stops
//!     its WATCHDOG=1 pings: systemd kills it (result `watchdog`); the unit's own
//!     `ExecStopPost=` records the failure of alertcore.service (one alert, naming the
//!     watchdog) and `Restart=on-failure` starts it again, whose `ExecStartPost=` records
//!     the recovery; and `systemctl stop` (SIGTERM) of a healthy daemon is clean and
//!     alerts nothing.
//!
//! Why not `OnFailure=`: on systemd 252 a watchdog kill that `Restart=on-failure`
//! restarts takes the unit through `auto-restart`, never `failed`, and does not trigger
//! `OnFailure=` (seen here, as systemd.unit(5) says); a daemon that stalls a few seconds
//! after each start never reaches the start limit, so it would be restarted forever
//! without an alert. From 254 `OnFailure=` fires between restarts too (systemd#27594).
//! `ExecStopPost=` runs on every stop of every version.
//!
//! It runs in the systemd sandbox ([`crate::sandbox`]), waiting in real time (polling
//! with deadlines).

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::peers::{SinkOptions, SmtpSink};
use crate::sandbox::{self, DEADLINE, Sandbox, read, write};

const UNIT: &str = "alertcore.service";
/// The test drop-in's watchdog: pings every second.
const WATCHDOG: &str = "2s";

#[test]
fn daemon_under_systemd_is_ready_reloads_and_is_restarted_by_the_watchdog() {
    if sandbox::skip_unless_available("the daemon's systemd test") {
        return;
    }
    let started = Instant::now();
    let work = sandbox::work_dir("alertcore-daemon-");
    let w = work.path();
    let cfg = w.join("alertcore.toml");
    let good = config(w, "");
    write(&cfg, &good);
    write(&w.join("ok"), "");

    let sb = Sandbox::start(w.join("sandbox"));
    let t = Test { sb: &sb, w };
    install_units(&sb, w);
    sb.systemctl(&["daemon-reload"]);
    // The shipped unit's supervision is what is under test, only made faster.
    for (prop, want) in [
        ("Type", "notify"),
        ("NotifyAccess", "main"),
        ("Restart", "on-failure"),
    ] {
        assert_eq!(
            sb.prop(UNIT, prop),
            want,
            "{UNIT}: {prop}\n{}",
            sb.systemctl(&["cat", UNIT])
        );
    }
    let mut steps = Vec::new();

    // (a) Type=notify: the start job ends when READY=1 arrives (or the start fails,
    // and `systemctl` with it).
    let step = Instant::now();
    sb.systemctl(&["start", UNIT]);
    assert_eq!(
        sb.prop(UNIT, "ActiveState"),
        "active",
        "`systemctl start` returned before READY=1\n{}",
        t.describe()
    );
    // (The property is `infinity` until the unit first starts, on 252.)
    assert_eq!(sb.prop(UNIT, "WatchdogUSec"), WATCHDOG, "{}", t.describe());
    let pid = sb.prop(UNIT, "MainPID");
    t.wait("STATUS= counting the check, none failing", || {
        sb.prop(UNIT, "StatusText")
            .contains("1 check: 0 failing")
            .then_some(())
    });
    steps.push(("(a) ready, STATUS=", step.elapsed()));

    // (b) The check fails, then passes again: a failure line, then a recovery line.
    let step = Instant::now();
    remove(&w.join("ok"));
    let failed = t.wait_line("FAILED: ok-file", 1);
    assert!(failed.contains("[e2e]"), "the config's host: {failed}");
    t.wait("STATUS= counting the failing check", || {
        sb.prop(UNIT, "StatusText")
            .contains("1 check: 1 failing")
            .then_some(())
    });
    write(&w.join("ok"), "");
    t.wait_line("RECOVERED: ok-file", 1);
    steps.push(("(b) failure and recovery lines", step.elapsed()));

    // (c) A reload with a bad config is refused, with where the error is; the daemon
    // keeps running the old config's check.
    let step = Instant::now();
    let bad = config(w, "\n[[checks]]\nname = \"bad\"\nkind = \"nope\"\n");
    let kind_line = bad
        .lines()
        .position(|l| l == "kind = \"nope\"")
        .expect("the bad line")
        + 1;
    write(&cfg, &bad);
    let where_ = format!("{}:{kind_line}:", cfg.display());
    let out = sb.systemctl_output(&["reload", UNIT]);
    assert!(
        !out.status.success(),
        "the reload of a bad config succeeded"
    );
    let job = sb.journal(&["-u", UNIT, "-o", "cat"]);
    assert!(
        job.contains(&where_) && job.contains("unknown kind \"nope\""),
        "`alertctl config check` in ExecReload= should say {where_} ... unknown kind:\n{job}"
    );
    // SIGHUP itself, past that check: the daemon refuses the file too (it logs the
    // verdict after the signal, so wait for it)
    sb.systemctl(&["kill", "-s", "HUP", UNIT]);
    let refused = t.wait("the refused reload in the journal", || {
        t.unit_journal()
            .lines()
            .find(|l| l.contains("reload refused"))
            .map(str::to_owned)
    });
    let want = format!(
        "reload refused, keeping the running config: {}:{kind_line}:",
        cfg.display()
    );
    assert!(
        refused.contains(&want) && refused.contains("unknown kind \"nope\""),
        "want {want:?} ... unknown kind \"nope\", got:\n{refused}"
    );
    assert_eq!(sb.prop(UNIT, "ActiveState"), "active", "{}", t.describe());
    assert_eq!(sb.prop(UNIT, "MainPID"), pid, "the same process runs on");
    // The old config's check still runs: another transition reaches the notifier.
    remove(&w.join("ok"));
    t.wait_line("FAILED: ok-file", 2);
    write(&w.join("ok"), "");
    t.wait_line("RECOVERED: ok-file", 2);
    // A good config reloads.
    write(&cfg, &good);
    sb.systemctl(&["reload", UNIT]);
    t.wait("the reload of the good config in the journal", || {
        t.unit_journal().contains("reloaded: 1 check").then_some(())
    });
    assert_eq!(sb.prop(UNIT, "MainPID"), pid, "the same process runs on");
    // (a) to (c) took longer than WatchdogSec= (two check transitions in (c) alone, at
    // one run a second): the pings arrive.
    assert!(
        !t.unit_journal().contains("Watchdog timeout") && sb.prop(UNIT, "NRestarts") == "0",
        "a watchdog timeout before the loop was made to stall:\n{}",
        t.describe()
    );
    steps.push(("(c) refused and good reloads", step.elapsed()));

    // (d) The loop stalls at its 3rd ping: systemd's watchdog kills the daemon, its
    // ExecStopPost= records the failure, Restart=on-failure starts it again and its
    // ExecStartPost= records the recovery. The daemon is healthy when restarted here (a
    // stalled one ignores SIGTERM: its signals are handled by the stalled runtime, and a
    // stop waits TimeoutStopSec=).
    let step = Instant::now();
    let stall = "[Service]\nEnvironment=ALERTCORE_TEST_STALL_AFTER=3\n";
    sb.drop_in(UNIT, "60-stall.conf", stall);
    sb.systemctl(&["daemon-reload"]);
    sb.systemctl(&["restart", UNIT]);
    let alert = t.wait_line("FAILED: alertcore.service", 1);
    assert!(
        alert.contains("watchdog"),
        "the alert names the watchdog ($SERVICE_RESULT): {alert}"
    );
    t.wait_line("RECOVERED: alertcore.service", 1);
    let journal = t.unit_journal();
    let at = |needle: &str| {
        journal.find(needle).unwrap_or_else(|| {
            panic!("{needle:?} in the journal of {UNIT}:\n{journal}");
        })
    };
    assert!(
        at("the loop stalls now") < at("Watchdog timeout")
            && at("Watchdog timeout") < at("Failed with result 'watchdog'")
            && at("Failed with result 'watchdog'") < at("Scheduled restart job"),
        "stall, watchdog timeout, kill, restart, in this order:\n{journal}"
    );
    // Without Restart=, the next kill leaves the unit failed: a new streak, a new alert.
    sb.drop_in(UNIT, "60-stall.conf", &format!("{stall}Restart=no\n"));
    sb.systemctl(&["daemon-reload"]);
    sb.settle(UNIT, "failed", || {
        failing(&sb.alertctl_status(w), UNIT) && t.count("FAILED: alertcore.service") == 2
    });
    assert_eq!(sb.prop(UNIT, "Result"), "watchdog", "{}", t.describe());
    steps.push(("(d) watchdog kills, alerts and recoveries", step.elapsed()));

    // SIGTERM: `systemctl stop` of a healthy daemon ends in a clean exit.
    let step = Instant::now();
    remove(&sb.units().join("alertcore.service.d/60-stall.conf"));
    sb.systemctl(&["daemon-reload"]);
    sb.systemctl(&["reset-failed", UNIT]);
    sb.systemctl(&["start", UNIT]);
    assert_eq!(sb.prop(UNIT, "ActiveState"), "active", "{}", t.describe());
    // the start recorded the recovery (ExecStartPost= ran before `start` returned)
    assert_eq!(
        t.count("RECOVERED: alertcore.service"),
        2,
        "{}",
        t.describe()
    );
    sb.systemctl(&["stop", UNIT]);
    assert_eq!(sb.prop(UNIT, "ActiveState"), "inactive", "{}", t.describe());
    // ExecStopPost= ran before `stop` returned, and a clean stop records nothing
    assert_eq!(t.count("FAILED: alertcore.service"), 2, "{}", t.describe());
    assert!(!failing(&sb.alertctl_status(w), UNIT), "{}", t.describe());
    assert_eq!(sb.prop(UNIT, "Result"), "success", "{}", t.describe());
    let failed = sb.systemctl(&["list-units", "--failed", "--no-legend", "--plain"]);
    assert!(failed.trim().is_empty(), "failed units:\n{failed}");
    steps.push(("start and stop", step.elapsed()));

    for (what, took) in steps {
        eprintln!("{what}: {took:.1?}");
    }
    eprintln!("in all: {:.1?}", started.elapsed());
}

/// `[systemd] watch = true`: the daemon follows every unit over D-Bus. A unit that
/// failed before it started is reported by the boot sweep (once: not again after a
/// restart of the daemon); a unit with no `OnFailure=` fails and recovers; a unit that
/// also has the shipped handler in `OnFailure=` is counted once.
#[test]
fn the_daemon_watches_units_without_wiring() {
    if sandbox::skip_unless_available("the systemd watch test") {
        return;
    }
    let work = sandbox::work_dir("alertcore-watch-");
    let w = work.path();
    write(&w.join("ok"), "");
    let sb = with_config(
        w,
        "[systemd]\nwatch = true\nexclude = [\"alertcore.service\"]\n",
    );
    let t = Test { sb: &sb, w };
    let wd = w.display();
    let oneshot = |name: &str, command: &str, extra: &str| {
        write(
            &sb.units().join(name),
            &format!(
                "[Unit]\n{extra}\n[Service]\nType=oneshot\nExecStart=/bin/sh -c '{command}'\n"
            ),
        );
    };
    oneshot("early.service", "exit 4", "");
    oneshot("plain.service", &format!("test -e {wd}/plain-ok"), "");
    oneshot(
        "wired.service",
        "exit 5",
        "OnFailure=alertcore-failure@%n.service",
    );
    sb.systemctl(&["daemon-reload"]);
    // failed before the daemon runs: the boot sweep reports it
    let _ = sb.systemctl_output(&["start", "early.service"]);
    assert_eq!(sb.prop("early.service", "ActiveState"), "failed");
    sb.systemctl(&["start", UNIT]);
    t.wait_line("FAILED: early.service (exit-code, status=4)", 1);

    // no OnFailure=: the watch alone sees it fail, then pass
    let _ = sb.systemctl_output(&["start", "plain.service"]);
    t.wait_line("FAILED: plain.service (exit-code, status=1)", 1);
    write(&w.join("plain-ok"), "");
    sb.systemctl(&["start", "plain.service"]);
    t.wait_line("RECOVERED: plain.service", 1);

    // the handler and the watch both report the run: it counts once
    let _ = sb.systemctl_output(&["start", "wired.service"]);
    t.wait(
        "the handler's run and the watch's view of wired.service",
        || {
            let handler =
                sb.journal(&["-u", "alertcore-failure@wired.service.service", "-o", "cat"]);
            let daemon = t.unit_journal();
            (handler.contains("wired.service: failure recorded")
                && daemon.contains("unit=\"wired.service\"")
                || daemon.contains("unit=wired.service"))
            .then_some(())
        },
    );
    t.wait_line("FAILED: wired.service (exit-code, status=5)", 1);
    assert_eq!(t.count("FAILED: wired.service"), 1, "{}", t.describe());
    // counted once: one failure in the streak, not two
    let streak = |unit: &str| {
        let status = sb.alertctl_status(w);
        status["services"]
            .as_array()
            .and_then(|l| l.iter().find(|s| s["service"] == unit))
            .map(|s| s["consecutive_failures"].clone())
            .unwrap_or_else(|| panic!("no {unit} in {status:#}"))
    };
    assert_eq!(streak("wired.service"), 1, "{}", t.describe());

    // a restart of the daemon sweeps again, and early.service's run is not news
    let before = t.unit_journal().matches("already recorded").count();
    sb.systemctl(&["restart", UNIT]);
    t.wait("the sweep after the restart", || {
        (t.unit_journal().matches("already recorded").count() > before).then_some(())
    });
    assert_eq!(t.count("FAILED: early.service"), 1, "{}", t.describe());
    assert_eq!(streak("early.service"), 1, "{}", t.describe());
    sb.systemctl(&["stop", UNIT]);
}

/// The config: a `command` check of the `ok` file in the work dir every second, a `file`
/// notifier appending to `alerts.log` there, then `extra`. `flush_every` is the STATUS=
/// period too.
fn config(w: &Path, extra: &str) -> String {
    let wd = w.display();
    format!(
        "host = \"e2e\"\n\
         [notifiers.log]\n\
         type = \"file\"\n\
         path = \"{wd}/alerts.log\"\n\
         [daemon]\n\
         flush_every = \"1s\"\n\
         [[checks]]\n\
         name = \"ok-file\"\n\
         kind = \"command\"\n\
         command = [\"/bin/sh\", \"-c\", \"test -e {wd}/ok\"]\n\
         interval = \"1s\"\n\
         {extra}"
    )
}

/// A sandbox with the shipped units (below), the daemon's config [`config`] with `extra`.
fn with_config(w: &Path, extra: &str) -> Sandbox {
    write(&w.join("alertcore.toml"), &config(w, extra));
    let sb = Sandbox::start(w.join("sandbox"));
    install_units(&sb, w);
    sb
}

/// The shipped daemon unit, its command lines pointed at the binary under test, with a
/// test drop-in for the config and state; the shipped handlers with theirs.
fn install_units(sb: &Sandbox, w: &Path) {
    sb.install_handlers(w);
    let wd = w.display();
    sb.install_shipped_with(UNIT, UNIT, |text| {
        assert!(text.contains("/usr/local/bin/alertctl run"), "{text}");
        text.replace("/usr/local/bin/alertctl", &format!("{wd}/alertctl"))
    });
    // As the handlers' drop-ins: StateDirectory= reset so nothing is created on the host
    // (the sandbox shares its file system), the hardening as shipped.
    sb.drop_in(
        UNIT,
        "50-test.conf",
        &format!(
            "[Service]\n\
             Environment=ALERTCORE_CONFIG={wd}/alertcore.toml ALERTCORE_STATE={wd}/state.db\n\
             StateDirectory=\n\
             BindPaths={wd}\n\
             WatchdogSec={WATCHDOG}\n\
             RestartSec=200ms\n"
        ),
    );
}

/// Whether `alertctl status --json` shows `service` failing.
fn failing(status: &Value, service: &str) -> bool {
    status["services"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["service"] == service))
        .is_some_and(|s| s["failing"] == true)
}

fn remove(path: &Path) {
    std::fs::remove_file(path).unwrap_or_else(|e| panic!("remove {}: {e}", path.display()));
}

/// The sandbox and the work dir, for waiting and for messages.
struct Test<'a> {
    sb: &'a Sandbox,
    w: &'a Path,
}

impl Test<'_> {
    /// Polls `probe` until it gives a value, for at most [`DEADLINE`].
    fn wait<T>(&self, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
        let start = Instant::now();
        loop {
            if let Some(v) = probe() {
                return v;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "no {what} within {DEADLINE:?}\n{}",
                self.describe()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Loads the units written so far and starts the daemon, until its watch runs.
    fn start_watching(&self) {
        self.sb.systemctl(&["daemon-reload"]);
        self.sb.systemctl(&["start", UNIT]);
        self.wait("the watch", || {
            self.unit_journal()
                .contains("watching systemd's units")
                .then_some(())
        });
    }

    /// Waits until `n` lines of the notifier's file contain `needle`; the `n`th.
    fn wait_line(&self, needle: &str, n: usize) -> String {
        self.wait(&format!("alert line #{n} with {needle:?}"), || {
            self.alerts()
                .into_iter()
                .filter(|l| l.contains(needle))
                .nth(n - 1)
        })
    }

    /// How many of the notifier's lines contain `needle`.
    fn count(&self, needle: &str) -> usize {
        self.alerts().iter().filter(|l| l.contains(needle)).count()
    }

    /// The lines the `file` notifier wrote.
    fn alerts(&self) -> Vec<String> {
        let path = self.w.join("alerts.log");
        if !path.exists() {
            return Vec::new();
        }
        read(&path).lines().map(str::to_owned).collect()
    }

    /// The journal of alertcore.service: the daemon's lines and systemd's about it.
    fn unit_journal(&self) -> String {
        self.sb.journal(&["-u", UNIT, "-o", "cat"])
    }

    /// The unit's state, its journal's end and the notifier's lines, for messages.
    fn describe(&self) -> String {
        let props = self.sb.systemctl(&[
            "show",
            "-p",
            "ActiveState,SubState,Result,NRestarts,MainPID,StatusText",
            UNIT,
        ]);
        format!(
            "{UNIT}:\n{props}--- journal of {UNIT} (last 40 lines) ---\n{}\
             --- alerts.log ---\n{}",
            self.sb
                .journal(&["-u", UNIT, "-n", "40", "-o", "short-precise"]),
            self.alerts().join("\n")
        )
    }
}

/// Every file under `dir`, with its text, sorted: a directory's state to compare.
fn tree(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read dir") {
            let p = e.expect("entry").path();
            let rel = p
                .strip_prefix(dir)
                .expect("under dir")
                .display()
                .to_string();
            if p.is_dir() {
                out.push((format!("{rel}/"), String::new()));
                stack.push(p);
            } else {
                out.push((rel, std::fs::read_to_string(&p).unwrap_or_default()));
            }
        }
    }
    out.sort();
    out
}

/// `alertctl systemd install` wires a unit to the shipped handlers with a drop-in (a
/// failure of it then reaches the handler under a real systemd), refuses to replace an
/// admin's own drop-in, wires every service with the recursion guard, and `uninstall`
/// leaves the unit directory exactly as it was.
#[test]
fn systemd_install_wires_units_and_uninstall_undoes_exactly_that() {
    if sandbox::skip_unless_available("the systemd install test") {
        return;
    }
    let work = sandbox::work_dir("alertcore-install-");
    let w = work.path();
    write(&w.join("alertcore.toml"), "host = \"e2e\"\n");
    let sb = Sandbox::start(w.join("sandbox"));
    sb.install_handlers(w);
    let units = sb.units();
    for unit in ["app.service", "other.service"] {
        write(
            &units.join(unit),
            "[Service]\nType=oneshot\nExecStart=/bin/false\n",
        );
    }
    sb.systemctl(&["daemon-reload"]);
    let before = tree(&units);
    let ctl = |args: &[&str]| {
        let out = std::process::Command::new(w.join("alertctl"))
            .args(["systemd"])
            .args(args)
            .args(["--unit-dir", &units.display().to_string(), "--no-reload"])
            .output()
            .expect("run alertctl");
        (
            out.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    // --dry-run changes nothing
    let (code, out) = ctl(&["install", "app.service", "--dry-run"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("would write"), "{out}");
    assert_eq!(tree(&units), before);
    // wired: systemd reads OnFailure=/OnSuccess= from the drop-in, and a failure of the
    // unit runs the handler
    let (code, out) = ctl(&["install", "app.service"]);
    assert_eq!(code, Some(0), "{out}");
    sb.systemctl(&["daemon-reload"]);
    assert_eq!(
        sb.prop("app.service", "OnFailure"),
        "alertcore-failure@app.service.service"
    );
    assert_eq!(
        sb.prop("app.service", "OnSuccess"),
        "alertcore-success@app.service.service"
    );
    let _ = sb.systemctl_output(&["start", "app.service"]);
    let start = Instant::now();
    while !sb
        .journal(&["-u", "alertcore-failure@app.service.service", "-o", "cat"])
        .contains("app.service: failure recorded")
    {
        assert!(start.elapsed() < DEADLINE, "the handler did not run");
        std::thread::sleep(Duration::from_millis(50));
    }
    // an admin's own drop-in of the same name is not replaced
    let mine = units.join("db.service.d").join("10-alertcore.conf");
    std::fs::create_dir_all(units.join("db.service.d")).expect("mkdir");
    write(&mine, "[Unit]\nDescription=mine\n");
    let (code, out) = ctl(&["install", "db.service"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("exists and was not written by alertctl"),
        "{out}"
    );
    assert_eq!(read(&mine), "[Unit]\nDescription=mine\n");
    // every service, and the guard: the handlers get no handlers
    assert_eq!(sb.prop("other.service", "OnFailure"), "", "not wired yet");
    let (code, out) = ctl(&["install", "--all-services"]);
    assert_eq!(code, Some(0), "{out}");
    sb.systemctl(&["daemon-reload"]);
    assert_eq!(
        sb.prop("other.service", "OnFailure"),
        "alertcore-failure@other.service.service"
    );
    assert_eq!(sb.prop("alertcore-failure@x.service", "OnFailure"), "");
    assert_eq!(sb.prop("alertcore-failure@x.service", "OnSuccess"), "");
    // uninstall: exactly what install wrote goes (the admin's file stays)
    for args in [
        &["uninstall", "--all-services"][..],
        &["uninstall", "app.service", "db.service"],
    ] {
        let (code, out) = ctl(args);
        assert_eq!(code, Some(0), "{out}");
    }
    assert_eq!(read(&mine), "[Unit]\nDescription=mine\n");
    std::fs::remove_dir_all(units.join("db.service.d")).expect("remove mine");
    assert_eq!(tree(&units), before);
}

/// The rest of the watch (issue 21), under a real systemd:
/// (a) a `Restart=on-failure` service that fails 5 times, then stays up, is one
///     incident: one alert that says it is restarting, one recovery (once it stayed up
///     `stable_for`) that says how many restarts it took;
/// (b) `trigger = ["timer"]`: a unit's run started by its timer reaches the rule's
///     notifier, the same unit's `systemctl start` run does not; so does a timer run
///     reported by the `OnFailure=` handler (a unit the watch leaves out);
/// (c) a watched timer that is stopped is alerted once its expected elapse plus the
///     grace has passed, and recovers when it fires again.
#[test]
fn the_watch_sees_restart_loops_triggers_and_missed_timers() {
    if sandbox::skip_unless_available("the systemd watch test") {
        return;
    }
    let work = sandbox::work_dir("alertcore-watch2-");
    let w = work.path();
    let wd = w.display();
    write(&w.join("ok"), "");
    let who = format!(
        "[notifiers.who]\ntype = \"file\"\npath = \"{wd}/who.log\"\n\
         subject = \"{{{{ event_word }}}} {{{{ service }}}} trigger={{{{ trigger }}}}\"\n\
         [notifiers.timers]\ntype = \"file\"\npath = \"{wd}/timers.log\"\n"
    );
    let extra = format!(
        "{who}[systemd]\nwatch = true\n\
         exclude = [\"alertcore.service\", \"hjob.service\"]\n\
         stable_for = \"2s\"\ntimers = [\"tick.timer\"]\ntimer_grace = \"1s\"\n\
         [[rules]]\ntrigger = [\"timer\"]\nnotify = [\"timers\"]\n\
         [[rules]]\nnotify = [\"log\", \"who\"]\n"
    );
    let sb = with_config(w, &extra);
    let t = Test { sb: &sb, w };
    let units = sb.units();
    // fails 5 times (each run counted in `runs`), then stays up
    write(
        &w.join("crashy.sh"),
        &format!(
            "n=$(cat {wd}/runs 2>/dev/null || echo 0); n=$((n + 1)); echo $n > {wd}/runs\n\
             [ $n -gt 5 ] && exec sleep 600\nsleep 0.3\nexit 3\n"
        ),
    );
    write(
        &units.join("crashy.service"),
        &format!(
            "[Unit]\nStartLimitIntervalSec=0\n[Service]\nExecStart=/bin/sh {wd}/crashy.sh\n\
             Restart=on-failure\nRestartSec=200ms\n"
        ),
    );
    for (unit, extra) in [
        ("job", ""),
        ("hjob", "OnFailure=alertcore-failure@%n.service\n"),
    ] {
        write(
            &units.join(format!("{unit}.service")),
            &format!(
                "[Unit]\n{extra}[Service]\nType=oneshot\n\
                 ExecStart=/bin/sh -c 'test -e {wd}/{unit}-ok'\n"
            ),
        );
        write(
            &units.join(format!("{unit}.timer")),
            "[Timer]\nOnActiveSec=1s\nAccuracySec=100ms\n",
        );
    }
    write(
        &units.join("tick.service"),
        "[Service]\nType=oneshot\nExecStart=/bin/true\n",
    );
    write(
        &units.join("tick.timer"),
        "[Timer]\nOnCalendar=*:*:0/2\nAccuracySec=100ms\n",
    );
    t.start_watching();
    let lines = |file: &str, needle: &str| -> Vec<String> {
        let path = w.join(file);
        if !path.exists() {
            return Vec::new();
        }
        // each line starts with the time it was written
        read(&path)
            .lines()
            .filter(|l| l.contains(needle))
            .map(|l| l.split_once(' ').map_or(l, |(_, rest)| rest).to_owned())
            .collect()
    };

    // (a) the restart loop
    sb.systemctl(&["start", "crashy.service"]);
    let recovered = t.wait_line("RECOVERED: crashy.service", 1);
    assert_eq!(read(&w.join("runs")).trim(), "6", "{}", t.describe());
    assert!(
        recovered.contains("(after 5 failures, 5 restarts)"),
        "{recovered}\n{}",
        t.describe()
    );
    let failed = lines("alerts.log", "FAILED: crashy.service");
    assert_eq!(failed.len(), 1, "one alert for the loop:\n{}", t.describe());
    assert!(
        failed[0].contains("(exit-code, status=3, restarting (1 time in 0s))"),
        "the alert says it is restarting: {failed:?}"
    );

    // (b) started by hand, then by its timer: only the timer's run reaches `timers`
    let _ = sb.systemctl_output(&["start", "job.service"]);
    t.wait_line("FAILED: job.service", 1);
    write(&w.join("job-ok"), "");
    sb.systemctl(&["start", "job.service"]);
    t.wait_line("RECOVERED: job.service", 1);
    remove(&w.join("job-ok"));
    sb.systemctl(&["start", "job.timer"]);
    t.wait_line("FAILED: job.service", 2);
    let timer_runs = t.wait("the timer's run in timers.log", || {
        Some(lines("timers.log", "job.service")).filter(|l| !l.is_empty())
    });
    assert_eq!(
        lines("who.log", "FAILED job.service"),
        [
            "FAILED job.service trigger=other",
            "FAILED job.service trigger=timer"
        ],
        "{}",
        t.describe()
    );
    assert_eq!(timer_runs.len(), 1, "only the timer's run: {timer_runs:?}");
    // the handler, for a unit the watch leaves out, finds the timer too
    sb.systemctl(&["start", "hjob.timer"]);
    let handler = t.wait("the handler's alert in who.log", || {
        lines("who.log", "FAILED hjob.service").into_iter().next()
    });
    assert_eq!(
        handler,
        "FAILED hjob.service trigger=timer",
        "{}",
        t.describe()
    );

    // (c) tick.timer fires every 2 s; stopped, it is missed; started, it recovers
    sb.systemctl(&["start", "tick.timer"]);
    t.wait("tick.timer's first elapse", || {
        (sb.prop("tick.service", "Result") == "success"
            && !sb.prop("tick.service", "ExecMainStartTimestamp").is_empty())
        .then_some(())
    });
    sb.systemctl(&["stop", "tick.timer"]);
    let missed = t.wait_line("FAILED: tick.timer (missed)", 1);
    assert!(
        missed.contains("did not fire: expected ") && missed.contains(", last run "),
        "{missed}"
    );
    sb.systemctl(&["start", "tick.timer"]);
    t.wait_line("RECOVERED: tick.timer", 1);
    assert_eq!(t.count("FAILED: tick.timer"), 1, "{}", t.describe());
    sb.systemctl(&["stop", UNIT]);
}

/// `on_success = "output"` (cron's `MAILTO`): each successful run of the unit a rule
/// names mails that run's journal lines, not the previous run's, once, although the
/// `OnSuccess=` handler and the watch both report the run; a unit no rule names sends
/// nothing on success.
#[test]
fn a_jobs_output_is_mailed_on_success_like_crons_mailto() {
    if sandbox::skip_unless_available("the output mail test") {
        return;
    }
    let Some(sink) = SmtpSink::try_start(SinkOptions::plain()) else {
        return;
    };
    let work = sandbox::work_dir("alertcore-output-");
    let w = work.path();
    let wd = w.display();
    write(&w.join("ok"), "");
    let token = w
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let extra = format!(
        "[notifiers.mail]\ntype = \"email\"\nurl = \"smtp://127.0.0.1:{}\"\n\
         from = \"alertcore@example.org\"\nto = [\"ops@example.org\"]\n\
         [systemd]\nwatch = true\nexclude = [\"alertcore.service\"]\n\
         [[rules]]\nservices = [\"nightly.service\"]\non_success = \"output\"\nnotify = [\"mail\"]\n\
         [[rules]]\nnotify = [\"log\"]\n",
        sink.port()
    );
    let sb = with_config(w, &extra);
    let t = Test { sb: &sb, w };
    let units = sb.units();
    write(
        &w.join("nightly.sh"),
        &format!(
            "n=$(( $(cat {wd}/runs 2>/dev/null || echo 0) + 1 )); echo $n > {wd}/runs\n\
             echo \"nightly run $n of {token}\"\n"
        ),
    );
    write(
        &units.join("nightly.service"),
        &format!(
            "[Unit]\nOnSuccess=alertcore-success@%n.service\n\
             [Service]\nType=oneshot\nExecStart=/bin/sh {wd}/nightly.sh\n"
        ),
    );
    write(
        &units.join("nightly.timer"),
        "[Timer]\nOnActiveSec=1s\nAccuracySec=100ms\n",
    );
    write(
        &units.join("quiet.service"),
        "[Unit]\nOnSuccess=alertcore-success@%n.service\n\
         [Service]\nType=oneshot\nExecStart=/bin/echo quiet\n",
    );
    t.start_watching();
    // a unit no rule names: nothing on success
    sb.systemctl(&["start", "quiet.service"]);
    // run 1 by the timer, run 2 by hand
    sb.systemctl(&["start", "nightly.timer"]);
    sink.wait_for(1, DEADLINE);
    sb.systemctl(&["start", "nightly.service"]);
    let mails = sink.wait_for(2, DEADLINE);
    // both reporters are done with run 2: the handler has exited, the watch has said
    let handler = "alertcore-success@nightly.service.service";
    t.wait("both reports of run 2", || {
        let handlers = sb
            .journal(&["-u", handler, "-o", "cat"])
            .matches("nightly.service: success recorded")
            .count();
        let watch = t.unit_journal().matches("succeeded: ").count();
        (handlers == 2 && watch == 2 && sb.prop(handler, "ActiveState") != "active").then_some(())
    });
    let mails = if mails.len() == 2 {
        sink.messages()
    } else {
        mails
    };
    let field = |m: &serde_json::Value, k: &str| m[k].as_str().unwrap_or_default().to_owned();
    let subjects: Vec<String> = mails.iter().map(|m| field(m, "subject")).collect();
    assert_eq!(
        subjects,
        [
            "[e2e] OUTPUT: nightly.service (success)",
            "[e2e] OUTPUT: nightly.service (success)"
        ],
        "one mail per run, none for quiet.service\n{}",
        t.describe()
    );
    for (i, mail) in mails.iter().enumerate() {
        let body = field(mail, "body");
        let (this, other) = (i + 1, 2 - i);
        assert!(
            body.contains(&format!("nightly run {this} of {token}"))
                && !body.contains(&format!("nightly run {other} of {token}")),
            "mail {this} quotes its run's line and not run {other}'s:\n{body}"
        );
    }
    sb.systemctl(&["stop", UNIT]);
}

/// `bus = "user"`: the watch follows a real `systemd --user` manager over the user's
/// D-Bus (`tests/peers/systemd-user-sandbox.sh`): a user unit with no wiring fails, then
/// passes, and `alertctl run` alerts both.
#[test]
fn the_watch_follows_a_user_manager() {
    if sandbox::skip_unless_available("the user manager watch test")
        || UserSandbox::skip_unless_available()
    {
        return;
    }
    let work = sandbox::work_dir("alertcore-user-");
    let w = work.path();
    let wd = w.display();
    let user = UserSandbox::start(w.join("user-sandbox"));
    let cfg = format!(
        "host = \"e2e\"\n[notifiers.log]\ntype = \"file\"\npath = \"{wd}/alerts.log\"\n\
         [systemd]\nwatch = true\nbus = \"user\"\n"
    );
    write(&w.join("alertcore.toml"), &cfg);
    write(
        &user.units().join("mine.service"),
        &format!("[Service]\nType=oneshot\nExecStart=/bin/sh -c 'test -e {wd}/mine-ok'\n"),
    );
    user.systemctl(&["daemon-reload"]);
    let log = w.join("daemon.log");
    let mut daemon = std::process::Command::new(w.join("alertctl"))
        .arg("run")
        .env("ALERTCORE_CONFIG", w.join("alertcore.toml"))
        .env("ALERTCORE_STATE", w.join("state.db"))
        .env("XDG_RUNTIME_DIR", USER_RUNTIME_DIR)
        .env(
            "DBUS_SESSION_BUS_ADDRESS",
            format!("unix:path={USER_RUNTIME_DIR}/bus"),
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("start alertctl run");
    let wait = |what: &str, probe: &dyn Fn() -> bool| {
        let start = Instant::now();
        while !probe() {
            assert!(
                start.elapsed() < DEADLINE,
                "no {what} within {DEADLINE:?}\n--- daemon log ---\n{}\n--- alerts ---\n{}",
                read(&log),
                std::fs::read_to_string(w.join("alerts.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let alerted = |needle: &str| {
        std::fs::read_to_string(w.join("alerts.log"))
            .unwrap_or_default()
            .contains(needle)
    };
    wait("watch of the user manager", &|| {
        read(&log).contains("watching systemd's units")
    });
    let _ = user.systemctl_output(&["start", "mine.service"]);
    wait("failure alert", &|| {
        alerted("FAILED: mine.service (exit-code, status=1)")
    });
    write(&w.join("mine-ok"), "");
    user.systemctl(&["start", "mine.service"]);
    wait("recovery", &|| alerted("RECOVERED: mine.service"));
    let _ = daemon.kill();
    let _ = daemon.wait();
}

/// The user manager's runtime directory (one per machine: root's).
const USER_RUNTIME_DIR: &str = "/run/user/0";

/// A running `systemd --user` sandbox; stopped on drop.
struct UserSandbox {
    dir: std::path::PathBuf,
}

impl UserSandbox {
    const SCRIPT: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/peers/systemd-user-sandbox.sh"
    );

    /// As [`sandbox::skip_unless_available`], for what the user sandbox needs more.
    fn skip_unless_available() -> bool {
        let out = std::process::Command::new("bash")
            .args([Self::SCRIPT, "check"])
            .env("SANDBOX", "/nonexistent")
            .output()
            .expect("run the user sandbox script");
        if out.status.success() {
            return false;
        }
        let why = String::from_utf8_lossy(&out.stdout);
        assert!(
            !crate::under_ci(),
            "the user manager watch test cannot run under CI: {why}"
        );
        eprintln!("skipping the user manager watch test: {why}");
        true
    }

    fn start(dir: std::path::PathBuf) -> Self {
        let out = std::process::Command::new("bash")
            .args([Self::SCRIPT, "start"])
            .env("SANDBOX", &dir)
            .output()
            .expect("run the user sandbox script");
        assert!(
            out.status.success(),
            "the user sandbox did not start:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Self { dir }
    }

    fn units(&self) -> std::path::PathBuf {
        Path::new(USER_RUNTIME_DIR).join("systemd/user")
    }

    fn systemctl_output(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new("systemctl")
            .arg("--user")
            .args(args)
            .env("XDG_RUNTIME_DIR", USER_RUNTIME_DIR)
            .output()
            .expect("run systemctl --user")
    }

    fn systemctl(&self, args: &[&str]) {
        let out = self.systemctl_output(args);
        assert!(
            out.status.success(),
            "systemctl --user {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for UserSandbox {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .args([Self::SCRIPT, "stop"])
            .env("SANDBOX", &self.dir)
            .output();
    }
}
