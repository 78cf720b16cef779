//! `[[heartbeats]]`: reading the config into [`Heartbeat`]s.

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use alertcore::transport::SecretSource;
use alertcore::{BuildError, Config, ConfigError, Severity, Table, Timestamp};
use jiff::tz::TimeZone;
use serde::Deserialize;

use crate::cron::CronSchedule;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    name: String,
    #[serde(default, with = "alertcore::duration::option")]
    period: Option<Duration>,
    schedule: Option<String>,
    timezone: Option<String>,
    #[serde(default, with = "alertcore::duration::option")]
    grace: Option<Duration>,
    #[serde(default, with = "alertcore::duration::option")]
    max_runtime: Option<Duration>,
    #[serde(default, with = "alertcore::duration::option")]
    min_runtime: Option<Duration>,
    #[serde(default, with = "alertcore::duration::option")]
    min_interval: Option<Duration>,
    failures: Option<toml::Value>,
    host: Option<String>,
    severity: Option<Severity>,
    enabled: Option<bool>,
    ping_key_env: Option<String>,
    ping_key_file: Option<std::path::PathBuf>,
    ping_key_credential: Option<String>,
    // read by `crate::dependencies`
    #[serde(default, rename = "depends_on")]
    _depends_on: Option<toml::Value>,
}

/// The default `grace`, as healthchecks.io's.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(3_600);
/// The longest `period`, `grace` and runtime bound: a year.
const MAX: Duration = Duration::from_secs(366 * 86_400);

/// When a heartbeat expects its next run.
#[derive(Debug, Clone)]
pub enum Expect {
    /// `period`: this long after the previous run.
    Period(Duration),
    /// `schedule`: at the next time the cron expression names.
    Schedule(Box<CronSchedule>),
}

/// `failures`: how many failed runs make a heartbeat count as failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failures {
    /// How many.
    pub count: u32,
    /// Within this window (`"3 in 1h"`); in a row when `None` (`3`).
    pub within: Option<Duration>,
}

impl Failures {
    /// The first failed run counts (the default).
    pub const FIRST: Self = Self {
        count: 1,
        within: None,
    };
}

/// One configured heartbeat: a job that must call in.
#[derive(Clone)]
#[non_exhaustive]
pub struct Heartbeat {
    /// Its name: the service name of its alerts, rules and `alertctl status`, and the
    /// name it is pinged by.
    pub name: String,
    /// The host its alerts are about, when not the engine's.
    pub host: Option<String>,
    /// When the next run is expected.
    pub expect: Expect,
    /// How late a run may be before it is missing.
    pub grace: Duration,
    /// A run still going this long after its start is a failure.
    pub max_runtime: Option<Duration>,
    /// A run that finished faster than this is a failure.
    pub min_runtime: Option<Duration>,
    /// A run that finished sooner than this after the previous one is a failure.
    pub min_interval: Option<Duration>,
    /// How many failed runs make it count as failed.
    pub failures: Failures,
    /// The severity of its failures (default critical).
    pub severity: Severity,
    /// The time zone its times are shown in (its schedule's).
    pub zone: TimeZone,
    /// Its own ping key (`ping_key_file`, ...), instead of `[http]`'s.
    pub ping_key: Option<SecretSource>,
}

impl fmt::Debug for Heartbeat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Heartbeat")
            .field("name", &self.name)
            .field("expect", &self.expect)
            .field("grace", &self.grace)
            .field("max_runtime", &self.max_runtime)
            .field("min_runtime", &self.min_runtime)
            .field("min_interval", &self.min_interval)
            .field("failures", &self.failures)
            .finish_non_exhaustive()
    }
}

impl Heartbeat {
    /// A heartbeat expected every `period`, with the defaults for the rest: for
    /// embedders and tests.
    pub fn every(name: impl Into<String>, period: Duration, grace: Duration) -> Self {
        Self {
            name: name.into(),
            host: None,
            expect: Expect::Period(period),
            grace,
            max_runtime: None,
            min_runtime: None,
            min_interval: None,
            failures: Failures::FIRST,
            severity: Severity::Critical,
            zone: TimeZone::UTC,
            ping_key: None,
        }
    }

    /// When the run after one that finished at `t` is expected (its grace not added).
    pub fn expected_after(&self, t: Timestamp) -> Option<Timestamp> {
        match &self.expect {
            Expect::Period(p) => Some(t.saturating_add(*p)),
            Expect::Schedule(cron) => cron.next_after(t),
        }
    }
}

/// Reads every enabled `[[heartbeats]]` entry of `config`.
///
/// # Errors
/// A [`ConfigError`] at the first bad heartbeat (`file:line:col: heartbeat "backup":
/// ...`): an unknown key, a bad value, a name used twice.
pub fn heartbeats(config: &Config) -> Result<Vec<Heartbeat>, ConfigError> {
    let mut names = HashSet::new();
    let mut out = Vec::with_capacity(config.heartbeats.len());
    for (i, spanned) in config.heartbeats.iter().enumerate() {
        let raw = spanned.get_ref();
        let what = match raw.get("name").and_then(toml::Value::as_str) {
            Some(name) => format!("heartbeat {name:?}"),
            None => format!("heartbeat {}", i + 1),
        };
        let (hb, enabled) = build(raw, config.timezone.as_deref())
            .map_err(|e| config.error_in(spanned, &what, e))?;
        if !names.insert(hb.name.clone()) {
            let e = BuildError::key("name", format!("another heartbeat is named {:?}", hb.name));
            return Err(config.error_in(spanned, &what, e));
        }
        // one name, one service: a check and a heartbeat of one name would end each
        // other's failures
        if config
            .checks
            .iter()
            .any(|c| c.get_ref().get("name").and_then(toml::Value::as_str) == Some(&hb.name))
        {
            let e = BuildError::key("name", format!("a check is named {:?} too", hb.name));
            return Err(config.error_in(spanned, &what, e));
        }
        if enabled {
            out.push(hb);
        }
    }
    Ok(out)
}

fn build(raw: &toml::Table, timezone: Option<&str>) -> Result<(Heartbeat, bool), BuildError> {
    let spec: Spec = Table::from(raw.clone()).deserialize()?;
    check_name(&spec.name).map_err(|e| BuildError::key("name", e))?;
    let bounded = |key: &str, d: Option<Duration>| match d {
        Some(d) if d.is_zero() || d > MAX => Err(BuildError::key(
            key,
            format!("`{key}` must be longer than 0s and at most 366 days"),
        )),
        _ => Ok(d),
    };
    let zone_name = spec.timezone.as_deref().or(timezone).unwrap_or("system");
    let zone = alertcore::rules::parse_timezone(zone_name)
        .map_err(|e| BuildError::key("timezone", format!("`timezone`: {e}")))?;
    let expect = match (spec.period, &spec.schedule) {
        (Some(_), Some(_)) => {
            return Err(BuildError::key(
                "schedule",
                "give either `period` or `schedule`, not both",
            ));
        }
        (None, None) => {
            return Err(BuildError::new(
                "give `period` (\"1d\") or `schedule` (\"0 3 * * *\"): when is it expected?",
            ));
        }
        (Some(p), None) => {
            if spec.timezone.is_some() {
                return Err(BuildError::key(
                    "timezone",
                    "`timezone` only means something with `schedule`",
                ));
            }
            Expect::Period(bounded("period", Some(p))?.unwrap_or(p))
        }
        (None, Some(expr)) => {
            let cron = CronSchedule::parse(expr, zone.clone())
                .map_err(|e| BuildError::key("schedule", format!("`schedule`: {e}")))?;
            let now = Timestamp::from_system_time(std::time::SystemTime::now());
            if cron.next_after(now).is_none() {
                return Err(BuildError::key(
                    "schedule",
                    "`schedule` names no time in the coming years",
                ));
            }
            Expect::Schedule(Box::new(cron))
        }
    };
    let grace = bounded("grace", spec.grace)?.unwrap_or(DEFAULT_GRACE);
    let max_runtime = bounded("max_runtime", spec.max_runtime)?;
    let min_runtime = bounded("min_runtime", spec.min_runtime)?;
    let min_interval = bounded("min_interval", spec.min_interval)?;
    if let (Some(min), Some(max)) = (min_runtime, max_runtime)
        && min >= max
    {
        return Err(BuildError::key(
            "min_runtime",
            "`min_runtime` must be shorter than `max_runtime`",
        ));
    }
    let ping_key = SecretSource::choose(
        ("ping_key_env", spec.ping_key_env.as_deref()),
        ("ping_key_file", spec.ping_key_file.as_deref()),
        ("ping_key_credential", spec.ping_key_credential.as_deref()),
    )?;
    let failures = match &spec.failures {
        None => Failures::FIRST,
        Some(v) => parse_failures(v).map_err(|e| BuildError::key("failures", e))?,
    };
    Ok((
        Heartbeat {
            name: spec.name,
            host: spec.host,
            expect,
            grace,
            max_runtime,
            min_runtime,
            min_interval,
            failures,
            severity: spec.severity.unwrap_or(Severity::Critical),
            zone,
            ping_key,
        },
        spec.enabled.unwrap_or(true),
    ))
}

/// Whether `name` may name a heartbeat: it is part of the ping URL.
///
/// # Errors
/// What is wrong with it.
pub fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty()
        || name.len() > 200
        || name.contains('/')
        || name.chars().any(char::is_control)
    {
        return Err(
            "`name` must be 1 to 200 bytes, without `/` or control characters (it is part of the ping URL)",
        );
    }
    Ok(())
}

/// `failures = 3` (in a row) or `failures = "3 in 1h"`.
fn parse_failures(v: &toml::Value) -> Result<Failures, String> {
    const HOW: &str =
        "`failures` is a count of failed runs in a row (3) or in a window (\"3 in 1h\")";
    let (count, within) = match v {
        toml::Value::Integer(n) => (*n, None),
        toml::Value::String(s) => match s.split_once(" in ") {
            Some((n, w)) => {
                let n = n
                    .trim()
                    .parse::<i64>()
                    .map_err(|_| format!("{HOW}; got {s:?}"))?;
                let w = alertcore::duration::parse(w).map_err(|e| format!("`failures`: {e}"))?;
                if w.is_zero() || w > MAX {
                    return Err(
                        "`failures`: the window must be longer than 0s and at most 366 days".into(),
                    );
                }
                (n, Some(w))
            }
            None => (
                s.trim()
                    .parse::<i64>()
                    .map_err(|_| format!("{HOW}; got {s:?}"))?,
                None,
            ),
        },
        _ => return Err(HOW.to_owned()),
    };
    let count = u32::try_from(count)
        .ok()
        .filter(|n| (1..=1000).contains(n))
        .ok_or_else(|| format!("{HOW}, between 1 and 1000"))?;
    Ok(Failures { count, within })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Heartbeat>, String> {
        let config = Config::parse(text, "a.toml").map_err(|e| e.to_string())?;
        heartbeats(&config).map_err(|e| e.to_string())
    }

    #[test]
    fn a_heartbeat_has_a_period_or_a_schedule() {
        let hb = &parse("[[heartbeats]]\nname = \"backup\"\nperiod = \"1d\"\n").unwrap()[0];
        assert!(matches!(hb.expect, Expect::Period(p) if p == Duration::from_secs(86_400)));
        assert_eq!(hb.grace, DEFAULT_GRACE);
        assert_eq!(hb.failures, Failures::FIRST);
        let hb = &parse(
            "[[heartbeats]]\nname = \"b\"\nschedule = \"0 3 * * *\"\ntimezone = \"UTC\"\ngrace = \"15m\"\nfailures = \"3 in 1h\"\n",
        )
        .unwrap()[0];
        assert_eq!(
            hb.expected_after(Timestamp::from_millis(0)),
            Some(Timestamp::from_millis(3 * 3_600_000))
        );
        assert_eq!(
            hb.failures,
            Failures {
                count: 3,
                within: Some(Duration::from_secs(3_600))
            }
        );
        let hb =
            &parse("[[heartbeats]]\nname = \"b\"\nperiod = \"1h\"\nfailures = 2\n").unwrap()[0];
        assert_eq!(hb.failures.count, 2);
        assert_eq!(hb.failures.within, None);
        // disabled ones are read (and checked) but left out
        assert!(
            parse("[[heartbeats]]\nname = \"b\"\nperiod = \"1h\"\nenabled = false\n")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn errors_point_at_the_heartbeat_and_its_key() {
        for (body, want) in [
            (
                "period = \"1d\"\nschedule = \"0 3 * * *\"\n",
                "a.toml:4:1: heartbeat \"b\": give either `period` or `schedule`",
            ),
            (
                "grace = \"1h\"\n",
                "a.toml:1:1: heartbeat \"b\": give `period`",
            ),
            (
                "period = \"0s\"\n",
                "a.toml:3:1: heartbeat \"b\": `period` must be longer than 0s",
            ),
            (
                "period = \"1h\"\nfailures = \"3 in forever\"\n",
                "a.toml:4:1: heartbeat \"b\": `failures`: invalid duration",
            ),
            (
                "period = \"1h\"\nfailures = 0\n",
                "a.toml:4:1: heartbeat \"b\": `failures` is a count",
            ),
            (
                "period = \"1h\"\nfailures = \"three\"\n",
                "a.toml:4:1: heartbeat \"b\": `failures` is a count",
            ),
            (
                "period = \"1h\"\nmin_runtime = \"2h\"\nmax_runtime = \"1h\"\n",
                "a.toml:4:1: heartbeat \"b\": `min_runtime` must be shorter",
            ),
            (
                "schedule = \"61 * * * *\"\n",
                "a.toml:3:1: heartbeat \"b\": `schedule`: ",
            ),
            (
                "period = \"1h\"\ntimezone = \"UTC\"\n",
                "a.toml:4:1: heartbeat \"b\": `timezone` only means",
            ),
            (
                "period = \"1h\"\nseverity = \"info\"\n",
                "a.toml:4:1: heartbeat \"b\": `severity`: unknown variant `info`",
            ),
            (
                "period = \"1h\"\nperiode = \"1h\"\n",
                "heartbeat \"b\": unknown field `periode`",
            ),
        ] {
            let e = parse(&format!("[[heartbeats]]\nname = \"b\"\n{body}")).unwrap_err();
            assert!(e.contains(want), "{body}: {e}");
        }
        let e = parse("[[heartbeats]]\nname = \"a/b\"\nperiod = \"1h\"\n").unwrap_err();
        assert!(
            e.starts_with("a.toml:2:1: heartbeat \"a/b\": `name` must be"),
            "{e}"
        );
        let e = parse("[[checks]]\nname = \"b\"\nkind = \"file\"\npath = \"/\"\n[[heartbeats]]\nname = \"b\"\nperiod = \"1h\"\n").unwrap_err();
        assert!(
            e.starts_with("a.toml:6:1: heartbeat \"b\": a check is named \"b\" too"),
            "{e}"
        );
        let e = parse("[[heartbeats]]\nname = \"b\"\nperiod = \"1h\"\n[[heartbeats]]\nname = \"b\"\nperiod = \"1h\"\n").unwrap_err();
        assert!(
            e.starts_with("a.toml:5:1: heartbeat \"b\": another heartbeat"),
            "{e}"
        );
    }
}
