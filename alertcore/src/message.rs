//! Plain-text helpers shared by transports. Subjects and bodies come from
//! [templates](crate::template).

use crate::alert::EventKind;

/// The word that starts a subject for each event kind.
pub fn event_word(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Failure => "FAILED",
        EventKind::Reminder => "REMINDER",
        EventKind::Escalation => "ESCALATED",
        EventKind::Recovery => "RECOVERED",
        EventKind::Flapping => "FLAPPING",
        EventKind::Acknowledged => "ACKNOWLEDGED",
        EventKind::Report => "STILL FAILING",
        EventKind::Output => "OUTPUT",
        EventKind::Digest => "DIGEST",
    }
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

/// Escapes `s` for HTML text and attribute values.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
