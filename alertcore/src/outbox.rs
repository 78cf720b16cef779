//! Durable delivery: per-notifier retry settings and the backoff schedule (the engine
//! writes, claims and sends the rows; the store keeps them).
//!
//! Every notification is a row of the store's outbox, written in the same transaction as
//! the state change that caused it. The process that wrote it sends it at once; when that
//! fails with a retryable error, the row stays pending with its next attempt time, and
//! whoever flushes next ([`Engine::flush`](crate::Engine::flush), `alertctl flush`, the
//! next `alertctl failure`) sends it again, until it is delivered, fails permanently, or
//! `retry_for` / `max_attempts` run out. Then it is failed, and reported; with a
//! `fallback`, the alert is handed to that notifier in the same transaction, naming the
//! notifier that lost it.
//!
//! Limits (`max_concurrent`, `max_per_minute`) are enforced by the store where rows are
//! claimed, so they hold across every process sharing the state file: a row over a limit
//! stays pending (due when the limit allows) and whoever flushes next sends it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::alert::Timestamp;
use crate::duration;
use crate::error::BuildError;
use crate::table::Table;

/// The first retry comes this long after a failed attempt; each later one waits twice as
/// long, up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_secs(30);

/// The longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// How long a `Retry-After` from the receiver may push the next attempt out.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(6 * 3600);

/// The default of `retry_for`.
pub const DEFAULT_RETRY_FOR: Duration = Duration::from_secs(24 * 3600);

/// The default of `max_concurrent`: deliveries of one notifier in flight at once, over
/// all processes sharing the state file.
pub const DEFAULT_MAX_CONCURRENT: u32 = 8;

/// The outbox settings a notifier table may carry; like the format keys, they are the
/// same for every transport and the transport never sees them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct DeliverySpec {
    /// How long to keep trying a retryable failure (default 24 h).
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub retry_for: Option<Duration>,
    /// Give up after this many attempts (default: only `retry_for` limits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// The notifier that gets the alert when this one fails permanently or gives up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
    /// At most this many deliveries started per minute (default: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_per_minute: Option<u32>,
    /// At most this many deliveries in flight at once (default
    /// [`DEFAULT_MAX_CONCURRENT`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<u32>,
    /// A recovery that comes while its failure alert still waits for a retry replaces
    /// it: one "failed and recovered" notice instead of two (default: both, in order).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub collapse: bool,
    /// Send in groups: a notification waits this long for others, then everything
    /// waiting for this notifier goes out as one message (default: one message per
    /// notification). The notifier must be able to send groups.
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub group_wait: Option<Duration>,
    /// With `group_wait`: at least this long between two groups (default
    /// [`DEFAULT_GROUP_INTERVAL`]).
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub group_interval: Option<Duration>,
}

/// The `group_interval` of a notifier with `group_wait` and no interval of its own
/// (Alertmanager's).
pub const DEFAULT_GROUP_INTERVAL: Duration = Duration::from_secs(300);

/// At most this many notifications go in one group; the rest wait for the next.
pub(crate) const MAX_GROUP: usize = 500;

impl DeliverySpec {
    /// The keys above, as they appear in a notifier's table.
    pub const KEYS: &'static [&'static str] = &[
        "retry_for",
        "max_attempts",
        "fallback",
        "max_per_minute",
        "max_concurrent",
        "collapse",
        "group_wait",
        "group_interval",
    ];

    /// Splits a notifier's table into its delivery settings and the rest.
    ///
    /// # Errors
    /// A [`BuildError`] naming the bad key.
    pub fn split(table: &Table) -> Result<(Self, Table), BuildError> {
        let (spec, rest): (Self, _) = table.split(Self::KEYS)?;
        for (key, value, what) in [
            ("max_attempts", spec.max_attempts, "1: never retry"),
            (
                "max_per_minute",
                spec.max_per_minute,
                "leave it out for no limit",
            ),
            ("max_concurrent", spec.max_concurrent, "1: one at a time"),
        ] {
            if value == Some(0) {
                return Err(BuildError::key(
                    key,
                    format!("{key} must be at least 1 ({what})"),
                ));
            }
        }
        if spec.group_interval.is_some() && spec.group_wait.is_none() {
            return Err(BuildError::key(
                "group_interval",
                "group_interval needs group_wait (how long a first notification waits for others)",
            ));
        }
        if spec.group_interval.is_some_and(|d| d.is_zero()) {
            return Err(BuildError::key(
                "group_interval",
                "group_interval must be longer than 0s",
            ));
        }
        Ok((spec, rest))
    }

    /// With `group_wait`: how long a new notification waits, and the least time between
    /// two groups.
    pub fn grouping(&self) -> Option<(Duration, Duration)> {
        self.group_wait
            .map(|wait| (wait, self.group_interval.unwrap_or(DEFAULT_GROUP_INTERVAL)))
    }

    /// The limits the store enforces when it hands out this notifier's rows.
    pub fn limits(&self) -> Limits {
        Limits {
            max_concurrent: Some(self.max_concurrent.unwrap_or(DEFAULT_MAX_CONCURRENT)),
            max_per_minute: self.max_per_minute,
            group_interval: self.grouping().map(|(_, interval)| interval),
        }
    }

    /// The effective `retry_for`.
    pub fn retry_for(&self) -> Duration {
        self.retry_for.unwrap_or(DEFAULT_RETRY_FOR)
    }

    /// What to do after attempt number `attempts` (1 for the first) of a row created at
    /// `created` failed at `now`: retry at the returned time, or give up (`None`).
    ///
    /// The wait doubles from [`FIRST_BACKOFF`] up to [`MAX_BACKOFF`], with up to 25 %
    /// jitter (`jitter` in `0.0..1.0`) so that a fleet does not retry in lockstep; a
    /// receiver's `Retry-After` (bounded by [`MAX_RETRY_AFTER`]) is honoured when longer.
    pub fn next_attempt(
        &self,
        created: Timestamp,
        now: Timestamp,
        attempts: u32,
        retry_after: Option<Duration>,
        jitter: f64,
    ) -> Option<Timestamp> {
        if self.max_attempts.is_some_and(|max| attempts >= max) {
            return None;
        }
        let exp = attempts.saturating_sub(1).min(16);
        let backoff = FIRST_BACKOFF.saturating_mul(1 << exp).min(MAX_BACKOFF);
        let backoff = backoff.mul_f64(1.0 + 0.25 * jitter.clamp(0.0, 1.0));
        let wait = retry_after
            .map(|r| r.min(MAX_RETRY_AFTER))
            .map_or(backoff, |r| r.max(backoff));
        let next = now.saturating_add(wait);
        let deadline = created.saturating_add(self.retry_for());
        (next <= deadline).then_some(next)
    }

    /// `retry_for = "1d"`-style text for messages.
    pub fn describe(&self) -> String {
        let mut s = format!("retry_for {}", duration::format(self.retry_for()));
        if let Some(n) = self.max_attempts {
            s.push_str(&format!(", max_attempts {n}"));
        }
        s
    }
}

/// How many of one notifier's rows the store may have in flight, and start per minute.
/// `None` is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Rows claimed (leased, not yet finished) at once.
    pub max_concurrent: Option<u32>,
    /// Rows claimed per minute.
    pub max_per_minute: Option<u32>,
    /// Sent in groups, no two closer than this: when one of the notifier's rows is
    /// due, every row of it waiting for its first attempt (or due) is claimed at once,
    /// up to 500, whatever the other limits say (a group is one message).
    pub group_interval: Option<Duration>,
}

impl Limits {
    /// No limits.
    pub const NONE: Self = Self {
        max_concurrent: None,
        max_per_minute: None,
        group_interval: None,
    };

    /// Sets `max_concurrent`.
    #[must_use]
    pub fn max_concurrent(mut self, n: Option<u32>) -> Self {
        self.max_concurrent = n;
        self
    }

    /// Sets `max_per_minute`.
    #[must_use]
    pub fn max_per_minute(mut self, n: Option<u32>) -> Self {
        self.max_per_minute = n;
        self
    }

    /// Sets `group_interval` (grouped rows).
    #[must_use]
    pub fn group_interval(mut self, d: Option<Duration>) -> Self {
        self.group_interval = d;
        self
    }
}

/// The per-minute limit as a generic cell rate algorithm over one stored number, the
/// theoretical arrival time `tat` (ms; `None` before the first row): a burst of up to
/// `per_minute` rows, then one every `60 s / per_minute`. Returns the new `tat` when a
/// row may start at `now`, or the time from which one may.
///
/// # Errors
/// The earliest time (ms) a row may start, when it may not now.
pub(crate) fn admit(tat: Option<i64>, now: i64, per_minute: u32) -> Result<i64, i64> {
    let interval = 60_000 / i64::from(per_minute.max(1));
    let tolerance = 60_000 - interval;
    let tat = tat.unwrap_or(now).max(now);
    if tat - now > tolerance {
        Err(tat - tolerance)
    } else {
        Ok(tat + interval)
    }
}

/// What a store does with a row its caller wants to claim, given the notifier's
/// limits, how many of its rows are in flight, and its stored rate state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Claim it; store the new rate state (when there is a per-minute limit).
    Claim(Option<i64>),
    /// `max_concurrent` are in flight: leave it due for whoever frees a slot.
    Busy,
    /// Over `max_per_minute`: make it due at this time (ms).
    Later(i64),
}

impl Limits {
    /// Decides for one row at `now` (ms).
    pub(crate) fn admit(self, in_flight: u32, tat: Option<i64>, now: i64) -> Admission {
        if self.max_concurrent.is_some_and(|max| in_flight >= max) {
            return Admission::Busy;
        }
        match self.max_per_minute.map(|n| admit(tat, now, n)) {
            None => Admission::Claim(None),
            Some(Ok(tat)) => Admission::Claim(Some(tat)),
            Some(Err(at)) => Admission::Later(at),
        }
    }
}

/// The admission of the rows of one claim, notifier by notifier. Each notifier's
/// in-flight count and rate state are read once, at its first row, and then kept up to
/// date as its rows are claimed; once a notifier is busy its other rows are passed over
/// without a look at the store. So a claim over `P` waiting rows costs `O(P)` reads, not
/// `O(P²)` (a burst leaves hundreds of rows behind a busy notifier, and every handler's
/// flush claims).
pub(crate) struct Gates<'a> {
    wanted: Option<&'a [(&'a str, Limits)]>,
    open: Vec<Gate>,
}

struct Gate {
    notifier: String,
    limits: Limits,
    in_flight: u32,
    tat: Option<i64>,
    rate_changed: bool,
    busy: bool,
}

impl<'a> Gates<'a> {
    /// For the notifiers a caller asked for (`None`: every notifier, without limits).
    pub(crate) fn new(wanted: Option<&'a [(&'a str, Limits)]>) -> Self {
        Self {
            wanted,
            open: Vec::new(),
        }
    }

    /// Decides for one row of `notifier` at `now` (ms); `None` when the caller did not
    /// ask for that notifier. `load` reads the notifier's rows in flight and its rate
    /// state, the first time only, and only for the limits it has.
    pub(crate) fn admit<E>(
        &mut self,
        notifier: &str,
        now: i64,
        load: impl FnOnce(&str, Limits) -> Result<(u32, Option<i64>), E>,
    ) -> Result<Option<Admission>, E> {
        let Some(gate) = self.gate(notifier, load)? else {
            return Ok(None);
        };
        if gate.busy {
            return Ok(Some(Admission::Busy));
        }
        let admission = gate.limits.admit(gate.in_flight, gate.tat, now);
        match admission {
            Admission::Claim(tat) => {
                gate.in_flight = gate.in_flight.saturating_add(1);
                if tat.is_some() {
                    gate.tat = tat;
                    gate.rate_changed = true;
                }
            }
            Admission::Busy => gate.busy = true,
            Admission::Later(_) => {}
        }
        Ok(Some(admission))
    }

    /// How many more rows of `notifier` may be claimed at once: 0 when the caller did not
    /// ask for it or it has `max_concurrent` rows in flight (then it is busy), else the
    /// slots left (`usize::MAX` without that limit); `load` as for [`Gates::admit`].
    pub(crate) fn room<E>(
        &mut self,
        notifier: &str,
        load: impl FnOnce(&str, Limits) -> Result<(u32, Option<i64>), E>,
    ) -> Result<usize, E> {
        let Some(gate) = self.gate(notifier, load)? else {
            return Ok(0);
        };
        let room = match gate.limits.max_concurrent {
            None => usize::MAX,
            Some(max) => usize::try_from(max.saturating_sub(gate.in_flight)).unwrap_or(0),
        };
        gate.busy |= room == 0;
        Ok(if gate.busy { 0 } else { room })
    }

    fn gate<E>(
        &mut self,
        notifier: &str,
        load: impl FnOnce(&str, Limits) -> Result<(u32, Option<i64>), E>,
    ) -> Result<Option<&mut Gate>, E> {
        if let Some(i) = self.open.iter().position(|g| g.notifier == notifier) {
            return Ok(Some(&mut self.open[i]));
        }
        let limits = match self.wanted {
            None => Limits::NONE,
            Some(list) => match list.iter().find(|(n, _)| *n == notifier) {
                Some((_, limits)) => *limits,
                None => return Ok(None),
            },
        };
        let (in_flight, tat) = if limits == Limits::NONE {
            (0, None)
        } else {
            load(notifier, limits)?
        };
        self.open.push(Gate {
            notifier: notifier.to_owned(),
            limits,
            in_flight,
            tat,
            rate_changed: false,
            busy: false,
        });
        Ok(self.open.last_mut())
    }

    /// Whether every notifier asked for is known to be busy: nothing more can be
    /// claimed in this call.
    pub(crate) fn all_busy(&self) -> bool {
        self.wanted.is_some_and(|list| {
            list.iter()
                .all(|(n, _)| self.open.iter().any(|g| g.notifier == *n && g.busy))
        })
    }

    /// The rate states this claim changed, to be stored with it.
    pub(crate) fn rates(&self) -> impl Iterator<Item = (&str, i64)> {
        self.open
            .iter()
            .filter(|g| g.rate_changed)
            .filter_map(|g| Some((g.notifier.as_str(), g.tat?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_millis(s * 1000)
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_then_stops_at_retry_for() {
        let spec = DeliverySpec::default();
        let waits: Vec<i64> = (1..=9)
            .map(|n| {
                spec.next_attempt(at(0), at(0), n, None, 0.0)
                    .unwrap()
                    .as_millis()
                    / 1000
            })
            .collect();
        assert_eq!(waits, [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]);
        // the last attempt that still fits in 24 h
        assert!(
            spec.next_attempt(at(0), at(86_400 - 3600), 20, None, 0.0)
                .is_some()
        );
        assert!(
            spec.next_attempt(at(0), at(86_400 - 3599), 20, None, 0.0)
                .is_none()
        );
    }

    #[test]
    fn max_attempts_and_retry_after_and_jitter() {
        let spec = DeliverySpec {
            retry_for: Some(Duration::from_secs(7200)),
            max_attempts: Some(3),
            ..DeliverySpec::default()
        };
        assert!(spec.next_attempt(at(0), at(0), 2, None, 0.0).is_some());
        assert!(spec.next_attempt(at(0), at(0), 3, None, 0.0).is_none());
        let later = spec.next_attempt(at(0), at(0), 1, Some(Duration::from_secs(600)), 0.0);
        assert_eq!(later, Some(at(600)));
        // a Retry-After beyond retry_for gives up rather than wait past it
        let far = spec.next_attempt(at(0), at(0), 1, Some(Duration::from_secs(9000)), 0.0);
        assert_eq!(far, None);
        let jittered = spec.next_attempt(at(0), at(0), 1, None, 1.0).unwrap();
        assert_eq!(jittered, Timestamp::from_millis(37_500));
    }

    #[test]
    fn split_takes_its_keys_and_checks_them() {
        let t = Table::parse("type = \"console\"\nretry_for = \"2h\"\nmax_attempts = 5\n").unwrap();
        let (spec, rest) = DeliverySpec::split(&t).unwrap();
        assert_eq!(spec.retry_for(), Duration::from_secs(7200));
        assert_eq!(spec.max_attempts, Some(5));
        assert_eq!(rest.keys().collect::<Vec<_>>(), ["type"]);
        let bad = Table::parse("max_attempts = 0\n").unwrap();
        let e = DeliverySpec::split(&bad).unwrap_err();
        assert_eq!(e.offending_key(), Some("max_attempts"));
        let bad = Table::parse("retry_for = \"later\"\n").unwrap();
        assert_eq!(
            DeliverySpec::split(&bad).unwrap_err().offending_key(),
            Some("retry_for")
        );
    }

    #[test]
    fn the_rate_limit_allows_a_burst_then_one_per_interval() {
        // 6 per minute: six at once, then one every 10 s
        let mut tat = None;
        for _ in 0..6 {
            tat = Some(admit(tat, 0, 6).expect("within the burst"));
        }
        assert_eq!(admit(tat, 0, 6), Err(10_000));
        assert_eq!(admit(tat, 9_999, 6), Err(10_000));
        let t = admit(tat, 10_000, 6).expect("one slot freed");
        assert_eq!(admit(Some(t), 10_000, 6), Err(20_000));
        // after a quiet minute the whole burst is back
        let mut tat = Some(t);
        for _ in 0..6 {
            tat = Some(admit(tat, 200_000, 6).expect("burst again"));
        }
        assert!(admit(tat, 200_000, 6).is_err());
    }

    #[test]
    fn limits_default_to_a_concurrency_cap_and_reject_zero() {
        let t = Table::parse("fallback = \"ops\"\nmax_per_minute = 10\n").unwrap();
        let (spec, rest) = DeliverySpec::split(&t).unwrap();
        assert!(rest.is_empty());
        assert_eq!(spec.fallback.as_deref(), Some("ops"));
        assert_eq!(
            spec.limits(),
            Limits::NONE
                .max_concurrent(Some(DEFAULT_MAX_CONCURRENT))
                .max_per_minute(Some(10))
        );
        for key in ["max_per_minute", "max_concurrent"] {
            let bad = Table::parse(&format!("{key} = 0\n")).unwrap();
            assert_eq!(
                DeliverySpec::split(&bad).unwrap_err().offending_key(),
                Some(key)
            );
        }
    }

    #[test]
    fn gates_read_each_notifier_once_and_keep_count() {
        let hook = Limits::NONE.max_concurrent(Some(2));
        let mail = Limits::NONE.max_per_minute(Some(2));
        let wanted = [("hook", hook), ("mail", mail)];
        let mut gates = Gates::new(Some(&wanted));
        let mut loads = Vec::new();
        let mut admit = |gates: &mut Gates<'_>, n: &str| {
            gates
                .admit(n, 0, |n, l| {
                    loads.push((n.to_owned(), l));
                    Ok::<_, ()>((1, None))
                })
                .unwrap()
        };
        assert_eq!(admit(&mut gates, "other"), None);
        // one in flight already: one more, then busy for good
        assert_eq!(admit(&mut gates, "hook"), Some(Admission::Claim(None)));
        assert_eq!(admit(&mut gates, "hook"), Some(Admission::Busy));
        assert_eq!(admit(&mut gates, "hook"), Some(Admission::Busy));
        assert!(!gates.all_busy());
        // two per minute: a burst of two, then the third is due 30 s on
        assert_eq!(
            admit(&mut gates, "mail"),
            Some(Admission::Claim(Some(30_000)))
        );
        assert_eq!(
            admit(&mut gates, "mail"),
            Some(Admission::Claim(Some(60_000)))
        );
        assert_eq!(admit(&mut gates, "mail"), Some(Admission::Later(30_000)));
        assert!(!gates.all_busy());
        assert_eq!(gates.rates().collect::<Vec<_>>(), [("mail", 60_000)]);
        assert_eq!(
            loads,
            [("hook".to_owned(), hook), ("mail".to_owned(), mail)]
        );
        let only_hook = [("hook", hook)];
        let mut gates = Gates::new(Some(&only_hook));
        for _ in 0..2 {
            gates
                .admit("hook", 0, |_, _| Ok::<_, ()>((0, None)))
                .unwrap();
        }
        assert!(!gates.all_busy());
        gates
            .admit("hook", 0, |_, _| Ok::<_, ()>((0, None)))
            .unwrap();
        assert!(gates.all_busy());
    }

    #[test]
    fn gates_without_a_list_claim_everything_unread() {
        let mut gates = Gates::new(None);
        for _ in 0..100 {
            let a = gates.admit("any", 0, |_, _| Err("read")).unwrap();
            assert_eq!(a, Some(Admission::Claim(None)));
        }
        assert!(!gates.all_busy());
    }
}
