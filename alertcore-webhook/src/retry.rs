//! Retry decisions within one delivery: which answers are worth another attempt, how
//! long to wait before it, and reading `Retry-After`. Plain functions, no I/O.

use std::time::{Duration, SystemTime};

/// Whether an HTTP status is worth another attempt: 429 (too many requests) and every
/// 5xx. Other 4xx mean the request itself is wrong and sending it again cannot help.
pub(crate) fn status_is_retryable(status: u16) -> bool {
    status == 429 || (500..=599).contains(&status)
}

/// Capped exponential backoff: `initial`, `2 × initial`, `4 × initial`, ... never more
/// than `max`, each jittered down by up to half ("equal jitter"), so that many senders
/// failing at once do not come back in step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Backoff {
    pub(crate) initial: Duration,
    pub(crate) max: Duration,
}

impl Backoff {
    /// The wait before retry number `retry` (0 for the first retry); `unit` is a random
    /// number in `[0, 1)`.
    pub(crate) fn delay(&self, retry: u32, unit: f64) -> Duration {
        let factor = 2u32.saturating_pow(retry.min(31));
        let full = self.initial.saturating_mul(factor).min(self.max);
        let half = full / 2;
        half + half.mul_f64(unit.clamp(0.0, 1.0))
    }
}

/// A `Retry-After` value: delay-seconds (`120`) or an HTTP date, as a wait from `now`
/// (zero for a date in the past). `None` when it is neither.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_statuses() {
        for s in [429, 500, 502, 503, 504, 599] {
            assert!(status_is_retryable(s), "{s}");
        }
        for s in [
            200, 301, 400, 401, 403, 404, 408, 409, 410, 413, 422, 428, 431, 600,
        ] {
            assert!(!status_is_retryable(s), "{s}");
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter_below() {
        let b = Backoff {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(5),
        };
        let top: Vec<u128> = (0..6).map(|r| b.delay(r, 0.999_999).as_millis()).collect();
        assert_eq!(top, [499, 999, 1999, 3999, 4999, 4999]);
        let low: Vec<u128> = (0..6).map(|r| b.delay(r, 0.0).as_millis()).collect();
        assert_eq!(low, [250, 500, 1000, 2000, 2500, 2500]);
        assert_eq!(b.delay(u32::MAX, 0.0), Duration::from_millis(2500));
        let zero = Backoff {
            initial: Duration::ZERO,
            max: Duration::from_secs(5),
        };
        assert_eq!(zero.delay(3, 0.5), Duration::ZERO);
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(parse_retry_after("1", now), Some(Duration::from_secs(1)));
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        for bad in ["", "-1", "1.5", "soon", "Sun, 06 Nov 1994"] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
        }
    }
}
