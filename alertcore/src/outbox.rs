//! Durable delivery: per-notifier retry settings and the backoff schedule (the engine
//! writes, claims and sends the rows; the store keeps them).
//!
//! Every notification is a row of the store's outbox, written in the same transaction as
//! the state change that caused it. The process that wrote it sends it at once; when that
//! fails with a retryable error, the row stays pending with its next attempt time, and
//! whoever flushes next ([`Engine::flush`](crate::Engine::flush), `alertctl flush`, the
//! next `alertctl failure`) sends it again, until it is delivered, fails permanently, or
//! `retry_for` / `max_attempts` run out. Then it is failed, and reported.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::alert::Timestamp;
use crate::config::{BuildError, duration_serde, split_keys};

/// The first retry comes this long after a failed attempt; each later one waits twice as
/// long, up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_secs(30);

/// The longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// How long a `Retry-After` from the receiver may push the next attempt out.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(6 * 3600);

/// The default of `retry_for`.
pub const DEFAULT_RETRY_FOR: Duration = Duration::from_secs(24 * 3600);

/// The outbox settings a notifier table may carry; like the format keys, they are the
/// same for every transport and the transport never sees them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RetrySpec {
    /// How long to keep trying a retryable failure (default 24 h).
    #[serde(
        default,
        with = "duration_serde::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub retry_for: Option<Duration>,
    /// Give up after this many attempts (default: only `retry_for` limits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
}

impl RetrySpec {
    /// The keys above, as they appear in a notifier's table.
    pub const KEYS: &'static [&'static str] = &["retry_for", "max_attempts"];

    /// Splits a notifier's table into its retry settings and the rest.
    ///
    /// # Errors
    /// A [`BuildError`] naming the bad key.
    pub fn split(table: &toml::Table) -> Result<(Self, toml::Table), BuildError> {
        let (spec, rest): (Self, _) = split_keys(table, Self::KEYS)?;
        if spec.max_attempts == Some(0) {
            return Err(BuildError::key(
                "max_attempts",
                "max_attempts must be at least 1 (1: never retry)",
            ));
        }
        Ok((spec, rest))
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
        let mut s = format!("retry_for {}", duration_serde::format(self.retry_for()));
        if let Some(n) = self.max_attempts {
            s.push_str(&format!(", max_attempts {n}"));
        }
        s
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
        let spec = RetrySpec::default();
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
        let spec = RetrySpec {
            retry_for: Some(Duration::from_secs(7200)),
            max_attempts: Some(3),
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
        let t: toml::Table =
            toml::from_str("type = \"console\"\nretry_for = \"2h\"\nmax_attempts = 5\n").unwrap();
        let (spec, rest) = RetrySpec::split(&t).unwrap();
        assert_eq!(spec.retry_for(), Duration::from_secs(7200));
        assert_eq!(spec.max_attempts, Some(5));
        assert_eq!(rest.len(), 1);
        let bad: toml::Table = toml::from_str("max_attempts = 0\n").unwrap();
        let e = RetrySpec::split(&bad).unwrap_err();
        assert_eq!(e.offending_key(), Some("max_attempts"));
        let bad: toml::Table = toml::from_str("retry_for = \"later\"\n").unwrap();
        assert_eq!(
            RetrySpec::split(&bad).unwrap_err().offending_key(),
            Some("retry_for")
        );
    }
}
