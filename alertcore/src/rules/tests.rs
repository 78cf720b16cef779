use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::config::Config;
use crate::policy::Outcome;

const NOTIFIERS: &[&str] = &["fallback", "mail", "ops", "pager"];
const MIN: i64 = 60_000;
/// Mon 2026-11-23 10:00 UTC.
const MONDAY_10: i64 = 1_795_428_000_000;

/// `text` with console notifiers named [`NOTIFIERS`] appended.
fn build(text: &str, origin: &str) -> Result<Router, crate::ConfigError> {
    let mut text = text.to_owned();
    for n in NOTIFIERS {
        text.push_str(&format!("\n[notifiers.{n}]\ntype = \"console\"\n"));
    }
    let config = Config::parse(&text, origin)?;
    let notifiers = config.build_notifiers(&crate::Registry::new())?;
    config.build_router(&notifiers)
}

fn router(rules: &str) -> Router {
    build(&format!("timezone = \"UTC\"\n{rules}"), "t.toml").unwrap()
}

fn error(rules: &str) -> String {
    build(rules, "alertcore.toml").unwrap_err().to_string()
}

struct Run {
    router: Router,
    policy: Policy,
    state: ServiceState,
    service: String,
    host: String,
}

impl Run {
    fn new(rules: &str) -> Self {
        Self {
            router: router(rules),
            policy: Policy::default(),
            state: ServiceState::default(),
            service: "web.service".into(),
            host: "h1".into(),
        }
    }

    fn event(&mut self, event: Event, at_min: i64) -> Plan {
        let at = Timestamp::from_millis(MONDAY_10 + at_min * MIN);
        let subject = Subject::new(&self.service, &self.host, None, event, at, &self.state);
        let plan = self
            .router
            .plan(&self.state, &subject, NOTIFIERS, &self.policy);
        // every alert is delivered at once
        let mut next = plan.next.clone();
        if let Some(s) = next.streak.as_mut() {
            for r in s.recipients.values_mut() {
                r.delivered = true;
                r.outcome = Outcome::Delivered;
            }
        }
        self.state = next;
        plan
    }

    fn fail(&mut self, at_min: i64) -> Vec<String> {
        sent(&self.event(Event::Failure(Severity::Critical), at_min))
    }
}

/// `notifier:kind` for each notification the plan sends.
fn sent(plan: &Plan) -> Vec<String> {
    plan.decisions
        .iter()
        .filter_map(|d| d.send_kind().map(|k| format!("{}:{k}", d.notifier)))
        .collect()
}

fn reason(plan: &Plan, notifier: &str) -> String {
    let d = plan
        .decisions
        .iter()
        .find(|d| d.notifier == notifier)
        .unwrap();
    d.action.to_string()
}

#[test]
fn matchers_table() {
    // (rule body, service, host, severity, minutes into the streak, sends to ops?)
    let cases: &[(&str, &str, &str, Severity, i64, bool)] = &[
        (
            "services = \"web*\"",
            "web.service",
            "h1",
            Severity::Critical,
            0,
            true,
        ),
        (
            "services = \"db*\"",
            "web.service",
            "h1",
            Severity::Critical,
            0,
            false,
        ),
        (
            "services = [\"db*\", \"w?b.*\"]",
            "web.service",
            "h1",
            Severity::Critical,
            0,
            true,
        ),
        (
            "services = \"re:^w.b\\\\.\"",
            "web.service",
            "h1",
            Severity::Critical,
            0,
            true,
        ),
        (
            "services = \"re:^db\"",
            "web.service",
            "h1",
            Severity::Critical,
            0,
            false,
        ),
        (
            "exclude_services = \"web.*\"",
            "web.service",
            "h1",
            Severity::Critical,
            0,
            false,
        ),
        (
            "exclude_services = \"db.*\"",
            "web.service",
            "h1",
            Severity::Critical,
            0,
            true,
        ),
        (
            "hosts = \"h*\"",
            "web.service",
            "h1",
            Severity::Critical,
            0,
            true,
        ),
        (
            "hosts = \"db*\"",
            "web.service",
            "h1",
            Severity::Critical,
            0,
            false,
        ),
        (
            "exclude_hosts = \"re:1$\"",
            "web.service",
            "h1",
            Severity::Critical,
            0,
            false,
        ),
        (
            "severity = \"critical\"",
            "web.service",
            "h1",
            Severity::Critical,
            0,
            true,
        ),
        (
            "severity = \"critical\"",
            "web.service",
            "h1",
            Severity::Warning,
            0,
            false,
        ),
        (
            "severity = [\"warning\", \"critical\"]",
            "web.service",
            "h1",
            Severity::Warning,
            0,
            true,
        ),
        (
            "events = \"recovery\"",
            "web.service",
            "h1",
            Severity::Critical,
            0,
            false,
        ),
        (
            "events = [\"failure\"]",
            "web.service",
            "h1",
            Severity::Critical,
            0,
            true,
        ),
        (
            "kind = \"service\"",
            "web.service",
            "h1",
            Severity::Critical,
            0,
            true,
        ),
        (
            "kind = \"node\"",
            "web.service",
            "h1",
            Severity::Critical,
            0,
            false,
        ),
        (
            "time = \"Mon-Fri 08:00-18:00\"",
            "web.service",
            "h1",
            Severity::Critical,
            0,
            true,
        ),
        (
            "time = \"Sat,Sun\"",
            "web.service",
            "h1",
            Severity::Critical,
            0,
            false,
        ),
        (
            "time = [\"Sat,Sun\", \"Mon 09:00-11:00\"]",
            "web.service",
            "h1",
            Severity::Critical,
            0,
            true,
        ),
        (
            "exclude_time = \"Mon 09:00-11:00\"",
            "web.service",
            "h1",
            Severity::Critical,
            0,
            false,
        ),
        (
            "exclude_time = \"Tue\"",
            "web.service",
            "h1",
            Severity::Critical,
            0,
            true,
        ),
        (
            "min_duration = \"30m\"",
            "web.service",
            "h1",
            Severity::Critical,
            10,
            false,
        ),
        (
            "min_duration = \"30m\"",
            "web.service",
            "h1",
            Severity::Critical,
            30,
            true,
        ),
        (
            "max_duration = \"30m\"",
            "web.service",
            "h1",
            Severity::Critical,
            10,
            true,
        ),
        (
            "max_duration = \"30m\"",
            "web.service",
            "h1",
            Severity::Critical,
            45,
            false,
        ),
    ];
    for (body, service, host, sev, lasted, expect) in cases {
        let r = router(&format!("[[rules]]\n{body}\nnotify = [\"ops\"]\n"));
        let mut state = ServiceState::default();
        let start = Timestamp::from_millis(MONDAY_10 - lasted * MIN);
        // a streak that started `lasted` minutes ago
        let first = Subject::new(service, host, None, Event::Failure(*sev), start, &state);
        state = r.plan(&state, &first, &[], &Policy::default()).next;
        let now = Timestamp::from_millis(MONDAY_10);
        let subject = Subject::new(service, host, None, Event::Failure(*sev), now, &state);
        let plan = r.plan(&state, &subject, NOTIFIERS, &Policy::default());
        let got = sent(&plan).iter().any(|s| s.starts_with("ops:"));
        assert_eq!(got, *expect, "{body}: {}", plan.explain(&r));
        if !expect {
            assert!(
                matches!(plan.rules[0].outcome, RuleOutcome::NoMatch { .. }),
                "{body}: {:?}",
                plan.rules[0]
            );
            assert_eq!(
                reason(&plan, "ops"),
                "suppressed: no rule sends this event to it"
            );
        }
    }
}

#[test]
fn no_match_names_the_matcher() {
    let mut run = Run::new(
        "[[rules]]\nservices = \"db*\"\nnotify = \"ops\"\n[[rules]]\ntime = \"Sat\"\nnotify = \"ops\"\n",
    );
    let plan = run.event(Event::Failure(Severity::Critical), 0);
    let text = plan.explain(&run.router);
    assert!(
        text.contains(
            "rule 1 (line 2): no match: service \"web.service\" matches none of services [db*]"
        ),
        "{text}"
    );
    assert!(
        text.contains("rule 2 (line 5): no match: Mon 2026-11-23 10:00 UTC is outside time [Sat"),
        "{text}"
    );
}

#[test]
fn repeat_is_per_service_and_recipient() {
    let mut run = Run::new(
        "[[rules]]\nnotify = [{ to = \"pager\", repeat = \"30m\" }, { to = \"mail\", repeat = \"4h\" }]\n",
    );
    assert_eq!(run.fail(0), ["mail:failure", "pager:failure"]);
    assert!(run.fail(10).is_empty());
    assert_eq!(run.fail(30), ["pager:reminder"]);
    assert_eq!(run.fail(60), ["pager:reminder"]);
    assert_eq!(run.fail(240), ["mail:reminder", "pager:reminder"]);
    // another service has its own timers
    run.service = "db.service".into();
    let before = std::mem::take(&mut run.state);
    assert_eq!(run.fail(245), ["mail:failure", "pager:failure"]);
    run.state = before;
    run.service = "web.service".into();
    assert!(run.fail(250).is_empty());
}

#[test]
fn escalation_resets_repeat_timers_once_per_streak() {
    let mut run = Run::new("[[rules]]\nrepeat = \"1h\"\nnotify = [\"ops\", \"pager\"]\n");
    let warn = Event::Failure(Severity::Warning);
    assert_eq!(sent(&run.event(warn, 0)), ["ops:failure", "pager:failure"]);
    assert!(sent(&run.event(warn, 5)).is_empty());
    // warning → critical inside the repeat interval: escalation goes out now
    assert_eq!(run.fail(10), ["ops:escalation", "pager:escalation"]);
    // and the timers restart from there
    assert!(run.fail(60).is_empty());
    assert_eq!(run.fail(70), ["ops:reminder", "pager:reminder"]);
    // flapping back and up again follows repeat only
    assert!(sent(&run.event(warn, 75)).is_empty());
    assert!(run.fail(80).is_empty());
}

#[test]
fn recovery_goes_back_through_the_alerting_rule() {
    let mut run = Run::new(concat!(
        "[[rules]]\nseverity = \"critical\"\nnotify = [{ to = \"pager\", recovery = false }, \"ops\"]\n",
        "[[rules]]\nnotify = [\"mail\"]\n",
        "[[rules]]\nmin_duration = \"30m\"\nnotify = [\"fallback\"]\n",
    ));
    assert_eq!(
        run.fail(0),
        ["mail:failure", "ops:failure", "pager:failure"]
    );
    let plan = run.event(Event::Success, 5);
    assert_eq!(sent(&plan), ["mail:recovery", "ops:recovery"]);
    assert_eq!(
        reason(&plan, "pager"),
        "suppressed: recovery notifications are off"
    );
    // fallback never got a failure: no recovery
    assert_eq!(
        reason(&plan, "fallback"),
        "suppressed: no failure alert was delivered in this streak"
    );
    let ops = plan.decisions.iter().find(|d| d.notifier == "ops").unwrap();
    assert_eq!(ops.rule, Some(1));
    let mail = plan
        .decisions
        .iter()
        .find(|d| d.notifier == "mail")
        .unwrap();
    assert_eq!(mail.rule, Some(2));
}

#[test]
fn recovery_respects_the_rules_events_and_ignore() {
    let mut run = Run::new(concat!(
        "[[rules]]\nevents = [\"failure\"]\nnotify = [\"pager\"]\n",
        "[[rules]]\nnotify = [\"ops\", \"mail\"]\n",
        "[[rules]]\nevents = \"recovery\"\nignore = true\nnotify = [\"mail\"]\n",
    ));
    assert_eq!(
        run.fail(0),
        ["mail:failure", "ops:failure", "pager:failure"]
    );
    let plan = run.event(Event::Success, 5);
    assert_eq!(sent(&plan), ["ops:recovery"]);
    assert_eq!(
        reason(&plan, "pager"),
        "suppressed: its rule sends no recovery notifications"
    );
    assert_eq!(reason(&plan, "mail"), "suppressed: ignored by rule 3");
}

#[test]
fn stop_ends_evaluation() {
    let mut run = Run::new(concat!(
        "[[rules]]\nservices = \"web*\"\nnotify = \"ops\"\nstop = true\n",
        "[[rules]]\nnotify = \"mail\"\n",
    ));
    let plan = run.event(Event::Failure(Severity::Critical), 0);
    assert_eq!(sent(&plan), ["ops:failure"]);
    assert_eq!(plan.rules[1].outcome, RuleOutcome::Stopped { by: 1 });
    assert!(
        plan.explain(&run.router)
            .contains("not evaluated: stopped by rule 1")
    );
}

#[test]
fn first_rule_to_route_a_notifier_wins() {
    let mut run = Run::new(concat!(
        "[[rules]]\nnotify = [{ to = \"ops\", threshold = 3 }]\n",
        "[[rules]]\nnotify = [\"ops\", \"mail\"]\n",
    ));
    let plan = run.event(Event::Failure(Severity::Critical), 0);
    assert_eq!(sent(&plan), ["mail:failure"]);
    assert_eq!(
        plan.rules[1].notes,
        [("ops".to_owned(), "already routed by rule 1".to_owned())]
    );
    assert!(run.fail(1).is_empty());
    assert_eq!(run.fail(2), ["ops:failure"]);
}

#[test]
fn ignore_drops_for_its_notifiers_or_everyone() {
    let mut run = Run::new(concat!(
        "[[rules]]\nservices = \"web*\"\nignore = true\nnotify = \"pager\"\n",
        "[[rules]]\nnotify = [\"pager\", \"ops\"]\n",
    ));
    let plan = run.event(Event::Failure(Severity::Critical), 0);
    assert_eq!(sent(&plan), ["ops:failure"]);
    assert_eq!(reason(&plan, "pager"), "suppressed: ignored by rule 1");

    let mut run = Run::new(concat!(
        "[[rules]]\nservices = \"web*\"\nignore = true\n",
        "[[rules]]\nnotify = [\"pager\", \"ops\"]\n",
    ));
    let plan = run.event(Event::Failure(Severity::Critical), 0);
    assert!(sent(&plan).is_empty());
    assert_eq!(reason(&plan, "ops"), "suppressed: ignored by rule 1");
    assert_eq!(plan.rules[1].outcome, RuleOutcome::Stopped { by: 1 });
}

#[test]
fn unmatched_applies_only_when_nothing_else_was_sent() {
    let rules = concat!(
        "[[rules]]\nunmatched = true\nnotify = \"fallback\"\n",
        "[[rules]]\nservices = \"db*\"\nrepeat = \"1h\"\nnotify = \"ops\"\n",
    );
    // web: no other rule matches → the fallback gets it
    let mut run = Run::new(rules);
    assert_eq!(run.fail(0), ["fallback:failure"]);
    // db: ops gets it, the fallback does not — not even while ops is inside its
    // repeat interval (xymon: held back by repeat counts as received)
    let mut run = Run::new(rules);
    run.service = "db.service".into();
    assert_eq!(run.fail(0), ["ops:failure"]);
    let plan = run.event(Event::Failure(Severity::Critical), 10);
    assert!(sent(&plan).is_empty(), "{}", plan.explain(&run.router));
    assert_eq!(plan.rules[0].outcome, RuleOutcome::NotNeeded);
    assert_eq!(run.fail(60), ["ops:reminder"]);
}

#[test]
fn unmatched_applies_while_the_others_are_below_threshold() {
    let mut run = Run::new(concat!(
        "[[rules]]\nthreshold = 3\nnotify = \"ops\"\n",
        "[[rules]]\nunmatched = true\nnotify = \"fallback\"\n",
    ));
    assert_eq!(run.fail(0), ["fallback:failure"]);
    assert!(
        run.fail(1).is_empty(),
        "fallback already alerted: counts as received"
    );
    assert_eq!(run.fail(2), ["ops:failure"]);
}

#[test]
fn rule_overrides_layer_on_the_global_policy() {
    let r = router(
        "[[rules]]\nthreshold = 2\nrepeat = \"1h\"\nrecovery = false\nnotify = [\"ops\", { to = \"pager\", repeat = \"5m\", recovery = true }]\n",
    );
    let global = Policy::default().min_duration(Duration::from_secs(7));
    let rule = &r.rules()[0];
    let ops = rule.policy_for(&rule.notify[0], &global);
    assert_eq!(
        (ops.threshold, ops.repeat, ops.recovery),
        (2, Duration::from_secs(3600), false)
    );
    assert_eq!(ops.min_duration, Duration::from_secs(7));
    let pager = rule.policy_for(&rule.notify[1], &global);
    assert_eq!(
        (pager.threshold, pager.repeat, pager.recovery),
        (2, Duration::from_secs(300), true)
    );
}

#[test]
fn config_errors_name_the_rule() {
    let text = "[policy]\nthreshold = 1\n\n[[rules]]\nnotify = \"ops\"\n\n[[rules]]\nservices = \"x\"\nnotify = [\"ops\", \"pagr\"]\n";
    assert_eq!(
        error(text),
        "alertcore.toml:9:1: rule 2: unknown notifier \"pagr\" (configured: fallback, mail, ops, pager)"
    );
    let e = error("[[rules]]\nservices = \"re:(\"\nnotify = \"ops\"\n");
    assert!(e.starts_with("alertcore.toml:2:1: rule 1: "), "{e}");
    let e = error("[[rules]]\nservices = \"x\"\n");
    assert!(
        e.starts_with("alertcore.toml:1:1: rule 1: sends to nobody"),
        "{e}"
    );
    let e = error("[[rules]]\nnotify = \"ops\"\nrepaet = \"1h\"\n");
    assert!(
        e.starts_with("alertcore.toml:3:1: rule 1: unknown field `repaet`"),
        "{e}"
    );
    let e = error("[[rules]]\nnotify = [{ to = \"ops\", repeat = \"soon\" }]\n");
    assert!(
        e.starts_with("alertcore.toml:2:1: rule 1: `notify[0]`: "),
        "{e}"
    );
    let e = error("[[rules]]\nnotify = \"ops\"\ntime = \"Mon-Fri 25:00-26:00\"\n");
    assert!(e.starts_with("alertcore.toml:3:1: rule 1: "), "{e}");
    let e = error("[[rules]]\nnotify = \"ops\"\nmin_duration = \"1h\"\nmax_duration = \"30m\"\n");
    assert!(
        e.starts_with("alertcore.toml:4:1: rule 1: max_duration"),
        "{e}"
    );
    let e = error("[[rules]]\nnotify = \"ops\"\nseverity = \"fatal\"\n");
    assert!(e.starts_with("alertcore.toml:3:1: rule 1: "), "{e}");
    let e = error("timezone = \"Mars/Olympus\"\n");
    assert!(e.starts_with("alertcore.toml:1:1: timezone: "), "{e}");
    let e = error("[[rules]]\nnotify = \"ops\"\ntrigger = \"manual\"\n");
    assert!(
        e.starts_with("alertcore.toml:3:1: rule 1: `trigger`: unknown variant `manual`"),
        "{e}"
    );
    let e = error("[[rules]]\nnotify = \"ops\"\non_success = \"mail\"\n");
    assert!(
        e.starts_with("alertcore.toml:3:1: rule 1: `on_success`: unknown variant `mail`"),
        "{e}"
    );
    let e = error("[[rules]]\nignore = true\non_success = \"output\"\n");
    assert!(
        e.starts_with("alertcore.toml:3:1: rule 1: `on_success = \"output\"` sends to the rule's `notify`, which is empty"),
        "{e}"
    );
}

#[test]
fn without_rules_every_notifier_gets_every_event() {
    let mut run = Run::new("");
    assert_eq!(
        run.fail(0),
        [
            "fallback:failure",
            "mail:failure",
            "ops:failure",
            "pager:failure"
        ]
    );
    let plan = run.event(Event::Success, 1);
    assert_eq!(sent(&plan).len(), 4);
    assert!(plan.explain(&run.router).starts_with("no [[rules]]"));
}

fn arb_rules() -> impl Strategy<Value = String> {
    let rule = (
        prop::sample::select(vec!["", "services = \"web*\"\n", "services = \"re:^db\"\n"]),
        prop::sample::select(vec![
            "",
            "severity = \"critical\"\n",
            "events = [\"failure\", \"recovery\"]\n",
        ]),
        prop::sample::select(vec![
            "",
            "min_duration = \"10m\"\n",
            "max_duration = \"20m\"\n",
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
        prop::sample::subsequence(NOTIFIERS.to_vec(), 1..=3),
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

fn arb_events() -> impl Strategy<Value = Vec<(u8, i64, bool)>> {
    // (0 success / 1 warning / 2 critical, minutes later, delivered?)
    prop::collection::vec((0u8..3, 0i64..40, any::<bool>()), 1..30)
}

proptest! {
    #[test]
    fn never_a_recovery_without_a_delivered_failure(
        rules in arb_rules(),
        services in prop::sample::subsequence(vec!["web.service", "db.service"], 1..=2),
        events in arb_events(),
    ) {
        let r = router(&rules);
        let policy = Policy::default();
        for service in services {
            let mut state = ServiceState::default();
            let mut at = MONDAY_10;
            for (e, later, delivered) in &events {
                at += later * MIN;
                let event = match e {
                    0 => Event::Success,
                    1 => Event::Failure(Severity::Warning),
                    _ => Event::Failure(Severity::Critical),
                };
                let now = Timestamp::from_millis(at);
                let alerted: Vec<String> = state.streak.as_ref().map(|s| {
                    s.recipients.iter().filter(|(_, r)| r.delivered).map(|(n, _)| n.clone()).collect()
                }).unwrap_or_default();
                let subject = Subject::new(service, "h1", None, event, now, &state);
                let plan = r.plan(&state, &subject, NOTIFIERS, &policy);
                for d in &plan.decisions {
                    if d.send_kind() == Some(EventKind::Recovery) {
                        prop_assert!(alerted.contains(&d.notifier), "{} got a recovery unalerted", d.notifier);
                    }
                }
                prop_assert_eq!(plan.decisions.len(), NOTIFIERS.len());
                let mut next = plan.next;
                let outcome = if *delivered { Outcome::Delivered } else { Outcome::Failed };
                for d in plan.decisions.iter().filter(|d| d.send_kind().is_some()) {
                    let sent = next.streak.as_ref().and_then(|s| {
                        s.recipients.get(&d.notifier).map(|r| (s.id, r.last_alert))
                    });
                    if let Some((id, at)) = sent {
                        next.record_outcome(id, &d.notifier, at, outcome);
                    }
                }
                state = next;
            }
        }
    }
}

/// `trigger`: a failure started by a timer reaches the rule, one started otherwise or
/// of unknown origin does not; the streak keeps the trigger, so its reminders are
/// routed as its alert was.
#[test]
fn trigger_matches_what_started_the_run_and_reminders_keep_it() {
    let mut run = Run::new(
        "[[rules]]\ntrigger = \"timer\"\nnotify = \"ops\"\nrepeat = \"10m\"\n\
         [[rules]]\nnotify = \"mail\"\n",
    );
    let fail = |run: &mut Run, trigger: Option<Trigger>, at: i64| {
        let at = Timestamp::from_millis(MONDAY_10 + at * MIN);
        let event = Event::Failure(Severity::Critical);
        let subject =
            Subject::new(&run.service, &run.host, None, event, at, &run.state).trigger(trigger);
        let plan = run
            .router
            .plan(&run.state, &subject, NOTIFIERS, &run.policy);
        run.state = plan.next.clone();
        for r in run
            .state
            .streak
            .iter_mut()
            .flat_map(|s| s.recipients.values_mut())
        {
            r.delivered = true;
            r.outcome = Outcome::Delivered;
        }
        plan
    };
    let plan = fail(&mut run, Some(Trigger::Other), 0);
    assert_eq!(sent(&plan), ["mail:failure"]);
    assert_eq!(
        plan.rules[0].outcome,
        RuleOutcome::NoMatch {
            why: "trigger other not in trigger [timer]".into()
        }
    );
    run.state = ServiceState::default();
    assert_eq!(sent(&fail(&mut run, None, 1)), ["mail:failure"]);
    run.state = ServiceState::default();
    assert_eq!(
        sent(&fail(&mut run, Some(Trigger::Timer), 2)),
        ["mail:failure", "ops:failure"]
    );
    assert_eq!(
        run.state.streak.as_ref().and_then(|s| s.trigger),
        Some(Trigger::Timer)
    );
    // a tick 15 minutes on: the reminder to ops goes out through the timer rule
    let plan = run.event(Event::Tick, 17);
    assert!(sent(&plan).contains(&"ops:reminder".to_owned()), "{plan:?}");
}

/// `on_success = "output"` rules match a run that passed by services, hosts and time
/// windows, as any rule does; a `stop` rule ends the search.
#[test]
fn output_targets_follow_the_rules_matchers() {
    let r = router(
        "[[rules]]\nservices = \"backup*\"\non_success = \"output\"\nnotify = \"ops\"\n\
         time = \"Mon-Fri 08:00-18:00\"\n\
         [[rules]]\nservices = \"backup*\"\nexclude_hosts = \"h2\"\non_success = \"output\"\n\
         notify = [\"mail\", \"ops\"]\nstop = true\n\
         [[rules]]\non_success = \"output\"\nnotify = \"pager\"\n",
    );
    let monday = Timestamp::from_millis(MONDAY_10);
    let saturday = Timestamp::from_millis(MONDAY_10 + 5 * 24 * 60 * MIN);
    let names = |t: Vec<(String, usize)>| -> Vec<String> {
        t.into_iter().map(|(n, i)| format!("{n}:{i}")).collect()
    };
    assert_eq!(
        names(r.output_targets("backup.service", "h1", monday)),
        ["ops:1", "mail:2"]
    );
    assert_eq!(
        names(r.output_targets("backup.service", "h1", saturday)),
        ["mail:2", "ops:2"],
        "outside rule 1's time window"
    );
    assert_eq!(
        names(r.output_targets("backup.service", "h2", saturday)),
        ["pager:3"]
    );
    assert_eq!(
        names(r.output_targets("web.service", "h1", monday)),
        ["pager:3"]
    );
}
