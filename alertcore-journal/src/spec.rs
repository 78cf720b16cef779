//! `[journal]` and `[journal.chains]`: reading the config into [`JournalConfig`] and
//! [`Chains`], with errors at the step they are about.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use alertcore::config::Config;
use alertcore::{BuildError, ConfigError, Severity, Table};
use regex::{Regex, RegexSet};
use serde::Deserialize;

use crate::text::Text;

/// Where the first start (no cursor stored yet) reads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Entries from the daemon's start on.
    Now,
    /// Every entry of the current boot.
    Boot,
    /// Entries of the last so long.
    Back(Duration),
}

/// `[journal]`: what to read and how often to checkpoint, the ban settings, and the
/// chains.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct JournalConfig {
    /// `start`: where a first start reads from (default `now`).
    pub start: Start,
    /// `directory`: read the journal files there (`journalctl --directory`) instead
    /// of the system's journal.
    pub directory: Option<PathBuf>,
    /// `journalctl`: the program (default `journalctl`, from `PATH`).
    pub journalctl: PathBuf,
    /// `pushdown`: hand the chains' leading field matches to journalctl (default
    /// true; only possible when every chain an entry can start in begins with one).
    pub pushdown: bool,
    /// `checkpoint_every`: save the cursor after so many entries at most (default 1000).
    pub checkpoint_every: usize,
    /// `checkpoint_after`: and after so long at most, when entries were read
    /// (default 5 s).
    pub checkpoint_after: Duration,
    /// `nft`: the nftables program bans run (default `nft`).
    pub nft: PathBuf,
    /// `ban_table`: the nftables table of the ban sets (default `inet alertcore`).
    pub ban_table: String,
    /// `ban_set`: the set IPv4 addresses are banned in (default `banned4`).
    pub ban_set: String,
    /// `ban_set6`: the set IPv6 addresses are banned in (default `banned6`).
    pub ban_set6: String,
    /// `[journal.report]`: the daily report, if wanted.
    pub report: Option<ReportConfig>,
    /// The chains.
    pub chains: Chains,
}

/// `[journal.report]`: the three-part report of what the journal said.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ReportConfig {
    /// `at`: the time of day it is sent, `HH:MM` in the config's `timezone` (default
    /// `06:00`).
    #[serde(default = "ReportConfig::default_at")]
    pub at: String,
    /// `notifiers`: who gets it (default: every notifier).
    #[serde(default)]
    pub notifiers: Vec<String>,
    /// `max_lines`: lines per part at most; the rest is counted (default
    /// [`ReportConfig::MAX_LINES`]).
    #[serde(default = "ReportConfig::max_lines")]
    pub max_lines: usize,
}

impl ReportConfig {
    /// `max_lines` when not set (and for `alertctl report journal` without the table).
    pub const MAX_LINES: usize = 50;

    fn default_at() -> String {
        "06:00".into()
    }
    fn max_lines() -> usize {
        Self::MAX_LINES
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsSpec {
    #[serde(default)]
    start: Option<String>,
    #[serde(default)]
    directory: Option<PathBuf>,
    #[serde(default)]
    journalctl: Option<PathBuf>,
    #[serde(default)]
    pushdown: Option<bool>,
    #[serde(default)]
    checkpoint_every: Option<usize>,
    #[serde(default, with = "alertcore::duration::option")]
    checkpoint_after: Option<Duration>,
    #[serde(default)]
    nft: Option<PathBuf>,
    #[serde(default)]
    ban_table: Option<String>,
    #[serde(default)]
    ban_set: Option<String>,
    #[serde(default)]
    ban_set6: Option<String>,
    #[serde(default)]
    report: Option<ReportConfig>,
}

impl JournalConfig {
    /// `[journal]` of `config`: `None` without the table.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] at the bad key or step.
    pub fn from_config(config: &Config) -> Result<Option<Self>, ConfigError> {
        let Some(spanned) = &config.journal else {
            return Ok(None);
        };
        let tables = spanned.get_ref();
        // an error in the settings points at its key in `[journal]` (the place and the
        // file's text are what `error_in` reads, not the table)
        let at_key = |what: &str, e| {
            config.error_in(
                &toml::Spanned::new(spanned.span(), toml::Table::new()),
                what,
                e,
            )
        };
        let settings: SettingsSpec = Table::from(tables.settings.clone())
            .deserialize()
            .map_err(|e| at_key("[journal]", e))?;
        let start = match settings.start.as_deref() {
            None | Some("now") => Start::Now,
            Some("boot") => Start::Boot,
            Some(other) => Start::Back(alertcore::duration::parse(other).map_err(|e| {
                at_key(
                    "[journal]",
                    BuildError::key(
                        "start",
                        format!("`start` is `now`, `boot` or a duration such as \"1h\": {e}"),
                    ),
                )
            })?),
        };
        if settings.checkpoint_every == Some(0) {
            return Err(at_key(
                "[journal]",
                BuildError::key("checkpoint_every", "`checkpoint_every` must be at least 1"),
            ));
        }
        if let Some(r) = &settings.report {
            crate::report::time_of_day(&r.at)
                .map_err(|e| at_key("[journal.report]", BuildError::key("at", e)))?;
        }
        let chains = Chains::build(&tables.chains, |place, what, e| {
            config.error_in(&toml::Spanned::new(place, toml::Table::new()), what, e)
        })?;
        Ok(Some(Self {
            start,
            directory: settings.directory,
            journalctl: settings.journalctl.unwrap_or_else(|| "journalctl".into()),
            pushdown: settings.pushdown.unwrap_or(true),
            checkpoint_every: settings.checkpoint_every.unwrap_or(1000),
            checkpoint_after: settings.checkpoint_after.unwrap_or(Duration::from_secs(5)),
            nft: settings.nft.unwrap_or_else(|| "nft".into()),
            ban_table: settings
                .ban_table
                .unwrap_or_else(|| "inet alertcore".into()),
            ban_set: settings.ban_set.unwrap_or_else(|| "banned4".into()),
            ban_set6: settings.ban_set6.unwrap_or_else(|| "banned6".into()),
            report: settings.report,
            chains,
        }))
    }
}

/// How a report step classifies an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    /// Events of importance: the report's first part.
    Important,
    /// Events of interest: the second part.
    Interesting,
    /// Everything no chain dropped or classified: the third part.
    Other,
}

impl Class {
    /// `important`, `interesting` or `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Important => "important",
            Self::Interesting => "interesting",
            Self::Other => "other",
        }
    }
}

/// An IP network (`192.0.2.0/24`, `2001:db8::/32`, or one address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    /// Parses `a.b.c.d/n`, `x::y/n` or an address alone.
    ///
    /// # Errors
    /// What is wrong with it.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not an IP network (`192.0.2.0/24`, `2001:db8::/32`)"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: the prefix length must be 0 to {max}"))?,
        };
        Ok(Self { addr, prefix })
    }

    /// Whether `ip` is in the network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 @ IpAddr::V4(_) => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// What one step does.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum What {
    /// `equals` / `in`: every named field has one of the values.
    Fields(Vec<(String, Vec<String>)>),
    /// `regex`: every named field matches; named captures become fields. The index is
    /// the pattern's in the field's prefilter set.
    Regex(Vec<(String, Regex, usize)>),
    /// `priority`: `PRIORITY` at most this (as severe or more).
    Priority(u8),
    /// `greater`: every named field is a number above the value.
    Greater(Vec<(String, f64)>),
    /// `lower`: below the value.
    Lower(Vec<(String, f64)>),
    /// `in_network`: the field is an IP address in one of the networks.
    InNetwork(Vec<(String, Vec<Net>)>),
    /// `user_exists`: the field names a user of this system (`/etc/passwd`).
    UserExists(String),
    /// `when_counter`: the counter of the key has at least so many hits.
    WhenCounter {
        /// The counter.
        counter: String,
        /// Its key.
        key: Text,
        /// The threshold.
        at_least: u64,
    },
    /// `alert`: a failure (or, with `recovery`, a success) of a service.
    Alert {
        /// The service.
        service: Text,
        /// Warning or critical.
        severity: Severity,
        /// The alert's message (default: the entry's `MESSAGE`).
        message: Text,
        /// A success instead of a failure.
        recovery: bool,
    },
    /// `counter_raise`: one hit on the counter of the key, kept for `window`.
    CounterRaise {
        /// The counter.
        counter: String,
        /// Its key.
        key: Text,
        /// How long a hit counts; `None`: until a reset.
        window: Option<Duration>,
    },
    /// `counter_reset`: the counter of the key back to zero; hits within `grace`
    /// after it do not count.
    CounterReset {
        /// The counter.
        counter: String,
        /// Its key.
        key: Text,
        /// How long raises are ignored after.
        grace: Option<Duration>,
    },
    /// `report`: the entry goes in the daily report's part.
    Report {
        /// The part.
        class: Class,
        /// The line (default: the entry's `MESSAGE`).
        message: Text,
    },
    /// `drop`: known noise; the entry goes nowhere else.
    Drop,
    /// `jump`: into another chain; back here at its end.
    Jump(usize),
    /// `exec`: runs argv, no shell, the entry's fields in the environment.
    Exec {
        /// The program and its arguments, each a template.
        argv: Vec<Text>,
        /// Killed (its process group) after so long.
        timeout: Duration,
    },
    /// `ban`: adds an address to the nftables ban set for so long.
    Ban {
        /// The address.
        address: Text,
        /// How long.
        duration: Duration,
    },
}

impl What {
    /// Whether the step is a filter (else an action).
    pub fn is_filter(&self) -> bool {
        matches!(
            self,
            Self::Fields(_)
                | Self::Regex(_)
                | Self::Priority(_)
                | Self::Greater(_)
                | Self::Lower(_)
                | Self::InNetwork(_)
                | Self::UserExists(_)
                | Self::WhenCounter { .. }
        )
    }
}

/// One step of a chain.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Step {
    /// What it does.
    pub what: What,
    /// A filter that does not match sends the entry here (a chain's index) instead of
    /// ending the chain.
    pub otherwise: Option<usize>,
    /// An action with `stop = true` ends the entry's way through every chain.
    pub stop: bool,
}

impl Step {
    /// The chains it can send an entry to (`jump`, `else`).
    fn targets(&self) -> impl Iterator<Item = usize> {
        let jump = match self.what {
            What::Jump(t) => Some(t),
            _ => None,
        };
        jump.into_iter().chain(self.otherwise)
    }
}

/// A named, ordered list of steps.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Chain {
    /// Its name.
    pub name: String,
    /// Its steps.
    pub steps: Vec<Step>,
}

/// Every chain, the ones an entry starts in, and the regex prefilters.
///
/// An entry goes through each chain that no `jump` or `else` names (the *entry
/// chains*), in file order, step by step: a filter that matches passes it to the next
/// step; one that does not ends that chain for it (or sends it to its `else` chain);
/// an action acts and passes it on, unless it is `drop` or has `stop = true`, which end
/// its way through every chain. A chain entered by `jump` returns to the step after the
/// jump at its end; one entered by `else` does not.
#[derive(Debug, Clone, Default)]
pub struct Chains {
    /// In file order.
    pub chains: Vec<Chain>,
    /// The entry chains, in file order.
    pub entry: Vec<usize>,
    /// Per field, every regex step's pattern on it: one pass finds which can match.
    pub(crate) prefilter: HashMap<String, RegexSet>,
    /// Config warnings: chains that can never match.
    pub warnings: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StepSpec {
    #[serde(default)]
    equals: Option<BTreeMap<String, String>>,
    #[serde(default, rename = "in")]
    within: Option<BTreeMap<String, Vec<String>>>,
    #[serde(default)]
    regex: Option<BTreeMap<String, String>>,
    #[serde(default)]
    priority: Option<toml::Value>,
    #[serde(default)]
    greater: Option<BTreeMap<String, f64>>,
    #[serde(default)]
    lower: Option<BTreeMap<String, f64>>,
    #[serde(default)]
    in_network: Option<BTreeMap<String, Vec<String>>>,
    #[serde(default)]
    user_exists: Option<String>,
    #[serde(default)]
    when_counter: Option<String>,
    #[serde(default)]
    at_least: Option<u64>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    alert: Option<String>,
    #[serde(default)]
    severity: Option<Severity>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    recovery: Option<bool>,
    #[serde(default)]
    counter_raise: Option<String>,
    #[serde(default, with = "alertcore::duration::option")]
    window: Option<Duration>,
    #[serde(default)]
    counter_reset: Option<String>,
    #[serde(default, with = "alertcore::duration::option")]
    grace: Option<Duration>,
    #[serde(default)]
    report: Option<Class>,
    #[serde(default)]
    drop: Option<bool>,
    #[serde(default)]
    jump: Option<String>,
    #[serde(default)]
    exec: Option<Vec<String>>,
    #[serde(default, with = "alertcore::duration::option")]
    timeout: Option<Duration>,
    #[serde(default)]
    ban: Option<String>,
    #[serde(default, rename = "for", with = "alertcore::duration::option")]
    ban_for: Option<Duration>,
    #[serde(default, rename = "else")]
    otherwise: Option<String>,
    #[serde(default)]
    stop: Option<bool>,
}

/// The step keys, one of which each step has: the filters, then the actions.
const KINDS: [&str; 17] = [
    "equals",
    "in",
    "regex",
    "priority",
    "greater",
    "lower",
    "in_network",
    "user_exists",
    "when_counter",
    "alert",
    "counter_raise",
    "counter_reset",
    "report",
    "drop",
    "jump",
    "exec",
    "ban",
];

/// Which keys each kind allows beside its own (and `else` for filters, `stop` for
/// actions).
fn allowed(kind: &str) -> &'static [&'static str] {
    match kind {
        "when_counter" => &["key", "at_least"],
        "alert" => &["severity", "message", "recovery"],
        "counter_raise" => &["key", "window"],
        "counter_reset" => &["key", "grace"],
        "report" => &["message"],
        "exec" => &["timeout"],
        "ban" => &["for"],
        _ => &[],
    }
}

/// The first kinds of [`KINDS`] are the filters.
const FILTERS: usize = 9;
/// Default `timeout` of an `exec` step.
pub const EXEC_TIMEOUT: Duration = Duration::from_secs(30);
/// Default `for` of a `ban` step.
pub const BAN_FOR: Duration = Duration::from_secs(3600);

/// syslog priorities by name.
const PRIORITIES: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

impl Chains {
    /// Reads `chains` (name, steps), reporting an error in a step through `error`.
    ///
    /// # Errors
    /// The first bad step's error, located.
    pub fn build<E>(
        chains: &[(String, toml::Spanned<Vec<toml::Spanned<toml::Table>>>)],
        error: impl Fn(std::ops::Range<usize>, &str, BuildError) -> E,
    ) -> Result<Self, E> {
        let index: HashMap<&str, usize> = chains
            .iter()
            .enumerate()
            .map(|(i, (n, _))| (n.as_str(), i))
            .collect();
        let mut out = Self::default();
        let mut patterns: HashMap<String, Vec<String>> = HashMap::new();
        // an error about a whole chain points at its list
        let at_chain = |i: usize, message: String| {
            let (name, steps) = &chains[i];
            error(
                steps.span(),
                &format!("journal chain {name}"),
                BuildError::new(message),
            )
        };
        for (c, (name, steps)) in chains.iter().enumerate() {
            let mut built = Vec::new();
            if steps.get_ref().is_empty() {
                return Err(at_chain(c, format!("chain `{name}` has no steps")));
            }
            for (i, table) in steps.get_ref().iter().enumerate() {
                let what = format!("journal chain {name}, step {}", i + 1);
                let step = build_step(table.get_ref(), &index, &mut patterns)
                    .map_err(|e| error(table.span(), &what, e))?;
                built.push(step);
            }
            out.chains.push(Chain {
                name: name.clone(),
                steps: built,
            });
        }
        // entered only by jump/else, or an entry chain
        let targets: HashSet<usize> = out
            .chains
            .iter()
            .flat_map(|c| &c.steps)
            .flat_map(Step::targets)
            .collect();
        out.entry = (0..out.chains.len())
            .filter(|i| !targets.contains(i))
            .collect();
        if let Some(cycle) = out.cycle() {
            return Err(at_chain(
                cycle,
                format!(
                    "chain `{}` reaches itself again through `jump`/`else`: an entry would never leave it",
                    chains[cycle].0
                ),
            ));
        }
        // (a set of chains each named by a `jump` or an `else` always has a loop, so
        // there is an entry chain from here on)
        for (field, list) in patterns {
            // each pattern compiled alone already, so the set compiles; were it too
            // big, the steps run without the prefilter
            match RegexSet::new(&list) {
                Ok(set) => {
                    out.prefilter.insert(field, set);
                }
                Err(e) => tracing::debug!("no prefilter for the regexes on {field}: {e}"),
            }
        }
        out.warnings = out.lint();
        Ok(out)
    }

    /// A chain from which `jump`/`else` lead back to it.
    fn cycle(&self) -> Option<usize> {
        let edges = |c: usize| -> Vec<usize> {
            self.chains[c]
                .steps
                .iter()
                .flat_map(Step::targets)
                .collect()
        };
        // depth-first, colouring: 0 new, 1 on the path, 2 done
        let mut colour = vec![0u8; self.chains.len()];
        fn visit(
            c: usize,
            colour: &mut [u8],
            edges: &dyn Fn(usize) -> Vec<usize>,
        ) -> Option<usize> {
            colour[c] = 1;
            for n in edges(c) {
                match colour[n] {
                    1 => return Some(n),
                    0 => {
                        if let Some(x) = visit(n, colour, edges) {
                            return Some(x);
                        }
                    }
                    _ => {}
                }
            }
            colour[c] = 2;
            None
        }
        (0..self.chains.len()).find_map(|c| {
            if colour[c] == 0 {
                visit(c, &mut colour, &edges)
            } else {
                None
            }
        })
    }

    /// The journalctl matches that let through every entry some entry chain's leading
    /// filters can pass: `None` when one entry chain does not start with a field match
    /// (or its first filter has an `else`), so every entry is needed.
    ///
    /// Each entry chain gives its leading `equals`/`in` steps on journal fields (same
    /// field: alternatives; different fields: all of them); chains are joined by `+`.
    pub fn pushdown(&self) -> Option<Vec<String>> {
        let mut out: Vec<String> = Vec::new();
        for &c in &self.entry {
            let mut group = Vec::new();
            for step in &self.chains[c].steps {
                let What::Fields(fields) = &step.what else {
                    break;
                };
                if step.otherwise.is_some() {
                    break;
                }
                for (field, values) in fields {
                    // journalctl matches journal fields only, never a capture
                    if !is_journal_field(field) {
                        continue;
                    }
                    for v in values {
                        group.push(format!("{field}={v}"));
                    }
                }
            }
            if group.is_empty() {
                return None;
            }
            if !out.is_empty() {
                out.push("+".to_owned());
            }
            out.extend(group);
        }
        (!out.is_empty()).then_some(out)
    }

    /// Chains that can never match: a filter on a field journald never writes and no
    /// earlier `regex` of the chain captures.
    fn lint(&self) -> Vec<String> {
        let mut out = Vec::new();
        for chain in &self.chains {
            let mut captured: HashSet<&str> = HashSet::new();
            for (i, step) in chain.steps.iter().enumerate() {
                let fields: Vec<&str> = match &step.what {
                    What::Fields(f) => f.iter().map(|(k, _)| k.as_str()).collect(),
                    What::Regex(r) => r.iter().map(|(k, _, _)| k.as_str()).collect(),
                    What::Greater(f) | What::Lower(f) => {
                        f.iter().map(|(k, _)| k.as_str()).collect()
                    }
                    What::InNetwork(f) => f.iter().map(|(k, _)| k.as_str()).collect(),
                    What::UserExists(f) => vec![f.as_str()],
                    _ => Vec::new(),
                };
                for f in fields {
                    if captured.contains(f) {
                        continue;
                    }
                    if let Some(why) = never_written(f) {
                        out.push(format!(
                            "journal chain {}, step {}: {why}; the chain can never get past this step",
                            chain.name,
                            i + 1
                        ));
                    }
                }
                if let What::Regex(r) = &step.what {
                    for (_, re, _) in r {
                        captured.extend(re.capture_names().flatten());
                    }
                }
            }
        }
        out
    }
}

/// Fields journald adds itself (the trusted `_` fields and the `__` address fields).
const TRUSTED: [&str; 37] = [
    "_PID",
    "_UID",
    "_GID",
    "_COMM",
    "_EXE",
    "_CMDLINE",
    "_CAP_EFFECTIVE",
    "_AUDIT_SESSION",
    "_AUDIT_LOGINUID",
    "_SYSTEMD_CGROUP",
    "_SYSTEMD_SLICE",
    "_SYSTEMD_UNIT",
    "_SYSTEMD_USER_UNIT",
    "_SYSTEMD_USER_SLICE",
    "_SYSTEMD_SESSION",
    "_SYSTEMD_OWNER_UID",
    "_SYSTEMD_INVOCATION_ID",
    "_SELINUX_CONTEXT",
    "_SOURCE_REALTIME_TIMESTAMP",
    "_BOOT_ID",
    "_MACHINE_ID",
    "_HOSTNAME",
    "_TRANSPORT",
    "_STREAM_ID",
    "_LINE_BREAK",
    "_NAMESPACE",
    "_RUNTIME_SCOPE",
    "_KERNEL_DEVICE",
    "_KERNEL_SUBSYSTEM",
    "_UDEV_SYSNAME",
    "_UDEV_DEVNODE",
    "_UDEV_DEVLINK",
    "__CURSOR",
    "__REALTIME_TIMESTAMP",
    "__MONOTONIC_TIMESTAMP",
    "__SEQNUM",
    "__SEQNUM_ID",
];

/// Fields applications commonly write, to catch a misspelt one.
const COMMON: [&str; 18] = [
    "MESSAGE",
    "MESSAGE_ID",
    "PRIORITY",
    "CODE_FILE",
    "CODE_LINE",
    "CODE_FUNC",
    "ERRNO",
    "INVOCATION_ID",
    "USER_INVOCATION_ID",
    "SYSLOG_FACILITY",
    "SYSLOG_IDENTIFIER",
    "SYSLOG_PID",
    "SYSLOG_TIMESTAMP",
    "SYSLOG_RAW",
    "DOCUMENTATION",
    "TID",
    "UNIT",
    "USER_UNIT",
];

/// Whether `field` can be a journal field (journalctl can match it): upper case,
/// digits and `_`.
fn is_journal_field(field: &str) -> bool {
    !field.is_empty()
        && field
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// Why journald never writes `field`, if it never does.
fn never_written(field: &str) -> Option<String> {
    if !is_journal_field(field) {
        return Some(format!(
            "`{field}` is no journal field (journald's are upper case; a lower-case name must be a capture of an earlier `regex` of the chain)"
        ));
    }
    if field.starts_with('_') && !TRUSTED.contains(&field) {
        return Some(format!(
            "journald writes no field `{field}` (fields starting with `_` are journald's own){}",
            near(field)
                .map(|f| format!("; did you mean `{f}`?"))
                .unwrap_or_default()
        ));
    }
    if !COMMON.contains(&field)
        && let Some(f) = near(field)
    {
        return Some(format!("`{field}` looks like a misspelt `{f}`"));
    }
    None
}

/// A known field at most two edits from `field` (and not it).
fn near(field: &str) -> Option<&'static str> {
    TRUSTED
        .iter()
        .chain(COMMON.iter())
        .find(|k| **k != field && edits(k, field) <= 2)
        .copied()
}

/// The Levenshtein distance.
fn edits(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

fn text(key: &str, s: &str) -> Result<Text, BuildError> {
    Text::parse(s).map_err(|e| BuildError::key(key, e))
}

fn build_step(
    table: &toml::Table,
    chains: &HashMap<&str, usize>,
    patterns: &mut HashMap<String, Vec<String>>,
) -> Result<Step, BuildError> {
    let kinds: Vec<&str> = KINDS
        .iter()
        .copied()
        .filter(|k| table.contains_key(*k))
        .collect();
    let kind = match kinds.as_slice() {
        [one] => *one,
        [] => {
            return Err(BuildError::new(format!(
                "a step needs one of {}",
                KINDS.map(|k| format!("`{k}`")).join(", ")
            )));
        }
        [a, b, ..] => {
            return Err(BuildError::key(
                *b,
                format!("a step does one thing: `{a}` and `{b}` are two steps"),
            ));
        }
    };
    let filter = KINDS[..FILTERS].contains(&kind);
    for key in table.keys().map(String::as_str) {
        let ok = key == kind
            || allowed(kind).contains(&key)
            || (filter && key == "else")
            || (!filter && key == "stop");
        // unknown keys are serde's error below; a known one in the wrong step here
        let known =
            ["else", "stop"].contains(&key) || KINDS.iter().any(|k| allowed(k).contains(&key));
        if !ok && known {
            return Err(BuildError::key(
                key,
                format!("`{key}` does not belong in a `{kind}` step"),
            ));
        }
    }
    // the filters that name fields must name one
    if table
        .get(kind)
        .and_then(toml::Value::as_table)
        .is_some_and(toml::Table::is_empty)
    {
        return Err(BuildError::key(kind, format!("`{kind}` names no field")));
    }
    let spec: StepSpec = Table::from(table.clone()).deserialize()?;
    let chain_ref = |key: &str, name: &str| {
        chains
            .get(name)
            .copied()
            .ok_or_else(|| BuildError::key(key, format!("there is no journal chain `{name}`")))
    };
    let otherwise = spec
        .otherwise
        .as_deref()
        .map(|n| chain_ref("else", n))
        .transpose()?;
    let key_text = |k: &Option<String>| text("key", k.as_deref().unwrap_or(""));
    // a message is the entry's own unless the step says otherwise
    let message = spec
        .message
        .as_deref()
        .map_or_else(|| Ok(Text::field("MESSAGE")), |m| text("message", m))?;
    let what = match kind {
        "equals" => What::Fields(
            spec.equals
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, vec![v]))
                .collect(),
        ),
        "in" => What::Fields(spec.within.unwrap_or_default().into_iter().collect()),
        "regex" => {
            let mut list = Vec::new();
            for (field, pattern) in spec.regex.unwrap_or_default() {
                let re = Regex::new(&pattern)
                    .map_err(|e| BuildError::key("regex", format!("{field}: {e}")))?;
                let set = patterns.entry(field.clone()).or_default();
                set.push(pattern);
                list.push((field, re, set.len() - 1));
            }
            What::Regex(list)
        }
        "priority" => What::Priority(priority(spec.priority.as_ref())?),
        "greater" => What::Greater(spec.greater.unwrap_or_default().into_iter().collect()),
        "lower" => What::Lower(spec.lower.unwrap_or_default().into_iter().collect()),
        "in_network" => What::InNetwork(
            spec.in_network
                .unwrap_or_default()
                .into_iter()
                .map(|(field, nets)| {
                    let nets = nets
                        .iter()
                        .map(|n| Net::parse(n).map_err(|e| BuildError::key("in_network", e)))
                        .collect::<Result<Vec<_>, _>>()?;
                    Ok((field, nets))
                })
                .collect::<Result<Vec<_>, BuildError>>()?,
        ),
        "user_exists" => What::UserExists(spec.user_exists.unwrap_or_default()),
        "when_counter" => What::WhenCounter {
            counter: spec.when_counter.unwrap_or_default(),
            key: key_text(&spec.key)?,
            at_least: spec.at_least.ok_or_else(|| {
                BuildError::key("when_counter", "a `when_counter` step needs `at_least = N`")
            })?,
        },
        "alert" => What::Alert {
            service: text("alert", spec.alert.as_deref().unwrap_or(""))?,
            severity: spec.severity.unwrap_or(Severity::Critical),
            message,
            recovery: spec.recovery.unwrap_or(false),
        },
        "counter_raise" => What::CounterRaise {
            counter: spec.counter_raise.unwrap_or_default(),
            key: key_text(&spec.key)?,
            window: spec.window,
        },
        "counter_reset" => What::CounterReset {
            counter: spec.counter_reset.unwrap_or_default(),
            key: key_text(&spec.key)?,
            grace: spec.grace,
        },
        "report" => What::Report {
            class: spec.report.unwrap_or(Class::Other),
            message,
        },
        "drop" => {
            if spec.drop != Some(true) {
                return Err(BuildError::key("drop", "`drop = true` or no drop step"));
            }
            What::Drop
        }
        "jump" => What::Jump(chain_ref("jump", spec.jump.as_deref().unwrap_or(""))?),
        "exec" => {
            let argv = spec.exec.unwrap_or_default();
            if argv.is_empty() {
                return Err(BuildError::key(
                    "exec",
                    "`exec` needs a program: [\"/path\", \"arg\", ...]",
                ));
            }
            What::Exec {
                argv: argv
                    .iter()
                    .map(|a| text("exec", a))
                    .collect::<Result<_, _>>()?,
                timeout: spec.timeout.unwrap_or(EXEC_TIMEOUT),
            }
        }
        "ban" => What::Ban {
            address: text("ban", spec.ban.as_deref().unwrap_or(""))?,
            duration: spec.ban_for.unwrap_or(BAN_FOR),
        },
        other => return Err(BuildError::new(format!("unknown step kind `{other}`"))),
    };
    match &what {
        What::WhenCounter { counter, .. }
        | What::CounterRaise { counter, .. }
        | What::CounterReset { counter, .. }
            if counter.is_empty() =>
        {
            return Err(BuildError::key(kind, "a counter needs a name"));
        }
        What::Alert { service, .. } if service.is_empty() => {
            return Err(BuildError::key(
                "alert",
                "`alert` names the service: alert = \"NAME\"",
            ));
        }
        _ => {}
    }
    Ok(Step {
        what,
        otherwise,
        stop: spec.stop.unwrap_or(false),
    })
}

/// `priority = 3` or `priority = "err"`.
fn priority(v: Option<&toml::Value>) -> Result<u8, BuildError> {
    let bad = || {
        BuildError::key(
            "priority",
            "`priority` is 0 to 7 or a name: emerg, alert, crit, err, warning, notice, info, debug",
        )
    };
    match v {
        Some(toml::Value::Integer(n)) => u8::try_from(*n).ok().filter(|n| *n <= 7).ok_or_else(bad),
        Some(toml::Value::String(s)) => PRIORITIES
            .iter()
            .position(|p| p == s)
            .and_then(|p| u8::try_from(p).ok())
            .ok_or_else(bad),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(text: &str) -> Result<JournalConfig, String> {
        let c = Config::parse(text, "t.toml").map_err(|e| e.to_string())?;
        JournalConfig::from_config(&c)
            .map_err(|e| e.to_string())
            .map(|j| j.expect("a [journal]"))
    }

    #[test]
    fn errors_point_at_the_step() {
        let cases = [
            // (config, expected error)
            (
                "[journal.chains]\nx = [\n  { equals = { A = \"1\" } },\n  { regex = { MESSAGE = '(' } },\n]\n",
                "t.toml:4:3: journal chain x, step 2:",
            ),
            (
                "[journal.chains]\nx = [\n  { jump = \"nowhere\" },\n]\n",
                "there is no journal chain `nowhere`",
            ),
            (
                "[journal.chains]\nx = [ { drop = true, alert = \"s\" } ]\n",
                "a step does one thing",
            ),
            (
                "[journal.chains]\nx = [ { frobnicate = 1 } ]\n",
                "a step needs one of",
            ),
            (
                "[journal.chains]\nx = [ { drop = true, else = \"x\" } ]\n",
                "`else` does not belong",
            ),
            (
                "[journal.chains]\nx = [ { when_counter = \"c\" } ]\n",
                "needs `at_least = N`",
            ),
            (
                "[journal.chains]\nx = [ { priority = \"loud\" } ]\n",
                "`priority` is 0 to 7",
            ),
            (
                "[journal.chains]\nx = [ { in_network = { IP = [\"10.0.0.0/33\"] } } ]\n",
                "prefix length",
            ),
            (
                "[journal.chains]\nx = [ { report = \"urgent\" } ]\n",
                "urgent",
            ),
            (
                "[journal.chains]\nx = [ { alert = \"a {{ b\" } ]\n",
                "without",
            ),
            (
                "[journal.chains]\nx = [ { equals = { A = \"1\" }, else = \"y\" } ]\ny = [ { jump = \"x\" } ]\n",
                "reaches itself again",
            ),
            (
                "[journal]\nstart = \"yesterday\"\n",
                "t.toml:2:1: [journal]: `start` is `now`, `boot` or a duration",
            ),
            ("[journal]\ncheckpoint_every = 0\n", "at least 1"),
            ("[journal]\nbogus = 1\n", "bogus"),
            // a whole chain's fault points at its list
            (
                "[journal.chains]\nok = [ { drop = true } ]\nempty = []\n",
                "t.toml:3:9: journal chain empty: chain `empty` has no steps",
            ),
            (
                "[journal.chains]\nx = [ { equals = {} } ]\n",
                "`equals` names no field",
            ),
            (
                "[journal.chains]\nx = [ { regex = {} } ]\n",
                "`regex` names no field",
            ),
            (
                "[journal.chains]\nx = [ { counter_raise = \"\" } ]\n",
                "a counter needs a name",
            ),
            (
                "[journal.chains]\nx = [ { alert = \"\" } ]\n",
                "`alert` names the service",
            ),
            (
                "[journal.chains]\nx = [ { exec = [] } ]\n",
                "`exec` needs a program",
            ),
            (
                "[journal.chains]\nx = [ { drop = false } ]\n",
                "`drop = true` or no drop step",
            ),
            (
                "[journal.chains]\nx = [ { report = \"important\", window = \"1m\" } ]\n",
                "`window` does not belong in a `report` step",
            ),
            (
                "[journal.chains]\nx = [ { drop = true, colour = 1 } ]\n",
                "colour",
            ),
            (
                "[journal.report]\nat = \"25:00\"\n",
                "`at` is a time of day",
            ),
        ];
        for (text, want) in cases {
            let err = build(text).expect_err(text);
            assert!(err.contains(want), "{text}\n=> {err}\nwanted: {want}");
        }
    }

    #[test]
    fn chains_only_jumps_reach_or_that_loop_are_errors_at_the_chain() {
        let err = build("[journal.chains]\na = [ { jump = \"b\" } ]\nb = [ { jump = \"a\" } ]\n")
            .expect_err("a loop");
        assert!(
            err.contains("t.toml:2:5: journal chain a: chain `a` reaches itself again"),
            "{err}"
        );
        let err =
            build("[journal.chains]\n[[journal.chains.a]]\njump = \"a\"\n").expect_err("a loop");
        assert!(err.contains("t.toml:2:1: journal chain a:"), "{err}");
        // `else` may lead out of a chain a `jump` enters
        build("[journal.chains]\na = [ { jump = \"b\" } ]\nb = [ { equals = { A = \"1\" }, else = \"c\" } ]\nc = [ { drop = true } ]\n")
            .expect("builds");
        let err = build("[journal.chains]\na = [ { else = \"b\", equals = { A = \"1\" } } ]\nb = [ { jump = \"a\", stop = true } ]\n")
            .expect_err("no entry chain");
        // every chain named by a jump or an else: always a loop, caught as one
        assert!(
            err.contains("journal chain a: chain `a` reaches itself again"),
            "{err}"
        );
    }

    #[test]
    fn pushdown_takes_each_entry_chains_leading_field_matches() {
        let j = build(
            "[journal.chains]\nssh = [ { in = { SYSLOG_IDENTIFIER = [\"sshd\", \"sshd-session\"] } }, { equals = { _UID = \"0\" } }, { drop = true } ]\nk = [ { equals = { _TRANSPORT = \"kernel\" } }, { jump = \"sub\" } ]\nsub = [ { drop = true } ]\n",
        )
        .expect("builds");
        assert_eq!(
            j.chains.pushdown().expect("pushdown"),
            [
                "SYSLOG_IDENTIFIER=sshd",
                "SYSLOG_IDENTIFIER=sshd-session",
                "_UID=0",
                "+",
                "_TRANSPORT=kernel"
            ]
        );
        // one entry chain that needs every entry: nothing can be pushed down
        let all = build("[journal.chains]\na = [ { equals = { A = \"1\" } } ]\nb = [ { regex = { MESSAGE = 'x' } } ]\n").expect("builds");
        assert_eq!(all.chains.pushdown(), None);
        // a leading filter with `else` needs the entries it does not match
        let e = build("[journal.chains]\na = [ { equals = { A = \"1\" }, else = \"b\" } ]\nb = [ { drop = true } ]\n").expect("builds");
        assert_eq!(e.chains.pushdown(), None);
    }

    #[test]
    fn chains_that_can_never_match_are_warned_about() {
        let j = build(
            "[journal.chains]\na = [ { equals = { SYSLOG_IDENTIFER = \"sshd\" } } ]\nb = [ { equals = { _SYSTEMD_UNITS = \"x\" } } ]\nc = [ { equals = { ip = \"x\" } } ]\nd = [ { regex = { MESSAGE = '(?P<ip>\\S+)' } }, { in_network = { ip = [\"10.0.0.0/8\"] } }, { equals = { MY_APP_FIELD = \"1\" } } ]\n",
        )
        .expect("builds");
        assert_eq!(j.chains.warnings.len(), 3, "{:#?}", j.chains.warnings);
        assert!(j.chains.warnings[0].contains(
            "journal chain a, step 1: `SYSLOG_IDENTIFER` looks like a misspelt `SYSLOG_IDENTIFIER`"
        ));
        assert!(j.chains.warnings[1].contains("did you mean `_SYSTEMD_UNIT`?"));
        assert!(j.chains.warnings[2].contains("`ip` is no journal field"));
    }

    #[test]
    fn networks() {
        let n = Net::parse("192.0.2.0/24").expect("net");
        assert!(n.contains("192.0.2.255".parse().expect("ip")));
        assert!(!n.contains("192.0.3.0".parse().expect("ip")));
        assert!(
            Net::parse("0.0.0.0/0")
                .expect("net")
                .contains("8.8.8.8".parse().expect("ip"))
        );
        assert!(
            !Net::parse("::/0")
                .expect("net")
                .contains("8.8.8.8".parse().expect("ip"))
        );
        assert!(
            Net::parse("2001:db8::1")
                .expect("net")
                .contains("2001:db8::1".parse().expect("ip"))
        );
        assert!(Net::parse("nope/3").is_err());
    }
}
