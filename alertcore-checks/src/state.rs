//! What a check remembers between runs, and what one more run makes of it: a pure
//! function, so the counting rules (threshold, `within`, `recover_after`) are tested
//! without a clock or a store.

use std::time::Duration;

use alertcore::{Severity, Timestamp};
use serde::{Deserialize, Serialize};

use crate::outcome::{Outcome, Status};
use crate::spec::Check;

/// The state of one check, as saved in the store (`alertctl status` reads it there).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CheckState {
    /// The kind of the check, for display.
    #[serde(default)]
    pub kind: String,
    /// The last run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<LastRun>,
    /// Since when the last run's status has held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_since: Option<Timestamp>,
    /// Failed runs in a row (0 after a passing run).
    #[serde(default)]
    pub failed_in_row: u32,
    /// Passing runs in a row (0 after a failed run).
    #[serde(default)]
    pub ok_in_row: u32,
    /// The last runs, newest in bit 0: 1 failed, 0 passed (for `within`).
    #[serde(default)]
    pub recent: u64,
    /// How many runs `recent` holds (at most 64).
    #[serde(default)]
    pub recent_len: u32,
    /// Set while the check counts as failed (its failure was reported to the engine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing: Option<Failing>,
    /// When the next run is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run: Option<Timestamp>,
}

/// The last run of a check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LastRun {
    /// When it started.
    pub at: Timestamp,
    /// How long it took, in milliseconds.
    pub took_ms: u64,
    /// What it found.
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// A check that counts as failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Failing {
    /// The run that made it count as failed.
    pub since: Timestamp,
}

/// What one run means for the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing to report: a passing check passed again, a failed run below the
    /// threshold, or a passing run of a failed check before `recover_after`.
    Quiet,
    /// A failed run of a check that counts as failed: a failure of this severity.
    Failure(Severity),
    /// The check no longer counts as failed: a success.
    Recovery,
}

/// What [`CheckState::observe`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Observed {
    /// What to tell the engine.
    pub verdict: Verdict,
    /// Whether the status changed (ok → critical, warning → critical, ...) or the check
    /// started or stopped counting as failed: worth a durable write now, not only at
    /// the next checkpoint.
    pub changed: bool,
}

impl CheckState {
    /// Whether the check counts as failed.
    pub fn is_failing(&self) -> bool {
        self.failing.is_some()
    }

    /// Whether its last run failed (counting as failed or not yet).
    pub fn last_failed(&self) -> bool {
        self.last
            .as_ref()
            .is_some_and(|l| !l.outcome.status.is_ok())
    }

    /// Records a run of `check` that started `at`, took `took` and found `outcome`.
    pub fn observe(
        &mut self,
        check: &Check,
        mut outcome: Outcome,
        at: Timestamp,
        took: Duration,
    ) -> Observed {
        // kept until the next run, for every check: a datum pushed into an empty list
        // reserves room for four (some 430 bytes unused per check)
        outcome.perfdata.shrink_to_fit();
        let status = outcome.status;
        let failed = !status.is_ok();
        let status_changed = self.last.as_ref().map(|l| l.outcome.status) != Some(status);
        if status_changed {
            self.status_since = Some(at);
        }
        if self.kind != check.kind() {
            self.kind = check.kind().to_owned();
        }
        self.last = Some(LastRun {
            at,
            took_ms: u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
            outcome,
        });
        self.recent = (self.recent << 1) | u64::from(failed);
        self.recent_len = (self.recent_len + 1).min(64);
        if failed {
            self.failed_in_row = self.failed_in_row.saturating_add(1);
            self.ok_in_row = 0;
        } else {
            self.ok_in_row = self.ok_in_row.saturating_add(1);
            self.failed_in_row = 0;
        }
        let (verdict, flipped) = match (self.failing.is_some(), check.severity(status)) {
            (false, Some(severity)) if self.counts_as_failed(check) => {
                self.failing = Some(Failing { since: at });
                (Verdict::Failure(severity), true)
            }
            (true, Some(severity)) => (Verdict::Failure(severity), false),
            (true, None) if self.ok_in_row >= check.recover_after => {
                self.failing = None;
                (Verdict::Recovery, true)
            }
            _ => (Verdict::Quiet, false),
        };
        Observed {
            verdict,
            changed: status_changed || flipped,
        }
    }

    /// Whether the failed runs reach the check's threshold: in a row, or among the last
    /// `within` runs.
    fn counts_as_failed(&self, check: &Check) -> bool {
        match check.within {
            None => self.failed_in_row >= check.threshold,
            Some(within) => {
                let window = within.min(self.recent_len).min(64);
                let mask = if window >= 64 {
                    u64::MAX
                } else {
                    (1u64 << window) - 1
                };
                (self.recent & mask).count_ones() >= check.threshold
            }
        }
    }

    /// Whether a failed run has happened but the check does not count as failed yet.
    pub fn below_threshold(&self) -> bool {
        self.failing.is_none() && self.last_failed()
    }

    /// The status of the last run, if any.
    pub fn status(&self) -> Option<Status> {
        self.last.as_ref().map(|l| l.outcome.status)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use alertcore::Severity;

    use super::*;
    use crate::kind::Probe;

    /// A probe for tests: returns the outcomes it was given in turn (then ok), and
    /// notes when each run started; a hanging one never returns.
    #[derive(Debug, Default)]
    pub(crate) struct Scripted {
        next: std::sync::Mutex<std::collections::VecDeque<Outcome>>,
        runs: std::sync::Mutex<Vec<tokio::time::Instant>>,
        hang: bool,
    }

    impl Scripted {
        pub(crate) fn new(outcomes: impl IntoIterator<Item = Outcome>) -> Arc<Self> {
            Arc::new(Self {
                next: std::sync::Mutex::new(outcomes.into_iter().collect()),
                ..Self::default()
            })
        }

        pub(crate) fn hanging() -> Arc<Self> {
            Arc::new(Self {
                hang: true,
                ..Self::default()
            })
        }

        /// When each run started.
        pub(crate) fn runs(&self) -> Vec<tokio::time::Instant> {
            self.runs
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone()
        }
    }

    #[async_trait::async_trait]
    impl Probe for Scripted {
        fn kind(&self) -> &'static str {
            "scripted"
        }
        async fn run(&self, _timeout: Duration) -> Outcome {
            self.runs
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(tokio::time::Instant::now());
            if self.hang {
                std::future::pending::<()>().await;
            }
            let next = self
                .next
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .pop_front();
            next.unwrap_or_else(|| Outcome::ok("ok"))
        }
    }

    pub(crate) fn check(threshold: u32, within: Option<u32>, recover_after: u32) -> Check {
        Check {
            name: "web".to_owned(),
            host: None,
            probe: Arc::new(Scripted::default()),
            interval: Duration::from_secs(10),
            cron: None,
            retry_interval: None,
            timeout: Duration::from_secs(5),
            threshold,
            within,
            recover_after,
            unknown: Severity::Warning,
            source: 0,
        }
    }

    /// Feeds runs (`.` ok, `w` warning, `c` critical, `u` unknown) and returns what
    /// each meant for the engine: `-` quiet, `W`/`C` a failure, `R` a recovery.
    fn feed(check: &Check, runs: &str) -> String {
        let mut state = CheckState::default();
        runs.chars()
            .enumerate()
            .map(|(i, c)| {
                let outcome = match c {
                    '.' => Outcome::ok("fine"),
                    'w' => Outcome::warning("slow"),
                    'c' => Outcome::critical("down"),
                    _ => Outcome::unknown("?"),
                };
                let at = Timestamp::from_millis(i64::try_from(i).unwrap_or(0) * 1000);
                match state.observe(check, outcome, at, Duration::ZERO).verdict {
                    Verdict::Quiet => '-',
                    Verdict::Failure(Severity::Warning) => 'W',
                    Verdict::Failure(Severity::Critical) => 'C',
                    Verdict::Recovery => 'R',
                }
            })
            .collect()
    }

    /// The last run is kept for every check until its next run: 10,000 checks kept
    /// some 4 MiB of room for perfdata nobody would add (heaptrack of the daemon).
    #[test]
    fn the_kept_run_holds_no_spare_room_for_perfdata() {
        let c = check(1, None, 1);
        let mut state = CheckState::default();
        let outcome =
            Outcome::ok("fine").perf(crate::outcome::PerfDatum::new("time", Some(0.1), "s"));
        assert!(outcome.perfdata.capacity() > 1, "the case this guards");
        state.observe(&c, outcome, Timestamp::from_millis(0), Duration::ZERO);
        let kept = &state.last.as_ref().expect("last run").outcome.perfdata;
        assert_eq!((kept.len(), kept.capacity()), (1, 1));
    }

    #[test]
    fn a_threshold_counts_failed_runs_in_a_row() {
        let c = check(3, None, 1);
        assert_eq!(feed(&c, "cc.ccc.."), "-----CR-");
        // every failed run of a failed check goes to the engine, with its severity
        assert_eq!(feed(&c, "cccwc.c"), "--CWCR-");
    }

    #[test]
    fn within_counts_failed_runs_among_the_last_runs() {
        // Monit's "3 cycles within 5"
        let c = check(3, Some(5), 1);
        assert_eq!(feed(&c, "c.c.c"), "----C");
        // only two failures in any five runs: never
        assert_eq!(feed(&c, "c..c..c..c"), "----------");
    }

    #[test]
    fn recover_after_needs_passing_runs_in_a_row() {
        let c = check(1, None, 3);
        assert_eq!(feed(&c, "c..c...."), "C--C--R-");
    }

    #[test]
    fn unknown_takes_the_configured_severity() {
        let mut c = check(1, None, 1);
        assert_eq!(feed(&c, "u."), "WR");
        c.unknown = Severity::Critical;
        assert_eq!(feed(&c, "u."), "CR");
    }

    #[test]
    fn a_change_of_status_or_of_counting_is_worth_saving_at_once() {
        let c = check(2, None, 2);
        let mut state = CheckState::default();
        let mut changed = Vec::new();
        for (i, o) in [
            Outcome::ok("a"),
            Outcome::ok("b"),
            Outcome::critical("x"),
            Outcome::critical("y"),
            Outcome::critical("z"),
            Outcome::ok("c"),
            Outcome::ok("d"),
        ]
        .into_iter()
        .enumerate()
        {
            let at = Timestamp::from_millis(i64::try_from(i).unwrap_or(0));
            changed.push(state.observe(&c, o, at, Duration::ZERO).changed);
        }
        // new, same, ok→critical, starts counting, same, critical→ok, recovers
        assert_eq!(changed, [true, false, true, true, false, true, true]);
    }
}
