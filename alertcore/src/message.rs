//! Plain-text rendering shared by transports: subjects and the failure summary.

use std::fmt::Write as _;

use crate::alert::{EventKind, Failure};
use crate::notifier::Context;

/// The word that starts a subject for each event kind.
pub fn event_word(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Failure => "FAILED",
        EventKind::Reminder => "REMINDER",
        EventKind::Escalation => "ESCALATED",
        EventKind::Recovery => "RECOVERED",
    }
}

/// `[host] FAILED: backup.service (exit-code, status=1)`, or for a recovery
/// `[host] RECOVERED: backup.service (after 3 failures)`.
///
/// Control characters in the service name or host are replaced, so the result is one line.
pub fn subject(service: &str, failures: &[Failure], ctx: &Context<'_>) -> String {
    let detail = match (ctx.event, failures.last()) {
        (EventKind::Recovery, _) => format!("after {}", plural(failures.len(), "failure")),
        (_, Some(f)) => f.summary(),
        (_, None) => "failed".to_owned(),
    };
    one_line(&format!(
        "[{}] {}: {} ({detail})",
        ctx.host,
        event_word(ctx.event),
        service
    ))
}

/// Replaces control characters (CR, LF, NUL, ...) and the Unicode line and paragraph
/// separators with spaces.
pub fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() || c == '\u{2028}' || c == '\u{2029}' {
                ' '
            } else {
                c
            }
        })
        .collect()
}

/// `3 failures`, `1 failure`.
pub fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// The human-readable summary of an alert: service, host, result, streak and the
/// failure history as a table. Transports put it in a mail body or a log line.
pub fn summary(service: &str, failures: &[Failure], ctx: &Context<'_>) -> String {
    let mut s = String::new();
    let last = failures.last();
    let streak = format!(
        "{} since {} ({})",
        plural(failures.len(), "consecutive failure"),
        ctx.streak_start,
        humantime::format_duration(std::time::Duration::from_secs(
            ctx.now
                .saturating_duration_since(ctx.streak_start)
                .as_secs()
        ))
    );
    let _ = writeln!(s, "Service:   {}", one_line(service));
    let _ = writeln!(s, "Host:      {}", one_line(ctx.host));
    let _ = writeln!(s, "Event:     {}", ctx.event);
    if let Some(f) = last {
        let _ = writeln!(s, "Severity:  {}", f.severity);
        let _ = writeln!(s, "Result:    {}", one_line(&f.service_result));
        let _ = writeln!(s, "Exit code: {}", opt(&f.exit_code));
        let _ = writeln!(s, "Status:    {}", opt(&f.exit_status));
        if let Some(id) = &f.invocation_id {
            let _ = writeln!(s, "Invocation: {}", one_line(id));
        }
        if let Some(m) = &f.message {
            let _ = writeln!(s, "Message:   {}", one_line(m));
        }
    }
    if ctx.event == EventKind::Recovery {
        let _ = writeln!(s, "Recovered at {} after {streak}", ctx.now);
    } else {
        let _ = writeln!(s, "Streak:    {streak}");
    }
    let _ = writeln!(s, "Sequence:  {}", ctx.sequence);
    let _ = writeln!(s);
    let _ = writeln!(s, "Failure history (oldest first):");
    let _ = writeln!(
        s,
        "  {:<3} {:<20} {:<8} {:<16} {:<8} {:<7} invocation",
        "#", "time", "severity", "result", "code", "status"
    );
    for (i, f) in failures.iter().enumerate() {
        let _ = writeln!(
            s,
            "  {:<3} {:<20} {:<8} {:<16} {:<8} {:<7} {}",
            i + 1,
            f.timestamp,
            f.severity,
            one_line(&f.service_result),
            opt(&f.exit_code),
            opt(&f.exit_status),
            f.invocation_id
                .as_deref()
                .map_or_else(|| "-".to_owned(), one_line)
        );
    }
    s
}

fn opt(v: &Option<String>) -> String {
    v.as_deref().map_or_else(|| "-".to_owned(), one_line)
}
