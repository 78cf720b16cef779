//! Timers that did not fire (`[systemd] timers`).
//!
//! For each watched timer the watch keeps the elapse systemd expects next
//! (`NextElapseUSecRealtime`, as the timer's signals give it) until the timer fires
//! (`LastTriggerUSec` reaches it). A timer that is stopped, disabled or unloaded, or
//! whose manager skipped it, never reaches it: once the expected time plus the timer's
//! own `AccuracySec=` and `RandomizedDelaySec=` plus `timer_grace` has passed, the
//! timer's failure is recorded (`did not fire: expected T, last run D ago`), and its
//! next elapse is the recovery. Each expected elapse is reported once.
//!
//! The expected time is what systemd computed, so every kind of timer (`OnCalendar=`,
//! `OnUnitActiveSec=`, ...) is covered with no calendar arithmetic here. A timer
//! stopped while the daemon was not running has no next elapse to expect, and is not
//! noticed until it is started again.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alertcore::{FailureReport, Timestamp, chain};
use zbus::zvariant::{OwnedObjectPath, OwnedValue};

use crate::{TIMER, UNIT, WatchError, Watcher, changed, micros};

/// A timer fired for an expected elapse if it fired at most this much before it
/// (systemd's timers may be coalesced a little early).
const EARLY: u64 = 500_000;

/// The watched timers.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    by_path: HashMap<OwnedObjectPath, Timer>,
    /// Timers seen that are not watched, so their signals cost no lookup.
    ignored: HashSet<OwnedObjectPath>,
}

/// What is known of one timer; times in µs since the epoch, 0 for none.
#[derive(Debug, Default)]
struct Timer {
    name: String,
    /// The next elapse systemd computed and the timer has not reached yet.
    expected: u64,
    /// The latest elapse.
    last: u64,
    accuracy: u64,
    random: u64,
    /// The expected elapse last reported as missed.
    reported: u64,
    /// Whether a missed elapse is reported and the timer has not fired since.
    missed: bool,
}

impl Timer {
    /// Takes what `props` (a `PropertiesChanged` or `GetAll` of the timer) says;
    /// whether the timer fired.
    fn update(&mut self, props: &HashMap<String, OwnedValue>) -> bool {
        let get = |k: &str| props.get(k).and_then(|v| u64::try_from(v.clone()).ok());
        if let Some(a) = get("AccuracyUSec") {
            self.accuracy = a;
        }
        if let Some(r) = get("RandomizedDelayUSec") {
            self.random = r;
        }
        let mut fired = false;
        if let Some(last) = get("LastTriggerUSec").filter(|l| *l > self.last) {
            fired = self.last != 0 || self.expected != 0;
            self.last = last;
        }
        // systemd's current schedule is what counts (a timer restarted, or edited, is
        // expected when systemd now says); a stopped or running one has none (0 or
        // infinity) and keeps the last
        let some = |n: &u64| *n != 0 && *n != u64::MAX;
        let realtime = get("NextElapseUSecRealtime").filter(some);
        let monotonic = get("NextElapseUSecMonotonic")
            .filter(some)
            .map(|m| realtime_now().saturating_add(m.saturating_sub(monotonic_now())));
        if let Some(next) = realtime.into_iter().chain(monotonic).min() {
            self.expected = next;
        }
        fired
    }

    /// Whether the timer fired for the expected elapse.
    fn reached(&self) -> bool {
        self.last != 0 && self.last.saturating_add(EARLY) >= self.expected
    }

    /// When the expected elapse counts as missed, if one is pending.
    fn due(&self, grace: Duration) -> Option<u64> {
        (self.expected != 0 && !self.reached() && self.reported != self.expected).then(|| {
            self.expected
                .saturating_add(self.accuracy)
                .saturating_add(self.random)
                .saturating_add(micros(grace))
        })
    }
}

impl Timers {
    /// How long until the next timer is due.
    pub(crate) fn next_due(&self, grace: Duration, now: u64) -> Option<Duration> {
        self.by_path
            .values()
            .filter_map(|t| t.due(grace))
            .min()
            .map(|due| Duration::from_micros(due.saturating_sub(now)))
    }
}

/// Now, in µs since the epoch (systemd's realtime timestamps).
pub(crate) fn realtime_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Now, in µs of `CLOCK_MONOTONIC` (systemd's monotonic timestamps).
fn monotonic_now() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    u64::try_from(t.tv_sec)
        .unwrap_or(0)
        .saturating_mul(1_000_000)
        .saturating_add(u64::try_from(t.tv_nsec / 1000).unwrap_or(0))
}

/// A realtime µs timestamp as alertcore writes times.
fn when(us: u64) -> String {
    Timestamp::from_millis(i64::try_from(us / 1000).unwrap_or(i64::MAX)).to_string()
}

impl Watcher {
    /// Reads every loaded timer the watch covers.
    pub(crate) async fn read_timers(&mut self) -> Result<(), WatchError> {
        for (name, path) in self.list(&[], &["*.timer"]).await? {
            self.learn_timer(path, name).await;
        }
        Ok(())
    }

    /// Starts following `path` (named `name`) if it is watched.
    async fn learn_timer(&mut self, path: OwnedObjectPath, name: String) {
        if !self.config.watches_timer(&name) {
            self.timers.ignored.insert(path);
            return;
        }
        let mut timer = Timer {
            name,
            ..Timer::default()
        };
        match self.all(&path, TIMER).await {
            Ok(props) => {
                timer.update(&props);
            }
            Err(e) => tracing::warn!("systemd watch: {}", chain(&e)),
        }
        tracing::debug!(
            timer = timer.name,
            "following; expected {}",
            when(timer.expected)
        );
        self.timers.by_path.insert(path, timer);
    }

    /// A timer's properties changed: it may have fired, or have a new next elapse.
    pub(crate) async fn timer_message(&mut self, msg: &zbus::Message) {
        let Some((path, props)) = changed(msg) else {
            return;
        };
        if self.timers.ignored.contains(&path) {
            return;
        }
        if !self.timers.by_path.contains_key(&path) {
            match self.get::<String>(&path, UNIT, "Id").await {
                Ok(name) => self.learn_timer(path.clone(), name).await,
                Err(e) => tracing::warn!("systemd watch: {}", chain(&e)),
            }
        }
        let Some(timer) = self.timers.by_path.get_mut(&path) else {
            return;
        };
        if timer.update(&props) && timer.missed {
            timer.missed = false;
            let name = timer.name.clone();
            self.recovered(&name).await;
        }
    }

    /// Records every timer past its due time that did not fire.
    pub(crate) async fn missed_timers(&mut self) {
        let now = realtime_now();
        let grace = self.config.timer_grace;
        let due: Vec<OwnedObjectPath> = self
            .timers
            .by_path
            .iter()
            .filter(|(_, t)| t.due(grace).is_some_and(|d| d <= now))
            .map(|(p, _)| p.clone())
            .collect();
        for path in due {
            // the signal of a late elapse may still be on its way: ask
            let last = self.get::<u64>(&path, TIMER, "LastTriggerUSec").await.ok();
            let Some(timer) = self.timers.by_path.get_mut(&path) else {
                continue;
            };
            if let Some(last) = last {
                timer.last = timer.last.max(last);
            }
            if timer.reached() {
                continue;
            }
            timer.reported = timer.expected;
            timer.missed = true;
            let last_run = match timer.last {
                0 => "never run".to_owned(),
                l => format!(
                    "last run {} ago",
                    alertcore::duration::format(Duration::from_secs(
                        now.saturating_sub(l) / 1_000_000
                    ))
                ),
            };
            let report = FailureReport::new("missed").message(format!(
                "did not fire: expected {}, {last_run}",
                when(timer.expected)
            ));
            let name = timer.name.clone();
            match self.engine.failure(&name, report).await {
                Ok(r) => tracing::info!(timer = name, "did not fire ({} in streak)", r.failures),
                Err(e) => {
                    tracing::error!(timer = name, "cannot record the failure: {}", chain(&e));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, u64)]) -> HashMap<String, OwnedValue> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), OwnedValue::from(*v)))
            .collect()
    }

    const S: u64 = 1_000_000;

    #[test]
    fn a_timer_is_due_after_its_slack_and_grace_until_it_fires() {
        let grace = Duration::from_secs(10);
        let mut t = Timer::default();
        let fired = t.update(&props(&[
            ("NextElapseUSecRealtime", 100 * S),
            ("LastTriggerUSec", 40 * S),
            ("AccuracyUSec", S),
            ("RandomizedDelayUSec", 2 * S),
        ]));
        assert!(!fired, "what is known at the start is not an elapse");
        assert_eq!(t.due(grace), Some(113 * S));
        // stopped: systemd says no next elapse (infinity), the expected one stays
        t.update(&props(&[
            ("NextElapseUSecRealtime", u64::MAX),
            ("NextElapseUSecMonotonic", u64::MAX),
        ]));
        assert_eq!(t.due(grace), Some(113 * S));
        t.update(&props(&[("NextElapseUSecRealtime", 0)]));
        assert_eq!(t.due(grace), Some(113 * S));
        // it fires: the next one is expected
        assert!(t.update(&props(&[
            ("LastTriggerUSec", 100 * S + 300),
            ("NextElapseUSecRealtime", 160 * S),
        ])));
        assert_eq!(t.due(grace), Some(173 * S));
        // reported missed: not due again until a new elapse is expected
        t.reported = t.expected;
        assert_eq!(t.due(grace), None);
        t.update(&props(&[("NextElapseUSecRealtime", 220 * S)]));
        assert_eq!(t.due(grace), Some(233 * S));
    }

    #[test]
    fn a_monotonic_elapse_is_placed_in_real_time() {
        let mut t = Timer::default();
        let (real, mono) = (realtime_now(), monotonic_now());
        t.update(&props(&[("NextElapseUSecMonotonic", mono + 10 * S)]));
        let off = t.expected.abs_diff(real + 10 * S);
        assert!(off < S, "{off} µs off");
        // with a calendar elapse too, the earlier one is next
        t.update(&props(&[
            ("NextElapseUSecMonotonic", mono + 10 * S),
            ("NextElapseUSecRealtime", real + 5 * S),
        ]));
        assert_eq!(t.expected, real + 5 * S);
    }

    #[test]
    fn the_schedule_is_systemds_current_one() {
        let mut t = Timer::default();
        t.update(&props(&[("NextElapseUSecRealtime", 100 * S)]));
        // restarted before it elapsed: systemd computes a later one, which counts
        t.update(&props(&[("NextElapseUSecRealtime", 150 * S)]));
        assert_eq!(t.due(Duration::ZERO), Some(150 * S));
    }
}
