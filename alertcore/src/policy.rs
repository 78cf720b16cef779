//! The alert policy: a pure function from (state, event, now, settings) to
//! (new state, decisions). No clock, no store, no I/O: the [`Engine`](crate::Engine)
//! does those around it, which is what makes the rules below testable as properties.
//!
//! Per notifier, on a failure:
//! 1. fewer than `threshold` consecutive failures → suppressed (below threshold);
//! 2. the streak is younger than `min_duration` → suppressed;
//! 3. nothing delivered yet in this streak → [`EventKind::Failure`];
//! 4. the first warning → critical change of the streak → [`EventKind::Escalation`],
//!    even inside the repeat interval (xymon's yellow → red rule);
//! 5. `repeat` elapsed since the last alert → [`EventKind::Reminder`];
//! 6. otherwise suppressed (already alerted / inside repeat interval).
//!
//! Escalation overrides only `repeat`: `threshold` and `min_duration` still gate it.
//! An alert still pending in the outbox (being sent, or retried until it is delivered or
//! given up) counts as sent, so twenty handler processes for one restart loop send one
//! mail; an alert the outbox gave up on is sent again on the next event.
//!
//! On a [`Event::Tick`] (a flush: no new run, only time passed) only what time alone
//! makes due is sent: the first alert once the streak has lasted `min_duration`, and
//! reminders every `repeat`, so a unit that failed once and stays failed is still
//! reminded. Nothing else changes in the streak.
//!
//! On a success, a [`EventKind::Recovery`] goes to exactly the notifiers that had a
//! failure alert delivered in this streak, or still pending in the outbox (which then
//! delivers the two in order), unless `recovery = false`; and the streak ends.

mod decision;
mod state;

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use decision::{Action, Decision, Reason};
pub use state::{Ack, FlapState, Health, Outcome, RecipientState, ServiceState, Streak};

use crate::alert::{EventKind, Severity, Timestamp};
use crate::duration;

/// The policy settings (`[policy]` in the config).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct Policy {
    /// Alert on the Nth consecutive failure (at least 1).
    #[serde(deserialize_with = "deserialize_threshold")]
    pub threshold: u32,
    /// Alert only once the streak has lasted this long.
    #[serde(with = "duration")]
    pub min_duration: Duration,
    /// Re-send a reminder this often while still failing; zero never does.
    #[serde(with = "duration")]
    pub repeat: Duration,
    /// Send a recovery notification after an alert.
    pub recovery: bool,
    /// When a service recovers while a hold (a silence, a maintenance window, a
    /// failing dependency) still keeps its failure alert back, tell the notifiers it
    /// was kept from: one "failed and recovered" notice. Off: nothing is sent, as
    /// nobody was alerted. Read from `[policy]` only (not per rule).
    pub held_recovery: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            threshold: 1,
            min_duration: Duration::ZERO,
            repeat: Duration::ZERO,
            recovery: true,
            held_recovery: false,
        }
    }
}

impl Policy {
    /// Sets `threshold` (values below 1 mean 1).
    pub fn threshold(mut self, n: u32) -> Self {
        self.threshold = n.max(1);
        self
    }
    /// Sets `min_duration`.
    pub fn min_duration(mut self, d: Duration) -> Self {
        self.min_duration = d;
        self
    }
    /// Sets `repeat`.
    pub fn repeat(mut self, d: Duration) -> Self {
        self.repeat = d;
        self
    }
    /// Sets `recovery`.
    pub fn recovery(mut self, on: bool) -> Self {
        self.recovery = on;
        self
    }
}

pub(crate) fn deserialize_threshold<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<u32, D::Error> {
    let n = u32::deserialize(d)?;
    if n == 0 {
        return Err(serde::de::Error::custom(
            "threshold must be at least 1 (1 alerts on the first failure)",
        ));
    }
    Ok(n)
}

/// One notifier the policy decides for, with its settings.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Target<'a> {
    /// The notifier's configured name.
    pub name: &'a str,
    /// Its policy settings.
    pub policy: &'a Policy,
    /// The rule (1-based position in `[[rules]]`) that routed the event to it.
    pub rule: Option<usize>,
    /// The kinds of notification its rule sends; `None` sends every kind.
    pub events: Option<&'a [EventKind]>,
}

impl<'a> Target<'a> {
    /// A target that gets every kind of notification, routed by no rule.
    pub fn new(name: &'a str, policy: &'a Policy) -> Self {
        Self {
            name,
            policy,
            rule: None,
            events: None,
        }
    }

    /// Sets the rule that routed the event here.
    pub fn rule(mut self, rule: Option<usize>) -> Self {
        self.rule = rule;
        self
    }

    /// Limits the kinds of notification sent (a rule's `events`).
    pub fn events(mut self, events: Option<&'a [EventKind]>) -> Self {
        self.events = events;
        self
    }

    fn sends(&self, kind: EventKind) -> bool {
        self.events.is_none_or(|e| e.contains(&kind))
    }
}

/// What happened to the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A failed run of this severity.
    Failure(Severity),
    /// A successful run.
    Success,
    /// No new run, only time passed: a flush asking a failing service whether a
    /// reminder is due, or whether its streak has now lasted a `min_duration`.
    Tick,
}

/// The result of [`step`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Step {
    /// The state to store.
    pub next: ServiceState,
    /// One decision per target, in target order.
    pub decisions: Vec<Decision>,
}

/// Applies `event`, seen at `now`, to `state` for every target.
pub fn step(state: &ServiceState, event: Event, now: Timestamp, targets: &[Target<'_>]) -> Step {
    match event {
        Event::Failure(severity) => on_failure(state, severity, now, targets),
        Event::Success => on_success(state, now, targets),
        Event::Tick => on_tick(state, now, targets),
    }
}

fn on_failure(
    state: &ServiceState,
    severity: Severity,
    now: Timestamp,
    targets: &[Target<'_>],
) -> Step {
    let mut next = state.clone();
    let streak = match next.streak.as_mut() {
        Some(s) => s,
        None => {
            next.streaks += 1;
            next.streak.insert(Streak {
                id: next.streaks,
                started: now,
                last_failure: now,
                failures: 0,
                max_severity: severity,
                escalated: false,
                kind: None,
                host: None,
                trigger: None,
                recipients: Default::default(),
                invocations: Vec::new(),
                ack: None,
                held: None,
                held_for: Vec::new(),
            })
        }
    };
    streak.failures = streak.failures.saturating_add(1);
    streak.last_failure = now;
    let escalation = severity > streak.max_severity && !streak.escalated;
    if escalation {
        streak.escalated = true;
    }
    streak.max_severity = streak.max_severity.max(severity);

    let decisions = decide(streak, targets, now, |r, p| {
        failure_action(r, escalation, now, p)
    });
    Step { next, decisions }
}

/// A tick sends only what time alone makes due: the first alert of a streak that has
/// now lasted `min_duration`, and reminders. An alert the outbox gave up on waits for
/// the next real failure (resending it every minute would repeat what just failed).
fn on_tick(state: &ServiceState, now: Timestamp, targets: &[Target<'_>]) -> Step {
    let mut next = state.clone();
    let Some(streak) = next.streak.as_mut() else {
        let decisions = targets
            .iter()
            .map(|t| Decision {
                notifier: t.name.to_owned(),
                action: suppress(Reason::NotFailing),
                rule: t.rule,
            })
            .collect();
        return Step { next, decisions };
    };
    let decisions = decide(streak, targets, now, |r, p| match r {
        None => send(EventKind::Failure),
        Some(r) if r.outcome == Outcome::Pending => suppress(Reason::InFlight {
            since: r.last_alert,
        }),
        Some(r) if !r.delivered => suppress(Reason::Undelivered {
            since: r.last_alert,
        }),
        Some(r) => reminder_action(r, now, p),
    });
    Step { next, decisions }
}

/// The decision for each target on a failing `streak`: `threshold` and `min_duration`
/// gate, then `act` decides from the recipient's state, then the rule's `events`
/// filter; what is sent is recorded in the streak.
fn decide(
    streak: &mut Streak,
    targets: &[Target<'_>],
    now: Timestamp,
    mut act: impl FnMut(Option<&RecipientState>, &Policy) -> Action,
) -> Vec<Decision> {
    let lasted = now.saturating_duration_since(streak.started);
    let mut decisions = Vec::with_capacity(targets.len());
    for t in targets {
        let p = t.policy;
        let threshold = p.threshold.max(1);
        let action = if streak.failures < threshold {
            suppress(Reason::BelowThreshold {
                failures: streak.failures,
                threshold,
            })
        } else if lasted < p.min_duration {
            suppress(Reason::BelowMinDuration {
                lasted_s: lasted.as_secs(),
                min_duration_s: p.min_duration.as_secs(),
            })
        } else {
            act(streak.recipients.get(t.name), p)
        };
        let action = match action {
            Action::Send { kind } if !t.sends(kind) => suppress(Reason::KindNotRouted { kind }),
            other => other,
        };
        if let Action::Send { kind } = action {
            streak.mark_sent(t.name, t.rule, kind, now);
        }
        decisions.push(Decision {
            notifier: t.name.to_owned(),
            action,
            rule: t.rule,
        });
    }
    decisions
}

impl Streak {
    /// Records in the state of the recipient `name` (routed by `rule`) that `kind`
    /// goes to it now.
    pub(crate) fn mark_sent(
        &mut self,
        name: &str,
        rule: Option<usize>,
        kind: EventKind,
        now: Timestamp,
    ) {
        let r = self
            .recipients
            .entry(name.to_owned())
            .or_insert(RecipientState {
                first_alert: now,
                last_alert: now,
                last_kind: kind,
                alerts: 0,
                delivered: false,
                outcome: Outcome::Pending,
                rule,
            });
        r.rule = rule;
        r.last_alert = now;
        r.last_kind = kind;
        r.alerts = r.alerts.saturating_add(1);
        r.outcome = Outcome::Pending;
    }
}

fn failure_action(
    r: Option<&RecipientState>,
    escalation: bool,
    now: Timestamp,
    p: &Policy,
) -> Action {
    let Some(r) = r else {
        return send(EventKind::Failure);
    };
    // Pending: the outbox still owns the alert (sending, or retrying until it is
    // delivered or given up); a sender that died leaves it to the next flush.
    if r.outcome == Outcome::Pending {
        return suppress(Reason::InFlight {
            since: r.last_alert,
        });
    }
    if !r.delivered {
        // Every alert so far failed (or its sender died): this is still the first one.
        return send(EventKind::Failure);
    }
    if escalation {
        return send(EventKind::Escalation);
    }
    if r.outcome == Outcome::Failed || r.outcome == Outcome::Pending {
        // The latest reminder or escalation was lost: send it again.
        return send(r.last_kind);
    }
    reminder_action(r, now, p)
}

/// For a recipient alerted in this streak: a reminder once `repeat` has passed.
fn reminder_action(r: &RecipientState, now: Timestamp, p: &Policy) -> Action {
    if p.repeat.is_zero() {
        return suppress(Reason::AlreadyAlerted {
            since: r.first_alert,
        });
    }
    let due = r.last_alert.saturating_add(p.repeat);
    if now >= due {
        send(EventKind::Reminder)
    } else {
        suppress(Reason::InsideRepeatInterval { until: due })
    }
}

fn on_success(state: &ServiceState, now: Timestamp, targets: &[Target<'_>]) -> Step {
    let mut next = state.clone();
    next.last_success = Some(now);
    let streak = next.streak.take();
    let decisions = targets
        .iter()
        .map(|t| {
            let action = match &streak {
                None => suppress(Reason::NotFailing),
                // a failure alert still pending in the outbox goes first, then this
                // (the outbox sends one incident's notifications in order)
                Some(s) => match s.recipients.get(t.name) {
                    Some(r) if r.delivered || r.outcome == Outcome::Pending => {
                        if !t.policy.recovery {
                            suppress(Reason::RecoveryDisabled)
                        } else if !t.sends(EventKind::Recovery) {
                            suppress(Reason::KindNotRouted {
                                kind: EventKind::Recovery,
                            })
                        } else {
                            send(EventKind::Recovery)
                        }
                    }
                    _ => suppress(Reason::NotAlerted),
                },
            };
            Decision {
                notifier: t.name.to_owned(),
                action,
                rule: t.rule,
            }
        })
        .collect();
    Step { next, decisions }
}

fn send(kind: EventKind) -> Action {
    Action::Send { kind }
}

fn suppress(reason: Reason) -> Action {
    Action::Suppress { reason }
}

#[cfg(test)]
mod tests;
