//! What the policy decided for each notifier, and why.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::alert::{EventKind, Timestamp};

/// The decision for one notifier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Decision {
    /// The notifier's configured name.
    pub notifier: String,
    /// Send or hold back.
    pub action: Action,
    /// The rule (1-based position in `[[rules]]`) that routed the event to it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<usize>,
}

/// Send something, or hold back and say why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum Action {
    /// Send a notification of this kind.
    Send {
        /// What the notification is about.
        kind: EventKind,
    },
    /// Send nothing.
    Suppress {
        /// Why not.
        reason: Reason,
    },
}

/// Why a notification was held back. Shown in logs, `alertctl` output and JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Reason {
    /// Fewer consecutive failures than `threshold`.
    BelowThreshold {
        /// Consecutive failures so far.
        failures: u32,
        /// The configured threshold.
        threshold: u32,
    },
    /// The streak has not lasted `min_duration` yet.
    BelowMinDuration {
        /// How long the streak has lasted, in seconds.
        lasted_s: u64,
        /// The configured minimum, in seconds.
        min_duration_s: u64,
    },
    /// Already alerted in this streak and `repeat` is off.
    AlreadyAlerted {
        /// When the alert was sent.
        since: Timestamp,
    },
    /// Already alerted; the next reminder is due at `until`.
    InsideRepeatInterval {
        /// When the next reminder is due.
        until: Timestamp,
    },
    /// An alert is still pending in the outbox (being sent or retried).
    InFlight {
        /// When it was sent.
        since: Timestamp,
    },
    /// Tick: the last alert was not delivered (given up, or failed permanently); the
    /// next failure sends it again.
    Undelivered {
        /// When it was sent.
        since: Timestamp,
    },
    /// Recovery: this notifier never received a failure alert in this streak.
    NotAlerted,
    /// Recovery: `recovery = false`.
    RecoveryDisabled,
    /// Success while no failure streak was in progress.
    NotFailing,
    /// The rule that routed the event here does not send this kind (its `events`).
    KindNotRouted {
        /// What would have been sent.
        kind: EventKind,
    },
    /// No rule sends this event to this notifier.
    NotRouted,
    /// A matching `ignore = true` rule dropped the event for this notifier.
    Ignored {
        /// The rule's position in `[[rules]]`.
        rule: usize,
    },
    /// A silence or a maintenance window holds the alert; it goes out once the hold is
    /// over, if the service is still failing then.
    Held {
        /// `silence 3`, `maintenance "patch night"`.
        by: String,
        /// When the hold ends, if known.
        #[serde(skip_serializing_if = "Option::is_none")]
        until: Option<Timestamp>,
    },
    /// A service this one (or the rule that routed it) depends on is failing; the
    /// alert goes out once it recovers, if this one is still failing then.
    DependsOn {
        /// The failing dependency.
        on: String,
    },
    /// The service is flapping (`[flapping]`): one notice was sent when it started,
    /// one goes out when it settles, nothing per change in between.
    Flapping {
        /// Since when.
        since: Timestamp,
        /// Its weighted percentage of state changes in the last 20 events now.
        percent: u8,
    },
    /// An `[[inhibit]]` rule holds the alert while another service is failing; it goes
    /// out once that one recovers, if this one is still failing then.
    Inhibited {
        /// The failing service that inhibits it.
        by: String,
        /// The rule's 1-based place among `[[inhibit]]`.
        rule: usize,
    },
    /// The streak was acknowledged: no reminders.
    Acknowledged {
        /// Who acknowledged it.
        by: String,
        /// When.
        at: Timestamp,
    },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BelowThreshold {
                failures,
                threshold,
            } => write!(f, "below threshold ({failures} of {threshold} failures)"),
            Self::BelowMinDuration {
                lasted_s,
                min_duration_s,
            } => write!(
                f,
                "streak shorter than min_duration ({} of {})",
                fmt_secs(*lasted_s),
                fmt_secs(*min_duration_s)
            ),
            Self::AlreadyAlerted { since } => {
                write!(f, "already alerted at {since} and repeat is off")
            }
            Self::InsideRepeatInterval { until } => {
                write!(f, "inside repeat interval until {until}")
            }
            Self::InFlight { since } => {
                write!(f, "an alert sent at {since} is still pending in the outbox")
            }
            Self::Undelivered { since } => write!(
                f,
                "the alert of {since} was not delivered; the next failure sends it again"
            ),
            Self::NotAlerted => f.write_str("no failure alert was delivered in this streak"),
            Self::RecoveryDisabled => f.write_str("recovery notifications are off"),
            Self::NotFailing => f.write_str("service was not failing"),
            Self::KindNotRouted { kind } => write!(f, "its rule sends no {kind} notifications"),
            Self::NotRouted => f.write_str("no rule sends this event to it"),
            Self::Ignored { rule } => write!(f, "ignored by rule {rule}"),
            Self::Held {
                by,
                until: Some(until),
            } => write!(f, "held by {by} until {until}"),
            Self::Held { by, until: None } => write!(f, "held by {by}"),
            Self::DependsOn { on } => write!(f, "depends on {on}, which is failing"),
            Self::Flapping { since, percent } => write!(
                f,
                "flapping since {since} ({percent}% state changes in the last 20 events)"
            ),
            Self::Inhibited { by, rule } => {
                write!(f, "inhibited by {by}, which is failing (inhibit {rule})")
            }
            Self::Acknowledged { by, at } => write!(f, "acknowledged by {by} at {at}"),
        }
    }
}

fn fmt_secs(s: u64) -> String {
    humantime::format_duration(Duration::from_secs(s)).to_string()
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Send {
                kind: EventKind::Failure,
            } => f.write_str("send failure alert"),
            Self::Send { kind } => write!(f, "send {kind}"),
            Self::Suppress { reason } => write!(f, "suppressed: {reason}"),
        }
    }
}

impl Decision {
    /// A decision to send nothing to `notifier`, for `reason`.
    pub fn suppressed(notifier: String, reason: Reason) -> Self {
        Self {
            notifier,
            action: Action::Suppress { reason },
            rule: None,
        }
    }

    /// The kind to send, if this decision sends anything.
    pub fn send_kind(&self) -> Option<EventKind> {
        match self.action {
            Action::Send { kind } => Some(kind),
            Action::Suppress { .. } => None,
        }
    }
}
