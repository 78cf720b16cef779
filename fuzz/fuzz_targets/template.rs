//! User templates (`subject`, `body`, `timestamp_format`, `format`, `show_rule_id`, as in a
//! `[formats.NAME]` table): compiling never panics, and a format that compiles renders
//! any service name and message without panicking, hanging or running away with memory,
//! and keeps its promises: a subject is one line of at most 900 bytes, a body has no CR
//! and no control character but LF and tab, a line has none at all, and
//! `subject_and_body` is `subject` and `body`.
#![no_main]

use std::collections::BTreeMap;

use alertcore::{
    Context, EventKind, Failure, FailureReport, Format, FormatSpec, Formats, JournalExcerpt,
    Notification, RuleRef, Severity, Timestamp,
};
use libfuzzer_sys::fuzz_target;

/// `template.rs`'s `SUBJECT_MAX_BYTES` (documented on `Format::subject`).
const SUBJECT_MAX_BYTES: usize = 900;

fn is_line_break(c: char) -> bool {
    c.is_control() || c == '\u{2028}' || c == '\u{2029}'
}

// Input (UTF-8): fields separated by NUL; a missing field is unset, a present one set
// (even empty), but for `format`, which is unset when empty:
//   subject \0 body \0 timestamp_format \0 format \0 service \0 message \0 show_rule_id
// The spec is `[formats.f]`; a notifier uses it with `format = "f"`, and when
// `show_rule_id` is given ("1" is true) a rule recipient overrides that on top.
fuzz_target!(|text: &str| {
    let mut fields = text.split('\0');
    let mut next = || fields.next().map(str::to_owned);
    let (subject, body, timestamp_format, format) = (next(), next(), next(), next());
    let service = next().unwrap_or_else(|| "backup.service".to_owned());
    let message = next();
    let show_rule_id = next().map(|s| s == "1");
    let spec = FormatSpec {
        format: format.filter(|f| !f.is_empty()),
        subject,
        body,
        template_file: None, // never a file: it would be read from the disk
        timestamp_format,
        show_rule_id: None,
    };

    let Ok(formats) = Formats::new(&BTreeMap::from([("f".to_owned(), spec)])) else {
        return;
    };
    let named = formats.get("f").expect("a format that compiled is named");
    assert_eq!(named.name(), "f");
    let by_name = FormatSpec {
        format: Some("f".to_owned()),
        ..FormatSpec::default()
    };
    let notifier = Format::compile(&by_name, &formats, Format::full())
        .expect("naming a format that compiled compiles");
    assert_eq!(notifier.name(), "f");
    let format = match show_rule_id {
        None => notifier,
        Some(b) => {
            let recipient = FormatSpec {
                show_rule_id: Some(b),
                ..FormatSpec::default()
            };
            // The same templates, tried on the same samples: they compiled once.
            let f = Format::compile(&recipient, &formats, &notifier)
                .expect("show_rule_id on top of a format that compiled compiles");
            assert_eq!(f.shows_rule_id(), b);
            f
        }
    };

    let start = Timestamp::from_millis(1_763_700_000_000);
    let report = FailureReport::new("exit-code")
        .exit_code("exited")
        .exit_status("1")
        .invocation_id("0123456789abcdef0123456789abcdef")
        .severity(Severity::Critical);
    let report = match &message {
        Some(m) => report.message(m.clone()),
        None => report,
    };
    let full = Failure::from_report(&report, "web1", start);
    let bare = Failure::from_report(&FailureReport::new(""), "web1", start);
    let journal = JournalExcerpt::new("0123456789abcdef0123456789abcdef", 50, "a\nb");
    let cases = [
        (EventKind::Failure, vec![full.clone(), full.clone()], true),
        (EventKind::Recovery, vec![bare], false),
    ];
    for (event, failures, rich) in &cases {
        let mut n = Notification::new(service.as_str(), *event, "web1")
            .failures(failures.clone())
            .sequence(7)
            .streak(2, start)
            .time(start.saturating_add(std::time::Duration::from_secs(300)));
        let mut ctx = Context::new("fuzz").format(&format);
        if *rich {
            n = n.rule(RuleRef { index: 3, line: 42 });
            ctx = ctx.journal(&journal);
        }
        // A template may fail on data the samples did not have; it must not panic.
        let subject = format.subject(&n, &ctx);
        let body = format.body(&n, &ctx);
        let both = format.subject_and_body(&n, &ctx);
        let line = format.line(&n, &ctx);
        if let Ok(s) = &subject {
            assert!(s.len() <= SUBJECT_MAX_BYTES, "subject of {} bytes", s.len());
            assert!(!s.contains(is_line_break), "subject {s:?}");
        }
        if let Ok(b) = &body {
            assert!(
                !b.contains(|c: char| c != '\n' && c != '\t' && is_line_break(c)),
                "body {b:?}"
            );
        }
        if let Ok(l) = &line {
            assert!(!l.contains(is_line_break), "line {l:?}");
        }
        if let (Ok(s), Ok(b), Ok((s2, b2))) = (&subject, &body, &both) {
            assert_eq!((s, b), (s2, b2));
        }
    }
});
