//! The engine through the public API: interactions (mockall), failure isolation and
//! build-time registration.

use std::sync::Arc;

use alertcore::testkit::{ManualClock, RecordingNotifier};
use alertcore::{
    Config, Context, Engine, EventKind, Failure, FailureReport, MemoryStore, Notification,
    Notifier, NotifierFactory, NotifyError, Policy, Registry, SqliteStore, Store, Timestamp,
};
use mockall::predicate::{eq, function};

/// What the engine tells a notifier, as owned data so mockall can match on it
/// (`Context<'a>` borrows, which mockall's predicates cannot express).
#[mockall::automock]
trait Probe: Send + Sync {
    fn failure(&self, service: String, failures: Vec<Failure>, event: EventKind, notifier: String);
    fn success(&self, service: String, failures: Vec<Failure>, event: EventKind, notifier: String);
}

#[derive(Debug)]
struct Probed<P>(P);

#[async_trait::async_trait]
impl<P: Probe + std::fmt::Debug> Notifier for Probed<P> {
    fn kind(&self) -> &'static str {
        "probe"
    }
    async fn notify(&self, n: &Notification, ctx: &Context<'_>) -> Result<(), NotifyError> {
        let args = (
            n.service.clone(),
            n.failures.clone(),
            n.event,
            ctx.notifier.to_owned(),
        );
        match n.event {
            EventKind::Recovery => self.0.success(args.0, args.1, args.2, args.3),
            _ => self.0.failure(args.0, args.1, args.2, args.3),
        }
        Ok(())
    }
}

fn report(status: &str) -> FailureReport {
    FailureReport::new("exit-code")
        .exit_code("exited")
        .exit_status(status)
}

#[tokio::test]
async fn failure_is_called_once_with_the_history_then_success_once() {
    let mut pager = MockProbe::new();
    pager
        .expect_failure()
        .with(
            eq("backup.service".to_owned()),
            function(|f: &Vec<Failure>| {
                f.len() == 2
                    && f[0].exit_status.as_deref() == Some("1")
                    && f[1].exit_status.as_deref() == Some("2")
            }),
            eq(EventKind::Failure),
            eq("pager".to_owned()),
        )
        .times(1)
        .return_const(());
    pager
        .expect_success()
        .with(
            eq("backup.service".to_owned()),
            function(|f: &Vec<Failure>| f.len() == 3),
            eq(EventKind::Recovery),
            eq("pager".to_owned()),
        )
        .times(1)
        .return_const(());
    let engine = Engine::builder(Arc::new(MemoryStore::new()))
        .policy(Policy::default().threshold(2))
        .notifier("pager", Arc::new(Probed(pager)))
        .build();
    engine.failure("backup.service", report("1")).await.unwrap();
    engine.failure("backup.service", report("2")).await.unwrap();
    engine.failure("backup.service", report("3")).await.unwrap();
    engine.success("backup.service").await.unwrap();
}

#[tokio::test]
async fn a_failing_notifier_does_not_block_the_others_and_is_recorded() {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().unwrap());
    let broken = RecordingNotifier::failing(1);
    let ok = RecordingNotifier::new();
    let clock = ManualClock::new(Timestamp::from_millis(1_800_000_000_000));
    let engine = Engine::builder(Arc::clone(&store))
        .notifier("broken", broken.clone())
        .notifier("ok", ok.clone())
        .clock(clock.clone())
        .build();

    let r = engine.failure("db.service", report("1")).await.unwrap();
    assert!(!r.all_delivered());
    let failed: Vec<_> = r.deliveries.iter().filter(|d| d.error.is_some()).collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].notifier, "broken");
    assert!(failed[0].retryable);
    assert!(
        failed[0]
            .error
            .as_deref()
            .unwrap()
            .contains("simulated failure")
    );
    assert_eq!(ok.events(), [EventKind::Failure]);
    // the log keeps the error
    let log = store.notifications(Some("db.service"), 10).unwrap();
    let row = log.iter().find(|r| r.notifier == "broken").unwrap();
    assert_eq!(
        row.error.as_deref(),
        Some("recording delivery failed: simulated failure")
    );

    // the failed alert waits in the outbox for its retry: the next event sends no
    // duplicate, the flush after the backoff delivers it
    assert_eq!(row.status, alertcore::policy::Outcome::Pending);
    assert!(failed[0].next_attempt.is_some());
    let r = engine.failure("db.service", report("1")).await.unwrap();
    assert!(r.deliveries.is_empty(), "{:?}", r.decisions);
    assert!(engine.flush().await.unwrap().is_empty(), "not due yet");
    clock.advance(std::time::Duration::from_secs(60));
    let sent = engine.flush().await.unwrap();
    assert_eq!(sent.len(), 1);
    assert!(sent[0].error.is_none());
    assert_eq!(broken.events(), [EventKind::Failure, EventKind::Failure]);
    assert_eq!(ok.events(), [EventKind::Failure]);

    // both got the alert, so both get the recovery, in the same incident
    engine.success("db.service").await.unwrap();
    assert_eq!(broken.events().last(), Some(&EventKind::Recovery));
    assert_eq!(ok.events().last(), Some(&EventKind::Recovery));
    let calls = ok.calls();
    assert_eq!(calls[0].incident, calls[1].incident);
    assert!(calls[1].sequence > calls[0].sequence);
}

#[derive(Debug)]
struct Linked;

#[async_trait::async_trait]
impl Notifier for Linked {
    fn kind(&self) -> &'static str {
        "linked-test"
    }
    async fn notify(&self, _: &Notification, _: &Context<'_>) -> Result<(), NotifyError> {
        Ok(())
    }
}

alertcore::submit_notifier!(NotifierFactory {
    kind: "linked-test",
    build: |_| Ok(Arc::new(Linked) as Arc<dyn Notifier>),
});

#[test]
fn linked_types_are_found_by_name_from_a_config() {
    let config = Config::parse("[notifiers.x]\ntype = \"linked-test\"\n", "t.toml").unwrap();
    assert!(
        config.build_notifiers(&Registry::new()).is_err(),
        "not without with_linked()"
    );
    let built = config
        .build_notifiers(&Registry::new().with_linked())
        .unwrap();
    assert_eq!(built[0].notifier.kind(), "linked-test");
}

#[derive(Debug)]
struct Hangs;

#[async_trait::async_trait]
impl Notifier for Hangs {
    fn kind(&self) -> &'static str {
        "hangs"
    }
    async fn notify(&self, _: &Notification, _: &Context<'_>) -> Result<(), NotifyError> {
        std::future::pending().await
    }
}

#[tokio::test(start_paused = true)]
async fn a_hung_notifier_times_out_without_holding_up_the_others() {
    let ok = RecordingNotifier::new();
    let engine = Engine::builder(Arc::new(MemoryStore::new()))
        .notifier("hangs", Arc::new(Hangs))
        .notifier("ok", ok.clone())
        .delivery_timeout(std::time::Duration::from_secs(30))
        .build();
    let r = engine.failure("x.service", report("1")).await.unwrap();
    assert_eq!(ok.events(), [EventKind::Failure]);
    let hung = r.deliveries.iter().find(|d| d.notifier == "hangs").unwrap();
    assert_eq!(
        hung.error.as_deref(),
        Some("hangs delivery failed: no answer within 30s")
    );
    assert!(hung.retryable);
}

mod prediction {
    //! `alertctl test` runs `Engine::plan` on the stored state: it must predict exactly
    //! what the real path then decides, for any rules and any event sequence.

    use std::sync::Arc;
    use std::time::Duration;

    use alertcore::policy::Event;
    use alertcore::testkit::{ManualClock, RecordingNotifier};
    use alertcore::{Config, Engine, FailureReport, Severity, SqliteStore, Timestamp};
    use proptest::prelude::*;

    const NAMES: [&str; 3] = ["mail", "ops", "pager"];

    fn arb_rules() -> impl Strategy<Value = String> {
        let rule = (
            prop::sample::select(vec![
                "",
                "services = \"a*\"\n",
                "exclude_services = \"re:^b\"\n",
            ]),
            prop::sample::select(vec![
                "",
                "severity = \"critical\"\n",
                "events = [\"failure\", \"recovery\"]\n",
            ]),
            prop::sample::select(vec![
                "",
                "min_duration = \"10m\"\n",
                "max_duration = \"30m\"\n",
            ]),
            prop::sample::select(vec![
                "",
                "stop = true\n",
                "unmatched = true\n",
                "ignore = true\n",
            ]),
            prop::sample::select(vec![
                "",
                "repeat = \"15m\"\n",
                "threshold = 2\n",
                "recovery = false\n",
            ]),
            prop::sample::subsequence(NAMES.to_vec(), 1..=3),
        )
            .prop_map(|(a, b, c, d, e, n)| {
                let notify: Vec<String> = n.iter().map(|n| format!("{n:?}")).collect();
                format!(
                    "[[rules]]\n{a}{b}{c}{d}{e}notify = [{}]\n",
                    notify.join(", ")
                )
            });
        prop::collection::vec(rule, 0..4).prop_map(|r| r.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn test_predicts_the_real_path(
            rules in arb_rules(),
            fail_first in prop::collection::vec(0usize..3, 3),
            // (service a/b, 0 success / 1 warning / 2 critical / 3 tick, minutes later)
            events in prop::collection::vec((0u8..2, 0u8..4, 0u64..25), 1..25),
        ) {
            let mut text = String::from("timezone = \"UTC\"\n[policy]\nrepeat = \"20m\"\n");
            for n in NAMES {
                text.push_str(&format!("[notifiers.{n}]\ntype = \"console\"\n"));
            }
            text.push_str(&rules);
            let config = Config::parse(&text, "t.toml").unwrap();
            let notifiers = config.build_notifiers(&alertcore::Registry::new()).unwrap();
            let router = config.build_router(&notifiers).unwrap();
            let clock = ManualClock::new(Timestamp::from_millis(1_795_428_000_000));
            let mut builder = Engine::builder(Arc::new(SqliteStore::open_in_memory().unwrap()))
                .policy(config.policy.clone())
                .router(router)
                .clock(clock.clone())
                .host("h");
            for (n, fails) in NAMES.iter().zip(&fail_first) {
                builder = builder.notifier(*n, RecordingNotifier::failing(*fails));
            }
            let engine = builder.build();
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            for (svc, e, later) in events {
                clock.advance(Duration::from_secs(later * 60));
                let service = if svc == 0 { "a.service" } else { "b.service" };
                let event = match e {
                    0 => Event::Success,
                    1 => Event::Failure(Severity::Warning),
                    2 => Event::Failure(Severity::Critical),
                    _ => Event::Tick,
                };
                let predicted = engine.preview(service, event, None).unwrap();
                let report = rt.block_on(async {
                    match event {
                        Event::Success => engine.success(service).await.map(Some),
                        Event::Failure(s) => engine.failure(service, FailureReport::new("exit-code").severity(s)).await.map(Some),
                        // a tick reports only the services it sent something for
                        Event::Tick => engine.tick().await.map(|r| r.into_iter().find(|r| r.service == service)),
                    }
                }).unwrap();
                let sends = predicted.decisions.iter().any(|d| d.send_kind().is_some());
                let Some(report) = report else {
                    prop_assert!(!sends, "predicted sends, the tick sent nothing");
                    continue;
                };
                prop_assert_eq!(&predicted.decisions, &report.decisions);
                let predicted_rules = serde_json::to_value(&predicted.rules).unwrap();
                let real_rules = serde_json::to_value(&report.rules).unwrap();
                prop_assert_eq!(predicted_rules, real_rules);
            }
        }
    }
}

/// One call of [`Subjects`]: the notifier's name, the subject, the rule.
type Call = (String, String, Option<alertcore::RuleRef>);

/// Renders what a transport would: the subject by the format in its context. Records
/// every call, alert or recovery, and fails its first `fail` calls (retryably).
#[derive(Debug, Default)]
struct Subjects {
    fail: std::sync::atomic::AtomicUsize,
    calls: std::sync::Mutex<Vec<Call>>,
}

impl Subjects {
    fn failing(n: usize) -> Self {
        Self {
            fail: n.into(),
            ..Self::default()
        }
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The subjects of every call, in order.
    fn subjects(&self) -> Vec<String> {
        self.calls()
            .into_iter()
            .map(|(_, subject, _)| subject)
            .collect()
    }
}

#[async_trait::async_trait]
impl Notifier for Subjects {
    fn kind(&self) -> &'static str {
        "subjects"
    }
    async fn notify(&self, n: &Notification, ctx: &Context<'_>) -> Result<(), NotifyError> {
        let subject = ctx.format.subject(n, ctx)?;
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).push((
            ctx.notifier.to_owned(),
            subject,
            n.rule,
        ));
        let failing = self
            .fail
            .fetch_update(
                std::sync::atomic::Ordering::SeqCst,
                std::sync::atomic::Ordering::SeqCst,
                |n| n.checked_sub(1),
            )
            .is_ok();
        if failing {
            return Err(NotifyError::retryable("subjects", "down"));
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_rule_recipient_gets_its_own_format_and_rule_id() {
    let text = r#"
[formats.sms]
format = "short"

[notifiers.ops]
type = "console"
subject = "OPS {{ service }}"

[notifiers.pager]
type = "console"

[[rules]]
notify = ["ops", { to = "pager", format = "sms", show_rule_id = true }]
"#;
    let (engine, probe) = probed(text);
    engine.failure("web.service", report("1")).await.unwrap();
    let mut got = probe.calls();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    let rule = Some(alertcore::RuleRef { index: 1, line: 12 });
    assert_eq!(
        got[0],
        ("ops".to_owned(), "OPS web.service".to_owned(), rule)
    );
    let (name, subject, r) = &got[1];
    assert_eq!((name.as_str(), *r), ("pager", rule));
    assert!(subject.len() <= 160, "{subject}");
    assert!(subject.contains("web.service"), "{subject}");
    assert!(
        subject.contains("[r1]"),
        "short names the rule compactly: {subject}"
    );
}

/// An engine on host `h1` built from the config `text`, every notifier replaced by one
/// probe that records what each is sent.
fn probed(text: &str) -> (Engine, Arc<Subjects>) {
    let config = Config::parse(text, "t.toml").expect("the config parses");
    let mut notifiers = config
        .build_notifiers(&Registry::new())
        .expect("the notifiers build");
    let router = config.build_router(&notifiers).expect("the rules build");
    let probe = Arc::new(Subjects::default());
    for n in &mut notifiers {
        n.notifier = probe.clone();
    }
    let engine = Engine::builder(Arc::new(MemoryStore::new()))
        .configured(notifiers)
        .router(router)
        .host("h1")
        .build();
    (engine, probe)
}

#[test]
fn a_bad_recipient_template_is_a_config_error_naming_the_rule() {
    let text = "[notifiers.ops]\ntype = \"console\"\n\n[[rules]]\nnotify = [{ to = \"ops\", subject = \"{{ nope }\" }]\n";
    let config = Config::parse(text, "t.toml").unwrap();
    let notifiers = config.build_notifiers(&Registry::new()).unwrap();
    let e = config.build_router(&notifiers).unwrap_err().to_string();
    assert!(e.starts_with("t.toml:5:1: rule 1: `notify[0]`: "), "{e}");
}

/// A row whose payload cannot be read (written by something else, or damaged) is
/// given up with a clear error at the flush, not retried forever or sent half-known.
#[tokio::test]
async fn a_row_without_a_readable_payload_is_given_up_at_the_flush() {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().unwrap());
    store
        .apply("db.service", Timestamp::from_millis(1_000), &mut |_| {
            let mut change = alertcore::store::Change::new(alertcore::ServiceState::default());
            change.notifications = vec![
                alertcore::store::NewNotification::new("ops", EventKind::Failure, 1)
                    .payload("not json"),
            ];
            change
        })
        .unwrap();
    let ops = RecordingNotifier::new();
    let engine = Engine::builder(Arc::clone(&store))
        .notifier("ops", ops.clone())
        .clock(ManualClock::new(Timestamp::from_millis(2_000)))
        .build();
    let sent = engine.flush().await.unwrap();
    assert_eq!(sent.len(), 1);
    let error = sent[0].error.as_deref().unwrap_or_default();
    assert!(
        error.starts_with("the outbox row has no readable payload: ") && error.contains("line 1"),
        "{error}"
    );
    assert!(ops.calls().is_empty(), "nothing half-known was sent");
    let row = &store.notifications(Some("db.service"), 1).unwrap()[0];
    assert_eq!(row.status, alertcore::policy::Outcome::Failed);
    assert!(engine.flush().await.unwrap().is_empty(), "not retried");
}

#[tokio::test]
async fn flush_reminds_a_service_that_stays_failed_and_escalates_by_duration() {
    use std::time::Duration;
    let text = r#"
[notifiers.ops]
type = "console"

[notifiers.manager]
type = "console"

[[rules]]
notify = "ops"
repeat = "1h"

[[rules]]
min_duration = "30m"
notify = "manager"
"#;
    let config = Config::parse(text, "t.toml").unwrap();
    let mut notifiers = config.build_notifiers(&Registry::new()).unwrap();
    let router = config.build_router(&notifiers).unwrap();
    let (ops, manager) = (RecordingNotifier::new(), RecordingNotifier::new());
    for n in &mut notifiers {
        n.notifier = if n.name == "ops" {
            ops.clone()
        } else {
            manager.clone()
        };
    }
    let clock = ManualClock::new(Timestamp::from_millis(1_700_000_000_000));
    let engine = Engine::builder(Arc::new(SqliteStore::open_in_memory().unwrap()))
        .configured(notifiers)
        .router(router)
        .clock(clock.clone())
        .host("h1")
        .build();
    engine.failure("web.service", report("1")).await.unwrap();
    assert_eq!(ops.events(), [EventKind::Failure]);
    assert!(manager.events().is_empty());

    // nothing is due yet: a flush writes nothing and sends nothing
    clock.advance(Duration::from_secs(10 * 60));
    assert!(engine.flush().await.unwrap().is_empty());
    // the streak has lasted 30 minutes without another run: rule 2 matches now
    clock.advance(Duration::from_secs(25 * 60));
    let sent = engine.flush().await.unwrap();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(manager.events(), [EventKind::Failure]);
    // an hour after the alert, ops is reminded; manager (repeat off) is not
    clock.advance(Duration::from_secs(30 * 60));
    engine.flush().await.unwrap();
    assert_eq!(ops.events(), [EventKind::Failure, EventKind::Reminder]);
    assert_eq!(manager.events(), [EventKind::Failure]);
    let state = engine.store().state("web.service").unwrap().unwrap();
    assert_eq!(state.streak.unwrap().failures, 1, "a tick is not a failure");

    engine.success("web.service").await.unwrap();
    assert_eq!(
        ops.events(),
        [EventKind::Failure, EventKind::Reminder, EventKind::Recovery]
    );
    assert_eq!(manager.events(), [EventKind::Failure, EventKind::Recovery]);
    clock.advance(Duration::from_secs(3 * 3600));
    assert!(engine.flush().await.unwrap().is_empty());
}

/// A failure about another host (a check of a remote target): its alert, the streak's
/// reminders and its recovery all name that host, and rules route by it.
#[tokio::test]
async fn a_failure_about_another_host_keeps_that_host_for_its_whole_streak() {
    use std::time::Duration;
    let text = r#"
[policy]
repeat = "1h"

[notifiers.web-team]
type = "console"

[notifiers.everyone]
type = "console"

[[rules]]
hosts = "web*"
notify = "web-team"

[[rules]]
notify = "everyone"
"#;
    let config = Config::parse(text, "t.toml").unwrap();
    let mut notifiers = config.build_notifiers(&Registry::new()).unwrap();
    let router = config.build_router(&notifiers).unwrap();
    let (web, all) = (RecordingNotifier::new(), RecordingNotifier::new());
    for n in &mut notifiers {
        n.notifier = if n.name == "web-team" {
            web.clone()
        } else {
            all.clone()
        };
    }
    let clock = ManualClock::new(Timestamp::from_millis(1_700_000_000_000));
    let engine = Engine::builder(Arc::new(SqliteStore::open_in_memory().unwrap()))
        .configured(notifiers)
        .router(router)
        .clock(clock.clone())
        .host("monitor")
        .policy(config.policy.clone())
        .build();
    // the prediction (`alertctl test`, preview) routes by the report's host as the
    // real path does
    let about_web1 = report("1").host("web1");
    let predicted = engine
        .preview(
            "web1-https",
            alertcore::policy::Event::Failure(alertcore::Severity::Critical),
            Some(&about_web1),
        )
        .unwrap();
    let senders: Vec<&str> = predicted
        .decisions
        .iter()
        .filter(|d| d.send_kind().is_some())
        .map(|d| d.notifier.as_str())
        .collect();
    assert_eq!(senders, ["everyone", "web-team"]);
    engine.failure("web1-https", about_web1).await.unwrap();
    clock.advance(Duration::from_secs(3601));
    engine.flush().await.unwrap();
    engine.success("web1-https").await.unwrap();
    let hosts: Vec<(EventKind, String)> = web
        .calls()
        .iter()
        .map(|c| (c.event, c.notification.host.clone()))
        .collect();
    assert_eq!(
        hosts,
        [
            (EventKind::Failure, "web1".to_owned()),
            (EventKind::Reminder, "web1".to_owned()),
            (EventKind::Recovery, "web1".to_owned()),
        ]
    );
    assert_eq!(
        web.calls()[0].notification.failures[0].host,
        "web1",
        "the failure record names it too"
    );
    // a service of the engine's own host is not web-team's
    engine.failure("db.service", report("1")).await.unwrap();
    assert_eq!(web.calls().len(), 3);
    let last = all.calls().pop().unwrap();
    assert_eq!(
        (last.service.as_str(), last.notification.host.as_str()),
        ("db.service", "monitor")
    );
}

#[tokio::test]
async fn a_given_up_alert_goes_to_the_fallback_and_its_recovery_follows() {
    let text = r#"
[notifiers.primary]
type = "console"
max_attempts = 1
fallback = "backup"

[notifiers.backup]
type = "console"
"#;
    let config = Config::parse(text, "t.toml").unwrap();
    let mut notifiers = config.build_notifiers(&Registry::new()).unwrap();
    let (primary, backup) = (
        RecordingNotifier::failing(usize::MAX),
        RecordingNotifier::new(),
    );
    for n in &mut notifiers {
        n.notifier = if n.name == "primary" {
            primary.clone()
        } else {
            backup.clone()
        };
    }
    let engine = Engine::builder(Arc::new(SqliteStore::open_in_memory().unwrap()))
        .configured(notifiers)
        .host("h1")
        .build();
    let r = engine.failure("web.service", report("1")).await.unwrap();
    let handed: Vec<_> = r
        .deliveries
        .iter()
        .map(|d| {
            (
                d.notifier.as_str(),
                d.handed_to.as_deref(),
                d.error.is_some(),
            )
        })
        .collect();
    assert!(
        handed.contains(&("primary", Some("backup"), true)),
        "{handed:?}"
    );
    assert!(handed.contains(&("backup", None, false)), "{handed:?}");
    // backup got the alert once, saying whose it was; it also got its own
    let calls = backup.calls();
    let from: Vec<_> = calls.iter().map(|c| c.fallback_for.as_deref()).collect();
    assert_eq!(
        from.iter().filter(|f| **f == Some("primary")).count(),
        1,
        "{calls:?}"
    );
    assert_eq!(primary.events(), [EventKind::Failure]);
    assert!(
        engine
            .store()
            .outbox(
                &alertcore::store::OutboxFilter::new().status(alertcore::policy::Outcome::Pending)
            )
            .unwrap()
            .is_empty()
    );

    // the recovery goes where the alert was delivered: backup, not primary
    engine.success("web.service").await.unwrap();
    assert_eq!(primary.events(), [EventKind::Failure]);
    assert_eq!(backup.events().last(), Some(&EventKind::Recovery));
}

#[test]
fn a_fallback_must_name_another_notifier_and_never_come_back() {
    let registry = Registry::new();
    let cases = [
        (
            "[notifiers.a]\ntype = \"console\"\nfallback = \"nope\"\n",
            "3:1",
            "unknown notifier \"nope\"",
        ),
        (
            "[notifiers.a]\ntype = \"console\"\nfallback = \"a\"\n",
            "3:1",
            "a → a",
        ),
        (
            "[notifiers.a]\ntype = \"console\"\nfallback = \"b\"\n[notifiers.b]\ntype = \"console\"\nfallback = \"a\"\n",
            "3:1",
            "a → b → a",
        ),
    ];
    for (text, at, what) in cases {
        let e = Config::parse(text, "t.toml")
            .unwrap()
            .build_notifiers(&registry)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!("t.toml:{at}: notifier \"a\": fallback")),
            "{e}"
        );
        assert!(e.contains(what), "{e}");
    }
}

#[tokio::test]
async fn collapse_turns_an_unsent_failure_and_its_recovery_into_one_notice() {
    use std::time::Duration;
    let stores: [fn() -> Arc<dyn Store>; 2] = [
        || Arc::new(SqliteStore::open_in_memory().unwrap()),
        || Arc::new(MemoryStore::new()),
    ];
    for (collapse, store) in [true, false]
        .into_iter()
        .flat_map(|c| stores.map(|s| (c, s)))
    {
        let text = format!("[notifiers.pager]\ntype = \"console\"\ncollapse = {collapse}\n");
        let config = Config::parse(&text, "t.toml").unwrap();
        let mut notifiers = config.build_notifiers(&Registry::new()).unwrap();
        let pager = Arc::new(Subjects::failing(1));
        notifiers[0].notifier = pager.clone();
        let clock = ManualClock::new(Timestamp::from_millis(1_700_000_000_000));
        let engine = Engine::builder(store())
            .configured(notifiers)
            .clock(clock.clone())
            .host("h1")
            .build();
        // the failure alert fails and waits for its retry; then the service recovers
        engine.failure("web.service", report("1")).await.unwrap();
        clock.advance(Duration::from_secs(5));
        engine.success("web.service").await.unwrap();
        clock.advance(Duration::from_secs(60));
        engine.flush().await.unwrap();
        let subjects = pager.subjects();
        let sent: Vec<&str> = subjects[1..].iter().map(String::as_str).collect();
        if collapse {
            assert_eq!(
                sent,
                ["[h1] FAILED AND RECOVERED: web.service (after 1 failure)"],
                "{subjects:?}"
            );
        } else {
            assert_eq!(
                sent,
                [
                    "[h1] FAILED: web.service (exit-code, status=1)",
                    "[h1] RECOVERED: web.service (after 1 failure)"
                ],
                "{subjects:?}"
            );
        }
        let open = engine
            .store()
            .outbox(&alertcore::store::OutboxFilter::new())
            .unwrap();
        assert!(open.is_empty(), "{open:?}");
    }
}

/// The notification a retry sends is the value the first attempt sent: both come from
/// what the outbox row holds, so no fact of the event is lost between two processes.
#[tokio::test]
async fn a_retry_sends_the_notification_the_first_attempt_sent() {
    let text = "[notifiers.pager]\ntype = \"console\"\n\n[[rules]]\nnotify = [\"pager\"]\n";
    let config = Config::parse(text, "t.toml").unwrap();
    let notifiers = config.build_notifiers(&Registry::new()).unwrap();
    let router = config.build_router(&notifiers).unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().unwrap());
    let pager = RecordingNotifier::failing(1);
    let clock = ManualClock::new(Timestamp::from_millis(1_800_000_000_000));
    let engine = Engine::builder(store)
        .notifier("pager", pager.clone())
        .router(router)
        .host("web1")
        .clock(clock.clone())
        .build();
    engine.failure("db.service", report("1")).await.unwrap();
    clock.advance(std::time::Duration::from_secs(120));
    let sent = engine.flush().await.unwrap();
    assert_eq!(sent.len(), 1);
    assert!(sent[0].error.is_none() && sent[0].from_outbox, "{sent:?}");
    let calls = pager.calls();
    assert_eq!(calls.len(), 2);
    let first = &calls[0].notification;
    assert_eq!(first, &calls[1].notification);
    assert_eq!(first.service, "db.service");
    assert_eq!(first.host, "web1");
    assert_eq!(first.time, Timestamp::from_millis(1_800_000_000_000));
    assert_eq!(first.rule, Some(alertcore::RuleRef { index: 1, line: 4 }));
    assert_eq!(first.failures.len(), 1);
    assert_eq!(first.failures[0].exit_status.as_deref(), Some("1"));
    assert!(first.sequence > 0);
}

/// A notification its notifier has no room for now (here `max_per_minute = 1`) is left
/// in the outbox, and the report says so, and why.
#[tokio::test]
async fn a_notification_over_its_notifiers_limit_is_reported_as_waiting() {
    let text = "[notifiers.ops]\ntype = \"console\"\nmax_per_minute = 1\n";
    let config = Config::parse(text, "t.toml").unwrap();
    let engine = Engine::builder(Arc::new(MemoryStore::new()))
        .configured(config.build_notifiers(&Registry::new()).unwrap())
        .clock(ManualClock::new(Timestamp::from_millis(1_800_000_000_000)))
        .build();
    let first = engine.failure("a.service", report("1")).await.unwrap();
    assert_eq!(first.deliveries.len(), 1);
    assert!(first.waiting.is_empty(), "{:?}", first.waiting);
    let second = engine.failure("b.service", report("1")).await.unwrap();
    assert!(second.deliveries.is_empty(), "{:?}", second.deliveries);
    assert_eq!(second.waiting.len(), 1);
    let w = &second.waiting[0];
    assert!(w.at_limit);
    assert_eq!(
        w.to_string(),
        format!(
            "ops failure of b.service (#{}): waiting in the outbox (its notifier is at its limit)",
            w.id
        )
    );
}

/// A failure carrying the invocation id of one already in the streak is the same run
/// reported twice (an `OnFailure=` handler and a watcher, two evaluators of one
/// heartbeat): not counted, not sent. Two processes racing with it record it once.
#[tokio::test]
async fn a_failure_with_an_invocation_id_already_in_the_streak_is_recorded_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let pager = Arc::new(RecordingNotifier::default());
    let engine = |pager: Arc<RecordingNotifier>| {
        Engine::builder(Arc::new(SqliteStore::open(&path).unwrap()))
            .notifier("pager", pager)
            .build()
    };
    let (a, b) = (engine(Arc::clone(&pager)), engine(Arc::clone(&pager)));
    let run = |id: &str| report("1").invocation_id(id);
    // two "processes" (stores of their own on one file) report run-1 at once, 20 times
    let (ra, rb) = tokio::join!(
        async {
            let mut n = 0;
            for _ in 0..20 {
                n += usize::from(
                    !a.failure("db.service", run("run-1"))
                        .await
                        .unwrap()
                        .duplicate,
                );
            }
            n
        },
        async {
            let mut n = 0;
            for _ in 0..20 {
                n += usize::from(
                    !b.failure("db.service", run("run-1"))
                        .await
                        .unwrap()
                        .duplicate,
                );
            }
            n
        }
    );
    assert_eq!(ra + rb, 1, "exactly one of 40 reports of run-1 counted");
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.history("db.service").unwrap().len(), 1);
    assert_eq!(pager.calls().len(), 1);
    // another run of the streak counts
    let r = a.failure("db.service", run("run-2")).await.unwrap();
    assert!(!r.duplicate);
    assert_eq!(r.failures, 2);
    // a source's checkpoint rides with the event, also with a duplicate one (a journal
    // entry done again after a crash: its alert is not sent again, its cursor is saved)
    let cursor = |c: &str| {
        alertcore::SourceState::new(
            "journal-cursor",
            "cursor",
            c,
            alertcore::Timestamp::from_millis(1),
        )
    };
    let r = a
        .failure_saving("db.service", run("run-2"), vec![cursor("c2")])
        .await
        .unwrap();
    assert!(r.duplicate);
    assert_eq!(store.sources("journal-cursor").unwrap(), vec![cursor("c2")]);
    let r = a
        .failure_saving("db.service", run("run-3"), vec![cursor("c3")])
        .await
        .unwrap();
    assert!(!r.duplicate);
    assert_eq!(store.sources("journal-cursor").unwrap(), vec![cursor("c3")]);
    assert_eq!(pager.calls().len(), 1);
    // a new streak does not remember the old one's runs
    a.success_saving("db.service", vec![cursor("c4")])
        .await
        .unwrap();
    assert_eq!(store.sources("journal-cursor").unwrap(), vec![cursor("c4")]);
    let r = a.failure("db.service", run("run-1")).await.unwrap();
    assert!(!r.duplicate);
    assert_eq!(r.failures, 1);
    // and a failure without an id always counts
    assert!(
        !a.failure("db.service", report("1"))
            .await
            .unwrap()
            .duplicate
    );
    assert!(
        !a.failure("db.service", report("1"))
            .await
            .unwrap()
            .duplicate
    );
}

/// `on_success = "output"`: a run that passed goes to the notifiers of the rules that
/// name its service (the first rule naming a notifier is its rule; a matching `stop`
/// rule ends the search), once per run id; other services and a run already sent send
/// nothing; a failure's alert is not an output.
#[tokio::test]
async fn a_runs_output_goes_to_the_rules_that_ask_for_it_once() {
    let text = r#"
[notifiers.mail]
type = "console"
[notifiers.chat]
type = "console"
[notifiers.late]
type = "console"

[[rules]]
services = ["backup.service"]
on_success = "output"
notify = ["mail"]

[[rules]]
services = ["backup.*"]
on_success = "output"
notify = ["mail", "chat"]
stop = true

[[rules]]
on_success = "output"
notify = ["late"]
"#;
    let (engine, probe) = probed(text);
    let sent = engine
        .output("backup.service", Some("run1".into()))
        .await
        .unwrap();
    assert_eq!(sent.len(), 2, "{sent:?}");
    let mut got = probe.calls();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    let rule = |index, line| Some(alertcore::RuleRef { index, line });
    assert_eq!(
        got,
        [
            (
                "chat".to_owned(),
                "[h1] OUTPUT: backup.service (success)".to_owned(),
                rule(2, 14)
            ),
            (
                "mail".to_owned(),
                "[h1] OUTPUT: backup.service (success)".to_owned(),
                rule(1, 9)
            ),
        ]
    );
    // the same run again (the handler and the watch): nothing
    let again = engine.output("backup.service", Some("run1".into())).await;
    assert!(again.unwrap().is_empty());
    assert_eq!(probe.calls().len(), 2);
    // another service reaches the last rule only
    engine
        .output("web.service", Some("w1".into()))
        .await
        .unwrap();
    assert_eq!(probe.calls()[2].0, "late");
    // a failure alerts through the rules as ever, not as an output
    engine.failure("web.service", report("1")).await.unwrap();
    assert!(probe.subjects()[3].starts_with("[h1] FAILED: web.service"));
}
