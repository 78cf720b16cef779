//! `[[checks]]` and `[hosts.NAME]`: reading the config into [`Check`]s.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use alertcore::{BuildError, Config, ConfigError, Severity, Table};
use serde::Deserialize;

use crate::kind::{self, BuildContext, Probe};

/// The keys every check has, whatever its kind; the rest of its table is the kind's.
const COMMON: [&str; 11] = [
    "name",
    "kind",
    "host",
    "interval",
    "retry_interval",
    "timeout",
    "threshold",
    "within",
    "recover_after",
    "unknown",
    "enabled",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Common {
    name: String,
    kind: String,
    host: Option<String>,
    #[serde(default, with = "alertcore::duration::option")]
    interval: Option<Duration>,
    #[serde(default, with = "alertcore::duration::option")]
    retry_interval: Option<Duration>,
    #[serde(default, with = "alertcore::duration::option")]
    timeout: Option<Duration>,
    threshold: Option<u32>,
    within: Option<u32>,
    recover_after: Option<u32>,
    unknown: Option<Severity>,
    enabled: Option<bool>,
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
    /// How often it runs while it passes.
    pub interval: Duration,
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

    /// How long after a run the next one is due: `retry_interval` after a failed run
    /// (when set), else `interval`.
    pub fn period_after(&self, failed: bool) -> Duration {
        match (failed, self.retry_interval) {
            (true, Some(retry)) => retry,
            _ => self.interval,
        }
    }

    /// The kind's name.
    pub fn kind(&self) -> &'static str {
        self.probe.kind()
    }
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
        let (check, enabled) =
            build(raw, &hosts).map_err(|e| config.error_in(spanned, &what, e))?;
        if !names.insert(check.name.clone()) {
            let e = BuildError::key("name", "another check has this name");
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

/// The check `raw` describes, and whether it is enabled.
fn build(raw: &toml::Table, hosts: &BTreeMap<String, String>) -> Result<(Check, bool), BuildError> {
    let (common, rest): (Common, Table) = Table::from(raw.clone()).split(&COMMON)?;
    if common.name.is_empty() || common.name.chars().any(char::is_control) {
        return Err(BuildError::key(
            "name",
            "must be non-empty, without control characters",
        ));
    }
    let address = match &common.host {
        None => None,
        Some(h) => Some(hosts.get(h).map(String::as_str).ok_or_else(|| {
            let known: Vec<&str> = hosts.keys().map(String::as_str).collect();
            BuildError::key(
                "host",
                format!(
                    "no [hosts.{h}] (configured: {})",
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
    if interval < MIN_INTERVAL {
        return Err(BuildError::key("interval", "must be at least 1s"));
    }
    if common.retry_interval.is_some_and(|d| d < MIN_INTERVAL) {
        return Err(BuildError::key("retry_interval", "must be at least 1s"));
    }
    let timeout = common.timeout.unwrap_or(DEFAULT_TIMEOUT);
    if timeout.is_zero() {
        return Err(BuildError::key("timeout", "must be longer than 0s"));
    }
    let threshold = common.threshold.unwrap_or(1);
    if threshold == 0 {
        return Err(BuildError::key(
            "threshold",
            "must be at least 1 (1: the first failed run counts)",
        ));
    }
    if let Some(within) = common.within
        && !(threshold..=MAX_WITHIN).contains(&within)
    {
        return Err(BuildError::key(
            "within",
            format!("must be between `threshold` ({threshold}) and {MAX_WITHIN}"),
        ));
    }
    let recover_after = common.recover_after.unwrap_or(1);
    if recover_after == 0 {
        return Err(BuildError::key(
            "recover_after",
            "must be at least 1 (1: the first passing run recovers)",
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
