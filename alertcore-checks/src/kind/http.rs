//! The `http` kind: one HTTP(S) request, its status, body and latency judged, like
//! Nagios's `check_http`.
//!
//! ```toml
//! url = "https://{host}:8443/health"   # required; {host} is the check's host address
//! method = "GET"                # default GET
//! status = 200                  # or [200, 204]; default: any of 200-399
//! body = "\"status\":\"up\""    # a substring the body must contain
//! body_regex = "version: \\d+"  # a regular expression the body must match
//! max_latency = "500ms"         # slower is a warning
//! critical_latency = "2s"       # slower is critical
//! headers = { Authorization = "Bearer xyz", Host = "app.internal" }
//! ca_file = "/etc/ssl/my-ca.pem"   # for https: these roots instead of the system's
//! ```
//!
//! Redirects are not followed: a 3xx is the answer judged (and within the default
//! 200-399). Each run opens a new connection (no keep-alive between runs), and no proxy
//! from the environment is used.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alertcore::{BuildError, Table};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};
use serde::Deserialize;

use super::net;
use super::{BuildContext, Probe};
use crate::outcome::{Outcome, PerfDatum, Status};

/// The most of a body read and searched; the rest is not read.
const MAX_BODY: usize = 4 * 1024 * 1024;

/// How much of the body the long output shows when `body` or `body_regex` fails.
const SHOWN: usize = 300;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpConfig {
    url: String,
    method: Option<String>,
    status: Option<toml::Value>,
    body: Option<String>,
    body_regex: Option<String>,
    #[serde(default, with = "alertcore::duration::option")]
    max_latency: Option<Duration>,
    #[serde(default, with = "alertcore::duration::option")]
    critical_latency: Option<Duration>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    ca_file: Option<PathBuf>,
}

#[derive(Debug)]
struct HttpProbe {
    client: reqwest::Client,
    url: Url,
    method: Method,
    headers: HeaderMap,
    /// The statuses expected; empty for the default, 200-399.
    status: Vec<u16>,
    body: Option<String>,
    body_regex: Option<regex::Regex>,
    warning: Option<Duration>,
    critical: Option<Duration>,
    /// Why no https URL can be verified here (no system roots), said at run time.
    problem: Option<String>,
}

pub(crate) fn build(table: &Table, ctx: &BuildContext<'_>) -> Result<Arc<dyn Probe>, BuildError> {
    let cfg: HttpConfig = table.deserialize()?;
    let text = ctx.expand("url", &cfg.url)?;
    let url = Url::parse(&text).map_err(|e| BuildError::key("url", format!("{text:?}: {e}")))?;
    let https = match url.scheme() {
        "https" => true,
        "http" => false,
        other => {
            return Err(BuildError::key(
                "url",
                format!("scheme {other:?}: only http and https URLs can be checked"),
            ));
        }
    };
    let method = match &cfg.method {
        None => Method::GET,
        Some(m) => Method::from_bytes(m.to_ascii_uppercase().as_bytes())
            .map_err(|_| BuildError::key("method", format!("{m:?} is not an HTTP method")))?,
    };
    let status = match &cfg.status {
        None => Vec::new(),
        Some(v) => statuses(v).map_err(|e| BuildError::key("status", e))?,
    };
    if cfg.body.as_deref() == Some("") {
        return Err(BuildError::key(
            "body",
            "is empty (leave it out to accept any body)",
        ));
    }
    let body_regex = cfg
        .body_regex
        .as_deref()
        .map(regex::Regex::new)
        .transpose()
        .map_err(|e| BuildError::key("body_regex", e))?;
    net::check_order(cfg.max_latency, cfg.critical_latency, "max_latency", |d| {
        alertcore::duration::format(*d)
    })?;
    let mut headers = HeaderMap::new();
    for (name, value) in &cfg.headers {
        let n = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| BuildError::key("headers", format!("{name:?} is not a header name")))?;
        let v = HeaderValue::from_str(value).map_err(|_| {
            BuildError::key(
                "headers",
                format!("the value of {name:?} is not a header value"),
            )
        })?;
        headers.insert(n, v);
    }
    if cfg.ca_file.is_some() && !https {
        return Err(BuildError::key("ca_file", "is only used with https URLs"));
    }
    let (tls, problem) = if https {
        let trust = net::tls::Trust::new(cfg.ca_file.as_deref())
            .map_err(|e| BuildError::key("ca_file", e))?;
        (
            trust.client_config().map_err(BuildError::new)?,
            trust.problem().map(str::to_owned),
        )
    } else {
        // Nothing is verified because nothing is encrypted; redirects are not followed.
        let none = net::tls::Trust::empty();
        (none.client_config().map_err(BuildError::new)?, None)
    };
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .no_proxy()
        .user_agent(concat!("alertcore-checks/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| BuildError::new(format!("HTTP client: {}", alertcore::chain(&e))))?;
    Ok(Arc::new(HttpProbe {
        client,
        url,
        method,
        headers,
        status,
        body: cfg.body,
        body_regex,
        warning: cfg.max_latency,
        critical: cfg.critical_latency,
        problem,
    }))
}

/// `status = 200` or `status = [200, 204]`.
fn statuses(v: &toml::Value) -> Result<Vec<u16>, String> {
    let one = |v: &toml::Value| match v.as_integer() {
        Some(n @ 100..=599) => u16::try_from(n).map_err(|e| e.to_string()),
        Some(n) => Err(format!("{n} is not an HTTP status (100-599)")),
        None => Err(format!("expected a status code, found {v}")),
    };
    match v {
        toml::Value::Array(a) if a.is_empty() => Err("lists no status".to_owned()),
        toml::Value::Array(a) => a.iter().map(one).collect(),
        v => one(v).map(|s| vec![s]),
    }
}

#[async_trait::async_trait]
impl Probe for HttpProbe {
    fn kind(&self) -> &'static str {
        "http"
    }

    async fn run(&self, timeout: Duration) -> Outcome {
        if let Some(p) = &self.problem {
            return Outcome::unknown(format!("HTTP UNKNOWN: {p}"));
        }
        super::bounded(timeout, self.check(timeout)).await
    }
}

impl HttpProbe {
    async fn check(&self, timeout: Duration) -> Outcome {
        let start = Instant::now();
        let request = self
            .client
            .request(self.method.clone(), self.url.clone())
            .headers(self.headers.clone());
        let mut response = match request.send().await {
            Ok(r) => r,
            Err(e) => return Outcome::critical(format!("HTTP CRITICAL: {}", self.failure(&e))),
        };
        let status = response.status();
        let mut body = Vec::new();
        let mut cut = false;
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = MAX_BODY - body.len();
                    if chunk.len() >= room {
                        body.extend_from_slice(chunk.get(..room).unwrap_or_default());
                        cut = true;
                        break;
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => {
                    return Outcome::critical(format!(
                        "HTTP CRITICAL: {status}, but reading the body failed: {}",
                        self.failure(&e)
                    ))
                    .perf(net::time_perf(
                        start.elapsed(),
                        self.warning,
                        self.critical,
                        timeout,
                    ));
                }
            }
        }
        let elapsed = start.elapsed();
        let size = if cut {
            format!("more than {} bytes", body.len())
        } else {
            format!("{} bytes", body.len())
        };
        let tail = format!("{size} in {} s", net::secs(elapsed));
        let mut size_perf = PerfDatum::new("size", Some(body.len() as f64), "B");
        size_perf.min = Some(0.0);
        let perf = |o: Outcome| {
            o.perf(net::time_perf(
                elapsed,
                self.warning,
                self.critical,
                timeout,
            ))
            .perf(size_perf.clone())
        };

        let expected = if self.status.is_empty() {
            (200..=399).contains(&status.as_u16())
        } else {
            self.status.contains(&status.as_u16())
        };
        if !expected {
            return perf(Outcome::critical(format!(
                "HTTP CRITICAL: {status} (expected {}), {tail}",
                self.expected_statuses()
            )));
        }
        if let Some(needle) = &self.body
            && !net::contains(&body, needle.as_bytes())
        {
            return perf(
                Outcome::critical(format!(
                    "HTTP CRITICAL: {status}, {needle:?} not found in the body, {tail}"
                ))
                .long_output(format!("body: {}", net::excerpt(&body, SHOWN))),
            );
        }
        if let Some(re) = &self.body_regex
            && !re.is_match(&String::from_utf8_lossy(&body))
        {
            return perf(
                Outcome::critical(format!(
                    "HTTP CRITICAL: {status}, the body does not match /{}/, {tail}",
                    re.as_str()
                ))
                .long_output(format!("body: {}", net::excerpt(&body, SHOWN))),
            );
        }
        let graded = net::grade(elapsed, self.warning, self.critical);
        let over = match graded {
            Status::Critical => self.critical,
            Status::Warning => self.warning,
            _ => None,
        };
        let over = over.map_or_else(String::new, |d| {
            format!(" (over {})", alertcore::duration::format(d))
        });
        perf(Outcome::new(
            graded,
            format!("HTTP {}: {status}, {tail}{over}", graded.label()),
        ))
    }

    fn expected_statuses(&self) -> String {
        match self.status.as_slice() {
            [] => "200-399".to_owned(),
            [one] => one.to_string(),
            [init @ .., last] => format!(
                "{} or {last}",
                init.iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    /// What went wrong with the request, in a few words: `connection refused:
    /// 127.0.0.1:8080`, `TLS: certificate untrusted: ...`, ...
    fn failure(&self, e: &reqwest::Error) -> String {
        let at = net::host_port(
            net::bare_host(self.url.host_str().unwrap_or_default()),
            self.url.port_or_known_default().unwrap_or_default(),
        );
        // The chain, with what an io::Error wraps (its `source` skips that).
        let mut stack: Vec<&(dyn std::error::Error + 'static)> = vec![e];
        let mut io = None;
        let mut dns = false;
        while let Some(err) = stack.pop() {
            // hyper-util's resolver error says so; its cause is getaddrinfo's
            dns |= err.to_string().starts_with("dns error");
            if let Some(r) = err.downcast_ref::<rustls::Error>() {
                return tls_failure(r, &at);
            }
            if let Some(i) = err.downcast_ref::<std::io::Error>() {
                io.get_or_insert(i);
                if let Some(inner) = i.get_ref() {
                    stack.push(inner);
                    continue;
                }
            }
            if let Some(s) = err.source() {
                stack.push(s);
            }
        }
        if let Some(i) = io {
            if dns {
                let host = net::bare_host(self.url.host_str().unwrap_or_default());
                return format!("cannot resolve {host}: {}", net::io_reason(i));
            }
            return format!("{}: {at}", net::io_reason(i));
        }
        if e.is_timeout() {
            return format!("timed out: {at}");
        }
        // Not `e` itself: its message has the URL, which may hold a credential.
        match std::error::Error::source(e) {
            Some(s) => format!("request failed: {}", alertcore::chain(s)),
            None => "request failed".to_owned(),
        }
    }
}

fn tls_failure(e: &rustls::Error, at: &str) -> String {
    match e {
        rustls::Error::InvalidCertificate(_) => format!(
            "TLS: certificate of {at} untrusted: {}",
            net::tls::untrusted_reason(e)
        ),
        other => format!("TLS handshake with {at} failed: {other}"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::sync::mpsc;

    use super::net::tls::testing;
    use super::*;

    const T: Duration = Duration::from_secs(5);

    fn probe(toml: &str) -> Arc<dyn Probe> {
        build(
            &Table::parse(toml).unwrap(),
            &BuildContext::new(Some("127.0.0.1")),
        )
        .unwrap()
    }

    fn build_err(toml: &str) -> BuildError {
        build(&Table::parse(toml).unwrap(), &BuildContext::new(None)).unwrap_err()
    }

    fn response(status: &str, body: &str) -> String {
        format!(
            "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
    }

    /// An HTTP server on 127.0.0.1 answering every request with `reply` after `delay`;
    /// the request heads it got come out of the channel.
    async fn server(reply: String, delay: Duration) -> (u16, mpsc::UnboundedReceiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let tx = tx.clone();
                let reply = reply.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let _ = tx.send(String::from_utf8_lossy(&head).into_owned());
                    tokio::time::sleep(delay).await;
                    let _ = s.write_all(reply.as_bytes()).await;
                    let _ = s.shutdown().await;
                });
            }
        });
        (port, rx)
    }

    #[tokio::test]
    async fn ok_reports_status_size_and_time() {
        let (port, _rx) = server(response("200 OK", "hello world"), Duration::ZERO).await;
        let out = probe(&format!("url = \"http://{{host}}:{port}/health\""))
            .run(T)
            .await;
        assert_eq!(out.status, Status::Ok, "{out:?}");
        assert!(
            out.message.starts_with("HTTP OK: 200 OK, 11 bytes in 0.0"),
            "{}",
            out.message
        );
        assert_eq!(out.perfdata[0].label, "time");
        assert_eq!(out.perfdata[1].label, "size");
        assert_eq!(out.perfdata[1].value, Some(11.0));
    }

    #[tokio::test]
    async fn status_must_be_the_expected_one() {
        let (port, _rx) = server(response("404 Not Found", "nope"), Duration::ZERO).await;
        let url = format!("url = \"http://127.0.0.1:{port}/\"");
        let out = probe(&url).run(T).await;
        assert_eq!(out.status, Status::Critical, "{out:?}");
        assert!(
            out.message
                .starts_with("HTTP CRITICAL: 404 Not Found (expected 200-399), 4 bytes in "),
            "{}",
            out.message
        );
        let out = probe(&format!("{url}\nstatus = 404")).run(T).await;
        assert_eq!(out.status, Status::Ok, "{out:?}");
        let out = probe(&format!("{url}\nstatus = [200, 204, 410]"))
            .run(T)
            .await;
        assert_eq!(out.status, Status::Critical, "{out:?}");
        assert!(
            out.message.contains("(expected 200, 204 or 410)"),
            "{}",
            out.message
        );
    }

    #[tokio::test]
    async fn a_redirect_is_not_followed() {
        let reply = "HTTP/1.1 301 Moved Permanently\r\nlocation: http://127.0.0.1:1/\r\ncontent-length: 0\r\n\r\n";
        let (port, _rx) = server(reply.to_owned(), Duration::ZERO).await;
        let url = format!("url = \"http://127.0.0.1:{port}/\"");
        let out = probe(&url).run(T).await;
        assert_eq!(out.status, Status::Ok, "{out:?}");
        assert!(
            out.message.starts_with("HTTP OK: 301 Moved Permanently"),
            "{}",
            out.message
        );
        let out = probe(&format!("{url}\nstatus = 200")).run(T).await;
        assert_eq!(out.status, Status::Critical, "{out:?}");
    }

    #[tokio::test]
    async fn body_substring_and_regex() {
        let (port, _rx) = server(
            response("200 OK", "{\"status\":\"up\",\"version\":42}"),
            Duration::ZERO,
        )
        .await;
        let url = format!("url = \"http://127.0.0.1:{port}/\"");
        let ok = probe(&format!(
            "{url}\nbody = '\"status\":\"up\"'\nbody_regex = '\"version\":\\d+'"
        ))
        .run(T)
        .await;
        assert_eq!(ok.status, Status::Ok, "{ok:?}");

        let out = probe(&format!("{url}\nbody = '\"status\":\"down\"'"))
            .run(T)
            .await;
        assert_eq!(out.status, Status::Critical, "{out:?}");
        assert!(
            out.message
                .contains(r#""\"status\":\"down\"" not found in the body"#),
            "{}",
            out.message
        );
        assert!(out.long_output.contains("version"), "{}", out.long_output);

        let out = probe(&format!("{url}\nbody_regex = '^down'")).run(T).await;
        assert_eq!(out.status, Status::Critical, "{out:?}");
        assert!(
            out.message.contains("the body does not match /^down/"),
            "{}",
            out.message
        );
    }

    #[tokio::test]
    async fn a_slow_answer_is_a_warning_or_critical() {
        let (port, _rx) = server(response("200 OK", "slow"), Duration::from_millis(300)).await;
        let url = format!("url = \"http://127.0.0.1:{port}/\"");
        let out = probe(&format!("{url}\nmax_latency = \"100ms\""))
            .run(T)
            .await;
        assert_eq!(out.status, Status::Warning, "{out:?}");
        assert!(out.message.ends_with("(over 100ms)"), "{}", out.message);
        let out = probe(&format!(
            "{url}\nmax_latency = \"100ms\"\ncritical_latency = \"200ms\""
        ))
        .run(T)
        .await;
        assert_eq!(out.status, Status::Critical, "{out:?}");
        assert!(out.message.ends_with("(over 200ms)"), "{}", out.message);
        let out = probe(&format!("{url}\nmax_latency = \"10s\"")).run(T).await;
        assert_eq!(out.status, Status::Ok, "{out:?}");
    }

    #[tokio::test]
    async fn method_and_headers_are_sent() {
        let (port, mut rx) = server(response("200 OK", ""), Duration::ZERO).await;
        let out = probe(&format!(
            "url = \"http://127.0.0.1:{port}/hook?x=1\"\nmethod = \"post\"\n\
             headers = {{ X-Token = \"s3cret\", Host = \"app.internal\" }}"
        ))
        .run(T)
        .await;
        assert_eq!(out.status, Status::Ok, "{out:?}");
        let head = rx.recv().await.unwrap().to_ascii_lowercase();
        assert!(head.starts_with("post /hook?x=1 http/1.1\r\n"), "{head}");
        assert!(head.contains("\r\nx-token: s3cret\r\n"), "{head}");
        assert!(head.contains("\r\nhost: app.internal\r\n"), "{head}");
    }

    #[tokio::test]
    async fn a_silent_server_times_out_in_time() {
        let (port, _rx) = server(response("200 OK", ""), Duration::from_secs(3600)).await;
        let timeout = Duration::from_millis(300);
        let start = Instant::now();
        let out = probe(&format!("url = \"http://127.0.0.1:{port}/\""))
            .run(timeout)
            .await;
        assert!(start.elapsed() < timeout + Duration::from_secs(2));
        assert_eq!(out.status, Status::Critical, "{out:?}");
        assert_eq!(out.message, "timed out after 300ms");
    }

    #[tokio::test]
    async fn connection_refused() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let out = probe(&format!("url = \"http://127.0.0.1:{port}/\""))
            .run(T)
            .await;
        assert_eq!(out.status, Status::Critical, "{out:?}");
        assert_eq!(
            out.message,
            format!("HTTP CRITICAL: connection refused: 127.0.0.1:{port}")
        );
    }

    #[tokio::test]
    async fn https_with_a_ca_file() {
        let ca = testing::Ca::new("test CA");
        let (cert, key) = ca.leaf(&["localhost"], -3600, 86_400 * 90);
        let reply = "HTTP/1.1 200 OK\r\ncontent-length: 6\r\nconnection: close\r\n\r\nsecure";
        let (port, _task) = testing::serve(vec![cert], key, Some(reply.as_bytes())).await;
        let out = probe(&format!(
            "url = \"https://localhost:{port}/\"\nca_file = {:?}\nbody = \"secure\"",
            ca.pem_file
        ))
        .run(T)
        .await;
        assert_eq!(out.status, Status::Ok, "{out:?}");

        let other = testing::Ca::new("another CA");
        let out = probe(&format!(
            "url = \"https://localhost:{port}/\"\nca_file = {:?}",
            other.pem_file
        ))
        .run(T)
        .await;
        assert_eq!(out.status, Status::Critical, "{out:?}");
        assert!(
            out.message.contains(&format!(
                "TLS: certificate of localhost:{port} untrusted: issued by an unknown"
            )),
            "{}",
            out.message
        );
    }

    #[test]
    fn bad_config_names_the_key() {
        let key = |toml: &str| build_err(toml).offending_key().map(str::to_owned);
        assert_eq!(
            key("url = \"http://a/\"\nbodyy = \"x\"").as_deref(),
            Some("bodyy")
        );
        assert_eq!(key("method = \"GET\"").as_deref(), Some("url"));
        assert_eq!(key("url = \"http://{host}/\"").as_deref(), Some("url"));
        assert_eq!(key("url = \"not a url\"").as_deref(), Some("url"));
        assert_eq!(key("url = \"ftp://a/\"").as_deref(), Some("url"));
        assert_eq!(
            key("url = \"http://a/\"\nmethod = \"G T\"").as_deref(),
            Some("method")
        );
        assert_eq!(
            key("url = \"http://a/\"\nstatus = 99").as_deref(),
            Some("status")
        );
        assert_eq!(
            key("url = \"http://a/\"\nstatus = [200, \"x\"]").as_deref(),
            Some("status")
        );
        assert_eq!(
            key("url = \"http://a/\"\nstatus = []").as_deref(),
            Some("status")
        );
        assert_eq!(
            key("url = \"http://a/\"\nbody_regex = \"(\"").as_deref(),
            Some("body_regex")
        );
        assert_eq!(
            key("url = \"http://a/\"\nheaders = { \"a b\" = \"x\" }").as_deref(),
            Some("headers")
        );
        assert_eq!(
            key("url = \"http://a/\"\nheaders = { a = \"x\\ny\" }").as_deref(),
            Some("headers")
        );
        assert_eq!(
            key("url = \"http://a/\"\nmax_latency = \"2s\"\ncritical_latency = \"1s\"").as_deref(),
            Some("max_latency")
        );
        assert_eq!(
            key("url = \"http://a/\"\nca_file = \"/x.pem\"").as_deref(),
            Some("ca_file")
        );
        assert_eq!(
            key("url = \"https://a/\"\nca_file = \"/nonexistent.pem\"").as_deref(),
            Some("ca_file")
        );
    }
}
