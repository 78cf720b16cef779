//! `schedule = "cron expr"`: a five-field cron expression as people paste it from a
//! crontab, read in a time zone.

use std::fmt;

use alertcore::Timestamp;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use jiff::tz::TimeZone;

/// A parsed cron expression and the time zone its wall-clock times are read in.
#[derive(Clone)]
pub struct CronSchedule {
    cron: Cron,
    zone: TimeZone,
    text: String,
}

impl fmt::Debug for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CronSchedule")
            .field("text", &self.text)
            .field("zone", &self.zone_name())
            .finish()
    }
}

impl CronSchedule {
    /// Reads `expr` (minute hour day-of-month month day-of-week, with lists, ranges,
    /// steps, names and `@daily`-style shorthands; no seconds or years field) in `zone`.
    ///
    /// # Errors
    /// A message saying what is wrong with the expression.
    pub fn parse(expr: &str, zone: TimeZone) -> Result<Self, String> {
        let parser = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build();
        let cron = parser.parse(expr.trim()).map_err(|e| {
            format!(
                "{e}; write five fields, minute hour day-of-month month day-of-week (\"*/5 * * * *\", \"30 3 * * 1-5\")"
            )
        })?;
        Ok(Self {
            cron,
            zone,
            text: expr.trim().to_owned(),
        })
    }

    /// The first time after `t` the expression names: a wall-clock time skipped by a
    /// daylight-saving change and one that happens twice are resolved as croner does
    /// (see the tests). `None` when it names no time in the next years (`0 0 31 2 *`).
    pub fn next_after(&self, t: Timestamp) -> Option<Timestamp> {
        let now = jiff::Timestamp::from_millisecond(t.as_millis())
            .ok()?
            .to_zoned(self.zone.clone());
        let next = self.cron.find_next_occurrence(&now, false).ok()?;
        Some(Timestamp::from_millis(next.timestamp().as_millisecond()))
    }

    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The time zone's IANA name (`system` when the system's has none).
    pub fn zone_name(&self) -> &str {
        self.zone.iana_name().unwrap_or("system")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        Timestamp::from_millis(s.parse::<jiff::Timestamp>().unwrap().as_millisecond())
    }

    fn text(t: Timestamp) -> String {
        jiff::Timestamp::from_millisecond(t.as_millis())
            .unwrap()
            .to_string()
    }

    fn zone(name: &str) -> TimeZone {
        TimeZone::get(name).unwrap()
    }

    #[test]
    fn a_crontab_line_names_its_next_times() {
        let s = CronSchedule::parse("*/15 * * * *", TimeZone::UTC).unwrap();
        assert_eq!(
            text(s.next_after(at("2026-12-07T10:07:00Z")).unwrap()),
            "2026-12-07T10:15:00Z"
        );
        // strictly after: a run at 10:15 is followed by 10:30
        assert_eq!(
            text(s.next_after(at("2026-12-07T10:15:00Z")).unwrap()),
            "2026-12-07T10:30:00Z"
        );
        let weekdays = CronSchedule::parse("30 3 * * 1-5", TimeZone::UTC).unwrap();
        // Saturday 2026-12-05 → Monday 2026-12-07
        assert_eq!(
            text(weekdays.next_after(at("2026-12-05T12:00:00Z")).unwrap()),
            "2026-12-07T03:30:00Z"
        );
        let daily = CronSchedule::parse("@daily", TimeZone::UTC).unwrap();
        assert_eq!(
            text(daily.next_after(at("2026-12-05T12:00:00Z")).unwrap()),
            "2026-12-06T00:00:00Z"
        );
    }

    #[test]
    fn wall_clock_times_are_read_in_the_zone() {
        let s = CronSchedule::parse("0 3 * * *", zone("Europe/Berlin")).unwrap();
        // 03:00 in Berlin in winter is 02:00 UTC, in summer 01:00 UTC
        assert_eq!(
            text(s.next_after(at("2026-12-07T00:00:00Z")).unwrap()),
            "2026-12-07T02:00:00Z"
        );
        assert_eq!(
            text(s.next_after(at("2026-07-07T00:00:00Z")).unwrap()),
            "2026-07-07T01:00:00Z"
        );
    }

    #[test]
    fn daylight_saving_changes_neither_skip_a_day_nor_run_twice() {
        let berlin = zone("Europe/Berlin");
        // 2026-03-29: clocks jump from 02:00 to 03:00, so 02:30 does not exist that day
        let s = CronSchedule::parse("30 2 * * *", berlin.clone()).unwrap();
        let first = s.next_after(at("2026-03-28T12:00:00Z")).unwrap();
        let second = s.next_after(first).unwrap();
        assert_eq!(
            text(first),
            "2026-03-29T01:00:00Z",
            "the skipped time runs when the clock jumps"
        );
        assert_eq!(text(second), "2026-03-30T00:30:00Z");
        // 2026-10-25: 02:00-03:00 happens twice; 02:30 runs once
        let first = s.next_after(at("2026-10-24T12:00:00Z")).unwrap();
        let second = s.next_after(first).unwrap();
        assert_eq!(text(first), "2026-10-25T00:30:00Z");
        assert_eq!(text(second), "2026-10-26T01:30:00Z");
    }

    #[test]
    fn bad_expressions_say_what_to_write() {
        for bad in ["* * * *", "0 * * * * *", "61 * * * *", "0 25 * * *", "x"] {
            let e = CronSchedule::parse(bad, TimeZone::UTC).unwrap_err();
            assert!(e.contains("five fields"), "{bad}: {e}");
        }
    }
}
