//! `alertctl` end to end: real processes on a real state file.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Runs the built `alertctl` with its own state file and (optional) config.
pub(crate) struct Ctl {
    pub(crate) dir: tempfile::TempDir,
    config: Option<PathBuf>,
}

impl Ctl {
    pub(crate) fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
            config: None,
        }
    }

    pub(crate) fn with_config(text: &str) -> Self {
        let mut c = Self::new();
        c.set_config(text);
        c
    }

    /// Writes `text` as the config (`alertcore.toml` in the temp dir) and uses it.
    pub(crate) fn set_config(&mut self, text: &str) {
        let path = self.dir.path().join("alertcore.toml");
        std::fs::write(&path, text).expect("write config");
        self.config = Some(path);
    }

    pub(crate) fn state(&self) -> PathBuf {
        self.dir.path().join("state.db")
    }

    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_alertctl"));
        for var in [
            "ALERTCORE_CONFIG",
            "ALERTCORE_STATE",
            "ALERTCORE_NOW",
            "STATE_DIRECTORY",
        ] {
            cmd.env_remove(var);
        }
        for (k, _) in std::env::vars() {
            if k.starts_with("MONITOR_") {
                cmd.env_remove(k);
            }
        }
        if let Some(c) = &self.config {
            cmd.arg("--config").arg(c);
        }
        cmd.arg("--state").arg(self.state());
        cmd.args(args).stdin(Stdio::null());
        cmd
    }

    /// [`Ctl::command`] at a given time (`--now`).
    pub(crate) fn command_at(&self, now: &str, args: &[&str]) -> Command {
        let mut all = vec!["--now", now];
        all.extend_from_slice(args);
        self.command(&all)
    }

    pub(crate) fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run alertctl")
    }

    /// Runs at a given time (`--now`).
    pub(crate) fn run_at(&self, now: &str, args: &[&str]) -> Output {
        self.command_at(now, args).output().expect("run alertctl")
    }

    pub(crate) fn json(&self, args: &[&str]) -> Value {
        let out = self.run(args);
        assert!(out.status.success(), "{}", text(&out));
        serde_json::from_slice(&out.stdout).expect("json output")
    }
}

/// `PRAGMA integrity_check` of the state file at `path` ("ok" when sound).
pub(crate) fn integrity(path: &std::path::Path) -> String {
    rusqlite::Connection::open(path)
        .expect("open the state file")
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check")
}

/// The arguments of `alertctl failure UNIT` as the `OnFailure=` handler gets them for a
/// unit whose main process exited with status 1; more options may follow.
pub(crate) fn failure_args(unit: &str) -> Vec<&str> {
    vec![
        "failure",
        unit,
        "--result",
        "exit-code",
        "--exit-code",
        "exited",
        "--exit-status",
        "1",
    ]
}

/// Waits for `child` until `deadline`. Past it, kills (and reaps) the child and returns
/// `None`: the caller fails the test, saying what did not finish.
pub(crate) fn wait_or_kill(child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Waits for `child` until `deadline`; kills it and fails the test after that.
pub(crate) fn wait_until(child: &mut Child, deadline: Instant, what: &str) -> ExitStatus {
    wait_or_kill(child, deadline).unwrap_or_else(|| panic!("{what} did not finish in time"))
}

pub(crate) fn text(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The console lines (alerts) a run printed.
fn alerts(out: &Output) -> Vec<String> {
    stderr(out)
        .lines()
        .filter(|l| l.starts_with("alertcore: "))
        .map(str::to_owned)
        .collect()
}

fn fail(ctl: &Ctl, now: &str, unit: &str, extra: &[&str]) -> Output {
    let mut args = failure_args(unit);
    args.extend_from_slice(extra);
    let out = ctl.run_at(now, &args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    out
}

#[test]
fn defaults_alert_once_per_streak_then_recover() {
    let ctl = Ctl::new();
    let out = fail(&ctl, "2026-11-21T10:00:00Z", "backup.service", &[]);
    assert_eq!(
        alerts(&out),
        ["alertcore: [".to_owned()
            + &alertcore::host_name()
            + "] FAILED: backup.service (exit-code, status=1), 1 failure since 2026-11-21T10:00:00Z"]
    );
    // a restart loop: systemd >= 254 fires OnFailure= on every auto-restart
    for minute in 1..6 {
        let out = fail(
            &ctl,
            &format!("2026-11-21T10:0{minute}:00Z"),
            "backup.service",
            &[],
        );
        assert!(alerts(&out).is_empty(), "deduplicated: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("already alerted"),
            "{}",
            text(&out)
        );
    }
    let out = ctl.run_at("2026-11-21T11:00:00Z", &["success", "backup.service"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(alerts(&out).len(), 1);
    assert!(
        alerts(&out)[0].contains("RECOVERED: backup.service (after 6 failures)"),
        "{}",
        text(&out)
    );
    // the streak is gone: a second success sends nothing
    let out = ctl.run_at("2026-11-21T11:01:00Z", &["success", "backup.service"]);
    assert!(alerts(&out).is_empty(), "{}", text(&out));
}

#[test]
fn threshold_repeat_and_escalation() {
    let ctl = Ctl::with_config(
        "[policy]\nthreshold = 3\nrepeat = \"4h\"\n\n[notifiers.screen]\ntype = \"console\"\n",
    );
    let warn = ["--severity", "warning"];
    assert!(alerts(&fail(&ctl, "2026-11-21T10:00:00Z", "db.service", &warn)).is_empty());
    assert!(alerts(&fail(&ctl, "2026-11-21T10:01:00Z", "db.service", &warn)).is_empty());
    let third = fail(&ctl, "2026-11-21T10:02:00Z", "db.service", &warn);
    assert_eq!(
        alerts(&third).len(),
        1,
        "alert on the 3rd failure: {}",
        text(&third)
    );
    assert!(alerts(&third)[0].contains("FAILED: db.service"));
    // inside the repeat interval
    let out = fail(&ctl, "2026-11-21T11:00:00Z", "db.service", &warn);
    assert!(alerts(&out).is_empty());
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("inside repeat interval until 2026-11-21T14:02:00Z"),
        "{}",
        text(&out)
    );
    // warning -> critical escalates at once, once
    let out = fail(
        &ctl,
        "2026-11-21T11:05:00Z",
        "db.service",
        &["--severity", "critical"],
    );
    assert_eq!(alerts(&out).len(), 1, "{}", text(&out));
    assert!(alerts(&out)[0].contains("ESCALATED: db.service"));
    assert!(alerts(&fail(&ctl, "2026-11-21T11:06:00Z", "db.service", &warn)).is_empty());
    assert!(alerts(&fail(&ctl, "2026-11-21T11:07:00Z", "db.service", &[])).is_empty());
    // 4h after the escalation: a reminder
    let out = fail(&ctl, "2026-11-21T15:05:00Z", "db.service", &[]);
    assert_eq!(alerts(&out).len(), 1, "{}", text(&out));
    assert!(alerts(&out)[0].contains("REMINDER: db.service"));

    let status = ctl.json(&["status", "db.service", "--json"]);
    let s = &status["services"][0];
    assert_eq!(s["failing"], true);
    assert_eq!(s["consecutive_failures"], 8);
    assert_eq!(s["severity"], "critical");
    assert_eq!(s["notifiers"][0]["notifier"], "screen");
    assert_eq!(s["notifiers"][0]["last_kind"], "reminder");
    assert_eq!(s["notifiers"][0]["alerts"], 3);
    assert!(s["notifiers"][0]["next_reminder"].is_number());
    let history = ctl.json(&["history", "db.service", "--json"]);
    assert_eq!(history["failures"].as_array().map(Vec::len), Some(8));
    assert_eq!(history["failures"][2]["notifiers"][0], "screen");
    assert_eq!(
        history["failures"][0]["notifiers"].as_array().map(Vec::len),
        Some(0)
    );
    assert_eq!(history["notifications"].as_array().map(Vec::len), Some(3));
}

#[test]
fn no_recovery_below_threshold_and_recovery_can_be_off() {
    let ctl = Ctl::with_config("[policy]\nthreshold = 2\n");
    fail(&ctl, "2026-11-21T10:00:00Z", "a.service", &[]);
    let out = ctl.run_at("2026-11-21T10:01:00Z", &["success", "a.service"]);
    assert!(alerts(&out).is_empty(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no failure alert was delivered"));

    let ctl = Ctl::with_config("[policy]\nrecovery = false\n");
    assert_eq!(
        alerts(&fail(&ctl, "2026-11-21T10:00:00Z", "a.service", &[])).len(),
        1
    );
    let out = ctl.run_at("2026-11-21T10:01:00Z", &["success", "a.service"]);
    assert!(alerts(&out).is_empty(), "{}", text(&out));
}

#[test]
fn clear_forgets_a_streak() {
    let ctl = Ctl::new();
    fail(&ctl, "2026-11-21T10:00:00Z", "a.service", &[]);
    fail(&ctl, "2026-11-21T10:00:00Z", "b.service", &[]);
    let out = ctl.run(&["clear", "a.service"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "a.service: cleared\n");
    // a new failure is a new streak, alerted again
    assert_eq!(
        alerts(&fail(&ctl, "2026-11-21T10:01:00Z", "a.service", &[])).len(),
        1
    );
    assert!(alerts(&fail(&ctl, "2026-11-21T10:01:00Z", "b.service", &[])).is_empty());
    let out = ctl.run(&["clear", "--all"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("b.service: cleared"),
        "{}",
        text(&out)
    );
    let status = ctl.json(&["status", "--json"]);
    assert_eq!(status["services"].as_array().map(Vec::len), Some(0));
    // usage error
    assert_eq!(ctl.run(&["clear"]).status.code(), Some(2));
}

#[test]
fn monitor_variables_describe_the_run() {
    let ctl = Ctl::new();
    let out = ctl
        .command(&["failure", "demo.service"])
        .env("MONITOR_SERVICE_RESULT", "signal")
        .env("MONITOR_EXIT_CODE", "killed")
        .env("MONITOR_EXIT_STATUS", "TERM")
        .env("MONITOR_INVOCATION_ID", "0123456789abcdef0123456789abcdef")
        .env("MONITOR_UNIT", "demo.service")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        alerts(&out)[0].contains("FAILED: demo.service (signal, status=TERM)"),
        "{}",
        text(&out)
    );
    let h = ctl.json(&["history", "demo.service", "--json"]);
    let f = &h["failures"][0];
    assert_eq!(f["exit_code"], "killed");
    assert_eq!(f["invocation_id"], "0123456789abcdef0123456789abcdef");
    assert_eq!(f["severity"], "critical");
}

#[test]
fn bad_config_is_exit_2_with_location() {
    let ctl = Ctl::with_config("[policy]\nthreshold = 2\nrepaet = \"4h\"\n");
    for args in [&["config", "check"][..], &["failure", "x.service"][..]] {
        let out = ctl.run(args);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        let want = format!(
            "alertctl: {}:3:1: unknown field `repaet`",
            ctl.dir.path().join("alertcore.toml").display()
        );
        assert!(stderr(&out).starts_with(&want), "{}", text(&out));
    }
    // the failure was recorded all the same, and shown on the console, so it is not lost
    let out = ctl.run(&["config", "check"]);
    assert_eq!(out.status.code(), Some(2));
    let out = ctl.run(&["failure", "y.service", "--result", "exit-code"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        alerts(&out)[0].contains("FAILED: y.service (exit-code)"),
        "{}",
        text(&out)
    );
    let conn = rusqlite::Connection::open(ctl.state()).expect("state");
    let n: i64 = conn
        .query_row(
            "SELECT count(*) FROM failures WHERE service = 'y.service'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(n, 1);

    let ctl = Ctl::with_config("[notifiers.ops]\ntype = \"pagr\"\n");
    let out = ctl.run(&["config", "check"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("alertcore.toml:2:1: notifier \"ops\": unknown type \"pagr\""),
        "{}",
        text(&out)
    );

    let ctl = Ctl::new();
    let out = ctl.run(&["--config", "/nonexistent/alertcore.toml", "config", "check"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        stderr(&out).contains("/nonexistent/alertcore.toml: cannot read config file"),
        "{}",
        text(&out)
    );

    let out = ctl.run(&["failure", "x.service", "--severity", "red"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[test]
fn unwritable_state_is_exit_1_with_a_clear_message() {
    let ctl = Ctl::new();
    let blocker = ctl.dir.path().join("file");
    std::fs::write(&blocker, "").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_alertctl"))
        .args(["--state"])
        .arg(blocker.join("state.db"))
        .args(["failure", "x.service"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stderr(&out).contains("cannot open state file"),
        "{}",
        text(&out)
    );
}

#[test]
fn config_dump_fills_defaults_and_redacts() {
    let ctl = Ctl::with_config("host = \"web1\"\n[notifiers.screen]\ntype = \"console\"\n");
    let out = ctl.run(&["config", "dump"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let dump: toml::Table = toml::from_str(&String::from_utf8_lossy(&out.stdout)).expect("toml");
    assert_eq!(dump["host"].as_str(), Some("web1"));
    assert_eq!(dump["policy"]["threshold"].as_integer(), Some(1));
    assert_eq!(dump["policy"]["repeat"].as_str(), Some("0s"));
    assert_eq!(
        dump["notifiers"]["screen"]["type"].as_str(),
        Some("console")
    );
    assert_eq!(
        dump["state"]["path"].as_str().map(Path::new),
        Some(ctl.state().as_path())
    );
}

#[test]
fn config_dump_shows_checks_with_their_defaults() {
    let ctl = Ctl::with_config(
        "[[checks]]\nname = \"api\"\nkind = \"http\"\nurl = \"https://user:pw@example.org/x\"\n\
         [checks.headers]\nAuthorization = \"Bearer s3cret\"\n\n\
         [[checks]]\nname = \"nightly\"\nkind = \"file\"\npath = \"/srv/backup.tar\"\n\
         schedule = \"30 3 * * *\"\ntimezone = \"Europe/Berlin\"\nthreshold = 2\nwithin = 5\n",
    );
    let out = ctl.run(&["config", "dump"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains("s3cret") && !stdout.contains("pw@"),
        "{stdout}"
    );
    let dump: toml::Table = toml::from_str(&stdout).expect("toml");
    let checks = dump["checks"].as_array().expect("checks");
    let api = &checks[0];
    assert_eq!(api["kind"].as_str(), Some("http"));
    assert_eq!(api["interval"].as_str(), Some("1m"));
    assert_eq!(api["timeout"].as_str(), Some("10s"));
    assert_eq!(api["retry_interval"].as_str(), Some("1m"));
    assert_eq!(api["threshold"].as_integer(), Some(1));
    assert_eq!(api["recover_after"].as_integer(), Some(1));
    assert_eq!(api["unknown"].as_str(), Some("warning"));
    let nightly = &checks[1];
    assert_eq!(nightly["schedule"].as_str(), Some("30 3 * * *"));
    assert_eq!(nightly["timezone"].as_str(), Some("Europe/Berlin"));
    assert_eq!(nightly["within"].as_integer(), Some(5));
    assert!(nightly.get("interval").is_none(), "{stdout}");
    assert!(nightly.get("retry_interval").is_none(), "{stdout}");
    assert_eq!(dump["daemon"]["concurrency"].as_integer(), Some(256));
}

#[test]
fn notify_test_uses_the_named_notifier_and_no_state() {
    let ctl = Ctl::with_config("[notifiers.screen]\ntype = \"console\"\n");
    let out = ctl.run(&["notify-test", "screen"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        alerts(&out)[0].contains("FAILED: alertctl-notify-test.service"),
        "{}",
        text(&out)
    );
    assert!(!ctl.state().exists());
    let out = ctl.run(&["notify-test", "nope"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(stderr(&out).contains("no notifier named \"nope\" (configured: screen)"));
}

#[test]
fn concurrent_handlers_lose_nothing() {
    // a boot where many units fail together, some of them in restart loops
    const PROCS: usize = 60;
    const UNITS: usize = 6;
    let ctl = Ctl::new();
    // create the file first from one process, as the first failure of a boot would
    fail(&ctl, "2026-11-21T10:00:00Z", "warmup.service", &[]);
    let children: Vec<_> = (0..PROCS)
        .map(|i| {
            ctl.command(&[
                "failure",
                &format!("unit{}.service", i % UNITS),
                "--result",
                "exit-code",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn")
        })
        .collect();
    let mut alerts_sent = 0;
    for child in children {
        let out = child.wait_with_output().expect("wait");
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        assert!(!stderr(&out).contains("locked"), "{}", text(&out));
        alerts_sent += alerts(&out).len();
    }
    assert_eq!(alerts_sent, UNITS, "one alert per unit's streak");
    let status = ctl.json(&["status", "--json"]);
    for i in 0..UNITS {
        let unit = format!("unit{i}.service");
        let s = status["services"]
            .as_array()
            .and_then(|a| a.iter().find(|s| s["service"] == unit.as_str()))
            .expect("unit in status");
        assert_eq!(s["consecutive_failures"], PROCS / UNITS, "{unit}");
        let h = ctl.json(&["history", &unit, "--json"]);
        assert_eq!(
            h["failures"].as_array().map(Vec::len),
            Some(PROCS / UNITS),
            "{unit}"
        );
        assert_eq!(
            h["notifications"].as_array().map(Vec::len),
            Some(1),
            "{unit}"
        );
    }
    // and the database is sound
    let conn = rusqlite::Connection::open(ctl.state()).expect("open");
    let ok: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("check");
    assert_eq!(ok, "ok");
}

#[test]
fn success_handler_started_for_a_failed_restart_records_a_failure() {
    // systemd <= 253 starts OnSuccess= on every automatic restart of a failing unit
    let ctl = Ctl::new();
    assert_eq!(
        alerts(&fail(&ctl, "2026-11-21T10:00:00Z", "loop.service", &[])).len(),
        1
    );
    let out = ctl
        .command(&["--now", "2026-11-21T10:00:01Z", "success", "loop.service"])
        .env("MONITOR_SERVICE_RESULT", "exit-code")
        .env("MONITOR_EXIT_CODE", "exited")
        .env("MONITOR_EXIT_STATUS", "3")
        .env("MONITOR_UNIT", "loop.service")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        alerts(&out).is_empty(),
        "no recovery, no second alert: {}",
        text(&out)
    );
    let h = ctl.json(&["history", "loop.service", "--json"]);
    assert_eq!(h["failures"].as_array().map(Vec::len), Some(2), "{h}");
    assert_eq!(h["failures"][1]["exit_status"], "3");
}

const RULES: &str = r#"timezone = "Europe/Berlin"
[policy]
repeat = "4h"
[notifiers.ops]
type = "console"
[notifiers.pager]
type = "console"

[[rules]]
services = ["web*", "re:^db-[0-9]+"]
time = "Mon-Fri 08:00-18:00"
notify = ["ops", { to = "pager", repeat = "30m" }]

[[rules]]
min_duration = "30m"
notify = "pager"
stop = true

[[rules]]
unmatched = true
notify = "ops"
"#;

#[test]
fn test_explains_rules_and_writes_nothing() {
    let ctl = Ctl::with_config(RULES);
    let out = ctl.run(&[
        "test",
        "web.service",
        "--at",
        "2026-11-23 03:00",
        "--duration",
        "45m",
        "--failures",
        "3",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for line in [
        "web.service on ",
        "failure (critical) at Mon 2026-11-23 03:00 CET; failure 3 of the streak, which has lasted 45m",
        "rule 1 (line 9): no match: Mon 2026-11-23 03:00 CET is outside time [Mon-Fri 08:00-18:00]",
        "rule 2 (line 14): matched",
        "      pager: send failure alert",
        "rule 3 (line 19) [unmatched]: not needed",
        "ops: suppressed: no rule sends this event to it",
        "(nothing was sent or written)",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in\n{stdout}");
    }
    assert!(!ctl.state().exists(), "test must not create the state file");

    // against stored state: the pager was alerted a moment ago
    fail(&ctl, "2026-11-23T09:00:00Z", "web.service", &[]);
    let v = ctl.json(&[
        "--now",
        "2026-11-23T09:10:00Z",
        "test",
        "web.service",
        "--json",
    ]);
    assert_eq!(v["failures"], 2);
    assert_eq!(v["streak_lasted_s"], 600);
    let pager = v["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["notifier"] == "pager")
        .unwrap();
    assert_eq!(
        pager["action"]["reason"]["reason"],
        "inside_repeat_interval"
    );
    assert_eq!(pager["rule"], 1);
    // recovery: only the alerted ones, through rule 1
    let out = ctl.run(&[
        "--now",
        "2026-11-23T09:10:00Z",
        "test",
        "web.service",
        "--event",
        "recovery",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("ops: send recovery"), "{stdout}");
    assert!(stdout.contains("pager: send recovery"), "{stdout}");
    // nothing changed
    let st = ctl.json(&["status", "--json"]);
    assert_eq!(st["services"][0]["consecutive_failures"], 1, "{st}");
}

#[test]
fn trace_appends_the_explanation_of_real_decisions() {
    let ctl = Ctl::with_config(RULES);
    let trace = ctl.dir.path().join("trace.log");
    let trace_arg = trace.to_str().unwrap();
    fail(
        &ctl,
        "2026-11-23T09:00:00Z",
        "web.service",
        &["--trace", trace_arg],
    );
    let out = ctl.run_at(
        "2026-11-23T09:05:00Z",
        &["--trace", trace_arg, "success", "web.service"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let log = std::fs::read_to_string(&trace).unwrap();
    assert!(log.contains("web.service: failure on "), "{log}");
    assert!(
        log.contains("rule 1 (line 9): matched\n      ops: send failure alert"),
        "{log}"
    );
    assert!(log.contains("web.service: success on "), "{log}");
    assert!(
        log.contains("recovery: goes to whoever this rule alerted"),
        "{log}"
    );
    assert!(log.contains("pager: send recovery"), "{log}");
}

#[test]
fn bad_rules_are_exit_2_naming_the_rule() {
    let bad = RULES.replace("notify = \"pager\"\nstop", "notify = \"pagr\"\nstop");
    let ctl = Ctl::with_config(&bad);
    let out = ctl.run(&["config", "check"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = stderr(&out);
    assert!(
        err.contains(
            "alertcore.toml:16:1: rule 2: unknown notifier \"pagr\" (configured: ops, pager)"
        ),
        "{err}"
    );
    let out = ctl.run(&["test", "web.service"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[test]
fn config_dump_shows_resolved_rules() {
    let ctl = Ctl::with_config(RULES);
    let out = ctl.run(&["config", "dump"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let dump: toml::Table = toml::from_str(&String::from_utf8_lossy(&out.stdout)).unwrap();
    assert_eq!(dump["timezone"].as_str(), Some("Europe/Berlin"));
    let rules = dump["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 3);
    assert_eq!(rules[0]["id"].as_str(), Some("rule 1 (line 9)"));
    assert_eq!(
        rules[0]["services"].as_array().unwrap()[1].as_str(),
        Some("re:^db-[0-9]+")
    );
    let pager = &rules[0]["notify"].as_array().unwrap()[1];
    assert_eq!(pager["to"].as_str(), Some("pager"));
    assert_eq!(pager["repeat"].as_str(), Some("30m"));
    assert_eq!(pager["threshold"].as_integer(), Some(1));
    assert_eq!(rules[0]["notify"][0]["repeat"].as_str(), Some("4h"));
    assert_eq!(rules[2]["unmatched"].as_bool(), Some(true));
}

#[test]
fn outbox_lists_retries_and_drops_deliveries() {
    let ctl = Ctl::with_config(
        "[notifiers.agent]\ntype = \"exec\"\ncommand = [\"/bin/sh\", \"-c\", \"exit 1\"]\n",
    );
    let out = fail_code(&ctl, "2026-11-23T10:00:00Z", "web.service");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let rows = ctl.json(&["--now", "2026-11-23T10:00:01Z", "outbox", "--json"]);
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["status"], "pending");
    assert_eq!(rows[0]["attempts"], 1);
    let id = rows[0]["id"].to_string();
    let listing = ctl.run_at("2026-11-23T10:00:01Z", &["outbox"]);
    assert!(
        text(&listing).contains(&format!("#{id} agent failure of web.service")),
        "{}",
        text(&listing)
    );
    assert!(text(&listing).contains(": retry at "), "{}", text(&listing));

    let out = ctl.run_at("2026-11-23T10:00:01Z", &["outbox", "retry", "99"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stderr(&out).contains("no pending or failed delivery #99"),
        "{}",
        text(&out)
    );
    let out = ctl.run_at("2026-11-23T10:00:01Z", &["outbox", "retry", &id]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("1 delivery due now"), "{}", text(&out));
    let listing = ctl.run_at("2026-11-23T10:00:02Z", &["outbox"]);
    assert!(text(&listing).contains(": due"), "{}", text(&listing));

    let out = ctl.run(&["outbox", "drop", &id]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = ctl.run(&["outbox", "drop", &id]);
    assert_eq!(out.status.code(), Some(1), "dropping twice: {}", text(&out));
    let rows = ctl.json(&["outbox", "--json"]);
    assert_eq!(rows.as_array().map(Vec::len), Some(0), "{rows}");
    let out = ctl.run_at("2026-11-23T11:00:00Z", &["flush"]);
    assert!(text(&out).contains("nothing due"), "{}", text(&out));
}

/// `alertctl failure` as [`fail`] runs it, whatever its exit code.
fn fail_code(ctl: &Ctl, now: &str, unit: &str) -> Output {
    ctl.run_at(now, &failure_args(unit))
}

/// After `clear`, the service's next alert is a new incident: it is sent at once, not
/// queued behind a delivery of the forgotten streak still waiting for its retry.
#[test]
fn an_alert_after_clear_does_not_wait_behind_the_old_streak() {
    let dir = tempfile::tempdir().unwrap();
    let ok = dir.path().join("ok");
    let runs = dir.path().join("runs");
    let ctl = Ctl::with_config(&format!(
        "[notifiers.agent]\ntype = \"exec\"\n\
         command = [\"/bin/sh\", \"-c\", \"test -e {} && echo run >> {}\"]\n",
        ok.display(),
        runs.display()
    ));
    let out = fail_code(&ctl, "2026-11-23T10:00:00Z", "web.service");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    std::fs::write(&ok, "").unwrap();
    let out = ctl.run(&["clear", "web.service"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = fail_code(&ctl, "2026-11-23T10:00:05Z", "web.service");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(&runs).unwrap_or_default(), "run\n");
    let rows = ctl.json(&["--now", "2026-11-23T10:00:05Z", "outbox", "--json"]);
    assert_eq!(
        rows.as_array().map(Vec::len),
        Some(1),
        "only the old retry: {rows}"
    );
}

/// A recovery that comes while its failure alert still waits for a retry is not sent
/// before it: the report says that it waits in the outbox, and why.
#[test]
fn a_recovery_behind_its_pending_alert_is_reported_as_waiting() {
    let ctl = Ctl::with_config("[notifiers.agent]\ntype = \"exec\"\ncommand = [\"/bin/false\"]\n");
    let out = ctl.run(&failure_args("db.service"));
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let out = ctl.run(&["success", "db.service"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(
            "  agent recovery of db.service (#2): waiting in the outbox \
             (behind an older notification of the incident)"
        ),
        "{}",
        text(&out)
    );
}

/// The README's ten-line example config is a good config.
#[test]
fn the_readme_example_config_passes_config_check() {
    let readme = include_str!("../../README.md");
    let start = readme
        .find("```toml\n")
        .expect("a toml block in the README")
        + 8;
    let end = start + readme[start..].find("```").expect("its end");
    let ctl = Ctl::with_config(&readme[start..end]);
    let out = ctl.run(&["config", "check"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok (1 notifiers: mail;"));
}

/// `alertctl generate man` writes one page per command of `--help`, each rendering
/// without a groff warning; the bash completion parses.
#[test]
fn man_pages_and_completions_come_from_the_command_line_definitions() {
    let ctl = Ctl::new();
    let dir = ctl.dir.path().join("man");
    let out = ctl.run(&["generate", "man", dir.to_str().expect("utf-8 path")]);
    assert!(out.status.success(), "{}", text(&out));
    let help = String::from_utf8_lossy(&ctl.run(&["--help"]).stdout).into_owned();
    let commands: Vec<&str> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert!(commands.len() > 10, "{help}");
    for c in &commands {
        assert!(
            dir.join(format!("alertctl-{c}.1")).exists(),
            "no page for {c}"
        );
    }
    let mut pages: Vec<_> = std::fs::read_dir(&dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .collect();
    pages.sort();
    assert_eq!(pages.len(), commands.len() + 1, "{pages:?}");
    for page in &pages {
        let out = Command::new("groff")
            .args(["-man", "-ww", "-z"])
            .arg(page)
            .output()
            .expect("groff (groff-base)");
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "{}: {}",
            page.display(),
            text(&out)
        );
    }
    let ping = std::fs::read_to_string(dir.join("alertctl-ping.1")).expect("ping page");
    assert!(
        ping.contains("\\-\\-rid"),
        "the page has the options of --help"
    );
    let out = ctl.run(&["generate", "completions", "bash"]);
    assert!(out.status.success());
    let script = ctl.dir.path().join("alertctl.bash");
    std::fs::write(&script, &out.stdout).expect("write");
    let check = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .expect("bash");
    assert!(check.status.success(), "{}", text(&check));
    // and completes in a real bash: `alertctl si<TAB>` offers `silence`, and
    // `alertctl silence <TAB>` its subcommands
    let complete = |line: &str| {
        let words: Vec<&str> = line.split(' ').collect();
        let probe = format!(
            "source {}\ncomplete -p alertctl\nCOMP_WORDS=({})\nCOMP_CWORD={}\n\
             COMP_LINE='{line}'\nCOMP_POINT=${{#COMP_LINE}}\n_alertctl alertctl '{}' '{}'\n\
             printf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
            script.display(),
            words
                .iter()
                .map(|w| format!("'{w}'"))
                .collect::<Vec<_>>()
                .join(" "),
            words.len() - 1,
            words[words.len() - 1],
            words[words.len() - 2],
        );
        let out = Command::new("bash")
            .args(["--norc", "-c", &probe])
            .output()
            .expect("bash");
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let offered = complete("alertctl si");
    assert!(
        offered
            .lines()
            .next()
            .is_some_and(|l| l.starts_with("complete ") && l.ends_with(" -F _alertctl alertctl")),
        "{offered}"
    );
    let words: Vec<&str> = offered.lines().skip(1).collect();
    assert_eq!(words, ["silence"], "{offered}");
    let offered = complete("alertctl silence ");
    for sub in ["add", "list", "expire"] {
        assert!(offered.lines().any(|l| l == sub), "{sub}: {offered}");
    }
}

/// `alertctl systemd install` refuses what it must not wire, with the reason, and
/// writes nothing; `uninstall` leaves a drop-in it did not write.
#[test]
fn systemd_install_refuses_bad_units_and_keeps_other_files() {
    let ctl = Ctl::new();
    let dir = ctl.dir.path().join("units");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let wire = |args: &[&str]| {
        let mut all = vec!["systemd"];
        all.extend_from_slice(args);
        let d = dir.display().to_string();
        all.extend(["--unit-dir", &d, "--no-reload"]);
        ctl.run(&all)
    };
    for (unit, why) in [
        (
            "alertcore-failure@x.service",
            "alertcore's own units are not wired",
        ),
        (
            "backup",
            "\"backup\" is not a unit name: give it with its type",
        ),
    ] {
        let out = wire(&["install", unit]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(text(&out).contains(why), "{}", text(&out));
    }
    assert_eq!(
        std::fs::read_dir(&dir).expect("dir").count(),
        0,
        "nothing written"
    );
    let mine = dir.join("db.service.d");
    std::fs::create_dir_all(&mine).expect("mkdir");
    std::fs::write(mine.join("10-alertcore.conf"), "[Unit]\n").expect("write");
    let out = wire(&["uninstall", "db.service"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("left "), "{}", text(&out));
    assert!(mine.join("10-alertcore.conf").exists());
}

/// Every relative link in the manual (`docs/*.md`) and the README goes to a file that
/// is there and, with `#anchor`, to a heading it has (GitHub's and mdBook's slugs); and
/// every chapter is in the book's `SUMMARY.md` (mdBook renders only those).
#[test]
fn every_link_in_the_manual_resolves() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let docs = root.join("docs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&docs)
        .expect("docs/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    files.sort();
    let summary = std::fs::read_to_string(docs.join("SUMMARY.md")).expect("SUMMARY.md");
    for f in &files {
        let name = f.file_name().and_then(|n| n.to_str()).expect("name");
        assert!(
            name == "SUMMARY.md" || summary.contains(&format!("]({name})")),
            "{name} is not a chapter of docs/SUMMARY.md"
        );
    }
    files.push(root.join("README.md"));
    let slug = |heading: &str| -> String {
        heading
            .trim()
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
            .map(|c| if c == ' ' { '-' } else { c })
            .collect()
    };
    let mut checked = 0;
    for file in &files {
        let doc = std::fs::read_to_string(file).expect("read");
        // code blocks hold no links
        let prose: String = doc.split("```").step_by(2).collect::<Vec<_>>().join("\n");
        for part in prose.split("](").skip(1) {
            let Some(target) = part.split(')').next() else {
                continue;
            };
            if target.starts_with("http://") || target.starts_with("https://") {
                continue;
            }
            let (path, anchor) = target.split_once('#').unwrap_or((target, ""));
            let dest = if path.is_empty() {
                file.clone()
            } else {
                file.parent().expect("dir").join(path)
            };
            assert!(
                dest.exists(),
                "{}: link to {target}: no such file",
                file.display()
            );
            if !anchor.is_empty() {
                let text = std::fs::read_to_string(&dest).expect("target");
                let found = text
                    .lines()
                    .filter_map(|l| l.strip_prefix('#'))
                    .map(|l| slug(l.trim_start_matches('#')))
                    .any(|s| s == anchor);
                assert!(
                    found,
                    "{}: link to {target}: no such heading",
                    file.display()
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 30, "{checked} links");
}

/// Every TOML example in the manual (`docs/*.md`) and the README is a good config:
/// `alertctl config check` accepts each, so the manual cannot drift from the parser.
#[test]
fn every_toml_example_in_the_manual_passes_config_check() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    files.push(root.join("README.md"));
    files.sort();
    let mut checked = 0;
    for file in &files {
        let doc = std::fs::read_to_string(file).expect("read");
        for (i, block) in doc.split("```toml\n").skip(1).enumerate() {
            let example = block.split("```").next().expect("a block");
            let ctl = Ctl::with_config(example);
            let out = ctl.run(&["config", "check"]);
            assert!(
                out.status.success(),
                "{} example {}:\n{example}\n{}",
                file.display(),
                i + 1,
                text(&out)
            );
            checked += 1;
        }
    }
    assert!(checked >= 14, "{checked} examples");
}

/// `alertctl test --event output` names the notifiers a successful run's output goes to
/// (`on_success = "output"`); `alertctl success` then sends it there and nowhere else,
/// once per run id.
#[test]
fn test_predicts_where_a_runs_output_goes_and_success_sends_it_there() {
    let mut ctl = Ctl::new();
    let d = ctl.dir.path().display().to_string();
    ctl.set_config(&format!(
        "[notifiers.out]\ntype = \"file\"\npath = \"{d}/out.log\"\n\
         [notifiers.other]\ntype = \"file\"\npath = \"{d}/other.log\"\n\
         [[rules]]\nservices = [\"backup.service\"]\non_success = \"output\"\nnotify = [\"out\"]\n\
         [[rules]]\nnotify = [\"other\"]\n"
    ));
    let told = ctl.json(&["test", "backup.service", "--event", "output", "--json"]);
    assert_eq!(told["to"][0]["notifier"], "out", "{told:#}");
    assert_eq!(told["to"].as_array().map(Vec::len), Some(1), "{told:#}");
    let none = ctl.run(&["test", "web.service", "--event", "output"]);
    assert!(
        String::from_utf8_lossy(&none.stdout).contains("a successful run sends nothing"),
        "{}",
        text(&none)
    );
    for _ in 0..2 {
        let out = ctl
            .command(&["success", "backup.service"])
            .env("MONITOR_INVOCATION_ID", "0123456789abcdef0123456789abcdef")
            .env("MONITOR_SERVICE_RESULT", "success")
            .env("MONITOR_UNIT", "backup.service")
            .output()
            .expect("run alertctl");
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }
    let out = std::fs::read_to_string(ctl.dir.path().join("out.log")).unwrap_or_default();
    assert_eq!(out.lines().count(), 1, "one run, one notice:\n{out}");
    assert!(out.contains("] OUTPUT: backup.service (success)"), "{out}");
    assert!(
        !ctl.dir.path().join("other.log").exists(),
        "a run's output only where asked"
    );
}

/// `--trigger` takes only what a failure can say; a handler whose config matches on
/// `trigger` still records the failure when no systemd answers (here: no bus at all),
/// with the trigger unknown, so a `trigger` rule does not match and the others do.
#[test]
fn trigger_input_errors_and_a_handler_without_a_bus() {
    let mut ctl = Ctl::new();
    let d = ctl.dir.path().display().to_string();
    ctl.set_config(&format!(
        "[notifiers.timers]\ntype = \"file\"\npath = \"{d}/timers.log\"\n\
         [notifiers.all]\ntype = \"file\"\npath = \"{d}/all.log\"\n\
         [[rules]]\ntrigger = \"timer\"\nnotify = \"timers\"\n\
         [[rules]]\nnotify = \"all\"\n"
    ));
    let out = ctl.run(&["test", "x.service", "--trigger", "manual"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        stderr(&out)
            .contains("unknown trigger \"manual\": expected \"timer\", \"boot\" or \"other\""),
        "{}",
        text(&out)
    );
    let out = ctl
        .command(&["failure", "x.service", "--result", "exit-code"])
        .env("DBUS_SYSTEM_BUS_ADDRESS", format!("unix:path={d}/no-bus"))
        .env("DBUS_SESSION_BUS_ADDRESS", format!("unix:path={d}/no-bus"))
        .output()
        .expect("run alertctl");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let all = std::fs::read_to_string(ctl.dir.path().join("all.log")).unwrap_or_default();
    assert!(all.contains("FAILED: x.service"), "{all}\n{}", text(&out));
    assert!(
        !ctl.dir.path().join("timers.log").exists(),
        "{}",
        text(&out)
    );
}

/// What `alertctl test` prints is what the real event then does (issue 23, item 4): for
/// each event of a sequence through the CLI (severities, an escalation, a threshold with
/// a minimum duration, reminders, an acknowledgement, recoveries with and without
/// `recovery = false`, a silence), `alertctl test --json` names exactly the notifiers and alert
/// kinds that the real `alertctl failure`/`success` then writes to their files, and
/// `alertctl test`'s explanation is the one the real run appends to `--trace`.
#[test]
fn alertctl_test_predicts_what_the_real_event_does() {
    const NOTIFIERS: [&str; 4] = ["all", "crit", "slow", "quiet"];
    let mut config = String::from("timezone = \"UTC\"\n[policy]\nrepeat = \"20m\"\n");
    let mut ctl = Ctl::new();
    let dir = ctl.dir.path().to_owned();
    let log = |n: &str| dir.join(format!("{n}.log"));
    for n in NOTIFIERS {
        config.push_str(&format!(
            "[notifiers.{n}]\ntype = \"file\"\npath = \"{}\"\n",
            log(n).display()
        ));
    }
    config.push_str(
        "[[rules]]\nnotify = [\"all\"]\n\
         [[rules]]\nseverity = \"critical\"\nnotify = [\"crit\"]\n\
         [[rules]]\nmin_duration = \"10m\"\nthreshold = 2\nnotify = [\"slow\"]\n\
         [[rules]]\nrecovery = false\nrepeat = \"1h\"\nnotify = [\"quiet\"]\n",
    );
    ctl.set_config(&config);
    let trace = dir.join("trace");
    let trace_text = || std::fs::read_to_string(&trace).unwrap_or_default();
    let lines = |n: &str| -> Vec<String> {
        std::fs::read_to_string(log(n))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    };
    // (time, service, "failure SEVERITY" | "success" | "ack" | "silence" for 20 minutes)
    let steps = [
        ("2026-12-01T10:00:00Z", "a.service", "failure warning"),
        ("2026-12-01T10:05:00Z", "a.service", "failure critical"),
        ("2026-12-01T10:12:00Z", "a.service", "failure warning"),
        ("2026-12-01T10:30:00Z", "a.service", "failure critical"),
        ("2026-12-01T10:31:00Z", "a.service", "ack"),
        ("2026-12-01T10:55:00Z", "a.service", "failure critical"),
        ("2026-12-01T11:00:00Z", "a.service", "success"),
        ("2026-12-01T11:01:00Z", "b.service", "success"),
        ("2026-12-01T11:01:00Z", "b.service", "silence"),
        ("2026-12-01T11:02:00Z", "b.service", "failure critical"),
        ("2026-12-01T11:30:00Z", "b.service", "failure warning"),
        ("2026-12-01T11:31:00Z", "b.service", "success"),
    ];
    let mut kinds_seen = std::collections::BTreeSet::new();
    for (at, service, what) in steps {
        let step = format!("{at} {service} {what}");
        if what == "ack" || what == "silence" {
            let out = if what == "ack" {
                ctl.run_at(at, &["ack", service])
            } else {
                let how = ["--for", "20m", "--comment", "test"];
                ctl.run_at(
                    at,
                    &[&["silence", "add", "--service", service][..], &how].concat(),
                )
            };
            assert_eq!(out.status.code(), Some(0), "{step}: {}", text(&out));
            continue;
        }
        let (event, severity) = match what.split_once(' ') {
            Some((_, severity)) => ("failure", severity),
            None => ("recovery", "critical"),
        };
        let test_args = ["test", service, "--event", event, "--severity", severity];
        let predicted = {
            let out = ctl.run_at(at, &[&test_args[..], &["--json"]].concat());
            assert_eq!(out.status.code(), Some(0), "{step}: {}", text(&out));
            let v: Value = serde_json::from_slice(&out.stdout).expect("json");
            let mut sends: Vec<(String, String)> = v["decisions"]
                .as_array()
                .expect("decisions")
                .iter()
                .filter(|d| d["action"]["action"] == "send")
                .map(|d| {
                    let notifier = d["notifier"].as_str().unwrap_or_default().to_owned();
                    (
                        notifier,
                        d["action"]["kind"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect();
            sends.sort();
            sends
        };
        let explained = {
            let out = ctl.run_at(at, &test_args);
            assert_eq!(out.status.code(), Some(0), "{step}: {}", text(&out));
            let printed = String::from_utf8_lossy(&out.stdout).into_owned();
            let body: Vec<&str> = printed.lines().skip(1).collect();
            assert_eq!(
                body.last(),
                Some(&"(nothing was sent or written)"),
                "{printed}"
            );
            body[..body.len() - 1].join("\n")
        };

        let before: Vec<usize> = NOTIFIERS.iter().map(|n| lines(n).len()).collect();
        let traced_before = trace_text().len();
        let real: Vec<&str> = match what.split_once(' ') {
            Some((_, severity)) => [
                &failure_args(service)[..],
                &["--severity", severity, "--trace"],
            ]
            .concat(),
            None => vec!["success", service, "--trace"],
        };
        let trace_arg = trace.display().to_string();
        let out = ctl.run_at(at, &[&real[..], &[trace_arg.as_str()]].concat());
        assert_eq!(out.status.code(), Some(0), "{step}: {}", text(&out));

        // what was written, by notifier and kind (the file line's word for the event)
        let mut sent: Vec<(String, String)> = Vec::new();
        for (n, before) in NOTIFIERS.iter().zip(before) {
            for line in &lines(n)[before..] {
                let kind = [
                    ("FAILED:", "failure"),
                    ("REMINDER:", "reminder"),
                    ("ESCALATED:", "escalation"),
                    ("RECOVERED:", "recovery"),
                ]
                .iter()
                .find(|(word, _)| line.contains(word))
                .map_or_else(|| panic!("{step}: no event word in {line}"), |(_, k)| *k);
                sent.push(((*n).to_owned(), kind.to_owned()));
            }
        }
        sent.sort();
        assert_eq!(predicted, sent, "{step}: predicted against written");
        kinds_seen.extend(sent.into_iter().map(|(_, kind)| kind));

        // the real run's trace: a header line, then the explanation `test` printed
        let traced = trace_text()[traced_before..].to_owned();
        let traced_body: Vec<&str> = traced.lines().skip(1).collect();
        assert_eq!(explained, traced_body.join("\n"), "{step}: explanations");
    }
    // the sequence did exercise every kind of alert
    assert_eq!(
        kinds_seen.into_iter().collect::<Vec<_>>(),
        ["escalation", "failure", "recovery", "reminder"]
    );
}
