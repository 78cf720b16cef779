//! `alertctl report` and the daemon's `[report]`, delivering to the real SMTP sink: a
//! digest of everything failing (alerted or below its threshold), sent only when
//! something is failing; one mail where the notifier can group.

use std::time::Duration;

use serde_json::Value;

use crate::cli::{Ctl, failure_args, text};
use crate::hold::{at, ok, refused};
use crate::peers::{SinkOptions, SmtpSink};

fn config(sink: &SmtpSink, extra: &str) -> String {
    format!(
        "{extra}\n[policy]\nthreshold = 2\n\n\
         [notifiers.mail]\ntype = \"email\"\nurl = \"smtp://127.0.0.1:{}\"\n\
         from = \"alertcore <alertcore@example.org>\"\nto = [\"ops@example.org\"]\ntimeout = \"5s\"\n",
        sink.port()
    )
}

#[test]
fn the_report_lists_what_is_failing_and_sends_one_mail() {
    let Some(sink) = SmtpSink::try_start(SinkOptions::plain()) else {
        return;
    };
    let ctl = Ctl::with_config(&config(&sink, ""));
    // an unknown notifier is a usage error, before anything is read
    let out = ctl.run_at(&at("00:00"), &["report", "--send", "pager"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("--send pager: no notifier named \"pager\" (configured: mail)"),
        "{}",
        text(&out)
    );
    // nothing failing: said, and nothing sent
    let out = ctl.run_at(&at("00:00"), &["report", "--send", "mail"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("nothing is failing at 2026-12-07T00:00:00Z"));
    assert!(
        text(&out).contains("no report sent to mail"),
        "{}",
        text(&out)
    );
    // backup fails twice (alerted at threshold 2), web once (below it)
    ok(&ctl.run_at(&at("00:01"), &failure_args("backup.service")));
    ok(&ctl.run_at(&at("00:02"), &failure_args("backup.service")));
    ok(&ctl.run_at(&at("00:03"), &failure_args("web.service")));
    assert_eq!(sink.wait_for(1, Duration::from_secs(10)).len(), 1);
    let out = ok(&ctl.run_at(&at("01:01"), &["report"]));
    assert!(
        out.starts_with("2 services failing at 2026-12-07T01:01:00Z:\n"),
        "{out}"
    );
    assert!(
        out.contains(
            "  backup.service on vm: critical since 2026-12-07T00:01:00Z (1h), 2 failures: \
             exit-code, status=1\n    alerted: mail\n"
        ),
        "{out}"
    );
    assert!(
        out.contains("    not alerted (below its threshold or min_duration)"),
        "{out}"
    );
    let json: Value =
        serde_json::from_str(&ok(&ctl.run_at(&at("01:01"), &["report", "--json"]))).expect("JSON");
    let failing = json["failing"].as_array().expect("list");
    assert_eq!(failing.len(), 2, "{json:#}");
    assert_eq!(
        failing[0]["service"], "backup.service",
        "the longest failing first"
    );
    assert_eq!(failing[0]["failures"], 2);
    assert_eq!(failing[0]["alerted"][0], "mail");
    assert_eq!(failing[1]["service"], "web.service");
    assert_eq!(failing[1]["alerted"].as_array().map(Vec::len), Some(0));
    // sent: one mail for both (email groups)
    let out = ctl.run_at(&at("01:02"), &["report", "--send", "mail"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("report to mail: delivered"),
        "{}",
        text(&out)
    );
    let mails = sink.wait_for(2, Duration::from_secs(10));
    assert_eq!(mails.len(), 2);
    assert_eq!(mails[1]["subject"], "[vm] 2 notifications: 2 STILL FAILING");
    let body = mails[1]["body"].as_str().unwrap_or("");
    assert!(
        body.contains("[vm] STILL FAILING: backup.service (exit-code, status=1)")
            && body.contains("[vm] STILL FAILING: web.service (exit-code, status=1)"),
        "{body}"
    );
    // an unknown notifier in [report] is a located config error
    refused(
        &config(&sink, "[report]\nevery = \"1d\"\nnotifiers = [\"pager\"]\n"),
        ":1:1: [report]: no notifier named \"pager\" (configured: mail)",
    );
}

/// The daemon's `[report]`: the first round after its first start only records the time;
/// `every` later, a failing service is reported by mail.
#[test]
fn the_daemon_sends_the_periodic_report_while_something_fails() {
    let Some(sink) = SmtpSink::try_start(SinkOptions::plain()) else {
        return;
    };
    let ctl = Ctl::with_config(&config(&sink, "[report]\nevery = \"2s\"\n"));
    ok(&ctl.run(&failure_args("nightly.service")));
    let daemon = crate::daemon::Daemon::start(&ctl);
    daemon.wait_log(0, "started");
    let mails = sink.wait_for(1, Duration::from_secs(20));
    assert_eq!(mails.len(), 1, "{}", daemon.log());
    assert_eq!(
        mails[0]["subject"],
        "[vm] STILL FAILING: nightly.service (exit-code, status=1)"
    );
    daemon.wait_log(0, "report of 1 failing service sent to mail");
}
