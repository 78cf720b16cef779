//! Flap detection (`[flapping]`), with Icinga 2's semantics: a service whose state
//! changes too often is *flapping*; its notifiers get one `flapping` notice instead of
//! an alert and a recovery per change, and one more when it settles.
//!
//! Every failure and success of the service is a sample; its state is ok, warning or
//! critical. The last 20 samples are kept as "did the state change here". Their
//! weighted sum, the newest weighing 1.18 and each older one 0.02 less (down to 0.8),
//! times 100 / 20, is the *percent state change* (Icinga 2's `flapping_current`; a
//! service that changed on every one of 20 events is at 99.8 %).
//!
//! - It starts flapping on a failure that brings the percentage above `high` (default
//!   30): every notifier that would be told of the failure (whatever the threshold or
//!   repeat say; its rule must send `flapping`) gets a `flapping` notice instead.
//! - While flapping, failure alerts, reminders, escalations and recoveries are
//!   suppressed with the reason `flapping since ...`; nothing counts as sent.
//! - It stops flapping when an event brings the percentage to `low` (default 25) or
//!   below, or when the state has not changed for `settle` (default 1h; a flush notices
//!   it, so a service that stopped reporting is not flapping forever). Those told that it
//!   was flapping then get its state: a failure alert (`stopped_flapping`) if it is
//!   failing, which counts as the streak's alert (reminders and the recovery follow as
//!   usual), or a recovery if it is ok.
//!
//! Flapping starts only on a failure, as the notice is an alert about a problem: a
//! change to ok that crosses `high` is counted, and the next failure starts it. Holds
//! apply after this: a silenced service sends no flapping notice either.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::alert::{EventKind, Timestamp};
use crate::duration;
use crate::policy::{Action, Decision, Event, FlapState, Health, Reason, ServiceState};
use crate::rules::Plan;

/// How many events the percentage looks back.
pub(crate) const SAMPLES: u32 = 20;

/// The `[flapping]` settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Unchecked")]
#[non_exhaustive]
pub struct Flapping {
    /// Starts flapping above this percentage of state changes.
    pub high: f64,
    /// Stops flapping at or below this percentage.
    pub low: f64,
    /// Stops flapping when the state has not changed for this long.
    #[serde(with = "duration")]
    pub settle: Duration,
}

impl Default for Flapping {
    fn default() -> Self {
        Self {
            high: 30.0,
            low: 25.0,
            settle: Duration::from_secs(3_600),
        }
    }
}

/// `[flapping]` as written, before [`Flapping`] checks that `low` and `high` make
/// sense (0 ≤ low ≤ high ≤ 100).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Unchecked {
    #[serde(default)]
    high: Option<f64>,
    #[serde(default)]
    low: Option<f64>,
    #[serde(default, with = "duration::option")]
    settle: Option<Duration>,
}

impl TryFrom<Unchecked> for Flapping {
    type Error = String;
    fn try_from(u: Unchecked) -> Result<Self, String> {
        let d = Self::default();
        let f = Self {
            high: u.high.unwrap_or(d.high),
            low: u.low.unwrap_or(d.low),
            settle: u.settle.unwrap_or(d.settle),
        };
        if !(0.0..=100.0).contains(&f.high) || !(0.0..=100.0).contains(&f.low) {
            return Err("high and low are percentages, from 0 to 100".into());
        }
        if f.low > f.high {
            return Err(format!(
                "low ({}) must not be above high ({})",
                f.low, f.high
            ));
        }
        if f.settle.is_zero() {
            return Err("settle must be longer than 0s".into());
        }
        Ok(f)
    }
}

impl FlapState {
    /// Records one event in state `health` at `at`.
    pub fn sample(&mut self, health: Health, at: Timestamp) {
        let changed = self.last.is_some_and(|l| l != health);
        self.changes = ((self.changes << 1) | u32::from(changed)) & ((1 << SAMPLES) - 1);
        if changed || self.last_change.is_none() {
            self.last_change = Some(at);
        }
        self.last = Some(health);
    }

    /// The weighted percentage of state changes in the last 20 events.
    pub fn percent(&self) -> f64 {
        let weighted: f64 = (0..SAMPLES)
            .filter(|k| self.changes & (1 << k) != 0)
            .map(|k| 0.8 + 0.02 * f64::from(SAMPLES - 1 - k))
            .sum();
        100.0 * weighted / f64::from(SAMPLES)
    }
}

/// Applies flap detection to `plan`, the routing and policy of `event` at `at` on the
/// state `before`, as the module documentation says. `routed(rule, kind)`: whether the
/// rule that routed a decision sends `kind`. Without settings, does nothing.
pub fn apply(
    settings: Option<&Flapping>,
    (event, at): (Event, Timestamp),
    before: &ServiceState,
    plan: &mut Plan,
    routed: impl Fn(Option<usize>, EventKind) -> bool,
) {
    let Some(cfg) = settings else {
        return;
    };
    let mut flap = before.flap.clone().unwrap_or_default();
    match event {
        Event::Failure(s) => flap.sample(s.into(), at),
        Event::Success => flap.sample(Health::Ok, at),
        Event::Tick if flap.since.is_none() => return,
        Event::Tick => {}
    }
    let percent = flap.percent();
    let quiet = flap
        .last_change
        .is_some_and(|c| at.saturating_duration_since(c) >= cfg.settle);
    match flap.since {
        None if percent > cfg.high && matches!(event, Event::Failure(_)) => {
            flap.since = Some(at);
            let reason = flapping(at, percent);
            for d in plan.decisions.iter_mut() {
                let listening = match &d.action {
                    Action::Suppress {
                        reason: Reason::NotRouted | Reason::Ignored { .. },
                    } => false,
                    _ => routed(d.rule, EventKind::Flapping),
                };
                if listening {
                    d.action = Action::Send {
                        kind: EventKind::Flapping,
                    };
                } else if matches!(d.action, Action::Send { .. }) {
                    d.action = Action::Suppress {
                        reason: reason.clone(),
                    };
                } else {
                    continue;
                }
                plan.next.restore_recipient(before, &d.notifier);
            }
        }
        Some(since) if percent > cfg.low && !quiet => {
            let reason = flapping(since, percent);
            for d in plan.decisions.iter_mut() {
                if matches!(d.action, Action::Send { .. }) {
                    d.action = Action::Suppress {
                        reason: reason.clone(),
                    };
                    plan.next.restore_recipient(before, &d.notifier);
                }
            }
        }
        Some(_) => {
            flap.since = None;
            let kind = if plan.next.is_failing() {
                EventKind::Failure
            } else {
                EventKind::Recovery
            };
            for name in std::mem::take(&mut flap.notified) {
                let rule = match plan.decisions.iter_mut().find(|d| d.notifier == name) {
                    Some(d) => {
                        d.action = Action::Send { kind };
                        d.rule
                    }
                    None => {
                        plan.decisions.push(Decision {
                            notifier: name.clone(),
                            action: Action::Send { kind },
                            rule: None,
                        });
                        None
                    }
                };
                if let Some(streak) = plan.next.streak.as_mut() {
                    streak.mark_sent(&name, rule, kind, at);
                }
            }
        }
        None => {}
    }
    plan.next.flap = Some(flap);
}

/// The reason of what flapping since `since` holds back.
fn flapping(since: Timestamp, percent: f64) -> Reason {
    Reason::Flapping {
        since,
        // 0..=100 by construction
        percent: percent.round().clamp(0.0, 100.0) as u8,
    }
}

/// After the holds: a service that started flapping with this plan remembers whom it
/// told (a held notice told nobody), for the notice when it settles.
pub(crate) fn remember_told(before: &ServiceState, plan: &mut Plan) {
    if before.flapping_since().is_some() {
        return;
    }
    let told: Vec<String> = plan
        .decisions
        .iter()
        .filter(|d| d.send_kind() == Some(EventKind::Flapping))
        .map(|d| d.notifier.clone())
        .collect();
    if let Some(flap) = plan.next.flap.as_mut().filter(|f| f.since.is_some()) {
        flap.notified = told;
    }
}

/// Whether the notifications of `plan` say the state a flapping service settled in.
pub(crate) fn settled(before: &ServiceState, plan: &Plan) -> bool {
    before.flapping_since().is_some() && plan.next.flapping_since().is_none()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::alert::Severity;
    use crate::policy::{self, Policy, Target};

    fn t(min: i64) -> Timestamp {
        Timestamp::from_millis(min * 60_000)
    }

    /// Icinga 2's percentage after `k` changes in a row (newest weighing 1.18).
    fn icinga(k: u32) -> f64 {
        (0..k).map(|j| 1.18 - 0.02 * f64::from(j)).sum::<f64>() * 100.0 / 20.0
    }

    #[test]
    fn the_percentage_weighs_recent_changes_more() {
        let mut f = FlapState::default();
        f.sample(Health::Critical, t(0));
        assert_eq!(f.percent(), 0.0, "the first event changes nothing");
        f.sample(Health::Ok, t(1));
        assert!((f.percent() - 5.9).abs() < 1e-9, "{}", f.percent());
        f.sample(Health::Ok, t(2));
        // the same change, one event older
        assert!((f.percent() - 5.8).abs() < 1e-9, "{}", f.percent());
        assert_eq!(f.last_change, Some(t(1)));
        let mut f = FlapState::default();
        for i in 0..21 {
            let h = if i % 2 == 0 {
                Health::Warning
            } else {
                Health::Critical
            };
            f.sample(h, t(i));
        }
        assert!((f.percent() - 99.0).abs() < 1e-9, "{}", f.percent());
        assert!((icinga(20) - 99.0).abs() < 1e-9);
    }

    /// One event at `at` minutes through the default policy for one notifier (`mail`),
    /// then `apply` (with `routed`) and `settle`.
    fn step_one(
        state: &ServiceState,
        event: Event,
        at: i64,
        settings: Option<&Flapping>,
        routed: fn(Option<usize>, EventKind) -> bool,
    ) -> Plan {
        let p = Policy::default();
        let targets = [Target::new("mail", &p)];
        let step = policy::step(state, event, t(at), &targets);
        let mut plan = Plan {
            next: step.next,
            decisions: step.decisions,
            rules: Vec::new(),
        };
        apply(settings, (event, t(at)), state, &mut plan, routed);
        remember_told(state, &mut plan);
        plan
    }

    fn all(_: Option<usize>, _: EventKind) -> bool {
        true
    }

    /// Runs `events` (true: a failure, at minute n) through [`step_one`], every
    /// notification delivered; returns the state and what `mail` was sent at each.
    fn run_with(
        events: &[(bool, i64)],
        settings: Option<&Flapping>,
        routed: fn(Option<usize>, EventKind) -> bool,
    ) -> (ServiceState, Vec<Option<EventKind>>) {
        let mut state = ServiceState::default();
        let mut sent = Vec::new();
        for &(failed, at) in events {
            let event = if failed {
                Event::Failure(Severity::Critical)
            } else {
                Event::Success
            };
            let mut plan = step_one(&state, event, at, settings, routed);
            sent.push(plan.decisions[0].send_kind());
            if let Some(s) = plan.next.streak.as_mut() {
                for r in s.recipients.values_mut() {
                    r.delivered = true;
                    r.outcome = policy::Outcome::Delivered;
                }
            }
            state = plan.next;
        }
        (state, sent)
    }

    fn run(events: &[(bool, i64)], settings: Option<&Flapping>) -> Vec<Option<EventKind>> {
        run_with(events, settings, all).1
    }

    /// Failure and success in turn, `n` events from minute 0.
    fn alternating(n: i64) -> Vec<(bool, i64)> {
        (0..n).map(|i| (i % 2 == 0, i)).collect()
    }

    #[test]
    fn alternating_flaps_at_the_seventh_event_and_settles_after_fifteen_quiet_ones() {
        let cfg = Flapping::default();
        // 6 changes make 33.9 % > 30; 5 made 28.5 %
        assert!(icinga(6) > 30.0 && icinga(5) < 30.0);
        let mut events = alternating(20);
        events.extend((20..40).map(|i| (false, i)));
        let sent = run(&events, Some(&cfg));
        use EventKind::{Failure as F, Flapping as Fl, Recovery as R};
        assert_eq!(
            &sent[..7],
            &[
                Some(F),
                Some(R),
                Some(F),
                Some(R),
                Some(F),
                Some(R),
                Some(Fl)
            ]
        );
        assert!(sent[7..34].iter().all(Option::is_none), "{sent:?}");
        // after the 20th event, 19 changes in a row; 14 quiet events leave 6 of them
        // (25.5 % > 25), the 15th leaves 5 (21 %): the event at index 34
        assert_eq!(sent[34], Some(R), "{sent:?}");
        assert!(sent[35..].iter().all(Option::is_none));
    }

    #[test]
    fn settling_while_failing_sends_a_failure_alert_that_counts() {
        let cfg = Flapping::default();
        let mut events = alternating(10);
        events.extend((10..30).map(|i| (true, i)));
        events.push((false, 30));
        let sent = run(&events, Some(&cfg));
        let settled = sent
            .iter()
            .rposition(|k| *k == Some(EventKind::Failure))
            .unwrap();
        assert!(settled > 10, "{sent:?}");
        assert_eq!(
            sent[30],
            Some(EventKind::Recovery),
            "the settled alert was delivered, so the recovery follows"
        );
    }

    #[test]
    fn a_quiet_service_settles_by_time_on_a_tick() {
        let cfg = Flapping {
            settle: Duration::from_secs(600),
            ..Flapping::default()
        };
        let (state, _) = run_with(&alternating(8), Some(&cfg), all);
        assert_eq!(state.flapping_since(), Some(t(6)));
        assert!(!state.is_failing());
        // last change at minute 7: still flapping at 16, settled at 17
        let early = step_one(&state, Event::Tick, 16, Some(&cfg), all);
        assert!(early.decisions[0].send_kind().is_none());
        assert!(early.next.flapping_since().is_some());
        let late = step_one(&state, Event::Tick, 17, Some(&cfg), all);
        assert_eq!(late.decisions[0].send_kind(), Some(EventKind::Recovery));
        assert!(settled(&state, &late));
        assert_eq!(late.next.flapping_since(), None);
    }

    #[test]
    fn a_rule_that_sends_no_flapping_notices_is_not_told() {
        let (state, kinds) = run_with(&alternating(7), Some(&Flapping::default()), |_, k| {
            k != EventKind::Flapping
        });
        assert_eq!(state.flapping_since(), Some(t(6)));
        assert!(state.flap.as_ref().unwrap().notified.is_empty());
        assert_eq!(kinds[6], None, "flapping, and not told so: {kinds:?}");
    }

    proptest! {
        /// With flap detection off, every decision and state is the policy's.
        #[test]
        fn off_changes_nothing(events in prop::collection::vec((any::<bool>(), 0i64..3), 1..60)) {
            let mut at = 0;
            let events: Vec<(bool, i64)> = events.into_iter().map(|(f, d)| { at += d; (f, at) }).collect();
            let p = Policy::default();
            let targets = [Target::new("mail", &p)];
            let mut state = ServiceState::default();
            for &(failed, at) in &events {
                let event = if failed { Event::Failure(Severity::Warning) } else { Event::Success };
                let step = policy::step(&state, event, t(at), &targets);
                let mut plan = Plan { next: step.next.clone(), decisions: step.decisions.clone(), rules: Vec::new() };
                apply(None, (event, t(at)), &state, &mut plan, |_, _| true);
                remember_told(&state, &mut plan);
                prop_assert_eq!(&plan.decisions, &step.decisions);
                prop_assert_eq!(&plan.next, &step.next);
                state = plan.next;
            }
        }

        /// With it on: at most one flapping notice per flapping period, and a
        /// flapping service is never sent an alert or recovery between its start and
        /// its end.
        #[test]
        fn one_notice_per_period(events in prop::collection::vec(any::<bool>(), 1..120)) {
            let events: Vec<(bool, i64)> = events.into_iter().zip(0..).collect();
            let sent = run(&events, Some(&Flapping::default()));
            let mut flapping = false;
            for k in sent.into_iter().flatten() {
                match k {
                    EventKind::Flapping => { prop_assert!(!flapping); flapping = true; }
                    _ if flapping => { flapping = false; }
                    _ => {}
                }
            }
        }
    }
}
