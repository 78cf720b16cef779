//! Pacemaker's `timestamp-format`: `strftime` plus `%xN` for x digits of the fraction of
//! a second.
//!
//! The `strftime` part is jiff's (`jiff::fmt::strtime`), which covers the POSIX and GNU
//! conversions (`%Y %m %d %H %M %S %z %Z %s %j %a %b`, flags like `%-d`), but reads `%06N`
//! differently from Pacemaker. So `%xN` is cut out here first and handled as Pacemaker
//! does: `x` digits of the fraction, truncated (`%3N` milliseconds, `%06N` microseconds,
//! `%9N` nanoseconds; our timestamps are in milliseconds, so digits past the third are 0).
//! A bare `%N` prints nine digits, as GNU `date` does (Pacemaker would print nothing).

use jiff::tz::TimeZone;

use crate::alert::Timestamp;

/// Pacemaker's default `timestamp-format`.
pub(crate) const DEFAULT: &str = "%H:%M:%S.%06N";

/// The most fraction digits `%xN` prints (nanoseconds).
const MAX_DIGITS: usize = 9;

/// A parsed `timestamp_format`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TimestampFormat {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    /// Handed to jiff's `strftime` as is.
    Strftime(String),
    /// `%xN`: this many digits of the fraction of a second.
    Fraction(usize),
}

impl TimestampFormat {
    /// Parses `format` and checks that every conversion in it is known, by formatting a
    /// sample time.
    pub(crate) fn parse(format: &str) -> Result<Self, String> {
        if format.chars().any(char::is_control) {
            return Err(format!(
                "timestamp format {format:?} contains a control character"
            ));
        }
        let mut parts = Vec::new();
        let mut chunk = String::new();
        let mut chars = format.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '%' {
                chunk.push(c);
                continue;
            }
            if chars.peek() == Some(&'%') {
                chars.next();
                chunk.push_str("%%");
                continue;
            }
            let mut digits = String::new();
            while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                digits.push(*d);
                chars.next();
            }
            if chars.peek() == Some(&'N') {
                chars.next();
                let n = if digits.is_empty() {
                    MAX_DIGITS
                } else {
                    digits
                        .parse::<usize>()
                        .unwrap_or(MAX_DIGITS)
                        .min(MAX_DIGITS)
                };
                if !chunk.is_empty() {
                    parts.push(Part::Strftime(std::mem::take(&mut chunk)));
                }
                parts.push(Part::Fraction(n));
            } else {
                // Any other conversion (with its flags and width) is jiff's.
                chunk.push('%');
                chunk.push_str(&digits);
            }
        }
        if !chunk.is_empty() {
            parts.push(Part::Strftime(chunk));
        }
        let parsed = Self { parts };
        parsed
            .format(Timestamp::from_millis(1_234_567_890_123), &TimeZone::UTC)
            .map_err(|e| format!("bad timestamp format {format:?}: {e}"))?;
        Ok(parsed)
    }

    /// Formats `t` in `tz`.
    pub(crate) fn format(&self, t: Timestamp, tz: &TimeZone) -> Result<String, String> {
        let zoned = jiff::Timestamp::from_millisecond(t.as_millis())
            .map_err(|e| e.to_string())?
            .to_zoned(tz.clone());
        let nanos = format!(
            "{:09}",
            t.as_millis().rem_euclid(1000).unsigned_abs() * 1_000_000
        );
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Strftime(f) => out.push_str(
                    &jiff::fmt::strtime::format(f.as_str(), &zoned).map_err(|e| e.to_string())?,
                ),
                Part::Fraction(n) => out.push_str(nanos.get(..*n).unwrap_or_default()),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2009-02-13T23:31:30.123Z
    const T: Timestamp = Timestamp::from_millis(1_234_567_890_123);

    fn fmt(f: &str) -> String {
        TimestampFormat::parse(f)
            .unwrap()
            .format(T, &TimeZone::UTC)
            .unwrap()
    }

    #[test]
    fn pacemaker_fractions() {
        let cases = [
            (DEFAULT, "23:31:30.123000"),
            ("%H:%M:%S.%3N", "23:31:30.123"),
            ("%S.%6N", "30.123000"),
            ("%S.%9N", "30.123000000"),
            ("%S.%1N", "30.1"),
            ("%S.%01N", "30.1"),
            ("%S.%0N|", "30.|"),
            ("%S.%N", "30.123000000"),
            ("%S.%12N", "30.123000000"),
            ("%Y-%m-%d,%H:%M:%S.%01N", "2009-02-13,23:31:30.1"),
            ("%%3N %%", "%3N %"),
            ("%s", "1234567890"),
            ("%3N%3N", "123123"),
            ("plain", "plain"),
            ("", ""),
        ];
        for (format, want) in cases {
            assert_eq!(fmt(format), want, "{format}");
        }
    }

    #[test]
    fn strftime_flags_and_zones_are_jiffs() {
        assert_eq!(fmt("%-d/%-m %Z"), "13/2 UTC");
        let paris = TimeZone::get("Europe/Paris");
        if let Ok(tz) = paris {
            let f = TimestampFormat::parse("%H:%M %z").unwrap();
            assert_eq!(f.format(T, &tz).unwrap(), "00:31 +0100");
        }
    }

    #[test]
    fn bad_formats_are_refused() {
        assert!(TimestampFormat::parse("%K").is_err());
        assert!(TimestampFormat::parse("%3J").is_err());
        assert!(TimestampFormat::parse("%").is_err());
        assert!(TimestampFormat::parse("a\nb").is_err());
    }

    #[test]
    fn before_the_epoch_the_fraction_counts_forward() {
        let f = TimestampFormat::parse("%S.%3N").unwrap();
        // -0.877 s is 23:59:59.123 of the day before.
        assert_eq!(
            f.format(Timestamp::from_millis(-877), &TimeZone::UTC)
                .unwrap(),
            "59.123"
        );
    }
}
