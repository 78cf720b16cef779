//! `[http]`: the daemon's HTTP listener. The healthchecks.io-compatible ping API
//! records heartbeat signals; `/status` (HTML), `/api/v1/status` (the JSON of `alertctl
//! status --json`) and `/metrics` (Prometheus) are read-only. Nothing on it can change
//! the config or send a notification of the caller's choosing.

mod page;
mod prom;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};

use alertcore::transport::SecretSource;
use alertcore::{BuildError, Config, ConfigError, Engine, Signal, Table, chain};
use alertcore_checks::heartbeat::{self, Heartbeat, PingError, kind};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde::Deserialize;

pub(crate) use prom::Prom;

use crate::status::{self, CheckStatus, HeartbeatStatus};

/// The default `listen`.
const DEFAULT_LISTEN: &str = "127.0.0.1:8111";
/// The largest request body read; what is kept of it is capped at
/// [`heartbeat::BODY_CAP`].
const BODY_LIMIT: usize = 1 << 20;
/// The longest `rid` accepted.
const RID_MAX: usize = 200;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    listen: Option<String>,
    token_env: Option<String>,
    token_file: Option<PathBuf>,
    token_credential: Option<String>,
    ping_key_env: Option<String>,
    ping_key_file: Option<PathBuf>,
    ping_key_credential: Option<String>,
    create_on_ping: Option<bool>,
}

/// `[http]`, read.
#[derive(Debug, Clone)]
pub(crate) struct HttpConfig {
    /// Where to listen.
    pub(crate) listen: SocketAddr,
    token: Option<SecretSource>,
    ping_key: Option<SecretSource>,
    create_on_ping: bool,
}

/// `[http]` of `config`, if it has one.
pub(crate) fn config(config: &Config) -> Result<Option<HttpConfig>, ConfigError> {
    let Some(spanned) = &config.http else {
        return Ok(None);
    };
    let build = || -> Result<HttpConfig, BuildError> {
        let spec: Spec = Table::from(spanned.get_ref().clone()).deserialize()?;
        let listen = spec.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
        let listen: SocketAddr = listen.parse().map_err(|e| {
            BuildError::key(
                "listen",
                format!(
                    "`listen`: {listen:?}: {e}; write an address and a port, as \"127.0.0.1:8111\""
                ),
            )
        })?;
        let token = SecretSource::choose(
            ("token_env", spec.token_env.as_deref()),
            ("token_file", spec.token_file.as_deref()),
            ("token_credential", spec.token_credential.as_deref()),
        )?;
        let ping_key = SecretSource::choose(
            ("ping_key_env", spec.ping_key_env.as_deref()),
            ("ping_key_file", spec.ping_key_file.as_deref()),
            ("ping_key_credential", spec.ping_key_credential.as_deref()),
        )?;
        Ok(HttpConfig {
            listen,
            token,
            ping_key,
            create_on_ping: spec.create_on_ping.unwrap_or(false),
        })
    };
    build()
        .map(Some)
        .map_err(|e| config.error_in(spanned, "[http]", e))
}

/// What the handlers need of `[http]` and the heartbeats, with the secrets read.
#[derive(Debug, Default)]
struct Settings {
    token: Option<String>,
    ping_key: Option<String>,
    /// The heartbeats with a key of their own, by name.
    keys: HashMap<String, String>,
    create_on_ping: bool,
}

impl Settings {
    /// The key pings of `name` must carry, if any: its own, else `[http]`'s.
    fn key_of(&self, name: &str) -> Option<&str> {
        self.keys
            .get(name)
            .or(self.ping_key.as_ref())
            .map(String::as_str)
    }
}

impl HttpConfig {
    /// Reads the secrets, `[http]`'s and those of `heartbeats`.
    fn settings(&self, heartbeats: &[Heartbeat]) -> Result<Settings, String> {
        let read = |s: &SecretSource, what: &str| s.read().map_err(|e| format!("{what}: {e}"));
        let mut keys = HashMap::new();
        for hb in heartbeats {
            if let Some(key) = &hb.ping_key {
                keys.insert(
                    hb.name.clone(),
                    read(key, &format!("heartbeat {:?}", hb.name))?,
                );
            }
        }
        Ok(Settings {
            token: self.token.as_ref().map(|s| read(s, "[http]")).transpose()?,
            ping_key: self
                .ping_key
                .as_ref()
                .map(|s| read(s, "[http]"))
                .transpose()?,
            keys,
            create_on_ping: self.create_on_ping,
        })
    }
}

/// The listener's shared state: swapped whole on a reload.
pub(crate) struct App {
    engine: RwLock<Arc<Engine>>,
    settings: RwLock<Arc<Settings>>,
    checks: alertcore_checks::Handle,
    heartbeats: heartbeat::Handle,
    prom: Prom,
}

impl App {
    /// The state of a listener over `engine`, the running `checks` and `heartbeats`,
    /// as `config` says.
    ///
    /// # Errors
    /// A secret that cannot be read.
    pub(crate) fn new(
        config: &HttpConfig,
        engine: Arc<Engine>,
        checks: alertcore_checks::Handle,
        heartbeats: heartbeat::Handle,
        prom: Prom,
    ) -> Result<Arc<Self>, String> {
        let configured: Vec<Heartbeat> = heartbeats
            .snapshot()
            .iter()
            .map(|s| Heartbeat::clone(&s.heartbeat))
            .collect();
        Ok(Arc::new(Self {
            engine: RwLock::new(engine),
            settings: RwLock::new(Arc::new(config.settings(&configured)?)),
            checks,
            heartbeats,
            prom,
        }))
    }

    /// Takes a reloaded config's engine, `[http]` (its `listen` is not changed: that
    /// takes a restart) and heartbeats' keys.
    ///
    /// # Errors
    /// A secret that cannot be read; then nothing changed.
    pub(crate) fn reload(
        &self,
        config: &HttpConfig,
        heartbeats: &[Heartbeat],
        engine: Arc<Engine>,
    ) -> Result<(), String> {
        let settings = config.settings(heartbeats)?;
        *self
            .settings
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(settings);
        *self.engine.write().unwrap_or_else(PoisonError::into_inner) = engine;
        Ok(())
    }

    fn engine(&self) -> Arc<Engine> {
        Arc::clone(&self.engine.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn settings(&self) -> Arc<Settings> {
        Arc::clone(&self.settings.read().unwrap_or_else(PoisonError::into_inner))
    }
}

/// The routes.
pub(crate) fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/ping/{*rest}", any(ping))
        .route("/status", get(status_page))
        .route("/api/v1/status", get(status_json))
        .route("/metrics", get(metrics))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(app)
}

#[derive(Deserialize)]
struct PingQuery {
    rid: Option<String>,
}

/// What a ping path names: `/ping/NAME[/ACTION]` or `/ping/KEY/NAME[/ACTION]`.
#[derive(Debug, PartialEq, Eq)]
struct PingPath<'a> {
    key: Option<&'a str>,
    name: &'a str,
    action: Option<&'a str>,
}

fn is_action(s: &str) -> bool {
    matches!(s, "start" | "fail" | "log")
        || (!s.is_empty() && s.len() <= 3 && s.bytes().all(|b| b.is_ascii_digit()))
}

/// Splits a ping path; `keyed` says whether pings of a name need a key (then two
/// segments are the key and the name; else a name and an action when the second is
/// one).
fn split<'a>(rest: &'a str, keyed: impl Fn(&str) -> bool) -> Option<PingPath<'a>> {
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        [name] => Some(PingPath {
            key: None,
            name,
            action: None,
        }),
        [a, b] if is_action(b) && !keyed(a) => Some(PingPath {
            key: None,
            name: a,
            action: Some(b),
        }),
        [key, name] => Some(PingPath {
            key: Some(key),
            name,
            action: None,
        }),
        [key, name, action] => Some(PingPath {
            key: Some(key),
            name,
            action: Some(action),
        }),
        _ => None,
    }
}

/// `GET|POST|HEAD /ping/...`: records the signal; `OK`, or 404 for an unknown name or
/// a wrong key (healthchecks.io's answers).
async fn ping(
    State(app): State<Arc<App>>,
    Path(rest): Path<String>,
    Query(query): Query<PingQuery>,
    body: Bytes,
) -> Response {
    let settings = app.settings();
    let Some(path) = split(&rest, |name| settings.key_of(name).is_some()) else {
        return not_found();
    };
    if !key_matches(settings.key_of(path.name), path.key) {
        return not_found();
    }
    let engine = app.engine();
    let now = engine.now();
    let mut signal = match path.action {
        None => Signal::new(path.name, kind::SUCCESS, now),
        Some("start") => Signal::new(path.name, kind::START, now),
        Some("fail") => Signal::new(path.name, kind::FAIL, now),
        Some("log") => Signal::new(path.name, kind::LOG, now),
        Some(code) => match code.parse::<u8>() {
            Ok(code) => Signal::new(path.name, kind::EXIT, now).exit_status(i32::from(code)),
            Err(_) => return not_found(),
        },
    };
    if let Some(rid) = query.rid.filter(|r| !r.is_empty()) {
        if rid.len() > RID_MAX || rid.chars().any(char::is_control) {
            return (StatusCode::BAD_REQUEST, "invalid rid\n").into_response();
        }
        signal = signal.rid(rid);
    }
    if !body.is_empty() {
        let keep = &body[..body.len().min(heartbeat::BODY_CAP)];
        signal = signal.body(String::from_utf8_lossy(keep).into_owned());
    }
    match app.heartbeats.ping(signal, settings.create_on_ping).await {
        Ok(_) => (StatusCode::OK, "OK").into_response(),
        Err(PingError::Unknown(_)) => not_found(),
        Err(e) => {
            tracing::error!(heartbeat = %path.name, "a ping was not recorded: {}", chain(&e));
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot record the signal\n",
            )
                .into_response()
        }
    }
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

/// Whether `given` is the `expected` key (none expected: none given), compared in
/// constant time.
fn key_matches(expected: Option<&str>, given: Option<&str>) -> bool {
    match (expected, given) {
        (None, None) => true,
        (Some(e), Some(g)) => constant_time_eq(e.as_bytes(), g.as_bytes()),
        _ => false,
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether a read-only request may be answered: no token set, or it carries the token
/// (`Authorization: Bearer TOKEN`, or `?token=TOKEN` for a browser).
fn authorized(settings: &Settings, headers: &HeaderMap, query: Option<&str>) -> bool {
    let Some(token) = settings.token.as_deref() else {
        return true;
    };
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let in_query = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|p| p.strip_prefix("token="));
    [bearer, in_query]
        .into_iter()
        .flatten()
        .any(|given| constant_time_eq(given.trim().as_bytes(), token.as_bytes()))
}

fn unauthorized() -> Response {
    let mut r = (StatusCode::UNAUTHORIZED, "a bearer token is required\n").into_response();
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

/// What every read-only page shows: the checks and heartbeats as the daemon sees them
/// now, the rest read off the store on a blocking thread.
async fn collect(app: &App) -> Result<status::StatusOut, Response> {
    let engine = app.engine();
    let now = engine.now();
    let (list, _) = app.checks.snapshot().await;
    let checks = list
        .into_iter()
        .map(|s| CheckStatus {
            name: s.name,
            saved: now,
            state: s.state,
        })
        .collect();
    let heartbeats: Vec<HeartbeatStatus> = app
        .heartbeats
        .snapshot()
        .into_iter()
        .filter_map(|s| {
            Some(HeartbeatStatus {
                name: s.heartbeat.name.clone(),
                assessment: s.assessment?,
            })
        })
        .collect();
    tokio::task::spawn_blocking(move || status::collect(&engine, heartbeats, Some(checks), None))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| chain(&e)))
        .map_err(|e| {
            tracing::error!("reading the status: {e}");
            (StatusCode::INTERNAL_SERVER_ERROR, "cannot read the state\n").into_response()
        })
}

/// A read-only page: the token checked, the status collected, then rendered.
async fn read_only(
    app: &App,
    headers: &HeaderMap,
    query: Option<&str>,
    render: impl FnOnce(&App, status::StatusOut) -> Response,
) -> Response {
    if !authorized(&app.settings(), headers, query) {
        return unauthorized();
    }
    match collect(app).await {
        Ok(out) => render(app, out),
        Err(r) => r,
    }
}

async fn status_page(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    read_only(&app, &headers, query.as_deref(), |app, out| {
        let engine = app.engine();
        let html = page::render(&out, engine.host(), engine.now());
        ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
    })
    .await
}

async fn status_json(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    read_only(&app, &headers, query.as_deref(), |_, out| {
        let json = serde_json::to_string_pretty(&out).unwrap_or_default();
        ([(header::CONTENT_TYPE, "application/json")], json).into_response()
    })
    .await
}

async fn metrics(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    read_only(&app, &headers, query.as_deref(), |app, out| {
        let text = app.prom.render(&out);
        (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response()
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_paths_split_as_healthchecks_does() {
        let none = |_: &str| false;
        let all = |_: &str| true;
        let p = |key, name, action| Some(PingPath { key, name, action });
        assert_eq!(split("backup", none), p(None, "backup", None));
        assert_eq!(
            split("backup/start", none),
            p(None, "backup", Some("start"))
        );
        assert_eq!(split("backup/3", none), p(None, "backup", Some("3")));
        // with a key set, two segments are the key and the name
        assert_eq!(split("k3y/backup", all), p(Some("k3y"), "backup", None));
        assert_eq!(split("k3y/start", all), p(Some("k3y"), "start", None));
        assert_eq!(
            split("k3y/backup/fail", all),
            p(Some("k3y"), "backup", Some("fail"))
        );
        // without one, a second segment that is no action is read as a key (and fails)
        assert_eq!(split("backup/nope", none), p(Some("backup"), "nope", None));
        // a name with a key of its own among names without
        let only_db = |n: &str| n == "db";
        assert_eq!(
            split("backup/start", only_db),
            p(None, "backup", Some("start"))
        );
        assert_eq!(split("k/db", only_db), p(Some("k"), "db", None));
        assert_eq!(split("db/start", only_db), p(Some("db"), "start", None));
        assert_eq!(split("a/b/c/d", none), None);
    }

    #[test]
    fn keys_and_tokens_must_match_exactly() {
        assert!(key_matches(None, None));
        assert!(!key_matches(None, Some("x")));
        assert!(!key_matches(Some("x"), None));
        assert!(!key_matches(Some("secret"), Some("secreT")));
        assert!(!key_matches(Some("secret"), Some("secret2")));
        assert!(key_matches(Some("secret"), Some("secret")));
        let settings = Settings {
            token: Some("t0k".into()),
            ..Settings::default()
        };
        let mut headers = HeaderMap::new();
        assert!(!authorized(&settings, &headers, None));
        assert!(authorized(&settings, &headers, Some("a=1&token=t0k")));
        assert!(!authorized(&settings, &headers, Some("token=t0")));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer t0k"),
        );
        assert!(authorized(&settings, &headers, None));
        assert!(authorized(&Settings::default(), &HeaderMap::new(), None));
    }
}
