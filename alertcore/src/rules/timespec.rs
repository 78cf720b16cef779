//! Weekday and hour windows for routing rules (`time = "Mon-Fri 08:00-18:00"`).

use std::fmt;
use std::str::FromStr;

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};

const MINUTES_PER_DAY: u16 = 24 * 60;
const ALL_DAYS: u8 = 0b111_1111;
const DAY_NAMES: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
/// How much of the input an error message quotes.
const QUOTE_MAX_CHARS: usize = 40;
const EXAMPLES: &str =
    "write e.g. \"Mon-Fri 08:00-18:00\", \"Sat,Sun\", \"22:00-06:00\" or \"always\"";

/// A set of weekdays and times of day, such as `Mon-Fri 08:00-18:00`.
///
/// A window is written `[DAYS] [TIMES]`:
///
/// * `DAYS` is a comma list of days and day ranges: `Mon`, `Mon-Fri`, `Sat,Sun`,
///   `Mon,Wed-Fri`, `Fri-Mon` (a range may wrap past Sunday). Names are case-insensitive
///   and may be abbreviated to three letters (`mon`, `Monday`, `TUE`, also `Tues`, `Thur`,
///   `Thurs`). `*` or no days at all means every day.
/// * `TIMES` is a comma list of `HH:MM-HH:MM` ranges in 24-hour time (`8:00` is fine),
///   start inclusive, end exclusive; `24:00` may end a range. No times means the whole day.
/// * `*` or `always` alone is every minute of every day.
///
/// A range whose end is not after its start crosses midnight, and, as in xymon, the part
/// after midnight belongs to the **next** day: `Fri 22:00-06:00` is Friday 22:00 up to
/// Saturday 06:00, and does not cover Friday 03:00 (that is Thursday's night).
///
/// Windows are evaluated in the civil (wall-clock) time of a zone, so `08:00-18:00` follows
/// the clock across daylight-saving changes: on the day clocks go forward a window
/// `02:00-03:00` never matches, and on the day they go back it matches for two hours.
/// Only the hour and minute count; seconds are ignored.
///
/// Its [`Display`](fmt::Display) is a canonical form that parses back to an equal window.
///
/// ```
/// # use alertcore::rules::TimeWindow;
/// let w = TimeWindow::parse("mon-fri 22:00-06:00").unwrap();
/// assert_eq!(w.to_string(), "Mon-Fri 22:00-06:00");
/// let tz = jiff::tz::TimeZone::UTC;
/// let saturday_3am = "2026-06-06T03:00:00Z".parse::<jiff::Timestamp>().unwrap();
/// assert!(w.contains_ms(saturday_3am.as_millisecond(), &tz)); // Friday's night
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TimeWindow {
    /// Bit `i` set: the window includes weekday `i`, Monday being 0. Never zero.
    days: u8,
    /// Empty: the whole day.
    ranges: Vec<MinuteRange>,
}

/// `start..end` in minutes since midnight; `start != end`, `start < 1440`, `1 <= end <=
/// 1440`; `end < start` crosses midnight into the next day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct MinuteRange {
    start: u16,
    end: u16,
}

impl TimeWindow {
    /// Every minute of every day.
    pub fn always() -> Self {
        Self {
            days: ALL_DAYS,
            ranges: Vec::new(),
        }
    }

    /// Parses a window such as `Mon-Fri 08:00-18:00`, `Sat,Sun`, `22:00-06:00` or `always`.
    ///
    /// # Errors
    /// A message that quotes the part that is wrong (an unknown day, a bad time or range)
    /// and shows the accepted forms.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        if t.is_empty() {
            return Err(format!("empty time window; {EXAMPLES}"));
        }
        if t == "*" || t.eq_ignore_ascii_case("always") {
            return Ok(Self::always());
        }
        // The times start at the first digit; everything before it names days.
        let (days_part, times_part) = match t.find(|c: char| c.is_ascii_digit()) {
            Some(i) => t.split_at(i),
            None => (t, ""),
        };
        let in_window = |e: String| format!("{e} in time window {}", quote(t));
        if !times_part.is_empty()
            && !days_part.is_empty()
            && !days_part.ends_with(char::is_whitespace)
        {
            return Err(in_window(format!(
                "{} is neither days nor times; {EXAMPLES}",
                quote(t.split_whitespace().last().unwrap_or(t))
            )));
        }
        let days_part = days_part.trim();
        let days = if days_part.is_empty() || days_part == "*" {
            ALL_DAYS
        } else {
            parse_days(days_part).map_err(in_window)?
        };
        let mut ranges = Vec::new();
        if !times_part.is_empty() {
            for item in times_part.split(',') {
                let r = parse_range(item.trim()).map_err(in_window)?;
                if r.start == 0 && r.end == MINUTES_PER_DAY {
                    // The whole day: the same as no times at all, which is canonical.
                    ranges.clear();
                    break;
                }
                ranges.push(r);
            }
        }
        Ok(Self { days, ranges })
    }

    /// Whether this window is every minute of every day.
    pub fn is_always(&self) -> bool {
        self.days == ALL_DAYS && self.ranges.is_empty()
    }

    /// Whether the wall-clock time `at` falls in the window.
    pub fn contains(&self, at: &Zoned) -> bool {
        self.contains_datetime(at.datetime())
    }

    /// Whether the instant `ms` (milliseconds since the Unix epoch, as
    /// `alertcore::Timestamp::as_millis`) falls in the window, read as wall-clock time in
    /// `tz`. Instants beyond jiff's range (years -9999 to 9999) count as its ends.
    pub fn contains_ms(&self, ms: i64, tz: &TimeZone) -> bool {
        self.contains_datetime(civil(ms, tz))
    }

    /// Whether the civil (wall-clock) time `dt` falls in the window.
    pub(crate) fn contains_datetime(&self, dt: DateTime) -> bool {
        let day = weekday_index(dt);
        let minute =
            u16::from(dt.hour().unsigned_abs()) * 60 + u16::from(dt.minute().unsigned_abs());
        if self.ranges.is_empty() {
            return self.has_day(day);
        }
        self.ranges.iter().any(|r| {
            if r.start < r.end {
                self.has_day(day) && r.start <= minute && minute < r.end
            } else {
                // Crossing midnight: the evening on a listed day, the early hours on the
                // day after one.
                (self.has_day(day) && minute >= r.start)
                    || (self.has_day((day + 6) % 7) && minute < r.end)
            }
        })
    }

    fn has_day(&self, day: u8) -> bool {
        self.days & (1 << day) != 0
    }
}

/// Monday 0 … Sunday 6.
fn weekday_index(dt: DateTime) -> u8 {
    dt.weekday().to_monday_zero_offset().unsigned_abs()
}

fn civil(ms: i64, tz: &TimeZone) -> DateTime {
    let ts = Timestamp::from_millisecond(ms).unwrap_or(if ms < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    });
    tz.to_datetime(ts)
}

fn parse_days(s: &str) -> Result<u8, String> {
    let mut days = 0u8;
    for item in s.split(',') {
        let item = item.trim();
        if item.is_empty() {
            return Err(format!("empty entry in the day list {}", quote(s)));
        }
        match item.split_once('-') {
            None => days |= 1 << parse_day(item)?,
            Some((a, b)) => {
                let (a, b) = (parse_day(a.trim())?, parse_day(b.trim())?);
                // `Fri-Mon` wraps past Sunday.
                let mut d = a;
                loop {
                    days |= 1 << d;
                    if d == b {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
        }
    }
    Ok(days)
}

fn parse_day(s: &str) -> Result<u8, String> {
    let day = match s.to_ascii_lowercase().as_str() {
        "mon" | "monday" => 0,
        "tue" | "tues" | "tuesday" => 1,
        "wed" | "wednesday" => 2,
        "thu" | "thur" | "thurs" | "thursday" => 3,
        "fri" | "friday" => 4,
        "sat" | "saturday" => 5,
        "sun" | "sunday" => 6,
        _ => {
            return Err(format!(
                "unknown day {} (days are Mon, Tue, Wed, Thu, Fri, Sat, Sun or their full \
                 names; times are HH:MM-HH:MM)",
                quote(s)
            ));
        }
    };
    Ok(day)
}

fn parse_range(s: &str) -> Result<MinuteRange, String> {
    let bad = || format!("invalid time range {} (expected HH:MM-HH:MM)", quote(s));
    let (a, b) = s.split_once('-').ok_or_else(bad)?;
    let start = parse_time(a.trim(), false)?;
    let end = parse_time(b.trim(), true)?;
    if start == end {
        return Err(format!(
            "time range {} is empty (start equals end); for the whole day give no times or \
             00:00-24:00",
            quote(s)
        ));
    }
    // `22:00-00:00` is `22:00-24:00`.
    let end = if end == 0 { MINUTES_PER_DAY } else { end };
    Ok(MinuteRange { start, end })
}

/// `H:MM` or `HH:MM` as minutes since midnight; `24:00` only when `is_end`.
fn parse_time(s: &str, is_end: bool) -> Result<u16, String> {
    let bad = || {
        format!(
            "invalid time {} (expected HH:MM from 00:00 to 23:59{})",
            quote(s),
            if is_end { ", or 24:00" } else { "" }
        )
    };
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    let digits = |x: &str, n: std::ops::RangeInclusive<usize>| {
        n.contains(&x.len()) && x.bytes().all(|b| b.is_ascii_digit())
    };
    if !digits(h, 1..=2) || !digits(m, 2..=2) {
        return Err(bad());
    }
    let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if m > 59 || h > 24 || (h == 24 && (m != 0 || !is_end)) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

/// `text` in quotes for an error message, shortened if long.
fn quote(text: &str) -> String {
    match text.char_indices().nth(QUOTE_MAX_CHARS) {
        None => format!("{text:?}"),
        Some((end, _)) => format!("{:?}… ({} bytes)", &text[..end], text.len()),
    }
}

impl fmt::Display for TimeWindow {
    /// The canonical form: days Monday first, runs of three or more as `Mon-Fri`; no days
    /// when all seven are in; `always` for every minute of every day.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_always() {
            return f.write_str("always");
        }
        if self.days != ALL_DAYS {
            let mut first = true;
            let mut d = 0u8;
            while d < 7 {
                if !self.has_day(d) {
                    d += 1;
                    continue;
                }
                let mut last = d;
                while last < 6 && self.has_day(last + 1) {
                    last += 1;
                }
                let mut sep = if first { "" } else { "," };
                first = false;
                match last - d {
                    0 => write!(f, "{sep}{}", DAY_NAMES[usize::from(d)])?,
                    1 => {
                        for x in d..=last {
                            write!(f, "{sep}{}", DAY_NAMES[usize::from(x)])?;
                            sep = ",";
                        }
                    }
                    _ => write!(
                        f,
                        "{sep}{}-{}",
                        DAY_NAMES[usize::from(d)],
                        DAY_NAMES[usize::from(last)]
                    )?,
                }
                d = last + 1;
            }
            if !self.ranges.is_empty() {
                f.write_str(" ")?;
            }
        }
        for (i, r) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(
                f,
                "{:02}:{:02}-{:02}:{:02}",
                r.start / 60,
                r.start % 60,
                r.end / 60,
                r.end % 60
            )?;
        }
        Ok(())
    }
}

impl FromStr for TimeWindow {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for TimeWindow {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TimeWindow {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = TimeWindow;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a time window string such as \"Mon-Fri 08:00-18:00\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TimeWindow, E> {
                TimeWindow::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

/// Several windows; a time is in when it is in any one.
///
/// Deserializes from one string or an array of strings; serializes as an array. An empty
/// list contains nothing: whether an absent or empty list means "any time" is for the
/// rule that holds it to decide.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct TimeWindows(Vec<TimeWindow>);

impl TimeWindows {
    /// The list `windows`.
    pub fn new(windows: Vec<TimeWindow>) -> Self {
        Self(windows)
    }

    /// Parses each string with [`TimeWindow::parse`].
    ///
    /// # Errors
    /// The first bad window's message.
    pub fn parse<S: AsRef<str>>(texts: impl IntoIterator<Item = S>) -> Result<Self, String> {
        texts
            .into_iter()
            .map(|t| TimeWindow::parse(t.as_ref()))
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// Whether any window contains the instant `ms` read in `tz`; see
    /// [`TimeWindow::contains_ms`].
    pub fn contains_any_ms(&self, ms: i64, tz: &TimeZone) -> bool {
        self.first_match_ms(ms, tz).is_some()
    }

    /// The first window that contains the civil time `dt`, for explaining a decision.
    pub fn first_match(&self, dt: DateTime) -> Option<&TimeWindow> {
        self.0.iter().find(|w| w.contains_datetime(dt))
    }

    /// The first window that contains the instant `ms` read in `tz`.
    pub(crate) fn first_match_ms(&self, ms: i64, tz: &TimeZone) -> Option<&TimeWindow> {
        self.first_match(civil(ms, tz))
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many windows there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The windows in order.
    pub fn iter(&self) -> std::slice::Iter<'_, TimeWindow> {
        self.0.iter()
    }

    /// The windows as a slice.
    pub fn as_slice(&self) -> &[TimeWindow] {
        &self.0
    }
}

impl From<Vec<TimeWindow>> for TimeWindows {
    fn from(v: Vec<TimeWindow>) -> Self {
        Self(v)
    }
}

impl From<TimeWindow> for TimeWindows {
    fn from(w: TimeWindow) -> Self {
        Self(vec![w])
    }
}

impl FromIterator<TimeWindow> for TimeWindows {
    fn from_iter<I: IntoIterator<Item = TimeWindow>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

impl<'a> IntoIterator for &'a TimeWindows {
    type Item = &'a TimeWindow;
    type IntoIter = std::slice::Iter<'a, TimeWindow>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl IntoIterator for TimeWindows {
    type Item = TimeWindow;
    type IntoIter = std::vec::IntoIter<TimeWindow>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl fmt::Display for TimeWindows {
    /// The windows in brackets, separated by `; ` since a window may contain commas:
    /// `[Sat,Sun; Mon-Fri 22:00-06:00]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, w) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{w}")?;
        }
        f.write_str("]")
    }
}

impl Serialize for TimeWindows {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for w in &self.0 {
            seq.serialize_element(w)?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for TimeWindows {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TimeWindows;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a time window string or an array of them")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TimeWindows, E> {
                TimeWindow::parse(v)
                    .map(TimeWindows::from)
                    .map_err(E::custom)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<TimeWindows, A::Error> {
                let mut v = Vec::new();
                while let Some(w) = seq.next_element::<TimeWindow>()? {
                    v.push(w);
                }
                Ok(TimeWindows(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// The zone for a configured `timezone`: an IANA name such as `Europe/Berlin` or `UTC`,
/// or the system's zone for `""` or `"system"`.
///
/// # Errors
/// A message naming the unknown zone.
pub fn parse_timezone(name: &str) -> Result<TimeZone, String> {
    let n = name.trim();
    if n.is_empty() || n.eq_ignore_ascii_case("system") {
        return Ok(TimeZone::system());
    }
    // jiff's own message repeats the name in full (which may be huge) and says nothing
    // more, so it is left out; the one other cause worth naming is a missing database.
    TimeZone::get(n).map_err(|_| {
        let hint = if jiff::tz::db().is_definitively_empty() {
            "; no time zone database was found (install tzdata)"
        } else {
            ""
        };
        format!(
            "unknown time zone {} (expected an IANA name such as \"Europe/Berlin\" or \"UTC\", \
             or \"system\"){hint}",
            quote(n)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::{Weekday, date};
    use proptest::prelude::*;

    /// The civil time `"Mon 23:59"` in the week of Monday 2026-06-01.
    fn at(s: &str) -> DateTime {
        let (day, time) = s.split_once(' ').unwrap();
        let d = u8::try_from(DAY_NAMES.iter().position(|n| *n == day).unwrap()).unwrap();
        let (h, m) = time.split_once(':').unwrap();
        let monday = date(2026, 6, 1);
        assert_eq!(monday.weekday(), Weekday::Monday);
        let day = monday
            .checked_add(jiff::Span::new().days(i64::from(d)))
            .unwrap();
        day.at(h.parse().unwrap(), m.parse().unwrap(), 0, 0)
    }

    /// (window, canonical display)
    const PARSE_CASES: &[(&str, &str)] = &[
        ("*", "always"),
        ("always", "always"),
        ("ALWAYS", "always"),
        ("  always  ", "always"),
        ("Mon-Fri 08:00-18:00", "Mon-Fri 08:00-18:00"),
        ("mon-fri 8:00-18:00", "Mon-Fri 08:00-18:00"),
        ("Monday-Friday 08:00-18:00", "Mon-Fri 08:00-18:00"),
        ("MON - FRI   08:00 - 18:00", "Mon-Fri 08:00-18:00"),
        ("Sat,Sun", "Sat,Sun"),
        ("sun, sat", "Sat,Sun"),
        ("Saturday,Sunday", "Sat,Sun"),
        ("Sat-Sun", "Sat,Sun"),
        ("22:00-06:00", "22:00-06:00"),
        ("* 22:00-06:00", "22:00-06:00"),
        ("Mon-Sun 22:00-06:00", "22:00-06:00"),
        ("Mon,Wed-Fri 09:30-17:00", "Mon,Wed-Fri 09:30-17:00"),
        ("Tues,Thur,Thurs", "Tue,Thu"),
        ("Wednesday", "Wed"),
        ("Fri-Mon", "Mon,Fri-Sun"),
        ("Sun-Sat", "always"),
        ("Mon-Mon", "Mon"),
        ("Mon,Mon", "Mon"),
        ("Mon,Tue,Wed,Thu,Fri,Sat,Sun", "always"),
        ("00:00-24:00", "always"),
        ("Mon 00:00-24:00", "Mon"),
        ("Mon 0:00-24:00", "Mon"),
        ("Mon 08:00-12:00,00:00-24:00", "Mon"),
        ("22:00-24:00", "22:00-24:00"),
        ("22:00-00:00", "22:00-24:00"),
        ("00:00-00:01", "00:00-00:01"),
        ("23:59-24:00", "23:59-24:00"),
        ("23:59-00:00", "23:59-24:00"),
        ("00:01-00:00", "00:01-24:00"),
        (
            "Mon-Fri 08:00-12:00,13:00-17:00",
            "Mon-Fri 08:00-12:00,13:00-17:00",
        ),
        (
            "Mon-Fri 08:00-12:00, 13:00-17:00",
            "Mon-Fri 08:00-12:00,13:00-17:00",
        ),
        ("\tSat\n12:00-13:00 ", "Sat 12:00-13:00"),
        ("Mon,Tue,Thu,Fri,Sun", "Mon,Tue,Thu,Fri,Sun"),
        ("Mon,Tue,Wed,Fri,Sat,Sun", "Mon-Wed,Fri-Sun"),
    ];

    #[test]
    fn parse_table() {
        for &(text, want) in PARSE_CASES {
            let w = TimeWindow::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!(w.to_string(), want, "{text:?}");
            assert_eq!(TimeWindow::parse(want).unwrap(), w, "{want:?} round trip");
        }
    }

    /// (window, a fragment the error must contain)
    const ERROR_CASES: &[(&str, &str)] = &[
        ("", "empty time window; write e.g."),
        ("   ", "empty time window"),
        ("Mon-Fir 08:00-18:00", "unknown day \"Fir\""),
        ("Mo", "unknown day \"Mo\""),
        ("weekdays", "unknown day \"weekdays\""),
        ("always 08:00-10:00", "unknown day \"always\""),
        ("Mon Tue", "unknown day \"Mon Tue\""),
        ("Mon,,Tue", "empty entry in the day list"),
        ("Mon,", "empty entry"),
        ("Montag", "unknown day \"Montag\""),
        ("Lun", "unknown day"),
        ("Mön", "unknown day \"Mön\""),
        ("Mon 08:00", "invalid time range \"08:00\""),
        ("Mon 08:00-", "invalid time \"\""),
        ("Mon 8-18", "invalid time \"8\""),
        ("Mon 0800-1800", "invalid time \"0800\""),
        ("Mon 08:00-18:00,", "invalid time range \"\""),
        ("25:00-06:00", "invalid time \"25:00\""),
        (
            "24:00-06:00",
            "invalid time \"24:00\" (expected HH:MM from 00:00 to 23:59)",
        ),
        ("22:00-24:01", "invalid time \"24:01\""),
        ("22:60-23:00", "invalid time \"22:60\""),
        ("22:5-23:00", "invalid time \"22:5\""),
        ("123:00-23:00", "invalid time \"123:00\""),
        ("+1:00-23:00", "neither days nor times"),
        ("08:00-08:00", "is empty (start equals end)"),
        ("00:00-00:00", "is empty"),
        (
            "Mon08:00-10:00",
            "\"Mon08:00-10:00\" is neither days nor times",
        ),
        ("08:00-18:00 Mon-Fri", "invalid time \"18:00 Mon-Fri\""),
        ("Mon 08:00-18:00 Tue", "invalid time \"18:00 Tue\""),
        ("Mon 08：00-18:00", "invalid time"),
        ("Mon ٠٨:00-18:00", "neither days nor times"),
    ];

    #[test]
    fn error_table() {
        for &(text, want) in ERROR_CASES {
            let e = TimeWindow::parse(text).expect_err(text);
            assert!(e.contains(want), "{text:?}: {e:?} lacks {want:?}");
        }
        // Errors name the window too.
        let e = TimeWindow::parse("Mon-Fir 08:00-18:00").unwrap_err();
        assert!(e.ends_with("in time window \"Mon-Fir 08:00-18:00\""), "{e}");
    }

    #[test]
    fn huge_and_odd_inputs() {
        let huge = "Mon,".repeat(100_000) + "Tue";
        assert_eq!(TimeWindow::parse(&huge).unwrap().to_string(), "Mon,Tue");
        let huge = format!("Mon {}", "08:00-09:00,".repeat(50_000));
        let e = TimeWindow::parse(&huge).unwrap_err();
        assert!(e.len() < 400, "{} bytes: {e}", e.len());
        let e = TimeWindow::parse(&"x".repeat(1_000_000)).unwrap_err();
        assert!(e.len() < 400, "{} bytes", e.len());
        assert!(TimeWindow::parse("\0").is_err());
        assert!(TimeWindow::parse("Mon\u{2028}08:00-09:00").is_ok()); // a Unicode space
        assert!(TimeWindow::parse("😀 08:00-09:00").is_err());
    }

    /// (window, civil time, contained?)
    const CONTAINS_CASES: &[(&str, &str, bool)] = &[
        ("always", "Mon 00:00", true),
        ("always", "Sun 23:59", true),
        ("Mon-Fri 08:00-18:00", "Mon 07:59", false),
        ("Mon-Fri 08:00-18:00", "Mon 08:00", true),
        ("Mon-Fri 08:00-18:00", "Fri 17:59", true),
        ("Mon-Fri 08:00-18:00", "Fri 18:00", false),
        ("Mon-Fri 08:00-18:00", "Sat 12:00", false),
        ("Sat,Sun", "Sat 00:00", true),
        ("Sat,Sun", "Sun 23:59", true),
        ("Sat,Sun", "Mon 00:00", false),
        ("Sat,Sun", "Fri 23:59", false),
        // crossing midnight: the early hours belong to the day after a listed day
        ("Fri 22:00-06:00", "Fri 21:59", false),
        ("Fri 22:00-06:00", "Fri 22:00", true),
        ("Fri 22:00-06:00", "Fri 23:59", true),
        ("Fri 22:00-06:00", "Sat 00:00", true),
        ("Fri 22:00-06:00", "Sat 05:59", true),
        ("Fri 22:00-06:00", "Sat 06:00", false),
        ("Fri 22:00-06:00", "Sat 22:00", false),
        ("Fri 22:00-06:00", "Fri 05:00", false),
        ("Fri 22:00-06:00", "Thu 23:00", false),
        ("Mon-Fri 22:00-06:00", "Mon 03:00", false),
        ("Mon-Fri 22:00-06:00", "Tue 03:00", true),
        ("Mon-Fri 22:00-06:00", "Sat 03:00", true),
        ("Mon-Fri 22:00-06:00", "Sat 22:30", false),
        ("Sun 22:00-06:00", "Mon 03:00", true),
        ("Sun 22:00-06:00", "Sun 03:00", false),
        ("22:00-06:00", "Wed 12:00", false),
        ("22:00-06:00", "Wed 06:00", false),
        ("22:00-06:00", "Wed 05:59", true),
        ("22:00-06:00", "Mon 00:00", true),
        ("23:59-00:01", "Mon 23:58", false),
        ("23:59-00:01", "Mon 23:59", true),
        ("23:59-00:01", "Tue 00:00", true),
        ("23:59-00:01", "Tue 00:01", false),
        ("Sat 23:59-00:01", "Sun 00:00", true),
        ("Sat 23:59-00:01", "Mon 00:00", false),
        // the whole day and its edges
        ("Mon 00:00-24:00", "Mon 00:00", true),
        ("Mon 00:00-24:00", "Mon 23:59", true),
        ("Mon 00:00-24:00", "Tue 00:00", false),
        ("Mon 00:00-24:00", "Sun 23:59", false),
        ("Mon 22:00-24:00", "Mon 23:59", true),
        ("Mon 22:00-24:00", "Tue 00:00", false),
        ("Mon 00:00-06:00", "Mon 00:00", true),
        ("Mon 00:00-06:00", "Sun 23:59", false),
        ("Mon 00:01-00:00", "Mon 00:00", false),
        ("Mon 00:01-00:00", "Mon 23:59", true),
        ("Mon 00:01-00:00", "Tue 00:00", false),
        // several ranges
        ("Mon-Fri 08:00-12:00,13:00-17:00", "Wed 12:30", false),
        ("Mon-Fri 08:00-12:00,13:00-17:00", "Wed 13:00", true),
        ("Mon 08:00-09:00,23:00-01:00", "Tue 00:30", true),
        ("Mon 08:00-09:00,23:00-01:00", "Tue 08:30", false),
        // wrapping day range
        ("Fri-Mon", "Sun 12:00", true),
        ("Fri-Mon", "Tue 12:00", false),
    ];

    #[test]
    fn contains_table() {
        for &(text, time, want) in CONTAINS_CASES {
            let w = TimeWindow::parse(text).unwrap();
            assert_eq!(w.contains_datetime(at(time)), want, "{text:?} at {time}");
            let zoned = at(time).to_zoned(TimeZone::UTC).unwrap();
            assert_eq!(w.contains(&zoned), want, "{text:?} at {time} (Zoned)");
            let ms = zoned.timestamp().as_millisecond();
            assert_eq!(
                w.contains_ms(ms, &TimeZone::UTC),
                want,
                "{text:?} at {time} (ms)"
            );
        }
    }

    #[test]
    fn seconds_do_not_matter() {
        let w = TimeWindow::parse("08:00-09:00").unwrap();
        let t = at("Mon 08:59")
            .with()
            .second(59)
            .subsec_nanosecond(999_999_999)
            .build()
            .unwrap();
        assert!(w.contains_datetime(t));
    }

    #[test]
    fn contains_ms_reads_the_zone() {
        let w = TimeWindow::parse("Mon-Fri 08:00-18:00").unwrap();
        // Monday 2026-06-01 06:30 UTC is 08:30 in Berlin (CEST) and 02:30 in New York.
        let ms = "2026-06-01T06:30:00Z"
            .parse::<Timestamp>()
            .unwrap()
            .as_millisecond();
        assert!(!w.contains_ms(ms, &TimeZone::UTC));
        assert!(w.contains_ms(ms, &parse_timezone("Europe/Berlin").unwrap()));
        assert!(!w.contains_ms(ms, &parse_timezone("America/New_York").unwrap()));
        // Saturday 00:30 in Tokyo is still Friday in UTC.
        let w = TimeWindow::parse("Sat").unwrap();
        let ms = "2026-06-05T15:30:00Z"
            .parse::<Timestamp>()
            .unwrap()
            .as_millisecond();
        assert!(w.contains_ms(ms, &parse_timezone("Asia/Tokyo").unwrap()));
        assert!(!w.contains_ms(ms, &TimeZone::UTC));
    }

    #[test]
    fn contains_ms_at_the_ends_of_time() {
        let tz = parse_timezone("Pacific/Kiritimati").unwrap();
        for ms in [i64::MIN, i64::MIN + 1, -1, 0, i64::MAX] {
            for w in ["always", "Mon", "22:00-06:00", "Sat 23:59-00:01"] {
                let w = TimeWindow::parse(w).unwrap();
                let _ = w.contains_ms(ms, &tz);
                let _ = w.contains_ms(ms, &TimeZone::UTC);
            }
        }
        assert!(TimeWindow::always().contains_ms(i64::MAX, &tz));
    }

    /// Minutes in `[from, to)` (UTC instants) that `window` contains, read in `tz`.
    fn minutes_in(window: &str, tz: &TimeZone, from: &str, to: &str) -> i64 {
        let w = TimeWindow::parse(window).unwrap();
        let from = from.parse::<Timestamp>().unwrap().as_millisecond();
        let to = to.parse::<Timestamp>().unwrap().as_millisecond();
        (from..to)
            .step_by(60_000)
            .filter(|&ms| w.contains_ms(ms, tz))
            .count()
            .try_into()
            .unwrap()
    }

    #[test]
    fn dst_transitions_in_berlin() {
        let berlin = parse_timezone("Europe/Berlin").unwrap();
        // Sunday 2026-03-29: 02:00 CET jumps to 03:00 CEST; the day has 23 hours.
        let (from, to) = ("2026-03-28T23:00:00Z", "2026-03-29T22:00:00Z");
        assert_eq!(minutes_in("Sun", &berlin, from, to), 23 * 60);
        assert_eq!(minutes_in("Sun 02:00-03:00", &berlin, from, to), 0);
        assert_eq!(minutes_in("Sun 01:00-04:00", &berlin, from, to), 2 * 60);
        assert_eq!(minutes_in("08:00-18:00", &berlin, from, to), 10 * 60);
        assert_eq!(minutes_in("Sat 22:00-06:00", &berlin, from, to), 5 * 60);
        // 08:00 local is 06:00 UTC after the change, 07:00 UTC before it.
        let w = TimeWindow::parse("Mon-Fri 08:00-18:00").unwrap();
        let fri = "2026-03-27T07:00:00Z"
            .parse::<Timestamp>()
            .unwrap()
            .as_millisecond();
        let mon = "2026-03-30T06:00:00Z"
            .parse::<Timestamp>()
            .unwrap()
            .as_millisecond();
        assert!(w.contains_ms(fri, &berlin) && !w.contains_ms(fri - 1, &berlin));
        assert!(w.contains_ms(mon, &berlin) && !w.contains_ms(mon - 1, &berlin));

        // Sunday 2026-10-25: 03:00 CEST falls back to 02:00 CET; the day has 25 hours.
        let (from, to) = ("2026-10-24T22:00:00Z", "2026-10-25T23:00:00Z");
        assert_eq!(minutes_in("Sun", &berlin, from, to), 25 * 60);
        assert_eq!(minutes_in("Sun 02:00-03:00", &berlin, from, to), 2 * 60);
        assert_eq!(minutes_in("08:00-18:00", &berlin, from, to), 10 * 60);
        assert_eq!(minutes_in("Sat 22:00-06:00", &berlin, from, to), 7 * 60);
    }

    #[test]
    fn timezones() {
        assert!(parse_timezone("Europe/Berlin").is_ok());
        assert!(parse_timezone(" UTC ").is_ok());
        assert!(parse_timezone("").is_ok());
        assert!(parse_timezone("system").is_ok());
        assert!(parse_timezone("System").is_ok());
        for bad in [
            "Mars/Olympus_Mons",
            "Europe/Berlinn",
            "../../etc/passwd",
            "\0",
            "😀",
        ] {
            let e = parse_timezone(bad).unwrap_err();
            assert!(e.starts_with("unknown time zone "), "{bad:?}: {e}");
            assert!(e.contains("IANA name"), "{e}");
        }
        let e = parse_timezone(&"x".repeat(100_000)).unwrap_err();
        assert!(e.len() < 300, "{} bytes", e.len());
    }

    #[test]
    fn serde() {
        #[derive(Deserialize, Serialize)]
        struct Rule {
            time: TimeWindows,
        }
        let r: Rule = toml::from_str("time = \"mon-fri 8:00-18:00\"").unwrap();
        assert_eq!(r.time.len(), 1);
        assert_eq!(
            toml::to_string(&r).unwrap(),
            "time = [\"Mon-Fri 08:00-18:00\"]\n"
        );
        let r: Rule = toml::from_str("time = [\"Sat,Sun\", \"22:00-06:00\"]").unwrap();
        assert_eq!(r.time.to_string(), "[Sat,Sun; 22:00-06:00]");
        assert!(r.time.first_match(at("Wed 23:00")).is_some());
        assert_eq!(
            r.time.first_match(at("Sun 23:00")).unwrap().to_string(),
            "Sat,Sun"
        );
        assert!(r.time.first_match(at("Wed 12:00")).is_none());
        let r: Rule = toml::from_str("time = []").unwrap();
        assert!(r.time.is_empty() && !r.time.contains_any_ms(0, &TimeZone::UTC));
        let e = toml::from_str::<Rule>("time = [\"Sat\", \"Mon 25:00-26:00\"]")
            .err()
            .unwrap();
        assert!(e.to_string().contains("invalid time \"25:00\""), "{e}");
        let e = toml::from_str::<Rule>("time = 1").err().unwrap();
        assert!(
            e.to_string().contains("a time window string or an array"),
            "{e}"
        );
        let w: TimeWindow = serde_json::from_str("\"Sat\"").unwrap();
        assert_eq!(serde_json::to_string(&w).unwrap(), "\"Sat\"");
        let ws = TimeWindows::parse(["Sat", "Sun 08:00-09:00"]).unwrap();
        let z = at("Sun 08:30").to_zoned(TimeZone::UTC).unwrap();
        assert_eq!(
            ws.first_match_ms(z.timestamp().as_millisecond(), &TimeZone::UTC),
            ws.as_slice().get(1)
        );
        assert!(ws.contains_any_ms(z.timestamp().as_millisecond(), &TimeZone::UTC));
    }

    fn window_strategy() -> impl Strategy<Value = TimeWindow> {
        let range = (0u16..MINUTES_PER_DAY, 1u16..=MINUTES_PER_DAY)
            .prop_filter("non-empty", |(s, e)| s != e)
            .prop_map(|(start, end)| MinuteRange { start, end });
        (1u8..=ALL_DAYS, prop::collection::vec(range, 0..4)).prop_map(|(days, ranges)| {
            let whole = |r: &MinuteRange| r.start == 0 && r.end == MINUTES_PER_DAY;
            let ranges = if ranges.iter().any(whole) {
                Vec::new()
            } else {
                ranges
            };
            TimeWindow { days, ranges }
        })
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in any::<String>()) {
            let _ = TimeWindow::parse(&s);
        }

        #[test]
        fn parse_never_panics_on_near_misses(
            s in "[ *,:\\-0-9a-zA-Z]{0,30}|(mon|tue|sun|fri)[-, ]{0,2}[0-9:\\-, ]{0,16}"
        ) {
            if let Ok(w) = TimeWindow::parse(&s) {
                let again = TimeWindow::parse(&w.to_string());
                prop_assert_eq!(again.as_ref(), Ok(&w), "{:?} -> {}", s, w);
            }
        }

        #[test]
        fn display_round_trips(w in window_strategy()) {
            let text = w.to_string();
            prop_assert_eq!(TimeWindow::parse(&text), Ok(w), "{}", text);
        }

        /// Against the definition on the week's minutes: a range `s-e` on day `d` covers
        /// `[d*1440 + s, d*1440 + e)`, plus a day when `e <= s`, modulo the week.
        #[test]
        fn contains_agrees_with_the_definition(w in window_strategy(), minute in 0u32..7 * 1440) {
            let dt = at("Mon 00:00")
                .checked_add(jiff::Span::new().minutes(i64::from(minute)))
                .unwrap();
            let week = 7 * 1440;
            let want = (0..7u32).filter(|&d| w.days & (1 << d) != 0).any(|d| {
                if w.ranges.is_empty() {
                    return minute / 1440 == d;
                }
                w.ranges.iter().any(|r| {
                    let (s, e) = (u32::from(r.start), u32::from(r.end));
                    let len = if e > s { e - s } else { e + 1440 - s };
                    (minute + week - d * 1440 - s) % week < len
                })
            });
            prop_assert_eq!(w.contains_datetime(dt), want, "{} at minute {}", w, minute);
        }
    }
}
