//! Message templates: how every transport turns an alert into a subject and a body.
//!
//! A notifier's subject and body come from a [`Format`]: the built-in `full` (the
//! default), `short` or `json`, a named `[formats.NAME]` table, or templates of your own
//! ([minijinja](https://docs.rs/minijinja), a Jinja2 dialect), set per notifier or per
//! recipient of a rule. Every transport renders through the same format and the same
//! data, described here and nowhere else.
//!
//! # Keys
//!
//! These keys may appear in a `[notifiers.NAME]` table, in a `[formats.NAME]` table and
//! in a rule's per-recipient override (`notify = [{ to = "pager", format = "short" }]`).
//! They are taken out of the notifier's table ([`FormatSpec::split`]) before its
//! transport reads the rest, so they mean the same for every transport.
//!
//! | key | meaning |
//! |---|---|
//! | `format` | the base: `"full"` (default), `"short"`, `"json"` or the name of a `[formats.NAME]` |
//! | `subject` | a template for the subject: one line (control characters become spaces) |
//! | `body` | a template for the body |
//! | `template_file` | a file holding the body template (instead of `body`); read when the config is loaded, relative to the working directory. It holds the body only: set the subject with `subject` |
//! | `timestamp_format` | how times are written: `strftime` (jiff's) plus Pacemaker's `%xN` (x digits of the fraction of a second), in the system's time zone; default RFC 3339 in UTC to the second (`2026-11-21T10:00:00Z`). The `exec` notifier's `CRM_alert_timestamp` uses it too (its own default there is Pacemaker's `%H:%M:%S.%06N`) |
//! | `show_rule_id` | `true`: the built-in templates name the rule that routed the alert (xymon `--cfid`) |
//!
//! Keys left unset inherit from the base: `format = "short"` with a `subject` keeps
//! short's body. A `[formats.NAME]` may itself name another as its `format`.
//!
//! Templates are compiled and tried on sample alerts (every event kind, with and without
//! optional fields, a rule and a journal excerpt) when the configuration is loaded, with
//! strict undefined variables: a syntax error or a misspelt name is a config error from
//! `alertctl config check`, naming the key and the template line, never a failed
//! alert at 3 a.m.
//!
//! # The data model
//!
//! Every template sees these variables. Text values have control characters (CR, LF,
//! NUL, ...) replaced by spaces, so a service name cannot add a line or a header. A
//! missing value is `none` (test it with `{% if message %}`); every variable is always
//! defined, so a misspelt one is an error.
//!
//! | variable | value |
//! |---|---|
//! | `service`, `host` | the service (`backup.service`) and the host it runs on |
//! | `notifier` | the notifier's name (`[notifiers.NAME]`) |
//! | `event` | `failure`, `reminder`, `escalation` or `recovery` |
//! | `event_word` | `FAILED`, `REMINDER`, `ESCALATED` or `RECOVERED` |
//! | `severity` | `warning` or `critical` (of the latest failure) |
//! | `result`, `exit_code`, `exit_status`, `invocation_id`, `message` | of the latest failure of the streak (on recovery: of the streak that ended); `none` when unknown |
//! | `summary` | `exit-code, status=1`: the result and exit status |
//! | `failures` | the streak's failure history, oldest first: each with `number` (1, 2, ...), `time`, `time_ms`, `severity`, `result`, `exit_code`, `exit_status`, `invocation_id`, `message`, `summary`, `host` |
//! | `streak_length` | how many failures the streak has |
//! | `streak_start`, `streak_start_ms` | when the streak's first failure was recorded |
//! | `duration`, `duration_secs` | how long the streak has lasted (`1h 5m`) |
//! | `streak_id` | the per-service streak number |
//! | `time`, `time_ms` | when the event was processed |
//! | `sequence` | the per-host sequence number of the alert event |
//! | `incident_id` | the same for the first alert, its reminders and its recovery |
//! | `rule` | the rule that routed the alert, `none` if none did: `rule.index` (1-based position in `[[rules]]`), `rule.line` (config line), `rule.text` (`rule 3 (line 42)`) |
//! | `show_rule_id` | the format's `show_rule_id` |
//! | `journal` | the journal excerpt of the failed run, `none` unless the transport read one: `journal.invocation_id`, `journal.lines`, `journal.text` (lines joined by `\n`) |
//! | `subject` | the rendered subject (in the body only) |
//! | `version` | alertcore's version |
//!
//! Times (`time`, `streak_start`, `failures[].time`) are text in `timestamp_format`;
//! the `_ms` twins are Unix milliseconds. Filters besides minijinja's built-ins:
//! `cut(n)` keeps at most `n` bytes (cut on a character boundary, ending in `…` when
//! something was cut), `pad(n)` pads to `n` characters, and `tojson` fails on an
//! undefined value rather than writing `null`.
//!
//! **The journal excerpt** costs a `journalctl` run, so it is read only by transports
//! that have a use for it and only when the format's templates mention `journal`
//! ([`Format::uses_journal`]): the email transport does (its `journal_lines`, default 50,
//! for failure-kind events). Elsewhere `journal` is `none`.
//!
//! # Built-in formats
//!
//! * `full`: subject `[web1] FAILED: backup.service (exit-code, status=1)`; the body is
//!   the readable summary (service, host, result, streak, sequence), the failure history
//!   as a table and, when there is one, the journal excerpt. Log-like transports
//!   (console, file, syslog) write its one-line form: the subject, then
//!   `, 3 failures since <time>: <message>` for failure-kind events.
//! * `short`: one line of at most 160 bytes for SMS and pager gateways, the important
//!   words first: `FAILED backup.service on web1: exit-code, status=1, 3x in 5m: disk full`.
//!   Subject, body and line are that line; it is cut on a UTF-8 character boundary (ending
//!   in `…`), and so is a custom `subject` on top of `short`.
//! * `json`: the body is the data model above as one compact JSON document (one line);
//!   the subject is `full`'s.
//!
//! What is the *line* of a log-like transport: `full`'s line as above; the subject when
//! the format's subject is set (or `short`); the JSON document for `json`.
//!
//! ```toml
//! [formats.sms]
//! format = "short"
//! show_rule_id = true
//!
//! [notifiers.ops]
//! type = "email"
//! # ...
//! subject = "{{ event_word }} {{ service }} on {{ host }}"
//! body = """
//! {{ service }} on {{ host }}: {{ summary }} ({{ streak_length }} failures since {{ streak_start }})
//! {% if journal %}
//! {{ journal.text }}
//! {% endif %}"""
//! timestamp_format = "%Y-%m-%d %H:%M:%S %Z"
//! ```

mod builtin;
mod model;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock};

use minijinja::value::Serde;
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};
use serde::{Deserialize, Serialize};

use crate::alert::Failure;
use crate::config::BuildError;
use crate::error::NotifyError;
use crate::exec::timestamp::TimestampFormat;
use crate::message::one_line;
use crate::notifier::Context;

pub use self::model::JournalExcerpt;

/// The most bytes the `short` format renders.
pub const SHORT_MAX_BYTES: usize = 160;

/// A subject longer than this is cut: mail header lines must stay under 998 bytes, and
/// nobody reads that far.
const SUBJECT_MAX_BYTES: usize = 900;

/// The names of the built-in formats.
pub const BUILTIN: [&str; 3] = ["full", "short", "json"];

/// The template settings a notifier table, a `[formats.NAME]` table or a rule
/// recipient may carry (see the [module documentation](self)).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormatSpec {
    /// `"full"`, `"short"`, `"json"` or the name of a `[formats.NAME]`: the base.
    pub format: Option<String>,
    /// The subject template (minijinja).
    pub subject: Option<String>,
    /// The body template (minijinja).
    pub body: Option<String>,
    /// A file holding the body template.
    pub template_file: Option<PathBuf>,
    /// `strftime` plus Pacemaker's `%xN`, for every time in the data.
    pub timestamp_format: Option<String>,
    /// Name the routing rule in the built-in subjects and bodies (xymon `--cfid`).
    pub show_rule_id: Option<bool>,
}

impl FormatSpec {
    /// The keys above, as they appear in a notifier's table.
    pub const KEYS: &'static [&'static str] = &[
        "format",
        "subject",
        "body",
        "template_file",
        "timestamp_format",
        "show_rule_id",
    ];

    /// Splits a notifier's config table into its format settings and the rest, which the
    /// transport's factory then reads.
    ///
    /// # Errors
    /// A [`BuildError`] naming the key whose value has the wrong type.
    pub fn split(table: &toml::Table) -> Result<(FormatSpec, toml::Table), BuildError> {
        crate::config::split_keys(table, Self::KEYS)
    }

    /// Whether no key is set.
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// Where a template came from: a built-in, or a key of some table (for errors).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Origin {
    Builtin(&'static str),
    Key(&'static str),
}

impl Origin {
    fn key(&self) -> &'static str {
        match self {
            Self::Builtin(_) => "format",
            Self::Key(k) => k,
        }
    }
}

/// How the body is made.
#[derive(Debug, Clone, PartialEq, Eq)]
enum BodySource {
    /// A template.
    Template(String),
    /// The data model as JSON.
    Json,
}

/// How the one-line form is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineSource {
    /// `full`'s own line template.
    Full,
    /// The subject.
    Subject,
    /// The JSON document.
    Json,
}

/// Everything a format is made of, before compiling: what [`Format::compile`] layers a
/// spec onto.
#[derive(Debug, Clone)]
struct Resolved {
    name: String,
    subject: String,
    subject_origin: Origin,
    body: BodySource,
    body_origin: Origin,
    line: LineSource,
    max_bytes: Option<usize>,
    timestamp_format: Option<String>,
    show_rule_id: bool,
}

impl Resolved {
    fn builtin(name: &str) -> Option<Self> {
        let (subject, body, line, max_bytes, name) = match name {
            "full" => (
                builtin::FULL_SUBJECT,
                BodySource::Template(builtin::FULL_BODY.to_owned()),
                LineSource::Full,
                None,
                "full",
            ),
            "short" => (
                builtin::SHORT,
                BodySource::Template(builtin::SHORT.to_owned()),
                LineSource::Subject,
                Some(SHORT_MAX_BYTES),
                "short",
            ),
            "json" => (
                builtin::FULL_SUBJECT,
                BodySource::Json,
                LineSource::Json,
                None,
                "json",
            ),
            _ => return None,
        };
        Some(Self {
            name: name.to_owned(),
            subject: subject.to_owned(),
            subject_origin: Origin::Builtin(name),
            body,
            body_origin: Origin::Builtin(name),
            line,
            max_bytes,
            timestamp_format: None,
            show_rule_id: false,
        })
    }
}

/// A compiled, validated format: how a transport renders subject and body.
///
/// Cheap to clone (one `Arc`). Make one with [`Format::compile`]; [`Format::full`] is
/// the default every [`Context`] starts with.
#[derive(Clone)]
pub struct Format(Arc<Inner>);

struct Inner {
    resolved: Resolved,
    env: Environment<'static>,
    timestamp: Option<TimestampFormat>,
    uses_journal: bool,
}

impl fmt::Debug for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.0.resolved;
        f.debug_struct("Format")
            .field("name", &r.name)
            .field("subject", &r.subject_origin)
            .field("body", &r.body_origin)
            .field("timestamp_format", &r.timestamp_format)
            .field("show_rule_id", &r.show_rule_id)
            .finish_non_exhaustive()
    }
}

static FULL: LazyLock<Format> = LazyLock::new(|| builtin_format("full"));
static SHORT: LazyLock<Format> = LazyLock::new(|| builtin_format("short"));
static JSON: LazyLock<Format> = LazyLock::new(|| builtin_format("json"));

fn builtin_format(name: &str) -> Format {
    let resolved = Resolved::builtin(name).expect("a built-in format name");
    // Not tried on the samples here: that builds a `Context`, whose default format is
    // this very static. This module's tests try the built-ins on every sample.
    Format::build(resolved, false).expect("the built-in formats compile")
}

impl Format {
    /// The built-in default, `full`.
    pub fn full() -> &'static Format {
        &FULL
    }

    /// A built-in format by name: `full`, `short` or `json`.
    pub fn builtin(name: &str) -> Option<&'static Format> {
        match name {
            "full" => Some(&FULL),
            "short" => Some(&SHORT),
            "json" => Some(&JSON),
            _ => None,
        }
    }

    /// Compiles `spec` on top of `base`: keys unset in `spec` inherit from `base`, and
    /// `format = "..."` replaces `base` with a built-in or a format of `named`. Reads
    /// `template_file`, compiles the templates and renders them on sample alerts.
    ///
    /// For a notifier: `Format::compile(&spec, &formats, Format::full())`; for a
    /// recipient's override: `Format::compile(&override, &formats, &notifier_format)`.
    ///
    /// # Errors
    /// A [`BuildError`] naming the key at fault: an unknown format name, an unreadable
    /// `template_file`, both `body` and `template_file`, a bad `timestamp_format`, a
    /// template that does not compile or fails on a sample (with minijinja's line).
    pub fn compile(
        spec: &FormatSpec,
        named: &Formats,
        base: &Format,
    ) -> Result<Format, BuildError> {
        let only_base = FormatSpec {
            format: spec.format.clone(),
            ..FormatSpec::default()
        };
        // Nothing of its own: the base as it is, already compiled and tried (a notifier
        // without format keys must not pay the sample renders at every handler start).
        if spec == &only_base {
            return match &spec.format {
                None => Ok(base.clone()),
                Some(name) => lookup(name, named).cloned(),
            };
        }
        let mut r = match &spec.format {
            None => base.0.resolved.clone(),
            Some(name) => lookup(name, named)?.0.resolved.clone(),
        };
        if spec != &only_base {
            r.name = "custom".to_owned();
        } else if let Some(name) = &spec.format {
            r.name.clone_from(name);
        }
        if let Some(s) = &spec.subject {
            r.subject = s.clone();
            r.subject_origin = Origin::Key("subject");
            r.line = LineSource::Subject;
        }
        match (&spec.body, &spec.template_file) {
            (Some(_), Some(_)) => {
                return Err(BuildError::key(
                    "template_file",
                    "set one of `body` and `template_file`, not both",
                ));
            }
            (Some(b), None) => {
                r.body = BodySource::Template(b.clone());
                r.body_origin = Origin::Key("body");
            }
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    BuildError::key(
                        "template_file",
                        format!("`template_file`: cannot read {}: {e}", path.display()),
                    )
                })?;
                r.body = BodySource::Template(text);
                r.body_origin = Origin::Key("template_file");
            }
            (None, None) => {}
        }
        if let Some(t) = &spec.timestamp_format {
            r.timestamp_format = Some(t.clone());
        }
        if let Some(b) = spec.show_rule_id {
            r.show_rule_id = b;
        }
        Format::build(r, true)
    }

    fn build(resolved: Resolved, try_samples: bool) -> Result<Format, BuildError> {
        let timestamp = match &resolved.timestamp_format {
            None => None,
            Some(t) => Some(TimestampFormat::parse(t).map_err(|e| {
                BuildError::key("timestamp_format", format!("`timestamp_format`: {e}"))
            })?),
        };
        let mut env = environment();
        let compile_error = |origin: &Origin, e: minijinja::Error| {
            BuildError::key(
                origin.key(),
                format!("`{}`: template error: {}", origin.key(), describe(&e)),
            )
        };
        env.add_template_owned("subject", resolved.subject.clone())
            .map_err(|e| compile_error(&resolved.subject_origin, e))?;
        if let BodySource::Template(b) = &resolved.body {
            env.add_template_owned("body", b.clone())
                .map_err(|e| compile_error(&resolved.body_origin, e))?;
        }
        if resolved.line == LineSource::Full {
            env.add_template_owned("line", builtin::FULL_LINE.to_owned())
                .map_err(|e| compile_error(&Origin::Builtin("full"), e))?;
        }
        let mut uses_journal = false;
        for name in ["subject", "body", "line"] {
            if let Ok(t) = env.get_template(name) {
                uses_journal |= t.undeclared_variables(false).contains("journal");
            }
        }
        let format = Format(Arc::new(Inner {
            resolved,
            env,
            timestamp,
            uses_journal,
        }));
        if try_samples {
            format.try_samples()?;
        }
        Ok(format)
    }

    /// Renders subject, body and line for every sample alert, so a template that cannot
    /// work fails when the configuration is loaded.
    fn try_samples(&self) -> Result<(), BuildError> {
        let r = &self.0.resolved;
        for sample in model::samples() {
            let ctx = sample.context(self);
            let (service, failures) = (sample.service.as_str(), sample.failures.as_slice());
            let what = format!("a sample {} alert{}", ctx.event, sample.note);
            self.subject(service, failures, &ctx)
                .map_err(|e| sample_error(&r.subject_origin, &what, &e))?;
            self.body(service, failures, &ctx)
                .map_err(|e| sample_error(&r.body_origin, &what, &e))?;
            if r.line == LineSource::Full {
                self.line(service, failures, &ctx)
                    .map_err(|e| sample_error(&Origin::Builtin("full"), &what, &e))?;
            }
        }
        Ok(())
    }

    /// The subject: one line, control characters replaced by spaces, at most 900 bytes
    /// (160 for `short`).
    ///
    /// # Errors
    /// [`NotifyError::Config`] when the template fails, which the samples tried at
    /// compile time make unlikely.
    pub fn subject(
        &self,
        service: &str,
        failures: &[Failure],
        ctx: &Context<'_>,
    ) -> Result<String, NotifyError> {
        self.subject_bounded(service, failures, ctx, SUBJECT_MAX_BYTES)
    }

    fn subject_bounded(
        &self,
        service: &str,
        failures: &[Failure],
        ctx: &Context<'_>,
        max: usize,
    ) -> Result<String, NotifyError> {
        let data = self.data(service, failures, ctx, None);
        let text = self.render("subject", &data)?;
        Ok(self.one_line_bounded(&text, max))
    }

    /// The body: any number of lines (`\n`), without CR, NUL or other control
    /// characters but tab.
    ///
    /// # Errors
    /// As for [`Format::subject`].
    pub fn body(
        &self,
        service: &str,
        failures: &[Failure],
        ctx: &Context<'_>,
    ) -> Result<String, NotifyError> {
        self.subject_and_body(service, failures, ctx)
            .map(|(_, body)| body)
    }

    /// [`Format::subject`] and [`Format::body`] together, building the data model once
    /// (a transport that needs both should call this).
    ///
    /// # Errors
    /// As for [`Format::subject`].
    pub fn subject_and_body(
        &self,
        service: &str,
        failures: &[Failure],
        ctx: &Context<'_>,
    ) -> Result<(String, String), NotifyError> {
        let mut data = self.data(service, failures, ctx, None);
        let subject = self.one_line_bounded(&self.render("subject", &data)?, SUBJECT_MAX_BYTES);
        data.set_subject(subject.clone());
        let body = match &self.0.resolved.body {
            BodySource::Json => one_line(&json(&data)),
            BodySource::Template(_) => {
                let text = clean_body(&self.render("body", &data)?);
                match (self.0.resolved.max_bytes, &self.0.resolved.body_origin) {
                    (Some(max), Origin::Builtin(_)) => cut(&one_line(&text), max),
                    _ => text,
                }
            }
        };
        Ok((subject, body))
    }

    /// The one-line form log-like transports write (console, file, syslog): `full`'s
    /// subject with the streak's details, the subject when it is set or the format is
    /// `short`, the JSON document for `json`. Never contains a control character; not
    /// cut (but for `short`).
    ///
    /// # Errors
    /// As for [`Format::subject`].
    pub fn line(
        &self,
        service: &str,
        failures: &[Failure],
        ctx: &Context<'_>,
    ) -> Result<String, NotifyError> {
        match self.0.resolved.line {
            // a line has no header's limit (but `short` keeps its own)
            LineSource::Subject => self.subject_bounded(service, failures, ctx, usize::MAX),
            LineSource::Json => self.body(service, failures, ctx).map(|b| one_line(&b)),
            LineSource::Full => {
                let subject = self.subject(service, failures, ctx)?;
                let data = self.data(service, failures, ctx, Some(subject));
                let text = self.render("line", &data)?;
                Ok(self.one_line_bounded(&text, usize::MAX))
            }
        }
    }

    /// `t` as the templates show times: in `timestamp_format` (system time zone), or
    /// RFC 3339 in UTC when none is set.
    pub fn time(&self, t: crate::alert::Timestamp) -> String {
        model::format_time(t, self.0.timestamp.as_ref())
    }

    /// The `timestamp_format` set for this format, if any.
    pub fn timestamp_format(&self) -> Option<&str> {
        self.0.resolved.timestamp_format.as_deref()
    }

    /// The parsed `timestamp_format`, for the `exec` notifier's `CRM_alert_timestamp`.
    pub(crate) fn timestamp(&self) -> Option<&TimestampFormat> {
        self.0.timestamp.as_ref()
    }

    /// `full`, `short`, `json`, the `[formats.NAME]` it is, or `custom`.
    pub fn name(&self) -> &str {
        &self.0.resolved.name
    }

    /// Whether the body is `full`'s, i.e. neither `json`, `short` nor a template of the
    /// user's. Transports with a document of their own (the webhook) send it then.
    pub fn is_default_body(&self) -> bool {
        self.0.resolved.body_origin == Origin::Builtin("full")
    }

    /// Whether the body is the `json` format's document.
    pub fn is_json_body(&self) -> bool {
        self.0.resolved.body == BodySource::Json
    }

    /// The key the body template came from (`body`, `template_file`), or `format` for
    /// a built-in one: for transports' own checks of a format.
    pub fn body_key(&self) -> &'static str {
        self.0.resolved.body_origin.key()
    }

    /// Whether a template mentions `journal`: only then is reading the journal worth it.
    pub fn uses_journal(&self) -> bool {
        self.0.uses_journal
    }

    /// Whether the built-in templates name the routing rule.
    pub fn shows_rule_id(&self) -> bool {
        self.0.resolved.show_rule_id
    }

    fn data(
        &self,
        service: &str,
        failures: &[Failure],
        ctx: &Context<'_>,
        subject: Option<String>,
    ) -> model::Model {
        model::Model::new(
            service,
            failures,
            ctx,
            self.0.timestamp.as_ref(),
            self.0.resolved.show_rule_id,
            subject,
        )
    }

    fn render(&self, name: &str, data: &model::Model) -> Result<String, NotifyError> {
        self.0
            .env
            .get_template(name)
            .and_then(|t| t.render(minijinja::Value::from(Serde(data))))
            .map_err(|e| {
                NotifyError::config("template", format!("{name} template: {}", describe(&e)))
            })
    }

    fn one_line_bounded(&self, text: &str, max: usize) -> String {
        let line = one_line(text);
        let line = line.trim();
        cut(line, self.0.resolved.max_bytes.unwrap_or(max).min(max))
    }
}

/// A built-in format, or one of `named`.
fn lookup<'a>(name: &str, named: &'a Formats) -> Result<&'a Format, BuildError> {
    if let Some(f) = Format::builtin(name) {
        return Ok(f);
    }
    if let Some(f) = named.get(name) {
        return Ok(f);
    }
    let mut known: Vec<&str> = BUILTIN.to_vec();
    known.extend(named.names());
    let hint = if name.contains('{') {
        // the file notifier's old `format` was a line template
        "; a line template now goes in `subject` (minijinja: \"{{ time }} {{ service }}\")"
    } else if name.eq_ignore_ascii_case("rfc5424") || name.eq_ignore_ascii_case("rfc3164") {
        "; the syslog message format is now set with `protocol`"
    } else {
        ""
    };
    Err(BuildError::key(
        "format",
        format!(
            "unknown format {name:?} (known: {}){hint}",
            known.join(", ")
        ),
    ))
}

fn sample_error(origin: &Origin, what: &str, e: &NotifyError) -> BuildError {
    let message = match e {
        NotifyError::Config { message, .. } => message.clone(),
        other => other.to_string(),
    };
    BuildError::key(
        origin.key(),
        format!("`{}`: fails on {what}: {message}", origin.key()),
    )
}

/// The named formats of the `[formats.NAME]` tables.
#[derive(Debug, Clone, Default)]
pub struct Formats {
    formats: BTreeMap<String, Format>,
}

impl Formats {
    /// Compiles every `[formats.NAME]`. A named format's `format` may name a built-in or
    /// another named format as its base.
    ///
    /// # Errors
    /// The name of the format at fault with its error: a name that shadows a built-in
    /// or is empty, an unknown base, a cycle (`a` → `b` → `a`), or any error of
    /// [`Format::compile`].
    pub fn new(specs: &BTreeMap<String, FormatSpec>) -> Result<Formats, (String, BuildError)> {
        let mut done = Formats::default();
        for name in specs.keys() {
            if BUILTIN.contains(&name.as_str()) {
                return Err((
                    name.clone(),
                    BuildError::new(format!(
                        "[formats.{name}]: {name:?} is a built-in format and cannot be redefined"
                    )),
                ));
            }
            if name.is_empty() || name.chars().any(|c| c.is_control() || c.is_whitespace()) {
                return Err((
                    name.clone(),
                    BuildError::new(format!("bad format name {name:?}")),
                ));
            }
        }
        for name in specs.keys() {
            let mut path = Vec::new();
            done.resolve(name, specs, &mut path)?;
        }
        Ok(done)
    }

    fn resolve(
        &mut self,
        name: &str,
        specs: &BTreeMap<String, FormatSpec>,
        path: &mut Vec<String>,
    ) -> Result<(), (String, BuildError)> {
        if self.formats.contains_key(name) {
            return Ok(());
        }
        if let Some(pos) = path.iter().position(|n| n == name) {
            let mut cycle: Vec<&str> = path[pos..].iter().map(String::as_str).collect();
            cycle.push(name);
            return Err((
                path[pos].clone(),
                BuildError::key(
                    "format",
                    format!(
                        "formats refer to each other in a cycle: {}",
                        cycle.join(" -> ")
                    ),
                ),
            ));
        }
        let Some(spec) = specs.get(name) else {
            return Ok(()); // reported by lookup() in compile, naming the referrer
        };
        path.push(name.to_owned());
        if let Some(base) = &spec.format
            && specs.contains_key(base)
        {
            self.resolve(base, specs, path)?;
        }
        path.pop();
        let mut format =
            Format::compile(spec, self, Format::full()).map_err(|e| (name.to_owned(), e))?;
        if let Some(inner) = Arc::get_mut(&mut format.0) {
            // freshly compiled, so not shared yet
            inner.resolved.name = name.to_owned();
        }
        self.formats.insert(name.to_owned(), format);
        Ok(())
    }

    /// The format named `name` (not the built-ins: see [`Format::builtin`]).
    pub fn get(&self, name: &str) -> Option<&Format> {
        self.formats.get(name)
    }

    /// The names of the named formats.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.formats.keys().map(String::as_str)
    }
}

/// The environment every format's templates live in.
fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    // A misspelt variable must fail when the samples are tried, not send an empty field.
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // Subjects and bodies are plain text, not HTML.
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.add_filter("tojson", strict_tojson);
    env.add_filter("cut", |s: String, n: usize| cut(&s, n));
    env.add_filter("pad", |s: String, n: usize| {
        let len = s.chars().count();
        format!("{s}{}", " ".repeat(n.saturating_sub(len)))
    });
    env
}

/// minijinja's `tojson`, except that an undefined value (a misspelt name) is an error
/// rather than `null`, so a typo fails when the template is tried at load time instead of
/// sending nulls. Registered as `tojson` in every environment of ours (the webhook's too).
///
/// # Errors
/// For an undefined value, and where minijinja's `tojson` fails.
pub fn strict_tojson(
    value: &minijinja::Value,
    indent: Option<minijinja::Value>,
    args: minijinja::value::Kwargs,
) -> Result<minijinja::Value, minijinja::Error> {
    if value.is_undefined() {
        return Err(minijinja::Error::new(
            ErrorKind::UndefinedError,
            "tojson of an undefined value (a misspelt name?)",
        ));
    }
    minijinja::filters::tojson(value, indent, args)
}

/// minijinja's message with the template line, on one line.
fn describe(e: &minijinja::Error) -> String {
    let mut s = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(c) = source {
        s.push_str(": ");
        s.push_str(&c.to_string());
        source = c.source();
    }
    one_line(&s)
}

/// The data as one compact JSON document.
fn json(data: &model::Model) -> String {
    // A struct of strings, numbers and options cannot fail to serialise.
    serde_json::to_string(data).unwrap_or_else(|e| format!("{{\"error\":{:?}}}", e.to_string()))
}

/// CRLF and CR become LF; NUL and other control characters but tab and LF become
/// spaces, as do U+2028/9.
fn clean_body(s: &str) -> String {
    let s = s.replace("\r\n", "\n").replace('\r', "\n");
    s.chars()
        .map(|c| match c {
            '\n' | '\t' => c,
            c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' => ' ',
            c => c,
        })
        .collect()
}

/// `s` cut to at most `max` bytes on a character boundary, ending in `…` when cut.
pub fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    const ELLIPSIS: &str = "…";
    let Some(room) = max.checked_sub(ELLIPSIS.len()) else {
        return String::new();
    };
    let mut end = room;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{ELLIPSIS}", s[..end].trim_end())
}

#[cfg(test)]
mod tests;
