//! What a heartbeat's signals mean at a given time: a pure function, so the deadlines,
//! run pairing, runtime bounds and failure counting are tested without a clock or a
//! store.

use std::time::Duration;

use alertcore::{Signal, Timestamp};
use jiff::tz::TimeZone;
use serde::Serialize;

use super::spec::Heartbeat;

/// The signal kinds, as stored.
pub mod kind {
    /// The job succeeded.
    pub const SUCCESS: &str = "success";
    /// The job started.
    pub const START: &str = "start";
    /// The job failed.
    pub const FAIL: &str = "fail";
    /// The job finished with the signal's exit status (0 = success).
    pub const EXIT: &str = "exit";
    /// Text attached to the job's log; no change of state.
    pub const LOG: &str = "log";
    /// Every kind.
    pub const ALL: [&str; 5] = [SUCCESS, START, FAIL, EXIT, LOG];
}

/// What is wrong with a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Problem {
    /// Names this instance of the problem (the failed run, the missed deadline, the
    /// overrunning start): reported once, as the failure's invocation id.
    pub key: String,
    /// What kind of problem: `late`, `overrun`, `failed`, `too-short`, `too-early`.
    pub result: &'static str,
    /// One line saying what is wrong.
    pub message: String,
    /// Since when.
    pub since: Timestamp,
}

/// Where a heartbeat stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "state")]
pub enum Standing {
    /// It never finished a run, and its first is not due yet.
    New,
    /// Its last run counts as a success (or its failures are below `failures`), and
    /// the next is not late.
    Up,
    /// Something is wrong.
    Down(Problem),
}

/// A heartbeat's standing at a time, with what it was judged from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Assessment {
    /// The standing.
    #[serde(flatten)]
    pub standing: Standing,
    /// The last run that counts as a success.
    pub last_success: Option<Timestamp>,
    /// The last signal of any kind.
    pub last_signal: Option<Timestamp>,
    /// When a run in progress started (the newest, if several).
    pub running_since: Option<Timestamp>,
    /// When it is late if no run finishes first.
    pub deadline: Option<Timestamp>,
    /// The next time the standing can change with no new signal (a deadline, the end
    /// of a run's `max_runtime`).
    #[serde(skip)]
    pub wake: Option<Timestamp>,
}

/// One finished run.
struct Run<'a> {
    signal: &'a Signal,
    /// Why it counts as failed.
    problem: Option<(&'static str, String)>,
}

/// Judges `signals` (oldest first) of `hb` at `now`; `since` is when the heartbeat was
/// first seen (its first run is expected after it).
pub fn assess(hb: &Heartbeat, signals: &[Signal], since: Timestamp, now: Timestamp) -> Assessment {
    let mut runs: Vec<Run<'_>> = Vec::new();
    // starts not finished yet, oldest first
    let mut open: Vec<&Signal> = Vec::new();
    for s in signals {
        match s.kind.as_str() {
            kind::START => {
                // a start without a run id replaces one that never finished: the job
                // was started again (healthchecks.io does the same)
                if s.rid.is_none() {
                    open.retain(|o| o.rid.is_some());
                }
                open.push(s);
            }
            kind::SUCCESS | kind::FAIL | kind::EXIT => {
                let started = open
                    .iter()
                    .rposition(|o| o.rid == s.rid)
                    .map(|i| open.remove(i).at);
                let previous = runs.last().map(|r| r.signal.at);
                runs.push(Run {
                    signal: s,
                    problem: run_problem(hb, s, started, previous),
                });
            }
            _ => {}
        }
    }
    let last_finish = runs.last().map(|r| r.signal.at);
    // a start older than the last finish and without a run id was abandoned (its job
    // died without a word); one with a run id may overlap later runs
    open.retain(|o| o.rid.is_some() || last_finish.is_none_or(|f| o.at >= f));
    let last_success = runs
        .iter()
        .rev()
        .find(|r| r.problem.is_none())
        .map(|r| r.signal.at);
    let mut problems: Vec<Problem> = Vec::new();
    let mut wakes: Vec<Timestamp> = Vec::new();

    if let Some(p) = failed_runs(hb, &runs, last_success) {
        problems.push(p);
    }
    if let Some(max) = hb.max_runtime {
        for o in &open {
            let limit = o.at.saturating_add(max);
            if now >= limit {
                problems.push(Problem {
                    key: format!("overrun:{}", o.id),
                    result: "overrun",
                    message: format!(
                        "started {}, still running after {}",
                        local(o.at, &hb.zone),
                        seconds(now.saturating_duration_since(o.at))
                    ),
                    since: limit,
                });
            } else {
                wakes.push(limit);
            }
        }
    }
    let expected = hb.expected_after(last_finish.unwrap_or(since));
    let mut deadline = expected.map(|e| e.saturating_add(hb.grace));
    // a run that started in time is not late before its own bound; one that started
    // after the deadline does not make up for it (its success will)
    if let (Some(d), Some(o)) = (deadline, open.last())
        && o.at < d
    {
        let bound = o.at.saturating_add(hb.max_runtime.unwrap_or(hb.grace));
        deadline = Some(d.max(bound));
    }
    // an overrunning run is what makes it late too: tell the overrun
    let overrun = problems.iter().any(|p| p.result == "overrun");
    match deadline {
        Some(_) if overrun => {}
        Some(d) if now >= d => problems.push(Problem {
            key: format!("late:{}", d.as_millis()),
            result: "late",
            message: format!(
                "expected by {}, last success {}",
                local(d, &hb.zone),
                last_success.map_or_else(|| "never".to_owned(), |t| local(t, &hb.zone))
            ),
            since: d,
        }),
        Some(d) => wakes.push(d),
        None => {}
    }
    // the newest problem is the one to tell
    let standing = match problems.into_iter().max_by_key(|p| p.since) {
        Some(p) => Standing::Down(p),
        None if runs.is_empty() => Standing::New,
        None => Standing::Up,
    };
    Assessment {
        standing,
        last_success,
        last_signal: signals.last().map(|s| s.at),
        running_since: open.last().map(|o| o.at),
        deadline,
        wake: wakes.into_iter().filter(|w| *w > now).min(),
    }
}

/// Why the run that finished with `s` counts as failed, if it does.
fn run_problem(
    hb: &Heartbeat,
    s: &Signal,
    started: Option<Timestamp>,
    previous: Option<Timestamp>,
) -> Option<(&'static str, String)> {
    let text = s
        .body
        .as_deref()
        .and_then(|b| b.lines().map(str::trim).find(|l| !l.is_empty()))
        .map(|l| alertcore::transport::one_line(&l.chars().take(200).collect::<String>()));
    let with_text = |head: String| match &text {
        Some(t) => format!("{head}: {t}"),
        None => head,
    };
    match (s.kind.as_str(), s.exit_status) {
        (kind::FAIL, _) => return Some(("failed", with_text("failed".to_owned()))),
        (kind::EXIT, Some(code)) if code != 0 => {
            return Some(("failed", with_text(format!("exit status {code}"))));
        }
        _ => {}
    }
    if let (Some(min), Some(started)) = (hb.min_runtime, started) {
        let took = s.at.saturating_duration_since(started);
        if took < min {
            return Some((
                "too-short",
                format!(
                    "finished in {}, sooner than min_runtime {}",
                    seconds(took),
                    alertcore::duration::format(min)
                ),
            ));
        }
    }
    if let (Some(min), Some(previous)) = (hb.min_interval, previous) {
        let gap = s.at.saturating_duration_since(previous);
        if gap < min {
            return Some((
                "too-early",
                format!(
                    "ran {} after the previous run, sooner than min_interval {}",
                    seconds(gap),
                    alertcore::duration::format(min)
                ),
            ));
        }
    }
    None
}

/// The problem of the failed runs since the last success, when they reach `failures`.
fn failed_runs(
    hb: &Heartbeat,
    runs: &[Run<'_>],
    last_success: Option<Timestamp>,
) -> Option<Problem> {
    let latest = runs.last()?;
    let (result, message) = latest.problem.as_ref()?;
    let need = hb.failures.count as usize;
    let failed: Vec<Timestamp> = runs
        .iter()
        .filter(|r| r.problem.is_some())
        .map(|r| r.signal.at)
        .collect();
    let since_success = runs
        .iter()
        .rev()
        .take_while(|r| r.problem.is_some())
        .count();
    let counted = match hb.failures.within {
        // the failed runs since the last success are the ones in a row
        None => (since_success >= need).then(|| format!("{since_success} failed runs in a row")),
        Some(window) => {
            // does some failed run since the last success close a window of `need`?
            let mut hit = None;
            for (i, at) in failed.iter().enumerate() {
                if last_success.is_some_and(|s| *at < s) {
                    continue;
                }
                let from = at.saturating_sub(window);
                let n = failed[..=i].iter().rev().take_while(|t| **t > from).count();
                if n >= need {
                    hit = Some(n);
                }
            }
            hit.map(|n| format!("{n} failed runs in {}", alertcore::duration::format(window)))
        }
    }?;
    let message = if need > 1 {
        format!("{counted}; the last: {message}")
    } else {
        message.clone()
    };
    Some(Problem {
        key: format!("run:{}", latest.signal.id),
        result,
        message,
        since: latest.signal.at,
    })
}

/// `t` as a wall-clock time in `zone`: `2026-11-20 03:02 CET`.
pub fn local(t: Timestamp, zone: &TimeZone) -> String {
    jiff::Timestamp::from_millisecond(t.as_millis()).map_or_else(
        |_| t.to_string(),
        |ts| {
            ts.to_zoned(zone.clone())
                .strftime("%Y-%m-%d %H:%M %Z")
                .to_string()
        },
    )
}

/// `d` to the second, as people write it: `2h 3s`.
fn seconds(d: Duration) -> String {
    alertcore::duration::format(Duration::from_secs(d.as_secs()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::cron::CronSchedule;
    use crate::heartbeat::spec::{Expect, Failures};

    const MIN: i64 = 60_000;

    fn t(min: i64) -> Timestamp {
        Timestamp::from_millis(min * MIN)
    }

    fn hourly() -> Heartbeat {
        Heartbeat::every(
            "backup",
            Duration::from_secs(3_600),
            Duration::from_secs(600),
        )
    }

    /// Signals with ids in order.
    fn sig(list: Vec<Signal>) -> Vec<Signal> {
        list.into_iter()
            .enumerate()
            .map(|(i, mut s)| {
                s.id = i64::try_from(i).unwrap() + 1;
                s
            })
            .collect()
    }

    fn s(kind: &str, at: Timestamp) -> Signal {
        Signal::new("backup", kind, at)
    }

    fn down(a: &Assessment) -> &Problem {
        match &a.standing {
            Standing::Down(p) => p,
            other => panic!("not down: {other:?}"),
        }
    }

    #[test]
    fn a_heartbeat_that_never_called_in_is_late_after_its_period_and_grace() {
        let hb = hourly();
        let a = assess(&hb, &[], t(0), t(65));
        assert_eq!(a.standing, Standing::New);
        assert_eq!(a.deadline, Some(t(70)));
        assert_eq!(a.wake, Some(t(70)));
        let a = assess(&hb, &[], t(0), t(70));
        let p = down(&a);
        assert_eq!(p.result, "late");
        assert_eq!(p.key, format!("late:{}", 70 * MIN));
        assert_eq!(
            p.message,
            "expected by 1970-01-01 01:10 UTC, last success never"
        );
    }

    #[test]
    fn each_success_moves_the_deadline_and_the_next_success_recovers() {
        let hb = hourly();
        let list = sig(vec![s(kind::SUCCESS, t(30))]);
        let a = assess(&hb, &list, t(0), t(99));
        assert_eq!(a.standing, Standing::Up);
        assert_eq!(a.deadline, Some(t(100)));
        assert_eq!(a.last_success, Some(t(30)));
        let a = assess(&hb, &list, t(0), t(100));
        assert_eq!(
            down(&a).message,
            "expected by 1970-01-01 01:40 UTC, last success 1970-01-01 00:30 UTC"
        );
        // a late success is the recovery
        let list = sig(vec![s(kind::SUCCESS, t(30)), s(kind::SUCCESS, t(120))]);
        let a = assess(&hb, &list, t(0), t(121));
        assert_eq!(a.standing, Standing::Up);
        assert_eq!(a.deadline, Some(t(190)));
    }

    #[test]
    fn fail_and_a_non_zero_exit_status_fail_with_the_first_line_they_carry() {
        let hb = hourly();
        let list = sig(vec![
            s(kind::SUCCESS, t(0)),
            s(kind::FAIL, t(5)).body("\n  rsync: connection refused  \nmore\n"),
        ]);
        let a = assess(&hb, &list, t(0), t(6));
        let p = down(&a);
        assert_eq!(
            (p.result, p.message.as_str()),
            ("failed", "failed: rsync: connection refused")
        );
        assert_eq!(p.key, "run:2");
        let list = sig(vec![s(kind::EXIT, t(5)).exit_status(3)]);
        assert_eq!(
            down(&assess(&hb, &list, t(0), t(6))).message,
            "exit status 3"
        );
        // exit status 0 is a success, and a log line changes nothing
        let list = sig(vec![
            s(kind::FAIL, t(5)),
            s(kind::EXIT, t(6)).exit_status(0),
            s(kind::LOG, t(7)).body("all fine"),
        ]);
        let a = assess(&hb, &list, t(0), t(8));
        assert_eq!(a.standing, Standing::Up);
        assert_eq!(a.last_success, Some(t(6)));
        assert_eq!(a.last_signal, Some(t(7)));
    }

    #[test]
    fn a_start_without_a_finish_within_max_runtime_is_an_overrun() {
        let mut hb = hourly();
        hb.max_runtime = Some(Duration::from_secs(7_200));
        let list = sig(vec![s(kind::SUCCESS, t(0)), s(kind::START, t(60))]);
        let a = assess(&hb, &list, t(0), t(179));
        assert_eq!(a.standing, Standing::Up);
        assert_eq!(a.running_since, Some(t(60)));
        // not late while it runs: its bound is the start + max_runtime
        assert_eq!(a.deadline, Some(t(180)));
        assert_eq!(a.wake, Some(t(180)));
        let a = assess(&hb, &list, t(0), t(180));
        let p = down(&a);
        assert_eq!(p.result, "overrun");
        assert_eq!(p.key, "overrun:2");
        assert_eq!(
            p.message,
            "started 1970-01-01 01:00 UTC, still running after 2h"
        );
        // a start after the deadline does not end a late heartbeat
        let late = sig(vec![s(kind::SUCCESS, t(0)), s(kind::START, t(75))]);
        assert_eq!(down(&assess(&hb, &late, t(0), t(76))).result, "late");
        // its finish ends it
        let mut done = list.clone();
        let mut finish = s(kind::SUCCESS, t(185));
        finish.id = 3;
        done.push(finish);
        assert_eq!(assess(&hb, &done, t(0), t(186)).standing, Standing::Up);
    }

    #[test]
    fn a_run_faster_than_min_runtime_or_sooner_than_min_interval_fails() {
        let mut hb = hourly();
        hb.min_runtime = Some(Duration::from_secs(60));
        let list = sig(vec![
            s(kind::START, t(0)),
            Signal::new("backup", kind::SUCCESS, Timestamp::from_millis(2_000)),
        ]);
        let p = down(&assess(&hb, &list, t(0), t(1))).clone();
        assert_eq!(p.result, "too-short");
        assert_eq!(p.message, "finished in 2s, sooner than min_runtime 1m");
        // with no start there is no runtime to judge
        let list = sig(vec![s(kind::SUCCESS, t(0))]);
        assert_eq!(assess(&hb, &list, t(0), t(1)).standing, Standing::Up);

        let mut hb = hourly();
        hb.min_interval = Some(Duration::from_secs(3_600));
        let list = sig(vec![s(kind::SUCCESS, t(0)), s(kind::SUCCESS, t(4))]);
        let p = down(&assess(&hb, &list, t(0), t(5))).clone();
        assert_eq!(p.result, "too-early");
        assert_eq!(
            p.message,
            "ran 4m after the previous run, sooner than min_interval 1h"
        );
        let list = sig(vec![s(kind::SUCCESS, t(0)), s(kind::SUCCESS, t(60))]);
        assert_eq!(assess(&hb, &list, t(0), t(61)).standing, Standing::Up);
    }

    #[test]
    fn run_ids_pair_overlapping_starts_with_their_finishes() {
        let mut hb = hourly();
        hb.min_runtime = Some(Duration::from_secs(15));
        let ms = Timestamp::from_millis;
        // a: 0s → 20s (20s), b: 10s → 20s (10s: too short)
        let list = sig(vec![
            Signal::new("backup", kind::START, ms(0)).rid("a"),
            Signal::new("backup", kind::START, ms(10_000)).rid("b"),
            Signal::new("backup", kind::SUCCESS, ms(20_000)).rid("a"),
        ]);
        let a = assess(&hb, &list, t(0), t(1));
        assert_eq!(a.standing, Standing::Up);
        assert_eq!(a.running_since, Some(ms(10_000)));
        let mut list = list;
        let mut finish = Signal::new("backup", kind::SUCCESS, ms(20_000)).rid("b");
        finish.id = 4;
        list.push(finish);
        let p = down(&assess(&hb, &list, t(0), t(1))).clone();
        assert_eq!(p.message, "finished in 10s, sooner than min_runtime 15s");
        // without run ids, a finish pairs with the newest start
        let list = sig(vec![
            Signal::new("backup", kind::START, ms(0)),
            Signal::new("backup", kind::START, ms(10_000)),
            Signal::new("backup", kind::SUCCESS, ms(30_000)),
        ]);
        let a = assess(&hb, &list, t(0), t(1));
        assert_eq!(a.standing, Standing::Up, "paired with the 10s start: 20s");
        assert_eq!(a.running_since, None, "the first start was abandoned");
    }

    #[test]
    fn failures_in_a_window_count_where_in_a_row_would_not() {
        let mut hb = hourly();
        hb.failures = Failures {
            count: 3,
            within: Some(Duration::from_secs(3_600)),
        };
        let fail = |m| s(kind::FAIL, t(m));
        let ok = |m| s(kind::SUCCESS, t(m));
        // two failures: below the count
        let list = sig(vec![fail(0), ok(10), fail(20)]);
        assert_eq!(assess(&hb, &list, t(0), t(21)).standing, Standing::Up);
        // the third within the hour, with a success between: counts
        let list = sig(vec![fail(0), ok(10), fail(20), fail(50)]);
        let p = down(&assess(&hb, &list, t(0), t(51))).clone();
        assert_eq!(p.message, "3 failed runs in 1h; the last: failed");
        assert_eq!(p.key, "run:4");
        // spread over more than the hour: does not
        let list = sig(vec![fail(0), ok(10), fail(40), fail(61)]);
        assert_eq!(assess(&hb, &list, t(0), t(62)).standing, Standing::Up);
        // the next success recovers
        let list = sig(vec![fail(0), fail(20), fail(50), ok(55)]);
        assert_eq!(assess(&hb, &list, t(0), t(56)).standing, Standing::Up);

        // in a row: a success between starts the count again
        hb.failures = Failures {
            count: 2,
            within: None,
        };
        let list = sig(vec![fail(0), ok(10), fail(20)]);
        assert_eq!(assess(&hb, &list, t(0), t(21)).standing, Standing::Up);
        let list = sig(vec![fail(0), ok(10), fail(20), fail(30)]);
        assert_eq!(
            down(&assess(&hb, &list, t(0), t(31))).message,
            "2 failed runs in a row; the last: failed"
        );
    }

    #[test]
    fn a_schedule_deadline_follows_the_zone_across_a_daylight_saving_change() {
        let at = |s: &str| {
            Timestamp::from_millis(s.parse::<jiff::Timestamp>().unwrap().as_millisecond())
        };
        let zone = TimeZone::get("Europe/Berlin").unwrap();
        let mut hb = hourly();
        hb.expect = Expect::Schedule(Box::new(
            CronSchedule::parse("0 3 * * *", zone.clone()).unwrap(),
        ));
        hb.grace = Duration::from_secs(900);
        hb.zone = zone;
        // the last run: Saturday 03:02 CET (02:02 UTC); the next is Sunday 03:00 CEST,
        // 01:00 UTC: the night the clocks went forward
        let list = sig(vec![s(kind::SUCCESS, at("2026-03-28T02:02:00Z"))]);
        let a = assess(&hb, &list, t(0), at("2026-03-29T01:14:59Z"));
        assert_eq!(a.standing, Standing::Up);
        assert_eq!(a.deadline, Some(at("2026-03-29T01:15:00Z")));
        let a = assess(&hb, &list, t(0), at("2026-03-29T01:15:00Z"));
        assert_eq!(
            down(&a).message,
            "expected by 2026-03-29 03:15 CEST, last success 2026-03-28 03:02 CET"
        );
        // and back in October: Sunday 03:00 CET is 02:00 UTC
        let list = sig(vec![s(kind::SUCCESS, at("2026-10-24T01:00:00Z"))]);
        let a = assess(&hb, &list, t(0), at("2026-10-25T02:00:00Z"));
        assert_eq!(a.deadline, Some(at("2026-10-25T02:15:00Z")));
    }
}
