use std::time::Duration;

use proptest::prelude::*;

use super::*;

const MIN: i64 = 60_000;

fn at(minutes: i64) -> Timestamp {
    Timestamp::from_millis(1_700_000_000_000 + minutes * MIN)
}

/// Runs `step` for one target named "ops" and marks every send delivered.
fn run(state: &mut ServiceState, event: Event, now: Timestamp, p: &Policy) -> Action {
    let step = step(state, event, now, &[Target::new("ops", p)]);
    *state = step.next;
    let d = step.decisions.into_iter().next().expect("one decision");
    if let (Some(kind), Some(s)) = (d.send_kind(), state.streak.as_ref())
        && kind.is_failure()
    {
        let id = s.id;
        state.record_outcome(id, "ops", now, Outcome::Delivered);
    }
    d.action
}

fn sent(kind: EventKind) -> Action {
    Action::Send { kind }
}

const FAIL: Event = Event::Failure(Severity::Critical);
const WARN: Event = Event::Failure(Severity::Warning);

#[test]
fn threshold_counts_consecutive_failures() {
    let p = Policy::default().threshold(3);
    let mut s = ServiceState::default();
    assert!(matches!(
        run(&mut s, FAIL, at(0), &p),
        Action::Suppress {
            reason: Reason::BelowThreshold {
                failures: 1,
                threshold: 3
            }
        }
    ));
    run(&mut s, FAIL, at(1), &p);
    assert_eq!(run(&mut s, FAIL, at(2), &p), sent(EventKind::Failure));
    assert!(matches!(
        run(&mut s, FAIL, at(3), &p),
        Action::Suppress {
            reason: Reason::AlreadyAlerted { .. }
        }
    ));
}

#[test]
fn success_below_threshold_resets_and_sends_no_recovery() {
    let p = Policy::default().threshold(2);
    let mut s = ServiceState::default();
    run(&mut s, FAIL, at(0), &p);
    assert_eq!(
        run(&mut s, Event::Success, at(1), &p),
        Action::Suppress {
            reason: Reason::NotAlerted
        }
    );
    assert!(s.streak.is_none());
    // the count starts over
    assert!(matches!(
        run(&mut s, FAIL, at(2), &p),
        Action::Suppress {
            reason: Reason::BelowThreshold { failures: 1, .. }
        }
    ));
}

#[test]
fn min_duration_waits_for_the_streak_to_last() {
    let p = Policy::default().min_duration(Duration::from_secs(600));
    let mut s = ServiceState::default();
    assert!(matches!(
        run(&mut s, FAIL, at(0), &p),
        Action::Suppress {
            reason: Reason::BelowMinDuration { .. }
        }
    ));
    assert!(matches!(
        run(&mut s, FAIL, at(9), &p),
        Action::Suppress { .. }
    ));
    assert_eq!(run(&mut s, FAIL, at(10), &p), sent(EventKind::Failure));
}

#[test]
fn repeat_sends_reminders_once_per_interval() {
    let p = Policy::default().repeat(Duration::from_secs(4 * 3600));
    let mut s = ServiceState::default();
    assert_eq!(run(&mut s, FAIL, at(0), &p), sent(EventKind::Failure));
    assert_eq!(
        run(&mut s, FAIL, at(60), &p),
        Action::Suppress {
            reason: Reason::InsideRepeatInterval { until: at(240) }
        }
    );
    assert_eq!(run(&mut s, FAIL, at(240), &p), sent(EventKind::Reminder));
    assert!(matches!(
        run(&mut s, FAIL, at(241), &p),
        Action::Suppress { .. }
    ));
}

#[test]
fn first_escalation_overrides_repeat_once() {
    let p = Policy::default().repeat(Duration::from_secs(3600));
    let mut s = ServiceState::default();
    assert_eq!(run(&mut s, WARN, at(0), &p), sent(EventKind::Failure));
    assert_eq!(run(&mut s, FAIL, at(1), &p), sent(EventKind::Escalation));
    // flapping afterwards follows repeat
    assert!(matches!(
        run(&mut s, WARN, at(2), &p),
        Action::Suppress { .. }
    ));
    assert!(matches!(
        run(&mut s, FAIL, at(3), &p),
        Action::Suppress { .. }
    ));
    assert_eq!(run(&mut s, FAIL, at(61), &p), sent(EventKind::Reminder));
}

#[test]
fn escalation_still_respects_threshold() {
    let p = Policy::default().threshold(3);
    let mut s = ServiceState::default();
    run(&mut s, WARN, at(0), &p);
    assert!(matches!(
        run(&mut s, FAIL, at(1), &p),
        Action::Suppress {
            reason: Reason::BelowThreshold { .. }
        }
    ));
    assert_eq!(run(&mut s, FAIL, at(2), &p), sent(EventKind::Failure));
}

#[test]
fn recovery_follows_a_delivered_alert_then_clears() {
    let p = Policy::default();
    let mut s = ServiceState::default();
    run(&mut s, FAIL, at(0), &p);
    assert_eq!(
        run(&mut s, Event::Success, at(5), &p),
        sent(EventKind::Recovery)
    );
    assert!(s.streak.is_none());
    assert_eq!(
        run(&mut s, Event::Success, at(6), &p),
        Action::Suppress {
            reason: Reason::NotFailing
        }
    );
    // a new streak alerts again
    assert_eq!(run(&mut s, FAIL, at(7), &p), sent(EventKind::Failure));
    assert_eq!(s.streak.as_ref().map(|s| s.id), Some(2));
}

#[test]
fn recovery_can_be_turned_off() {
    let p = Policy::default().recovery(false);
    let mut s = ServiceState::default();
    run(&mut s, FAIL, at(0), &p);
    assert_eq!(
        run(&mut s, Event::Success, at(1), &p),
        Action::Suppress {
            reason: Reason::RecoveryDisabled
        }
    );
}

#[test]
fn pending_alert_blocks_resend_and_given_up_alert_is_resent() {
    let p = Policy::default();
    let t = [Target::new("ops", &p)];
    let s0 = ServiceState::default();
    let s1 = step(&s0, FAIL, at(0), &t).next;
    // second handler process while the first is still sending
    let st = step(&s1, FAIL, at(0), &t);
    assert!(matches!(
        st.decisions[0].action,
        Action::Suppress {
            reason: Reason::InFlight { .. }
        }
    ));
    // hours later it is still the outbox's to deliver (retrying): no duplicate
    let st = step(&s1, FAIL, at(600), &t);
    assert!(matches!(
        st.decisions[0].action,
        Action::Suppress {
            reason: Reason::InFlight { .. }
        }
    ));
    // an alert the outbox gave up on is sent again on the next event
    let mut s2 = s1.clone();
    s2.record_outcome(1, "ops", at(0), Outcome::Failed);
    let st = step(&s2, FAIL, at(1), &t);
    assert_eq!(st.decisions[0].action, sent(EventKind::Failure));
    // and no recovery goes where nothing was delivered
    let st = step(&s2, Event::Success, at(2), &t);
    assert_eq!(
        st.decisions[0].action,
        Action::Suppress {
            reason: Reason::NotAlerted
        }
    );
}

#[test]
fn recovery_goes_only_to_notifiers_that_got_the_alert() {
    let mail = Policy::default();
    let pager = Policy::default().threshold(3);
    let t = [Target::new("mail", &mail), Target::new("pager", &pager)];
    let mut s = step(&ServiceState::default(), FAIL, at(0), &t).next;
    s.record_outcome(1, "mail", at(0), Outcome::Delivered);
    let st = step(&s, Event::Success, at(1), &t);
    assert_eq!(st.decisions[0].action, sent(EventKind::Recovery));
    assert_eq!(
        st.decisions[1].action,
        Action::Suppress {
            reason: Reason::NotAlerted
        }
    );
}

#[test]
fn threshold_zero_is_a_config_error() {
    let e = toml::from_str::<Policy>("threshold = 0").unwrap_err();
    assert!(e.to_string().contains("at least 1"), "{e}");
}

// ---- properties ----

#[derive(Debug, Clone, Copy, PartialEq)]
enum Ev {
    Fail(Severity, bool),
    Success,
    Tick,
}

fn ev() -> impl Strategy<Value = (Ev, u32)> {
    (
        prop_oneof![
            4 => (prop_oneof![Just(Severity::Warning), Just(Severity::Critical)], any::<bool>())
                .prop_map(|(s, ok)| Ev::Fail(s, ok)),
            1 => Just(Ev::Success),
            2 => Just(Ev::Tick),
        ],
        0u32..180, // minutes since the previous event
    )
}

fn policy() -> impl Strategy<Value = Policy> {
    (
        1u32..5,
        0u64..60,
        prop_oneof![Just(0u64), 1u64..300],
        any::<bool>(),
    )
        .prop_map(|(threshold, min, repeat, recovery)| {
            Policy::default()
                .threshold(threshold)
                .min_duration(Duration::from_secs(min * 60))
                .repeat(Duration::from_secs(repeat * 60))
                .recovery(recovery)
        })
}

/// Runs a sequence; each failure-kind send is then delivered or failed as the event says.
fn simulate(p: &Policy, events: &[(Ev, u32)]) -> Vec<(Timestamp, Ev, Action, ServiceState)> {
    let mut s = ServiceState::default();
    let mut now = at(0);
    let mut out = Vec::new();
    for &(e, gap) in events {
        now = now.saturating_add(Duration::from_secs(u64::from(gap) * 60));
        let (event, ok) = match e {
            Ev::Fail(sev, ok) => (Event::Failure(sev), ok),
            Ev::Success => (Event::Success, true),
            Ev::Tick => (Event::Tick, true),
        };
        let before = s.clone();
        let st = step(&s, event, now, &[Target::new("ops", p)]);
        s = st.next;
        let action = st.decisions[0].action.clone();
        if let (Some(kind), Some(streak)) = (st.decisions[0].send_kind(), s.streak.as_ref())
            && kind.is_failure()
        {
            let id = streak.id;
            let outcome = if ok {
                Outcome::Delivered
            } else {
                Outcome::Failed
            };
            s.record_outcome(id, "ops", now, outcome);
        }
        out.push((now, e, action, before));
    }
    out
}

proptest! {
    #[test]
    fn no_alert_before_threshold(p in policy(), events in prop::collection::vec(ev(), 1..60)) {
        for (_, e, action, before) in simulate(&p, &events) {
            if let (Ev::Fail(..), Action::Send { .. }) = (e, &action) {
                let failures = before.streak.as_ref().map_or(0, |s| s.failures) + 1;
                prop_assert!(failures >= p.threshold, "alert at failure {failures} < {}", p.threshold);
            }
            if let (Ev::Tick, Action::Send { .. }) = (e, &action) {
                let failures = before.streak.as_ref().map_or(0, |s| s.failures);
                prop_assert!(failures >= p.threshold, "tick alert at failure {failures} < {}", p.threshold);
            }
        }
    }

    #[test]
    fn at_most_one_alert_per_repeat_interval_bar_escalation(
        p in policy(),
        events in prop::collection::vec(ev(), 1..60),
    ) {
        // with every delivery succeeding, a failure-kind alert other than the escalation
        // comes at most once per repeat interval (once per streak when repeat is off)
        let events: Vec<_> = events
            .into_iter()
            .map(|(e, g)| match e { Ev::Fail(s, _) => (Ev::Fail(s, true), g), e => (e, g) })
            .collect();
        let mut last: Option<Timestamp> = None;
        for (now, e, action, _) in simulate(&p, &events) {
            match (e, action) {
                (Ev::Success, _) => last = None,
                (_, Action::Send { kind: EventKind::Escalation }) => {}
                (_, Action::Send { kind }) => {
                    prop_assert!(kind != EventKind::Recovery);
                    if let Some(prev) = last {
                        prop_assert!(!p.repeat.is_zero(), "second alert with repeat off");
                        prop_assert!(now >= prev.saturating_add(p.repeat));
                    }
                    last = Some(now);
                }
                _ => {}
            }
        }
    }

    #[test]
    fn recovery_only_after_a_delivered_alert(p in policy(), events in prop::collection::vec(ev(), 1..60)) {
        for (_, e, action, before) in simulate(&p, &events) {
            if let Action::Send { kind: EventKind::Recovery } = action {
                prop_assert!(matches!(e, Ev::Success));
                prop_assert!(p.recovery);
                let delivered = before
                    .streak
                    .as_ref()
                    .and_then(|s| s.recipients.get("ops"))
                    .is_some_and(|r| r.delivered);
                prop_assert!(delivered);
            }
        }
    }

    #[test]
    fn a_tick_only_sends_what_time_made_due(p in policy(), events in prop::collection::vec(ev(), 1..60)) {
        for (now, e, action, before) in simulate(&p, &events) {
            if e != Ev::Tick {
                continue;
            }
            let Some(streak) = before.streak.as_ref() else {
                let not_failing = matches!(action, Action::Suppress { reason: Reason::NotFailing });
                prop_assert!(not_failing, "{action:?}");
                continue;
            };
            // the streak's counts are not touched
            let after = step(&before, Event::Tick, now, &[Target::new("ops", &p)]).next;
            let s = after.streak.as_ref().expect("still failing");
            prop_assert_eq!((s.failures, s.last_failure, s.max_severity), (streak.failures, streak.last_failure, streak.max_severity));
            if let Action::Send { kind } = action {
                prop_assert!(kind == EventKind::Failure || kind == EventKind::Reminder, "{kind}");
                prop_assert!(now.saturating_duration_since(streak.started) >= p.min_duration);
                if kind == EventKind::Failure {
                    prop_assert!(!streak.recipients.contains_key("ops"), "a tick resent a first alert");
                }
            }
        }
    }

    #[test]
    fn same_events_same_decisions(p in policy(), events in prop::collection::vec(ev(), 1..60)) {
        let a = simulate(&p, &events);
        let b = simulate(&p, &events);
        prop_assert_eq!(a, b);
    }

    #[test]
    fn replaying_a_saved_state_gives_the_same_decisions(
        p in policy(),
        events in prop::collection::vec(ev(), 2..60),
        cut in 1usize..59,
    ) {
        let cut = cut.min(events.len() - 1);
        let all = simulate(&p, &events);
        let saved = all[cut].3.clone();
        let json = serde_json::to_string(&saved).unwrap();
        let restored: ServiceState = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(&saved, &restored);
        let (now, e, action, _) = &all[cut];
        let event = match e {
            Ev::Fail(s, _) => Event::Failure(*s),
            Ev::Success => Event::Success,
            Ev::Tick => Event::Tick,
        };
        let again = step(&restored, event, *now, &[Target::new("ops", &p)]);
        prop_assert_eq!(&again.decisions[0].action, action);
    }
}

#[test]
fn a_tick_reminds_a_service_that_failed_once_every_repeat() {
    let p = Policy::default().repeat(Duration::from_secs(3600));
    let mut s = ServiceState::default();
    assert_eq!(run(&mut s, FAIL, at(0), &p), sent(EventKind::Failure));
    assert!(matches!(
        run(&mut s, Event::Tick, at(30), &p),
        Action::Suppress {
            reason: Reason::InsideRepeatInterval { .. }
        }
    ));
    assert_eq!(
        run(&mut s, Event::Tick, at(61), &p),
        sent(EventKind::Reminder)
    );
    assert!(matches!(
        run(&mut s, Event::Tick, at(62), &p),
        Action::Suppress {
            reason: Reason::InsideRepeatInterval { .. }
        }
    ));
    assert_eq!(
        run(&mut s, Event::Tick, at(121), &p),
        sent(EventKind::Reminder)
    );
    assert_eq!(s.streak.as_ref().map(|s| s.failures), Some(1));
    assert_eq!(
        run(&mut s, Event::Success, at(122), &p),
        sent(EventKind::Recovery)
    );
    assert!(matches!(
        run(&mut s, Event::Tick, at(200), &p),
        Action::Suppress {
            reason: Reason::NotFailing
        }
    ));
}

#[test]
fn a_tick_sends_the_alert_min_duration_held_back() {
    let p = Policy::default().min_duration(Duration::from_secs(600));
    let mut s = ServiceState::default();
    assert!(matches!(
        run(&mut s, FAIL, at(0), &p),
        Action::Suppress {
            reason: Reason::BelowMinDuration { .. }
        }
    ));
    assert!(matches!(
        run(&mut s, Event::Tick, at(9), &p),
        Action::Suppress {
            reason: Reason::BelowMinDuration { .. }
        }
    ));
    assert_eq!(
        run(&mut s, Event::Tick, at(10), &p),
        sent(EventKind::Failure)
    );
    assert!(matches!(
        run(&mut s, Event::Tick, at(11), &p),
        Action::Suppress {
            reason: Reason::AlreadyAlerted { .. }
        }
    ));
}

#[test]
fn a_tick_leaves_an_undelivered_alert_to_the_next_failure() {
    let p = Policy::default().repeat(Duration::from_secs(60));
    let t = [Target::new("ops", &p)];
    let mut s = step(&ServiceState::default(), FAIL, at(0), &t).next;
    s.record_outcome(1, "ops", at(0), Outcome::Failed);
    let st = step(&s, Event::Tick, at(5), &t);
    assert!(matches!(
        st.decisions[0].action,
        Action::Suppress {
            reason: Reason::Undelivered { .. }
        }
    ));
    assert_eq!(
        step(&s, FAIL, at(6), &t).decisions[0].action,
        sent(EventKind::Failure)
    );
}

#[test]
fn a_handler_whose_clock_read_came_first_still_sees_the_alert_in_flight() {
    let p = Policy::default();
    let t = [Target::new("ops", &p)];
    let s1 = step(&ServiceState::default(), FAIL, at(1), &t).next;
    // read its clock at minute 0, got the store's lock after the alert at minute 1
    let st = step(&s1, FAIL, at(0), &t);
    assert!(matches!(
        st.decisions[0].action,
        Action::Suppress {
            reason: Reason::InFlight { .. }
        }
    ));
}
