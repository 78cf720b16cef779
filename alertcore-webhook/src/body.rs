//! What is sent: the versioned JSON document, the presets and user templates.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use alertcore::{
    Context, EventKind, Failure, FallbackOf, Format, Notification, Severity, Timestamp,
};
use minijinja::value::Serde;
use minijinja::{Environment, ErrorKind};
use serde::{Deserialize, Serialize};

use crate::error::WebhookError;

/// The version of the default JSON document. A change that could break a receiver
/// (a field removed, renamed or retyped) bumps it; new fields do not.
pub(crate) const DOCUMENT_VERSION: &str = "1";

/// The name templates are registered under (it only shows in error messages).
const TEMPLATE_NAME: &str = "body";

/// The steps (minijinja's fuel) one render of a template body may take (the presets take
/// a few hundred plus ~50 per failure).
const TEMPLATE_FUEL: u64 = 2_000_000;

/// A ready-made body for a common receiver, chosen with `preset = "..."`. Each is a
/// template shipped with the crate ([`Preset::template`]); copy one into `template`
/// to adapt it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Preset {
    /// A Slack incoming webhook (`{"text": ...}`), also accepted by Mattermost.
    Slack,
    /// ntfy's JSON publishing (title, message, priority, tags); `url` is the topic URL.
    Ntfy,
    /// Prometheus Alertmanager's `/api/v2/alerts`; `url` is the Alertmanager's base URL.
    Alertmanager,
}

impl Preset {
    /// The preset's name, as written in `preset = "..."`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Slack => "slack",
            Self::Ntfy => "ntfy",
            Self::Alertmanager => "alertmanager",
        }
    }

    /// The preset's template source (minijinja), rendered with the same variables as a
    /// user `template`.
    pub fn template(self) -> &'static str {
        match self {
            Self::Slack => include_str!("../templates/slack.json.j2"),
            Self::Ntfy => include_str!("../templates/ntfy.json.j2"),
            Self::Alertmanager => include_str!("../templates/alertmanager.json.j2"),
        }
    }
}

/// The variables a `template` is rendered with, chosen with `variables = "..."`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Variables {
    /// The core's data model (`alertcore::template`, the variables of every format's
    /// templates) plus this crate's own (`title`, `text`, `severities`, `labels`,
    /// `ends_after`, `topic`, `default_body`). The presets use these.
    Core,
    /// The JSON document's fields (`time` and `streak_start` in Unix milliseconds,
    /// `failures[].service_result`, `version` = `"1"`) plus this crate's own: the names
    /// templates had before the core model was shared. Still the default for `template`,
    /// with a warning; deprecated.
    Document,
}

/// The default body: a versioned JSON document (see the crate documentation).
#[derive(Debug, Serialize)]
struct Document<'a> {
    version: &'static str,
    event: EventKind,
    service: &'a str,
    host: &'a str,
    severity: Severity,
    notifier: &'a str,
    incident_id: String,
    sequence: u64,
    time: Timestamp,
    streak_id: u64,
    streak_start: Timestamp,
    streak_length: usize,
    title: String,
    text: String,
    failures: &'a [Failure],
    #[serde(skip_serializing_if = "Option::is_none")]
    fallback_for: Option<&'a FallbackOf>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    collapsed: bool,
}

impl<'a> Document<'a> {
    /// `title` and `text` are the format's subject and body.
    fn new(n: &'a Notification, ctx: &Context<'a>) -> Result<Self, WebhookError> {
        let (title, text) = ctx
            .format
            .subject_and_body(n, ctx)
            .map_err(WebhookError::Format)?;
        Ok(Self {
            version: DOCUMENT_VERSION,
            event: n.event,
            service: &n.service,
            host: &n.host,
            severity: n.severity(),
            notifier: ctx.notifier,
            incident_id: n.incident_id(),
            sequence: n.sequence,
            time: n.time,
            streak_id: n.streak_id,
            streak_start: n.streak_start,
            streak_length: n.failures.len(),
            title,
            text,
            failures: &n.failures,
            fallback_for: n.fallback_for.as_ref(),
            collapsed: n.collapsed,
        })
    }
}

/// What a template sees: the document's fields, plus a few that only templates need.
#[derive(Debug, Serialize)]
struct TemplateData<'a> {
    #[serde(flatten)]
    document: Document<'a>,
    /// The distinct severities of the streak's failures, oldest first.
    severities: Vec<Severity>,
    /// `labels` from the config.
    labels: &'a BTreeMap<String, String>,
    /// `ends_after` from the config, in milliseconds (0: not set).
    ends_after: u64,
    /// The last path segment of the configured url (ntfy's topic).
    topic: &'a str,
    /// Whether `text` is the default format's body (presets then may say it shorter).
    default_body: bool,
}

/// Template settings that are not part of an alert.
#[derive(Debug, Clone, Default)]
pub(crate) struct TemplateVars {
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) ends_after: Duration,
    pub(crate) topic: String,
}

/// How bodies are made.
#[derive(Clone)]
pub(crate) enum Body {
    /// The default JSON document; or, when the message format has a body of its own
    /// (neither `full`'s nor `json`'s), that body.
    Document,
    /// A compiled template (a preset's or the user's).
    Template {
        env: Arc<Environment<'static>>,
        vars: Arc<TemplateVars>,
        /// The variables it is rendered with.
        variables: Variables,
        /// Check that the result parses as JSON (the content type says it is JSON).
        json: bool,
        /// `preset = "..."` or `template`, for `Debug`.
        origin: String,
    },
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Document => f.write_str("Document(version 1)"),
            Self::Template { origin, .. } => write!(f, "Template({origin})"),
        }
    }
}

impl Body {
    /// Compiles `source`; errors are syntax errors, with line numbers.
    pub(crate) fn template(
        source: String,
        origin: String,
        vars: TemplateVars,
        variables: Variables,
        json: bool,
    ) -> Result<Self, minijinja::Error> {
        // The core's rules: a misspelt variable fails loudly when the template is tried
        // at build time (every documented variable is always defined, `none` where a
        // value is missing), nothing is HTML-escaped (JSON escaping is explicit, with
        // `tojson`), and the filters that make large strings are bounded. A tag too long
        // for minijinja's parser is refused before it sees it.
        alertcore::template::check_tags(&source)
            .map_err(|why| minijinja::Error::new(ErrorKind::SyntaxError, why))?;
        let mut env = alertcore::template::environment();
        env.add_filter("rfc3339", rfc3339_filter);
        env.add_filter("slack_escape", slack_escape);
        env.add_template_owned(TEMPLATE_NAME, source)?;
        Ok(Self::Template {
            env: Arc::new(env),
            vars: Arc::new(vars),
            variables,
            json,
            origin,
        })
    }

    /// The body for one alert.
    pub(crate) fn render(
        &self,
        n: &Notification,
        ctx: &Context<'_>,
        content_type: &str,
    ) -> Result<Vec<u8>, WebhookError> {
        match self {
            Self::Document if has_own_body(ctx.format) => {
                let text = ctx.format.body(n, ctx).map_err(WebhookError::Format)?;
                if is_json(content_type) {
                    serde_json::from_str::<serde::de::IgnoredAny>(&text).map_err(|source| {
                        WebhookError::NotJson {
                            content_type: content_type.to_owned(),
                            source,
                        }
                    })?;
                }
                Ok(text.into_bytes())
            }
            // A struct of strings, numbers and the core's own serialisable types
            // cannot fail to serialise; an error would still not panic.
            Self::Document => serde_json::to_vec(&Document::new(n, ctx)?).map_err(|source| {
                WebhookError::NotJson {
                    content_type: content_type.to_owned(),
                    source,
                }
            }),
            Self::Template {
                env,
                vars,
                variables,
                json,
                ..
            } => {
                let mut severities: Vec<Severity> = Vec::new();
                for f in &n.failures {
                    if !severities.contains(&f.severity) {
                        severities.push(f.severity);
                    }
                }
                if severities.is_empty() {
                    severities.push(n.severity());
                }
                let ends_after = u64::try_from(vars.ends_after.as_millis()).unwrap_or(u64::MAX);
                let default_body = ctx.format.is_default_body();
                let data = match variables {
                    Variables::Core => {
                        let (title, text, variables) = ctx
                            .format
                            .subject_body_and_variables(n, ctx)
                            .map_err(WebhookError::Format)?;
                        minijinja::context! {
                            title,
                            text,
                            severities => Serde(&severities),
                            labels => Serde(&vars.labels),
                            ends_after,
                            topic => &vars.topic,
                            default_body,
                            ..variables
                        }
                    }
                    Variables::Document => minijinja::Value::from(Serde(&TemplateData {
                        document: Document::new(n, ctx)?,
                        severities,
                        labels: &vars.labels,
                        ends_after,
                        topic: &vars.topic,
                        default_body,
                    })),
                };
                // a loop that does not end must not hold the handler, nor one that
                // writes without end fill its memory
                let text =
                    alertcore::template::render_bounded(env, TEMPLATE_NAME, data, TEMPLATE_FUEL)
                        .map_err(WebhookError::Render)?;
                if *json {
                    serde_json::from_str::<serde::de::IgnoredAny>(&text).map_err(|source| {
                        WebhookError::NotJson {
                            content_type: content_type.to_owned(),
                            source,
                        }
                    })?;
                }
                Ok(text.into_bytes())
            }
        }
    }
}

impl Body {
    /// The body for a group of alerts (`group_wait`): the default document becomes
    /// `{"version": "1", "event": "group", "count": N, "notifications": [...]}` with one
    /// document per alert; a template's (or a format's own) JSON bodies become one JSON
    /// array, each body an element, except that bodies that are arrays themselves (the
    /// `alertmanager` preset's list of alerts) are joined into one array; other bodies
    /// are joined by blank lines.
    pub(crate) fn render_group(
        &self,
        group: &[Notification],
        ctx: &Context<'_>,
        content_type: &str,
    ) -> Result<Vec<u8>, WebhookError> {
        let not_json = |source| WebhookError::NotJson {
            content_type: content_type.to_owned(),
            source,
        };
        if matches!(self, Self::Document) && !has_own_body(ctx.format) {
            let notifications = group
                .iter()
                .map(|n| Document::new(n, ctx))
                .collect::<Result<Vec<_>, _>>()?;
            return serde_json::to_vec(&serde_json::json!({
                "version": DOCUMENT_VERSION,
                "event": "group",
                "count": group.len(),
                "notifications": notifications,
            }))
            .map_err(not_json);
        }
        let bodies = group
            .iter()
            .map(|n| self.render(n, ctx, content_type))
            .collect::<Result<Vec<_>, _>>()?;
        if !is_json(content_type) {
            return Ok(bodies.join(&b"\n\n"[..]));
        }
        let mut list = Vec::with_capacity(bodies.len());
        for b in &bodies {
            match serde_json::from_slice(b).map_err(not_json)? {
                serde_json::Value::Array(items) => list.extend(items),
                other => list.push(other),
            }
        }
        serde_json::to_vec(&list).map_err(not_json)
    }
}

/// Whether the format's body is the user's (or `short`'s): sent as the HTTP body when no
/// preset or `template` says otherwise. `full`'s and `json`'s keep the JSON document.
pub(crate) fn has_own_body(format: &Format) -> bool {
    !format.is_default_body() && !format.is_json_body()
}

/// Whether a content type says the body is JSON.
pub(crate) fn is_json(content_type: &str) -> bool {
    content_type.to_ascii_lowercase().contains("json")
}

/// `{{ time|rfc3339 }}`: Unix milliseconds as `2025-11-21T04:40:00.000Z`.
fn rfc3339_filter(ms: i64) -> Result<String, minijinja::Error> {
    rfc3339(ms).ok_or_else(|| {
        minijinja::Error::new(
            ErrorKind::InvalidOperation,
            format!("rfc3339: {ms} ms is outside the years 1970 to 9999"),
        )
    })
}

/// RFC 3339 in UTC with milliseconds, for times from 1970 to 9999.
pub(crate) fn rfc3339(ms: i64) -> Option<String> {
    // humantime panics before 1970 and fails after 9999; check first.
    const MAX_MS: i64 = 253_402_300_799_999;
    if !(0..=MAX_MS).contains(&ms) {
        return None;
    }
    let t = Timestamp::from_millis(ms).to_system_time();
    let mut s = String::new();
    write!(s, "{}", humantime::format_rfc3339_millis(t)).ok()?;
    Some(s)
}

/// `{{ text|slack_escape }}`: Slack's message format needs `&`, `<` and `>` escaped
/// (everything else is literal, even inside code blocks).
fn slack_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// Sample alerts for checking a template when the notifier is built: a failure streak
/// of a warning escalated to critical, and its recovery; `hostile` uses names full of
/// characters that break JSON written without `tojson`. Counters and times are zero:
/// the caller sets them.
pub(crate) fn samples(hostile: bool) -> Vec<Notification> {
    let (service, host) = if hostile {
        ("we\"ird\\ <svc> & \n{x}.service", "h\"o\\st\t")
    } else {
        ("backup.service", "web1")
    };
    let start = Timestamp::from_millis(1_763_700_000_000);
    let report = |severity| {
        alertcore::FailureReport::new("exit-code")
            .exit_code("exited")
            .exit_status("1")
            .invocation_id("0123456789abcdef0123456789abcdef")
            .severity(severity)
            .message(if hostile {
                "a \"quoted\"\nmessage"
            } else {
                "disk full"
            })
    };
    let failures = vec![
        Failure::from_report(&report(Severity::Warning), host, start),
        Failure::from_report(
            &report(Severity::Critical),
            host,
            start.saturating_add(Duration::from_secs(60)),
        ),
    ];
    [
        EventKind::Failure,
        EventKind::Escalation,
        EventKind::Recovery,
    ]
    .into_iter()
    .map(|kind| Notification::new(service, kind, host).failures(failures.clone()))
    .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The first sample alert (the service, host and history of `samples(hostile)`) as
    /// a `kind` event, with the counters and times these tests expect.
    fn alert(kind: EventKind, hostile: bool) -> Notification {
        let start = Timestamp::from_millis(1_763_700_000_000);
        let sample = samples(hostile).remove(0);
        Notification::new(sample.service, kind, sample.host)
            .failures(sample.failures)
            .sequence(9)
            .streak(4, start)
            .time(start.saturating_add(Duration::from_secs(120)))
    }

    /// [`alert`] on another host.
    fn alert_on(kind: EventKind, hostile: bool, host: &str) -> Notification {
        let mut n = alert(kind, hostile);
        n.host = host.to_owned();
        n
    }

    fn ctx() -> Context<'static> {
        Context::new("hook")
    }

    fn render(body: &Body, kind: EventKind, hostile: bool) -> serde_json::Value {
        let n = alert(kind, hostile);
        let bytes = body.render(&n, &ctx(), "application/json").unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    fn preset(p: Preset, vars: TemplateVars) -> Body {
        Body::template(
            p.template().to_owned(),
            p.name().to_owned(),
            vars,
            Variables::Core,
            true,
        )
        .unwrap()
    }

    #[test]
    fn document_has_every_documented_field() {
        let v = render(&Body::Document, EventKind::Escalation, false);
        assert_eq!(v["version"], "1");
        assert_eq!(v["event"], "escalation");
        assert_eq!(v["service"], "backup.service");
        assert_eq!(v["host"], "web1");
        assert_eq!(v["severity"], "critical");
        assert_eq!(v["notifier"], "hook");
        assert_eq!(v["incident_id"], "1763700000000.4.backup_2eservice.web1");
        assert_eq!(v["sequence"], 9);
        assert_eq!(v["time"], 1_763_700_120_000_i64);
        assert_eq!(v["streak_id"], 4);
        assert_eq!(v["streak_start"], 1_763_700_000_000_i64);
        assert_eq!(v["streak_length"], 2);
        assert_eq!(
            v["title"],
            "[web1] ESCALATED: backup.service (exit-code, status=1)"
        );
        assert!(v["text"].as_str().unwrap().contains("Failure history"));
        let f = &v["failures"][0];
        assert_eq!(f["service_result"], "exit-code");
        assert_eq!(f["exit_code"], "exited");
        assert_eq!(f["exit_status"], "1");
        assert_eq!(f["invocation_id"], "0123456789abcdef0123456789abcdef");
        assert_eq!(f["timestamp"], 1_763_700_000_000_i64);
        assert_eq!(f["severity"], "warning");
        assert_eq!(f["host"], "web1");
        assert_eq!(f["message"], "disk full");
        assert_eq!(f["notifiers"], serde_json::json!([]));
        // the README's field table lists exactly these, and the fields that come "only"
        // in some cases besides
        let readme = include_str!("../README.md");
        let table = &readme[readme.find("| field | type | meaning |").unwrap()..];
        let documented: BTreeSet<&str> = table
            .lines()
            .skip(2)
            .take_while(|l| l.starts_with("| `"))
            .filter(|l| {
                !l.split(" | ")
                    .nth(2)
                    .unwrap_or_default()
                    .starts_with("only")
            })
            .filter_map(|l| l.split('`').nth(1))
            .collect();
        let keys: BTreeSet<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, documented);
        assert_eq!(keys.len(), 15, "{keys:?}");
    }

    #[test]
    fn a_fallback_or_collapsed_alert_says_so() {
        let lost = FallbackOf::new("mail", "550 no such user");
        let n = alert(EventKind::Recovery, false)
            .fallback_for(lost)
            .collapsed(true);
        let bytes = Body::Document
            .render(&n, &ctx(), "application/json")
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["fallback_for"]["notifier"], "mail");
        assert_eq!(v["fallback_for"]["error"], "550 no such user");
        assert_eq!(v["collapsed"], true);
        assert!(
            v["title"]
                .as_str()
                .unwrap()
                .starts_with("[web1] FAILED AND RECOVERED:"),
            "{v}"
        );
    }

    #[test]
    fn every_preset_renders_json_even_for_hostile_names() {
        for p in [Preset::Slack, Preset::Ntfy, Preset::Alertmanager] {
            let body = preset(
                p,
                TemplateVars {
                    topic: "alerts".to_owned(),
                    ..TemplateVars::default()
                },
            );
            for hostile in [false, true] {
                for kind in [EventKind::Failure, EventKind::Reminder, EventKind::Recovery] {
                    render(&body, kind, hostile);
                }
            }
        }
    }

    #[test]
    fn slack_preset() {
        let v = render(
            &preset(Preset::Slack, TemplateVars::default()),
            EventKind::Failure,
            true,
        );
        let text = v["text"].as_str().unwrap();
        assert!(text.starts_with("*[h\"o\\st ] FAILED: "), "{text}");
        assert!(text.contains("&lt;svc&gt; &amp; "), "{text}");
        assert!(!text.contains('<'), "{text}");
        assert!(text.contains("```\nService:"), "{text}");
    }

    #[test]
    fn ntfy_preset() {
        let body = preset(
            Preset::Ntfy,
            TemplateVars {
                topic: "ops-alerts".to_owned(),
                ..TemplateVars::default()
            },
        );
        let v = render(&body, EventKind::Failure, false);
        assert_eq!(v["topic"], "ops-alerts");
        assert_eq!(
            v["title"],
            "[web1] FAILED: backup.service (exit-code, status=1)"
        );
        assert_eq!(v["priority"], 4);
        assert_eq!(v["tags"], serde_json::json!(["rotating_light", "failure"]));
        let message = v["message"].as_str().unwrap();
        assert!(
            message.starts_with("backup.service on web1: exit-code, status=1"),
            "{message}"
        );
        let v = render(&body, EventKind::Escalation, false);
        assert_eq!(v["priority"], 5);
        let v = render(&body, EventKind::Recovery, false);
        assert_eq!(v["priority"], 3);
        assert_eq!(
            v["tags"],
            serde_json::json!(["white_check_mark", "recovery"])
        );
    }

    #[test]
    fn alertmanager_preset_fires_current_severity_and_resolves_the_rest() {
        let labels = BTreeMap::from([
            ("team".to_owned(), "ops".to_owned()),
            ("alertname".to_owned(), "BackupFailed".to_owned()),
        ]);
        let body = preset(
            Preset::Alertmanager,
            TemplateVars {
                labels,
                ends_after: Duration::from_secs(3600),
                topic: String::new(),
            },
        );
        let v = render(&body, EventKind::Escalation, false);
        let alerts = v.as_array().unwrap();
        assert_eq!(alerts.len(), 2, "{v:#}");
        // the warning alert of the same streak is resolved, the critical one fires
        let warning = &alerts[0];
        assert_eq!(warning["labels"]["severity"], "warning");
        assert_eq!(warning["endsAt"], "2025-11-21T04:42:00.000Z");
        let critical = &alerts[1];
        assert_eq!(
            critical["labels"],
            serde_json::json!({
                "alertname": "BackupFailed", "team": "ops", "service": "backup.service",
                "host": "web1", "severity": "critical"
            })
        );
        assert_eq!(critical["startsAt"], "2025-11-21T04:40:00.000Z");
        assert_eq!(critical["endsAt"], "2025-11-21T05:42:00.000Z");
        let a = &critical["annotations"];
        assert_eq!(
            a["summary"],
            "[web1] ESCALATED: backup.service (exit-code, status=1)"
        );
        assert_eq!(a["incident_id"], "1763700000000.4.backup_2eservice.web1");
        assert_eq!(a["event"], "escalation");
        assert_eq!(a["failures"], "2");
        assert!(a["description"].as_str().unwrap().contains("Service:"));
        for (_, value) in a.as_object().unwrap() {
            assert!(value.is_string(), "annotations must be strings: {a:#}");
        }

        let v = render(&body, EventKind::Recovery, false);
        for alert in v.as_array().unwrap() {
            assert_eq!(alert["endsAt"], "2025-11-21T04:42:00.000Z", "{v:#}");
        } // a run's output is not an alert
        let v = render(&body, EventKind::Output, false);
        assert_eq!(v, serde_json::json!([]));
    }

    #[test]
    fn alertmanager_without_ends_after_leaves_firing_alerts_open() {
        let body = preset(Preset::Alertmanager, TemplateVars::default());
        let v = render(&body, EventKind::Failure, false);
        let critical = &v[1];
        assert_eq!(critical["labels"]["alertname"], "ServiceFailed");
        assert!(critical.get("endsAt").is_none(), "{v:#}");
    }

    /// Why a text template fails to render for a sample failure.
    fn render_error(source: &str) -> String {
        let body = Body::template(
            source.to_owned(),
            "template".to_owned(),
            TemplateVars::default(),
            Variables::Core,
            false,
        )
        .unwrap();
        let n = alert_on(EventKind::Failure, false, "h");
        let e = body.render(&n, &ctx(), "text/plain").unwrap_err();
        alertcore::chain(&e)
    }

    #[test]
    fn a_template_that_never_ends_is_stopped() {
        let why = render_error(
            "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
        );
        assert!(why.contains("fuel"), "{why}");
    }

    /// A few thousand operators in one tag overflowed minijinja's parser stack, which
    /// aborted the process as the config was loaded; a template that writes without end
    /// fills memory: both are errors now, as in the core's formats.
    #[test]
    fn a_template_too_deep_or_too_large_is_an_error() {
        let deep = format!("{{{{ {}1 }}}}", "- ".repeat(5000));
        let e = Body::template(
            deep,
            "template".to_owned(),
            TemplateVars::default(),
            Variables::Core,
            false,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("more than 1000 bytes"), "{e}");
        let why = render_error("{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}");
        assert!(why.contains("MiB of output"), "{why}");
    }

    #[test]
    fn template_errors() {
        let e = Body::template(
            "{{ service ".to_owned(),
            "t".to_owned(),
            TemplateVars::default(),
            Variables::Core,
            false,
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::SyntaxError);
        let body = Body::template(
            "{{ servce }}".to_owned(),
            "t".to_owned(),
            TemplateVars::default(),
            Variables::Core,
            false,
        )
        .unwrap();
        let kind = samples(false).remove(0).event;
        let e = body
            .render(&alert(kind, false), &ctx(), "text/plain")
            .unwrap_err();
        assert!(matches!(e, WebhookError::Render(_)), "{e:?}");
        let body = Body::template(
            "{\"service\": \"{{ service }}\"}".to_owned(),
            "t".to_owned(),
            TemplateVars::default(),
            Variables::Core,
            true,
        )
        .unwrap();
        let kind = samples(true).remove(0).event;
        let e = body
            .render(&alert_on(kind, true, "h"), &ctx(), "application/json")
            .unwrap_err();
        assert!(matches!(e, WebhookError::NotJson { .. }), "{e:?}");
    }

    fn format(spec: alertcore::FormatSpec) -> Format {
        Format::compile(&spec, &alertcore::Formats::default(), Format::full()).unwrap()
    }

    #[test]
    fn the_format_fills_title_and_text_or_is_the_body() {
        let n = alert(EventKind::Failure, false);
        let custom = format(alertcore::FormatSpec {
            subject: Some("S {{ service }}".to_owned()),
            body: Some("{\"b\": {{ service | tojson }}}".to_owned()),
            ..Default::default()
        });
        let subject_only = format(alertcore::FormatSpec {
            subject: Some("S {{ service }}".to_owned()),
            ..Default::default()
        });
        let json = Format::builtin("json").unwrap();
        let render = |body: &Body, f: &Format| {
            let c = ctx().format(f);
            let bytes = body.render(&n, &c, "application/json").unwrap();
            serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()
        };
        // a body of its own is the HTTP body
        assert_eq!(
            render(&Body::Document, &custom),
            serde_json::json!({"b": "backup.service"})
        );
        // otherwise the document, with the format's subject as its title
        let v = render(&Body::Document, &subject_only);
        assert_eq!(v["version"], "1");
        assert_eq!(v["title"], "S backup.service");
        assert!(v["text"].as_str().unwrap().starts_with("Service:"));
        // `json` keeps the document too, its text the data model
        let v = render(&Body::Document, json);
        assert_eq!(v["version"], "1");
        let text: serde_json::Value = serde_json::from_str(v["text"].as_str().unwrap()).unwrap();
        assert_eq!(text["service"], "backup.service");
        // presets put the format's subject and body in their text fields
        let slack = preset(Preset::Slack, TemplateVars::default());
        let v = render(&slack, &custom);
        assert!(
            v["text"]
                .as_str()
                .unwrap()
                .starts_with("*S backup.service*\n```\n{\"b\""),
            "{v}"
        );
        let ntfy = preset(Preset::Ntfy, TemplateVars::default());
        let v = render(&ntfy, &custom);
        assert_eq!(v["title"], "S backup.service");
        assert_eq!(v["message"], "{\"b\": \"backup.service\"}");
        // a text body with a JSON content type fails
        let text = format(alertcore::FormatSpec {
            body: Some("{{ service }} failed".to_owned()),
            ..Default::default()
        });
        let c = ctx().format(&text);
        let e = Body::Document
            .render(&n, &c, "application/json")
            .unwrap_err();
        assert!(matches!(e, WebhookError::NotJson { .. }), "{e:?}");
        let bytes = Body::Document.render(&n, &c, "text/plain").unwrap();
        assert_eq!(bytes, b"backup.service failed");
    }

    #[test]
    fn rfc3339_range() {
        assert_eq!(rfc3339(0).as_deref(), Some("1970-01-01T00:00:00.000Z"));
        assert_eq!(
            rfc3339(1_763_700_000_123).as_deref(),
            Some("2025-11-21T04:40:00.123Z")
        );
        assert_eq!(rfc3339(-1), None);
        assert_eq!(rfc3339(i64::MAX), None);
        assert!(rfc3339(253_402_300_799_999).is_some());
    }
}
