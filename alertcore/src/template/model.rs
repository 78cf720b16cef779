//! The data every template sees (documented in the [parent module](super)), the journal
//! excerpt, and the sample alerts formats are tried on.

use std::time::Duration;

use jiff::tz::TimeZone;
use serde::Serialize;

use crate::alert::{Ack, EventKind, Failure, FailureReport, Severity, Timestamp, Trigger};
use crate::journal::Journal;
use crate::message::one_line;
use crate::notification::{FallbackOf, Notification, RuleRef};
use crate::template::timestamp::TimestampFormat;
use crate::template::{Context, Format};

/// The journal lines of a failed run, as the template variable `journal`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct JournalExcerpt {
    /// The invocation the lines belong to.
    pub invocation_id: String,
    /// How many lines were asked for.
    pub lines: usize,
    /// The lines, joined by `\n` (each one line, control characters replaced).
    pub text: String,
}

impl JournalExcerpt {
    /// An excerpt of `text` for `invocation_id`.
    pub fn new(invocation_id: impl Into<String>, lines: usize, text: impl Into<String>) -> Self {
        Self {
            invocation_id: invocation_id.into(),
            lines,
            text: text.into(),
        }
    }

    /// Reads the last `lines` journal lines of the latest failed run of the notification's
    /// service that has an invocation id (of an `output` notice: of the run that
    /// passed), with `journalctl` off the async workers, giving up after `timeout`.
    /// `None` for a recovery (there is no failed run to show), when
    /// `lines` is 0, when there is no journal or nothing was found: the excerpt is a
    /// courtesy.
    ///
    /// Transports call it only when [`Format::uses_journal`] says a template wants it.
    pub async fn read(n: &Notification, lines: usize, timeout: Duration) -> Option<Self> {
        Self::read_with(Journal::new(), n, lines, timeout).await
    }

    /// [`JournalExcerpt::read`] with a given [`Journal`] reader.
    pub async fn read_with(
        journal: Journal,
        n: &Notification,
        lines: usize,
        timeout: Duration,
    ) -> Option<Self> {
        if lines == 0 {
            return None;
        }
        let output = n.event == EventKind::Output;
        let invocation_id = if output {
            n.run_id.clone()?
        } else if n.event.is_failure() {
            n.failures
                .iter()
                .rev()
                .find_map(|f| f.invocation_id.clone())?
        } else {
            return None;
        };
        let service = &n.service;
        let (unit, id) = (service.to_owned(), invocation_id.clone());
        // journalctl is a blocking subprocess; keep it off the async workers.
        let task = tokio::task::spawn_blocking(move || {
            if output {
                // the run has just ended: its last lines may not be written yet
                journal.excerpt_of_ended_run(&unit, &id, lines, OUTPUT_PATIENCE)
            } else {
                journal.excerpt(&unit, &id, lines)
            }
        });
        match tokio::time::timeout(timeout, task).await {
            Ok(Ok(text)) => text.map(|text| Self::new(invocation_id, lines, text)),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "journal excerpt task failed");
                None
            }
            Err(_) => {
                tracing::debug!("journal excerpt timed out; sending without it");
                None
            }
        }
    }
}

/// How long the excerpt of a run that just passed waits for the run's own lines.
const OUTPUT_PATIENCE: Duration = Duration::from_secs(1);

/// The template data (see the parent module's table).
#[derive(Debug, Serialize)]
pub(super) struct Model {
    version: &'static str,
    service: String,
    host: String,
    notifier: String,
    event: &'static str,
    event_word: &'static str,
    severity: &'static str,
    result: Option<String>,
    exit_code: Option<String>,
    exit_status: Option<String>,
    invocation_id: Option<String>,
    message: Option<String>,
    summary: String,
    trigger: Option<&'static str>,
    restarting: bool,
    restarts: usize,
    failures: Vec<FailureData>,
    streak_length: usize,
    streak_start: String,
    streak_start_ms: i64,
    duration: String,
    duration_secs: u64,
    streak_id: u64,
    time: String,
    time_ms: i64,
    sequence: u64,
    incident_id: String,
    rule: Option<RuleData>,
    show_rule_id: bool,
    journal: Option<JournalExcerpt>,
    fallback_for: Option<FallbackOf>,
    collapsed: bool,
    stopped_flapping: bool,
    ack: Option<AckData>,
    digest: Option<DigestData>,
    /// Only in bodies and lines: a subject template that names it fails on the samples.
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<String>,
}

impl Model {
    /// Gives bodies and lines the rendered subject.
    pub(crate) fn set_subject(&mut self, subject: String) {
        self.subject = Some(subject);
    }
}

#[derive(Debug, Serialize)]
struct FailureData {
    number: usize,
    time: String,
    time_ms: i64,
    severity: &'static str,
    result: String,
    exit_code: Option<String>,
    exit_status: Option<String>,
    invocation_id: Option<String>,
    message: Option<String>,
    summary: String,
    host: String,
    restarting: bool,
    trigger: Option<&'static str>,
}

#[derive(Debug, Serialize)]
struct DigestData {
    title: String,
    since: String,
    until: String,
    summary: String,
    /// The whole digest as text.
    text: String,
    parts: Vec<DigestPartData>,
}

#[derive(Debug, Serialize)]
struct DigestPartData {
    title: String,
    entries: u64,
    lines: Vec<DigestLineData>,
    cut_lines: u64,
    cut_entries: u64,
}

#[derive(Debug, Serialize)]
struct DigestLineData {
    count: u64,
    first: String,
    last: String,
    message: String,
}

#[derive(Debug, Serialize)]
struct AckData {
    by: String,
    time: String,
    comment: Option<String>,
}

#[derive(Debug, Serialize)]
struct RuleData {
    index: usize,
    line: usize,
    text: String,
}

fn text(s: &str) -> String {
    one_line(s)
}

fn opt(s: Option<&String>) -> Option<String> {
    s.map(|s| one_line(s))
}

impl Model {
    pub(super) fn new(
        n: &Notification,
        ctx: &Context<'_>,
        timestamp: Option<&TimestampFormat>,
        show_rule_id: bool,
        subject: Option<String>,
    ) -> Self {
        let time = |t: Timestamp| format_time(t, timestamp);
        let last = n.last_failure();
        let duration = n.time.saturating_duration_since(n.streak_start);
        let duration_secs = duration.as_secs();
        let duration = humantime::format_duration(Duration::from_secs(duration_secs)).to_string();
        let restarts = n.failures.iter().filter(|f| f.restarting).count();
        let output = n.event == EventKind::Output;
        let digest = n.digest.as_ref().map(|d| DigestData {
            title: text(&d.title),
            since: time(d.since),
            until: time(d.until),
            summary: d.summary(),
            text: d.text(&time),
            parts: d
                .parts
                .iter()
                .map(|p| DigestPartData {
                    title: text(&p.title),
                    entries: p.entries(),
                    lines: p
                        .lines
                        .iter()
                        .map(|l| DigestLineData {
                            count: l.count,
                            first: time(l.first),
                            last: time(l.last),
                            message: text(&l.message),
                        })
                        .collect(),
                    cut_lines: p.cut_lines,
                    cut_entries: p.cut_entries,
                })
                .collect(),
        });
        let summary = match (&digest, last) {
            (Some(d), _) => d.summary.clone(),
            (None, Some(f)) => {
                let mut s = text(&f.summary());
                if f.restarting {
                    s.push_str(&format!(
                        ", restarting ({} in {duration})",
                        crate::message::plural(restarts, "time")
                    ));
                }
                s
            }
            (None, None) => if output { "success" } else { "failed" }.to_owned(),
        };
        Self {
            version: env!("CARGO_PKG_VERSION"),
            service: text(&n.service),
            host: text(&n.host),
            notifier: text(ctx.notifier),
            event: n.event.as_str(),
            event_word: n.event_word(),
            severity: n.severity().as_str(),
            result: last.map(|f| text(&f.service_result)),
            exit_code: opt(last.and_then(|f| f.exit_code.as_ref())),
            exit_status: opt(last.and_then(|f| f.exit_status.as_ref())),
            invocation_id: opt(if output {
                n.run_id.as_ref()
            } else {
                last.and_then(|f| f.invocation_id.as_ref())
            }),
            message: opt(last.and_then(|f| f.message.as_ref())),
            summary,
            trigger: last.and_then(|f| f.trigger).map(Trigger::as_str),
            restarting: last.is_some_and(|f| f.restarting),
            restarts,
            failures: n
                .failures
                .iter()
                .enumerate()
                .map(|(i, f)| FailureData {
                    number: i + 1,
                    time: time(f.timestamp),
                    time_ms: f.timestamp.as_millis(),
                    severity: f.severity.as_str(),
                    result: text(&f.service_result),
                    exit_code: opt(f.exit_code.as_ref()),
                    exit_status: opt(f.exit_status.as_ref()),
                    invocation_id: opt(f.invocation_id.as_ref()),
                    message: opt(f.message.as_ref()),
                    summary: text(&f.summary()),
                    host: text(&f.host),
                    restarting: f.restarting,
                    trigger: f.trigger.map(Trigger::as_str),
                })
                .collect(),
            streak_length: n.failures.len(),
            streak_start: time(n.streak_start),
            streak_start_ms: n.streak_start.as_millis(),
            duration,
            duration_secs,
            streak_id: n.streak_id,
            time: time(n.time),
            time_ms: n.time.as_millis(),
            sequence: n.sequence,
            incident_id: n.incident_id(),
            rule: n.rule.map(|r| RuleData {
                index: r.index,
                line: r.line,
                text: r.to_string(),
            }),
            show_rule_id,
            journal: ctx.journal.cloned(),
            fallback_for: n
                .fallback_for
                .as_ref()
                .map(|f| FallbackOf::new(text(&f.notifier), text(&f.error))),
            collapsed: n.collapsed,
            stopped_flapping: n.stopped_flapping,
            ack: n.ack.as_ref().map(|a| AckData {
                by: text(&a.by),
                time: time(a.at),
                comment: opt(a.comment.as_ref()),
            }),
            digest,
            subject,
        }
    }
}

/// The built-in `full` templates ([`super::builtin`]) written out in Rust: the same text
/// (the test `native_full_renders_as_its_template` compares the two on the sample
/// alerts and on generated ones), at a tenth of minijinja's cost, which was a quarter
/// of the engine's work per webhook.
impl Model {
    /// `FULL_SUBJECT`.
    pub(super) fn full_subject(&self) -> String {
        let mut out = format!("[{}] {}: {} (", self.host, self.event_word, self.service);
        if self.event == "recovery" {
            out.push_str("after ");
            push_failures(&mut out, self.streak_length);
            push_restarts(&mut out, self.restarts);
        } else {
            out.push_str(&self.summary);
        }
        out.push(')');
        if let Some(rule) = self.rule.as_ref().filter(|_| self.show_rule_id) {
            out.push_str(" [");
            out.push_str(&rule.text);
            out.push(']');
        }
        out
    }

    /// `FULL_LINE`.
    pub(super) fn full_line(&self) -> String {
        let mut out = self.subject.clone().unwrap_or_default();
        if self.event != "recovery" && self.event != "output" && self.event != "digest" {
            out.push_str(", ");
            push_failures(&mut out, self.streak_length);
            out.push_str(" since ");
            out.push_str(&self.streak_start);
            if let Some(m) = truthy(&self.message) {
                out.push_str(": ");
                out.push_str(m);
            }
        }
        if let Some(f) = &self.fallback_for {
            out.push_str(&format!(" (instead of {}: {})", f.notifier, f.error));
        }
        out
    }

    /// `FULL_BODY`, without its last newline (minijinja drops a template's).
    pub(super) fn full_body(&self) -> String {
        use std::fmt::Write as _;
        if let Some(d) = &self.digest {
            return d.text.clone();
        }
        let n = self.streak_length;
        let streak = format!(
            "{n} consecutive failure{} since {} ({})",
            plural(n),
            self.streak_start,
            self.duration
        );
        let or_dash = |s: &Option<String>| truthy(s).unwrap_or("-").to_owned();
        let mut out = String::with_capacity(512 + 120 * self.failures.len());
        // writing to a String cannot fail
        let _ = write!(
            out,
            "Service:   {}\nHost:      {}\nEvent:     {}\n",
            self.service, self.host, self.event
        );
        if let Some(a) = &self.ack {
            let _ = write!(out, "Acknowledged by {} at {}", a.by, a.time);
            if let Some(c) = truthy(&a.comment) {
                let _ = write!(out, ": {c}");
            }
            out.push('\n');
        }
        if !self.failures.is_empty() {
            let _ = write!(
                out,
                "Severity:  {}\nResult:    {}\nExit code: {}\nStatus:    {}\n",
                self.severity,
                self.result.as_deref().unwrap_or("none"),
                or_dash(&self.exit_code),
                or_dash(&self.exit_status)
            );
            if let Some(id) = truthy(&self.invocation_id) {
                let _ = writeln!(out, "Invocation: {id}");
            }
            if let Some(m) = truthy(&self.message) {
                let _ = writeln!(out, "Message:   {m}");
            }
        }
        let output = self.event == "output";
        if self.event == "recovery" {
            let _ = writeln!(out, "Recovered at {} after {streak}", self.time);
        } else if output {
            let _ = writeln!(out, "Succeeded at {}", self.time);
            if let Some(id) = truthy(&self.invocation_id) {
                let _ = writeln!(out, "Invocation: {id}");
            }
        } else {
            let _ = writeln!(out, "Streak:    {streak}");
        }
        let _ = writeln!(out, "Sequence:  {}", self.sequence);
        if let Some(f) = &self.fallback_for {
            let _ = writeln!(
                out,
                "Instead of: {}, which gave this alert up: {}",
                f.notifier, f.error
            );
        }
        if let Some(rule) = self.rule.as_ref().filter(|_| self.show_rule_id) {
            let _ = writeln!(out, "Rule:      {}", rule.text);
        }
        if !output {
            self.push_history(&mut out);
        }
        if let Some(j) = &self.journal {
            let _ = write!(
                out,
                "\nJournal of invocation {} (last {} lines):\n{}\n",
                j.invocation_id, j.lines, j.text
            );
        }
        out
    }

    /// `FULL_BODY`'s failure history table.
    fn push_history(&self, out: &mut String) {
        out.push_str("\nFailure history (oldest first):\n  ");
        for (text, width) in [
            ("#", 3),
            ("time", 20),
            ("severity", 8),
            ("result", 16),
            ("code", 8),
            ("status", 7),
        ] {
            pad(out, text, width);
        }
        out.push_str("invocation\n");
        for f in &self.failures {
            out.push_str("  ");
            pad(out, &f.number.to_string(), 3);
            pad(out, &f.time, 20);
            pad(out, f.severity, 8);
            pad(out, &f.result, 16);
            pad(out, truthy(&f.exit_code).unwrap_or("-"), 8);
            pad(out, truthy(&f.exit_status).unwrap_or("-"), 7);
            out.push_str(truthy(&f.invocation_id).unwrap_or("-"));
            out.push('\n');
        }
    }
}

/// A template's truth of an optional string: set and not empty.
fn truthy(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// `3 failures`.
fn push_failures(out: &mut String, n: usize) {
    out.push_str(&n.to_string());
    out.push_str(" failure");
    out.push_str(plural(n));
}

/// `, 3 restarts` when there were any.
fn push_restarts(out: &mut String, n: usize) {
    if n > 0 {
        out.push_str(", ");
        out.push_str(&crate::message::plural(n, "restart"));
    }
}

/// The `pad` filter and the space after it: `text` and spaces to `width` characters.
fn pad(out: &mut String, text: &str, width: usize) {
    out.push_str(text);
    let len = text.chars().count();
    out.extend(std::iter::repeat_n(' ', width.saturating_sub(len) + 1));
}

/// `t` in `timestamp` (system time zone), or RFC 3339 in UTC.
pub(super) fn format_time(t: Timestamp, timestamp: Option<&TimestampFormat>) -> String {
    match timestamp {
        None => t.to_string(),
        // only a time outside jiff's range fails: show it as the store has it
        Some(f) => f
            .format(t, &TimeZone::system())
            .unwrap_or_else(|_| t.to_string()),
    }
}

/// One sample alert a format is tried on.
pub(super) struct Sample {
    pub(super) notification: Notification,
    journal: Option<JournalExcerpt>,
    /// What is special about it, for error messages.
    pub(super) note: &'static str,
}

impl Sample {
    fn notification(
        service: &str,
        host: &str,
        failures: Vec<Failure>,
        event: EventKind,
        rule: Option<RuleRef>,
    ) -> Notification {
        let start = Timestamp::from_millis(1_763_700_000_000);
        Notification::new(service, event, host)
            .failures(failures)
            .sequence(7)
            .streak(2, start)
            .time(start.saturating_add(Duration::from_secs(300)))
            .rule(rule)
    }

    pub(super) fn context<'a>(&'a self, format: &'a Format) -> Context<'a> {
        Context::new("sample")
            .format(format)
            .journal(self.journal.as_ref())
    }
}

/// Every event kind with a full record, a rule and a journal excerpt; every event kind
/// with the optional fields missing and no rule; and hostile names.
pub(super) fn samples() -> Vec<Sample> {
    let start = Timestamp::from_millis(1_763_700_000_000);
    let full = |severity, host: &str| {
        Failure::from_report(
            &FailureReport::new("exit-code")
                .exit_code("exited")
                .exit_status("1")
                .invocation_id("0123456789abcdef0123456789abcdef")
                .severity(severity)
                .message("disk full"),
            host,
            start,
        )
    };
    let bare = Failure::from_report(&FailureReport::new(""), "web1", start);
    let mut out = Vec::new();
    for event in EventKind::ALL {
        let ack = (event == EventKind::Acknowledged).then(|| {
            Ack::new(
                "ann",
                start.saturating_add(Duration::from_secs(200)),
                Some("replacing the disk".into()),
            )
        });
        // a run's output has no failures: the run that passed
        let output = event == EventKind::Output;
        let failures = |f: Vec<Failure>| if output { Vec::new() } else { f };
        out.push(Sample {
            notification: Sample::notification(
                "backup.service",
                "web1",
                failures(vec![
                    full(Severity::Warning, "web1"),
                    full(Severity::Critical, "web1"),
                ]),
                event,
                Some(RuleRef { index: 3, line: 42 }),
            )
            .ack(ack.clone())
            .run_id(output.then(|| "fedcba9876543210fedcba9876543210".to_owned())),
            journal: Some(JournalExcerpt::new(
                "0123456789abcdef0123456789abcdef",
                50,
                "2025-11-21T04:40:00Z backup[42]: disk full\n2025-11-21T04:40:00Z systemd[1]: failed",
            )),
            note: " (with a rule and a journal excerpt)",
        });
        out.push(Sample {
            notification: Sample::notification(
                "backup.service",
                "web1",
                failures(vec![bare.clone()]),
                event,
                None,
            )
            .ack(ack.map(|a| Ack::new(a.by, a.at, None))),
            journal: None,
            note: " (no exit status, message, invocation id, rule or journal)",
        });
    }
    for event in [EventKind::Failure, EventKind::Recovery] {
        out.push(Sample {
            notification: Sample::notification(
                "backup.service",
                "web1",
                vec![full(Severity::Critical, "web1")],
                event,
                None,
            )
            .stopped_flapping(true),
            journal: None,
            note: " (the state a flapping service settled in)",
        });
    }
    out.push(Sample {
        notification: Sample::notification(
            &format!("we\"ird\\ <svc> & \n{{x}} {}.service", "é".repeat(200)),
            "h\"o\\st\t",
            vec![full(Severity::Critical, "h")],
            EventKind::Failure,
            None,
        ),
        journal: None,
        note: " (with a long name full of quotes and control characters)",
    });
    let t = |s: i64| start.saturating_add(Duration::from_secs(s.unsigned_abs()));
    out.push(Sample {
        notification: Sample::notification("journal", "web1", Vec::new(), EventKind::Digest, None)
            .digest(crate::notification::Digest::new(
                "journal",
                start,
                t(86_400),
                vec![
                    crate::notification::DigestPart::new(
                        "Important",
                        vec![crate::notification::DigestLine::new(
                            3,
                            t(60),
                            t(600),
                            "disk <sdb> & \"failed\"\n",
                        )],
                        0,
                        0,
                    ),
                    crate::notification::DigestPart::new("Interesting", Vec::new(), 0, 0),
                    crate::notification::DigestPart::new(
                        "Other",
                        vec![crate::notification::DigestLine::new(
                            1,
                            t(5),
                            t(5),
                            "cron: job ran",
                        )],
                        12,
                        40,
                    ),
                ],
            )),
        journal: None,
        note: " (a digest)",
    });
    out
}
