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
//! | `event` | `failure`, `reminder`, `escalation`, `recovery`, `flapping`, `acknowledged`, `report`, `output` (a successful run's output, `on_success = "output"`: no failures, `summary` is `success`, `invocation_id` is the run's) or `digest` (the journal's daily report: no failures, `summary` counts its parts) |
//! | `event_word` | `FAILED`, `REMINDER`, `ESCALATED`, `RECOVERED`, `FLAPPING`, `ACKNOWLEDGED`, `STILL FAILING`, `OUTPUT` or `DIGEST` (see also `collapsed`, `stopped_flapping`) |
//! | `severity` | `warning` or `critical` (of the latest failure) |
//! | `result`, `exit_code`, `exit_status`, `invocation_id`, `message` | of the latest failure of the streak (on recovery: of the streak that ended); `none` when unknown |
//! | `summary` | `exit-code, status=1`: the result and exit status; in a restart loop then `, restarting (3 times in 2m)` |
//! | `restarting` | `true` when the latest failed run is restarted by systemd itself (`Restart=`) |
//! | `restarts` | how many of the streak's failed runs systemd restarted |
//! | `trigger` | what started the latest failed run: `timer`, `boot` or `other`; `none` when not known |
//! | `failures` | the streak's failure history, oldest first: each with `number` (1, 2, ...), `time`, `time_ms`, `severity`, `result`, `exit_code`, `exit_status`, `invocation_id`, `message`, `summary`, `host`, `restarting`, `trigger` |
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
//! | `fallback_for` | set when this notifier gets the alert as another one's `fallback`: `fallback_for.notifier` (the one that gave it up) and `fallback_for.error`; `none` otherwise |
//! | `collapsed` | `true` for a recovery that replaced its failure alert, still waiting to be sent (the notifier's `collapse`), or that tells of a failure a hold kept back (`held_recovery`); `event_word` is then `FAILED AND RECOVERED` |
//! | `stopped_flapping` | `true` for the failure alert or recovery that says which state a flapping service settled in (`[flapping]`); `event_word` is then `STOPPED FLAPPING, FAILING` or `STOPPED FLAPPING, RECOVERED` |
//! | `ack` | for an `acknowledged` notice: `ack.by`, `ack.time`, `ack.comment` (`none` if not given); `none` otherwise |
//! | `digest` | for a `digest`: `digest.title`, `since`, `until`, `summary` (`2 important, 14 interesting, 310 other`), `text` (the whole digest as text), `parts` (each `title`, `entries`, `lines` with `count`, `first`, `last`, `message`, and `cut_lines`, `cut_entries`); `none` otherwise |
//! | `subject` | the rendered subject (in the body only) |
//! | `version` | alertcore's version |
//!
//! **Limits.** One render may take 100,000 steps (about one per tag, expression and
//! piece of output) plus 1,000 per failure of the streak and per journal line (the
//! built-in `full` body takes about 50 per failure), and write 4 MiB; `pad`, `indent`,
//! `tojson`'s indent and `format`'s widths and precisions are at most 1,000, `slice` and
//! `batch` counts at most 100,000 (as `range()`), and one `{{ ... }}` or `{% ... %}` tag
//! at most 1,000 bytes besides its strings. Past a limit the template fails, which the
//! samples make a config error. These stop runaway loops, typos and parser stack
//! overflows; they do not make a template written to do harm harmless: one step may cost
//! 100 MB of work (minijinja lets `"x" * n` make that much), `~` and `join` join such
//! strings without a limit, and `{% set x %}...{% endset %}` collects output outside the
//! 4 MiB cap. Templates are configuration, and trusted as such.
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
pub(crate) mod timestamp;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock, OnceLock};

use minijinja::value::{Kwargs, Rest, Serde, StringInput, ValueOrKwargs};
use minijinja::{AutoEscape, Environment, ErrorKind, State, UndefinedBehavior, Value};
use serde::{Deserialize, Serialize};

use crate::error::BuildError;
use crate::error::NotifyError;
use crate::message::one_line;
use crate::notification::Notification;
use crate::table::Table;
use crate::template::timestamp::TimestampFormat;

pub use self::model::JournalExcerpt;

/// The most bytes the `short` format renders.
pub(crate) const SHORT_MAX_BYTES: usize = 160;

/// A subject longer than this is cut: mail header lines must stay under 998 bytes, and
/// nobody reads that far.
const SUBJECT_MAX_BYTES: usize = 900;

/// The names of the built-in formats.
pub(crate) const BUILTIN: [&str; 3] = ["full", "short", "json"];

/// The steps (minijinja's fuel: about one per tag, expression and piece of output) one
/// render may take, plus [`FUEL_PER_ITEM`] per failure of the streak and per line of
/// the journal excerpt, so that a loop that never ends (`range()` in `range()`) is an
/// error rather than a hung handler, while the built-in `full` body, which takes about
/// 110 steps and 50 per failure, renders any streak.
const FUEL: u64 = 100_000;
const FUEL_PER_ITEM: u64 = 1_000;

/// The most bytes one render may write, so that a loop cannot write without end, nor a
/// template make every render of a subject or body handle a string of many megabytes
/// (`"x" * 50000000` once made checking a format at config load take 40 s). The
/// built-in `full`, rendered in Rust, is not bounded by it.
pub(crate) const MAX_RENDER_BYTES: usize = 4 << 20;

/// The largest width `pad`, `indent`, `tojson`'s indent and `format`'s width and
/// precision take: each makes one string of that many characters per use.
const MAX_WIDTH: usize = 1_000;

/// The largest count `slice` and `batch` take (`range()` makes no more items either).
const MAX_COUNT: usize = 100_000;

/// The most bytes of one `{{ ... }}` or `{% ... %}` tag, not counting its string
/// literals: see [`check_tags`].
pub(crate) const MAX_TAG_BYTES: usize = 1_000;

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
    pub fn split(table: &Table) -> Result<(FormatSpec, Table), BuildError> {
        table.split(Self::KEYS)
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

/// How one notifier renders a [`Notification`]: what is per notifier, not per event.
/// Every [`Notifier`](crate::Notifier) gets one with each notification.
///
/// `#[non_exhaustive]`: fields get added over time without breaking implementors. Build
/// one outside this crate (in a notifier's tests) with [`Context::new`] and the setters.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Context<'a> {
    /// The notifier's configured name (`[notifiers.NAME]`).
    pub notifier: &'a str,
    /// How subject and body are rendered: the notifier's format, or the routing rule's
    /// override for this recipient ([`Format::full`] unless set).
    pub format: &'a Format,
    /// The journal excerpt of the failed run, when the transport read one (see
    /// [`crate::template`]).
    pub journal: Option<&'a JournalExcerpt>,
}

impl<'a> Context<'a> {
    /// The context of notifier `name`, with the built-in `full` format.
    pub fn new(name: &'a str) -> Self {
        Self {
            notifier: name,
            format: Format::full(),
            journal: None,
        }
    }

    /// Sets the format subject and body are rendered with.
    #[must_use]
    pub fn format(mut self, format: &'a Format) -> Self {
        self.format = format;
        self
    }

    /// Sets the journal excerpt of the failed run.
    #[must_use]
    pub fn journal(mut self, excerpt: impl Into<Option<&'a JournalExcerpt>>) -> Self {
        self.journal = excerpt.into();
        self
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
    /// Built when the format is compiled if it has a configured template, else when a
    /// template is first rendered: `full` is rendered natively, and a handler process
    /// that only renders it need not build an environment at all.
    env: OnceLock<Environment<'static>>,
    /// The built-in templates, loaded into `env` when first rendered.
    lazy: Arc<[(&'static str, String)]>,
    timestamp: Option<TimestampFormat>,
    uses_journal: bool,
    native: Native,
}

/// Which of the templates are `full`'s, rendered by the code in `model` that writes
/// them out rather than by minijinja.
#[derive(Debug, Clone, Copy)]
struct Native {
    subject: bool,
    body: bool,
    line: bool,
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
        let compile_error = |origin: &Origin, e: minijinja::Error| {
            BuildError::key(
                origin.key(),
                format!("`{}`: template error: {}", origin.key(), describe(&e)),
            )
        };
        let long_tag = |origin: &Origin, why: String| {
            BuildError::key(
                origin.key(),
                format!("`{}`: template error: {why}", origin.key()),
            )
        };
        let mut sources = vec![(
            "subject",
            resolved.subject.clone(),
            &resolved.subject_origin,
        )];
        if let BodySource::Template(b) = &resolved.body {
            sources.push(("body", b.clone(), &resolved.body_origin));
        }
        if resolved.line == LineSource::Full {
            let full = &Origin::Builtin("full");
            sources.push(("line", builtin::FULL_LINE.to_owned(), full));
        }
        // A configured template is compiled (and checked) now. A built-in one, known to
        // compile, only when first rendered: a handler process renders one or two of
        // them, and compiling `full`'s body costs as much as the rest of the start-up.
        let mut uses_journal = false;
        let (builtins, configured): (Vec<_>, Vec<_>) = sources
            .into_iter()
            .partition(|(_, _, origin)| matches!(origin, Origin::Builtin(_)));
        let lazy: Arc<[(&'static str, String)]> = builtins
            .into_iter()
            .map(|(name, source, _)| {
                // the built-ins name `journal` only as the variable (tested)
                uses_journal |= source.contains("journal");
                (name, source)
            })
            .collect();
        let env = if configured.is_empty() {
            OnceLock::new()
        } else {
            let mut env = environment_loading(&lazy);
            for (name, source, origin) in configured {
                check_tags(&source).map_err(|why| long_tag(origin, why))?;
                env.add_template_owned(name, source)
                    .map_err(|e| compile_error(origin, e))?;
                let t = env
                    .get_template(name)
                    .map_err(|e| compile_error(origin, e))?;
                uses_journal |= t.undeclared_variables(false).contains("journal");
            }
            OnceLock::from(env)
        };
        let native = Native {
            subject: resolved.subject == builtin::FULL_SUBJECT,
            body: matches!(&resolved.body, BodySource::Template(b) if b == builtin::FULL_BODY),
            line: resolved.line == LineSource::Full,
        };
        let format = Format(Arc::new(Inner {
            resolved,
            env,
            lazy,
            timestamp,
            uses_journal,
            native,
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
            let n = &sample.notification;
            let what = format!("a sample {} alert{}", n.event, sample.note);
            self.subject(n, &ctx)
                .map_err(|e| sample_error(&r.subject_origin, &what, &e))?;
            self.body(n, &ctx)
                .map_err(|e| sample_error(&r.body_origin, &what, &e))?;
            if r.line == LineSource::Full {
                self.line(n, &ctx)
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
    pub fn subject(&self, n: &Notification, ctx: &Context<'_>) -> Result<String, NotifyError> {
        self.subject_bounded(n, ctx, SUBJECT_MAX_BYTES)
    }

    fn subject_bounded(
        &self,
        n: &Notification,
        ctx: &Context<'_>,
        max: usize,
    ) -> Result<String, NotifyError> {
        let data = self.data(n, ctx, None);
        let text = self.render("subject", &data, fuel(n, ctx))?;
        Ok(self.one_line_bounded(&text, max))
    }

    /// The body: any number of lines (`\n`), without CR, NUL or other control
    /// characters but tab.
    ///
    /// # Errors
    /// As for [`Format::subject`].
    pub fn body(&self, n: &Notification, ctx: &Context<'_>) -> Result<String, NotifyError> {
        self.subject_and_body(n, ctx).map(|(_, body)| body)
    }

    /// [`Format::subject`] and [`Format::body`] together, building the data model once
    /// (a transport that needs both should call this).
    ///
    /// # Errors
    /// As for [`Format::subject`].
    pub fn subject_and_body(
        &self,
        n: &Notification,
        ctx: &Context<'_>,
    ) -> Result<(String, String), NotifyError> {
        self.rendered(n, ctx)
            .map(|(subject, body, _)| (subject, body))
    }

    /// [`Format::subject_and_body`], and the data model they were rendered from (the
    /// variables in the table above, `subject` included) as a template value: for a
    /// transport that renders templates of its own with the same variables (the
    /// webhook's `template` and presets), adding its own with
    /// `minijinja::context! { name => value, ..variables }`.
    ///
    /// # Errors
    /// As for [`Format::subject`].
    pub fn subject_body_and_variables(
        &self,
        n: &Notification,
        ctx: &Context<'_>,
    ) -> Result<(String, String, Value), NotifyError> {
        self.rendered(n, ctx)
            .map(|(subject, body, data)| (subject, body, Value::from(Serde(data))))
    }

    fn rendered(
        &self,
        n: &Notification,
        ctx: &Context<'_>,
    ) -> Result<(String, String, model::Model), NotifyError> {
        let mut data = self.data(n, ctx, None);
        let fuel = fuel(n, ctx);
        let subject =
            self.one_line_bounded(&self.render("subject", &data, fuel)?, SUBJECT_MAX_BYTES);
        data.set_subject(subject.clone());
        let body = match &self.0.resolved.body {
            BodySource::Json => one_line(&json(&data)),
            BodySource::Template(_) => {
                let text = clean_body(&self.render("body", &data, fuel)?);
                match (self.0.resolved.max_bytes, &self.0.resolved.body_origin) {
                    (Some(max), Origin::Builtin(_)) => cut(&one_line(&text), max),
                    _ => text,
                }
            }
        };
        Ok((subject, body, data))
    }

    /// The one-line form log-like transports write (console, file, syslog): `full`'s
    /// subject with the streak's details, the subject when it is set or the format is
    /// `short`, the JSON document for `json`. Never contains a control character; not
    /// cut (but for `short`).
    ///
    /// # Errors
    /// As for [`Format::subject`].
    pub fn line(&self, n: &Notification, ctx: &Context<'_>) -> Result<String, NotifyError> {
        match self.0.resolved.line {
            // a line has no header's limit (but `short` keeps its own)
            LineSource::Subject => self.subject_bounded(n, ctx, usize::MAX),
            LineSource::Json => self.body(n, ctx).map(|b| one_line(&b)),
            LineSource::Full => {
                let subject = self.subject(n, ctx)?;
                let data = self.data(n, ctx, Some(subject));
                let text = self.render("line", &data, fuel(n, ctx))?;
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

    fn data(&self, n: &Notification, ctx: &Context<'_>, subject: Option<String>) -> model::Model {
        model::Model::new(
            n,
            ctx,
            self.0.timestamp.as_ref(),
            self.0.resolved.show_rule_id,
            subject,
        )
    }

    /// Renders template `name`: `full`'s in Rust, others with [`Format::render_template`].
    fn render(&self, name: &str, data: &model::Model, fuel: u64) -> Result<String, NotifyError> {
        let native = self.0.native;
        match name {
            "subject" if native.subject => Ok(data.full_subject()),
            "body" if native.body => Ok(data.full_body()),
            "line" if native.line => Ok(data.full_line()),
            _ => self.render_template(name, data, fuel),
        }
    }

    fn env(&self) -> &Environment<'static> {
        self.0.env.get_or_init(|| environment_loading(&self.0.lazy))
    }

    /// Renders template `name` with at most `fuel` steps and [`MAX_RENDER_BYTES`].
    fn render_template(
        &self,
        name: &str,
        data: &model::Model,
        fuel: u64,
    ) -> Result<String, NotifyError> {
        render_bounded(self.env(), name, Value::from(Serde(data)), fuel).map_err(|e| {
            let why = match e.kind() {
                ErrorKind::OutOfFuel => format!(
                    "takes more than {fuel} steps (a loop that does not end?): {}",
                    describe(&e)
                ),
                _ => describe(&e),
            };
            NotifyError::config("template", format!("{name} template: {why}"))
        })
    }

    fn one_line_bounded(&self, text: &str, max: usize) -> String {
        let line = one_line(text);
        let line = line.trim();
        cut(line, self.0.resolved.max_bytes.unwrap_or(max).min(max))
    }
}

/// Refuses a tag longer than 1,000 bytes (string literals aside). minijinja's
/// parser, code generator and syntax tree recurse once per operator of an expression,
/// without a limit for chains like `- - - 1` or `a ~ b ~ c`: a few thousand of them
/// overflow a 2 MiB thread stack, which aborts the process. No tag a person writes is
/// that long; the error names the line.
///
/// Transports that compile templates of their own call it before minijinja sees the
/// source.
///
/// # Errors
/// Which line has the long tag, and what to do about it.
pub fn check_tags(source: &str) -> Result<(), String> {
    let bytes = source.as_bytes();
    let mut i = 0;
    while i + 1 < bytes.len() {
        let close: &[u8] = match (bytes[i], bytes[i + 1]) {
            (b'{', b'{') => b"}}",
            (b'{', b'%') => b"%}",
            (b'{', b'#') => {
                // a comment: to its end
                i = find(bytes, i + 2, b"#}").map_or(bytes.len(), |end| end + 2);
                continue;
            }
            _ => {
                i += 1;
                continue;
            }
        };
        let start = i;
        let (mut counted, mut depth, mut quote) = (0_usize, 0_usize, None);
        i += 2;
        while i < bytes.len() {
            let b = bytes[i];
            match quote {
                Some(q) => {
                    if b == b'\\' {
                        i += 1;
                    } else if b == q {
                        quote = None;
                    }
                }
                None if depth == 0 && bytes[i..].starts_with(close) => break,
                None => {
                    counted += 1;
                    match b {
                        b'"' | b'\'' => quote = Some(b),
                        b'(' | b'[' | b'{' => depth += 1,
                        b')' | b']' | b'}' => depth = depth.saturating_sub(1),
                        _ => {}
                    }
                }
            }
            i += 1;
        }
        if counted > MAX_TAG_BYTES {
            let line = source[..start].matches('\n').count() + 1;
            return Err(format!(
                "the tag on line {line} has more than {MAX_TAG_BYTES} bytes besides its \
                 strings, which minijinja cannot parse safely: split it with `{{% set %}}`"
            ));
        }
        let tag = source.get(start + 2..i).unwrap_or("");
        i += close.len();
        if tag.trim_matches(|c: char| c == '-' || c == '+' || c.is_whitespace()) == "raw" {
            // `{% raw %}`: text up to `{% endraw %}`
            let mut from = i;
            i = bytes.len();
            while let Some(at) = find(bytes, from, b"{%") {
                let end = find(bytes, at, b"%}").unwrap_or(bytes.len());
                let inner = source.get(at + 2..end).unwrap_or("");
                if inner.trim_matches(|c: char| c == '-' || c == '+' || c.is_whitespace())
                    == "endraw"
                {
                    i = at;
                    break;
                }
                from = at + 2;
            }
        }
    }
    Ok(())
}

/// Where `needle` first occurs in `haystack` at or after `from`.
fn find(haystack: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// Renders template `name` of `env` with `ctx`, taking at most `fuel` steps and writing
/// at most 4 MiB; for transports with templates of their own, as for the
/// formats.
///
/// # Errors
/// minijinja's error, [`ErrorKind::OutOfFuel`] past the steps.
pub fn render_bounded(
    env: &Environment<'static>,
    name: &str,
    ctx: Value,
    fuel: u64,
) -> Result<String, minijinja::Error> {
    // Load (compile) a template the loader gives in `env` itself, so that it is compiled
    // once: what the clone below loads would stay in the clone.
    env.get_template(name)?;
    // The fuel is per environment: a clone is a few reference counts.
    let mut env = env.clone();
    env.set_fuel(Some(fuel));
    let mut out = Bounded(Vec::new());
    env.get_template(name)?.render_captured_to(ctx, &mut out)?;
    // minijinja writes whole `str`s, and `Bounded` refuses whole writes
    Ok(String::from_utf8_lossy(&out.0).into_owned())
}

/// The steps a render for this alert may take: [`FUEL`] and [`FUEL_PER_ITEM`].
fn fuel(n: &Notification, ctx: &Context<'_>) -> u64 {
    let journal = ctx.journal.map_or(0, |j| j.text.lines().count());
    let items = u64::try_from(n.failures.len().saturating_add(journal)).unwrap_or(u64::MAX);
    FUEL.saturating_add(FUEL_PER_ITEM.saturating_mul(items))
}

/// The output of a render: refuses a write that would make it longer than
/// [`MAX_RENDER_BYTES`], which fails the render.
struct Bounded(Vec<u8>);

impl std::io::Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.0.len().saturating_add(buf.len()) > MAX_RENDER_BYTES {
            return Err(std::io::Error::other(format!(
                "more than {} MiB of output",
                MAX_RENDER_BYTES >> 20
            )));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
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

/// [`environment`], loading the built-in templates of `lazy` when first asked for.
fn environment_loading(lazy: &Arc<[(&'static str, String)]>) -> Environment<'static> {
    let mut env = environment();
    if !lazy.is_empty() {
        let lazy = Arc::clone(lazy);
        env.set_loader(move |name| {
            Ok(lazy
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, source)| source.clone()))
        });
    }
    env
}

/// The environment every format's templates live in: a misspelt variable is an error,
/// nothing is HTML-escaped, `tojson` refuses what is not JSON, and the filters that
/// make something as large as a number says (`pad`, `indent`, `format`, `slice`,
/// `batch`) are bounded. Transports with templates of their own start from it, and
/// render with [`render_bounded`] after [`check_tags`].
pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    // A misspelt variable must fail when the samples are tried, not send an empty field.
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // Subjects and bodies are plain text, not HTML.
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.add_filter("tojson", strict_tojson);
    env.add_filter("cut", |s: String, n: usize| cut(&s, n));
    env.add_filter("pad", |s: String, n: usize| {
        check_width("pad", n)?;
        let len = s.chars().count();
        Ok::<_, minijinja::Error>(format!("{s}{}", " ".repeat(n.saturating_sub(len))))
    });
    // minijinja's filters that make something as large as a number says, bounded
    env.add_filter("indent", indent);
    env.add_filter("format", format_filter);
    env.add_filter(
        "slice",
        |state: &State<'_, '_>, v: Value, n: usize, fill: Option<Value>| {
            check_count("slice", n)?;
            minijinja::filters::slice(state, v, n, fill)
        },
    );
    env.add_filter(
        "batch",
        |state: &State<'_, '_>, v: Value, n: usize, fill: Option<Value>| {
            check_count("batch", n)?;
            minijinja::filters::batch(state, v, n, fill)
        },
    );
    env
}

fn check_width(filter: &str, n: usize) -> Result<(), minijinja::Error> {
    at_most(filter, "width", n, MAX_WIDTH)
}

fn check_count(filter: &str, n: usize) -> Result<(), minijinja::Error> {
    at_most(filter, "count", n, MAX_COUNT)
}

fn at_most(filter: &str, what: &str, n: usize, max: usize) -> Result<(), minijinja::Error> {
    if n > max {
        return Err(minijinja::Error::new(
            ErrorKind::InvalidOperation,
            format!("{filter}: a {what} of {n} is more than {max}"),
        ));
    }
    Ok(())
}

/// minijinja's `indent`, with the width at most [`MAX_WIDTH`].
fn indent(
    value: StringInput<'_>,
    width: Option<usize>,
    first: Option<bool>,
    blank: Option<bool>,
    kwargs: Kwargs,
) -> Result<Value, minijinja::Error> {
    let w = match width {
        Some(w) => Some(w),
        None => kwargs.get::<Option<usize>>("width")?,
    };
    check_width("indent", w.unwrap_or(0))?;
    minijinja::filters::indent(value, width, first, blank, kwargs)
}

/// minijinja's `format` (printf style), with every width and precision at most
/// [`MAX_WIDTH`].
fn format_filter(
    state: &mut State<'_, '_>,
    format: &Value,
    args: Rest<ValueOrKwargs>,
) -> Result<Value, minijinja::Error> {
    if let Some(s) = format.as_str() {
        for n in printf_numbers(s) {
            check_width("format", n)?;
        }
    }
    minijinja::filters::format(state, format, args)
}

/// The widths and precisions of a printf-style format: `%` [`(key)`] flags* [width]
/// [`.` precision] ...; `%%` is a literal `%`. A number too large for `usize` is
/// `usize::MAX`.
fn printf_numbers(format: &str) -> Vec<usize> {
    fn number(s: &str) -> (usize, &str) {
        let rest = s.trim_start_matches(|c: char| c.is_ascii_digit());
        let digits = &s[..s.len() - rest.len()];
        (
            digits
                .parse()
                .unwrap_or(if digits.is_empty() { 0 } else { usize::MAX }),
            rest,
        )
    }
    let mut out = Vec::new();
    let mut rest = format;
    while let Some(at) = rest.find('%') {
        rest = &rest[at + 1..];
        if let Some(after) = rest.strip_prefix('%') {
            rest = after;
            continue;
        }
        if rest.starts_with('(') {
            rest = rest.find(')').map_or("", |end| &rest[end + 1..]);
        }
        let (width, after) = number(rest.trim_start_matches(['#', '0', '-', ' ', '+']));
        out.push(width);
        rest = after;
        if let Some(after) = rest.strip_prefix('.') {
            let (precision, after) = number(after);
            out.push(precision);
            rest = after;
        }
    }
    out
}

/// minijinja's `tojson`, except that an undefined value (a misspelt name) is an error
/// rather than `null`, so a typo fails when the template is tried at load time instead of
/// sending nulls. Registered as `tojson` in every environment of ours (the webhook's too).
///
/// # Errors
/// For an undefined value, and where minijinja's `tojson` fails.
pub(crate) fn strict_tojson(
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
    let width = match &indent {
        Some(i) => Some(i.clone()),
        None => args.get::<Option<minijinja::Value>>("indent")?,
    };
    if let Some(w) = width.and_then(|w| w.as_usize()) {
        check_width("tojson", w)?;
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
