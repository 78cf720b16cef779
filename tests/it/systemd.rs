//! End to end with a real systemd: the shipped handler units, unchanged and installed as
//! an administrator installs them (binary, config, SMTP password as a credential, flush
//! timer), wired into a failing unit, send one mail per failure streak (with the failed
//! run's journal lines) and a recovery threaded to it, run as many times as the version's
//! rules say in a restart loop, and never trigger handlers for themselves.
//!
//! It runs in the systemd sandbox ([`crate::sandbox`]): where that cannot run the test
//! says why and passes, except under CI (`CI` set, see `under_ci`), where that is a
//! failure. Unlike most other tests it waits in real time (polling with deadlines): the
//! clock it would have to pause is PID 1's.

// The handlers deliver by mail.
#![cfg(feature = "email")]

use std::path::Path;

use serde_json::Value;

use crate::peers::{SinkOptions, SmtpSink, header};
use crate::sandbox::{self, DEADLINE, Sandbox, read, write};

/// Failing runs of the restart loop (each one restarted by systemd), before the last.
const LOOP_RUNS: u32 = 5;

/// The SMTP password, given to the handlers as the credential `smtp-password`.
const PASSWORD: &str = "s3cret-credential";

#[test]
fn handlers_alert_once_per_streak_with_journal_excerpt_and_threaded_recovery() {
    if sandbox::skip_unless_available("the systemd end-to-end test") {
        return;
    }
    // Under /tmp, not the target dir: a checkout under /home would be hidden from the
    // handlers by ProtectHome=. The handlers see it through BindPaths= (PrivateTmp=).
    let work = tempfile::Builder::new()
        .prefix("alertcore-systemd-")
        .tempdir()
        .expect("temp dir");
    let w = work.path();
    // AUTH: the password reaches the handlers only as the credential of the drop-in
    let Some(sink) = SmtpSink::try_start(SinkOptions::plain().auth("alertcore", PASSWORD)) else {
        return;
    };
    // Distinct per run (the temp dir's random suffix), so it cannot come from elsewhere.
    let token = w
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let line = format!("demo <{token}>: cannot open /srv/demo/spool: Disk quota exceeded");
    setup_work_dir(w, sink.port(), &line);

    let sb = Sandbox::start_with_overlays(w.join("sandbox"), &["/etc", "/usr/local", "/var/lib"]);
    install_as_shipped(&sb, w);
    sb.systemctl(&["daemon-reload"]);
    // The recursion guard: the handlers get no handlers of their own, although the
    // top-level service.d/ drop-in gives one to every service.
    for unit in [
        "alertcore-failure@demo.service.service",
        "alertcore-success@demo.service.service",
    ] {
        assert_eq!(sb.prop(unit, "OnFailure"), "", "{unit}");
        assert_eq!(sb.prop(unit, "OnSuccess"), "", "{unit}");
    }

    // 1. One failed run: one mail, with the run's status and its output line.
    sb.systemctl(&["start", "demo.service"]);
    sb.settle("demo.service", "failed", || true);
    let mails = sink.wait_for(1, DEADLINE);
    assert_eq!(mails.len(), 1, "one failure, one mail: {mails:#?}");
    let failed = &mails[0];
    let subject = str_of(failed, "subject");
    assert!(
        subject.contains("FAILED: demo.service"),
        "subject: {subject}"
    );
    assert!(subject.contains("status=3"), "subject: {subject}");
    let body = str_of(failed, "body");
    assert!(
        body.contains(&line),
        "the body should quote the failed run's output line {line:?} from the journal;\n\
         body:\n{body}\njournal of demo.service:\n{}",
        sb.journal(&["-u", "demo.service", "-o", "verbose"])
    );
    let failure_id = header(failed, "Message-ID").expect("failure mail has a Message-ID");
    assert_eq!(
        failed["auth_user"], "alertcore",
        "logged in with the password of the credential"
    );

    // 2. A restart loop in the same streak: LOOP_RUNS failures that systemd restarts, then
    // one (status 4) it does not. Up to systemd 253, OnFailure= fires only at the end and
    // OnSuccess= fires on each auto-restart, carrying MONITOR_SERVICE_RESULT=exit-code;
    // from 254 OnFailure= fires on each. Either way: no second failure mail, no recovery.
    let runs = || -> u32 { read(&w.join("runs")).trim().parse().unwrap_or(0) };
    let last_run = runs() + LOOP_RUNS + 1;
    write(&w.join("last-run"), &last_run.to_string());
    let handler_runs = |kind: &str| {
        let unit = format!("alertcore-{kind}@demo.service.service");
        let log = sb.journal(&["-u", &unit, "-o", "cat"]);
        log.lines().filter(|l| l.starts_with("Starting ")).count()
    };
    let before = (handler_runs("failure"), handler_runs("success"));
    let dropin = sb.units().join("demo.service.d");
    std::fs::create_dir_all(&dropin).expect("mkdir");
    write(
        &dropin.join("20-restart.conf"),
        "[Service]\nRestart=on-failure\nRestartSec=100ms\nRestartPreventExitStatus=4\n",
    );
    sb.systemctl(&["daemon-reload"]);
    sb.systemctl(&["start", "demo.service"]);
    // From 254 the unit passes through "failed" on each restart: wait for the last run.
    sb.settle("demo.service", "failed", || runs() == last_run);
    assert_eq!(sb.prop("demo.service", "ExecMainStatus"), "4");
    assert_eq!(sb.prop("demo.service", "NRestarts"), LOOP_RUNS.to_string());
    // Which handler runs a restart loop starts depends on the version (docs/systemd.md);
    // a restart that comes while the previous handler job is still queued merges into it.
    let version = systemd_version(&sb);
    let failures = handler_runs("failure") - before.0;
    let successes = handler_runs("success") - before.1;
    let runs_seen = format!(
        "systemd {version}, a restart loop of {} failed runs: {failures} failure and \
         {successes} success handler runs",
        LOOP_RUNS + 1
    );
    eprintln!("{runs_seen}");
    let loop_runs = usize::try_from(LOOP_RUNS).expect("small");
    if version < 254 {
        // OnFailure= once, when the restarts stop; OnSuccess= on the restarts
        assert_eq!(failures, 1, "{runs_seen}");
        assert!((1..=loop_runs).contains(&successes), "{runs_seen}");
    } else {
        // OnFailure= on each restart and at the end; no OnSuccess=
        assert!((1..=loop_runs + 1).contains(&failures), "{runs_seen}");
        assert_eq!(successes, 0, "{runs_seen}");
    }
    // A handler run for a failed run that records it as a success ends the streak: a
    // recovery, then a second failure mail follow.
    let broken_streak = "on systemd < 254, OnSuccess= fires on each auto-restart with \
                         MONITOR_SERVICE_RESULT=exit-code: `alertctl success` must record \
                         such a run as a failure";
    let mails = sink.messages();
    assert_eq!(
        subjects(&mails),
        vec![subject.clone()],
        "a restart loop inside one failure streak sends no further mail ({broken_streak})"
    );
    let status = alertctl_status(&sb);
    let demo = status["services"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["service"] == "demo.service"))
        .unwrap_or_else(|| panic!("demo.service in `alertctl status`: {status:#}"));
    assert_eq!(demo["failing"], true, "still failing: {demo:#}");
    // Not exactly 2 + LOOP_RUNS: an event that arrives while the handler job for the
    // previous one is still queued merges into it.
    let streak = demo["consecutive_failures"].as_u64().unwrap_or(0);
    assert!(
        streak > 2,
        "the loop's failures belong to the first failure's streak ({broken_streak}): {demo:#}"
    );

    // 3. The same unit succeeds: a recovery, threaded to the failure mail.
    write(&w.join("succeed"), "");
    sb.systemctl(&["start", "demo.service"]);
    sb.settle("demo.service", "inactive", || true);
    let mails = sink.wait_for(2, DEADLINE);
    assert_eq!(mails.len(), 2, "one recovery mail: {:#?}", subjects(&mails));
    let recovered = &mails[1];
    let subject = str_of(recovered, "subject");
    assert!(
        subject.contains("RECOVERED: demo.service"),
        "subject: {subject}"
    );
    // the runs the success handler reported were restarts (not all of them: a handler
    // job still queued merges the next restart into it)
    assert!(
        subject.contains(" restart"),
        "the recovery says the restarts it took: {subject}"
    );
    assert_eq!(header(recovered, "In-Reply-To"), Some(failure_id.clone()));
    assert_eq!(header(recovered, "References"), Some(failure_id));

    // Every handler run succeeded (none was refused by a start limit, none failed to
    // deliver), nothing ran a handler for a handler, and nothing else alerted.
    let failed = sb.systemctl(&["list-units", "--failed", "--no-legend", "--plain"]);
    assert!(failed.trim().is_empty(), "failed units:\n{failed}");
    let handlers_of_handlers = sb.journal(&["-o", "cat", "-u", "alertcore-*@alertcore-*"]);
    assert!(
        handlers_of_handlers.trim().is_empty(),
        "a handler triggered a handler:\n{handlers_of_handlers}"
    );
    let status = alertctl_status(&sb);
    let services: Vec<&str> = status["services"]
        .as_array()
        .map(|s| s.iter().filter_map(|s| s["service"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        services.iter().all(|s| !s.starts_with("alertcore-")),
        "alertcore recorded events of its own handlers: {services:?}"
    );
    // The flush timer and service as shipped: the timer runs, set to trigger the service
    // (a minute after the manager started: in a container OnBootSec= counts from there),
    // and the service, started now, runs `alertctl flush` with the credential and finds
    // nothing due.
    let (flush, timer) = ("alertcore-flush.service", "alertcore-flush.timer");
    sb.systemctl(&["start", timer]);
    assert_eq!(
        sb.prop(timer, "ActiveState"),
        "active",
        "{}",
        sb.status(timer)
    );
    assert_eq!(sb.prop(timer, "Triggers"), flush);
    assert_ne!(
        sb.prop(timer, "NextElapseUSecMonotonic"),
        "0",
        "{}",
        sb.status(timer)
    );
    sb.systemctl(&["start", flush]);
    sb.settle(flush, "inactive", || true);
    assert_eq!(sb.prop(flush, "Result"), "success", "{}", sb.status(flush));
    assert_eq!(
        sb.prop(flush, "ExecMainStatus"),
        "0",
        "{}",
        sb.status(flush)
    );

    // No job is queued: the handlers are oneshot services, whose start job ends when
    // alertctl exits, and the sink records a mail before it answers 250. So every mail a
    // handler sent is in the sink now.
    sb.settle("demo.service", "inactive", || true);
    assert_eq!(
        sink.messages().len(),
        2,
        "{:#?}",
        subjects(&sink.messages())
    );
}

/// The config, the SMTP password and the demo unit's script in the work dir.
fn setup_work_dir(w: &Path, smtp_port: u16, line: &str) {
    write(
        &w.join("alertcore.toml"),
        &format!(
            "host = \"e2e\"\n\
             [notifiers.ops]\n\
             type = \"email\"\n\
             url = \"smtp://alertcore@127.0.0.1:{smtp_port}\"\n\
             password_credential = \"smtp-password\"\n\
             from = \"alertcore@example.org\"\n\
             to = [\"ops@example.org\"]\n"
        ),
    );
    write(&w.join("smtp-password"), &format!("{PASSWORD}\n"));
    // Each run prints the line and counts itself; it fails with status 3 until the
    // `succeed` file exists, or with status 4 on run number `last-run`.
    let script = w.join("demo.sh");
    let w = w.display();
    write(
        &script,
        &format!(
            "#!/bin/sh\n\
             n=$(( $(cat {w}/runs 2>/dev/null || echo 0) + 1 ))\n\
             echo $n > {w}/runs\n\
             echo '{line}'\n\
             [ -e {w}/succeed ] && exit 0\n\
             [ \"$n\" = \"$(cat {w}/last-run 2>/dev/null)\" ] && exit 4\n\
             exit 3\n"
        ),
    );
}

/// As an administrator installs alertcore, inside the sandbox's overlays (the host is
/// untouched): the shipped units and drop-ins unchanged, the binary where their
/// `ExecStart=` points (`/usr/local/bin/alertctl`), the config at its default path, the
/// state in their `StateDirectory=`, the SMTP password as the credential the units'
/// comments describe (a drop-in for both handlers and the flush service), and the flush
/// timer. Then the demo unit, wired to the handlers.
fn install_as_shipped(sb: &Sandbox, w: &Path) {
    for f in [
        "alertcore-failure@.service",
        "alertcore-success@.service",
        "alertcore-.service.d/10-alertcore.conf",
        "alertcore-flush.service",
        "alertcore-flush.timer",
    ] {
        sb.install_shipped(f, f);
    }
    sb.install_shipped(
        "service.d/10-alertcore.conf.example",
        "service.d/10-alertcore.conf",
    );
    for unit in [
        "alertcore-failure@.service",
        "alertcore-success@.service",
        "alertcore-flush.service",
    ] {
        sb.drop_in(
            unit,
            "credentials.conf",
            "[Service]\nLoadCredential=smtp-password:/etc/alertcore/smtp-password\n",
        );
    }
    // what the host may have there is hidden (removed in the overlay only)
    sb.run(&["rm", "-rf", "/etc/alertcore", "/var/lib/alertcore"]);
    let from = |f: &str| w.join(f).display().to_string();
    for (mode, src, dst) in [
        (
            "0755",
            env!("CARGO_BIN_EXE_alertctl").to_owned(),
            "/usr/local/bin/alertctl",
        ),
        (
            "0600",
            from("alertcore.toml"),
            "/etc/alertcore/alertcore.toml",
        ),
        (
            "0600",
            from("smtp-password"),
            "/etc/alertcore/smtp-password",
        ),
    ] {
        sb.run(&["install", "-D", "-m", mode, &src, dst]);
    }
    let wd = w.display();
    // Wired explicitly, as docs/systemd.md shows; the service.d/ drop-in adds the same.
    write(
        &sb.units().join("demo.service"),
        &format!(
            "[Unit]\n\
             Description=alertcore end-to-end demo\n\
             OnFailure=alertcore-failure@%n.service\n\
             OnSuccess=alertcore-success@%n.service\n\
             StartLimitIntervalSec=0\n\
             [Service]\n\
             ExecStart=/bin/sh {wd}/demo.sh\n"
        ),
    );
}

/// The major version of the sandbox's systemd (`systemctl --version`: "systemd 252 ...").
fn systemd_version(sb: &Sandbox) -> u32 {
    let v = sb.systemctl(&["--version"]);
    v.split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("systemctl --version: {v}"))
}

/// `alertctl status --json` as root inside the sandbox: the state the handlers keep in
/// `/var/lib/alertcore` (`$STATE_DIRECTORY`), with the installed config.
fn alertctl_status(sb: &Sandbox) -> Value {
    let out = sb.run(&["/usr/local/bin/alertctl", "status", "--json"]);
    serde_json::from_str(&out).expect("status JSON")
}

fn str_of(mail: &Value, key: &str) -> String {
    mail[key].as_str().unwrap_or_default().to_owned()
}

fn subjects(mails: &[Value]) -> Vec<String> {
    mails.iter().map(|m| str_of(m, "subject")).collect()
}
