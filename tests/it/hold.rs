//! Silences, acknowledgements and maintenance windows through `alertctl` on a manual
//! clock (`--now`), delivering to the real SMTP sink: what is held is recorded and not
//! sent; what is still failing when the hold ends is sent once; a recovery during the
//! hold sends nothing; an acknowledged streak gets no reminders but its escalation.

use std::time::Duration;

use serde_json::Value;

use crate::cli::{Ctl, failure_args, text};
use crate::peers::{SinkOptions, SmtpSink};

/// `extra` (top-level keys first, then tables), `repeat = "1h"` and a mail notifier.
fn config(sink: &SmtpSink, extra: &str) -> String {
    format!(
        "{extra}\n[policy]\nrepeat = \"1h\"\n\n\
         [notifiers.mail]\ntype = \"email\"\nurl = \"smtp://127.0.0.1:{}\"\n\
         from = \"alertcore <alertcore@example.org>\"\nto = [\"ops@example.org\"]\ntimeout = \"5s\"\n",
        sink.port()
    )
}

pub(crate) fn at(hm: &str) -> String {
    format!("2026-12-07T{hm}:00Z")
}

pub(crate) fn ok(out: &std::process::Output) -> String {
    assert!(out.status.success(), "{}", text(out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn subjects(sink: &SmtpSink) -> Vec<String> {
    sink.messages()
        .iter()
        .map(|m| m["subject"].as_str().unwrap_or("").to_owned())
        .collect()
}

/// `config check` of `toml` fails (exit 2) and its message contains `want`.
pub(crate) fn refused(toml: &str, want: &str) {
    let out = Ctl::with_config(toml).run(&["config", "check"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains(want), "{}", text(&out));
}

fn status(ctl: &Ctl, now: &str) -> Value {
    let out = ctl.run_at(now, &["status", "--json"]);
    serde_json::from_slice(&ok(&out).into_bytes()).expect("JSON")
}

fn service<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["services"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["service"] == name))
        .unwrap_or_else(|| panic!("no {name} in {status:#}"))
}

#[test]
fn a_silence_holds_alerts_and_releases_the_ones_still_failing_once() {
    let Some(sink) = SmtpSink::try_start(SinkOptions::plain()) else {
        return;
    };
    let ctl = Ctl::with_config(&config(&sink, ""));
    let out = ok(&ctl.run_at(
        &at("00:00"),
        &[
            "silence",
            "add",
            "--service",
            "web-*",
            "--for",
            "2h",
            "--comment",
            "rebooting the web tier",
        ],
    ));
    assert!(out.starts_with("silence 1: service web-* from "), "{out}");
    // held: recorded, nothing sent, the silence named as the reason
    let out = ok(&ctl.run_at(&at("00:10"), &failure_args("web-1.service")));
    assert!(
        out.contains("mail: suppressed: held by silence 1 until 2026-12-07T02:00:00Z"),
        "{out}"
    );
    ok(&ctl.run_at(&at("00:11"), &failure_args("web-2.service")));
    // not covered: alerts at once
    ok(&ctl.run_at(&at("00:12"), &failure_args("db.service")));
    assert_eq!(sink.wait_for(1, Duration::from_secs(10)).len(), 1);
    let s = status(&ctl, &at("00:20"));
    let web1 = service(&s, "web-1.service");
    assert_eq!(web1["held_by"]["by"], "silence 1", "{s:#}");
    assert_eq!(web1["consecutive_failures"], 1);
    assert_eq!(s["silences"][0]["comment"], "rebooting the web tier");
    let out = ok(&ctl.run_at(&at("00:21"), &["history", "web-1.service"]));
    assert!(
        out.contains("its latest alert was held by silence 1 until"),
        "{out}"
    );
    // `test` explains the hold too
    let out = ok(&ctl.run_at(&at("00:30"), &["test", "web-1.service"]));
    assert!(out.contains("mail: suppressed: held by silence 1"), "{out}");
    // web-2 recovers during the silence: nothing is ever sent about it
    ok(&ctl.run_at(&at("00:40"), &["success", "web-2.service"]));
    // a flush while the silence runs sends nothing about them
    ok(&ctl.run_at(&at("01:00"), &["flush"]));
    let web = |sink: &SmtpSink| -> Vec<String> {
        subjects(sink)
            .into_iter()
            .filter(|s| s.contains("web-"))
            .collect()
    };
    assert!(web(&sink).is_empty(), "{:?}", subjects(&sink));
    // expired while web-1 still fails: its alert goes out at the next flush, once
    ok(&ctl.run_at(&at("01:05"), &["silence", "expire", "1"]));
    ok(&ctl.run_at(&at("01:06"), &["flush"]));
    ok(&ctl.run_at(&at("01:07"), &["flush"]));
    sink.wait_for(2, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        web(&sink),
        ["[vm] FAILED: web-1.service (exit-code, status=1)"]
    );
    // the silence is listed as ended
    let list = ok(&ctl.run_at(&at("01:08"), &["silence", "list", "--all"]));
    assert!(list.starts_with("1 ended: service web-*"), "{list}");
    assert_eq!(
        ok(&ctl.run_at(&at("01:08"), &["silence", "list"])).trim(),
        "no silences"
    );
}

/// With `held_recovery = true`, a service that recovers while its alert is held tells
/// the notifier it was kept from: one "FAILED AND RECOVERED" mail, at the recovery.
#[test]
fn held_recovery_tells_of_a_failure_that_ended_during_the_silence() {
    let Some(sink) = SmtpSink::try_start(SinkOptions::plain()) else {
        return;
    };
    let cfg = config(&sink, "").replace("[policy]\n", "[policy]\nheld_recovery = true\n");
    let ctl = Ctl::with_config(&cfg);
    ok(&ctl.run_at(
        &at("00:00"),
        &[
            "silence",
            "add",
            "--service",
            "web-*",
            "--for",
            "2h",
            "--comment",
            "reboot",
        ],
    ));
    let out = ok(&ctl.run_at(&at("00:10"), &failure_args("web-2.service")));
    assert!(out.contains("mail: suppressed: held by silence 1"), "{out}");
    let out = ok(&ctl.run_at(&at("00:40"), &["success", "web-2.service"]));
    assert!(out.contains("mail: send recovery"), "{out}");
    let mails = sink.wait_for(1, Duration::from_secs(10));
    assert_eq!(
        subjects(&sink),
        ["[vm] FAILED AND RECOVERED: web-2.service (after 1 failure)"],
        "{mails:#?}"
    );
}

#[test]
fn an_ack_stops_reminders_but_not_the_escalation() {
    let Some(sink) = SmtpSink::try_start(SinkOptions::plain()) else {
        return;
    };
    let ctl = Ctl::with_config(&config(&sink, ""));
    let mut warning = failure_args("backup.service");
    warning.extend(["--severity", "warning"]);
    ok(&ctl.run_at(&at("00:00"), &warning));
    assert_eq!(sink.wait_for(1, Duration::from_secs(10)).len(), 1);
    // not failing: nothing to acknowledge
    let out = ctl.run_at(&at("00:05"), &["ack", "other.service"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let s = status(&ctl, &at("00:05"));
    assert!(
        s["services"]
            .as_array()
            .is_some_and(|l| l.iter().all(|x| x["service"] != "other.service")),
        "an ack of an unknown service leaves no state: {s:#}"
    );
    let out = ok(&ctl.run_at(
        &at("00:05"),
        &["ack", "backup.service", "--comment", "disk ordered"],
    ));
    assert!(out.contains("acknowledged by "), "{out}");
    let s = status(&ctl, &at("00:06"));
    assert_eq!(
        service(&s, "backup.service")["acknowledged"]["comment"],
        "disk ordered"
    );
    // reminders would be due every hour: none come
    for t in ["01:10", "02:10", "03:10"] {
        ok(&ctl.run_at(&at(t), &["flush"]));
    }
    let out = ok(&ctl.run_at(&at("03:20"), &warning));
    assert!(out.contains("mail: suppressed: acknowledged by "), "{out}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(subjects(&sink).len(), 1, "{:?}", subjects(&sink));
    // warning → critical still escalates
    ok(&ctl.run_at(&at("03:30"), &failure_args("backup.service")));
    let mails = sink.wait_for(2, Duration::from_secs(10));
    assert!(
        mails[1]["subject"]
            .as_str()
            .unwrap_or("")
            .contains("backup.service"),
        "{mails:#?}"
    );
    assert!(
        mails[1]["body"].as_str().unwrap_or("").contains("critical"),
        "{mails:#?}"
    );
    // a new streak is not acknowledged
    ok(&ctl.run_at(&at("04:00"), &["success", "backup.service"]));
    ok(&ctl.run_at(&at("04:10"), &warning));
    let s = status(&ctl, &at("04:11"));
    assert!(
        service(&s, "backup.service")["acknowledged"].is_null(),
        "{s:#}"
    );
    // `--notify` tells those alerted of this streak who acknowledged it, and why
    sink.wait_for(4, Duration::from_secs(10));
    let out = ok(&ctl.run_at(
        &at("04:20"),
        &["ack", "backup.service", "--notify", "--comment", "on it"],
    ));
    assert!(
        out.contains("mail acknowledged of backup.service") && out.contains(": delivered"),
        "{out}"
    );
    let mails = sink.wait_for(5, Duration::from_secs(10));
    let notice = &mails[4];
    assert!(
        notice["subject"]
            .as_str()
            .unwrap_or("")
            .starts_with("[vm] ACKNOWLEDGED: backup.service"),
        "{notice:#}"
    );
    let body = notice["body"].as_str().unwrap_or("");
    assert!(
        body.contains("Acknowledged by ") && body.contains(": on it"),
        "{body}"
    );
    // and a reminder is still not sent for it
    let out = ok(&ctl.run_at(&at("06:00"), &["flush"]));
    assert!(!out.contains("reminder"), "{out}");
}

/// A unit alternating failure and success 20 times, then succeeding 15 times, with
/// `[flapping]` at Icinga's defaults (high 30 %, low 25 %): the weighted percentage
/// passes 30 % at the 6th change, so the 7th event (a failure) sends the one flapping
/// notice; after the 20th event 19 changes are in the window, and 15 quiet events later
/// 5 are left (21 % ≤ 25 %): one "stopped flapping" recovery, nothing in between.
#[test]
fn a_flapping_unit_sends_one_notice_when_it_starts_and_one_when_it_settles() {
    let Some(sink) = SmtpSink::try_start(SinkOptions::plain()) else {
        return;
    };
    let ctl = Ctl::with_config(&config(&sink, "[flapping]\nhigh = 30\nlow = 25\n"));
    let minute = |i: usize| at(&format!("{:02}:{:02}", i / 60, i % 60));
    for i in 0..35 {
        let out = if i < 20 && i % 2 == 0 {
            ctl.run_at(&minute(i), &failure_args("bouncy.service"))
        } else {
            ctl.run_at(&minute(i), &["success", "bouncy.service"])
        };
        let out = ok(&out);
        if i == 10 {
            assert!(out.contains("mail: suppressed: flapping since "), "{out}");
            let s = status(&ctl, &minute(i));
            let f = &service(&s, "bouncy.service")["flapping"];
            // 2026-12-07T00:06:00Z, the 7th event
            assert_eq!(f["since"], 1_796_601_960_000_i64, "{s:#}");
            assert_eq!(f["notified"][0], "mail", "{s:#}");
            // `test` explains it the same way
            let out = ok(&ctl.run_at(&minute(i), &["test", "bouncy.service"]));
            assert!(out.contains("mail: suppressed: flapping since "), "{out}");
        }
    }
    let mails = sink.wait_for(8, Duration::from_secs(10));
    let words: Vec<String> = mails
        .iter()
        .map(|m| {
            let s = m["subject"].as_str().unwrap_or("");
            s.trim_start_matches("[vm] ")
                .split(": bouncy")
                .next()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    assert_eq!(
        words,
        [
            "FAILED",
            "RECOVERED",
            "FAILED",
            "RECOVERED",
            "FAILED",
            "RECOVERED",
            "FLAPPING",
            "STOPPED FLAPPING, RECOVERED"
        ]
    );
    let s = status(&ctl, &minute(40));
    assert!(
        service(&s, "bouncy.service")["flapping"]["since"].is_null(),
        "{s:#}"
    );
}

#[test]
fn a_maintenance_window_in_the_config_holds_like_a_silence() {
    let Some(sink) = SmtpSink::try_start(SinkOptions::plain()) else {
        return;
    };
    let ctl = Ctl::with_config(&config(
        &sink,
        "timezone = \"UTC\"\n\n\
         [[maintenance]]\nname = \"patch night\"\nservices = [\"db*\"]\ntime = \"Mon 00:00-02:00\"\n\n\
         [[maintenance]]\nhosts = [\"vm\"]\nseverity = \"warning\"\nstart = \"2026-12-07 05:00\"\nend = \"2026-12-07 06:00\"\n",
    ));
    // 2026-12-07 is a Monday
    let out = ok(&ctl.run_at(&at("01:00"), &failure_args("db.service")));
    assert!(out.contains("held by maintenance \"patch night\""), "{out}");
    // after the window, the flush sends it
    ok(&ctl.run_at(&at("02:01"), &["flush"]));
    let mails = sink.wait_for(1, Duration::from_secs(10));
    assert!(
        mails[0]["subject"]
            .as_str()
            .unwrap_or("")
            .contains("db.service")
    );
    // the one-off window holds warnings only
    let mut warning = failure_args("web.service");
    warning.extend(["--severity", "warning"]);
    let out = ok(&ctl.run_at(&at("05:30"), &warning));
    assert!(
        out.contains("held by maintenance \"2\" until 2026-12-07T06:00:00Z"),
        "{out}"
    );
    let out = ok(&ctl.run_at(&at("05:31"), &failure_args("api.service")));
    assert!(out.contains("mail: send failure alert"), "{out}");
    // a bad window is a config error at its key
    refused(
        "[[maintenance]]\nservices = [\"x\"]\nstart = \"2026-12-07 05:00\"\n",
        ":3:1: maintenance 1: `start` needs an `end`",
    );
}

/// `[[inhibit]]`: while `switch.service` is failing, the alerts of the services on its
/// host are held; one that recovers meanwhile is never sent, the others are sent once
/// when the switch recovers. A rule without a source is a located config error.
#[test]
fn an_inhibit_rule_holds_alerts_while_its_source_fails() {
    let Some(sink) = SmtpSink::try_start(SinkOptions::plain()) else {
        return;
    };
    let inhibit = "[[inhibit]]\nsource = { services = [\"switch.service\"] }\n\
                   target = { services = [\"web-*\"] }\nequal = [\"host\"]\n";
    let ctl = Ctl::with_config(&config(&sink, inhibit));
    ok(&ctl.run_at(&at("00:00"), &failure_args("switch.service")));
    for i in 1..=5 {
        let out = ok(&ctl.run_at(&at("00:01"), &failure_args(&format!("web-{i}.service"))));
        assert!(
            out.contains(
                "mail: suppressed: inhibited by switch.service, which is failing (inhibit 1)"
            ),
            "{out}"
        );
    }
    // not a target: alerts at once
    ok(&ctl.run_at(&at("00:02"), &failure_args("db.service")));
    ok(&ctl.run_at(&at("00:03"), &["success", "web-5.service"]));
    ok(&ctl.run_at(&at("00:04"), &["flush"]));
    assert_eq!(sink.wait_for(2, Duration::from_secs(10)).len(), 2);
    ok(&ctl.run_at(&at("00:10"), &["success", "switch.service"]));
    ok(&ctl.run_at(&at("00:11"), &["flush"]));
    sink.wait_for(7, Duration::from_secs(10));
    let mut got = subjects(&sink);
    got.sort();
    assert_eq!(
        got,
        [
            "[vm] FAILED: db.service (exit-code, status=1)",
            "[vm] FAILED: switch.service (exit-code, status=1)",
            "[vm] FAILED: web-1.service (exit-code, status=1)",
            "[vm] FAILED: web-2.service (exit-code, status=1)",
            "[vm] FAILED: web-3.service (exit-code, status=1)",
            "[vm] FAILED: web-4.service (exit-code, status=1)",
            "[vm] RECOVERED: switch.service (after 1 failure)",
        ]
    );
    refused(
        "[[inhibit]]\nequal = [\"host\"]\nsource = {}\n",
        ":3:1: inhibit 1: `source` needs `services`, `hosts` or `severity`",
    );
}

/// A storm: 50 units failing within `group_wait` are one mail at the real SMTP sink,
/// listing every one; their recoveries one more, no sooner than `group_interval`
/// (default 5m) after the first.
#[test]
fn fifty_failures_within_group_wait_are_one_mail() {
    let Some(sink) = SmtpSink::try_start(SinkOptions::plain()) else {
        return;
    };
    let ctl = Ctl::with_config(&format!("{}group_wait = \"2m\"\n", config(&sink, "")));
    let units: Vec<String> = (0..50).map(|i| format!("unit-{i:02}.service")).collect();
    for u in &units {
        let out = ok(&ctl.run_at(&at("00:00"), &failure_args(u)));
        assert!(
            out.contains(&format!("mail failure of {u} (#"))
                && out.contains(
                    "waiting in the outbox for others to group with until 2026-12-07T00:02:00Z"
                ),
            "{out}"
        );
    }
    ok(&ctl.run_at(&at("00:01"), &["flush"]));
    let out = ok(&ctl.run_at(&at("00:02"), &["flush"]));
    assert!(out.matches(": delivered").count() == 50, "{out}");
    let mails = sink.wait_for(1, Duration::from_secs(10));
    assert_eq!(mails.len(), 1, "one mail for the storm");
    assert_eq!(mails[0]["subject"], "[vm] 50 notifications: 50 FAILED");
    let body = mails[0]["body"].as_str().unwrap_or("");
    for u in &units {
        assert!(
            body.contains(&format!("  [vm] FAILED: {u} (exit-code, status=1)")),
            "{u} missing from {body}"
        );
    }
    for u in &units {
        ok(&ctl.run_at(&at("00:03"), &["success", u]));
    }
    ok(&ctl.run_at(&at("00:06"), &["flush"]));
    assert_eq!(subjects(&sink).len(), 1, "inside group_interval");
    ok(&ctl.run_at(&at("00:07"), &["flush"]));
    let mails = sink.wait_for(2, Duration::from_secs(10));
    assert_eq!(
        subjects(&sink),
        [
            "[vm] 50 notifications: 50 FAILED",
            "[vm] 50 notifications: 50 RECOVERED"
        ],
        "{mails:#?}"
    );
}

/// The daemon sends what waits in the outbox, not only what time made due: two
/// handlers' failures to a grouped notifier arrive as one mail once `group_wait` is over.
#[test]
fn the_daemon_sends_a_group_the_handlers_left_in_the_outbox() {
    let Some(sink) = SmtpSink::try_start(SinkOptions::plain()) else {
        return;
    };
    let ctl = Ctl::with_config(&format!(
        "[daemon]\nflush_every = \"200ms\"\n{}group_wait = \"1s\"\n",
        config(&sink, "")
    ));
    let daemon = crate::daemon::Daemon::start(&ctl);
    daemon.wait_log(0, "started");
    for unit in ["a.service", "b.service"] {
        let out = ok(&ctl.run(&failure_args(unit)));
        assert!(out.contains("waiting in the outbox for others"), "{out}");
    }
    let mails = sink.wait_for(1, Duration::from_secs(20));
    assert_eq!(
        subjects(&sink),
        ["[vm] 2 notifications: 2 FAILED"],
        "{mails:#?}\n{}",
        daemon.log()
    );
}

/// The file notifier's lines as (service, event).
fn file_events(path: &std::path::Path) -> Vec<(String, String)> {
    crate::daemon::lines(path)
        .iter()
        .map(|a| {
            (
                a["service"].as_str().unwrap_or("").to_owned(),
                a["event"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

#[test]
fn a_failing_dependency_holds_its_dependants_until_it_recovers() {
    let mut ctl = Ctl::new();
    let file = ctl.dir.path().join("alerts.jsonl");
    let mut text = format!(
        "[notifiers.log]\ntype = \"file\"\nformat = \"json\"\npath = \"{}\"\n\n\
         [[rules]]\nservices = [\"web-*\"]\ndepends_on = [\"lb.service\"]\nnotify = [\"log\"]\n\n\
         [[rules]]\nunmatched = true\nnotify = [\"log\"]\n\n\
         [[heartbeats]]\nname = \"network\"\nperiod = \"1h\"\n",
        file.display()
    );
    for i in 1..=20 {
        text.push_str(&format!(
            "\n[[heartbeats]]\nname = \"app-{i:02}\"\nperiod = \"1h\"\ndepends_on = \"network\"\n"
        ));
    }
    ctl.set_config(&text);
    ok(&ctl.run_at(&at("00:00"), &["ping", "network", "--fail"]));
    assert_eq!(file_events(&file), [("network".into(), "failure".into())]);
    // 20 dependants fail while the network does: held, each saying why
    for i in 1..=20 {
        let out = ok(&ctl.run_at(&at("00:01"), &["ping", &format!("app-{i:02}"), "--fail"]));
        assert!(
            out.contains("log: suppressed: depends on network, which is failing"),
            "{out}"
        );
    }
    ok(&ctl.run_at(&at("00:02"), &["flush"]));
    assert_eq!(file_events(&file).len(), 1);
    // two recover meanwhile: never alerted, nothing sent
    ok(&ctl.run_at(&at("00:03"), &["ping", "app-01"]));
    ok(&ctl.run_at(&at("00:03"), &["ping", "app-02"]));
    // the network recovers: its recovery, then the 18 still failing, once
    ok(&ctl.run_at(&at("00:04"), &["ping", "network"]));
    ok(&ctl.run_at(&at("00:05"), &["flush"]));
    ok(&ctl.run_at(&at("00:06"), &["flush"]));
    let got = file_events(&file);
    assert_eq!(got[1], ("network".to_owned(), "recovery".to_owned()));
    let mut released: Vec<&str> = got[2..]
        .iter()
        .map(|(s, e)| {
            assert_eq!(e, "failure");
            s.as_str()
        })
        .collect();
    released.sort_unstable();
    let want: Vec<String> = (3..=20).map(|i| format!("app-{i:02}")).collect();
    assert_eq!(
        released,
        want.iter().map(String::as_str).collect::<Vec<_>>()
    );

    // a rule's depends_on: web-* waits for the load balancer
    ok(&ctl.run_at(&at("01:00"), &failure_args("lb.service")));
    let out = ok(&ctl.run_at(&at("01:01"), &failure_args("web-1.service")));
    assert!(
        out.contains("log: suppressed: depends on lb.service, which is failing"),
        "{out}"
    );
    let status = status(&ctl, &at("01:02"));
    assert_eq!(
        service(&status, "web-1.service")["held"],
        "depends on lb.service, which is failing"
    );
    ok(&ctl.run_at(&at("01:03"), &["success", "lb.service"]));
    ok(&ctl.run_at(&at("01:04"), &["flush"]));
    let got = file_events(&file);
    assert_eq!(
        &got[got.len() - 3..],
        [
            ("lb.service".to_owned(), "failure".to_owned()),
            ("lb.service".to_owned(), "recovery".to_owned()),
            ("web-1.service".to_owned(), "failure".to_owned()),
        ]
    );
}

/// Bad input to `silence` is a usage error saying what is wrong; nothing is stored.
#[test]
fn bad_silences_are_refused_with_a_clear_message() {
    let ctl = Ctl::new();
    for (args, want) in [
        (&["--service", "[", "--for", "1h"][..], "--service: "),
        (
            &["--for", "1h", "--start", "tomorrow"][..],
            "--start: invalid time",
        ),
        (
            &["--until", "2026-12-07 00:30"][..],
            "over before it starts",
        ),
        (&["--until", "yesterday"][..], "--until: invalid time"),
    ] {
        let mut all = vec!["silence", "add", "--comment", "x"];
        all.extend_from_slice(args);
        let out = ctl.run_at(&at("01:00"), &all);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(text(&out).contains(want), "{args:?}: {}", text(&out));
    }
    let out = ok(&ctl.run_at(&at("01:00"), &["silence", "list"]));
    assert_eq!(out.trim(), "no silences");
    let out = ctl.run_at(&at("01:00"), &["silence", "expire", "7"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("no silence 7 that has not ended"),
        "{}",
        text(&out)
    );
}
