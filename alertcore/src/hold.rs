//! Holding alerts back on purpose: silences (`alertctl silence`, kept in the store),
//! maintenance windows (`[[maintenance]]` in the config), dependencies (`depends_on` of a
//! check, a heartbeat or a rule: held while a service it names is failing), inhibition
//! (`[[inhibit]]`: held while a failing service matching its source agrees on its
//! `equal` labels) and acknowledgements (`alertctl ack`, kept in the streak).
//!
//! A hold is a veto over what the policy decided, applied after it (by the engine): a
//! failure alert, reminder or escalation it would send is suppressed with the hold as
//! its reason, and the recipient's state is left as it was, so nothing counts as sent.
//! Once the hold is over, the next flush finds a failing service whose recipient was
//! never alerted and sends the alert then (once); a service that recovered meanwhile
//! sends nothing, as nobody was alerted. Recoveries are not held: they go to whoever
//! had the failure alert, which was before the hold. An acknowledgement holds only
//! reminders of its streak: an escalation still goes out.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::alert::{EventKind, Severity, Timestamp};
use crate::policy::{Action, Event, Reason, ServiceState};
use crate::rules::{Patterns, Plan, TimeWindows, Zone};

/// What a silence or a maintenance window covers: every given matcher must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Matchers {
    /// Service names (globs, or `re:` regexes): any may match.
    #[serde(default, skip_serializing_if = "Patterns::is_empty")]
    pub services: Patterns,
    /// Host names: any may match.
    #[serde(default, skip_serializing_if = "Patterns::is_empty")]
    pub hosts: Patterns,
    /// Only failures of this severity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
}

impl Matchers {
    /// Matchers of `services` and `hosts` (empty: any) and `severity`.
    pub fn new(services: Patterns, hosts: Patterns, severity: Option<Severity>) -> Self {
        Self {
            services,
            hosts,
            severity,
        }
    }

    /// Whether an event of `service` about `host` with `severity` is covered.
    pub fn matches(&self, service: &str, host: &str, severity: Severity) -> bool {
        (self.services.is_empty() || self.services.matches_any(service))
            && (self.hosts.is_empty() || self.hosts.matches_any(host))
            && self.severity.is_none_or(|s| s == severity)
    }
}

impl fmt::Display for Matchers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |p: &Patterns| {
            p.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" ")
        };
        let mut parts = Vec::new();
        if !self.services.is_empty() {
            parts.push(format!("service {}", list(&self.services)));
        }
        if !self.hosts.is_empty() {
            parts.push(format!("host {}", list(&self.hosts)));
        }
        if let Some(s) = self.severity {
            parts.push(format!("severity {s}"));
        }
        if parts.is_empty() {
            f.write_str("everything")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

/// A silence: the alerts it covers are held from `starts` to `ends`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Silence {
    /// Its id (0 before the store gave it one).
    pub id: i64,
    /// What it covers.
    pub matchers: Matchers,
    /// When it starts.
    pub starts: Timestamp,
    /// When it ends.
    pub ends: Timestamp,
    /// Why.
    pub comment: String,
    /// Who added it.
    pub created_by: String,
    /// When.
    pub created: Timestamp,
}

impl Silence {
    /// A silence of `matchers` from `starts` to `ends`, added by `created_by` at
    /// `created` because of `comment`.
    pub fn new(
        matchers: Matchers,
        (starts, ends): (Timestamp, Timestamp),
        comment: impl Into<String>,
        created_by: impl Into<String>,
        created: Timestamp,
    ) -> Self {
        Self {
            id: 0,
            matchers,
            starts,
            ends,
            comment: comment.into(),
            created_by: created_by.into(),
            created,
        }
    }

    /// Whether it holds alerts at `at`.
    pub fn active_at(&self, at: Timestamp) -> bool {
        self.starts <= at && at < self.ends
    }
}

/// When a maintenance window holds alerts.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum When {
    /// Recurring, in the config's time zone (the `[[rules]]` time-window syntax).
    Windows(TimeWindows),
    /// Once, from the first time to the second.
    Once(Timestamp, Timestamp),
}

/// A `[[maintenance]]` window of the config.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Maintenance {
    /// Its `name`, else its place in the config (`2`).
    pub name: String,
    /// What it covers.
    pub matchers: Matchers,
    /// When.
    pub when: When,
    /// Why.
    pub comment: Option<String>,
}

/// What depends on what: a service's alerts (or a rule's) are held while a service
/// they depend on is failing.
#[derive(Debug, Clone, Default)]
pub struct Dependencies {
    /// By service name: the services it depends on (a check's or heartbeat's
    /// `depends_on`).
    pub services: BTreeMap<String, Vec<String>>,
    /// By rule (1-based position in `[[rules]]`): the services its alerts depend on.
    pub rules: BTreeMap<usize, Vec<String>>,
}

impl Dependencies {
    /// Whether nothing depends on anything.
    pub fn is_empty(&self) -> bool {
        self.services.is_empty() && self.rules.is_empty()
    }

    /// Every service an event of `service` may depend on (its own and any rule's).
    pub fn of(&self, service: &str) -> BTreeSet<&str> {
        self.services
            .get(service)
            .into_iter()
            .chain(self.rules.values())
            .flatten()
            .map(String::as_str)
            .filter(|d| *d != service)
            .collect()
    }

    /// The first dependency of `service`, or of its decision's `rule`, that is in
    /// `failing`.
    fn failing_for<'a>(
        &'a self,
        service: &str,
        rule: Option<usize>,
        failing: &BTreeSet<String>,
    ) -> Option<&'a str> {
        self.services
            .get(service)
            .into_iter()
            .chain(rule.and_then(|r| self.rules.get(&r)))
            .flatten()
            .find(|d| failing.contains(*d) && d.as_str() != service)
            .map(String::as_str)
    }
}

/// A label an `[[inhibit]]` rule's `equal` compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Label {
    /// The host the event is about.
    Host,
    /// Its severity (of a failing service: the worst of its streak).
    Severity,
    /// The source kind (`service`, `check`, `heartbeat`, ...).
    Kind,
}

/// An `[[inhibit]]` rule: while a service matching `source` is failing, the alerts of
/// other services matching `target` that agree with it on every `equal` label are held
/// (Alertmanager's inhibition). An alert that matches both sides is not held by another
/// that also matches both, so a rule cannot silence every member of a group.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Inhibit {
    /// Its 1-based place among `[[inhibit]]`.
    pub index: usize,
    /// What the inhibiting failure matches.
    pub source: Matchers,
    /// What it holds.
    pub target: Matchers,
    /// The labels both must have equal.
    pub equal: Vec<Label>,
}

impl Inhibit {
    /// A rule at place `index`.
    pub fn new(index: usize, source: Matchers, target: Matchers, equal: Vec<Label>) -> Self {
        Self {
            index,
            source,
            target,
            equal,
        }
    }
}

/// A failing service, as `[[inhibit]]` sources are looked for.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) struct Active {
    /// The service.
    pub(crate) service: String,
    /// The host its streak is about.
    pub(crate) host: String,
    /// The worst severity of its streak.
    pub(crate) severity: Severity,
    /// Its source kind (`service` when none is recorded).
    pub(crate) kind: String,
}

impl Active {
    /// The failing services among `states`, hosts defaulting to `engine_host`.
    pub(crate) fn of(states: &[(String, ServiceState)], engine_host: &str) -> Vec<Self> {
        states
            .iter()
            .filter_map(|(name, s)| {
                let streak = s.streak.as_ref()?;
                Some(Self {
                    service: name.clone(),
                    host: streak
                        .host
                        .clone()
                        .unwrap_or_else(|| engine_host.to_owned()),
                    severity: streak.max_severity,
                    kind: streak.kind.clone().unwrap_or_else(|| "service".to_owned()),
                })
            })
            .collect()
    }
}

/// The holds that may apply to an event: the engine's sources (maintenance
/// windows, dependencies, `[[inhibit]]` rules), with what was read for this event: the
/// store's silences, which of its dependencies are failing, and every failing service
/// when there are inhibit rules.
#[derive(Debug, Clone, Default)]
pub struct Holds {
    /// What the engine holds alerts by, from its config.
    pub(crate) sources: Sources,
    /// Silences (active or not; [`Holds::find`] looks at their times).
    pub silences: Vec<Silence>,
    /// Of the services the event may depend on, those failing now.
    pub(crate) failing: BTreeSet<String>,
    /// Every failing service, when there are `[[inhibit]]` rules (none otherwise).
    pub(crate) active: Vec<Active>,
}

/// The hold an event falls under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Hold {
    /// `silence 3`, `maintenance "patch night"`.
    pub by: String,
    /// When it ends, when that is known (a recurring window's end is not computed).
    pub until: Option<Timestamp>,
}

impl fmt::Display for Hold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.until {
            Some(t) => write!(f, "{} until {t}", self.by),
            None => f.write_str(&self.by),
        }
    }
}

/// What an engine holds alerts by besides the store's silences: the maintenance
/// windows, the dependencies, the `[[inhibit]]` rules, the time zone of recurring
/// windows, and the policy's `held_recovery`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sources {
    /// The `[[maintenance]]` windows.
    pub(crate) maintenance: std::sync::Arc<[Maintenance]>,
    /// What depends on what.
    pub(crate) dependencies: std::sync::Arc<Dependencies>,
    /// The time zone recurring windows are read in: the rules' (`Router`'s), shared.
    pub(crate) timezone: Zone,
    /// `held_recovery` of the policy: a recovery while held tells those it was kept
    /// from.
    pub(crate) held_recovery: bool,
    /// The `[[inhibit]]` rules.
    pub(crate) inhibits: std::sync::Arc<[Inhibit]>,
}

impl Holds {
    /// The failing service that inhibits an alert of `service` (about `host`, of
    /// `severity` and source `kind`), and the rule by which.
    pub(crate) fn inhibitor(
        &self,
        service: &str,
        host: &str,
        severity: Severity,
        kind: &str,
    ) -> Option<(&str, usize)> {
        self.sources.inhibits.iter().find_map(|r| {
            if !r.target.matches(service, host, severity) {
                return None;
            }
            let both = r.source.matches(service, host, severity);
            self.active
                .iter()
                .find(|a| {
                    a.service != service
                        && r.source.matches(&a.service, &a.host, a.severity)
                        && !(both && r.target.matches(&a.service, &a.host, a.severity))
                        && r.equal.iter().all(|l| match l {
                            Label::Host => a.host == host,
                            Label::Severity => a.severity == severity,
                            Label::Kind => a.kind == kind,
                        })
                })
                .map(|a| (a.service.as_str(), r.index))
        })
    }

    /// The hold an event of `service` about `host` with `severity` at `at` falls under:
    /// the silence ending last, else the first maintenance window.
    pub fn find(
        &self,
        service: &str,
        host: &str,
        severity: Severity,
        at: Timestamp,
    ) -> Option<Hold> {
        let silence = self
            .silences
            .iter()
            .filter(|s| s.active_at(at) && s.matchers.matches(service, host, severity))
            .max_by_key(|s| s.ends)
            .map(|s| Hold {
                by: format!("silence {}", s.id),
                until: Some(s.ends),
            });
        silence.or_else(|| {
            self.sources
                .maintenance
                .iter()
                .filter(|m| m.matchers.matches(service, host, severity))
                .find_map(|m| {
                    let until = match &m.when {
                        When::Once(from, to) => (*from <= at && at < *to).then_some(Some(*to)),
                        When::Windows(w) => {
                            let tz = self.sources.timezone.get();
                            w.contains_any_ms(at.as_millis(), tz).then_some(None)
                        }
                    }?;
                    Some(Hold {
                        by: format!("maintenance {:?}", m.name),
                        until,
                    })
                })
        })
    }
}

/// Applies `holds` and the streak's acknowledgement to `plan`, the routing and policy of
/// `event` of `service` about `host` at `at` on the state `before`, as the module
/// documentation says. A streak whose alert a hold kept back says by what
/// (`Streak::held`) until an alert of it is sent.
pub(crate) fn apply(
    holds: &Holds,
    (service, host, event, at): (&str, &str, Event, Timestamp),
    before: &ServiceState,
    plan: &mut Plan,
) {
    let severity = match (event, plan.next.streak.as_ref()) {
        (Event::Failure(s), _) => s,
        (Event::Tick, Some(streak)) => streak.max_severity,
        (Event::Success, _) => {
            if holds.sources.held_recovery {
                recovered_while_held(before, plan);
            }
            return;
        }
        (Event::Tick, None) => return,
    };
    let hold = if holds.silences.is_empty() && holds.sources.maintenance.is_empty() {
        None
    } else {
        holds.find(service, host, severity, at)
    };
    let ack = before.streak.as_ref().and_then(|s| s.ack.as_ref());
    let inhibitor = if holds.sources.inhibits.is_empty() {
        None
    } else {
        let kind = plan.next.streak.as_ref().and_then(|s| s.kind.as_deref());
        holds.inhibitor(service, host, severity, kind.unwrap_or("service"))
    };
    // what holds one decision: a silence or maintenance window, else a failing
    // dependency of the service or of the decision's rule, else (reminders only) the ack
    let reason = |rule: Option<usize>, kind: EventKind| -> Option<Reason> {
        if kind == EventKind::Recovery {
            return None;
        }
        if let Some(h) = &hold {
            return Some(Reason::Held {
                by: h.by.clone(),
                until: h.until,
            });
        }
        if let Some(on) = holds
            .sources
            .dependencies
            .failing_for(service, rule, &holds.failing)
        {
            return Some(Reason::DependsOn { on: on.to_owned() });
        }
        if let Some((by, rule)) = inhibitor {
            return Some(Reason::Inhibited {
                by: by.to_owned(),
                rule,
            });
        }
        match (ack, kind) {
            (Some(a), EventKind::Reminder) => Some(Reason::Acknowledged {
                by: a.by.clone(),
                at: a.at,
            }),
            _ => None,
        }
    };
    let held = veto(before, &mut plan.next, &mut plan.decisions, reason);
    let sent = plan
        .decisions
        .iter()
        .filter(|d| d.send_kind().is_some_and(EventKind::is_alert))
        .map(|d| d.notifier.as_str());
    if let Some(streak) = plan.next.streak.as_mut() {
        let mut any = false;
        for name in sent {
            any = true;
            streak.held_for.retain(|n| n != name);
        }
        if any {
            streak.held = None;
        } else if let Some(why) = held {
            streak.held = Some(why);
        }
    }
}

/// On a success: the notifiers a hold kept the streak's failure alert from, and that
/// were never alerted in it, get a recovery (the engine marks it "failed and
/// recovered").
fn recovered_while_held(before: &ServiceState, plan: &mut Plan) {
    let Some(streak) = before.streak.as_ref() else {
        return;
    };
    for d in plan.decisions.iter_mut() {
        if matches!(
            d.action,
            Action::Suppress {
                reason: Reason::NotAlerted
            }
        ) && streak.held_for.contains(&d.notifier)
        {
            d.action = Action::Send {
                kind: EventKind::Recovery,
            };
        }
    }
}

/// Suppresses each failure kind in `decisions` that `reason` gives a reason for, and
/// puts that recipient's state in `next` back as it was in `before`. Returns what held
/// the last one held by something other than an acknowledgement, for [`Streak::held`].
///
/// [`Streak::held`]: crate::policy::Streak::held
fn veto(
    before: &ServiceState,
    next: &mut ServiceState,
    decisions: &mut [crate::policy::Decision],
    reason: impl Fn(Option<usize>, EventKind) -> Option<Reason>,
) -> Option<String> {
    let mut held = None;
    for d in decisions.iter_mut() {
        let Action::Send { kind } = d.action else {
            continue;
        };
        let Some(why) = reason(d.rule, kind) else {
            continue;
        };
        match &why {
            Reason::Held {
                by,
                until: Some(until),
            } => held = Some(format!("{by} until {until}")),
            Reason::Held { by, until: None } => held = Some(by.clone()),
            Reason::DependsOn { .. } | Reason::Inhibited { .. } => held = Some(why.to_string()),
            _ => {}
        }
        let acked = matches!(why, Reason::Acknowledged { .. });
        d.action = Action::Suppress { reason: why };
        next.restore_recipient(before, &d.notifier);
        if let Some(streak) = next.streak.as_mut().filter(|_| !acked)
            && !streak.held_for.contains(&d.notifier)
        {
            streak.held_for.push(d.notifier.clone());
        }
    }
    held
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::policy::{self, Ack, Policy, Target};

    fn t(min: i64) -> Timestamp {
        Timestamp::from_millis(min * 60_000)
    }

    fn silence(id: i64, services: &[&str], from: i64, to: i64) -> Silence {
        let mut s = Silence::new(
            Matchers::new(
                Patterns::parse(services).unwrap(),
                Patterns::default(),
                None,
            ),
            (t(from), t(to)),
            "c",
            "me",
            t(0),
        );
        s.id = id;
        s
    }

    #[test]
    fn matchers_need_every_given_part() {
        let m = Matchers::new(
            Patterns::parse(["web-*"]).unwrap(),
            Patterns::parse(["re:^eu-"]).unwrap(),
            Some(Severity::Warning),
        );
        assert!(m.matches("web-1", "eu-west", Severity::Warning));
        assert!(!m.matches("db-1", "eu-west", Severity::Warning));
        assert!(!m.matches("web-1", "us-east", Severity::Warning));
        assert!(!m.matches("web-1", "eu-west", Severity::Critical));
        assert!(Matchers::default().matches("anything", "anywhere", Severity::Critical));
        assert_eq!(
            m.to_string(),
            "service web-*, host re:^eu-, severity warning"
        );
    }

    #[test]
    fn the_silence_ending_last_holds_and_only_while_active() {
        let holds = Holds {
            silences: vec![silence(1, &["web-*"], 0, 60), silence(2, &["*"], 10, 90)],
            ..Holds::default()
        };
        let find = |m| {
            holds
                .find("web-1", "h", Severity::Critical, t(m))
                .map(|h| h.to_string())
        };
        assert_eq!(
            find(5).as_deref(),
            Some("silence 1 until 1970-01-01T01:00:00Z")
        );
        assert_eq!(
            find(20).as_deref(),
            Some("silence 2 until 1970-01-01T01:30:00Z")
        );
        assert_eq!(find(90), None, "the end is not in it");
        let once = Maintenance {
            name: "x".into(),
            matchers: Matchers::default(),
            when: When::Once(t(100), t(110)),
            comment: None,
        };
        let holds = Holds {
            sources: Sources {
                maintenance: vec![once].into(),
                ..Sources::default()
            },
            ..Holds::default()
        };
        assert_eq!(
            holds.find("a", "h", Severity::Critical, t(105)),
            Some(Hold {
                by: "maintenance \"x\"".into(),
                until: Some(t(110))
            })
        );
        assert_eq!(holds.find("a", "h", Severity::Critical, t(110)), None);
    }

    /// One notifier, the default policy with a repeat, through `step` then `apply`.
    fn run(state: &ServiceState, event: Event, at: Timestamp, holds: &Holds) -> Plan {
        let p = Policy::default().repeat(std::time::Duration::from_secs(3_600));
        let targets = [Target::new("mail", &p)];
        let step = policy::step(state, event, at, &targets);
        let mut plan = Plan {
            next: step.next,
            decisions: step.decisions,
            rules: Vec::new(),
        };
        apply(holds, ("web-1", "h", event, at), state, &mut plan);
        plan
    }

    #[test]
    fn a_held_alert_leaves_the_recipient_unalerted_and_goes_out_after_the_hold() {
        let holds = Holds {
            silences: vec![silence(7, &["web-*"], 0, 30)],
            ..Holds::default()
        };
        let failed = run(
            &ServiceState::default(),
            Event::Failure(Severity::Critical),
            t(1),
            &holds,
        );
        assert!(matches!(
            &failed.decisions[0].action,
            Action::Suppress { reason: Reason::Held { by, .. } } if by == "silence 7"
        ));
        let streak = failed.next.streak.as_ref().unwrap();
        assert!(streak.recipients.is_empty(), "nothing counts as sent");
        assert_eq!(
            streak.held.as_deref(),
            Some("silence 7 until 1970-01-01T00:30:00Z")
        );
        // a tick inside the silence: still held; after it: the failure alert
        let tick = run(&failed.next, Event::Tick, t(20), &holds);
        assert!(tick.decisions[0].send_kind().is_none());
        let tick = run(&failed.next, Event::Tick, t(30), &holds);
        assert_eq!(tick.decisions[0].send_kind(), Some(EventKind::Failure));
        assert_eq!(tick.next.streak.as_ref().unwrap().held, None);
        // recovered during the silence: nobody was alerted, nothing to send
        let ok = run(&failed.next, Event::Success, t(10), &holds);
        assert!(ok.decisions[0].send_kind().is_none());
        // unless `held_recovery` asks to tell those it was kept from
        let mut told = holds.clone();
        told.sources.held_recovery = true;
        assert_eq!(failed.next.streak.as_ref().unwrap().held_for, ["mail"]);
        let ok = run(&failed.next, Event::Success, t(10), &told);
        assert_eq!(ok.decisions[0].send_kind(), Some(EventKind::Recovery));
        // once its alert went out after the hold, it is an ordinary recovery
        assert!(tick.next.streak.as_ref().unwrap().held_for.is_empty());
    }

    #[test]
    fn an_ack_holds_reminders_only() {
        let none = Holds::default();
        let first = run(
            &ServiceState::default(),
            Event::Failure(Severity::Warning),
            t(0),
            &none,
        );
        assert_eq!(first.decisions[0].send_kind(), Some(EventKind::Failure));
        let mut acked = first.next.clone();
        let streak = acked.streak.as_mut().unwrap();
        streak.recipients.get_mut("mail").unwrap().delivered = true;
        streak.recipients.get_mut("mail").unwrap().outcome = policy::Outcome::Delivered;
        streak.ack = Some(Ack::new("ann", t(1), None));
        let later = run(&acked, Event::Failure(Severity::Warning), t(120), &none);
        assert!(matches!(
            &later.decisions[0].action,
            Action::Suppress { reason: Reason::Acknowledged { by, .. } } if by == "ann"
        ));
        assert_eq!(
            later.next.streak.as_ref().unwrap().recipients["mail"],
            acked.streak.as_ref().unwrap().recipients["mail"],
            "the reminder is not counted as sent"
        );
        let esc = run(&acked, Event::Failure(Severity::Critical), t(121), &none);
        assert_eq!(esc.decisions[0].send_kind(), Some(EventKind::Escalation));
    }

    #[test]
    fn an_inhibit_holds_targets_that_agree_on_its_equal_labels() {
        let active = |service: &str, host: &str, severity| Active {
            service: service.into(),
            host: host.into(),
            severity,
            kind: "check".into(),
        };
        let rule = Inhibit::new(
            1,
            Matchers::new(
                Patterns::parse(["switch-*"]).unwrap(),
                Patterns::default(),
                Some(Severity::Critical),
            ),
            Matchers::default(),
            vec![Label::Host],
        );
        let holds = Holds {
            sources: Sources {
                inhibits: vec![rule].into(),
                ..Sources::default()
            },
            active: vec![
                active("switch-1", "rack1", Severity::Critical),
                active("switch-9", "rack9", Severity::Warning),
            ],
            ..Holds::default()
        };
        let c = Severity::Critical;
        assert_eq!(
            holds.inhibitor("web-1", "rack1", c, "service"),
            Some(("switch-1", 1))
        );
        assert_eq!(
            holds.inhibitor("web-2", "rack2", c, "service"),
            None,
            "other host"
        );
        // a warning source does not match `severity = "critical"`
        assert_eq!(holds.inhibitor("web-9", "rack9", c, "service"), None);
        // matching both sides: not held by another that matches both
        assert_eq!(holds.inhibitor("switch-2", "rack1", c, "check"), None);
        assert_eq!(
            holds.inhibitor("switch-1", "rack1", c, "check"),
            None,
            "not itself"
        );
        // through the veto: held with the reason, nobody counts as alerted
        let failed = run(
            &ServiceState::default(),
            Event::Failure(Severity::Critical),
            t(1),
            &Holds {
                active: vec![active("switch-1", "h", Severity::Critical)],
                ..holds.clone()
            },
        );
        assert!(matches!(
            &failed.decisions[0].action,
            Action::Suppress { reason: Reason::Inhibited { by, rule: 1 } } if by == "switch-1"
        ));
        assert!(failed.next.streak.as_ref().unwrap().recipients.is_empty());
    }

    proptest! {
        /// With nothing that matches (a silence and a maintenance window of other
        /// services, a dependency that is not failing) and no acknowledgement, every
        /// decision and state is the policy's.
        #[test]
        fn holds_that_match_nothing_change_nothing(
            events in prop::collection::vec((0u8..4, 1i64..200), 1..60),
        ) {
            let holds = Holds {
                sources: Sources {
                    maintenance: vec![Maintenance {
                        name: "m".into(),
                        matchers: Matchers::new(Patterns::parse(["re:^cache"]).unwrap(), Patterns::default(), None),
                        when: When::Once(t(0), t(100_000)),
                        comment: None,
                    }].into(),
                    // a dependency that is not failing
                    dependencies: std::sync::Arc::new(Dependencies {
                        services: [("web-1".to_owned(), vec!["network".to_owned()])].into(),
                        rules: BTreeMap::new(),
                    }),
                    held_recovery: true,
                    // an inhibit whose source is not failing
                    inhibits: vec![Inhibit::new(1, Matchers::new(Patterns::parse(["switch"]).unwrap(), Patterns::default(), None), Matchers::default(), Vec::new())].into(),
                    ..Sources::default()
                },
                silences: vec![silence(1, &["db-*"], 0, 100_000)],
                failing: BTreeSet::new(),
                active: vec![Active { service: "db".into(), host: "h".into(), severity: Severity::Critical, kind: "service".into() }],
            };
            let mut state = ServiceState::default();
            let mut now = 0;
            for (e, step) in events {
                now += step;
                let event = match e {
                    0 => Event::Failure(Severity::Warning),
                    1 => Event::Failure(Severity::Critical),
                    2 => Event::Success,
                    _ => Event::Tick,
                };
                let held = run(&state, event, t(now), &holds);
                let plain = run(&state, event, t(now), &Holds::default());
                prop_assert_eq!(&held.decisions, &plain.decisions);
                prop_assert_eq!(&held.next, &plain.next);
                state = held.next;
            }
        }
    }
}
