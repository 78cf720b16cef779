//! `[[checks]]` and `[hosts.NAME]`: reading the config into [`Check`]s.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use alertcore::{BuildError, Config, ConfigError, Severity, Table, Timestamp};
use serde::Deserialize;

use crate::cron::CronSchedule;
use crate::kind::{self, BuildContext, Probe};

/// The keys every check has, whatever its kind; the rest of its table is the kind's.
const COMMON: [&str; 14] = [
    "name",
    "kind",
    "host",
    "interval",
    "schedule",
    "timezone",
    "retry_interval",
    "timeout",
    "threshold",
    "within",
    "recover_after",
    "unknown",
    "enabled",
    "depends_on",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Common {
    name: String,
    kind: String,
    host: Option<String>,
    #[serde(default, with = "alertcore::duration::option")]
    interval: Option<Duration>,
    schedule: Option<String>,
    timezone: Option<String>,
    #[serde(default, with = "alertcore::duration::option")]
    retry_interval: Option<Duration>,
    #[serde(default, with = "alertcore::duration::option")]
    timeout: Option<Duration>,
    threshold: Option<u32>,
    within: Option<u32>,
    recover_after: Option<u32>,
    unknown: Option<Severity>,
    enabled: Option<bool>,
    // read by `dependencies`
    #[serde(default, rename = "depends_on")]
    _depends_on: Option<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HostSpec {
    address: String,
}

/// The default `interval`.
pub(crate) const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// The shortest `interval` and `retry_interval`.
pub(crate) const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// The longest `interval` and `retry_interval`: a year (longer would overflow the
/// clocks the scheduler adds it to; a schedule does yearly runs).
pub(crate) const MAX_INTERVAL: Duration = Duration::from_secs(366 * 86_400);
/// The longest `timeout`.
pub(crate) const MAX_TIMEOUT: Duration = Duration::from_secs(86_400);
/// The default `timeout`.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest run history `within` may ask for.
pub(crate) const MAX_WITHIN: u32 = 64;

/// One configured check.
#[non_exhaustive]
pub struct Check {
    /// Its name: the service name of its alerts, rules and `alertctl status`.
    pub name: String,
    /// The `[hosts.NAME]` it names, if any.
    pub host: Option<String>,
    /// What one run does.
    pub probe: Arc<dyn Probe>,
    /// How often it runs while it passes (unless `cron` is set).
    pub interval: Duration,
    /// `schedule`: when it runs while it passes, instead of every `interval`.
    pub cron: Option<CronSchedule>,
    /// How long after a failed run the next one starts (default: as while passing).
    pub retry_interval: Option<Duration>,
    /// How long one run may take; it is then stopped and counts as critical.
    pub timeout: Duration,
    /// How many failed runs make the check count as failed: in a row, or among the
    /// last `within` runs.
    pub threshold: u32,
    /// With `threshold`: Monit's "N cycles within M" (`threshold` failed among the last
    /// `within` runs).
    pub within: Option<u32>,
    /// How many passing runs in a row end a failure (default 1).
    pub recover_after: u32,
    /// The severity an unknown result is reported with (default warning).
    pub unknown: Severity,
    /// A hash of the table it was read from, to tell whether a reload changed it.
    pub(crate) source: u64,
}

impl fmt::Debug for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Check")
            .field("name", &self.name)
            .field("kind", &self.probe.kind())
            .field("host", &self.host)
            .field("interval", &self.interval)
            .field("cron", &self.cron)
            .field("retry_interval", &self.retry_interval)
            .field("timeout", &self.timeout)
            .field("threshold", &self.threshold)
            .field("within", &self.within)
            .field("recover_after", &self.recover_after)
            .finish_non_exhaustive()
    }
}

impl Check {
    /// The severity `status` is reported with; `None` for ok.
    pub fn severity(&self, status: crate::Status) -> Option<Severity> {
        match status {
            crate::Status::Ok => None,
            crate::Status::Warning => Some(Severity::Warning),
            crate::Status::Critical => Some(Severity::Critical),
            crate::Status::Unknown => Some(self.unknown),
        }
    }

    /// What decides when the run after this one is due: `retry_interval` after a
    /// failed run (when set), else `schedule`, else `interval`.
    pub fn next_run(&self, failed: bool) -> NextRun<'_> {
        match (failed, self.retry_interval, &self.cron) {
            (true, Some(retry), _) => NextRun::After(retry),
            (_, _, Some(cron)) => NextRun::Schedule(cron),
            _ => NextRun::After(self.interval),
        }
    }

    /// When the run after one due at `due` (on the wall clock) is due.
    pub fn next_after(&self, due: Timestamp, failed: bool) -> Option<Timestamp> {
        match self.next_run(failed) {
            NextRun::After(period) => Some(due.saturating_add(period)),
            NextRun::Schedule(cron) => cron.next_after(due),
        }
    }

    /// The kind's name.
    pub fn kind(&self) -> &'static str {
        self.probe.kind()
    }
}

/// What decides when a check's next run is due ([`Check::next_run`]).
#[derive(Debug, Clone, Copy)]
pub enum NextRun<'a> {
    /// This long after the run's due time.
    After(Duration),
    /// The next time this schedule names.
    Schedule(&'a CronSchedule),
}

/// Reads every enabled `[[checks]]` entry of `config`.
///
/// # Errors
/// A [`ConfigError`] at the first bad check (`file:line:col: check "web": ...`): an
/// unknown kind or key, a bad value, a name used twice, a `host` with no `[hosts.NAME]`.
pub fn checks(config: &Config) -> Result<Vec<Check>, ConfigError> {
    let hosts = hosts(config)?;
    let mut names = HashSet::new();
    let mut out = Vec::with_capacity(config.checks.len());
    for (i, spanned) in config.checks.iter().enumerate() {
        let raw = spanned.get_ref();
        let what = match raw.get("name").and_then(toml::Value::as_str) {
            Some(name) => format!("check {name:?}"),
            None => format!("check {}", i + 1),
        };
        let (check, enabled) = build(raw, &hosts, config.timezone.as_deref())
            .map_err(|e| config.error_in(spanned, &what, e))?;
        if !names.insert(check.name.clone()) {
            let e = BuildError::key("name", format!("another check is named {:?}", check.name));
            return Err(config.error_in(spanned, &what, e));
        }
        if enabled {
            out.push(check);
        }
    }
    Ok(out)
}

fn hosts(config: &Config) -> Result<BTreeMap<String, String>, ConfigError> {
    config
        .hosts
        .iter()
        .map(|(name, spanned)| {
            let spec: HostSpec = Table::from(spanned.get_ref().clone())
                .deserialize()
                .map_err(|e| config.error_in(spanned, &format!("host {name:?}"), e))?;
            Ok((name.clone(), spec.address))
        })
        .collect()
}

/// The check `raw` describes, and whether it is enabled; `timezone` is the config's
/// (the default of a `schedule`'s).
fn build(
    raw: &toml::Table,
    hosts: &BTreeMap<String, String>,
    timezone: Option<&str>,
) -> Result<(Check, bool), BuildError> {
    let (common, rest): (Common, Table) = Table::from(raw.clone()).split(&COMMON)?;
    if common.name.is_empty() || common.name.chars().any(char::is_control) {
        return Err(BuildError::key(
            "name",
            "`name` must be non-empty, without control characters",
        ));
    }
    let address = match &common.host {
        None => None,
        Some(h) => Some(hosts.get(h).map(String::as_str).ok_or_else(|| {
            let known: Vec<&str> = hosts.keys().map(String::as_str).collect();
            BuildError::key(
                "host",
                format!(
                    "`host`: no [hosts.{h}] (configured: {})",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ),
            )
        })?),
    };
    let interval = common.interval.unwrap_or(DEFAULT_INTERVAL);
    let period = |d: Duration| (MIN_INTERVAL..=MAX_INTERVAL).contains(&d);
    if !period(interval) {
        return Err(BuildError::key(
            "interval",
            "`interval` must be between 1s and 366 days",
        ));
    }
    let cron = match (&common.schedule, common.interval) {
        (Some(_), Some(_)) => {
            return Err(BuildError::key(
                "schedule",
                "give either `interval` or `schedule`, not both",
            ));
        }
        (Some(expr), None) => {
            let name = common.timezone.as_deref().or(timezone).unwrap_or("system");
            let zone = alertcore::rules::parse_timezone(name)
                .map_err(|e| BuildError::key("timezone", format!("`timezone`: {e}")))?;
            let cron = CronSchedule::parse(expr, zone)
                .map_err(|e| BuildError::key("schedule", format!("`schedule`: {e}")))?;
            let now = Timestamp::from_system_time(std::time::SystemTime::now());
            if cron.next_after(now).is_none() {
                return Err(BuildError::key(
                    "schedule",
                    "`schedule` names no time in the coming years",
                ));
            }
            Some(cron)
        }
        (None, _) if common.timezone.is_some() => {
            return Err(BuildError::key(
                "timezone",
                "`timezone` only means something with `schedule`",
            ));
        }
        (None, _) => None,
    };
    if common.retry_interval.is_some_and(|d| !period(d)) {
        return Err(BuildError::key(
            "retry_interval",
            "`retry_interval` must be between 1s and 366 days",
        ));
    }
    let timeout = common.timeout.unwrap_or(DEFAULT_TIMEOUT);
    if timeout.is_zero() || timeout > MAX_TIMEOUT {
        return Err(BuildError::key(
            "timeout",
            "`timeout` must be longer than 0s and at most 1 day",
        ));
    }
    let threshold = common.threshold.unwrap_or(1);
    if threshold == 0 {
        return Err(BuildError::key(
            "threshold",
            "`threshold` must be at least 1 (1: the first failed run counts)",
        ));
    }
    if let Some(within) = common.within
        && !(threshold..=MAX_WITHIN).contains(&within)
    {
        return Err(BuildError::key(
            "within",
            format!("`within` must be between `threshold` ({threshold}) and {MAX_WITHIN}"),
        ));
    }
    let recover_after = common.recover_after.unwrap_or(1);
    if recover_after == 0 {
        return Err(BuildError::key(
            "recover_after",
            "`recover_after` must be at least 1 (1: the first passing run recovers)",
        ));
    }
    let ctx = BuildContext::new(address);
    let probe = kind::build(&common.kind, &rest, &ctx)?;
    Ok((
        Check {
            name: common.name,
            host: common.host,
            probe,
            interval,
            cron,
            retry_interval: common.retry_interval,
            timeout,
            threshold,
            within: common.within,
            recover_after,
            unknown: common.unknown.unwrap_or(Severity::Warning),
            source: table_hash(raw),
        },
        common.enabled.unwrap_or(true),
    ))
}

/// A hash of `table`'s TOML text: equal for equal tables (keys in the order written).
fn table_hash(table: &toml::Table) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    toml::to_string(table).unwrap_or_default().hash(&mut h);
    h.finish()
}

/// Each check's and heartbeat's `depends_on` (a service name or a list of them), by
/// name: their alerts are held while one of those is failing.
///
/// # Errors
/// A [`ConfigError`] at the `depends_on` key of a check or heartbeat that is not a
/// name or a list of names, or one of a cycle (`a` depends on `b`, which depends on
/// `a`: both would hold each other's alerts forever).
pub fn dependencies(config: &Config) -> Result<BTreeMap<String, Vec<String>>, ConfigError> {
    let mut deps: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut at: BTreeMap<String, (&toml::Spanned<toml::Table>, &str)> = BTreeMap::new();
    for (what, list) in [("check", &config.checks), ("heartbeat", &config.heartbeats)] {
        for spanned in list {
            let raw = spanned.get_ref();
            let (Some(name), Some(value)) = (
                raw.get("name").and_then(toml::Value::as_str),
                raw.get("depends_on"),
            ) else {
                continue;
            };
            let names = match value {
                toml::Value::String(s) => Some(vec![s.clone()]),
                toml::Value::Array(a) => a
                    .iter()
                    .map(|v| v.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>(),
                _ => None,
            }
            .filter(|n| n.iter().all(|s| !s.is_empty()))
            .ok_or_else(|| {
                config.error_in(
                    spanned,
                    &format!("{what} {name:?}"),
                    BuildError::key(
                        "depends_on",
                        "`depends_on` is a service name or a list of them",
                    ),
                )
            })?;
            deps.insert(name.to_owned(), names);
            at.insert(name.to_owned(), (spanned, what));
        }
    }
    if let Some(cycle) = find_cycle(&deps) {
        let (spanned, what) = at[&cycle[0]];
        let e = BuildError::key(
            "depends_on",
            format!("`depends_on`: a dependency cycle: {}", cycle.join(" → ")),
        );
        return Err(config.error_in(spanned, &format!("{what} {:?}", cycle[0]), e));
    }
    Ok(deps)
}

/// A cycle in `deps`, as the names along it with the first repeated at the end.
fn find_cycle(deps: &BTreeMap<String, Vec<String>>) -> Option<Vec<String>> {
    // depth-first, colouring: 1 on the path, 2 done
    fn visit(
        n: &str,
        deps: &BTreeMap<String, Vec<String>>,
        colour: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match colour.get(n) {
            Some(2) => return None,
            Some(1) => {
                let from = path.iter().position(|p| p == n).unwrap_or(0);
                let mut cycle = path[from..].to_vec();
                cycle.push(n.to_owned());
                return Some(cycle);
            }
            _ => {}
        }
        colour.insert(n.to_owned(), 1);
        path.push(n.to_owned());
        for d in deps.get(n).into_iter().flatten() {
            if let Some(c) = visit(d, deps, colour, path) {
                return Some(c);
            }
        }
        path.pop();
        colour.insert(n.to_owned(), 2);
        None
    }
    let mut colour = BTreeMap::new();
    deps.keys()
        .find_map(|n| visit(n, deps, &mut colour, &mut Vec::new()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn error(text: &str) -> String {
        let config = Config::parse(text, "a.toml").unwrap();
        checks(&config).unwrap_err().to_string()
    }

    const TCP: &str = "kind = \"tcp\"\naddress = \"127.0.0.1\"\nport = 1\n";

    #[test]
    fn errors_point_at_the_check_and_its_key() {
        assert_eq!(
            error(&format!(
                "[[checks]]\nname = \"a\"\n{TCP}interval = \"0s\"\n"
            )),
            "a.toml:6:1: check \"a\": `interval` must be between 1s and 366 days"
        );
        // durations that would overflow the clocks a run's times are added to
        for (key, value) in [
            ("interval", "\"400days\""),
            ("retry_interval", "\"10000000000000000000s\""),
            ("timeout", "\"2days\""),
        ] {
            let e = error(&format!("[[checks]]\nname = \"a\"\n{TCP}{key} = {value}\n"));
            assert!(
                e.starts_with(&format!("a.toml:6:1: check \"a\": `{key}` must be")),
                "{e}"
            );
        }
        let e = error(&format!(
            "[[checks]]\nname = \"a\"\n{TCP}\n[[checks]]\nname = \"a\"\n{TCP}"
        ));
        assert!(
            e.starts_with("a.toml:8:1: check \"a\": another check is named \"a\""),
            "{e}"
        );
        let e = error(&format!("[[checks]]\nname = \"a\"\nhost = \"web\"\n{TCP}"));
        assert!(
            e.starts_with("a.toml:3:1: check \"a\": `host`: no [hosts.web]"),
            "{e}"
        );
        // no key to point at: the [[checks]] header
        let e = error("[[checks]]\nname = \"a\"\nkind = \"tcp\"\n");
        assert!(e.starts_with("a.toml:1:1: check \"a\""), "{e}");
    }

    #[test]
    fn dependencies_are_read_from_checks_and_heartbeats_and_cycles_refused() {
        let text = format!(
            "[[checks]]\nname = \"app\"\n{TCP}depends_on = [\"net\", \"db.service\"]\n\n\
             [[heartbeats]]\nname = \"backup\"\nperiod = \"1d\"\ndepends_on = \"app\"\n"
        );
        let config = Config::parse(&text, "a.toml").unwrap();
        let deps = dependencies(&config).unwrap();
        assert_eq!(deps["app"], ["net", "db.service"]);
        assert_eq!(deps["backup"], ["app"]);
        // the checks still build with the key
        assert_eq!(checks(&config).unwrap().len(), 1);
        let cyclic = format!(
            "[[checks]]\nname = \"a\"\n{TCP}depends_on = \"b\"\n\n\
             [[heartbeats]]\nname = \"b\"\nperiod = \"1d\"\ndepends_on = [\"c\"]\n\n\
             [[heartbeats]]\nname = \"c\"\nperiod = \"1d\"\ndepends_on = [\"a\"]\n"
        );
        let e = dependencies(&Config::parse(&cyclic, "a.toml").unwrap())
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "a.toml:6:1: check \"a\": `depends_on`: a dependency cycle: a → b → c → a"
        );
        let bad = format!("[[checks]]\nname = \"a\"\n{TCP}depends_on = 3\n");
        let e = dependencies(&Config::parse(&bad, "a.toml").unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`depends_on` is a service name or a list of them"),
            "{e}"
        );
    }

    #[test]
    fn a_schedule_is_a_cron_expression_in_a_time_zone() {
        let with =
            |extra: &str| format!("timezone = \"UTC\"\n[[checks]]\nname = \"a\"\n{TCP}{extra}");
        let config = Config::parse(&with("schedule = \"30 3 * * *\"\n"), "a.toml").unwrap();
        let c = &checks(&config).unwrap()[0];
        let next = c.next_after(Timestamp::from_millis(0), false).unwrap();
        assert_eq!(next, Timestamp::from_millis(3 * 3_600_000 + 30 * 60_000));
        // a failed run with a retry_interval retries at that rate
        let config = Config::parse(
            &with("schedule = \"30 3 * * *\"\nretry_interval = \"1m\"\n"),
            "a.toml",
        )
        .unwrap();
        let c = &checks(&config).unwrap()[0];
        assert_eq!(
            c.next_after(Timestamp::from_millis(0), true),
            Some(Timestamp::from_millis(60_000))
        );
        for (extra, want) in [
            ("schedule = \"* * *\"\n", "`schedule`: "),
            (
                "schedule = \"0 3 * * *\"\ninterval = \"1m\"\n",
                "give either",
            ),
            (
                "timezone = \"Mars/Olympus\"\nschedule = \"0 3 * * *\"\n",
                "`timezone`: ",
            ),
            (
                "timezone = \"UTC\"\n",
                "`timezone` only means something with `schedule`",
            ),
            ("schedule = \"0 0 31 2 *\"\n", "`schedule` names no time"),
        ] {
            let e = error(&with(extra));
            assert!(e.contains(&format!("check \"a\": {want}")), "{extra}: {e}");
        }
    }
}
