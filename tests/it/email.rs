//! The email notifier against a real SMTP server on 127.0.0.1 (`peers::SmtpSink`):
//! plain text, STARTTLS + AUTH with a private CA, implicit TLS, threading, header
//! injection, encoding, error classes, connection reuse, and sendmail mode (against
//! scripts, and through Debian's Postfix relaying to the sink).

#![cfg(feature = "email")]

use std::error::Error as _;
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use alertcore::{
    Config, Context, EventKind, Failure, FailureReport, Format, FormatSpec, Formats, Notification,
    Notifier, NotifyError, Registry, RuleRef, Timestamp, chain,
};
use alertcore_email::{EmailConfig, EmailError, EmailNotifier};
use serde_json::Value;

use crate::peers::{SinkOptions, SmtpSink, free_port, header};

const WAIT: Duration = Duration::from_secs(5);
const START: Timestamp = Timestamp::from_millis(1_763_700_000_000);

fn notifier(toml_text: &str) -> EmailNotifier {
    let table = alertcore::Table::parse(toml_text).expect("valid TOML");
    EmailConfig::from_table(&table)
        .and_then(EmailConfig::build)
        .unwrap_or_else(|e| panic!("build: {e}\n{toml_text}"))
}

/// A notifier for `url`, from alertcore@example.org to ops@example.org, plus `extra` keys.
fn mailer(url: &str, extra: &str) -> EmailNotifier {
    notifier(&format!(
        "type = \"email\"\nurl = \"{url}\"\nfrom = \"alertcore <alertcore@example.org>\"\n\
         to = [\"ops@example.org\"]\ntimeout = \"5s\"\n{extra}"
    ))
}

fn plain_url(sink: &SmtpSink) -> String {
    format!("smtp://127.0.0.1:{}", sink.port())
}

/// `n` failures of a run that exited with status 1, a minute apart.
fn history(n: usize) -> Vec<Failure> {
    (0..n)
        .map(|i| {
            let at = START.saturating_add(Duration::from_secs(60 * i as u64));
            Failure::from_report(
                &FailureReport::new("exit-code")
                    .exit_code("exited")
                    .exit_status("1")
                    .invocation_id(format!("{i:032x}")),
                "web1",
                at,
            )
        })
        .collect()
}

/// A notification of `event` about `service` on web1, with the history `failures`.
fn alert(service: impl Into<String>, event: EventKind, failures: Vec<Failure>) -> Notification {
    Notification::new(service, event, "web1")
        .failures(failures)
        .streak(7, START)
        .time(START.saturating_add(Duration::from_secs(180)))
        .sequence(3)
}

fn ctx() -> Context<'static> {
    Context::new("ops-mail")
}

fn str_of(mail: &Value, key: &str) -> String {
    mail[key].as_str().unwrap_or_default().to_owned()
}

/// The header section of the raw message, one entry per (unfolded) header line.
fn raw_headers(mail: &Value) -> Vec<String> {
    let raw = str_of(mail, "raw").replace("\r\n", "\n");
    let head = raw.split("\n\n").next().unwrap_or_default().to_owned();
    let mut out: Vec<String> = Vec::new();
    for line in head.lines() {
        match out.last_mut() {
            Some(last) if line.starts_with([' ', '\t']) => last.push_str(line),
            _ => out.push(line.to_owned()),
        }
    }
    out
}

fn transport_source(e: &NotifyError) -> &EmailError {
    e.source()
        .and_then(|s| s.downcast_ref::<EmailError>())
        .unwrap_or_else(|| panic!("not an email transport error: {e:?}"))
}

#[tokio::test]
async fn plain_mail_arrives_with_subject_addresses_and_history() {
    let Some(sink) = SmtpSink::try_start(SinkOptions::plain()) else {
        return;
    };
    // Through the configuration and the registry, as alertctl builds it.
    let config = Config::parse(
        &format!(
            "[notifiers.ops-mail]\ntype = \"email\"\nurl = \"{}\"\n\
             from = \"alertcore <alertcore@example.org>\"\n\
             to = [\"ops@example.org\", \"Oncall <oncall@example.org>\"]\n",
            plain_url(&sink)
        ),
        "alertcore.toml",
    )
    .unwrap();
    let built = config
        .build_notifiers(&Registry::new().with(alertcore_email::FACTORY))
        .unwrap();
    let n = &built[0].notifier;
    assert_eq!(n.kind(), "email");

    n.notify(
        &alert("backup.service", EventKind::Failure, history(3)),
        &ctx(),
    )
    .await
    .unwrap();

    let mails = sink.wait_for(1, WAIT);
    assert_eq!(mails.len(), 1);
    let m = &mails[0];
    assert_eq!(
        str_of(m, "subject"),
        "[web1] FAILED: backup.service (exit-code, status=1)"
    );
    assert_eq!(str_of(m, "mail_from"), "alertcore@example.org");
    assert_eq!(
        m["rcpt_tos"],
        serde_json::json!(["ops@example.org", "oncall@example.org"])
    );
    assert_eq!(
        header(m, "From").as_deref(),
        Some("alertcore <alertcore@example.org>")
    );
    assert_eq!(
        header(m, "To").as_deref(),
        Some("ops@example.org, Oncall <oncall@example.org>")
    );
    assert!(header(m, "Date").is_some(), "{m:#}");
    assert_eq!(
        header(m, "Message-ID"),
        // streak start (ms) . streak id . service . host
        Some("<1763700000000.7.backup_2eservice.web1@alertcore>".to_owned())
    );
    assert_eq!(m["tls"], false);
    let body = str_of(m, "body");
    for want in [
        "Service:   backup.service",
        "Host:      web1",
        "Result:    exit-code",
        "Status:    1",
        "Streak:    3 consecutive failures since 2025-11-21T04:40:00Z",
        "Failure history (oldest first):",
        "  1   2025-11-21T04:40:00Z critical exit-code        exited   1       00000000000000000000000000000000",
        "  3   2025-11-21T04:42:00Z critical exit-code        exited   1       00000000000000000000000000000002",
    ] {
        assert!(body.contains(want), "body lacks {want:?}:\n{body}");
    }
}

#[tokio::test]
async fn starttls_with_auth_private_ca_and_password_from_env() {
    // Setting a variable for this process needs `unsafe` (edition 2024), which the
    // workspace forbids; PATH is set in every test process, so it serves as the secret.
    let password = std::env::var("PATH").expect("PATH is set");
    let Some(sink) = SmtpSink::try_start(SinkOptions::starttls().auth("alice", &password)) else {
        return;
    };
    let ca = sink.ca_file().unwrap();
    let n = mailer(
        &format!("smtp://alice@127.0.0.1:{}?tls=starttls", sink.port()),
        &format!("password_env = \"PATH\"\nca_file = \"{}\"", ca.display()),
    );
    n.notify(&alert("db.service", EventKind::Failure, history(1)), &ctx())
        .await
        .unwrap();
    let m = &sink.wait_for(1, WAIT)[0];
    assert_eq!(m["tls"], true, "{m:#}");
    assert_eq!(m["auth_user"], "alice", "{m:#}");
    assert_eq!(
        str_of(m, "subject"),
        "[web1] FAILED: db.service (exit-code, status=1)"
    );
}

#[tokio::test]
async fn starttls_without_the_ca_is_refused_for_good() {
    let Some(sink) = SmtpSink::try_start(SinkOptions::starttls()) else {
        return;
    };
    let n = mailer(
        &format!("smtp://127.0.0.1:{}?tls=starttls", sink.port()),
        "",
    );
    let e = n
        .notify(&alert("db.service", EventKind::Failure, history(1)), &ctx())
        .await
        .unwrap_err();
    assert!(!e.is_retryable(), "{}", chain(&e));
    assert!(chain(&e).contains("STARTTLS failed"), "{}", chain(&e));
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn required_starttls_never_falls_back_to_plain_text() {
    let Some(sink) = SmtpSink::try_start(SinkOptions::plain()) else {
        return;
    };
    let n = mailer(
        &format!("smtp://127.0.0.1:{}?tls=starttls", sink.port()),
        "",
    );
    let e = n
        .notify(&alert("db.service", EventKind::Failure, history(1)), &ctx())
        .await
        .unwrap_err();
    assert!(
        matches!(transport_source(&e), EmailError::NoStartTls { .. }),
        "{e:?}"
    );
    assert!(!e.is_retryable());
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn implicit_tls() {
    let Some(sink) = SmtpSink::try_start(SinkOptions::implicit_tls().auth("bob", "pw-implicit"))
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "pw-implicit\n").unwrap();
    let n = mailer(
        &format!("smtps://localhost:{}", sink.port()),
        &format!(
            "username = \"bob\"\npassword_file = \"{}\"\nca_file = \"{}\"",
            pw.display(),
            sink.ca_file().unwrap().display()
        ),
    );
    n.notify(&alert("db.service", EventKind::Failure, history(1)), &ctx())
        .await
        .unwrap();
    let m = &sink.wait_for(1, WAIT)[0];
    assert_eq!(m["tls"], true);
    assert_eq!(m["auth_user"], "bob");
}

#[tokio::test]
async fn follow_ups_thread_to_the_first_alert() {
    let Some(sink) = SmtpSink::try_start(SinkOptions::plain()) else {
        return;
    };
    let n = mailer(&plain_url(&sink), "");
    n.notify(
        &alert("backup.service", EventKind::Failure, history(1)),
        &ctx(),
    )
    .await
    .unwrap();
    n.notify(
        &alert("backup.service", EventKind::Reminder, history(2)),
        &ctx(),
    )
    .await
    .unwrap();
    n.notify(
        &alert("backup.service", EventKind::Recovery, history(2)),
        &ctx(),
    )
    .await
    .unwrap();
    let mails = sink.wait_for(3, WAIT);
    assert_eq!(mails.len(), 3);
    let root = header(&mails[0], "Message-ID").unwrap();
    assert!(header(&mails[0], "In-Reply-To").is_none());
    for m in &mails[1..] {
        assert_eq!(header(m, "In-Reply-To").as_ref(), Some(&root), "{m:#}");
        assert_eq!(header(m, "References").as_ref(), Some(&root), "{m:#}");
    }
    let ids: Vec<_> = mails.iter().map(|m| header(m, "Message-ID")).collect();
    assert!(
        ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2],
        "{ids:?}"
    );
    assert_eq!(
        str_of(&mails[1], "subject"),
        "[web1] REMINDER: backup.service (exit-code, status=1)"
    );
    assert_eq!(
        str_of(&mails[2], "subject"),
        "[web1] RECOVERED: backup.service (after 2 failures)"
    );
    // Another host's incident with the same service and streak is another thread.
    let other = Notification::new("backup.service", EventKind::Failure, "web2")
        .failures(history(1))
        .streak(7, START);
    n.notify(&other, &ctx()).await.unwrap();
    let mails = sink.wait_for(4, WAIT);
    assert_ne!(header(&mails[3], "Message-ID").as_ref(), Some(&root));
}

/// A format from the keys of a notifier table (as the config wiring compiles it).
fn format(toml_text: &str) -> Format {
    let table = alertcore::Table::parse(toml_text).expect("valid TOML");
    let (spec, rest) = FormatSpec::split(&table).expect("format keys");
    assert!(rest.is_empty(), "not format keys: {rest:?}");
    Format::compile(&spec, &Formats::default(), Format::full())
        .unwrap_or_else(|e| panic!("format: {e}\n{toml_text}"))
}

#[tokio::test]
async fn custom_subject_and_body_reach_the_server() {
    let Some(sink) = SmtpSink::try_start(SinkOptions::plain()) else {
        return;
    };
    let n = mailer(&plain_url(&sink), "");
    let f = format(
        r#"
subject = "{{ event_word }} {{ service }} on {{ host }} ({{ rule.text if rule else 'no rule' }})"
body = '''
Hello ops,
{{ service }}: {{ summary }}, {{ streak_length }} failures since {{ streak_start }}
{% for f in failures %}- {{ f.time }} {{ f.invocation_id }}
{% endfor %}'''
timestamp_format = '%s'
"#,
    );
    let rule = RuleRef { index: 3, line: 42 };
    let a = alert("backup.service", EventKind::Failure, history(2)).rule(rule);
    n.notify(&a, &ctx().format(&f)).await.unwrap();
    // a subject that tries to add a header, from a template
    let evil = format(r#"subject = "{{ service }}\r\nBcc: evil@example.org""#);
    n.notify(
        &alert("x.service", EventKind::Reminder, history(1)),
        &ctx().format(&evil),
    )
    .await
    .unwrap();
    // `short`, as for an SMS gateway
    let short = format("format = 'short'");
    n.notify(
        &alert("backup.service", EventKind::Escalation, history(2)),
        &ctx().format(&short),
    )
    .await
    .unwrap();

    let mails = sink.wait_for(3, WAIT);
    assert_eq!(mails.len(), 3);
    let m = &mails[0];
    assert_eq!(
        str_of(m, "subject"),
        "FAILED backup.service on web1 (rule 3 (line 42))"
    );
    assert_eq!(
        str_of(m, "body").replace("\r\n", "\n").trim_end(),
        "Hello ops,\n\
         backup.service: exit-code, status=1, 2 failures since 1763700000\n\
         - 1763700000 00000000000000000000000000000000\n\
         - 1763700060 00000000000000000000000000000001"
    );
    // threading is the transport's, whatever the format
    assert_eq!(
        header(m, "Message-ID"),
        // streak start (ms) . streak id . service . host
        Some("<1763700000000.7.backup_2eservice.web1@alertcore>".to_owned())
    );
    let m = &mails[1];
    assert_eq!(m["rcpt_tos"], serde_json::json!(["ops@example.org"]));
    assert!(
        raw_headers(m)
            .iter()
            .all(|l| !l.to_ascii_lowercase().starts_with("bcc")),
        "{m:#}"
    );
    assert_eq!(str_of(m, "subject"), "x.service  Bcc: evil@example.org");
    let m = &mails[2];
    let subject = str_of(m, "subject");
    assert_eq!(
        subject,
        "ESCALATED backup.service on web1: exit-code, status=1, 2x in 3m"
    );
    assert_eq!(str_of(m, "body").trim_end(), subject);
}

#[tokio::test]
async fn control_characters_cannot_inject_headers_or_recipients() {
    let Some(sink) = SmtpSink::try_start(SinkOptions::plain()) else {
        return;
    };
    let n = mailer(&plain_url(&sink), "");
    let evil = "backup\r\nBcc: evil@example.org\r\nX-Evil: 1";
    let mut failures = history(1);
    failures[0].message =
        Some("disk full\r\nBcc: evil@example.org\r\n\r\n.\r\nMAIL FROM:<x@y>".to_owned());
    failures[0].service_result = "exit-code\r\nCc: evil@example.org".to_owned();
    n.notify(&alert(evil, EventKind::Failure, failures), &ctx())
        .await
        .unwrap();
    let mails = sink.wait_for(1, WAIT);
    assert_eq!(mails.len(), 1, "exactly one message: {mails:#?}");
    let m = &mails[0];
    assert_eq!(m["rcpt_tos"], serde_json::json!(["ops@example.org"]));
    for line in raw_headers(m) {
        let name = line
            .split(':')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        assert!(
            !matches!(name.as_str(), "bcc" | "cc" | "x-evil"),
            "injected header {line:?}"
        );
    }
    let subject = str_of(m, "subject");
    assert!(!subject.contains(['\r', '\n']), "{subject:?}");
    assert!(
        subject.contains("backup  Bcc: evil@example.org  X-Evil: 1"),
        "{subject:?}"
    );
    // The dot-line in the message is stuffed, not the end of DATA.
    assert!(str_of(m, "body").contains("disk full"), "{m:#}");
}

#[tokio::test]
async fn non_ascii_service_name_is_encoded_and_decodes_back() {
    let Some(sink) = SmtpSink::try_start(SinkOptions::plain()) else {
        return;
    };
    let n = mailer(&plain_url(&sink), "");
    let service = "sauvegarde-été-日本.service";
    n.notify(&alert(service, EventKind::Failure, history(1)), &ctx())
        .await
        .unwrap();
    let m = &sink.wait_for(1, WAIT)[0];
    assert_eq!(
        str_of(m, "subject"),
        format!("[web1] FAILED: {service} (exit-code, status=1)")
    );
    let raw_subject = raw_headers(m)
        .into_iter()
        .find(|l| l.starts_with("Subject:"))
        .unwrap();
    assert!(raw_subject.is_ascii(), "{raw_subject}");
    assert!(raw_subject.contains("=?utf-8?"), "{raw_subject}");
    assert!(str_of(m, "body").contains(service), "{m:#}");
}

#[tokio::test]
async fn rejected_recipient_is_permanent_and_deferred_is_retryable() {
    let Some(sink) = SmtpSink::try_start(
        SinkOptions::plain()
            .fail("gone@example.org", 550)
            .fail("busy@example.org", 451),
    ) else {
        return;
    };
    let url = plain_url(&sink);
    let send = |to: &'static str| {
        let n = notifier(&format!(
            "url = \"{url}\"\nfrom = \"alertcore@example.org\"\nto = [\"ops@example.org\", \"{to}\"]"
        ));
        async move {
            n.notify(&alert("db.service", EventKind::Failure, history(1)), &ctx())
                .await
                .unwrap_err()
        }
    };
    let gone = send("gone@example.org").await;
    assert!(!gone.is_retryable(), "{}", chain(&gone));
    assert!(chain(&gone).contains("550"), "{}", chain(&gone));
    assert!(
        chain(&gone).starts_with("email delivery failed: sending the mail failed on 127.0.0.1:"),
        "{}",
        chain(&gone)
    );
    let busy = send("busy@example.org").await;
    assert!(busy.is_retryable(), "{}", chain(&busy));
    assert!(chain(&busy).contains("451"), "{}", chain(&busy));
    assert!(
        sink.messages().is_empty(),
        "nothing is delivered when a recipient fails"
    );
}

#[tokio::test]
async fn refused_connection_is_retryable() {
    let port = free_port(); // nothing listens there any more
    let n = mailer(&format!("smtp://127.0.0.1:{port}"), "");
    let e = n
        .notify(&alert("db.service", EventKind::Failure, history(1)), &ctx())
        .await
        .unwrap_err();
    assert!(e.is_retryable(), "{}", chain(&e));
    assert!(
        chain(&e).contains(&format!("cannot connect to 127.0.0.1:{port}")),
        "{}",
        chain(&e)
    );
}

#[tokio::test]
async fn silent_server_times_out_retryably() {
    // Accepts the connection but never greets.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let n = notifier(&format!(
        "url = \"smtp://127.0.0.1:{port}\"\nfrom = \"a@example.org\"\nto = [\"b@example.org\"]\ntimeout = \"200ms\""
    ));
    let e = n
        .notify(&alert("db.service", EventKind::Failure, history(1)), &ctx())
        .await
        .unwrap_err();
    assert!(e.is_retryable(), "{}", chain(&e));
    assert!(
        chain(&e).contains("no answer from 127.0.0.1"),
        "{}",
        chain(&e)
    );
    drop(listener);
}

#[tokio::test]
async fn wrong_password_fails_clearly_without_showing_it() {
    let secret = "hunter2-correct-horse";
    let Some(sink) = SmtpSink::try_start(SinkOptions::starttls().auth("alice", "the-real-one"))
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, secret).unwrap();
    let n = mailer(
        &format!("smtp://127.0.0.1:{}?tls=starttls", sink.port()),
        &format!(
            "username = \"alice\"\npassword_file = \"{}\"\nca_file = \"{}\"",
            pw.display(),
            sink.ca_file().unwrap().display()
        ),
    );
    let e = n
        .notify(&alert("db.service", EventKind::Failure, history(1)), &ctx())
        .await
        .unwrap_err();
    let text = chain(&e);
    assert!(!e.is_retryable(), "{text}");
    assert!(
        text.contains("smtp authentication failed on 127.0.0.1:"),
        "{text}"
    );
    assert!(text.contains("535"), "{text}");
    for shown in [text, format!("{e:?}"), format!("{n:?}")] {
        assert!(!shown.contains(secret), "the password leaked: {shown}");
    }
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn missing_password_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    for source in [
        "password_env = \"ALERTCORE_IT_SURELY_UNSET_PASSWORD\"".to_owned(),
        format!("password_file = \"{}\"", dir.path().join("nope").display()),
    ] {
        // Nothing listens: a config error must come before any connection attempt.
        let n = mailer(
            &format!("smtp://127.0.0.1:{}", free_port()),
            &format!("username = \"alice\"\n{source}"),
        );
        let e = n
            .notify(&alert("db.service", EventKind::Failure, history(1)), &ctx())
            .await
            .unwrap_err();
        assert!(matches!(e, NotifyError::Config { .. }), "{source}: {e:?}");
        assert!(!e.is_retryable());
    }
}

#[tokio::test]
async fn several_mails_share_one_connection_and_it_recovers_after_errors() {
    let Some(sink) = SmtpSink::try_start(SinkOptions::plain().fail("gone@example.org", 550)) else {
        return;
    };
    let url = plain_url(&sink);
    let n = Arc::new(mailer(&url, ""));
    for service in ["a.service", "b.service", "c.service"] {
        n.notify(&alert(service, EventKind::Failure, history(1)), &ctx())
            .await
            .unwrap();
    }
    let mails = sink.wait_for(3, WAIT);
    assert_eq!(mails.len(), 3);
    let peers: Vec<&Value> = mails.iter().map(|m| &m["peer"]).collect();
    assert!(
        peers.iter().all(|p| *p == peers[0]),
        "one connection (same client port) for all mails: {peers:?}"
    );

    // A rejected mail breaks the session (lettre aborts it); the next mail reconnects.
    let bad = notifier(&format!(
        "url = \"{url}\"\nfrom = \"alertcore@example.org\"\nto = [\"gone@example.org\"]"
    ));
    bad.notify(&alert("d.service", EventKind::Failure, history(1)), &ctx())
        .await
        .unwrap_err();
    n.close().await;
    n.notify(&alert("e.service", EventKind::Failure, history(1)), &ctx())
        .await
        .unwrap();
    let mails = sink.wait_for(4, WAIT);
    assert_eq!(mails.len(), 4);
    assert_ne!(
        mails[3]["peer"], mails[0]["peer"],
        "a new connection after close()"
    );
}

fn sendmail_script(dir: &Path, body: &str) -> String {
    use std::os::unix::fs::PermissionsExt as _;
    let script = dir.join("fake-sendmail");
    std::fs::write(&script, format!("#!/bin/sh\n{body}\n")).expect("write the script");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    script.display().to_string()
}

#[tokio::test]
async fn sendmail_mode_pipes_the_message_to_the_program() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let script = sendmail_script(
        dir.path(),
        &format!("printf '%s\\n' \"$@\" > {d}/args\ncat > {d}/message"),
    );
    let n = notifier(&format!(
        "mode = \"sendmail\"\nsendmail_command = [\"{script}\", \"-oem\"]\n\
         from = \"alertcore <alertcore@example.org>\"\nto = [\"ops@example.org\", \"b@example.org\"]"
    ));
    n.notify(
        &alert("backup.service", EventKind::Failure, history(2)),
        &ctx(),
    )
    .await
    .unwrap();
    let args = std::fs::read_to_string(dir.path().join("args")).unwrap();
    assert_eq!(
        args.lines().collect::<Vec<_>>(),
        [
            "-oem",
            "-i",
            "-f",
            "alertcore@example.org",
            "--",
            "ops@example.org",
            "b@example.org"
        ]
    );
    let message = std::fs::read_to_string(dir.path().join("message")).unwrap();
    assert!(!message.contains('\r'), "local line endings");
    assert!(
        message.contains("\nSubject: [web1] FAILED: backup.service (exit-code, status=1)\n")
            || message.starts_with("Subject: [web1] FAILED"),
        "{message}"
    );
    assert!(
        message.contains("Failure history (oldest first):"),
        "{message}"
    );
}

#[tokio::test]
async fn sendmail_failures_keep_stderr_and_tempfail_is_retryable() {
    let dir = tempfile::tempdir().unwrap();
    let build = |body: &str| {
        let script = sendmail_script(dir.path(), body);
        notifier(&format!(
            "mode = \"sendmail\"\nsendmail_command = \"{script}\"\n\
             from = \"a@example.org\"\nto = [\"b@example.org\"]"
        ))
    };
    let n = build("cat >/dev/null; echo 'queue directory missing' >&2; exit 1");
    let e = n
        .notify(&alert("db.service", EventKind::Failure, history(1)), &ctx())
        .await
        .unwrap_err();
    assert!(!e.is_retryable(), "{}", chain(&e));
    assert!(
        chain(&e).contains("queue directory missing"),
        "{}",
        chain(&e)
    );

    let n = build("cat >/dev/null; exit 75");
    let e = n
        .notify(&alert("db.service", EventKind::Failure, history(1)), &ctx())
        .await
        .unwrap_err();
    assert!(e.is_retryable(), "{}", chain(&e));
}

const START_POSTFIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/start-postfix.sh");

/// Debian's Postfix, an instance of its own (`tests/peers/start-postfix.sh`) that
/// relays every mail to an SMTP sink; stopped on drop.
struct Postfix {
    dir: tempfile::TempDir,
}

impl Postfix {
    /// Starts one, or returns `None` after saying why where it cannot run (not root, no
    /// postfix); under CI (`CI` set, see `under_ci`) that fails the test instead.
    fn try_start(relay_port: u16) -> Option<Self> {
        let root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
        let why = if !root {
            Some("Postfix needs root")
        } else if !Path::new("/usr/sbin/postfix").exists() {
            Some("postfix is not installed (apt-get install postfix)")
        } else {
            None
        };
        if let Some(why) = why {
            assert!(
                !crate::under_ci(),
                "sendmail mode cannot be tested under CI: {why}"
            );
            eprintln!("skipping: {why}");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("alertcore-postfix-")
            .tempdir()
            .expect("temp dir");
        let out = std::process::Command::new("bash")
            .arg(START_POSTFIX)
            .arg("start")
            .arg(dir.path())
            .arg(relay_port.to_string())
            .output()
            .expect("run start-postfix.sh");
        let postfix = Self { dir };
        assert!(
            out.status.success(),
            "Postfix did not start: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Some(postfix)
    }

    /// Its sendmail, as a `sendmail_command` TOML array.
    fn sendmail_command(&self) -> String {
        format!(
            "[\"/usr/sbin/sendmail\", \"-C\", {:?}]",
            self.dir.path().display().to_string()
        )
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg(START_POSTFIX)
            .arg("stop")
            .arg(self.dir.path())
            .status();
    }
}

/// Sendmail mode with a real MTA: Postfix's sendmail queues each mail, and Postfix
/// relays it to the sink, envelope, headers and threading intact.
#[tokio::test]
async fn sendmail_mode_through_postfix() {
    let Some(sink) = SmtpSink::try_start(SinkOptions::plain()) else {
        return;
    };
    let Some(postfix) = Postfix::try_start(sink.port()) else {
        return;
    };
    let n = notifier(&format!(
        "mode = \"sendmail\"\nsendmail_command = {}\n\
         from = \"alertcore <alertcore@example.org>\"\nto = [\"ops@example.org\", \"b@example.org\"]",
        postfix.sendmail_command()
    ));
    for kind in [EventKind::Failure, EventKind::Recovery] {
        n.notify(&alert("backup.service", kind, history(2)), &ctx())
            .await
            .unwrap();
    }
    // Postfix delivers in the background: give it the sink's usual wait, and more
    let mails = sink.wait_for(2, WAIT * 4);
    assert_eq!(mails.len(), 2, "{mails:#?}");
    let (failed, recovered) = if str_of(&mails[0], "subject").contains("FAILED") {
        (&mails[0], &mails[1])
    } else {
        (&mails[1], &mails[0])
    };
    for m in [failed, recovered] {
        assert_eq!(str_of(m, "mail_from"), "alertcore@example.org");
        // both recipients, in Postfix's order
        let mut rcpts: Vec<&str> = m["rcpt_tos"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        rcpts.sort_unstable();
        assert_eq!(rcpts, ["b@example.org", "ops@example.org"]);
        let received = header(m, "Received").unwrap_or_default();
        assert!(
            received.starts_with("by postfix.alertcore.test (Postfix"),
            "not relayed by the Postfix instance: {received}"
        );
        assert_eq!(
            header(m, "From").as_deref(),
            Some("alertcore <alertcore@example.org>")
        );
    }
    assert_eq!(
        str_of(failed, "subject"),
        "[web1] FAILED: backup.service (exit-code, status=1)"
    );
    assert!(
        str_of(failed, "body").contains("Failure history (oldest first):"),
        "{failed:#}"
    );
    // Postfix keeps our Message-ID, so the recovery still threads to the failure
    let incident = "<1763700000000.7.backup_2eservice.web1@alertcore>";
    assert_eq!(header(failed, "Message-ID").as_deref(), Some(incident));
    assert!(str_of(recovered, "subject").contains("RECOVERED: backup.service"));
    assert_eq!(header(recovered, "In-Reply-To").as_deref(), Some(incident));
}
