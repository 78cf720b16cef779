//! The daily report: what the chains classified (`report` steps) and, with
//! `[journal.report]`, every other entry no chain dropped, as a three-part
//! [`Digest`]: events of importance, events of interest, the rest.

use alertcore::{Digest, DigestLine, DigestPart, Timestamp};
use jiff::civil::Time;
use jiff::tz::TimeZone;

use crate::spec::{Class, ReportConfig};
use crate::state::{Item, State};

/// The digest of `state`'s report lines from `since` to `until`, each part cut to
/// `max_lines` lines (the rest counted).
pub fn digest(state: &State, since: Timestamp, until: Timestamp, max_lines: usize) -> Digest {
    let part = |class: Class, title: &str| {
        let (items, more) = state.items(class);
        let shown: Vec<&Item> = items.iter().take(max_lines).copied().collect();
        let cut: Vec<&Item> = items.iter().skip(max_lines).copied().collect();
        let lines = shown
            .iter()
            .map(|i| {
                DigestLine::new(
                    i.count,
                    Timestamp::from_millis(i.first),
                    Timestamp::from_millis(i.last),
                    i.message.clone(),
                )
            })
            .collect();
        // lines beyond the distinct ones kept are counted as cut too
        let cut_lines = cut.len() as u64 + u64::from(more > 0);
        let cut_entries = cut.iter().map(|i| i.count).sum::<u64>() + more;
        DigestPart::new(title, lines, cut_lines, cut_entries)
    };
    Digest::new(
        "journal",
        since,
        until,
        vec![
            part(Class::Important, "Important"),
            part(Class::Interesting, "Interesting"),
            part(Class::Other, "Other"),
        ],
    )
}

/// `at = "HH:MM"`, read.
///
/// # Errors
/// What is wrong with it.
pub fn time_of_day(at: &str) -> Result<Time, String> {
    let bad = || format!("`at` is a time of day such as \"06:00\", not {at:?}");
    let (h, m) = at.split_once(':').ok_or_else(bad)?;
    let (h, m): (i8, i8) = (
        h.trim().parse().map_err(|_| bad())?,
        m.trim().parse().map_err(|_| bad())?,
    );
    Time::new(h, m, 0, 0).map_err(|_| bad())
}

/// When the report after one sent at `last` is due: the first `at` in `zone` (the
/// config's `timezone`) after `last`.
pub fn next_due(config: &ReportConfig, last: Timestamp, zone: &TimeZone) -> Timestamp {
    let Ok(at) = time_of_day(&config.at) else {
        return Timestamp::from_millis(i64::MAX);
    };
    let Ok(last_j) = jiff::Timestamp::from_millisecond(last.as_millis()) else {
        return Timestamp::from_millis(i64::MAX);
    };
    let zoned = last_j.to_zoned(zone.clone());
    let mut day = zoned.date();
    for _ in 0..3 {
        if let Ok(candidate) = day.to_datetime(at).to_zoned(zoned.time_zone().clone())
            && candidate.timestamp() > last_j
        {
            return Timestamp::from_millis(candidate.timestamp().as_millisecond());
        }
        match day.tomorrow() {
            Ok(d) => day = d,
            Err(_) => break,
        }
    }
    Timestamp::from_millis(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_is_due_at_the_next_time_of_day() {
        let c = ReportConfig {
            at: "06:30".into(),
            notifiers: Vec::new(),
            max_lines: 2,
        };
        let tz = TimeZone::system();
        let day = jiff::civil::date(2026, 3, 10);
        let at = |h, m| {
            let z = day.at(h, m, 0, 0).to_zoned(tz.clone()).expect("zoned");
            Timestamp::from_millis(z.timestamp().as_millisecond())
        };
        assert_eq!(next_due(&c, at(5, 0), &tz), at(6, 30));
        let next_day = {
            let z = day
                .tomorrow()
                .expect("day")
                .at(6, 30, 0, 0)
                .to_zoned(tz.clone())
                .expect("zoned");
            Timestamp::from_millis(z.timestamp().as_millisecond())
        };
        assert_eq!(next_due(&c, at(6, 30), &tz), next_day);
        assert_eq!(next_due(&c, at(23, 0), &tz), next_day);
        // read in the zone given: 06:30 at UTC+9 is 21:30 UTC the day before
        let tokyo = TimeZone::fixed(jiff::tz::offset(9));
        let utc = |h, m| {
            Timestamp::from_millis(
                jiff::civil::date(2026, 3, 10)
                    .at(h, m, 0, 0)
                    .to_zoned(TimeZone::UTC)
                    .expect("zoned")
                    .timestamp()
                    .as_millisecond(),
            )
        };
        assert_eq!(next_due(&c, utc(12, 0), &tokyo), utc(21, 30));
        assert!(time_of_day("25:00").is_err());
        assert!(time_of_day("6").is_err());
        assert_eq!(
            time_of_day(" 7:05").expect("time"),
            Time::constant(7, 5, 0, 0)
        );
    }

    #[test]
    fn parts_are_cut_to_max_lines_and_the_cut_is_counted() {
        let mut s = State::default();
        for (msg, n) in [("a", 5), ("b", 3), ("c", 2), ("d", 1)] {
            for i in 0..n {
                s.report(Class::Interesting, msg, msg, 1000 + i);
            }
        }
        s.report(Class::Important, "disk", "disk failed", 7);
        let d = digest(
            &s,
            Timestamp::from_millis(0),
            Timestamp::from_millis(10_000),
            2,
        );
        assert_eq!(d.parts[0].lines.len(), 1);
        let p = &d.parts[1];
        assert_eq!(
            p.lines
                .iter()
                .map(|l| (l.message.as_str(), l.count))
                .collect::<Vec<_>>(),
            [("a", 5), ("b", 3)]
        );
        assert_eq!((p.cut_lines, p.cut_entries), (2, 3));
        assert_eq!(d.summary(), "1 important, 11 interesting, 0 other");
        let text = d.text(&|t| t.as_millis().to_string());
        assert!(text.contains("Interesting (11 entries)\n  5x  1000 .. 1004  a\n  3x  1000 .. 1002  b\n  ... and 2 more lines (3 entries), cut to keep this short\n"), "{text}");
        assert!(text.contains("Other (0 entries)\n  none\n"), "{text}");
    }
}
