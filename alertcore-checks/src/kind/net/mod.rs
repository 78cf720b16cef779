//! What the network kinds (`tcp`, `http`, `tls`, `dns`, `ping`) share: connecting,
//! grading a response time, and saying what went wrong in a plugin's words.

pub(crate) mod tls;

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;

use crate::outcome::{PerfDatum, Status};

/// Whether `needle` occurs in `haystack` (an empty one does).
pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// Seconds with millisecond precision, as plugins print them: `0.004`.
pub(crate) fn secs(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

/// [`Status::Critical`] above `critical`, [`Status::Warning`] above `warning`, else ok.
pub(crate) fn grade(
    value: Duration,
    warning: Option<Duration>,
    critical: Option<Duration>,
) -> Status {
    if critical.is_some_and(|c| value > c) {
        Status::Critical
    } else if warning.is_some_and(|w| value > w) {
        Status::Warning
    } else {
        Status::Ok
    }
}

/// The `time` datum in seconds, with its thresholds (Nagios ranges: `0.5` alerts above
/// 0.5) and the timeout as its maximum.
pub(crate) fn time_perf(
    elapsed: Duration,
    warning: Option<Duration>,
    critical: Option<Duration>,
    timeout: Duration,
) -> PerfDatum {
    let mut p = PerfDatum::new("time", Some(elapsed.as_secs_f64()), "s");
    p.warn = warning.map(|d| d.as_secs_f64().to_string());
    p.crit = critical.map(|d| d.as_secs_f64().to_string());
    p.min = Some(0.0);
    p.max = Some(timeout.as_secs_f64());
    p
}

/// Checks that a `warning` threshold is not above its `critical` one.
pub(crate) fn check_order<T: PartialOrd + std::fmt::Debug>(
    warning: Option<T>,
    critical: Option<T>,
    warning_key: &str,
    show: impl Fn(&T) -> String,
) -> Result<(), alertcore::BuildError> {
    if let (Some(w), Some(c)) = (&warning, &critical)
        && w > c
    {
        return Err(alertcore::BuildError::key(
            warning_key,
            format!(
                "the warning threshold ({}) is above the critical one ({})",
                show(w),
                show(c)
            ),
        ));
    }
    Ok(())
}

/// What a peer sent, for a message: lossy UTF-8, control characters escaped, quoted,
/// and cut after `max` characters (`...` after the quote says so).
pub(crate) fn excerpt(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut cut: String = text.chars().take(max).collect();
    let truncated = cut.len() < text.len();
    if cut.is_empty() && !truncated {
        return "nothing".to_owned();
    }
    cut = format!("{cut:?}");
    if truncated {
        cut.push_str("...");
    }
    cut
}

/// A socket error in a few words: `connection refused`, `host unreachable`, ...
pub(crate) fn io_reason(e: &io::Error) -> String {
    use io::ErrorKind as K;
    let known = match e.kind() {
        K::ConnectionRefused => "connection refused",
        K::ConnectionReset => "connection reset by peer",
        K::ConnectionAborted => "connection aborted",
        K::HostUnreachable => "host unreachable",
        K::NetworkUnreachable => "network unreachable",
        K::NetworkDown => "network down",
        K::AddrNotAvailable => "address not available",
        K::TimedOut => "connection timed out",
        K::PermissionDenied => "permission denied",
        K::UnexpectedEof => "connection closed",
        _ => "",
    };
    if !known.is_empty() {
        return known.to_owned();
    }
    let s = e.to_string();
    // "No route to host (os error 113)" -> "no route to host"
    let s = match s.find(" (os error ") {
        Some(i) => s[..i].to_owned(),
        None => s,
    };
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => s,
    }
}

/// `address` without the brackets an IPv6 literal may be written with (`[::1]`).
pub(crate) fn bare_host(address: &str) -> &str {
    address
        .strip_prefix('[')
        .and_then(|a| a.strip_suffix(']'))
        .unwrap_or(address)
}

/// `host:port`, with brackets around an IPv6 literal.
pub(crate) fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Resolves `host` (a name or an IP literal) to its socket addresses for `port`.
///
/// # Errors
/// `cannot resolve HOST: why`.
pub(crate) async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    let host = bare_host(host);
    match tokio::net::lookup_host((host, port)).await {
        Ok(addrs) => {
            let addrs: Vec<SocketAddr> = addrs.collect();
            if addrs.is_empty() {
                Err(format!("cannot resolve {host}: no addresses"))
            } else {
                Ok(addrs)
            }
        }
        Err(e) => Err(format!("cannot resolve {host}: {}", io_reason(&e))),
    }
}

/// Connects to `host` on `port`, trying each of its addresses in turn.
///
/// # Errors
/// `connection refused: 127.0.0.1:8080` (the reason of the last address tried), or
/// `cannot resolve HOST: why`.
///
/// `converse`: the probe will write and wait for an answer, so Nagle's delay is turned
/// off (a probe that only connects spares the system call).
pub(crate) async fn connect(host: &str, port: u16, converse: bool) -> Result<TcpStream, String> {
    let mut last = String::new();
    for addr in resolve(host, port).await? {
        match TcpStream::connect(addr).await {
            Ok(s) => {
                if converse {
                    let _ = s.set_nodelay(true);
                }
                return Ok(s);
            }
            Err(e) => last = format!("{}: {addr}", io_reason(&e)),
        }
    }
    Err(last)
}

/// A UNIX time (seconds) as `2026-12-12 10:00 UTC`, for any time (no panics outside
/// the years a `SystemTime` formatter takes).
pub(crate) fn utc(ts: i64) -> String {
    let days = ts.div_euclid(86_400);
    let rem = ts.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60
    )
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to (year, month, day) in
/// the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A span of seconds in words, rounded down: `45 days`, `1 day`, `5 hours`, `3 minutes`.
pub(crate) fn span(secs: i64) -> String {
    let secs = secs.max(0);
    let (n, unit) = if secs >= 86_400 {
        (secs / 86_400, "day")
    } else if secs >= 3600 {
        (secs / 3600, "hour")
    } else {
        (secs / 60, "minute")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn dates_in_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(utc(1_798_761_599), "2026-12-31 23:59 UTC");
        assert_eq!(utc(-1), "1969-12-31 23:59 UTC");
        assert_eq!(utc(253_402_300_800), "10000-01-01 00:00 UTC");
        // far outside any certificate's range: no panic, no overflow
        let _ = utc(i64::MAX / 2);
        let _ = utc(i64::MIN / 2);
    }

    #[test]
    fn spans_round_down() {
        assert_eq!(span(5 * 86_400 - 1), "4 days");
        assert_eq!(span(86_400), "1 day");
        assert_eq!(span(7200), "2 hours");
        assert_eq!(span(59), "0 minutes");
        assert_eq!(span(-5), "0 minutes");
    }

    #[test]
    fn excerpts_are_quoted_escaped_and_cut() {
        assert_eq!(excerpt(b"", 10), "nothing");
        assert_eq!(excerpt(b"hi\r\n", 10), "\"hi\\r\\n\"");
        assert_eq!(excerpt(b"abcdef", 3), "\"abc\"...");
        assert_eq!(excerpt(&[0xff, b'a'], 10), "\"\u{fffd}a\"");
    }

    #[test]
    fn grading_is_strictly_above() {
        let ms = Duration::from_millis;
        assert_eq!(grade(ms(5), Some(ms(5)), Some(ms(10))), Status::Ok);
        assert_eq!(grade(ms(6), Some(ms(5)), Some(ms(10))), Status::Warning);
        assert_eq!(grade(ms(11), Some(ms(5)), Some(ms(10))), Status::Critical);
        assert_eq!(grade(ms(11), None, None), Status::Ok);
    }

    #[test]
    fn reasons_are_short() {
        let e = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(io_reason(&e), "connection refused");
        let e = io::Error::from_raw_os_error(113);
        assert_eq!(io_reason(&e), "host unreachable");
        let e = io::Error::other("Weird thing");
        assert_eq!(io_reason(&e), "weird thing");
    }
}
