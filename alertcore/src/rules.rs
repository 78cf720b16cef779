//! Routing rules (`[[rules]]`): which notifier gets which alert, when and how often,
//! with the semantics of Xymon's `alerts.cfg`, and the explanation of every decision.
//!
//! Rules are evaluated in order against an event (service, host, severity, event,
//! source kind, time of day, streak duration). Each matching rule routes the event to
//! its `notify` list; the first rule that routes to a notifier decides its settings
//! (threshold, repeat, recovery, format). Then the [policy module](crate::policy) decides per
//! notifier, with repeat tracked per (service, notifier).
//!
//! - `stop = true`: no rule after a matching one is evaluated (xymon `STOP`).
//! - `ignore = true`: the event is dropped for the rule's notifiers (for every notifier
//!   and with an implicit stop when it lists none: xymon `IGNORE`).
//! - `unmatched = true`: the rule applies only when no other rule *sent* anything,
//!   where an alert held back by its repeat interval (or already sent, or in flight)
//!   counts as sent, as in xymon's code: the fallback stays quiet between reminders.
//! - Recoveries are not routed again: each goes to a notifier that had a failure alert
//!   delivered in this streak, through the rule that alerted it (its format, its
//!   `recovery` and `events`), so a page is always closed, even outside the rule's time
//!   window. Only a matching `ignore` rule drops it.
//!
//! With no `[[rules]]`, every notifier gets every event with the `[policy]` settings.

mod pattern;
mod spec;
mod timespec;
pub(crate) mod trace;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Serialize;

pub use pattern::{Pattern, Patterns};
pub(crate) use spec::build_rule;
pub use timespec::{TimeWindow, TimeWindows, parse_timezone};
pub(crate) use trace::{Plan, RuleOutcome, RuleTrace};

use crate::alert::{EventKind, Severity, Timestamp, Trigger};
use crate::duration;
use crate::notification::RuleRef;
use crate::policy::{self, Action, Decision, Event, Policy, Reason, ServiceState, Target};
use crate::template::{Format, FormatSpec};

/// One entry of a rule's `notify` list.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Recipient {
    /// The notifier's name.
    #[serde(rename = "to")]
    pub notifier: String,
    /// Overrides the rule's (or the global) `threshold`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<u32>,
    /// Overrides `repeat`.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "duration::option::serialize"
    )]
    pub repeat: Option<Duration>,
    /// Overrides `recovery`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery: Option<bool>,
    /// The message format settings given for this recipient.
    #[serde(skip)]
    pub format_spec: FormatSpec,
    /// Those settings compiled on top of the notifier's own format; `None`: the
    /// notifier's format.
    #[serde(skip)]
    pub format: Option<Format>,
}

impl Recipient {
    /// A recipient with no overrides.
    pub fn new(notifier: impl Into<String>) -> Self {
        Self {
            notifier: notifier.into(),
            threshold: None,
            repeat: None,
            recovery: None,
            format_spec: FormatSpec::default(),
            format: None,
        }
    }
}

/// One `[[rules]]` entry, resolved.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct Rule {
    /// 1-based position in `[[rules]]`.
    #[serde(skip)]
    pub index: usize,
    /// The config line where the rule starts (0 when built in code).
    #[serde(skip)]
    pub line: usize,
    /// Service name patterns; empty matches every service.
    #[serde(skip_serializing_if = "Patterns::is_empty")]
    pub services: Patterns,
    /// Service name patterns that exclude.
    #[serde(skip_serializing_if = "Patterns::is_empty")]
    pub exclude_services: Patterns,
    /// Host name patterns; empty matches every host.
    #[serde(skip_serializing_if = "Patterns::is_empty")]
    pub hosts: Patterns,
    /// Host name patterns that exclude.
    #[serde(skip_serializing_if = "Patterns::is_empty")]
    pub exclude_hosts: Patterns,
    /// Severities matched; `None` matches all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<Vec<Severity>>,
    /// Notification kinds sent; `None` sends all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<EventKind>>,
    /// Source kinds matched (`service` for systemd units); `None` matches all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<Vec<String>>,
    /// `on_success = "output"`: every successful run of a matching service sends its
    /// output to the rule's notifiers (cron's `MAILTO`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub output: bool,
    /// What must have started the failed run (`timer`, `boot`, `other`); `None`
    /// matches all, a list matches only failures whose trigger is known and in it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Vec<Trigger>>,
    /// Time windows the event must fall in; empty means always.
    #[serde(skip_serializing_if = "TimeWindows::is_empty")]
    pub time: TimeWindows,
    /// Time windows the event must not fall in.
    #[serde(skip_serializing_if = "TimeWindows::is_empty")]
    pub exclude_time: TimeWindows,
    /// Services whose failure holds this rule's alerts (`alertcore::hold`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// The streak must have lasted at least this long (xymon `DURATION>`).
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "duration::option::serialize"
    )]
    pub min_duration: Option<Duration>,
    /// The streak must have lasted less than this (xymon `DURATION<`).
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "duration::option::serialize"
    )]
    pub max_duration: Option<Duration>,
    /// Where it sends.
    pub notify: Vec<Recipient>,
    /// Overrides the global `threshold` for its recipients.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<u32>,
    /// Overrides `repeat`.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "duration::option::serialize"
    )]
    pub repeat: Option<Duration>,
    /// Overrides `recovery`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery: Option<bool>,
    /// No rule after this one is evaluated when it matches.
    pub stop: bool,
    /// Applies only when no other rule sent anything.
    pub unmatched: bool,
    /// Drops the event for its notifiers (for all, when it lists none).
    pub ignore: bool,
}

impl Rule {
    /// `rule 3 (line 42)`.
    pub fn name(&self) -> String {
        if self.line == 0 {
            format!("rule {}", self.index)
        } else {
            format!("rule {} (line {})", self.index, self.line)
        }
    }

    /// The policy for `recipient` under this rule, on top of `global`.
    pub fn policy_for(&self, recipient: &Recipient, global: &Policy) -> Policy {
        let mut p = global.clone();
        if let Some(n) = recipient.threshold.or(self.threshold) {
            p.threshold = n.max(1);
        }
        if let Some(d) = recipient.repeat.or(self.repeat) {
            p.repeat = d;
        }
        if let Some(on) = recipient.recovery.or(self.recovery) {
            p.recovery = on;
        }
        p
    }

    fn recipient(&self, notifier: &str) -> Option<&Recipient> {
        self.notify.iter().find(|r| r.notifier == notifier)
    }

    /// Why this rule does not match `e`, or `None` when it does.
    fn mismatch(&self, e: &Subject<'_>, zone: &Zone) -> Option<String> {
        if let Some(why) = names("service", e.service, &self.services, &self.exclude_services) {
            return Some(why);
        }
        if let Some(why) = names("host", e.host, &self.hosts, &self.exclude_hosts) {
            return Some(why);
        }
        if let Some(kinds) = &self.kind
            && !kinds.iter().any(|k| k == e.kind)
        {
            return Some(format!("kind {:?} not in kind {kinds:?}", e.kind));
        }
        if let Some(list) = &self.trigger
            && !e.trigger.is_some_and(|t| list.contains(&t))
        {
            let list = join(list);
            return Some(match e.trigger {
                Some(t) => format!("trigger {t} not in trigger {list}"),
                None => format!("the run's trigger is not known (trigger {list})"),
            });
        }
        if let (Some(sev), Some(list)) = (e.severity, &self.severity)
            && !list.contains(&sev)
        {
            return Some(format!("severity {sev} not in severity {}", join(list)));
        }
        if let Some(list) = &self.events {
            let wanted = match e.event {
                Event::Failure(_) | Event::Tick => list.iter().any(|k| k.is_failure()),
                Event::Success => list.contains(&EventKind::Recovery),
            };
            if !wanted {
                let what = match e.event {
                    Event::Failure(_) | Event::Tick => "a failure",
                    Event::Success => "a recovery",
                };
                return Some(format!("{what} is not in events {}", join(list)));
            }
        }
        if let Some(why) = self.outside_time(e.at, zone) {
            return Some(why);
        }
        if let Some(min) = self.min_duration
            && e.lasted < min
        {
            return Some(format!(
                "streak lasted {}, less than min_duration {}",
                duration::format(e.lasted),
                duration::format(min)
            ));
        }
        if let Some(max) = self.max_duration
            && e.lasted >= max
        {
            return Some(format!(
                "streak lasted {}, not less than max_duration {}",
                duration::format(e.lasted),
                duration::format(max)
            ));
        }
        None
    }
}

impl Rule {
    /// Why `at` is outside this rule's `time` or inside its `exclude_time`.
    fn outside_time(&self, at: Timestamp, zone: &Zone) -> Option<String> {
        let ms = at.as_millis();
        if !self.time.is_empty() && !self.time.contains_any_ms(ms, zone.get()) {
            return Some(format!(
                "{} is outside time {}",
                local_time(at, zone.get()),
                self.time
            ));
        }
        // (an empty list must not look the system's zone up)
        if self.exclude_time.is_empty() {
            return None;
        }
        self.exclude_time
            .first_match_ms(ms, zone.get())
            .map(|w| format!("{} is inside exclude_time {w}", local_time(at, zone.get())))
    }
}

fn names(what: &str, name: &str, include: &Patterns, exclude: &Patterns) -> Option<String> {
    if !include.is_empty() && include.first_match(name).is_none() {
        return Some(format!("{what} {name:?} matches none of {what}s {include}"));
    }
    exclude
        .first_match(name)
        .map(|p| format!("{what} {name:?} is excluded by exclude_{what}s {p}"))
}

fn join<T: fmt::Display>(list: &[T]) -> String {
    let items: Vec<String> = list.iter().map(ToString::to_string).collect();
    format!("[{}]", items.join(", "))
}

fn local_time(at: Timestamp, tz: &jiff::tz::TimeZone) -> String {
    jiff::Timestamp::from_millisecond(at.as_millis()).map_or_else(
        |_| at.to_string(),
        |t| {
            t.to_zoned(tz.clone())
                .strftime("%a %Y-%m-%d %H:%M %Z")
                .to_string()
        },
    )
}

/// The rules, with the time zone their time windows are read in.
#[derive(Debug, Clone)]
pub struct Router {
    rules: Vec<Rule>,
    timezone: Zone,
    timezone_name: String,
}

impl Default for Router {
    fn default() -> Self {
        Self::new(Vec::new(), None, "system")
    }
}

/// A time zone: configured, or the system's, looked up on first use (jiff's first
/// lookup indexes the whole zoneinfo tree, some 40 directory reads, which a handler
/// process that never reads a time should not pay). Clones share the lookup: the
/// router's rules and the engine's maintenance windows read one zone.
#[derive(Debug, Clone, Default)]
pub(crate) struct Zone(std::sync::Arc<std::sync::OnceLock<jiff::tz::TimeZone>>);

impl Zone {
    fn new(configured: Option<jiff::tz::TimeZone>) -> Self {
        Self(std::sync::Arc::new(
            configured
                .map(std::sync::OnceLock::from)
                .unwrap_or_default(),
        ))
    }

    pub(crate) fn get(&self) -> &jiff::tz::TimeZone {
        self.0.get_or_init(jiff::tz::TimeZone::system)
    }

    /// The zone if it is known without a lookup: configured, or looked up already.
    #[cfg(test)]
    pub(crate) fn known(&self) -> Option<&jiff::tz::TimeZone> {
        self.0.get()
    }
}

/// What an event is, as the rules see it.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Subject<'a> {
    /// The service.
    pub service: &'a str,
    /// The host.
    pub host: &'a str,
    /// The source kind (`service` for systemd units).
    pub kind: &'a str,
    /// A failure of some severity, a success, or a tick.
    pub event: Event,
    /// The failure's severity; for a tick, the streak's highest so far.
    pub severity: Option<Severity>,
    /// When.
    pub at: Timestamp,
    /// How long the streak has lasted at `at` (zero for a first failure).
    pub lasted: Duration,
    /// What started the failed run (for a tick or success: the streak's latest).
    pub trigger: Option<Trigger>,
}

impl<'a> Subject<'a> {
    /// `event` of `service` on `host` at `at`, seen against `state` (for the streak's
    /// duration and, for a success, its source kind).
    pub fn new(
        service: &'a str,
        host: &'a str,
        kind: Option<&'a str>,
        event: Event,
        at: Timestamp,
        state: &'a ServiceState,
    ) -> Self {
        let streak = state.streak.as_ref();
        Self {
            service,
            host,
            kind: kind
                .or_else(|| streak.and_then(|s| s.kind.as_deref()))
                .unwrap_or("service"),
            event,
            severity: match event {
                Event::Failure(s) => Some(s),
                Event::Tick => streak.map(|s| s.max_severity),
                Event::Success => None,
            },
            at,
            lasted: streak.map_or(Duration::ZERO, |s| at.saturating_duration_since(s.started)),
            trigger: streak.and_then(|s| s.trigger),
        }
    }

    /// Sets what started a failure's run.
    #[must_use]
    pub fn trigger(mut self, trigger: Option<Trigger>) -> Self {
        self.trigger = trigger;
        self
    }
}

impl Router {
    /// Rules evaluated in `timezone` (named `timezone_name` in explanations); `None`
    /// is the system's, looked up only when a time window or a time is read (finding
    /// its name scans the zone database: milliseconds at every handler start).
    pub fn new(
        rules: Vec<Rule>,
        timezone: Option<jiff::tz::TimeZone>,
        timezone_name: &str,
    ) -> Self {
        Self {
            rules,
            timezone: Zone::new(timezone),
            timezone_name: timezone_name.to_owned(),
        }
    }

    /// The rules, in order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The time zone rule time windows are read in.
    pub fn timezone(&self) -> &jiff::tz::TimeZone {
        self.timezone.get()
    }

    /// The same, shared: whoever looks it up first, everyone has it.
    pub(crate) fn zone(&self) -> &Zone {
        &self.timezone
    }

    /// Reads `text` as a time: RFC 3339 (`2026-11-23T03:00:00Z`), or a civil time in
    /// the rules' time zone (`2026-11-23 03:00`, `2026-11-23T03:00:15`).
    ///
    /// # Errors
    /// A message saying what is accepted.
    pub fn parse_time(&self, text: &str) -> Result<Timestamp, String> {
        let t = text.trim();
        let ts = t.parse::<jiff::Timestamp>().or_else(|_| {
            t.parse::<jiff::civil::DateTime>()
                .and_then(|dt| dt.to_zoned(self.timezone().clone()))
                .map(|z| z.timestamp())
        });
        ts.map(|ts| Timestamp::from_millis(ts.as_millisecond()))
            .map_err(|e| {
                format!("invalid time {text:?} ({e}); write e.g. \"2026-11-23 03:00\" (in the config's timezone) or \"2026-11-23T03:00:00Z\"")
            })
    }

    /// `at` in the rules' time zone, for people: `Mon 2026-11-23 03:00 CET`.
    pub fn local_time(&self, at: Timestamp) -> String {
        local_time(at, self.timezone())
    }

    /// The time zone's name as configured.
    pub fn timezone_name(&self) -> &str {
        &self.timezone_name
    }

    /// The rule at 1-based position `index`.
    pub fn rule(&self, index: usize) -> Option<&Rule> {
        index.checked_sub(1).and_then(|i| self.rules.get(i))
    }

    /// The notifiers a successful run of `service` on `host` at `at` sends its output
    /// to (`on_success = "output"`), each with the first rule that names it. A rule
    /// matches by its services, hosts and time windows (its other matchers describe a
    /// failure); a matching `stop` rule ends the search.
    pub fn output_targets(&self, service: &str, host: &str, at: Timestamp) -> Vec<(String, usize)> {
        let mut out: Vec<(String, usize)> = Vec::new();
        for rule in &self.rules {
            if names("service", service, &rule.services, &rule.exclude_services).is_some()
                || names("host", host, &rule.hosts, &rule.exclude_hosts).is_some()
                || rule.outside_time(at, &self.timezone).is_some()
            {
                continue;
            }
            if rule.output {
                for r in &rule.notify {
                    if !out.iter().any(|(n, _)| *n == r.notifier) {
                        out.push((r.notifier.clone(), rule.index));
                    }
                }
            }
            if rule.stop {
                break;
            }
        }
        out
    }

    /// Whether a rule matches on what started a run (`trigger`): only then is it worth
    /// finding out.
    pub fn uses_trigger(&self) -> bool {
        self.rules.iter().any(|r| r.trigger.is_some())
    }

    /// The id of rule `index`, for messages.
    pub fn rule_ref(&self, index: usize) -> Option<RuleRef> {
        self.rule(index).map(|r| RuleRef {
            index: r.index,
            line: r.line,
        })
    }

    /// Whether rule `index` (none: no rule) sends notifications of `kind` (its
    /// `events`).
    pub fn sends(&self, index: Option<usize>, kind: EventKind) -> bool {
        index
            .and_then(|i| self.rule(i))
            .and_then(|r| r.events.as_ref())
            .is_none_or(|e| e.contains(&kind))
    }

    /// The recipient entry of `notifier` in rule `index`.
    pub fn recipient(&self, index: Option<usize>, notifier: &str) -> Option<&Recipient> {
        self.rule(index?)?.recipient(notifier)
    }

    /// Routes `subject` and runs the policy: the one function behind both the real
    /// path and `alertctl test`.
    pub fn plan(
        &self,
        state: &ServiceState,
        subject: &Subject<'_>,
        notifiers: &[&str],
        global: &Policy,
    ) -> Plan {
        let mut plan = match subject.event {
            Event::Failure(_) | Event::Tick => self.plan_failure(state, subject, notifiers, global),
            Event::Success => self.plan_success(state, subject, notifiers, global),
        };
        if let (Event::Failure(_), Some(streak)) = (subject.event, plan.next.streak.as_mut())
            && streak.kind.is_none()
            && subject.kind != "service"
        {
            streak.kind = Some(subject.kind.to_owned());
        }
        if let (Event::Failure(_), Some(streak)) = (subject.event, plan.next.streak.as_mut()) {
            streak.trigger = subject.trigger;
        }
        plan
    }

    fn plan_failure(
        &self,
        state: &ServiceState,
        subject: &Subject<'_>,
        notifiers: &[&str],
        global: &Policy,
    ) -> Plan {
        if self.rules.is_empty() {
            let targets: Vec<Target<'_>> =
                notifiers.iter().map(|n| Target::new(n, global)).collect();
            let step = policy::step(state, subject.event, subject.at, &targets);
            return Plan {
                next: step.next,
                decisions: step.decisions,
                rules: Vec::new(),
            };
        }
        let mut walk = Walk::new(notifiers);
        for rule in self.rules.iter().filter(|r| !r.unmatched) {
            walk.visit(rule, subject, &self.timezone);
        }
        let policies = walk.policies(self, global);
        let step = policy::step(state, subject.event, subject.at, &walk.targets(&policies));
        let received = step.decisions.iter().any(|d| received(&d.action));
        let fallbacks: Vec<&Rule> = self.rules.iter().filter(|r| r.unmatched).collect();
        let step = if received || fallbacks.is_empty() {
            for rule in fallbacks {
                walk.skip(rule, RuleOutcome::NotNeeded);
            }
            step
        } else {
            for rule in fallbacks {
                walk.visit(rule, subject, &self.timezone);
            }
            let policies = walk.policies(self, global);
            policy::step(state, subject.event, subject.at, &walk.targets(&policies))
        };
        walk.finish(step)
    }

    fn plan_success(
        &self,
        state: &ServiceState,
        subject: &Subject<'_>,
        notifiers: &[&str],
        global: &Policy,
    ) -> Plan {
        let mut walk = Walk::new(notifiers);
        for rule in &self.rules {
            if rule.ignore {
                walk.visit(rule, subject, &self.timezone);
            } else if walk.stopped_by.is_some() {
                walk.skip(
                    rule,
                    RuleOutcome::Stopped {
                        by: walk.stopped_by.unwrap_or(0),
                    },
                );
            } else {
                walk.skip(rule, RuleOutcome::Recovery);
            }
        }
        // every notifier not ignored is a target, through the rule that alerted it
        let alerted = state.streak.as_ref().map(|s| &s.recipients);
        let routes: Vec<(usize, Option<usize>)> = notifiers
            .iter()
            .enumerate()
            .filter(|(_, n)| !walk.ignored.contains_key(**n) && walk.ignore_all.is_none())
            .map(|(i, n)| {
                let rule = alerted
                    .and_then(|a| a.get(*n))
                    .and_then(|r| r.rule)
                    .filter(|&idx| self.recipient(Some(idx), n).is_some());
                (i, rule)
            })
            .collect();
        let policies: Vec<Policy> = routes
            .iter()
            .map(|&(i, rule)| self.policy_of(rule, notifiers[i], global))
            .collect();
        let targets: Vec<Target<'_>> = routes
            .iter()
            .zip(&policies)
            .map(|(&(i, rule), p)| {
                Target::new(notifiers[i], p).rule(rule).events(
                    self.rule(rule.unwrap_or(0))
                        .and_then(|r| r.events.as_deref()),
                )
            })
            .collect();
        let step = policy::step(state, subject.event, subject.at, &targets);
        walk.finish(step)
    }

    fn policy_of(&self, rule: Option<usize>, notifier: &str, global: &Policy) -> Policy {
        match rule.and_then(|i| self.rule(i)) {
            Some(r) => r
                .recipient(notifier)
                .map_or_else(|| global.clone(), |rc| r.policy_for(rc, global)),
            None => global.clone(),
        }
    }
}

/// Whether a decision counts as "this recipient got the alert" for `unmatched` rules:
/// sent now, or held back only because it was sent before.
fn received(action: &Action) -> bool {
    match action {
        Action::Send { .. } => true,
        Action::Suppress { reason } => matches!(
            reason,
            Reason::InsideRepeatInterval { .. }
                | Reason::AlreadyAlerted { .. }
                | Reason::InFlight { .. }
        ),
    }
}

/// The state of one evaluation of the rules.
struct Walk<'n> {
    notifiers: &'n [&'n str],
    /// notifier → the rule that routed it (0: none)
    routed: BTreeMap<String, usize>,
    /// notifier → the ignore rule that dropped it
    ignored: BTreeMap<String, usize>,
    ignore_all: Option<usize>,
    stopped_by: Option<usize>,
    trace: Vec<RuleTrace>,
}

impl<'n> Walk<'n> {
    fn new(notifiers: &'n [&'n str]) -> Self {
        Self {
            notifiers,
            routed: BTreeMap::new(),
            ignored: BTreeMap::new(),
            ignore_all: None,
            stopped_by: None,
            trace: Vec::new(),
        }
    }

    fn skip(&mut self, rule: &Rule, outcome: RuleOutcome) {
        self.trace.push(RuleTrace {
            index: rule.index,
            line: rule.line,
            outcome,
            notes: Vec::new(),
        });
    }

    fn visit(&mut self, rule: &Rule, subject: &Subject<'_>, zone: &Zone) {
        // (`unmatched` rules are visited last, so compare positions)
        if let Some(by) = self.stopped_by.filter(|&by| by < rule.index) {
            return self.skip(rule, RuleOutcome::Stopped { by });
        }
        if let Some(why) = rule.mismatch(subject, zone) {
            return self.skip(rule, RuleOutcome::NoMatch { why });
        }
        let mut notes = Vec::new();
        if rule.ignore && rule.notify.is_empty() {
            self.ignore_all = Some(rule.index);
            self.stopped_by = Some(rule.index);
        }
        for r in &rule.notify {
            let name = r.notifier.as_str();
            if let Some(&by) = self.routed.get(name) {
                notes.push((name.to_owned(), format!("already routed by rule {by}")));
            } else if let Some(&by) = self.ignored.get(name) {
                notes.push((name.to_owned(), format!("ignored by rule {by}")));
            } else if rule.ignore {
                self.ignored.insert(name.to_owned(), rule.index);
            } else if !self.notifiers.contains(&name) {
                notes.push((name.to_owned(), "not a configured notifier".to_owned()));
            } else {
                self.routed.insert(name.to_owned(), rule.index);
            }
        }
        if rule.stop {
            self.stopped_by = Some(rule.index);
        }
        let outcome = if rule.ignore {
            RuleOutcome::Ignored
        } else {
            RuleOutcome::Matched
        };
        self.trace.push(RuleTrace {
            index: rule.index,
            line: rule.line,
            outcome,
            notes,
        });
    }

    /// The policy of each routed notifier, in notifier order.
    fn policies(&self, router: &Router, global: &Policy) -> Vec<(usize, usize, Policy)> {
        self.notifiers
            .iter()
            .enumerate()
            .filter_map(|(i, n)| {
                let &rule = self.routed.get(*n)?;
                Some((i, rule, router.policy_of(Some(rule), n, global)))
            })
            .collect()
    }

    fn targets<'p>(&self, policies: &'p [(usize, usize, Policy)]) -> Vec<Target<'p>>
    where
        'n: 'p,
    {
        policies
            .iter()
            .map(|(i, rule, p)| Target::new(self.notifiers[*i], p).rule(Some(*rule)))
            .collect()
    }

    /// One decision per notifier: the policy's for routed ones, a reason for the rest.
    fn finish(mut self, step: policy::Step) -> Plan {
        self.trace.sort_by_key(|t| t.index);
        let mut decided: BTreeMap<String, Decision> = step
            .decisions
            .into_iter()
            .map(|d| (d.notifier.clone(), d))
            .collect();
        let decisions = self
            .notifiers
            .iter()
            .map(|n| {
                decided.remove(*n).unwrap_or_else(|| {
                    let reason = match (self.ignored.get(*n), self.ignore_all) {
                        (Some(&rule), _) | (None, Some(rule)) => Reason::Ignored { rule },
                        (None, None) => Reason::NotRouted,
                    };
                    Decision::suppressed((*n).to_owned(), reason)
                })
            })
            .collect();
        Plan {
            next: step.next,
            decisions,
            rules: self.trace,
        }
    }
}

#[cfg(test)]
mod tests;
