//! Plain-text helpers shared by transports. Subjects and bodies come from
//! [templates](crate::template).

use crate::alert::{EventKind, Failure};
use crate::notifier::Context;
use crate::template::Format;

/// The word that starts a subject for each event kind.
pub fn event_word(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Failure => "FAILED",
        EventKind::Reminder => "REMINDER",
        EventKind::Escalation => "ESCALATED",
        EventKind::Recovery => "RECOVERED",
    }
}

/// The built-in `full` format's subject: `[host] FAILED: backup.service (exit-code,
/// status=1)`, or for a recovery `[host] RECOVERED: backup.service (after 3 failures)`.
///
/// Transports render through [`Context::format`] instead, which is `full` unless the
/// configuration says otherwise; this stays for code that wants the default whatever
/// the context carries. Control characters are replaced, so the result is one line.
pub fn subject(service: &str, failures: &[Failure], ctx: &Context<'_>) -> String {
    Format::full()
        .subject(service, failures, ctx)
        .unwrap_or_else(|_| {
            // `full` is tried on every sample alert by its tests; this is a last resort
            one_line(&format!(
                "[{}] {}: {service}",
                ctx.host,
                event_word(ctx.event)
            ))
        })
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

/// The built-in `full` format's body: service, host, result, streak and the failure
/// history as a table (and the journal excerpt when the context carries one).
pub fn summary(service: &str, failures: &[Failure], ctx: &Context<'_>) -> String {
    Format::full()
        .body(service, failures, ctx)
        .unwrap_or_else(|_| subject(service, failures, ctx))
}
