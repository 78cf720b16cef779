//! `[[rules]]` tables → [`Rule`]s, with errors that name the offending key.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Deserializer, IntoDeserializer, SeqAccess, Visitor};

use super::{Patterns, Recipient, Rule, TimeWindows};
use crate::alert::{EventKind, Severity, Trigger};
use crate::duration;
use crate::error::BuildError;
use crate::notifier::ConfiguredNotifier;
use crate::table::{Table, from_table};
use crate::template::{Format, FormatSpec, Formats};

/// A rule table as written, minus `notify` (read by hand: a name or an inline table).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    #[serde(default)]
    services: Patterns,
    #[serde(default)]
    exclude_services: Patterns,
    #[serde(default)]
    hosts: Patterns,
    #[serde(default)]
    exclude_hosts: Patterns,
    #[serde(default, deserialize_with = "one_or_many")]
    severity: Option<Vec<Severity>>,
    #[serde(default, deserialize_with = "one_or_many")]
    events: Option<Vec<EventKind>>,
    #[serde(default, deserialize_with = "one_or_many")]
    kind: Option<Vec<String>>,
    #[serde(default, deserialize_with = "one_or_many")]
    trigger: Option<Vec<Trigger>>,
    #[serde(default)]
    on_success: Option<OnSuccess>,
    #[serde(default)]
    time: TimeWindows,
    #[serde(default)]
    exclude_time: TimeWindows,
    #[serde(default, deserialize_with = "duration::option::deserialize")]
    min_duration: Option<Duration>,
    #[serde(default, deserialize_with = "duration::option::deserialize")]
    max_duration: Option<Duration>,
    #[serde(default, deserialize_with = "opt_threshold")]
    threshold: Option<u32>,
    #[serde(default, deserialize_with = "duration::option::deserialize")]
    repeat: Option<Duration>,
    #[serde(default)]
    recovery: Option<bool>,
    #[serde(default)]
    stop: bool,
    #[serde(default)]
    unmatched: bool,
    #[serde(default)]
    ignore: bool,
    #[serde(default)]
    depends_on: Vec<String>,
}

/// `on_success`: what a successful run sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum OnSuccess {
    /// Nothing (the default).
    #[serde(rename = "none")]
    Nothing,
    /// The run's output.
    Output,
}

/// An inline `notify` entry: `{ to = "pager", repeat = "30m" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecipientSpec {
    to: String,
    #[serde(default, deserialize_with = "opt_threshold")]
    threshold: Option<u32>,
    #[serde(default, deserialize_with = "duration::option::deserialize")]
    repeat: Option<Duration>,
    #[serde(default)]
    recovery: Option<bool>,
}

/// Builds rule `index` (1-based) starting at config line `line` from its table.
/// `notifiers` are the ones a rule may send to; `formats` the named formats.
pub(crate) fn build_rule(
    index: usize,
    line: usize,
    table: &toml::Table,
    notifiers: &[ConfiguredNotifier],
    formats: &Formats,
) -> Result<Rule, BuildError> {
    let ctx = Ctx { notifiers, formats };
    let mut rest = table.clone();
    let notify = rest.remove("notify");
    let spec: RuleSpec = from_table(&rest)?;
    let notify = match notify {
        None => Vec::new(),
        Some(toml::Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| ctx.recipient(v, i))
            .collect::<Result<Vec<_>, _>>()?,
        Some(v) => vec![ctx.recipient(&v, 0)?],
    };
    if notify.is_empty() && !spec.ignore {
        return Err(BuildError::new(
            "sends to nobody: add `notify = [\"NAME\", ...]` (or `ignore = true` to drop the events it matches)",
        ));
    }
    for (i, r) in notify.iter().enumerate() {
        if notify[..i].iter().any(|o| o.notifier == r.notifier) {
            return Err(BuildError::key(
                "notify",
                format!("notifier {:?} is listed twice", r.notifier),
            ));
        }
    }
    if let (Some(min), Some(max)) = (spec.min_duration, spec.max_duration)
        && min >= max
    {
        return Err(BuildError::key(
            "max_duration",
            format!(
                "max_duration ({}) must be longer than min_duration ({}): no streak could match",
                duration::format(max),
                duration::format(min)
            ),
        ));
    }
    let output = spec.on_success == Some(OnSuccess::Output);
    if output && notify.is_empty() {
        return Err(BuildError::key(
            "on_success",
            "`on_success = \"output\"` sends to the rule's `notify`, which is empty",
        ));
    }
    if spec.ignore && spec.unmatched {
        return Err(BuildError::key(
            "unmatched",
            "`ignore` and `unmatched` together would drop events nobody else handles: pick one",
        ));
    }
    Ok(Rule {
        index,
        line,
        services: spec.services,
        exclude_services: spec.exclude_services,
        hosts: spec.hosts,
        exclude_hosts: spec.exclude_hosts,
        severity: spec.severity,
        events: spec.events,
        kind: spec.kind,
        trigger: spec.trigger,
        output,
        time: spec.time,
        exclude_time: spec.exclude_time,
        depends_on: spec.depends_on,
        min_duration: spec.min_duration,
        max_duration: spec.max_duration,
        notify,
        threshold: spec.threshold,
        repeat: spec.repeat,
        recovery: spec.recovery,
        stop: spec.stop,
        unmatched: spec.unmatched,
        ignore: spec.ignore,
    })
}

struct Ctx<'a> {
    notifiers: &'a [ConfiguredNotifier],
    formats: &'a Formats,
}

impl Ctx<'_> {
    fn recipient(&self, v: &toml::Value, i: usize) -> Result<Recipient, BuildError> {
        let in_entry = |e: BuildError| BuildError::key("notify", format!("`notify[{i}]`: {e}"));
        let (mut r, spec) = match v {
            toml::Value::String(name) => (Recipient::new(name.clone()), FormatSpec::default()),
            toml::Value::Table(t) => {
                let (spec, rest) = FormatSpec::split(&Table::from(t.clone())).map_err(in_entry)?;
                let r: RecipientSpec = rest.deserialize().map_err(in_entry)?;
                let recipient = Recipient {
                    notifier: r.to,
                    threshold: r.threshold,
                    repeat: r.repeat,
                    recovery: r.recovery,
                    format_spec: FormatSpec::default(),
                    format: None,
                };
                (recipient, spec)
            }
            other => {
                return Err(BuildError::key(
                    "notify",
                    format!(
                        "`notify[{i}]`: expected a notifier name or an inline table {{ to = \"NAME\", ... }}, found {}",
                        other.type_str()
                    ),
                ));
            }
        };
        let Some(notifier) = self.notifiers.iter().find(|n| n.name == r.notifier) else {
            let names: Vec<&str> = self.notifiers.iter().map(|n| n.name.as_str()).collect();
            return Err(BuildError::key(
                "notify",
                format!(
                    "unknown notifier {:?} (configured: {})",
                    r.notifier,
                    names.join(", ")
                ),
            ));
        };
        if !spec.is_empty() {
            // the override starts from the notifier's own format
            let format: Format =
                Format::compile(&spec, self.formats, &notifier.format).map_err(in_entry)?;
            notifier.notifier.check_format(&format).map_err(in_entry)?;
            r.format = Some(format);
            r.format_spec = spec;
        }
        Ok(r)
    }
}

fn opt_threshold<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    crate::policy::deserialize_threshold(d).map(Some)
}

/// `severity = "critical"` or `severity = ["warning", "critical"]`.
fn one_or_many<'de, D, T>(d: D) -> Result<Option<Vec<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    struct OneOrMany<T>(PhantomData<T>);
    impl<'de, T: DeserializeOwned> Visitor<'de> for OneOrMany<T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string or an array of strings")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            T::deserialize(v.into_deserializer()).map(|t| vec![t])
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(t) = seq.next_element()? {
                out.push(t);
            }
            if out.is_empty() {
                return Err(de::Error::custom(
                    "an empty list matches nothing: leave the key out to match everything",
                ));
            }
            Ok(out)
        }
    }
    d.deserialize_any(OneOrMany(PhantomData)).map(Some)
}
