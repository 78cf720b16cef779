//! The data model: timestamps, severities, failure records and event kinds.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// A point in time as integer Unix milliseconds, the unit the store keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The timestamp `ms` milliseconds after the Unix epoch.
    pub const fn from_millis(ms: i64) -> Self {
        Self(ms)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// Converts a [`SystemTime`], saturating at the ends of the `i64` range.
    pub fn from_system_time(t: SystemTime) -> Self {
        let ms = match t.duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            Err(e) => i64::try_from(e.duration().as_millis()).map_or(i64::MIN, |m| -m),
        };
        Self(ms)
    }

    /// The same instant as a [`SystemTime`].
    pub fn to_system_time(self) -> SystemTime {
        let magnitude = Duration::from_millis(self.0.unsigned_abs());
        if self.0 >= 0 {
            UNIX_EPOCH + magnitude
        } else {
            UNIX_EPOCH - magnitude
        }
    }

    /// `self + d`, saturating.
    pub fn saturating_add(self, d: Duration) -> Self {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Self(self.0.saturating_add(ms))
    }

    /// `self - d`, saturating.
    pub fn saturating_sub(self, d: Duration) -> Self {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Self(self.0.saturating_sub(ms))
    }

    /// How long after `earlier` this is; zero if it is not later.
    pub fn saturating_duration_since(self, earlier: Self) -> Duration {
        Duration::from_millis(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC, to the second.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // humantime formats years 0000-9999 only (and errors, which would make
        // `to_string()` panic, beyond): show the raw number outside that range
        const YEAR_10000_MS: i64 = 253_402_300_800_000;
        if !(0..YEAR_10000_MS).contains(&self.0) {
            return write!(f, "@{}ms", self.0);
        }
        write!(
            f,
            "{}",
            humantime::format_rfc3339_seconds(self.to_system_time())
        )
    }
}

/// How bad a failure is. Ordered: `Warning < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing, not yet urgent.
    Warning,
    /// Needs attention now. The default for a failed unit.
    Critical,
}

impl Severity {
    /// The lowercase name used in config, CLI and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "warning" => Ok(Self::Warning),
            "critical" => Ok(Self::Critical),
            other => Err(format!(
                "unknown severity {other:?}, expected \"warning\" or \"critical\""
            )),
        }
    }
}

/// What a notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// The first alert of a failure streak for this notifier.
    Failure,
    /// A repeated alert while the service is still failing (`repeat`).
    Reminder,
    /// The first warning → critical change of a streak; overrides `repeat`.
    Escalation,
    /// The service succeeded after an alert was delivered.
    Recovery,
    /// The service changes state so often that it is flapping (`[flapping]`): one
    /// notice instead of an alert per change, until it settles.
    Flapping,
    /// The failure streak was acknowledged (`alertctl ack --notify`): told to those
    /// already alerted.
    Acknowledged,
    /// Still failing, in a report of everything failing now (`alertctl report --send`,
    /// `[report]`).
    Report,
    /// A run that succeeded, with its output: cron's `MAILTO` for units a rule names
    /// with `on_success = "output"`. Not a recovery, and not sent by default.
    Output,
    /// A digest of counted lines (the journal's daily report): no failure, no streak;
    /// the lines are in [`Notification::digest`](crate::Notification::digest).
    Digest,
}

impl EventKind {
    /// The lowercase name used in the store, JSON and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Failure => "failure",
            Self::Reminder => "reminder",
            Self::Escalation => "escalation",
            Self::Recovery => "recovery",
            Self::Flapping => "flapping",
            Self::Acknowledged => "acknowledged",
            Self::Report => "report",
            Self::Output => "output",
            Self::Digest => "digest",
        }
    }

    /// Every kind, in the order of the documentation.
    pub const ALL: [Self; 9] = [
        Self::Failure,
        Self::Reminder,
        Self::Escalation,
        Self::Recovery,
        Self::Flapping,
        Self::Acknowledged,
        Self::Report,
        Self::Output,
        Self::Digest,
    ];

    /// `true` for the kinds sent while the service is in trouble (everything but
    /// recovery, a successful run's output and a digest).
    pub fn is_failure(self) -> bool {
        !matches!(self, Self::Recovery | Self::Output | Self::Digest)
    }

    /// `true` for the alerts the policy counts per recipient (failure, reminder,
    /// escalation): their delivery is what a recovery and a reminder follow. Notices
    /// (flapping, acknowledged) are sent beside them and change nothing there.
    pub fn is_alert(self) -> bool {
        matches!(self, Self::Failure | Self::Reminder | Self::Escalation)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "failure" => Ok(Self::Failure),
            "reminder" => Ok(Self::Reminder),
            "escalation" => Ok(Self::Escalation),
            "recovery" => Ok(Self::Recovery),
            "flapping" => Ok(Self::Flapping),
            "acknowledged" => Ok(Self::Acknowledged),
            "report" => Ok(Self::Report),
            "output" => Ok(Self::Output),
            "digest" => Ok(Self::Digest),
            other => Err(format!("unknown event kind {other:?}")),
        }
    }
}

/// An acknowledgement of a failure streak.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Ack {
    /// Who acknowledged it.
    pub by: String,
    /// When.
    pub at: Timestamp,
    /// Why, or what is being done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

impl Ack {
    /// An acknowledgement by `by` at `at`.
    pub fn new(by: impl Into<String>, at: Timestamp, comment: Option<String>) -> Self {
        Self {
            by: by.into(),
            at,
            comment,
        }
    }
}

/// What the caller knows about one failed run, as reported to the engine.
///
/// The engine adds the host and the timestamp and stores it as a [`Failure`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FailureReport {
    /// systemd's `Result=` of the run (`exit-code`, `signal`, `timeout`, ...).
    pub service_result: String,
    /// `exited`, `killed` or `dumped`.
    pub exit_code: Option<String>,
    /// The exit status number, or a signal name such as `TERM`.
    pub exit_status: Option<String>,
    /// systemd's invocation id of the failed run.
    pub invocation_id: Option<String>,
    /// `None` means [`Severity::Critical`].
    pub severity: Option<Severity>,
    /// Free text from the reporter.
    pub message: Option<String>,
    /// The source kind, for events that are not about a service (`node`, `fencing`,
    /// ...); rules can match it with `kind`. `None` means `service`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The host the failure is about, when not the engine's (a check of a remote
    /// target); the streak keeps it for its reminders and recovery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The source starts the failed thing again by itself (systemd's `Restart=`): the
    /// failure is one of a restart loop, and says so.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub restarting: bool,
    /// What started the failed run, when known; rules match it with `trigger`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Trigger>,
}

/// What started a systemd unit's run, as far as systemd records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Trigger {
    /// One of the unit's timers elapsed just before the run started.
    Timer,
    /// The run started while the system was booting.
    Boot,
    /// Anything else: `systemctl start`, another unit, a path or socket unit (systemd
    /// does not record who queued a start job).
    Other,
}

impl Trigger {
    /// `timer`, `boot` or `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timer => "timer",
            Self::Boot => "boot",
            Self::Other => "other",
        }
    }
}

impl FromStr for Trigger {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "timer" => Ok(Self::Timer),
            "boot" => Ok(Self::Boot),
            "other" => Ok(Self::Other),
            _ => Err(format!(
                "unknown trigger {s:?}: expected \"timer\", \"boot\" or \"other\""
            )),
        }
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FailureReport {
    /// A report with the given service result and nothing else.
    pub fn new(service_result: impl Into<String>) -> Self {
        Self {
            service_result: service_result.into(),
            ..Self::default()
        }
    }

    /// Sets the exit code (`exited`, `killed`, `dumped`).
    pub fn exit_code(mut self, v: impl Into<String>) -> Self {
        self.exit_code = Some(v.into());
        self
    }

    /// Sets the exit status.
    pub fn exit_status(mut self, v: impl Into<String>) -> Self {
        self.exit_status = Some(v.into());
        self
    }

    /// Sets the invocation id.
    pub fn invocation_id(mut self, v: impl Into<String>) -> Self {
        self.invocation_id = Some(v.into());
        self
    }

    /// Sets the severity.
    pub fn severity(mut self, v: Severity) -> Self {
        self.severity = Some(v);
        self
    }

    /// Sets the message.
    pub fn message(mut self, v: impl Into<String>) -> Self {
        self.message = Some(v.into());
        self
    }

    /// Sets the source kind (default `service`).
    pub fn kind(mut self, v: impl Into<String>) -> Self {
        self.kind = Some(v.into());
        self
    }

    /// Sets the host the failure is about (default: the engine's).
    pub fn host(mut self, v: impl Into<String>) -> Self {
        self.host = Some(v.into());
        self
    }

    /// Marks the failure as one of a restart loop.
    pub fn restarting(mut self, v: bool) -> Self {
        self.restarting = v;
        self
    }

    /// Sets what started the failed run.
    pub fn trigger(mut self, v: Trigger) -> Self {
        self.trigger = Some(v);
        self
    }
}

/// One recorded failure of a service: an entry of its failure history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Failure {
    /// systemd's `Result=` of the run.
    pub service_result: String,
    /// `exited`, `killed` or `dumped`.
    pub exit_code: Option<String>,
    /// The exit status number or signal name.
    pub exit_status: Option<String>,
    /// The invocation id of the failed run.
    pub invocation_id: Option<String>,
    /// When the failure was recorded.
    pub timestamp: Timestamp,
    /// How bad it was.
    pub severity: Severity,
    /// The host it happened on.
    pub host: String,
    /// Free text from the reporter.
    pub message: Option<String>,
    /// The notifiers an alert about this failure was sent to (empty when suppressed).
    #[serde(default)]
    pub notifiers: Vec<String>,
    /// The source restarts the failed thing by itself ([`FailureReport::restarting`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub restarting: bool,
    /// What started the failed run, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Trigger>,
}

impl Failure {
    /// Builds the record for `report`, seen on `host` at `timestamp`.
    pub fn from_report(report: &FailureReport, host: &str, timestamp: Timestamp) -> Self {
        Self {
            service_result: report.service_result.clone(),
            exit_code: report.exit_code.clone(),
            exit_status: report.exit_status.clone(),
            invocation_id: report.invocation_id.clone(),
            timestamp,
            severity: report.severity.unwrap_or(Severity::Critical),
            host: host.to_owned(),
            message: report.message.clone(),
            notifiers: Vec::new(),
            restarting: report.restarting,
            trigger: report.trigger,
        }
    }

    /// `exit-code, status=1` style summary used in subjects and console lines.
    pub fn summary(&self) -> String {
        let mut s = if self.service_result.is_empty() {
            "failed".to_owned()
        } else {
            self.service_result.clone()
        };
        if let Some(status) = &self.exit_status {
            s.push_str(", status=");
            s.push_str(status);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_round_trips_and_formats() {
        let t = Timestamp::from_millis(1_763_700_000_000);
        assert_eq!(Timestamp::from_system_time(t.to_system_time()), t);
        assert_eq!(t.to_string(), "2025-11-21T04:40:00Z");
        assert_eq!(
            t.saturating_add(Duration::from_secs(1)).as_millis(),
            1_763_700_001_000
        );
        assert_eq!(
            t.saturating_duration_since(t.saturating_add(Duration::from_secs(5))),
            Duration::ZERO
        );
        assert_eq!(
            t.saturating_sub(Duration::from_secs(1)).as_millis(),
            1_763_699_999_000
        );
        assert_eq!(
            Timestamp::from_millis(i64::MIN + 1).saturating_sub(Duration::from_secs(1)),
            Timestamp::from_millis(i64::MIN)
        );
        assert_eq!(
            Timestamp::from_millis(i64::MAX).to_string(),
            format!("@{}ms", i64::MAX)
        );
        assert_eq!(Timestamp::from_millis(-1).to_string(), "@-1ms");
    }

    #[test]
    fn severity_orders_and_parses() {
        assert!(Severity::Warning < Severity::Critical);
        assert_eq!("warning".parse::<Severity>(), Ok(Severity::Warning));
        assert!("red".parse::<Severity>().is_err());
    }

    #[test]
    fn summary_names_result_and_status() {
        let r = FailureReport::new("exit-code")
            .exit_code("exited")
            .exit_status("1");
        let f = Failure::from_report(&r, "h", Timestamp::from_millis(0));
        assert_eq!(f.summary(), "exit-code, status=1");
        assert_eq!(f.severity, Severity::Critical);
    }
}
