//! The one value a send decision produces: what every notifier, template and outbox row
//! sees.
//!
//! The engine builds a [`Notification`] once per notifier it decides to tell, the store
//! keeps it (as JSON) in the outbox row, and the same value is handed to the notifier on
//! the first attempt and on every retry, by whichever process sends it. Its field names
//! are the template variables of the same facts (see [`crate::template`]).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::alert::{Ack, EventKind, Failure, Severity, Timestamp};
use crate::message::one_line;

/// One notification about one service, as decided by the engine.
///
/// `#[non_exhaustive]`: fields get added over time. Build one outside this crate (in a
/// notifier's tests) with [`Notification::new`] and the setters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Notification {
    /// The service it is about.
    pub service: String,
    /// What happened: first alert, reminder, escalation or recovery.
    pub event: EventKind,
    /// The host the service runs on.
    pub host: String,
    /// Per-host sequence number of the event (shared by all its notifications).
    pub sequence: u64,
    /// The per-service streak number: with `streak_start` it names the incident.
    pub streak_id: u64,
    /// When the streak's first failure was recorded.
    pub streak_start: Timestamp,
    /// When the event was processed.
    pub time: Timestamp,
    /// The rule that routed it, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<RuleRef>,
    /// The streak's failures, oldest first, the current one last (for a recovery: the
    /// streak that ended).
    #[serde(default)]
    pub failures: Vec<Failure>,
    /// Set when this notifier gets it as another one's `fallback`: that one gave it up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_for: Option<FallbackOf>,
    /// A recovery that replaced its failure alert, which was still waiting to be sent
    /// (the notifier's `collapse`), or that tells of a failure a hold kept back
    /// (`held_recovery`): one "failed and recovered" notice.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub collapsed: bool,
    /// The service stopped flapping (`[flapping]`) and this failure alert or recovery
    /// says the state it settled in.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stopped_flapping: bool,
    /// The acknowledgement an [`EventKind::Acknowledged`] notice tells of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack: Option<Ack>,
    /// The invocation id of the successful run an [`EventKind::Output`] notice carries
    /// the output of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// The lines an [`EventKind::Digest`] carries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
}

/// A digest of counted lines in parts (the journal's daily report: events of
/// importance, of interest, and the rest): what every notifier can render as text and
/// the email transport also as HTML.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Digest {
    /// What it digests (`journal`).
    pub title: String,
    /// The span it covers.
    pub since: Timestamp,
    /// Up to here.
    pub until: Timestamp,
    /// Its parts, in order.
    pub parts: Vec<DigestPart>,
}

/// One part of a [`Digest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DigestPart {
    /// Its heading.
    pub title: String,
    /// Its lines, most frequent first.
    pub lines: Vec<DigestLine>,
    /// Lines left out to keep it short, and how many entries they stood for.
    pub cut_lines: u64,
    /// The entries of the cut lines.
    pub cut_entries: u64,
}

/// One counted line of a [`DigestPart`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DigestLine {
    /// How many entries it stands for.
    pub count: u64,
    /// The first one's time.
    pub first: Timestamp,
    /// The last one's.
    pub last: Timestamp,
    /// A representative message.
    pub message: String,
}

impl DigestLine {
    /// A line of `count` entries from `first` to `last`, saying `message`.
    pub fn new(count: u64, first: Timestamp, last: Timestamp, message: impl Into<String>) -> Self {
        Self {
            count,
            first,
            last,
            message: message.into(),
        }
    }
}

impl DigestPart {
    /// A part titled `title` of `lines`, with `cut_lines` lines of `cut_entries`
    /// entries left out.
    pub fn new(
        title: impl Into<String>,
        lines: Vec<DigestLine>,
        cut_lines: u64,
        cut_entries: u64,
    ) -> Self {
        Self {
            title: title.into(),
            lines,
            cut_lines,
            cut_entries,
        }
    }

    /// Entries in the part, shown or cut.
    pub fn entries(&self) -> u64 {
        self.lines.iter().map(|l| l.count).sum::<u64>() + self.cut_entries
    }
}

impl Digest {
    /// A digest of `title` from `since` to `until`.
    pub fn new(
        title: impl Into<String>,
        since: Timestamp,
        until: Timestamp,
        parts: Vec<DigestPart>,
    ) -> Self {
        Self {
            title: title.into(),
            since,
            until,
            parts,
        }
    }

    /// `2 important, 14 interesting, 310 other` (entries per part).
    pub fn summary(&self) -> String {
        let list: Vec<String> = self
            .parts
            .iter()
            .map(|p| format!("{} {}", p.entries(), p.title.to_lowercase()))
            .collect();
        list.join(", ")
    }

    /// The digest as plain text, times written by `time`: per part a heading and a
    /// table of count, first, last, message.
    pub fn text(&self, time: &dyn Fn(Timestamp) -> String) -> String {
        use std::fmt::Write as _;
        let mut out = format!(
            "{} from {} to {}\n",
            self.title,
            time(self.since),
            time(self.until)
        );
        for p in &self.parts {
            let _ = write!(out, "\n{} ({} entries)\n", p.title, p.entries());
            if p.lines.is_empty() && p.cut_lines == 0 {
                out.push_str("  none\n");
                continue;
            }
            let width = p
                .lines
                .iter()
                .map(|l| l.count.to_string().len())
                .max()
                .unwrap_or(1);
            for l in &p.lines {
                let span = if l.first == l.last {
                    time(l.first)
                } else {
                    format!("{} .. {}", time(l.first), time(l.last))
                };
                let _ = writeln!(
                    out,
                    "  {:>width$}x  {span}  {}",
                    l.count,
                    one_line(&l.message)
                );
            }
            if p.cut_lines > 0 {
                let _ = writeln!(
                    out,
                    "  ... and {} more lines ({} entries), cut to keep this short",
                    p.cut_lines, p.cut_entries
                );
            }
        }
        out
    }

    /// The digest as an HTML document (escaped), times written by `time`.
    pub fn html(&self, time: &dyn Fn(Timestamp) -> String) -> String {
        use std::fmt::Write as _;
        let e = |s: &str| crate::message::html_escape(s);
        let mut out = format!(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{}</title></head><body>\n<h1>{}</h1>\n<p>{} to {}</p>\n",
            e(&self.title),
            e(&self.title),
            e(&time(self.since)),
            e(&time(self.until))
        );
        for p in &self.parts {
            let _ = writeln!(out, "<h2>{} ({} entries)</h2>", e(&p.title), p.entries());
            if p.lines.is_empty() && p.cut_lines == 0 {
                out.push_str("<p>none</p>\n");
                continue;
            }
            out.push_str("<table border=\"1\" cellpadding=\"3\" cellspacing=\"0\">\n<tr><th>count</th><th>first</th><th>last</th><th>message</th></tr>\n");
            for l in &p.lines {
                let _ = writeln!(
                    out,
                    "<tr><td align=\"right\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    l.count,
                    e(&time(l.first)),
                    e(&time(l.last)),
                    e(&l.message)
                );
            }
            out.push_str("</table>\n");
            if p.cut_lines > 0 {
                let _ = writeln!(
                    out,
                    "<p>... and {} more lines ({} entries), cut to keep this short</p>",
                    p.cut_lines, p.cut_entries
                );
            }
        }
        out.push_str("</body></html>\n");
        out
    }
}

impl Notification {
    /// A notification of `event` about `service` on `host`, with no history and zero
    /// counters and times.
    pub fn new(service: impl Into<String>, event: EventKind, host: impl Into<String>) -> Self {
        Self {
            service: service.into(),
            event,
            host: host.into(),
            sequence: 0,
            streak_id: 0,
            streak_start: Timestamp::from_millis(0),
            time: Timestamp::from_millis(0),
            rule: None,
            failures: Vec::new(),
            fallback_for: None,
            collapsed: false,
            stopped_flapping: false,
            ack: None,
            run_id: None,
            digest: None,
        }
    }

    /// Sets the failure history (oldest first).
    #[must_use]
    pub fn failures(mut self, failures: impl Into<Vec<Failure>>) -> Self {
        self.failures = failures.into();
        self
    }

    /// Sets the sequence number.
    #[must_use]
    pub fn sequence(mut self, n: u64) -> Self {
        self.sequence = n;
        self
    }

    /// Sets the streak id and start.
    #[must_use]
    pub fn streak(mut self, id: u64, start: Timestamp) -> Self {
        self.streak_id = id;
        self.streak_start = start;
        self
    }

    /// Sets the event time.
    #[must_use]
    pub fn time(mut self, time: Timestamp) -> Self {
        self.time = time;
        self
    }

    /// Sets the rule that routed it.
    #[must_use]
    pub fn rule(mut self, rule: impl Into<Option<RuleRef>>) -> Self {
        self.rule = rule.into();
        self
    }

    /// Marks it as handed over from a notifier that gave it up.
    #[must_use]
    pub fn fallback_for(mut self, lost: impl Into<Option<FallbackOf>>) -> Self {
        self.fallback_for = lost.into();
        self
    }

    /// Marks a recovery as replacing its unsent failure alert.
    #[must_use]
    pub fn collapsed(mut self, collapsed: bool) -> Self {
        self.collapsed = collapsed;
        self
    }

    /// Marks a failure alert or recovery as the state a flapping service settled in.
    #[must_use]
    pub fn stopped_flapping(mut self, stopped: bool) -> Self {
        self.stopped_flapping = stopped;
        self
    }

    /// Sets the lines of an [`EventKind::Digest`].
    #[must_use]
    pub fn digest(mut self, digest: Digest) -> Self {
        self.digest = Some(digest);
        self
    }

    /// Sets the successful run an [`EventKind::Output`] notice is about.
    #[must_use]
    pub fn run_id(mut self, id: Option<String>) -> Self {
        self.run_id = id;
        self
    }

    /// Sets the acknowledgement an [`EventKind::Acknowledged`] notice tells of.
    #[must_use]
    pub fn ack(mut self, ack: impl Into<Option<Ack>>) -> Self {
        self.ack = ack.into();
        self
    }

    /// The word that says what it is, for subjects: the kind's
    /// ([`crate::message::event_word`]), or `FAILED AND RECOVERED` for a collapsed
    /// recovery, `STOPPED FLAPPING, ...` for the state a flapping service settled in.
    pub fn event_word(&self) -> &'static str {
        match (self.collapsed, self.stopped_flapping, self.event) {
            (true, ..) => "FAILED AND RECOVERED",
            (_, true, EventKind::Recovery) => "STOPPED FLAPPING, RECOVERED",
            (_, true, _) => "STOPPED FLAPPING, FAILING",
            _ => crate::message::event_word(self.event),
        }
    }

    /// The latest failure of the streak, if any.
    pub fn last_failure(&self) -> Option<&Failure> {
        self.failures.last()
    }

    /// The severity of the latest failure ([`Severity::Critical`] without one).
    pub fn severity(&self) -> Severity {
        self.last_failure()
            .map_or(Severity::Critical, |f| f.severity)
    }

    /// A stable id for the incident (streak start and number, service, host): the same
    /// for the first alert, every reminder and the recovery, so transports can thread
    /// them. Parts are joined by `.`; each keeps `[A-Za-z0-9-]` and writes every other
    /// byte as `_xx` hex, so the result fits a Message-ID or a URL and two incidents never
    /// share an id. A very long service or host name is shortened to its start and a
    /// hash of the whole, so the id stays under 400 bytes (a mail header line must stay
    /// under 998).
    pub fn incident_id(&self) -> String {
        format!(
            "{}.{}.{}.{}",
            self.streak_start.as_millis(),
            self.streak_id,
            bounded_id(&self.service),
            bounded_id(&self.host)
        )
    }
}

/// The notifier that lost an alert handed to its `fallback`, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FallbackOf {
    /// The notifier that gave the alert up.
    pub notifier: String,
    /// Its last error.
    pub error: String,
}

impl FallbackOf {
    /// `notifier` gave an alert up with `error`.
    pub fn new(notifier: impl Into<String>, error: impl Into<String>) -> Self {
        Self {
            notifier: notifier.into(),
            error: error.into(),
        }
    }
}

/// Which `[[rules]]` entry routed an alert: its 1-based position and the config line
/// where it starts. Shown as `rule 3 (line 42)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RuleRef {
    /// The 1-based position of the rule in `[[rules]]`.
    pub index: usize,
    /// The config line where the rule starts.
    pub line: usize,
}

impl fmt::Display for RuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rule {} (line {})", self.index, self.line)
    }
}

/// The longest sanitized part kept whole in an incident id.
const MAX_ID_PART: usize = 160;

/// [`sanitize_id`], with a part longer than [`MAX_ID_PART`] cut to its first 120 bytes
/// and `-h` + the FNV-1a hash of the whole name (stable across processes and builds).
fn bounded_id(s: &str) -> String {
    let id = sanitize_id(s);
    if id.len() <= MAX_ID_PART {
        return id;
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    // `sanitize_id` output is ASCII: any byte index is a char boundary
    format!("{}-h{hash:016x}", &id[..120])
}

/// Keeps `[A-Za-z0-9-]` and writes every other byte as `_xx` hex, so the result is a
/// safe, unambiguous part of an id (it never contains `.`, `@`, `<` or `>`).
pub(crate) fn sanitize_id(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("_{b:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incident_id_is_safe_and_stable() {
        let n = |service: &str, event| {
            Notification::new(service, event, "h").streak(3, Timestamp::from_millis(5))
        };
        assert_eq!(
            n("a b@c.service", EventKind::Failure).incident_id(),
            "5.3.a_20b_40c_2eservice.h"
        );
        assert_eq!(
            n("x", EventKind::Recovery).incident_id(),
            n("x", EventKind::Failure).incident_id()
        );
        // long names are bounded, and still told apart
        let a = n(&format!("{}a", "é".repeat(300)), EventKind::Failure).incident_id();
        let b = n(&format!("{}b", "é".repeat(300)), EventKind::Failure).incident_id();
        assert!(a.len() < 400 && b.len() < 400, "{a}");
        assert_ne!(a, b);
        assert_eq!(
            a,
            n(&format!("{}a", "é".repeat(300)), EventKind::Recovery).incident_id()
        );
    }

    #[test]
    fn round_trips_through_json() {
        let n = Notification::new("s", EventKind::Recovery, "h")
            .sequence(4)
            .streak(2, Timestamp::from_millis(7))
            .time(Timestamp::from_millis(9))
            .rule(RuleRef { index: 1, line: 3 })
            .fallback_for(FallbackOf::new("mail", "refused"))
            .collapsed(true)
            .stopped_flapping(true)
            .ack(Ack::new(
                "ann",
                Timestamp::from_millis(8),
                Some("on it".into()),
            ));
        let json = serde_json::to_string(&n).expect("serialises");
        let back: Notification = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, n);
    }
}
