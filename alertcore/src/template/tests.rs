use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::alert::Failure;
use crate::alert::{EventKind, FailureReport, Severity, Timestamp};
use crate::notification::{FallbackOf, Notification, RuleRef};

const START: Timestamp = Timestamp::from_millis(1_763_700_000_000);

fn history(message: Option<&str>) -> Vec<Failure> {
    let report = |sev| {
        let mut r = FailureReport::new("exit-code")
            .exit_code("exited")
            .exit_status("1")
            .severity(sev);
        if let Some(m) = message {
            r = r.message(m);
        }
        r
    };
    vec![
        Failure::from_report(&report(Severity::Warning), "web1", START),
        Failure::from_report(
            &report(Severity::Critical),
            "web1",
            START.saturating_add(Duration::from_secs(60)),
        ),
    ]
}

/// A notifier's context and the notification it renders, but for the service and its
/// history, which each call gives ([`Ctx::n`]).
#[derive(Clone)]
struct Ctx<'a> {
    ctx: Context<'a>,
    n: Notification,
}

impl<'a> Ctx<'a> {
    fn n(&self, service: &str, failures: &[Failure]) -> Notification {
        let mut n = self.n.clone().failures(failures);
        n.service = service.to_owned();
        n
    }

    fn journal(mut self, excerpt: &'a JournalExcerpt) -> Self {
        self.ctx = self.ctx.journal(excerpt);
        self
    }

    fn rule(mut self, rule: impl Into<Option<RuleRef>>) -> Self {
        self.n = self.n.rule(rule);
        self
    }
}

fn ctx(event: EventKind, format: &Format) -> Ctx<'_> {
    Ctx {
        ctx: Context::new("ops").format(format),
        n: Notification::new("", event, "web1")
            .sequence(9)
            .streak(4, START)
            .time(START.saturating_add(Duration::from_secs(300))),
    }
}

fn spec(text: &str) -> FormatSpec {
    let table = Table::parse(text).unwrap();
    let (spec, rest) = FormatSpec::split(&table).unwrap();
    assert!(rest.is_empty(), "{rest:?}");
    spec
}

fn compile(text: &str) -> Result<Format, BuildError> {
    Format::compile(&spec(text), &Formats::default(), Format::full())
}

fn render(f: &Format, event: EventKind) -> (String, String, String) {
    let h = history(Some("disk full"));
    let c = ctx(event, f);
    (
        f.subject(&c.n("backup.service", &h), &c.ctx).unwrap(),
        f.body(&c.n("backup.service", &h), &c.ctx).unwrap(),
        f.line(&c.n("backup.service", &h), &c.ctx).unwrap(),
    )
}

#[test]
fn full_reproduces_the_classic_output() {
    let (subject, body, line) = render(Format::full(), EventKind::Failure);
    assert_eq!(
        subject,
        "[web1] FAILED: backup.service (exit-code, status=1)"
    );
    assert_eq!(
        line,
        "[web1] FAILED: backup.service (exit-code, status=1), 2 failures since \
         2025-11-21T04:40:00Z: disk full"
    );
    assert_eq!(
        body,
        "Service:   backup.service
Host:      web1
Event:     failure
Severity:  critical
Result:    exit-code
Exit code: exited
Status:    1
Message:   disk full
Streak:    2 consecutive failures since 2025-11-21T04:40:00Z (5m)
Sequence:  9

Failure history (oldest first):
  #   time                 severity result           code     status  invocation
  1   2025-11-21T04:40:00Z warning  exit-code        exited   1       -
  2   2025-11-21T04:41:00Z critical exit-code        exited   1       -
"
    );

    let (subject, body, line) = render(Format::full(), EventKind::Recovery);
    assert_eq!(
        subject,
        "[web1] RECOVERED: backup.service (after 2 failures)"
    );
    assert_eq!(line, subject);
    assert!(
        body.contains(
            "Recovered at 2025-11-21T04:45:00Z after 2 consecutive failures since \
             2025-11-21T04:40:00Z (5m)\n"
        ),
        "{body}"
    );
}

#[test]
fn full_body_ends_with_the_journal_when_there_is_one() {
    let h = history(None);
    let x = JournalExcerpt::new("ab".repeat(16), 2, "line one\nline two");
    let c = ctx(EventKind::Failure, Format::full()).journal(&x);
    let body = Format::full().body(&c.n("s", &h), &c.ctx).unwrap();
    assert!(
        body.ends_with(&format!(
            "  2   2025-11-21T04:41:00Z critical exit-code        exited   1       -\n\
             \nJournal of invocation {} (last 2 lines):\nline one\nline two\n",
            "ab".repeat(16)
        )),
        "{body}"
    );
    assert!(Format::full().uses_journal());
    assert!(!Format::builtin("short").unwrap().uses_journal());
}

/// A built-in template is compiled at its first render, into the format's own
/// environment: not again at every render (each renders in a clone of it). `full`'s
/// are never compiled: they are written out in Rust.
#[test]
fn a_builtin_template_is_compiled_once() {
    let loaded = |f: &Format| {
        let mut names: Vec<String> = f.0.env.get().map_or_else(Vec::new, |e| {
            e.templates().map(|(n, _)| n.to_owned()).collect()
        });
        names.sort();
        names
    };
    let h = history(None);
    let f = Format::build(Resolved::builtin("short").unwrap(), false).unwrap();
    assert!(loaded(&f).is_empty(), "{:?}", loaded(&f));
    let c = ctx(EventKind::Failure, &f);
    f.subject(&c.n("backup.service", &h), &c.ctx).unwrap();
    assert_eq!(loaded(&f), ["subject"]);
    f.subject_and_body(&c.n("backup.service", &h), &c.ctx)
        .unwrap();
    assert_eq!(loaded(&f), ["body", "subject"]);
    let full = Format::build(Resolved::builtin("full").unwrap(), false).unwrap();
    let c = ctx(EventKind::Failure, &full);
    full.subject_and_body(&c.n("backup.service", &h), &c.ctx)
        .unwrap();
    full.line(&c.n("backup.service", &h), &c.ctx).unwrap();
    assert!(loaded(&full).is_empty(), "{:?}", loaded(&full));
    // nor is its environment built: a handler that renders only `full` does without
    assert!(full.0.env.get().is_none());
}

/// A built-in template is compiled when first rendered, and whether it uses the journal
/// is read from its text then: that must be what the compiled template says.
#[test]
fn the_builtins_name_journal_only_as_the_variable() {
    for source in [
        builtin::FULL_SUBJECT,
        builtin::FULL_LINE,
        builtin::FULL_BODY,
        builtin::SHORT,
    ] {
        let mut env = environment();
        env.add_template("t", source).unwrap();
        let analysed = env
            .get_template("t")
            .unwrap()
            .undeclared_variables(false)
            .contains("journal");
        assert_eq!(source.contains("journal"), analysed, "{source}");
    }
}

#[test]
fn show_rule_id_names_the_rule() {
    let f = compile("show_rule_id = true").unwrap();
    let h = history(None);
    let c = ctx(EventKind::Failure, &f).rule(RuleRef { index: 3, line: 42 });
    assert_eq!(
        f.subject(&c.n("s", &h), &c.ctx).unwrap(),
        "[web1] FAILED: s (exit-code, status=1) [rule 3 (line 42)]"
    );
    assert!(
        f.body(&c.n("s", &h), &c.ctx)
            .unwrap()
            .contains("\nRule:      rule 3 (line 42)\n")
    );
    // no rule routed it: nothing is shown
    let c = ctx(EventKind::Failure, &f);
    assert_eq!(
        f.subject(&c.n("s", &h), &c.ctx).unwrap(),
        "[web1] FAILED: s (exit-code, status=1)"
    );
    // off by default, even when a rule routed it
    let c = ctx(EventKind::Failure, Format::full()).rule(RuleRef { index: 3, line: 42 });
    assert!(
        !Format::full()
            .subject(&c.n("s", &h), &c.ctx)
            .unwrap()
            .contains("rule")
    );
    assert_eq!(
        RuleRef { index: 3, line: 42 }.to_string(),
        "rule 3 (line 42)"
    );
}

/// A restart loop: the alert says it is restarting, how often and for how long; the
/// recovery how many restarts it took; the variables name the trigger.
#[test]
fn restart_loops_are_said_in_the_summary_and_the_recovery() {
    let run = |restarting: bool| {
        let r = FailureReport::new("exit-code")
            .exit_status("1")
            .restarting(restarting)
            .trigger(crate::alert::Trigger::Timer);
        Failure::from_report(&r, "web1", START)
    };
    // two runs restarted, then one that was not (the start limit)
    let h = [run(true), run(true)];
    let c = ctx(EventKind::Failure, Format::full());
    assert_eq!(
        Format::full().subject(&c.n("s", &h), &c.ctx).unwrap(),
        "[web1] FAILED: s (exit-code, status=1, restarting (2 times in 5m))"
    );
    let c = ctx(EventKind::Recovery, Format::full());
    let h3 = [run(true), run(true), run(false)];
    assert_eq!(
        Format::full().subject(&c.n("s", &h3), &c.ctx).unwrap(),
        "[web1] RECOVERED: s (after 3 failures, 2 restarts)"
    );
    let short = Format::builtin("short").unwrap();
    assert_eq!(
        short.subject(&c.n("s", &h3), &c.ctx).unwrap(),
        "RECOVERED s on web1: OK after 3 failures, 2 restarts in 5m"
    );
    // no restarts, no words about them
    let c = ctx(EventKind::Failure, Format::full());
    assert_eq!(
        Format::full().subject(&c.n("s", &h3), &c.ctx).unwrap(),
        "[web1] FAILED: s (exit-code, status=1)"
    );
    let f = compile(
        "subject = '{{ trigger }} {{ restarting }} {{ restarts }} {% if failures %}{{ failures[0].trigger }}{% endif %}'",
    )
    .unwrap();
    assert_eq!(
        f.subject(&c.n("s", &h), &c.ctx).unwrap(),
        "timer True 2 timer"
    );
}

#[test]
fn short_is_one_short_line_with_the_important_words_first() {
    let short = Format::builtin("short").unwrap();
    let (subject, body, line) = render(short, EventKind::Failure);
    assert_eq!(
        subject,
        "FAILED backup.service on web1: exit-code, status=1, 2x in 5m: disk full"
    );
    assert_eq!(body, subject);
    assert_eq!(line, subject);
    let (subject, _, _) = render(short, EventKind::Recovery);
    assert_eq!(
        subject,
        "RECOVERED backup.service on web1: OK after 2 failures in 5m"
    );

    let h = history(Some(&"ü".repeat(300)));
    let service = "€".repeat(100);
    let c = ctx(EventKind::Escalation, short);
    let s = short.subject(&c.n(&service, &h), &c.ctx).unwrap();
    assert!(s.len() <= SHORT_MAX_BYTES, "{} {s}", s.len());
    assert!(s.starts_with("ESCALATED €€"), "{s}");
    // the service is cut so that host and result still fit
    assert!(
        s.contains("… on web1: exit-code, status=1, 2x in 5m: üü"),
        "{s}"
    );
    assert!(s.ends_with('…'), "{s}");
    let b = short.body(&c.n(&service, &h), &c.ctx).unwrap();
    assert!(b.len() <= SHORT_MAX_BYTES);
}

#[test]
fn json_is_the_data_model() {
    let json = Format::builtin("json").unwrap();
    let (subject, body, line) = render(json, EventKind::Escalation);
    assert_eq!(
        subject,
        "[web1] ESCALATED: backup.service (exit-code, status=1)"
    );
    assert_eq!(line, body);
    assert!(!body.contains('\n'));
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["service"], "backup.service");
    assert_eq!(v["host"], "web1");
    assert_eq!(v["event"], "escalation");
    assert_eq!(v["event_word"], "ESCALATED");
    assert_eq!(v["severity"], "critical");
    assert_eq!(v["result"], "exit-code");
    assert_eq!(v["exit_status"], "1");
    assert_eq!(v["invocation_id"], serde_json::Value::Null);
    assert_eq!(v["message"], "disk full");
    assert_eq!(v["summary"], "exit-code, status=1");
    assert_eq!(v["streak_length"], 2);
    assert_eq!(v["streak_start"], "2025-11-21T04:40:00Z");
    assert_eq!(v["streak_start_ms"], 1_763_700_000_000_i64);
    assert_eq!(v["duration"], "5m");
    assert_eq!(v["duration_secs"], 300);
    assert_eq!(v["time"], "2025-11-21T04:45:00Z");
    assert_eq!(v["sequence"], 9);
    assert_eq!(v["incident_id"], "1763700000000.4.backup_2eservice.web1");
    assert_eq!(v["notifier"], "ops");
    assert_eq!(v["rule"], serde_json::Value::Null);
    assert_eq!(v["journal"], serde_json::Value::Null);
    assert_eq!(v["subject"], subject);
    assert_eq!(v["failures"][0]["number"], 1);
    assert_eq!(v["failures"][0]["severity"], "warning");
    assert_eq!(v["failures"][1]["time"], "2025-11-21T04:41:00Z");
    assert_eq!(v["failures"][1]["time_ms"], 1_763_700_060_000_i64);
    assert!(json.is_json_body() && !json.is_default_body());
}

#[test]
fn custom_templates_and_timestamp_format() {
    let f = compile(
        "subject = '{{ event_word }} {{ service }} at {{ time }}'\n\
         body = \"{{ subject }}\\n{% for f in failures %}{{ f.number }}: {{ f.time }}\\n{% endfor %}\"\n\
         timestamp_format = '%H:%M:%S.%3N'",
    )
    .unwrap();
    assert_eq!(f.name(), "custom");
    assert_eq!(f.timestamp_format(), Some("%H:%M:%S.%3N"));
    let h = history(None);
    // tests run with the system zone; only compare what no zone changes
    let c = ctx(EventKind::Failure, &f);
    let subject = f.subject(&c.n("s", &h), &c.ctx).unwrap();
    assert!(subject.starts_with("FAILED s at "), "{subject}");
    assert!(subject.ends_with(":45:00.000"), "{subject}");
    let body = f.body(&c.n("s", &h), &c.ctx).unwrap();
    assert!(body.starts_with(&format!("{subject}\n1: ")), "{body}");
    assert_eq!(body.lines().count(), 3, "{body}");
    // a custom subject is also the one-line form
    assert_eq!(f.line(&c.n("s", &h), &c.ctx).unwrap(), subject);
    assert!(!f.is_default_body());
    assert_eq!(f.body_key(), "body");
}

#[test]
fn control_characters_never_reach_subjects_or_lines() {
    let f = compile("body = \"{{ service }}\\r\\n{{ message }}\\u0000x\"").unwrap();
    let h = history(Some("a\r\nb\u{2028}c"));
    let c = ctx(EventKind::Failure, &f);
    let service = "x\r\nBcc: evil@example.org\u{0}";
    let subject = f.subject(&c.n(service, &h), &c.ctx).unwrap();
    assert!(!subject.chars().any(char::is_control), "{subject:?}");
    let body = f.body(&c.n(service, &h), &c.ctx).unwrap();
    assert_eq!(body, "x  Bcc: evil@example.org \na  b c x");
    for format in [Format::full(), Format::builtin("short").unwrap()] {
        let c = ctx(EventKind::Failure, format);
        let line = format.line(&c.n(service, &h), &c.ctx).unwrap();
        assert!(!line.chars().any(char::is_control), "{line:?}");
        let body = format.body(&c.n(service, &h), &c.ctx).unwrap();
        assert!(!body.contains(['\r', '\0']), "{body:?}");
    }
    let long = "x".repeat(5000);
    let c = ctx(EventKind::Failure, Format::full());
    assert!(
        Format::full()
            .subject(&c.n(&long, &h), &c.ctx)
            .unwrap()
            .len()
            <= 900
    );
}

#[test]
fn overrides_layer_on_their_base() {
    let formats = Formats::default();
    let notifier = compile("subject = 'N {{ service }}'\ntimestamp_format = '%s'").unwrap();
    // a recipient override of the body keeps the notifier's subject and times
    let recipient = Format::compile(&spec("body = 'B {{ time }}'"), &formats, &notifier).unwrap();
    let h = history(None);
    let c = ctx(EventKind::Failure, &recipient);
    assert_eq!(recipient.subject(&c.n("s", &h), &c.ctx).unwrap(), "N s");
    assert_eq!(
        recipient.body(&c.n("s", &h), &c.ctx).unwrap(),
        "B 1763700300"
    );
    // `format = ` replaces the base
    let short = Format::compile(&spec("format = 'short'"), &formats, &notifier).unwrap();
    assert_eq!(short.name(), "short");
    let c = ctx(EventKind::Failure, &short);
    assert!(
        short
            .subject(&c.n("s", &h), &c.ctx)
            .unwrap()
            .starts_with("FAILED s on web1")
    );
    // a subject on top of short is still cut to 160 bytes
    let f = Format::compile(
        &spec("format = 'short'\nsubject = '{{ service }}'"),
        &formats,
        Format::full(),
    )
    .unwrap();
    let c = ctx(EventKind::Failure, &f);
    assert!(f.subject(&c.n(&"é".repeat(500), &h), &c.ctx).unwrap().len() <= SHORT_MAX_BYTES);
    // an empty spec is the base itself
    let same = Format::compile(&FormatSpec::default(), &formats, &notifier).unwrap();
    assert_eq!(same.name(), notifier.name());
}

#[test]
fn named_formats_build_on_each_other() {
    let specs: BTreeMap<String, FormatSpec> = [
        (
            "sms".to_owned(),
            spec("format = 'short'\nshow_rule_id = true"),
        ),
        (
            "pager".to_owned(),
            spec("format = 'sms'\nbody = 'P {{ service }}'"),
        ),
    ]
    .into_iter()
    .collect();
    let formats = Formats::new(&specs).unwrap();
    assert_eq!(formats.names().collect::<Vec<_>>(), ["pager", "sms"]);
    let pager = Format::compile(&spec("format = 'pager'"), &formats, Format::full()).unwrap();
    let h = history(None);
    let c = ctx(EventKind::Failure, &pager).rule(RuleRef { index: 2, line: 7 });
    assert!(
        pager
            .subject(&c.n("s", &h), &c.ctx)
            .unwrap()
            .starts_with("FAILED [r2] s on web1")
    );
    assert_eq!(pager.body(&c.n("s", &h), &c.ctx).unwrap(), "P s");
    assert_eq!(formats.get("sms").unwrap().name(), "sms");
}

#[test]
fn named_format_errors() {
    let err = |pairs: &[(&str, &str)]| {
        let specs: BTreeMap<String, FormatSpec> = pairs
            .iter()
            .map(|(n, t)| ((*n).to_owned(), spec(t)))
            .collect();
        let (name, e) = Formats::new(&specs).unwrap_err();
        (name, e.offending_key().map(str::to_owned), e.to_string())
    };
    let (name, key, msg) = err(&[
        ("a", "format = 'b'"),
        ("b", "format = 'c'"),
        ("c", "format = 'a'"),
    ]);
    assert_eq!(name, "a");
    assert_eq!(key.as_deref(), Some("format"));
    assert!(msg.contains("cycle: a -> b -> c -> a"), "{msg}");
    let (name, _, msg) = err(&[("self", "format = 'self'")]);
    assert_eq!(name, "self");
    assert!(msg.contains("self -> self"), "{msg}");
    let (name, key, msg) = err(&[("x", "format = 'nope'")]);
    assert_eq!((name.as_str(), key.as_deref()), ("x", Some("format")));
    assert!(
        msg.contains("unknown format \"nope\" (known: full, short, json"),
        "{msg}"
    );
    let (name, _, msg) = err(&[("short", "subject = 'x'")]);
    assert_eq!(name, "short");
    assert!(msg.contains("built-in"), "{msg}");
    let (name, key, _) = err(&[("ok", ""), ("bad", "subject = '{{ nope }}'")]);
    assert_eq!((name.as_str(), key.as_deref()), ("bad", Some("subject")));
}

#[test]
fn template_errors_name_the_key_and_line() {
    let cases = [
        ("subject = '{{ service '", "subject", "syntax error"),
        ("body = \"a\\n{% if %}\"", "body", "body:2"),
        ("subject = '{{ servce }}'", "subject", "undefined"),
        // strict: a missing value must be tested, not dereferenced
        ("body = '{{ rule.index }}'", "body", "fails on a sample"),
        ("body = '{{ journal.text }}'", "body", "fails on a sample"),
        // the subject is only known to the body
        ("subject = '{{ subject }}'", "subject", "undefined"),
        ("body = '{{ nope | tojson }}'", "body", "undefined"),
        (
            "timestamp_format = '%K'",
            "timestamp_format",
            "bad timestamp format",
        ),
        ("format = 'loud'", "format", "unknown format"),
        (
            "format = '{timestamp} {subject}'",
            "format",
            "now goes in `subject`",
        ),
        ("format = 'rfc3164'", "format", "`protocol`"),
        (
            "body = 'x'\ntemplate_file = '/x'",
            "template_file",
            "not both",
        ),
        (
            "template_file = '/nonexistent/t.j2'",
            "template_file",
            "cannot read",
        ),
    ];
    for (text, key, want) in cases {
        let e = compile(text).unwrap_err();
        assert_eq!(e.offending_key(), Some(key), "{text}: {e}");
        assert!(e.to_string().contains(want), "{text}: {e}");
    }
    // guarded uses are fine
    compile(
        "body = '{% if rule %}{{ rule.index }}{% endif %}{{ journal.text if journal else \"\" }}'",
    )
    .unwrap();
}

#[test]
fn template_file_holds_the_body() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("body.j2");
    std::fs::write(&path, "From a file: {{ service }}\n").unwrap();
    let f = compile(&format!("template_file = {:?}", path.display().to_string())).unwrap();
    assert_eq!(f.body_key(), "template_file");
    let h = history(None);
    let c = ctx(EventKind::Failure, &f);
    assert_eq!(f.body(&c.n("s", &h), &c.ctx).unwrap(), "From a file: s");
    std::fs::write(&path, "{{ oops").unwrap();
    let e = compile(&format!("template_file = {:?}", path.display().to_string())).unwrap_err();
    assert_eq!(e.offending_key(), Some("template_file"));
}

#[test]
fn split_takes_the_format_keys_out() {
    let table = Table::parse(
        "type = 'email'\nto = ['a@b']\nformat = 'short'\nsubject = 's'\nshow_rule_id = true",
    )
    .unwrap();
    let (spec, rest) = FormatSpec::split(&table).unwrap();
    assert_eq!(spec.format.as_deref(), Some("short"));
    assert_eq!(spec.subject.as_deref(), Some("s"));
    assert_eq!(spec.show_rule_id, Some(true));
    let mut keys: Vec<&str> = rest.keys().collect();
    keys.sort();
    assert_eq!(keys, ["to", "type"]);
    let table = Table::parse("subject = 3").unwrap();
    let e = FormatSpec::split(&table).unwrap_err();
    assert_eq!(e.offending_key(), Some("subject"));
    let table = Table::parse("show_rule_id = 'yes'").unwrap();
    assert_eq!(
        FormatSpec::split(&table).unwrap_err().offending_key(),
        Some("show_rule_id")
    );
    assert!(FormatSpec::default().is_empty());
}

#[test]
fn cut_respects_char_boundaries() {
    assert_eq!(cut("abc", 3), "abc");
    assert_eq!(cut("abcdef", 5), "ab…");
    assert_eq!(cut("ééé", 5), "é…");
    assert_eq!(cut("ééé", 4), "…");
    assert_eq!(cut("ab", 1), "");
}

fn arb_text() -> impl Strategy<Value = String> {
    // ASCII, control characters, 2-, 3- and 4-byte characters
    proptest::collection::vec(
        prop_oneof![
            any::<char>(),
            Just('é'),
            Just('€'),
            Just('😀'),
            Just('\n'),
            Just('\r'),
            Just('\u{0}')
        ],
        0..300,
    )
    .prop_map(|v| v.into_iter().collect())
}

proptest! {
    #[test]
    fn short_never_exceeds_160_bytes(
        service in arb_text(),
        host in arb_text(),
        message in arb_text(),
        result in arb_text(),
        event in prop_oneof![
            Just(EventKind::Failure),
            Just(EventKind::Reminder),
            Just(EventKind::Escalation),
            Just(EventKind::Recovery)
        ],
    ) {
        let short = Format::builtin("short").unwrap();
        let f = Failure::from_report(
            &FailureReport::new(result).exit_status("1").message(message),
            &host,
            START,
        );
        let c = Context::new("").format(short);
        let n = Notification::new(service, event, host).failures([f]).streak(1, START);
        for text in [
            short.subject(&n, &c).unwrap(),
            short.body(&n, &c).unwrap(),
            short.line(&n, &c).unwrap(),
        ] {
            prop_assert!(text.len() <= SHORT_MAX_BYTES, "{} bytes: {text:?}", text.len());
            prop_assert!(!text.chars().any(char::is_control), "{text:?}");
            // a String is valid UTF-8 by construction; check the bytes anyway
            prop_assert!(std::str::from_utf8(text.as_bytes()).is_ok());
        }
    }
}

#[test]
fn builtins_pass_every_sample() {
    for name in BUILTIN {
        let f = Format::builtin(name).unwrap();
        f.try_samples().unwrap();
        assert_eq!(f.name(), name);
    }
}

#[test]
fn runaway_templates_are_config_errors() {
    let cases = [
        // a loop that would take 10^10 steps: out of fuel
        (
            "body = '{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}'",
            "body",
            "takes more than",
        ),
        // minijinja's own caps
        (
            "body = '{% for i in range(99999999) %}{% endfor %}'",
            "body",
            "too many elements",
        ),
        ("body = '{{ \"x\" * 1000000000 }}'", "body", "too large"),
        // more than 4 MiB of output, in one piece or in many
        (
            "body = '{{ \"x\" * 49999999 }}'",
            "body",
            "more than 4 MiB of output",
        ),
        (
            "body = '{% for i in range(1000) %}{{ \"x\" * 9999 }}{% endfor %}'",
            "body",
            "more than 4 MiB of output",
        ),
        // widths and counts that would allocate without bound
        (
            "body = '{{ service|pad(99999999999999) }}'",
            "body",
            "pad: a width of",
        ),
        (
            "body = '{{ service|indent(99999999999999) }}'",
            "body",
            "indent: a width of",
        ),
        (
            "body = '{{ service|indent(width=9999999) }}'",
            "body",
            "indent: a width of",
        ),
        (
            "body = '{{ failures|tojson(indent=9999999999) }}'",
            "body",
            "tojson: a width of",
        ),
        (
            "body = '{{ failures|tojson(9999999999) }}'",
            "body",
            "tojson: a width of",
        ),
        (
            "body = '{{ \"%99999999999s\"|format(service) }}'",
            "body",
            "format: a width of",
        ),
        (
            "body = '{{ \"%(a)-.99999999999999999999999f\"|format(a=1.5) }}'",
            "body",
            "format: a width of",
        ),
        (
            "body = '{{ failures|slice(99999999999) }}'",
            "body",
            "slice: a count of",
        ),
        (
            "body = '{{ failures|batch(99999999999, 0) }}'",
            "body",
            "batch: a count of",
        ),
    ];
    for (text, key, want) in cases {
        let started = std::time::Instant::now();
        let e = compile(text).unwrap_err();
        assert_eq!(e.offending_key(), Some(key), "{text}: {e}");
        assert!(e.to_string().contains(want), "{text}: {e}");
        assert!(e.to_string().contains("fails on a sample"), "{text}: {e}");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{text}: {:?}",
            started.elapsed()
        );
    }
    // within the limits, the same filters work as minijinja's
    let f = compile(
        "body = '{{ \"%-5s|%5.1f|%%|%03d\"|format(\"ab\", 1.25, 7) }} {{ \"a\\nb\"|indent(2) }} \
         {{ [1]|tojson(indent=2) }} {{ [1, 2, 3]|slice(2)|list }} {{ [1, 2, 3]|batch(2, 0)|list }} \
         {{ \"x\"|pad(3) }}|'",
    )
    .unwrap();
    assert_eq!(
        render(&f, EventKind::Failure).1,
        "ab   |  1.2|%|007 a\n  b [\n  1\n] [[1, 2], [3]] [[1, 2], [3, 0]] x  |"
    );
}

#[test]
fn printf_widths_and_precisions_are_found() {
    assert_eq!(
        printf_numbers("%s %5d %-3.2f %% %(k)#08x %.7s"),
        [0, 5, 3, 2, 8, 0, 7]
    );
    assert_eq!(printf_numbers("100%% sure"), Vec::<usize>::new());
    assert_eq!(printf_numbers("%99999999999999999999999s"), [usize::MAX]);
}

#[test]
fn the_fuel_grows_with_the_streak() {
    // the built-in full body lists every failure: a long streak must still render
    let f = Format::full();
    let one = history(Some("disk full")).remove(0);
    let many = vec![one; 50_000];
    let c = ctx(EventKind::Failure, f);
    let body = f.body(&c.n("backup.service", &many), &c.ctx).unwrap();
    assert_eq!(body.matches("exit-code").count(), 50_001, "{:.500}", body);
}

#[test]
fn long_tags_are_refused_before_they_reach_the_parser() {
    // thousands of chained operators overflow minijinja's recursive parser
    for chain in ["- ", "1 + ", "x ~ ", "not "] {
        let text = format!("body = \"\"\"a\n{{{{ {}1 }}}}\"\"\"", chain.repeat(5_000));
        let e = compile(&text).unwrap_err();
        assert_eq!(e.offending_key(), Some("body"), "{e}");
        assert!(
            e.to_string()
                .contains("the tag on line 2 has more than 1000 bytes"),
            "{e}"
        );
    }
    let e = compile(&format!(
        "subject = '{{% if {}1 %}}x{{% endif %}}'",
        "-".repeat(2_000)
    ))
    .unwrap_err();
    assert_eq!(e.offending_key(), Some("subject"), "{e}");
    // strings, text, comments and raw blocks do not count; nor `}}` inside brackets
    let long = "x".repeat(5_000);
    compile(&format!(
        "body = \"\"\"{long} {{{{ '{long}' ~ \"{long}\\\\\\\" }}}}\" }}}} {{# {long} #}} \
         {{% raw %}}{{{{ {long} }}}}{{% endraw %}} {{{{ {{'a': {{'b': 1}}}}|length }}}}\"\"\""
    ))
    .unwrap();
    // the longest tags allowed parse on a 2 MiB stack, even in a debug build
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(|| {
            for chain in ["-", "1+", "x~", "not ", "1 if 1 else "] {
                let n = (MAX_TAG_BYTES - 4) / chain.len();
                let text = format!("body = '{{{{ {}1 }}}}'", chain.repeat(n));
                // an error or not, but no overflow
                let _ = compile(&text);
            }
        })
        .unwrap()
        .join()
        .unwrap();
}

/// `full`'s templates written out in Rust (`model.rs`) render exactly as minijinja
/// renders the templates themselves.
fn assert_native_as_template(f: &Format, n: &Notification, c: &Context<'_>) {
    let native = f.0.native;
    let mut data = f.data(n, c, None);
    let fuel = u64::MAX / 2;
    let template = |name: &str, data: &model::Model| f.render_template(name, data, fuel).unwrap();
    if native.subject {
        assert_eq!(data.full_subject(), template("subject", &data));
    }
    data.set_subject("the [subject]".to_owned());
    if native.body {
        assert_eq!(data.full_body(), template("body", &data), "{:?}", n.service);
    }
    if native.line {
        assert_eq!(data.full_line(), template("line", &data));
    }
}

#[test]
fn native_full_renders_as_its_template() {
    let formats = [
        Format::full().clone(),
        Format::builtin("json").unwrap().clone(),
        compile("show_rule_id = true").unwrap(),
        compile("timestamp_format = '%Y-%m-%d %H:%M:%S.%3N'").unwrap(),
    ];
    assert!(formats.iter().all(|f| f.0.native.subject));
    let lost = FallbackOf::new("hook", "HTTP 500\nfrom <it>");
    for f in &formats {
        for sample in model::samples() {
            let c = sample.context(f);
            for (fallback, collapsed) in [(false, false), (true, false), (false, true)] {
                let n = sample
                    .notification
                    .clone()
                    .fallback_for(fallback.then(|| lost.clone()))
                    .collapsed(collapsed);
                assert_native_as_template(f, &n, &c);
            }
        }
    }
}

proptest! {
    #[test]
    fn native_full_renders_as_its_template_on_any_text(
        service in arb_text(),
        host in arb_text(),
        message in prop_oneof![Just(String::new()), arb_text()],
        result in arb_text(),
        code in prop_oneof![Just(String::new()), arb_text()],
        failures in 0..4usize,
        restarting in any::<bool>(),
        event in prop_oneof![
            Just(EventKind::Failure),
            Just(EventKind::Reminder),
            Just(EventKind::Escalation),
            Just(EventKind::Recovery)
        ],
        rule in any::<bool>(),
    ) {
        static F: std::sync::LazyLock<Format> =
            std::sync::LazyLock::new(|| compile("show_rule_id = true").unwrap());
        let f = &*F;
        let report = FailureReport::new(result)
            .exit_code(code.clone())
            .exit_status(code.clone())
            .invocation_id(code)
            .message(message)
            .restarting(restarting);
        let history = vec![Failure::from_report(&report, &host, START); failures];
        let c = ctx(event, f).rule(rule.then_some(RuleRef { index: 2, line: 7 }));
        assert_native_as_template(f, &c.n(&service, &history), &c.ctx);
    }
}

/// A digest renders its lines in `full`, one counting line in `short`, its parts in
/// `json`; a template sees `digest.parts`.
#[test]
fn a_digest_renders_in_every_builtin_format() {
    use crate::notification::{Digest, DigestLine, DigestPart};
    let t = |s: i64| Timestamp::from_millis(START.as_millis() + s * 1000);
    let n = Notification::new("journal", EventKind::Digest, "web1")
        .time(t(86_400))
        .digest(Digest::new(
            "journal",
            t(0),
            t(86_400),
            vec![
                DigestPart::new(
                    "Important",
                    vec![DigestLine::new(2, t(60), t(120), "disk failed")],
                    0,
                    0,
                ),
                DigestPart::new("Interesting", Vec::new(), 0, 0),
                DigestPart::new(
                    "Other",
                    vec![DigestLine::new(7, t(5), t(5), "cron: ran")],
                    3,
                    9,
                ),
            ],
        ));
    let c = Context::new("mail").format(Format::full());
    assert_eq!(
        Format::full().subject(&n, &c).unwrap(),
        "[web1] DIGEST: journal (2 important, 0 interesting, 16 other)"
    );
    let body = Format::full().body(&n, &c).unwrap();
    assert!(body.contains("Important (2 entries)\n  2x  "), "{body}");
    assert!(body.contains("Interesting (0 entries)\n  none\n"), "{body}");
    assert!(
        body.contains("  ... and 3 more lines (9 entries), cut to keep this short"),
        "{body}"
    );
    assert_eq!(
        Format::full().line(&n, &c).unwrap(),
        Format::full().subject(&n, &c).unwrap()
    );
    let short = Format::builtin("short").unwrap();
    assert_eq!(
        short.line(&n, &c).unwrap(),
        "DIGEST journal on web1: 2 important, 0 interesting, 16 other"
    );
    let json: serde_json::Value =
        serde_json::from_str(&Format::builtin("json").unwrap().body(&n, &c).unwrap()).unwrap();
    assert_eq!(json["digest"]["parts"][2]["cut_entries"], 9, "{json:#}");
    let f = compile(
        "body = '{% if digest %}{% for p in digest.parts %}{{ p.title }}={{ p.entries }} {% endfor %}{% endif %}'",
    ).unwrap();
    assert_eq!(
        f.body(&n, &c).unwrap(),
        "Important=2 Interesting=0 Other=16 "
    );
}
