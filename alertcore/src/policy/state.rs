//! What the policy remembers about one service between events.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::alert::Ack;
use crate::alert::{EventKind, Severity, Timestamp, Trigger};

/// Per-service state. Serialised as JSON in the store, so fields only ever get added
/// (with `#[serde(default)]`), never renamed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ServiceState {
    /// The failure streak in progress, if the service is failing.
    #[serde(default)]
    pub streak: Option<Streak>,
    /// How many streaks this service has had; the current one's id.
    #[serde(default)]
    pub streaks: u64,
    /// When the service last reported success.
    #[serde(default)]
    pub last_success: Option<Timestamp>,
    /// Its recent changes of state, when flap detection is on (`[flapping]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flap: Option<FlapState>,
    /// The invocation id of the latest successful run whose output was sent
    /// (`on_success = "output"`): a run reported twice (the `OnSuccess=` handler and the
    /// watch) is sent once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_output: Option<String>,
}

/// The state a flap sample records: ok, or failed with a severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// A success.
    Ok,
    /// A failure of severity warning.
    Warning,
    /// A failure of severity critical.
    Critical,
}

impl From<Severity> for Health {
    fn from(s: Severity) -> Self {
        match s {
            Severity::Warning => Self::Warning,
            Severity::Critical => Self::Critical,
        }
    }
}

/// What flap detection remembers of a service (see `crate::flap`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FlapState {
    /// The last 20 events, newest in bit 0: a set bit is an event that changed the
    /// state.
    #[serde(default)]
    pub changes: u32,
    /// The state of the latest event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<Health>,
    /// When the state last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_change: Option<Timestamp>,
    /// Flapping since then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Timestamp>,
    /// The notifiers told that it is flapping, which are told when it settles.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notified: Vec<String>,
}

impl ServiceState {
    /// The state of a service that has none, after `streaks` streaks were forgotten
    /// (`alertctl clear`): its next streak gets a new id, so it cannot be confused with
    /// one whose notifications may still be in the outbox.
    pub(crate) fn after_clear(streaks: u64) -> Self {
        Self {
            streaks,
            ..Self::default()
        }
    }

    /// `true` while a failure streak is in progress.
    pub fn is_failing(&self) -> bool {
        self.streak.is_some()
    }

    /// Puts the state of recipient `name` in this state's streak back as it was in
    /// `before`: an alert that was not sent after all does not count as sent.
    pub(crate) fn restore_recipient(&mut self, before: &ServiceState, name: &str) {
        let Some(streak) = self.streak.as_mut() else {
            return;
        };
        match before.streak.as_ref().and_then(|s| s.recipients.get(name)) {
            Some(r) => {
                streak.recipients.insert(name.to_owned(), r.clone());
            }
            None => {
                streak.recipients.remove(name);
            }
        }
    }

    /// Since when the service is flapping, if it is.
    pub fn flapping_since(&self) -> Option<Timestamp> {
        self.flap.as_ref().and_then(|f| f.since)
    }

    /// For "what if" questions (`alertctl test`): the current streak (a new one if
    /// there is none) has `failures` failures so far and started at `started`.
    pub fn assume_streak(&mut self, failures: u32, started: Timestamp, severity: Severity) {
        let next_id = self.streaks + 1;
        let streak = self.streak.get_or_insert_with(|| Streak {
            id: next_id,
            started,
            last_failure: started,
            failures: 0,
            max_severity: severity,
            escalated: false,
            kind: None,
            host: None,
            trigger: None,
            recipients: BTreeMap::new(),
            invocations: Vec::new(),
            ack: None,
            held: None,
            held_for: Vec::new(),
        });
        streak.failures = failures;
        streak.started = started;
        streak.max_severity = severity;
        if streak.id == next_id {
            self.streaks = next_id;
        }
    }

    /// For "what if" questions: every notifier in `names` had a failure alert
    /// delivered at `at` in the current streak (none without a streak).
    pub fn assume_alerted<'a>(&mut self, names: impl IntoIterator<Item = &'a str>, at: Timestamp) {
        let Some(streak) = self.streak.as_mut() else {
            return;
        };
        for name in names {
            streak.recipients.insert(
                name.to_owned(),
                RecipientState {
                    first_alert: at,
                    last_alert: at,
                    last_kind: EventKind::Failure,
                    alerts: 1,
                    delivered: true,
                    outcome: Outcome::Delivered,
                    rule: None,
                },
            );
        }
    }
}

/// An unbroken run of failures, from the first one until a success.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Streak {
    /// Per-service streak number (1, 2, ...); with `started` it names the incident.
    pub id: u64,
    /// When the first failure of the streak was recorded.
    pub started: Timestamp,
    /// When the latest failure was recorded.
    pub last_failure: Timestamp,
    /// Consecutive failures so far.
    pub failures: u32,
    /// The worst severity seen in this streak.
    pub max_severity: Severity,
    /// Whether the one warning → critical escalation of this streak has happened.
    #[serde(default)]
    pub escalated: bool,
    /// The source kind when not a service (`FailureReport::kind`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The host its events are about when not the engine's (`FailureReport::host`, as
    /// the streak's first failure gave it): reminders and the recovery name it too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// What started the latest failed run, when known (`FailureReport::trigger`): its
    /// reminders are routed as it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Trigger>,
    /// What each notifier has been sent in this streak, by notifier name.
    #[serde(default)]
    pub recipients: BTreeMap<String, RecipientState>,
    /// The invocation ids of the streak's latest failures (up to
    /// [`Streak::INVOCATIONS_KEPT`]): a failure with one of them again is the same
    /// run reported twice (an `OnFailure=` handler and a watcher, two evaluators of one
    /// heartbeat), and is not counted again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub invocations: Vec<String>,
    /// Acknowledged (`alertctl ack`): no reminders for the rest of the streak.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack: Option<Ack>,
    /// The hold (a silence, a maintenance window) that kept the latest alert of the
    /// streak from being sent, until one is sent (`status`, `history`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<String>,
    /// The notifiers whose alert of this streak a hold kept back and that have not
    /// been sent one since: told "failed and recovered" on a recovery when
    /// `held_recovery` is on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held_for: Vec<String>,
}

impl Streak {
    /// How many invocation ids a streak remembers.
    pub const INVOCATIONS_KEPT: usize = 16;

    /// Remembers `id` as the invocation id of a failure of this streak.
    pub(crate) fn remember_invocation(&mut self, id: &str) {
        if self.invocations.iter().any(|x| x == id) {
            return;
        }
        if self.invocations.len() >= Self::INVOCATIONS_KEPT {
            self.invocations.remove(0);
        }
        self.invocations.push(id.to_owned());
    }
}

/// What one notifier has been sent during a streak.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RecipientState {
    /// When the first alert of the streak was sent to it.
    pub first_alert: Timestamp,
    /// When the latest alert was sent to it.
    pub last_alert: Timestamp,
    /// The kind of the latest alert.
    pub last_kind: EventKind,
    /// Alerts sent in this streak.
    pub alerts: u32,
    /// Whether at least one failure alert of this streak was delivered.
    pub delivered: bool,
    /// The outcome of the latest alert.
    pub outcome: Outcome,
    /// The rule (1-based position in `[[rules]]`) that routed the latest alert; a
    /// recovery goes out through the same rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<usize>,
}

/// The outcome of one delivery attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Written to the log, not yet answered.
    Pending,
    /// The notifier reported success.
    Delivered,
    /// The notifier reported an error.
    Failed,
}

impl Outcome {
    /// The lowercase name used in the store and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }
}

impl std::str::FromStr for Outcome {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pending" => Ok(Self::Pending),
            "delivered" => Ok(Self::Delivered),
            "failed" => Ok(Self::Failed),
            other => Err(format!("unknown outcome {other:?}")),
        }
    }
}

impl ServiceState {
    /// Makes `to` a pending recipient of streak `streak_id` (its alert of `kind` was
    /// handed over from `from` at `at`), unless it already is one: then it has its own
    /// alert and state. Ignored when the streak has ended.
    pub(crate) fn hand_over(
        &mut self,
        streak_id: u64,
        from: &str,
        to: &str,
        kind: EventKind,
        at: Timestamp,
    ) {
        let Some(streak) = self.streak.as_mut().filter(|s| s.id == streak_id) else {
            return;
        };
        let rule = streak.recipients.get(from).and_then(|r| r.rule);
        streak
            .recipients
            .entry(to.to_owned())
            .or_insert(RecipientState {
                first_alert: at,
                last_alert: at,
                last_kind: kind,
                alerts: 1,
                delivered: false,
                outcome: Outcome::Pending,
                rule,
            });
    }

    /// Records the outcome of an alert to `notifier` in streak `streak_id`.
    ///
    /// Ignored when the streak has ended or the notifier was sent something newer
    /// since (`sent_at` older than its latest alert).
    pub(crate) fn record_outcome(
        &mut self,
        streak_id: u64,
        notifier: &str,
        sent_at: Timestamp,
        outcome: Outcome,
    ) {
        let Some(streak) = self.streak.as_mut().filter(|s| s.id == streak_id) else {
            return;
        };
        let Some(r) = streak.recipients.get_mut(notifier) else {
            return;
        };
        if r.last_alert != sent_at {
            return;
        }
        r.outcome = outcome;
        if outcome == Outcome::Delivered {
            r.delivered = true;
        }
    }
}
