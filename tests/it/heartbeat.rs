//! Heartbeats end to end: `alertctl ping` and `alertctl flush` on a manual clock
//! (`--now`), and the daemon judging deadlines and other processes' signals in real
//! time.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cli::{Ctl, text, wait_until};
use crate::daemon::{Daemon, lines, wait_lines};

/// A config with a `file` notifier (JSON lines in `alerts.jsonl`) and `heartbeats`.
fn ctl_with(heartbeats: &str) -> (Ctl, std::path::PathBuf) {
    let mut ctl = Ctl::new();
    let file = ctl.dir.path().join("alerts.jsonl");
    ctl.set_config(&format!(
        "[daemon]\nflush_every = \"1s\"\n\n\
         [notifiers.log]\ntype = \"file\"\nformat = \"json\"\npath = \"{}\"\n\n{heartbeats}",
        file.display()
    ));
    (ctl, file)
}

fn ok(out: &std::process::Output) -> String {
    assert!(out.status.success(), "{}", text(out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The (event, result, message) of each alert the file notifier wrote.
pub(crate) fn events(alerts: &[Value]) -> Vec<(String, String, String)> {
    alerts
        .iter()
        .map(|a| {
            let last = a["failures"]
                .as_array()
                .and_then(|f| f.last())
                .cloned()
                .unwrap_or_default();
            (
                a["event"].as_str().unwrap_or("").to_owned(),
                last["result"].as_str().unwrap_or("").to_owned(),
                last["message"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

#[test]
fn ping_records_signals_and_flush_judges_the_deadline_on_a_manual_clock() {
    let (ctl, file) = ctl_with(
        "[[heartbeats]]\nname = \"backup\"\nperiod = \"1h\"\ngrace = \"10m\"\nmin_runtime = \"1m\"\n",
    );
    let at = |hm: &str| format!("2026-12-07T{hm}:00Z");
    let stdout = ok(&ctl.run_at(&at("00:00"), &["ping", "backup"]));
    assert!(
        stdout.starts_with(
            "backup: success recorded (signal 1); up, next expected by 2026-12-07 01:10 UTC"
        ),
        "{stdout}"
    );
    // not late yet; then late once, however often the flush timer looks
    ok(&ctl.run_at(&at("01:09"), &["flush"]));
    assert!(lines(&file).is_empty());
    for t in ["01:10", "01:11", "01:30"] {
        ok(&ctl.run_at(&at(t), &["flush"]));
    }
    let alerts = lines(&file);
    assert_eq!(
        events(&alerts),
        [(
            "failure".to_owned(),
            "late".to_owned(),
            "expected by 2026-12-07 01:10 UTC, last success 2026-12-07 00:00 UTC".to_owned()
        )],
        "{alerts:#?}"
    );
    assert_eq!(alerts[0]["service"], "backup");
    // a run that starts late is no recovery; one that finishes in 30 s is too short
    ok(&ctl.run_at(&at("01:40"), &["ping", "backup", "--start", "--rid", "r1"]));
    let stdout = ok(&ctl.run_at("2026-12-07T01:40:30Z", &["ping", "backup", "--rid", "r1"]));
    assert!(
        stdout.contains("DOWN (too-short): finished in 30s, sooner than min_runtime 1m"),
        "{stdout}"
    );
    // a proper run recovers
    ok(&ctl.run_at(&at("01:50"), &["ping", "backup", "--start"]));
    ok(&ctl.run_at(&at("01:55"), &["ping", "backup", "--exit", "0"]));
    // a failure with its output, from stdin
    let mut cmd = ctl.command_at(
        &at("02:10"),
        &["ping", "backup", "--exit", "12", "--body", "-"],
    );
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(b"rsync error: some files vanished\nmore\n")
            .expect("write");
    }
    let out = child.wait_with_output().expect("wait");
    ok(&out);
    let alerts = lines(&file);
    let got = events(&alerts);
    assert_eq!(got.len(), 3, "{alerts:#?}");
    assert_eq!(got[1].0, "recovery");
    assert_eq!(
        got[2],
        (
            "failure".to_owned(),
            "failed".to_owned(),
            "exit status 12: rsync error: some files vanished".to_owned()
        )
    );
    // a log line changes nothing; an unknown name is a usage error
    ok(&ctl.run_at(&at("02:11"), &["ping", "backup", "--log", "still here"]));
    let out = ctl.run_at(&at("02:12"), &["ping", "nope"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("no heartbeat named \"nope\" (configured: backup)"),
        "{}",
        text(&out)
    );
    // status shows it down with the failed run's message
    let out = ctl.run_at(&at("02:13"), &["status", "--json"]);
    let status: Value = serde_json::from_slice(&out.stdout).expect("json");
    let hb = &status["heartbeats"][0];
    assert_eq!(hb["name"], "backup");
    assert_eq!(hb["state"], "down");
    assert_eq!(hb["result"], "failed");
    assert_eq!(hb["last_success"], 1_796_608_500_000_i64, "01:55: {hb:#}");
    assert_eq!(lines(&file).len(), 3);
}

#[test]
fn failures_in_a_window_alert_where_in_a_row_would_not() {
    let (ctl, file) =
        ctl_with("[[heartbeats]]\nname = \"sync\"\nperiod = \"10m\"\nfailures = \"3 in 1h\"\n");
    let at = |hm: &str| format!("2026-12-07T{hm}:00Z");
    for (t, args) in [
        ("00:00", &["ping", "sync", "--fail"][..]),
        ("00:10", &["ping", "sync"][..]),
        ("00:20", &["ping", "sync", "--fail"][..]),
        ("00:30", &["ping", "sync"][..]),
    ] {
        ok(&ctl.run_at(&at(t), args));
    }
    assert!(lines(&file).is_empty(), "two failures in the hour");
    ok(&ctl.run_at(&at("00:40"), &["ping", "sync", "--fail"]));
    let alerts = lines(&file);
    assert_eq!(
        events(&alerts),
        [(
            "failure".to_owned(),
            "failed".to_owned(),
            "3 failed runs in 1h; the last: failed".to_owned()
        )]
    );
}

/// Waits until `status --json` says heartbeat `name` is in `state`.
fn wait_state(ctl: &Ctl, name: &str, state: &str, daemon: &Daemon) -> Value {
    let start = Instant::now();
    loop {
        let status = ctl.json(&["status", "--json", name]);
        if status["heartbeats"][0]["state"] == state {
            return status["heartbeats"][0].clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{name} never {state}: {status:#}\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_daemon_alerts_a_missing_heartbeat_and_an_overrun_started_by_another_process() {
    let (ctl, file) = ctl_with(
        "[[heartbeats]]\nname = \"quiet\"\nperiod = \"2s\"\ngrace = \"1s\"\n\n\
         [[heartbeats]]\nname = \"long\"\nperiod = \"1h\"\nmax_runtime = \"2s\"\n",
    );
    let mut daemon = Daemon::start(&ctl);
    // nothing ever called in: late 3 s after the daemon first saw it
    let alerts = wait_lines(&file, 1, &daemon);
    assert_eq!(alerts[0]["service"], "quiet");
    let (event, result, message) = events(&alerts).remove(0);
    assert_eq!((event.as_str(), result.as_str()), ("failure", "late"));
    assert!(message.ends_with("last success never"), "{message}");
    // a start recorded by another process is seen by the daemon, and overruns
    ok(&ctl.run(&["ping", "long", "--start"]));
    let alerts = wait_lines(&file, 2, &daemon);
    assert_eq!(alerts[1]["service"], "long", "{alerts:#?}");
    let (_, result, message) = events(&alerts).remove(1);
    assert_eq!(result, "overrun");
    assert!(message.contains("still running after 2s"), "{message}");
    // the finish, from another process, is the recovery
    ok(&ctl.run(&["ping", "long"]));
    wait_state(&ctl, "long", "up", &daemon);
    let alerts = wait_lines(&file, 3, &daemon);
    assert_eq!(
        (alerts[2]["service"].as_str(), alerts[2]["event"].as_str()),
        (Some("long"), Some("recovery"))
    );
    // SIGUSR1 lists the heartbeats, down first
    let before = daemon.log().len();
    daemon.signal("-USR1");
    daemon.wait_log(before, "heartbeat quiet: DOWN      (late)");
    daemon.signal("-TERM");
    let status = wait_until(
        &mut daemon.child,
        Instant::now() + Duration::from_secs(20),
        "the daemon after SIGTERM",
    );
    assert!(status.success(), "{status:?}\n{}", daemon.log());
    // each problem alerted once
    let got = events(&lines(&file));
    assert_eq!(got.len(), 3, "{got:#?}");
}

/// A ping while the config is broken is recorded anyway (exit 2), and judged once the
/// config is mended.
#[test]
fn a_ping_with_a_broken_config_is_kept_and_judged_later() {
    let (mut ctl, file) = ctl_with("[[heartbeats]]\nname = \"backup\"\nperiod = \"1h\"\n");
    let good = std::fs::read_to_string(ctl.dir.path().join("alertcore.toml")).expect("config");
    ctl.set_config(&format!("{good}colour = \"red\"\n"));
    let out = ctl.run_at(
        "2026-12-07T00:00:00Z",
        &["ping", "backup", "--fail", "--body", "disk full"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = text(&out);
    assert!(err.contains("unknown field `colour`"), "{err}");
    assert!(
        err.contains("signal 1 was recorded without judging it"),
        "{err}"
    );
    assert!(lines(&file).is_empty());
    ctl.set_config(&good);
    ok(&ctl.run_at("2026-12-07T00:01:00Z", &["flush"]));
    assert_eq!(
        events(&lines(&file)),
        [(
            "failure".to_owned(),
            "failed".to_owned(),
            "failed: disk full".to_owned()
        )]
    );
}
