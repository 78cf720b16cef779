//! `[notifiers.NAME] type = "webhook"`: the keys and their validation.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use alertcore::duration;
use alertcore::outbox::FIRST_BACKOFF;
use alertcore::transport::SecretSource;
use alertcore::{BuildError, Context, Format, Table, Timestamp};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use url::Url;

use crate::body::{self, Body, Preset, TemplateVars, Variables};
use crate::client::{ClientSettings, LazyClient, read_ca_file};
use crate::error::WebhookError;
use crate::notifier::WebhookNotifier;
use crate::secret::Secret;

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_ENDS_AFTER: Duration = Duration::from_secs(24 * 3600);
/// `X-Alertcore-Signature`, as header names are stored (lowercase).
const DEFAULT_SIGNATURE_HEADER: &str = "x-alertcore-signature";
const DEFAULT_CONTENT_TYPE: &str = "application/json";
/// Beyond this `endsAt` would leave the years RFC 3339 timestamps can carry here.
const MAX_ENDS_AFTER: Duration = Duration::from_secs(10 * 366 * 24 * 3600);
/// Alertmanager's push API, relative to its base URL.
const ALERTMANAGER_PATH: &str = "/api/v2/alerts";

/// The configuration of a [`WebhookNotifier`]: the keys of a `type = "webhook"` table.
///
/// Read it from the table with [`WebhookConfig::from_table`], or start from
/// [`WebhookNotifier::builder`] and set keys with the methods of the same names. Every
/// key is documented, with examples, in the crate documentation.
///
/// Tokens and signing keys are never part of it: only where to read them (`token_env`,
/// `token_file`, `token_credential`, `hmac_secret_env`, `hmac_secret_file`,
/// `hmac_secret_credential`); they are read at each delivery.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    url: Option<String>,
    url_env: Option<String>,
    url_file: Option<PathBuf>,
    url_credential: Option<String>,
    preset: Option<Preset>,
    template: Option<String>,
    variables: Option<Variables>,
    content_type: Option<String>,
    headers: BTreeMap<String, String>,
    token_env: Option<String>,
    token_file: Option<PathBuf>,
    token_credential: Option<String>,
    hmac_secret_env: Option<String>,
    hmac_secret_file: Option<PathBuf>,
    hmac_secret_credential: Option<String>,
    signature_header: Option<String>,
    #[serde(deserialize_with = "duration::deserialize")]
    timeout: Duration,
    #[serde(deserialize_with = "duration::deserialize")]
    connect_timeout: Duration,
    // The keys of the retry loop a delivery no longer has: still read (so configurations
    // that have them load, and a malformed value is still an error), never used.
    retries: Option<u32>,
    #[serde(deserialize_with = "duration::option::deserialize")]
    backoff: Option<Duration>,
    #[serde(deserialize_with = "duration::option::deserialize")]
    max_backoff: Option<Duration>,
    #[serde(deserialize_with = "duration::option::deserialize")]
    max_retry_after: Option<Duration>,
    ca_file: Option<PathBuf>,
    tls_insecure_skip_verify_dangerous: bool,
    allow_plaintext_dangerous: bool,
    labels: BTreeMap<String, String>,
    #[serde(deserialize_with = "duration::option::deserialize")]
    ends_after: Option<Duration>,
}

impl Default for WebhookConfig {
    /// No URL yet; the JSON document; `timeout = "10s"`, `connect_timeout = "5s"`.
    fn default() -> Self {
        Self {
            url: None,
            url_env: None,
            url_file: None,
            url_credential: None,
            preset: None,
            template: None,
            variables: None,
            content_type: None,
            headers: BTreeMap::new(),
            token_env: None,
            token_file: None,
            token_credential: None,
            hmac_secret_env: None,
            hmac_secret_file: None,
            hmac_secret_credential: None,
            signature_header: None,
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            retries: None,
            backoff: None,
            max_backoff: None,
            max_retry_after: None,
            ca_file: None,
            tls_insecure_skip_verify_dangerous: false,
            allow_plaintext_dangerous: false,
            labels: BTreeMap::new(),
            ends_after: None,
        }
    }
}

impl fmt::Debug for WebhookConfig {
    /// The url shows as scheme, host and port only (its path is often the secret), and
    /// header values are left out (they may be API keys).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &self.url.as_deref().map(endpoint_of_str))
            .field("url_env", &self.url_env)
            .field("url_file", &self.url_file)
            .field("url_credential", &self.url_credential)
            .field("preset", &self.preset)
            .field("template", &self.template.as_ref().map(|_| "..."))
            .field("content_type", &self.content_type)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("token_env", &self.token_env)
            .field("token_file", &self.token_file)
            .field("token_credential", &self.token_credential)
            .field("hmac_secret_env", &self.hmac_secret_env)
            .field("hmac_secret_file", &self.hmac_secret_file)
            .field("hmac_secret_credential", &self.hmac_secret_credential)
            .field("signature_header", &self.signature_header)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("retries", &self.retries)
            .field("backoff", &self.backoff)
            .field("max_backoff", &self.max_backoff)
            .field("max_retry_after", &self.max_retry_after)
            .field("ca_file", &self.ca_file)
            .field(
                "tls_insecure_skip_verify_dangerous",
                &self.tls_insecure_skip_verify_dangerous,
            )
            .field("allow_plaintext_dangerous", &self.allow_plaintext_dangerous)
            .field("labels", &self.labels)
            .field("ends_after", &self.ends_after)
            .finish_non_exhaustive()
    }
}

impl WebhookConfig {
    /// Reads a `[notifiers.NAME]` table (its `type` key is ignored).
    ///
    /// # Errors
    /// A [`BuildError`] naming the key for unknown keys and values of the wrong type.
    pub fn from_table(table: &Table) -> Result<Self, BuildError> {
        table.deserialize()
    }

    /// `url`: where to send, `http://` or `https://`.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// `url_env`: the environment variable holding the URL, for URLs that are
    /// themselves the secret (a Slack incoming webhook). Read when the notifier is built.
    pub fn url_env(mut self, var: impl Into<String>) -> Self {
        self.url_env = Some(var.into());
        self
    }

    /// `url_file`: the file holding the URL (one trailing newline is ignored). Read when
    /// the notifier is built.
    pub fn url_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.url_file = Some(path.into());
        self
    }

    /// `url_credential`: the systemd credential holding the URL
    /// (`$CREDENTIALS_DIRECTORY/NAME`, from `LoadCredential=NAME:/path` in the unit). Read
    /// when the notifier is built, so outside such a unit the build fails.
    pub fn url_credential(mut self, name: impl Into<String>) -> Self {
        self.url_credential = Some(name.into());
        self
    }

    /// `preset`: a ready-made body for Slack, ntfy or Alertmanager.
    pub fn preset(mut self, preset: Preset) -> Self {
        self.preset = Some(preset);
        self
    }

    /// `template`: a minijinja template for the HTTP body, with the variables
    /// [`WebhookConfig::variables`] chooses. For a body from the common message-format
    /// keys (`body`, `template_file`), see the crate documentation.
    pub fn template(mut self, source: impl Into<String>) -> Self {
        self.template = Some(source.into());
        self
    }

    /// `variables`: what a `template` is rendered with, the core's data model plus this
    /// crate's own variables ([`Variables::Core`]), or the JSON document's fields
    /// ([`Variables::Document`], the default while it is deprecated, with a warning).
    pub fn variables(mut self, variables: Variables) -> Self {
        self.variables = Some(variables);
        self
    }

    /// `content_type`: the `Content-Type` header (default `application/json`). When it
    /// names JSON, a rendered template must parse as JSON.
    pub fn content_type(mut self, content_type: impl Into<String>) -> Self {
        self.content_type = Some(content_type.into());
        self
    }

    /// `headers`: adds a header sent with every request.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }

    /// `token_env`: the environment variable holding a bearer token
    /// (`Authorization: Bearer ...`).
    pub fn token_env(mut self, var: impl Into<String>) -> Self {
        self.token_env = Some(var.into());
        self
    }

    /// `token_file`: the file holding a bearer token.
    pub fn token_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.token_file = Some(path.into());
        self
    }

    /// `token_credential`: the systemd credential holding a bearer token
    /// (`$CREDENTIALS_DIRECTORY/NAME`).
    pub fn token_credential(mut self, name: impl Into<String>) -> Self {
        self.token_credential = Some(name.into());
        self
    }

    /// `hmac_secret_env`: the environment variable holding the key that signs bodies.
    pub fn hmac_secret_env(mut self, var: impl Into<String>) -> Self {
        self.hmac_secret_env = Some(var.into());
        self
    }

    /// `hmac_secret_file`: the file holding the key that signs bodies.
    pub fn hmac_secret_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.hmac_secret_file = Some(path.into());
        self
    }

    /// `hmac_secret_credential`: the systemd credential holding the key that signs
    /// bodies (`$CREDENTIALS_DIRECTORY/NAME`).
    pub fn hmac_secret_credential(mut self, name: impl Into<String>) -> Self {
        self.hmac_secret_credential = Some(name.into());
        self
    }

    /// `signature_header`: the header carrying `sha256=<hex>` (default
    /// `X-Alertcore-Signature`).
    pub fn signature_header(mut self, name: impl Into<String>) -> Self {
        self.signature_header = Some(name.into());
        self
    }

    /// `timeout`: the limit for one request, connecting included (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// `connect_timeout`: the limit for opening the connection (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// `retries`: no longer used. Each delivery is one request; the outbox retries a
    /// failed one (first after 30 s, then doubling). Setting it only logs a warning when
    /// the notifier is built.
    #[deprecated(
        note = "no effect: each delivery is one request, and the outbox retries a \
                failed one (first after 30 s, then doubling)"
    )]
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = Some(retries);
        self
    }

    /// `backoff`: no longer used; see [`WebhookConfig::retries`].
    #[deprecated(
        note = "no effect: the outbox's backoff applies (first retry after 30 s, \
                then doubling, jittered)"
    )]
    pub fn backoff(mut self, backoff: Duration) -> Self {
        self.backoff = Some(backoff);
        self
    }

    /// `max_backoff`: no longer used; see [`WebhookConfig::retries`].
    #[deprecated(
        note = "no effect: the outbox's backoff applies (up to an hour between \
                attempts)"
    )]
    pub fn max_backoff(mut self, max: Duration) -> Self {
        self.max_backoff = Some(max);
        self
    }

    /// `max_retry_after`: no longer used. A server's `Retry-After` of any length goes to
    /// the outbox, which waits at least that long (up to 6 h) before the next attempt.
    #[deprecated(
        note = "no effect: a Retry-After goes to the outbox, which waits at least \
                that long, up to 6 h"
    )]
    pub fn max_retry_after(mut self, max: Duration) -> Self {
        self.max_retry_after = Some(max);
        self
    }

    /// `ca_file`: a PEM file of CA certificates to trust besides the system's.
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// `tls_insecure_skip_verify_dangerous`: accept any server certificate, so anyone
    /// on the path can read and change the alerts (and tokens). For tests only.
    pub fn tls_insecure_skip_verify_dangerous(mut self, skip: bool) -> Self {
        self.tls_insecure_skip_verify_dangerous = skip;
        self
    }

    /// `allow_plaintext_dangerous`: allow a bearer token over `http://` to a host that
    /// is not loopback, readable by anyone on the path.
    pub fn allow_plaintext_dangerous(mut self, allow: bool) -> Self {
        self.allow_plaintext_dangerous = allow;
        self
    }

    /// `labels`: adds an Alertmanager label (preset `alertmanager`, or templates).
    pub fn label(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(name.into(), value.into());
        self
    }

    /// `ends_after`: how long Alertmanager keeps a firing alert without news from us
    /// (default 24 h; zero leaves `endsAt` out, so Alertmanager's `resolve_timeout`
    /// applies).
    pub fn ends_after(mut self, d: Duration) -> Self {
        self.ends_after = Some(d);
        self
    }

    /// Validates the configuration, compiles and tries the template, and builds the
    /// notifier. Nothing is sent and no HTTP client is made yet.
    ///
    /// # Errors
    /// A [`BuildError`] naming the key at fault: a missing or malformed URL, a template
    /// that does not compile or fails on a sample alert, conflicting keys, a bad header,
    /// an unreadable `ca_file`.
    pub fn build(self) -> Result<WebhookNotifier, BuildError> {
        let (url_key, raw_url) = self.raw_url()?;
        let mut url = parse_url(&raw_url).map_err(|e| BuildError::key(url_key, e))?;
        let mut vars = TemplateVars {
            labels: self.labels.clone(),
            ends_after: self.ends_after.unwrap_or(DEFAULT_ENDS_AFTER),
            topic: String::new(),
        };
        match self.preset {
            Some(Preset::Alertmanager) => alertmanager_url(&mut url),
            Some(Preset::Ntfy) => {
                vars.topic = ntfy_topic(&mut url).map_err(|e| BuildError::key(url_key, e))?;
            }
            Some(Preset::Slack) | None => {}
        }
        let https = url.scheme() == "https";
        let token = Secret::from_keys(
            ("token_env", self.token_env.as_ref()),
            ("token_file", self.token_file.as_ref()),
            ("token_credential", self.token_credential.as_ref()),
        )?;
        let hmac_secret = Secret::from_keys(
            ("hmac_secret_env", self.hmac_secret_env.as_ref()),
            ("hmac_secret_file", self.hmac_secret_file.as_ref()),
            (
                "hmac_secret_credential",
                self.hmac_secret_credential.as_ref(),
            ),
        )?;
        if let Some(secret) = &token
            && !https
            && !is_loopback(&url)
            && !self.allow_plaintext_dangerous
        {
            return Err(BuildError::key(
                secret.key(),
                format!(
                    "refusing to send a bearer token over plain http:// to {}, which is not \
                     a loopback address: use https://, or set allow_plaintext_dangerous = true",
                    url.host_str().unwrap_or_default()
                ),
            ));
        }
        let signature_header = match &self.signature_header {
            Some(name) if hmac_secret.is_none() => {
                return Err(BuildError::key(
                    "signature_header",
                    format!(
                        "`signature_header` = {name:?} needs `hmac_secret_env`, `hmac_secret_file` \
                         or `hmac_secret_credential`"
                    ),
                ));
            }
            Some(name) => HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                BuildError::key(
                    "signature_header",
                    format!("{name:?} is not a valid header name"),
                )
            })?,
            None => HeaderName::from_static(DEFAULT_SIGNATURE_HEADER),
        };
        let content_type_str = self
            .content_type
            .clone()
            .unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_owned());
        let content_type = HeaderValue::from_str(&content_type_str).map_err(|_| {
            BuildError::key(
                "content_type",
                format!("{content_type_str:?} is not a valid header value"),
            )
        })?;
        let headers = self.headers(token.is_some(), hmac_secret.is_some(), &signature_header)?;
        self.check_numbers()?;
        let extra_roots = self.tls(https)?;
        let body = self.body(vars, &content_type_str)?;
        let client = LazyClient::new(ClientSettings {
            https,
            extra_roots,
            insecure: self.tls_insecure_skip_verify_dangerous,
            connect_timeout: self.connect_timeout,
            timeout: self.timeout,
        });
        let endpoint = endpoint_of(&url);
        self.warn_retired_keys(&endpoint);
        if self.template.is_some() && self.variables.is_none() {
            tracing::warn!(
                %endpoint,
                "webhook: `template` is rendered with the JSON document's field names, which \
                 are deprecated: set variables = \"core\" and use the core's (`time_ms` \
                 and `streak_start_ms` for the Unix milliseconds, `failures[].result`; see \
                 the webhook documentation), or variables = \"document\" to keep these"
            );
        }
        Ok(WebhookNotifier {
            endpoint,
            url,
            preset: self.preset,
            body,
            content_type,
            content_type_str,
            headers,
            token,
            hmac_secret,
            signature_header,
            timeout: self.timeout,
            client,
        })
    }

    /// One warning for the keys of the retry loop deliveries no longer have, when any is
    /// set: they are accepted and ignored.
    fn warn_retired_keys(&self, endpoint: &str) {
        let set: Vec<String> = [
            ("retries", self.retries.is_some()),
            ("backoff", self.backoff.is_some()),
            ("max_backoff", self.max_backoff.is_some()),
            ("max_retry_after", self.max_retry_after.is_some()),
        ]
        .into_iter()
        .filter(|(_, set)| *set)
        .map(|(key, _)| format!("`{key}`"))
        .collect();
        if set.is_empty() {
            return;
        }
        let (keys, verb) = match set.len() {
            1 => (set.concat(), "is"),
            _ => (set.join(", "), "are"),
        };
        tracing::warn!(
            %endpoint,
            "webhook: {keys} {verb} no longer used and can be removed: each delivery is one \
             request, and the outbox retries a failed one (first after {}, then doubling, \
             no sooner than the server's Retry-After)",
            duration::format(FIRST_BACKOFF)
        );
    }

    /// The URL and the key it came from. A URL from `url_env`, `url_file` or
    /// `url_credential` is read now: the notifier keeps the parsed URL.
    fn raw_url(&self) -> Result<(&'static str, String), BuildError> {
        let source = SecretSource::choose(
            ("url_env", self.url_env.as_deref()),
            ("url_file", self.url_file.as_deref()),
            ("url_credential", self.url_credential.as_deref()),
        )?;
        match (&self.url, source) {
            (Some(_), Some(source)) => Err(BuildError::key(
                source.key(),
                format!("set one of `url` and `{}`, not both", source.key()),
            )),
            (Some(url), None) => Ok(("url", url.clone())),
            (None, Some(source)) => Ok((source.key(), source.read()?.trim().to_owned())),
            (None, None) => Err(BuildError::key(
                "url",
                "missing `url` (e.g. \"https://hooks.example.org/alertcore\"), or `url_env` / \
                 `url_file` / `url_credential`",
            )),
        }
    }

    fn headers(
        &self,
        has_token: bool,
        has_hmac: bool,
        signature_header: &HeaderName,
    ) -> Result<HeaderMap, BuildError> {
        let mut map = HeaderMap::new();
        for (name, value) in &self.headers {
            let bad = |why: &str| BuildError::key("headers", format!("header {name:?}: {why}"));
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| bad("not a valid header name"))?;
            match header.as_str() {
                "content-type" => return Err(bad("set it with `content_type`")),
                "content-length" | "host" | "transfer-encoding" | "connection" => {
                    return Err(bad("set by the HTTP client, not configurable"));
                }
                "authorization" if has_token => {
                    return Err(bad(
                        "conflicts with `token_env` / `token_file` / `token_credential`",
                    ));
                }
                _ if has_hmac && header == signature_header => {
                    return Err(bad("is the signature header"));
                }
                _ => {}
            }
            let mut value = HeaderValue::from_str(value)
                .map_err(|_| bad("the value has characters a header cannot carry"))?;
            // Keeps it out of reqwest's and hyper's debug output.
            value.set_sensitive(true);
            map.insert(header, value);
        }
        Ok(map)
    }

    fn check_numbers(&self) -> Result<(), BuildError> {
        for (key, d) in [
            ("timeout", self.timeout),
            ("connect_timeout", self.connect_timeout),
        ] {
            if d.is_zero() {
                return Err(BuildError::key(
                    key,
                    format!("`{key}` must be more than 0s"),
                ));
            }
        }
        if self.ends_after.is_some_and(|d| d > MAX_ENDS_AFTER) {
            return Err(BuildError::key(
                "ends_after",
                "`ends_after` must not be more than 10 years",
            ));
        }
        Ok(())
    }

    fn tls(
        &self,
        https: bool,
    ) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, BuildError> {
        if !https {
            for (key, set) in [
                ("ca_file", self.ca_file.is_some()),
                (
                    "tls_insecure_skip_verify_dangerous",
                    self.tls_insecure_skip_verify_dangerous,
                ),
            ] {
                if set {
                    return Err(BuildError::key(
                        key,
                        format!("`{key}` has no effect on an http:// URL"),
                    ));
                }
            }
            return Ok(Vec::new());
        }
        match &self.ca_file {
            Some(_) if self.tls_insecure_skip_verify_dangerous => Err(BuildError::key(
                "ca_file",
                "`ca_file` has no effect with tls_insecure_skip_verify_dangerous = true",
            )),
            Some(path) => read_ca_file(path).map_err(|e| BuildError::key("ca_file", e)),
            None => Ok(Vec::new()),
        }
    }

    /// The body: the JSON document (or the format's own body, decided per alert), or a
    /// compiled and tried template.
    fn body(&self, vars: TemplateVars, content_type: &str) -> Result<Body, BuildError> {
        let (key, origin, source) = match (self.preset, &self.template) {
            (None, None) => ("", String::new(), String::new()),
            (Some(p), None) => (
                "preset",
                format!("preset {}", p.name()),
                p.template().to_owned(),
            ),
            (None, Some(t)) => ("template", "template".to_owned(), t.clone()),
            (Some(_), Some(_)) => {
                return Err(BuildError::key(
                    "template",
                    "set `preset` or `template`, not both (a preset is a template: copy it \
                     from the documentation to change it)",
                ));
            }
        };
        // labels and ends_after feed an Alertmanager document: that preset, or a
        // template of one's own
        let alertmanager = self.preset == Some(Preset::Alertmanager);
        if !(alertmanager || self.template.is_some()) {
            let why = match self.preset {
                Some(p) => format!("does not apply to preset = \"{}\"", p.name()),
                None => "only applies to preset = \"alertmanager\" or a template".to_owned(),
            };
            for (k, set) in [
                ("labels", !self.labels.is_empty()),
                ("ends_after", self.ends_after.is_some()),
            ] {
                if set {
                    return Err(BuildError::key(k, format!("`{k}` {why}")));
                }
            }
        }
        // the presets are written on the core's variables; a template chooses
        let variables = match (self.template.is_some(), self.variables) {
            (true, v) => v.unwrap_or(Variables::Document),
            (false, None) => Variables::Core,
            (false, Some(_)) => {
                return Err(BuildError::key(
                    "variables",
                    "`variables` only applies to `template` (the presets use the core's)",
                ));
            }
        };
        if key.is_empty() {
            return Ok(Body::Document);
        }
        check_labels(&self.labels, alertmanager)?;
        let json = body::is_json(content_type);
        let body = Body::template(source, origin, vars, variables, json)
            .map_err(|e| BuildError::key(key, format!("template error: {e}")))?;
        // The presets are tried by this crate's own tests, hostile names included;
        // alertctl builds its notifiers at every run, so they skip the sample renders.
        if self.template.is_some() {
            try_template(&body, key, content_type, Format::full())?;
        }
        Ok(body)
    }
}

/// Renders the template for sample alerts, so that a template that cannot work fails
/// when the configuration is loaded, not when the first alert is due.
///
/// `format` is the message format the samples carry: for a `template`, the default; for
/// a format's own body (`key` `body` or `template_file`), that format.
pub(crate) fn try_template(
    body: &Body,
    key: &str,
    content_type: &str,
    format: &Format,
) -> Result<(), BuildError> {
    for hostile in [false, true] {
        for sample in body::samples(hostile) {
            let start = Timestamp::from_millis(1_763_700_000_000);
            let n = sample
                .sequence(1)
                .streak(1, start)
                .time(start.saturating_add(Duration::from_secs(120)));
            let kind = n.event;
            let ctx = Context::new("sample").format(format);
            match body.render(&n, &ctx, content_type) {
                Ok(_) => {}
                Err(WebhookError::Render(e)) => {
                    return Err(BuildError::key(
                        key,
                        format!("template fails on a sample {kind} alert: {e}"),
                    ));
                }
                Err(WebhookError::NotJson { source, .. }) if hostile => {
                    return Err(BuildError::key(
                        key,
                        format!(
                            "template renders invalid JSON when a name contains quotes or \
                             backslashes ({source}): write {{{{ service | tojson }}}}, not \
                             \"{{{{ service }}}}\", or set content_type if the body is not JSON"
                        ),
                    ));
                }
                Err(WebhookError::NotJson { source, .. }) => {
                    return Err(BuildError::key(
                        key,
                        format!(
                            "template does not render valid JSON for a sample {kind} alert \
                             ({source}); set content_type if the body is not JSON"
                        ),
                    ));
                }
                Err(e) => {
                    return Err(BuildError::key(key, alertcore::chain(&e)));
                }
            }
        }
    }
    Ok(())
}

fn check_labels(labels: &BTreeMap<String, String>, alertmanager: bool) -> Result<(), BuildError> {
    for name in labels.keys() {
        let mut chars = name.chars();
        let valid = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(BuildError::key(
                "labels",
                format!("label name {name:?} must match [a-zA-Z_][a-zA-Z0-9_]*"),
            ));
        }
        if alertmanager && ["service", "host", "severity"].contains(&name.as_str()) {
            return Err(BuildError::key(
                "labels",
                format!("label {name:?} is set by alertcore for each alert"),
            ));
        }
    }
    Ok(())
}

fn parse_url(s: &str) -> Result<Url, String> {
    let url = Url::parse(s).map_err(|e| format!("invalid url: {e}"))?;
    match url.scheme() {
        "http" | "https" => {}
        other => {
            return Err(format!(
                "unsupported url scheme {other:?}: use http:// or https://"
            ));
        }
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("the url has no host".to_owned());
    }
    if url.fragment().is_some() {
        return Err("the url has a #fragment, which is never sent".to_owned());
    }
    Ok(url)
}

/// `http://am:9093` or `http://am:9093/prefix` gets `/api/v2/alerts` appended; a URL
/// that already ends with it is kept.
fn alertmanager_url(url: &mut Url) {
    let path = url.path().trim_end_matches('/').to_owned();
    if !path.ends_with(ALERTMANAGER_PATH) {
        url.set_path(&format!("{path}{ALERTMANAGER_PATH}"));
    }
}

/// `https://ntfy.sh/alerts` → topic `alerts`, posting to `https://ntfy.sh/`.
fn ntfy_topic(url: &mut Url) -> Result<String, String> {
    let path = url.path().trim_end_matches('/').to_owned();
    let (parent, topic) = path.rsplit_once('/').unwrap_or(("", &path));
    if topic.is_empty() {
        return Err(
            "preset = \"ntfy\" needs the topic URL, e.g. \"https://ntfy.sh/my-alerts\"".to_owned(),
        );
    }
    let topic = topic.to_owned();
    url.set_path(&format!("{parent}/"));
    Ok(topic)
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// `scheme://host:port`: what errors and `Debug` show of a URL.
pub(crate) fn endpoint_of(url: &Url) -> String {
    format!(
        "{}://{}:{}",
        url.scheme(),
        url.host_str().unwrap_or_default(),
        url.port_or_known_default().unwrap_or_default()
    )
}

fn endpoint_of_str(s: &str) -> String {
    Url::parse(s).map_or_else(|_| "<invalid url>".to_owned(), |u| endpoint_of(&u))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(text: &str) -> Result<WebhookNotifier, BuildError> {
        let t = Table::parse(text).unwrap();
        WebhookConfig::from_table(&t)?.build()
    }

    fn build_err(text: &str) -> (Option<String>, String) {
        let e = build(text).unwrap_err();
        (e.offending_key().map(str::to_owned), e.to_string())
    }

    /// Each key of the README's table does what it says, and the defaults are its own.
    #[test]
    fn minimal_configs_build() {
        let n = build("type = \"webhook\"\nurl = \"http://127.0.0.1:8080/hook\"").unwrap();
        assert_eq!(n.url.as_str(), "http://127.0.0.1:8080/hook");
        assert_eq!(n.preset, None);
        assert!(matches!(n.body, Body::Document));
        assert_eq!(n.content_type_str, "application/json");
        assert_eq!(n.signature_header.as_str(), "x-alertcore-signature");
        assert_eq!(n.timeout, Duration::from_secs(10));
        assert!(n.token.is_none() && n.hmac_secret.is_none() && n.headers.is_empty());

        let n = build("url = \"https://hooks.example.org/x\"\ntoken_env = \"T\"").unwrap();
        assert!(n.token.is_some());
        let n = build("url = \"http://127.0.0.1:1/\"\ntoken_file = \"/t\"").unwrap();
        assert!(n.token.is_some());
        let n =
            build("url = \"https://hooks.slack.com/services/T/B/X\"\npreset = \"slack\"").unwrap();
        assert_eq!(n.preset, Some(Preset::Slack));
        assert!(matches!(n.body, Body::Template { .. }));
        let n = build("url = \"https://ntfy.sh/alerts\"\npreset = \"ntfy\"").unwrap();
        assert_eq!(n.preset, Some(Preset::Ntfy));
        let n = build(
            "url = \"http://am:9093\"\npreset = \"alertmanager\"\nlabels = { team = \"ops\" }\nends_after = \"0s\"",
        )
        .unwrap();
        assert_eq!(n.preset, Some(Preset::Alertmanager));
        let n = build(
            "url = \"http://127.0.0.1/\"\ntemplate = \"{{ title }}\"\ncontent_type = \"text/plain\"",
        )
        .unwrap();
        // a template without `variables` keeps the document's names; presets use the core's
        assert!(matches!(
            n.body,
            Body::Template {
                variables: Variables::Document,
                ..
            }
        ));
        let core = build(
            "url = \"http://127.0.0.1/\"\ntemplate = \"{{ title }}\"\ncontent_type = \"text/plain\"\n\
             variables = \"core\"",
        )
        .unwrap();
        assert!(matches!(
            core.body,
            Body::Template {
                variables: Variables::Core,
                ..
            }
        ));
        let slack =
            build("url = \"https://hooks.slack.com/services/T/B/X\"\npreset = \"slack\"").unwrap();
        assert!(matches!(
            slack.body,
            Body::Template {
                variables: Variables::Core,
                ..
            }
        ));
        assert_eq!(n.content_type_str, "text/plain");
        let n = build(
            "url = \"http://127.0.0.1/\"\nhmac_secret_env = \"K\"\nsignature_header = \"X-Hub-Signature-256\"\nheaders = { X-Env = \"prod\" }\ntimeout = \"3s\"\nconnect_timeout = \"1s\"\nretries = 0\nbackoff = \"0s\"\nmax_retry_after = \"5s\"",
        )
        .unwrap();
        assert!(n.hmac_secret.is_some());
        assert_eq!(n.signature_header.as_str(), "x-hub-signature-256");
        assert_eq!(
            n.headers.get("x-env").map(|v| v.as_bytes()),
            Some(&b"prod"[..])
        );
        assert_eq!(n.timeout, Duration::from_secs(3));
    }

    #[test]
    fn preset_urls() {
        let n = build("url = \"http://am.example.org:9093\"\npreset = \"alertmanager\"").unwrap();
        assert_eq!(n.url.as_str(), "http://am.example.org:9093/api/v2/alerts");
        let n = build("url = \"http://am:9093/am/\"\npreset = \"alertmanager\"").unwrap();
        assert_eq!(n.url.as_str(), "http://am:9093/am/api/v2/alerts");
        let n = build("url = \"http://am:9093/api/v2/alerts\"\npreset = \"alertmanager\"").unwrap();
        assert_eq!(n.url.as_str(), "http://am:9093/api/v2/alerts");
        let n = build("url = \"https://ntfy.sh/ops-alerts\"\npreset = \"ntfy\"").unwrap();
        assert_eq!(n.url.as_str(), "https://ntfy.sh/");
        let n = build("url = \"https://example.org/ntfy/ops/\"\npreset = \"ntfy\"").unwrap();
        assert_eq!(n.url.as_str(), "https://example.org/ntfy/");
    }

    #[test]
    fn invalid_configs_name_their_key() {
        let cases = [
            ("", "url", "missing `url`"),
            ("url = \"ftp://x\"", "url", "unsupported url scheme"),
            ("url = \"hooks.example.org\"", "url", "invalid url"),
            ("url = \"http://x/#a\"", "url", "#fragment"),
            (
                "url = \"http://x\"\nurl_env = \"U\"",
                "url_env",
                "set one of `url` and `url_env`",
            ),
            (
                "url_env = \"ALERTCORE_WEBHOOK_TEST_SURELY_UNSET\"",
                "url_env",
                "is not set",
            ),
            (
                "url_file = \"/nonexistent/url\"",
                "url_file",
                "cannot read /nonexistent/url",
            ),
            (
                "url = \"https://ntfy.sh/\"\npreset = \"ntfy\"",
                "url",
                "needs the topic URL",
            ),
            (
                "url = \"http://hooks.example.org\"\ntoken_env = \"T\"",
                "token_env",
                "refusing to send a bearer token over plain http://",
            ),
            (
                "url = \"http://x\"\ntoken_env = \"T\"\ntoken_file = \"/t\"",
                "token_file",
                "are both set",
            ),
            (
                "url = \"http://x\"\ntoken_file = \"/t\"\ntoken_credential = \"tok\"",
                "token_credential",
                "are both set",
            ),
            (
                "url = \"http://x\"\nhmac_secret_credential = \"../k\"",
                "hmac_secret_credential",
                "not a credential name",
            ),
            (
                "url_env = \"U\"\nurl_credential = \"hook-url\"",
                "url_credential",
                "are both set",
            ),
            (
                "url = \"http://x\"\nsignature_header = \"X-Sig\"",
                "signature_header",
                "needs `hmac_secret_env`",
            ),
            (
                "url = \"http://x\"\nhmac_secret_env = \"K\"\nsignature_header = \"bad header\"",
                "signature_header",
                "not a valid header name",
            ),
            (
                "url = \"http://x\"\nheaders = { \"Content-Type\" = \"text/plain\" }",
                "headers",
                "content_type",
            ),
            (
                "url = \"http://127.0.0.1\"\ntoken_env = \"T\"\nheaders = { Authorization = \"Basic x\" }",
                "headers",
                "conflicts with `token_env`",
            ),
            (
                "url = \"http://x\"\nheaders = { X-A = \"line\\nbreak\" }",
                "headers",
                "characters a header cannot carry",
            ),
            (
                "url = \"http://x\"\ntimeout = \"0s\"",
                "timeout",
                "more than 0s",
            ),
            (
                "url = \"http://x\"\npreset = \"alertmanager\"\nends_after = \"100y\"",
                "ends_after",
                "10 years",
            ),
            (
                "url = \"http://x\"\nca_file = \"/ca.pem\"",
                "ca_file",
                "no effect on an http:// URL",
            ),
            (
                "url = \"http://x\"\ntls_insecure_skip_verify_dangerous = true",
                "tls_insecure_skip_verify_dangerous",
                "no effect on an http:// URL",
            ),
            (
                "url = \"https://x\"\nca_file = \"/nonexistent.pem\"",
                "ca_file",
                "cannot read /nonexistent.pem",
            ),
            (
                "url = \"http://x\"\nlabels = { a = \"b\" }",
                "labels",
                "only applies",
            ),
            (
                "url = \"http://x\"\npreset = \"slack\"\nends_after = \"1h\"",
                "ends_after",
                "does not apply to preset = \"slack\"",
            ),
            (
                "url = \"http://x\"\npreset = \"alertmanager\"\nlabels = { host = \"b\" }",
                "labels",
                "set by alertcore",
            ),
            (
                "url = \"http://x\"\npreset = \"alertmanager\"\nlabels = { \"bad-name\" = \"b\" }",
                "labels",
                "must match",
            ),
            (
                "url = \"http://x\"\npreset = \"slack\"\ntemplate = \"x\"",
                "template",
                "not both",
            ),
            // a common format key: the config takes it out before this crate reads it
            (
                "url = \"http://x\"\ntemplate_file = \"/t.j2\"",
                "template_file",
                "unknown field",
            ),
            (
                "url = \"http://x\"\ntemplate = \"{{ service \"",
                "template",
                "syntax error",
            ),
            (
                "url = \"http://x\"\ntemplate = \"{\\\"s\\\": {{ servce | tojson }}}\"",
                "template",
                "fails on a sample failure alert",
            ),
            (
                "url = \"http://x\"\ntemplate = \"{{ title }}\"",
                "template",
                "not render valid JSON",
            ),
            (
                "url = \"http://x\"\ntemplate = \"{\\\"s\\\": \\\"{{ service }}\\\"}\"",
                "template",
                "service | tojson",
            ),
        ];
        for (text, want_key, want) in cases {
            let (key, msg) = build_err(text);
            assert!(msg.contains(want), "{text}: {msg}");
            assert_eq!(key.as_deref(), Some(want_key), "{text}: {msg}");
        }
        let (key, msg) = build_err("url = \"http://x\"\ntokn_env = \"T\"");
        assert_eq!(key.as_deref(), Some("tokn_env"), "{msg}");
        let (_, msg) = build_err("url = \"http://x\"\npreset = \"pagerduty\"");
        assert!(msg.contains("unknown variant"), "{msg}");
    }

    /// Records the warnings logged while it is the default subscriber.
    #[derive(Default)]
    struct Warnings(std::sync::Mutex<Vec<String>>);

    impl Warnings {
        fn take(&self) -> Vec<String> {
            std::mem::take(&mut *self.0.lock().unwrap())
        }
    }

    struct Message<'a>(&'a mut String);

    impl tracing::field::Visit for Message<'_> {
        fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
            self.0.push_str(&format!(" {}={value:?}", field.name()));
        }
    }

    impl tracing::Subscriber for &'static Warnings {
        fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
            *metadata.level() == tracing::Level::WARN
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, event: &tracing::Event<'_>) {
            let mut text = String::new();
            event.record(&mut Message(&mut text));
            self.0.lock().unwrap().push(text);
        }
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }

    /// `retries`, `backoff`, `max_backoff` and `max_retry_after` configured the retry
    /// loop a delivery no longer has: a configuration with them still loads (a malformed
    /// value is still an error), and building the notifier says once that they are
    /// ignored.
    #[test]
    fn retired_retry_keys_load_and_warn_once() {
        let warnings: &'static Warnings = Box::leak(Box::default());
        let built = |text: &str| {
            tracing::subscriber::with_default(warnings, || build(text))
                .unwrap_or_else(|e| panic!("{text}: {e}"));
            warnings.take()
        };
        let got = built(
            "url = \"http://127.0.0.1/\"\nretries = 11\nbackoff = \"5s\"\n\
             max_backoff = \"1s\"\nmax_retry_after = \"1h\"",
        );
        assert_eq!(got.len(), 1, "{got:?}");
        for want in [
            "`retries`, `backoff`, `max_backoff`, `max_retry_after` are no longer used",
            "the outbox retries a failed one (first after 30s, then doubling",
            "endpoint=http://127.0.0.1:80",
        ] {
            assert!(got[0].contains(want), "{want:?} in {got:?}");
        }
        let got = built("url = \"http://127.0.0.1/\"\nretries = 0");
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].contains("`retries` is no longer used"), "{got:?}");
        assert_eq!(built("url = \"http://127.0.0.1/\""), Vec::<String>::new());
        // the builder methods are no-ops that warn alike
        #[allow(deprecated)]
        let config = WebhookNotifier::builder()
            .url("http://127.0.0.1/")
            .max_retry_after(Duration::from_secs(5));
        tracing::subscriber::with_default(warnings, || config.build().map(|_| ())).expect("builds");
        let got = warnings.take();
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            got[0].contains("`max_retry_after` is no longer used"),
            "{got:?}"
        );
        // still read, so still checked: a value that is not a duration names its key
        for (text, key) in [
            ("backoff = \"soon\"", "backoff"),
            ("max_retry_after = 30", "max_retry_after"),
            ("retries = -1", "retries"),
        ] {
            let (got, msg) = build_err(&format!("url = \"http://x\"\n{text}"));
            assert_eq!(got.as_deref(), Some(key), "{text}: {msg}");
        }
    }

    #[test]
    fn allow_plaintext_dangerous_permits_a_token_over_http() {
        let keys = "url = \"http://hooks.lan/x\"\ntoken_env = \"T\"";
        let (key, msg) = build_err(keys);
        assert!(msg.contains("allow_plaintext_dangerous"), "{key:?}: {msg}");
        let n = build(&format!("{keys}\nallow_plaintext_dangerous = true")).unwrap();
        assert!(n.token.is_some());
        assert_eq!(n.url.as_str(), "http://hooks.lan/x");
    }

    #[test]
    fn debug_hides_url_path_and_header_values() {
        let text = "url = \"https://hooks.slack.com/services/T0/B0/s3cretpath?k=s3cretquery\"\n\
                    headers = { X-Api-Key = \"s3cretheader\" }\ntoken_env = \"TOKEN_VAR\"";
        let t = Table::parse(text).unwrap();
        let c = WebhookConfig::from_table(&t).unwrap();
        let n = c.clone().build().unwrap();
        for d in [format!("{c:?}"), format!("{n:?}")] {
            assert!(!d.contains("s3cret"), "{d}");
            assert!(d.contains("https://hooks.slack.com:443"), "{d}");
            assert!(d.contains("TOKEN_VAR"), "{d}");
            assert!(d.to_ascii_lowercase().contains("x-api-key"), "{d}");
            assert!(d.ends_with(".. }"), "{d}");
        }
    }

    #[test]
    fn readme_template_example_builds() {
        let readme = include_str!("../README.md");
        let start = readme
            .find("variables = \"core\"\ntemplate = '''\n")
            .unwrap();
        let end = start + readme[start..].find("\n'''\n").unwrap() + 4;
        let n = build(&format!(
            "url = \"https://pager.example.org/v1/events\"\n{}",
            &readme[start..end]
        ))
        .unwrap();
        assert!(format!("{n:?}").contains("Template(template)"));
    }

    #[test]
    fn secrets_from_systemd_credentials() {
        let n = build(
            "url = \"https://hooks.example.org/x\"\ntoken_credential = \"hook-token\"\n\
             hmac_secret_credential = \"hook-key\"",
        )
        .unwrap();
        let d = format!("{n:?}");
        assert!(d.contains("token: Some(Credential(\"hook-token\"))"), "{d}");
        assert!(
            d.contains("hmac_secret: Some(Credential(\"hook-key\"))"),
            "{d}"
        );
        // the URL is read at build: outside a unit with the credential that fails there
        if std::env::var_os("CREDENTIALS_DIRECTORY").is_none() {
            let (key, msg) = build_err("url_credential = \"hook-url\"");
            assert_eq!(key.as_deref(), Some("url_credential"), "{msg}");
            assert!(msg.contains("$CREDENTIALS_DIRECTORY is not set"), "{msg}");
        }
    }

    #[test]
    fn url_from_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("url");
        std::fs::write(&path, "https://hooks.example.org/secret\n").unwrap();
        let n = build(&format!("url_file = {:?}", path.display().to_string())).unwrap();
        assert_eq!(n.url.as_str(), "https://hooks.example.org/secret");
    }
}
