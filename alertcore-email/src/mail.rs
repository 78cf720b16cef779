//! Putting an alert into a message: subject, body, threading headers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use std::collections::BTreeSet;

use alertcore::transport::one_line;
use alertcore::{Context, EventKind, Notification, NotifyError};
use lettre::Message;
use lettre::message::MessageBuilder;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};

use crate::error::EmailError;

/// Builds the message for one notification.
///
/// The first alert of a streak carries the incident's root Message-ID; reminders,
/// escalations and the recovery get their own and point at the root with
/// `In-Reply-To` and `References`, so a mail client shows one thread per incident.
///
/// `subject` and `body` are the format's ([`alertcore::Format`]).
pub(crate) fn compose(
    from: &Mailbox,
    to: &[Mailbox],
    n: &Notification,
    subject: String,
    body: String,
) -> Result<Message, EmailError> {
    let root = root_message_id(n);
    let builder = headers(from, to, subject);
    let builder = if matches!(n.event, EventKind::Failure | EventKind::Output) {
        // a run's output is a thread of its own
        builder.message_id(Some(root))
    } else if n.event == EventKind::Digest {
        // each digest stands alone
        builder.message_id(Some(unique_message_id(n)))
    } else {
        builder
            .message_id(Some(unique_message_id(n)))
            .in_reply_to(root.clone())
            .references(root)
    };
    match &n.digest {
        // the format's text, and the same lines as HTML tables for mail clients
        Some(d) => builder.multipart(MultiPart::alternative_plain_html(
            body,
            d.html(&|t| t.to_string()),
        )),
        None => builder.singlepart(SinglePart::plain(body)),
    }
    .map_err(EmailError::Message)
}

/// The most incidents a group mail names in `References`.
const MAX_REFERENCES: usize = 50;

/// Builds one message for a group of notifications (`group_wait`): the subject counts
/// them by kind, the body lists each one's subject, then each one's body in full. Its
/// `References` name the incidents' root Message-IDs (up to [`MAX_REFERENCES`]), so
/// clients that thread by reference show it with them.
pub(crate) fn compose_group(
    from: &Mailbox,
    to: &[Mailbox],
    group: &[Notification],
    ctx: &Context<'_>,
) -> Result<Message, NotifyError> {
    let mut parts = Vec::with_capacity(group.len());
    for n in group {
        parts.push(ctx.format.subject_and_body(n, ctx)?);
    }
    let hosts: BTreeSet<&str> = group.iter().map(|n| n.host.as_str()).collect();
    let prefix = match hosts.iter().next() {
        Some(h) if hosts.len() == 1 => one_line(h),
        _ => "alertcore".to_owned(),
    };
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for n in group {
        let word = n.event_word();
        match counts.iter_mut().find(|(w, _)| *w == word) {
            Some((_, c)) => *c += 1,
            None => counts.push((word, 1)),
        }
    }
    let counts: Vec<String> = counts.iter().map(|(w, c)| format!("{c} {w}")).collect();
    let subject = format!(
        "[{prefix}] {} notifications: {}",
        group.len(),
        counts.join(", ")
    );
    let mut body = format!("{} notifications, sent together:\n\n", group.len());
    for (subject, _) in &parts {
        body.push_str("  ");
        body.push_str(subject);
        body.push('\n');
    }
    for (i, (subject, text)) in parts.iter().enumerate() {
        body.push_str(&format!(
            "\n---- {}/{}: {subject}\n{text}\n",
            i + 1,
            group.len()
        ));
    }
    // each incident once (a failure and its recovery share one), in order
    let mut roots: Vec<String> = Vec::new();
    for root in group.iter().map(root_message_id) {
        if roots.len() < MAX_REFERENCES && !roots.contains(&root) {
            roots.push(root);
        }
    }
    let builder = headers(from, to, subject)
        .message_id(group.first().map(unique_message_id))
        .references(roots.join(" "));
    Ok(builder
        .singlepart(SinglePart::plain(body))
        .map_err(EmailError::Message)?)
}

/// The headers every mail has: from, to, subject, date, user agent, Auto-Submitted.
fn headers(from: &Mailbox, to: &[Mailbox], subject: String) -> MessageBuilder {
    let mut builder = Message::builder()
        .from(from.clone())
        // `Format::subject()` replaces control characters and stays under 900 bytes, and
        // lettre RFC 2047-encodes any non-ASCII: a service name can neither end the
        // header nor start a new one. (A group's subject is made of those.)
        .subject(subject)
        .date_now()
        .user_agent(concat!("alertcore-email/", env!("CARGO_PKG_VERSION")).to_owned())
        // RFC 3834: an automatic message; vacation responders should stay quiet.
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("Auto-Submitted"),
            "auto-generated".to_owned(),
        ));
    for rcpt in to {
        builder = builder.to(rcpt.clone());
    }
    builder
}

/// `<incident@alertcore>`: the same for every mail about one incident.
pub(crate) fn root_message_id(n: &Notification) -> String {
    format!("<{}@alertcore>", n.incident_id())
}

/// A Message-ID no other mail has: the root's parts plus the event, the time and a
/// per-process counter.
fn unique_message_id(n: &Notification) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "<{}.{}.{}.{nanos}.{}.{count}@alertcore>",
        n.incident_id(),
        n.event,
        n.sequence,
        std::process::id(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use alertcore::{Context, Failure, FailureReport, JournalExcerpt, Timestamp};

    fn failure() -> Failure {
        Failure::from_report(
            &FailureReport::new("exit-code")
                .exit_code("exited")
                .exit_status("1"),
            "web1",
            Timestamp::from_millis(1_000),
        )
    }

    fn mailbox(s: &str) -> Mailbox {
        s.parse().unwrap()
    }

    fn render(service: &str, event: EventKind) -> String {
        let n = Notification::new(service, event, "web1")
            .failures(vec![failure()])
            .streak(2, Timestamp::from_millis(1_000));
        let ctx = Context::new("email");
        let m = compose(
            &mailbox("alertcore@example.org"),
            &[mailbox("ops@example.org")],
            &n,
            ctx.format.subject(&n, &ctx).unwrap(),
            ctx.format.body(&n, &ctx).unwrap(),
        )
        .unwrap();
        String::from_utf8(m.formatted()).unwrap()
    }

    #[test]
    fn a_group_counts_its_kinds_and_references_its_incidents() {
        let n = |service: &str, event, host: &str| {
            Notification::new(service, event, host)
                .failures(vec![failure()])
                .streak(2, Timestamp::from_millis(1_000))
        };
        let group = [
            n("a.service", EventKind::Failure, "web1"),
            n("b.service", EventKind::Failure, "web1"),
            n("c.service", EventKind::Recovery, "web2"),
            // the recovery of the first one's incident, and a collapsed recovery
            n("a.service", EventKind::Recovery, "web1"),
            n("d.service", EventKind::Recovery, "web1").collapsed(true),
        ];
        let ctx = Context::new("email");
        let m = compose_group(
            &mailbox("alertcore@example.org"),
            &[mailbox("ops@example.org")],
            &group,
            &ctx,
        )
        .unwrap();
        let raw = String::from_utf8(m.formatted()).unwrap();
        assert_eq!(
            header(&raw, "Subject"),
            ["[alertcore] 5 notifications: 2 FAILED, 2 RECOVERED, 1 FAILED AND RECOVERED"]
        );
        let head = header(&raw, "References").join(" ");
        for g in &group {
            assert_eq!(
                head.matches(&root_message_id(g)).count(),
                1,
                "each incident once: {raw}"
            );
        }
        assert!(
            raw.contains("  [web2] RECOVERED: c.service (after 1 failure)"),
            "{raw}"
        );
        assert!(
            raw.contains("---- 3/5: [web2] RECOVERED: c.service"),
            "{raw}"
        );
    }

    /// The values of header `name`, unfolded.
    fn header(raw: &str, name: &str) -> Vec<String> {
        let head = raw.split("\r\n\r\n").next().unwrap().replace("\r\n ", " ");
        head.split("\r\n")
            .filter_map(|l| Some(l.strip_prefix(name)?.strip_prefix(": ")?.to_owned()))
            .collect()
    }

    #[test]
    fn first_alert_is_the_thread_root() {
        let raw = render("backup.service", EventKind::Failure);
        assert_eq!(
            header(&raw, "Subject"),
            ["[web1] FAILED: backup.service (exit-code, status=1)"]
        );
        assert_eq!(
            header(&raw, "Message-ID"),
            ["<1000.2.backup_2eservice.web1@alertcore>"]
        );
        assert!(header(&raw, "In-Reply-To").is_empty(), "{raw}");
        assert_eq!(header(&raw, "Auto-Submitted"), ["auto-generated"]);
        assert_eq!(header(&raw, "Date").len(), 1);
    }

    #[test]
    fn follow_ups_point_at_the_root() {
        for event in [
            EventKind::Reminder,
            EventKind::Escalation,
            EventKind::Recovery,
        ] {
            let raw = render("backup.service", event);
            let root = "<1000.2.backup_2eservice.web1@alertcore>";
            assert_eq!(header(&raw, "In-Reply-To"), [root], "{raw}");
            assert_eq!(header(&raw, "References"), [root], "{raw}");
            let id = header(&raw, "Message-ID");
            assert_eq!(id.len(), 1);
            assert_ne!(id[0], root);
        }
        assert_ne!(
            header(&render("a", EventKind::Reminder), "Message-ID"),
            header(&render("a", EventKind::Reminder), "Message-ID")
        );
    }

    #[test]
    fn control_characters_cannot_add_headers() {
        let raw = render("x\r\nBcc: evil@example.org\r\n\r\nbody", EventKind::Failure);
        let head = raw.split("\r\n\r\n").next().unwrap();
        assert!(
            !head
                .lines()
                .any(|l| l.to_ascii_lowercase().starts_with("bcc")),
            "{head}"
        );
        assert!(head.is_ascii());
    }

    #[test]
    fn non_ascii_subject_is_encoded() {
        let raw = render("sauvegarde-été.service", EventKind::Failure);
        let subject = header(&raw, "Subject").join(" ");
        assert!(subject.contains("=?utf-8?"), "{subject}");
        assert!(raw.split("\r\n\r\n").next().unwrap().is_ascii());
    }

    #[test]
    fn body_ends_with_the_excerpt() {
        let x = JournalExcerpt::new("ab".repeat(16), 2, "line one\nline two");
        let n = Notification::new("backup.service", EventKind::Failure, "web1")
            .failures(vec![failure()]);
        let ctx = Context::new("email").journal(&x);
        let b = ctx.format.body(&n, &ctx).unwrap();
        assert!(b.starts_with("Service:   backup.service\n"), "{b}");
        assert!(b.contains("Failure history (oldest first):"), "{b}");
        assert!(
            b.ends_with(&format!(
                "Journal of invocation {} (last 2 lines):\nline one\nline two\n",
                "ab".repeat(16)
            )),
            "{b}"
        );
    }

    #[test]
    fn a_very_long_subject_stays_one_header() {
        let raw = render(&"x".repeat(5000), EventKind::Failure);
        let head = raw.split("\r\n\r\n").next().unwrap();
        assert!(head.lines().all(|l| l.len() <= 998), "{head}");
    }

    #[test]
    fn ids_are_sanitized() {
        let n = Notification::new("a@b", EventKind::Failure, "h st")
            .streak(1, Timestamp::from_millis(5));
        assert_eq!(root_message_id(&n), "<5.1.a_40b.h_20st@alertcore>");
    }
}
