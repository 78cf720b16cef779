//! The TOML configuration: parsing with `file:line:col` errors, and building notifiers.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::alert::Severity;
use crate::error::BuildError;
use crate::flap::Flapping;
use crate::hold::{Inhibit, Label, Maintenance, Matchers, When};
use crate::notifier::ConfiguredNotifier;
use crate::outbox::DeliverySpec;
use crate::policy::Policy;
use crate::registry::Registry;
use crate::rules::{Patterns, Router, TimeWindows};
use crate::table::{Table, from_table, redact};
use crate::template::{Format, FormatSpec, Formats};

/// The whole configuration file.
///
/// Its `Debug` shows the notifier tables redacted (see [`Table::redacted`]) and not the file's text.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// The host name put in alerts; default: the system's host name.
    #[serde(default)]
    pub host: Option<String>,
    /// `[state]`.
    #[serde(default)]
    pub state: StateConfig,
    /// `[policy]`: defaults for every service.
    #[serde(default)]
    pub policy: Policy,
    /// `[notifiers.NAME]`: each a table whose `type` picks the implementation.
    #[serde(default)]
    pub notifiers: BTreeMap<String, toml::Spanned<toml::Table>>,
    /// `[formats.NAME]`: named message formats notifiers and rule recipients can use
    /// with `format = "NAME"` (see [`template`](crate::template)).
    #[serde(default)]
    pub formats: BTreeMap<String, toml::Spanned<toml::Table>>,
    /// The IANA time zone that rule time windows are read in; default: the system's.
    #[serde(default)]
    pub timezone: Option<String>,
    /// `[[rules]]`: who gets which alert (see [`rules`](crate::rules)); with none, every
    /// notifier gets every alert.
    #[serde(default)]
    pub rules: Vec<toml::Spanned<toml::Table>>,
    /// `[[checks]]`: the polling checks `alertctl run` runs (read by the
    /// `alertcore-checks` crate, which reports errors with [`Config::error_in`]).
    #[serde(default)]
    pub checks: Vec<toml::Spanned<toml::Table>>,
    /// `[hosts.NAME]`: targets that checks name with `host = "NAME"`.
    #[serde(default)]
    pub hosts: BTreeMap<String, toml::Spanned<toml::Table>>,
    /// `[[heartbeats]]`: what must call in, and by when (read by the `alertcore-checks`
    /// crate, which reports errors with [`Config::error_in`]).
    #[serde(default)]
    pub heartbeats: Vec<toml::Spanned<toml::Table>>,
    /// `[[maintenance]]`: windows in which the alerts they cover are held
    /// ([`Config::build_maintenance`]).
    #[serde(default)]
    pub maintenance: Vec<toml::Spanned<toml::Table>>,
    /// `[[inhibit]]`: alerts held while another service is failing
    /// ([`Config::build_inhibits`]).
    #[serde(default)]
    pub inhibit: Vec<toml::Spanned<toml::Table>>,
    /// `[flapping]`: flap detection, off without the table (see
    /// [`flap`](crate::flap)).
    #[serde(default)]
    pub flapping: Option<Flapping>,
    /// `[report]`: the daemon's periodic report of what is failing.
    #[serde(default)]
    pub report: Option<toml::Spanned<ReportConfig>>,
    /// `[systemd]`: watching systemd over D-Bus (read by the `alertcore-systemd` crate,
    /// which reports errors with [`Config::error_in`]).
    #[serde(default)]
    pub systemd: Option<toml::Spanned<toml::Table>>,
    /// `[journal]` and its `[journal.chains]`: watching the journal (read by the
    /// `alertcore-journal` crate, which reports errors with [`Config::error_in`]).
    #[serde(default)]
    pub journal: Option<toml::Spanned<JournalTables>>,
    /// `[http]`: the daemon's HTTP listener (read by `alertctl`).
    #[serde(default)]
    pub http: Option<toml::Spanned<toml::Table>>,
    /// `[daemon]`: settings of `alertctl run`.
    #[serde(default)]
    pub daemon: DaemonConfig,
    #[serde(skip)]
    source: Option<Source>,
}

#[derive(Debug, Clone)]
struct Source {
    origin: String,
    text: String,
}

/// `[journal]` as tables whose place in the file is known, so that an error in one
/// step of a chain points at that step.
#[derive(Debug, Clone, Default, Deserialize)]
#[non_exhaustive]
pub struct JournalTables {
    /// `[journal.chains]`: each chain (name, ordered list of steps), in file order.
    #[serde(default, deserialize_with = "in_file_order")]
    pub chains: Vec<(String, toml::Spanned<Vec<toml::Spanned<toml::Table>>>)>,
    /// Every other key of `[journal]`.
    #[serde(flatten)]
    pub settings: toml::Table,
}

/// A table's entries in the order the file has them.
fn in_file_order<'de, D, V>(d: D) -> Result<Vec<(String, V)>, D::Error>
where
    D: serde::Deserializer<'de>,
    V: Deserialize<'de>,
{
    struct InOrder<V>(std::marker::PhantomData<V>);
    impl<'de, V: Deserialize<'de>> serde::de::Visitor<'de> for InOrder<V> {
        type Value = Vec<(String, V)>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a table")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(entry) = map.next_entry()? {
                out.push(entry);
            }
            Ok(out)
        }
    }
    d.deserialize_map(InOrder(std::marker::PhantomData))
}

/// `[state]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct StateConfig {
    /// The SQLite state file.
    pub path: Option<PathBuf>,
}

/// `[report]`: every `every`, `alertctl run` sends a digest of everything failing (as
/// `alertctl report --send` does) to `notifiers` (default: every notifier), only when
/// something is failing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ReportConfig {
    /// How often.
    #[serde(with = "crate::duration::positive")]
    pub every: Duration,
    /// To whom (default: every notifier).
    #[serde(default)]
    pub notifiers: Vec<String>,
}

/// `[daemon]`: settings of the long-running `alertctl run`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct DaemonConfig {
    /// How many checks may run at once (at least 1); the rest wait for a slot.
    #[serde(deserialize_with = "at_least_one")]
    pub concurrency: usize,
    /// How often the outbox's due deliveries (retries, reminders) are sent.
    #[serde(with = "crate::duration::positive")]
    pub flush_every: Duration,
    /// How often the results of runs that changed nothing are saved. A change of state
    /// is saved at once; between checkpoints a crash forgets only when ok checks last ran.
    #[serde(with = "crate::duration::positive")]
    pub checkpoint_every: Duration,
    /// How long a stopping daemon waits for deliveries in flight before it leaves them
    /// to the outbox.
    #[serde(with = "crate::duration")]
    pub stop_timeout: Duration,
}

fn at_least_one<'de, D: serde::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let n = usize::deserialize(d)?;
    if n == 0 {
        return Err(serde::de::Error::custom(
            "must be at least 1 (1: one check at a time)",
        ));
    }
    Ok(n)
}

impl Default for DaemonConfig {
    fn default() -> Self {
        Self {
            concurrency: 256,
            flush_every: Duration::from_secs(15),
            checkpoint_every: Duration::from_secs(60),
            stop_timeout: Duration::from_secs(10),
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let notifiers: BTreeMap<&str, toml::Table> = self
            .notifiers
            .iter()
            .map(|(k, v)| (k.as_str(), redact(v.get_ref())))
            .collect();
        f.debug_struct("Config")
            .field("host", &self.host)
            .field("state", &self.state)
            .field("policy", &self.policy)
            .field("notifiers", &notifiers)
            .field("formats", &self.formats.keys().collect::<Vec<_>>())
            .field("timezone", &self.timezone)
            .field("rules", &self.rules.len())
            .field("checks", &self.checks.len())
            .field("hosts", &self.hosts.keys().collect::<Vec<_>>())
            .field("heartbeats", &self.heartbeats.len())
            .field("maintenance", &self.maintenance.len())
            .field("inhibit", &self.inhibit.len())
            .field("flapping", &self.flapping)
            .field("report", &self.report)
            .field("http", &self.http.is_some())
            .field("daemon", &self.daemon)
            .field("origin", &self.source.as_ref().map(|s| &s.origin))
            .finish()
    }
}

/// A configuration error, displayed as `file:line:col: message`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read config file", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is malformed or names something unknown.
    #[error("{origin}:{line}:{column}: {message}")]
    Invalid {
        /// The file name (or `<string>`).
        origin: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
}

impl Config {
    /// Parses `text`; errors name `origin` (usually the file path).
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for malformed TOML, unknown keys and bad values.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map_or((1, 1), |s| line_col(text, s.start));
            ConfigError::Invalid {
                origin: origin.to_owned(),
                line,
                column,
                message: e.message().trim_end().to_owned(),
            }
        })?;
        config.source = Some(Source {
            origin: origin.to_owned(),
            text: text.to_owned(),
        });
        for (name, table) in &config.notifiers {
            if name.is_empty() || name.chars().any(|c| c.is_control() || c.is_whitespace()) {
                return Err(
                    config.error_at(table.span().start, format!("bad notifier name {name:?}"))
                );
            }
        }
        Ok(config)
    }

    /// Reads and parses a file.
    ///
    /// # Errors
    /// [`ConfigError::Read`] if it cannot be read, else as [`Config::parse`].
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Builds every configured notifier with `registry`; with none configured, the
    /// built-in `console` notifier, so everything works with no config at all.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] pointing at the notifier (or its bad key) when its `type`
    /// is missing or unknown, or its factory rejects the table.
    pub fn build_notifiers(
        &self,
        registry: &Registry,
    ) -> Result<Vec<ConfiguredNotifier>, ConfigError> {
        let formats = self.formats()?;
        if self.notifiers.is_empty() {
            let config = Arc::new(Table::default());
            let notifier = registry
                .build("console", &config)
                .map_err(|e| self.error_at(0, e.to_string()))?;
            return Ok(vec![ConfiguredNotifier {
                name: "console".to_owned(),
                notifier,
                config,
                format: Format::full().clone(),
                delivery: DeliverySpec::default(),
            }]);
        }
        let list = self
            .notifiers
            .iter()
            .map(|(name, table)| {
                let at = table.span().start;
                let kind = match table.get_ref().get("type") {
                    Some(toml::Value::String(k)) => k.as_str(),
                    Some(_) => {
                        return Err(self.error_at(
                            self.key_offset(at, "type").unwrap_or(at),
                            format!("notifier {name:?}: `type` must be a string"),
                        ));
                    }
                    None => {
                        return Err(self.error_at(
                            at,
                            format!(
                                "notifier {name:?}: missing `type` (one of: {})",
                                registry.kinds().join(", ")
                            ),
                        ));
                    }
                };
                if registry.get(kind).is_none() {
                    return Err(self.error_at(
                        self.key_offset(at, "type").unwrap_or(at),
                        format!(
                            "notifier {name:?}: unknown type {kind:?} (this build knows: {})",
                            registry.kinds().join(", ")
                        ),
                    ));
                }
                let located = |e| self.located(at, &format!("notifier {name:?}"), e);
                // the format and delivery keys are common to every type: the factory
                // sees the rest
                let whole = Table::from(table.get_ref().clone());
                let (spec, rest) = FormatSpec::split(&whole).map_err(located)?;
                let (delivery, rest) = DeliverySpec::split(&rest).map_err(located)?;
                let format = Format::compile(&spec, &formats, Format::full()).map_err(located)?;
                let notifier = registry.build(kind, &rest).map_err(located)?;
                notifier.check_format(&format).map_err(located)?;
                if delivery.group_wait.is_some() {
                    notifier
                        .check_group()
                        .map_err(|why| located(BuildError::key("group_wait", why)))?;
                }
                Ok(ConfiguredNotifier {
                    name: name.clone(),
                    notifier,
                    config: Arc::new(whole),
                    format,
                    delivery,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.check_fallbacks(&list)?;
        Ok(list)
    }

    /// Every `fallback` names another configured notifier, and following them never
    /// comes back (an alert handed on must end somewhere).
    fn check_fallbacks(&self, list: &[ConfiguredNotifier]) -> Result<(), ConfigError> {
        let fallback_of = |name: &str| {
            list.iter()
                .find(|n| n.name == name)
                .and_then(|n| n.delivery.fallback.as_deref())
        };
        for n in list {
            let Some(first) = n.delivery.fallback.as_deref() else {
                continue;
            };
            let at = self.notifiers.get(&n.name).map_or(0, |t| t.span().start);
            let error = |message: String| {
                let pos = self.key_offset(at, "fallback").unwrap_or(at);
                self.error_at(pos, format!("notifier {:?}: {message}", n.name))
            };
            if !list.iter().any(|m| m.name == first) {
                let names: Vec<&str> = list.iter().map(|m| m.name.as_str()).collect();
                return Err(error(format!(
                    "fallback: unknown notifier {first:?} (configured: {})",
                    names.join(", ")
                )));
            }
            let mut chain = vec![n.name.as_str(), first];
            while let Some(next) = chain.last().and_then(|last| fallback_of(last)) {
                let looped = chain.contains(&next);
                chain.push(next);
                if looped {
                    return Err(error(format!(
                        "fallback: the chain {} comes back, so an alert would never be given up",
                        chain.join(" → ")
                    )));
                }
            }
        }
        Ok(())
    }

    /// The named formats of `[formats.NAME]`.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] pointing at the format (or its bad key).
    pub fn formats(&self) -> Result<Formats, ConfigError> {
        let mut specs = BTreeMap::new();
        for (name, table) in &self.formats {
            let spec: FormatSpec = from_table(table.get_ref())
                .map_err(|e| self.located(table.span().start, &format!("format {name:?}"), e))?;
            specs.insert(name.clone(), spec);
        }
        Formats::new(&specs).map_err(|(name, e)| {
            let at = self.formats.get(&name).map_or(0, |t| t.span().start);
            self.located(at, &format!("format {name:?}"), e)
        })
    }

    /// `error` about the table starting at `table_start`, pointing at its key if it
    /// names one, prefixed with `what`.
    fn located(&self, table_start: usize, what: &str, error: BuildError) -> ConfigError {
        let pos = error
            .key
            .as_deref()
            .and_then(|k| self.key_offset(table_start, k))
            .unwrap_or(table_start);
        self.error_at(pos, format!("{what}: {}", error.message))
    }

    /// `[report]` checked against the configured `notifiers`: how often, and to whom
    /// (every notifier when it names none); `None` without the table.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] at `[report]` when it names a notifier that is not
    /// configured.
    pub fn build_report(
        &self,
        notifiers: &[&str],
    ) -> Result<Option<(Duration, Vec<String>)>, ConfigError> {
        let Some(spanned) = &self.report else {
            return Ok(None);
        };
        let r = spanned.get_ref();
        if let Some(bad) = r
            .notifiers
            .iter()
            .find(|n| !notifiers.contains(&n.as_str()))
        {
            return Err(self.error_at(
                spanned.span().start,
                format!(
                    "[report]: no notifier named {bad:?} (configured: {})",
                    notifiers.join(", ")
                ),
            ));
        }
        let to = if r.notifiers.is_empty() {
            notifiers.iter().map(|n| (*n).to_owned()).collect()
        } else {
            r.notifiers.clone()
        };
        Ok(Some((r.every, to)))
    }

    /// Reads `[[inhibit]]`: each has `source` and `target` matchers (`services`,
    /// `hosts` as in `[[rules]]`, `severity`; the source needs at least one) and `equal`,
    /// a list of `host`, `severity`, `kind`.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the rule and pointing at its bad key.
    pub fn build_inhibits(&self) -> Result<Vec<Inhibit>, ConfigError> {
        self.inhibit
            .iter()
            .enumerate()
            .map(|(i, spanned)| {
                build_inhibit(spanned.get_ref(), i + 1)
                    .map_err(|e| self.error_in(spanned, &format!("inhibit {}", i + 1), e))
            })
            .collect()
    }

    /// Reads `[[maintenance]]`: each has matchers (`services`, `hosts` as in
    /// `[[rules]]`, `severity`) and either `time` (recurring windows in the rules'
    /// syntax, read in `timezone`) or `start` and `end` (once; RFC 3339 or a civil time
    /// in `timezone`), and an optional `name` and `comment`.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the window and pointing at its bad key.
    pub fn build_maintenance(&self) -> Result<Vec<Maintenance>, ConfigError> {
        if self.maintenance.is_empty() {
            return Ok(Vec::new());
        }
        // an unknown zone is build_router's error to report
        let tz = self
            .timezone
            .as_deref()
            .and_then(|n| crate::rules::parse_timezone(n).ok());
        let router = Router::new(Vec::new(), tz, self.timezone.as_deref().unwrap_or("system"));
        self.maintenance
            .iter()
            .enumerate()
            .map(|(i, spanned)| {
                let raw = spanned.get_ref();
                let what = match raw.get("name").and_then(toml::Value::as_str) {
                    Some(name) => format!("maintenance {name:?}"),
                    None => format!("maintenance {}", i + 1),
                };
                build_maintenance(raw, i + 1, &router).map_err(|e| self.error_in(spanned, &what, e))
            })
            .collect()
    }

    /// # Errors
    /// [`ConfigError::Invalid`] naming the rule (`rule 3: unknown notifier "pagr"`) and
    /// pointing at its bad key, or at the `timezone`.
    pub fn build_router(&self, notifiers: &[ConfiguredNotifier]) -> Result<Router, ConfigError> {
        let formats = self.formats()?;
        let (timezone, tz_name) = match self.timezone.as_deref() {
            None => (None, "system"),
            Some(name) => {
                let tz = crate::rules::parse_timezone(name).map_err(|e| {
                    self.error_at(
                        self.key_offset(0, "timezone").unwrap_or(0),
                        format!("timezone: {e}"),
                    )
                })?;
                (Some(tz), name)
            }
        };
        let rules = self
            .rules
            .iter()
            .enumerate()
            .map(|(i, table)| {
                let start = self.rule_start(table.span().start);
                let line = self
                    .source
                    .as_ref()
                    .map_or(0, |s| line_col(&s.text, start).0);
                crate::rules::build_rule(i + 1, line, table.get_ref(), notifiers, &formats)
                    .map_err(|e| self.error_in(table, &format!("rule {}", i + 1), e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Router::new(rules, timezone, tz_name))
    }

    /// `error` about `table` (a `[[checks]]` entry, a `[hosts.NAME]` table, ...) as a
    /// located config error prefixed with `what`: it points at the key the error names,
    /// else at the table's header.
    pub fn error_in(
        &self,
        table: &toml::Spanned<toml::Table>,
        what: &str,
        error: BuildError,
    ) -> ConfigError {
        let start = table.span().start;
        let pos = error
            .key
            .as_deref()
            .and_then(|k| self.key_offset(start, k))
            .unwrap_or_else(|| self.rule_start(start));
        self.error_at(pos, format!("{what}: {}", error.message))
    }

    /// The `[[rules]]` header above a rule's first key (or the key itself when the
    /// rule is an inline table).
    fn rule_start(&self, span_start: usize) -> usize {
        let Some(text) = self.source.as_ref().map(|s| s.text.as_str()) else {
            return span_start;
        };
        let before = text.get(..span_start).unwrap_or("");
        let line_starts = std::iter::once(0).chain(before.match_indices('\n').map(|(i, _)| i + 1));
        let line_starts: Vec<usize> = line_starts.collect();
        for &start in line_starts.iter().rev() {
            let line = text[start..].split('\n').next().unwrap_or("");
            let trimmed = line.trim_start();
            if trimmed.starts_with("[[") {
                return start + (line.len() - trimmed.len());
            }
            if trimmed.starts_with('[') {
                break;
            }
        }
        span_start
    }

    fn error_at(&self, offset: usize, message: String) -> ConfigError {
        let (origin, line, column) = match &self.source {
            Some(s) => {
                let (l, c) = line_col(&s.text, offset);
                (s.origin.clone(), l, c)
            }
            None => ("<config>".to_owned(), 1, 1),
        };
        ConfigError::Invalid {
            origin,
            line,
            column,
            message,
        }
    }

    /// Where `key = ...` is written inside the table that starts at `table_start`.
    fn key_offset(&self, table_start: usize, key: &str) -> Option<usize> {
        let text = &self.source.as_ref()?.text;
        let mut offset = table_start;
        for (i, line) in text.get(table_start..)?.split_inclusive('\n').enumerate() {
            let trimmed = line.trim_start();
            if i > 0 && trimmed.starts_with('[') {
                return None;
            }
            if let Some(rest) = trimmed.strip_prefix(key)
                && rest.trim_start().starts_with('=')
            {
                return Some(offset + (line.len() - trimmed.len()));
            }
            offset += line.len();
        }
        None
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        Config::parse(text, "alertcore.toml")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn flapping_settings_are_checked_where_they_are() {
        assert_eq!(
            err("[flapping]\nlow = 40\nhigh = 30\n"),
            "alertcore.toml:1:1: low (40) must not be above high (30)"
        );
        assert_eq!(
            err("[flapping]\nhigh = 130\n"),
            "alertcore.toml:1:1: high and low are percentages, from 0 to 100"
        );
        assert_eq!(
            err("[flapping]\nsettle = \"0s\"\n"),
            "alertcore.toml:1:1: settle must be longer than 0s"
        );
        assert!(
            err("[flapping]\nhgh = 3\n").starts_with("alertcore.toml:2:1: unknown field `hgh`")
        );
        let c = Config::parse("[flapping]\nhigh = 50\n", "a.toml").unwrap();
        let f = c.flapping.unwrap();
        assert_eq!((f.high, f.low), (50.0, 25.0), "the rest are the defaults");
    }

    #[test]
    fn grouping_needs_a_notifier_that_can_group() {
        let build = |text: &str| {
            Config::parse(text, "a.toml")
                .unwrap()
                .build_notifiers(&Registry::new().with_builtin())
                .map(|_| ())
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            build("[notifiers.screen]\ntype = \"console\"\ngroup_wait = \"30s\"\n"),
            "a.toml:3:1: notifier \"screen\": a console notifier sends one message per \
             notification; it cannot group"
        );
        assert_eq!(
            build("[notifiers.screen]\ntype = \"console\"\ngroup_interval = \"5m\"\n"),
            "a.toml:3:1: notifier \"screen\": group_interval needs group_wait (how long a \
             first notification waits for others)"
        );
        let e = Config::parse(
            "[notifiers.ops]\ntype = \"console\"\ngroup_wait = \"1s\"\ngroup_interval = \"0s\"\n",
            "a.toml",
        )
        .unwrap()
        .build_notifiers(&Registry::new().with_builtin())
        .map(|_| ())
        .unwrap_err()
        .to_string();
        assert!(e.contains("group_interval must be longer than 0s"), "{e}");
    }

    #[test]
    fn unknown_key_is_located() {
        assert_eq!(
            err("[policy]\nthreshold = 2\nrepaet = \"4h\"\n"),
            "alertcore.toml:3:1: unknown field `repaet`, expected one of `threshold`, `min_duration`, `repeat`, `recovery`, `held_recovery`"
        );
    }

    #[test]
    fn bad_duration_is_located() {
        let e = err("[policy]\nrepeat = \"4 hours please\"\n");
        assert!(
            e.starts_with("alertcore.toml:2:10: invalid duration"),
            "{e}"
        );
    }

    #[test]
    fn malformed_toml_is_located() {
        let e = err("[policy\n");
        assert!(e.starts_with("alertcore.toml:1:"), "{e}");
    }

    #[test]
    fn unknown_notifier_type_is_located() {
        let c = Config::parse("[notifiers.ops]\n  type = \"pagr\"\n", "a.toml").unwrap();
        let e = c.build_notifiers(&Registry::new()).unwrap_err().to_string();
        assert!(
            e.starts_with("a.toml:2:3: notifier \"ops\": unknown type \"pagr\""),
            "{e}"
        );
    }

    #[test]
    fn missing_type_is_located() {
        let c = Config::parse("[policy]\n\n[notifiers.ops]\nto = 1\n", "a.toml").unwrap();
        let e = c.build_notifiers(&Registry::new()).unwrap_err().to_string();
        assert!(e.starts_with("a.toml:3:"), "{e}");
        assert!(e.contains("missing `type`"), "{e}");
    }

    #[test]
    fn bad_notifier_key_is_located() {
        let text = "[notifiers.screen]\ntype = \"console\"\ncolour = true\n";
        let c = Config::parse(text, "a.toml").unwrap();
        let e = c.build_notifiers(&Registry::new()).unwrap_err().to_string();
        assert!(
            e.starts_with("a.toml:3:1: notifier \"screen\": unknown field `colour`"),
            "{e}"
        );
    }

    #[test]
    fn a_zero_delivery_limit_is_located_and_says_what_to_write() {
        for (key, hint) in [
            ("max_attempts", "1: never retry"),
            ("max_per_minute", "leave it out for no limit"),
            ("max_concurrent", "1: one at a time"),
        ] {
            let text = format!("[notifiers.screen]\ntype = \"console\"\n{key} = 0\n");
            let c = Config::parse(&text, "a.toml").unwrap();
            let e = c.build_notifiers(&Registry::new()).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!(
                    "a.toml:3:1: notifier \"screen\": {key} must be at least 1 ({hint})"
                )),
                "{e}"
            );
        }
    }

    /// A zero would make a period of nothing (a panic, or a busy loop) or stop every
    /// check from running.
    #[test]
    fn daemon_periods_and_concurrency_must_not_be_zero() {
        for (key, value, col, want) in [
            ("flush_every", "\"0s\"", 15, "must be longer than 0s"),
            ("checkpoint_every", "\"0\"", 20, "must be longer than 0s"),
            ("concurrency", "0", 15, "must be at least 1"),
        ] {
            let e = err(&format!("[daemon]\n{key} = {value}\n"));
            assert!(
                e.starts_with(&format!("alertcore.toml:2:{col}: {want}")),
                "{key}: {e}"
            );
        }
        // stopping at once is fine
        assert!(Config::parse("[daemon]\nstop_timeout = \"0s\"\n", "a.toml").is_ok());
    }

    #[test]
    fn no_notifiers_means_console() {
        let c = Config::parse("", "a.toml").unwrap();
        let n = c.build_notifiers(&Registry::new()).unwrap();
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].name, "console");
    }

    #[test]
    fn line_col_counts_characters() {
        assert_eq!(line_col("ab\ncé", 6), (2, 3));
        assert_eq!(line_col("", 10), (1, 1));
    }
}

/// An `[[inhibit]]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InhibitSpec {
    source: MatcherSpec,
    #[serde(default)]
    target: MatcherSpec,
    #[serde(default)]
    equal: Vec<Label>,
}

/// The matchers of one side of an `[[inhibit]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MatcherSpec {
    #[serde(default)]
    services: Patterns,
    #[serde(default)]
    hosts: Patterns,
    severity: Option<Severity>,
}

impl From<MatcherSpec> for Matchers {
    fn from(m: MatcherSpec) -> Self {
        Matchers::new(m.services, m.hosts, m.severity)
    }
}

/// The `index`th (1-based) `[[inhibit]]` rule.
fn build_inhibit(raw: &toml::Table, index: usize) -> Result<Inhibit, BuildError> {
    let spec: InhibitSpec = Table::from(raw.clone()).deserialize()?;
    let source = Matchers::from(spec.source);
    if source == Matchers::default() {
        return Err(BuildError::key(
            "source",
            "`source` needs `services`, `hosts` or `severity`: which failures inhibit?",
        ));
    }
    Ok(Inhibit::new(index, source, spec.target.into(), spec.equal))
}

/// A `[[maintenance]]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MaintenanceSpec {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    services: Patterns,
    #[serde(default)]
    hosts: Patterns,
    severity: Option<Severity>,
    #[serde(default)]
    time: TimeWindows,
    start: Option<String>,
    end: Option<String>,
    #[serde(default)]
    comment: Option<String>,
}

/// The `index`th (1-based) `[[maintenance]]` window; `router` reads its times in the
/// config's zone.
fn build_maintenance(
    raw: &toml::Table,
    index: usize,
    router: &Router,
) -> Result<Maintenance, BuildError> {
    let spec: MaintenanceSpec = Table::from(raw.clone()).deserialize()?;
    let when = match (spec.time.is_empty(), &spec.start, &spec.end) {
        (false, None, None) => When::Windows(spec.time),
        (true, Some(start), Some(end)) => {
            let start = router
                .parse_time(start)
                .map_err(|e| BuildError::key("start", format!("`start`: {e}")))?;
            let end = router
                .parse_time(end)
                .map_err(|e| BuildError::key("end", format!("`end`: {e}")))?;
            if end <= start {
                return Err(BuildError::key("end", "`end` must be after `start`"));
            }
            When::Once(start, end)
        }
        (false, _, _) => {
            return Err(BuildError::key(
                "time",
                "give either `time` (recurring) or `start` and `end` (once), not both",
            ));
        }
        (true, Some(_), None) => {
            return Err(BuildError::key("start", "`start` needs an `end`"));
        }
        (true, None, Some(_)) => return Err(BuildError::key("end", "`end` needs a `start`")),
        (true, None, None) => {
            return Err(BuildError::new(
                "give `time` (\"Sat 02:00-04:00\") or `start` and `end`: when is the maintenance?",
            ));
        }
    };
    Ok(Maintenance {
        name: spec.name.unwrap_or_else(|| index.to_string()),
        matchers: Matchers::new(spec.services, spec.hosts, spec.severity),
        when,
        comment: spec.comment,
    })
}

#[cfg(test)]
mod journal_tables {
    use super::*;

    #[test]
    fn journal_steps_keep_their_place_and_settings_stay_apart() {
        let text = "[journal]\nstart = \"now\"\n\n[journal.chains]\nsshd = [\n  { equals = { A = \"b\" } },\n  { drop = true },\n]\n\n[[journal.chains.other]]\nreport = \"interesting\"\n";
        let c = Config::parse(text, "t.toml").expect("parses");
        let j = c.journal.expect("journal").into_inner();
        assert_eq!(
            j.settings.get("start").and_then(|v| v.as_str()),
            Some("now")
        );
        let names: Vec<&str> = j.chains.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["sshd", "other"]);
        assert_eq!(&text[j.chains[0].1.span()].lines().next(), &Some("["));
        let second = &j.chains[0].1.get_ref()[1];
        assert_eq!(&text[second.span()], "{ drop = true }");
        assert_eq!(&text[j.chains[1].1.span()], "[[journal.chains.other]]");
        let other = &j.chains[1].1.get_ref()[0];
        // an array-of-tables entry is placed at its header, as a `[[checks]]` entry is
        assert_eq!(&text[other.span()], "[[journal.chains.other]]");
    }
}
