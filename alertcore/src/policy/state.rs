//! What the policy remembers about one service between events.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::alert::{EventKind, Severity, Timestamp};

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
}

impl ServiceState {
    /// `true` while a failure streak is in progress.
    pub fn is_failing(&self) -> bool {
        self.streak.is_some()
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
    /// What each notifier has been sent in this streak, by notifier name.
    #[serde(default)]
    pub recipients: BTreeMap<String, RecipientState>,
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
    /// Records the outcome of an alert to `notifier` in streak `streak_id`.
    ///
    /// Ignored when the streak has ended or the notifier was sent something newer
    /// since (`sent_at` older than its latest alert).
    pub fn record_outcome(
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
