//! The webhook notifier against real servers on 127.0.0.1: the HTTP sink
//! (`tests/peers/http-sink.py`, run by `/usr/bin/python3`, stdlib only) for the body,
//! headers, signature, error classes (one request per delivery; the outbox retries),
//! TLS and presets; a real Prometheus Alertmanager (Debian's `prometheus-alertmanager`,
//! started by `tests/peers/start-alertmanager.sh`) for the `alertmanager` preset; and
//! `alertctl` itself with a webhook notifier.
//!
//! Where python3 or Alertmanager is missing the tests that need it pass after saying
//! why; under CI (`CI` set) they fail instead.

#![cfg(feature = "webhook")]

use std::error::Error as _;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alertcore::testkit::ManualClock;
use alertcore::{
    Config, Context, Engine, EventKind, Failure, FailureReport, Format, FormatSpec, Formats,
    MemoryStore, Notification, Notifier, NotifyError, Registry, Severity, SqliteStore, Timestamp,
};
use alertcore_webhook::{WebhookConfig, WebhookError, WebhookNotifier};
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};

use crate::cli::{Ctl, failure_args, text};
use crate::peers::{certs, free_port, wait_until};

const PYTHON: &str = "/usr/bin/python3";
const SINK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/http-sink.py");
const START_AM: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/peers/start-alertmanager.sh"
);
/// Startup takes ~0.1 s (sink) and ~0.2 s (Alertmanager); this is for a loaded machine.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
const WAIT: Duration = Duration::from_secs(10);
const START: Timestamp = Timestamp::from_millis(1_763_700_000_000);

// ---------------------------------------------------------------------------------------
// harness

/// Skips (returns `None` after saying why) where a prerequisite is missing, except under
/// CI (`CI` set), where that is a failure.
fn require(what: &str, ok: bool, install: &str) -> Option<()> {
    if ok {
        return Some(());
    }
    let why = format!("{what} is missing: {install}");
    assert!(
        !crate::under_ci(),
        "the webhook tests cannot run under CI: {why}"
    );
    eprintln!("skipping: {why}");
    None
}

/// A running `http-sink.py`; killed on drop.
struct HttpSink {
    child: Child,
    port: u16,
    https: bool,
    _dir: tempfile::TempDir,
}

impl HttpSink {
    /// A plain-HTTP sink, or `None` (test skipped) without python3.
    fn try_start() -> Option<Self> {
        Self::try_start_with(&[], false)
    }

    /// A sink on `port` (one that an earlier sink had): for "the receiver comes back".
    fn try_start_on(port: u16) -> Option<Self> {
        let mut last = String::new();
        for _ in 0..20 {
            match Self::spawn_on(&[], false, port) {
                Ok(sink) => return Some(sink),
                Err(why) => last = why,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the HTTP sink did not start on port {port}: {last}");
    }

    fn try_start_with(args: &[&str], https: bool) -> Option<Self> {
        require(
            PYTHON,
            Path::new(PYTHON).exists(),
            "install Debian's python3 (apt-get install -y python3)",
        )?;
        let mut last = String::new();
        // The free port can be taken by someone else before the sink binds it.
        for _ in 0..5 {
            match Self::spawn(args, https) {
                Ok(sink) => return Some(sink),
                Err(why) => last = why,
            }
        }
        panic!("the HTTP sink did not start: {last}");
    }

    fn spawn(args: &[&str], https: bool) -> Result<Self, String> {
        Self::spawn_on(args, https, free_port())
    }

    fn spawn_on(args: &[&str], https: bool, port: u16) -> Result<Self, String> {
        let dir = tempfile::Builder::new()
            .prefix("alertcore-http-sink-")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        let ready = dir.path().join("ready");
        let stderr = std::fs::File::create(dir.path().join("stderr"))
            .map_err(|e| format!("stderr file: {e}"))?;
        let child = Command::new(PYTHON)
            .arg(SINK)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .arg("--ready-file")
            .arg(&ready)
            .arg("--log")
            .arg(dir.path().join("requests.jsonl"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("cannot run {PYTHON}: {e}"))?;
        let mut sink = Self {
            child,
            port,
            https,
            _dir: dir,
        };
        let log = sink._dir.path().join("stderr");
        wait_until(&mut sink.child, "http-sink.py", &log, READY_TIMEOUT, || {
            ready.exists()
        })?;
        Ok(sink)
    }

    /// The URL of `path` on the sink.
    fn url(&self, path: &str) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}{path}", self.port)
    }

    /// Waits until at least `n` requests arrived (or [`WAIT`] passed) and returns all.
    /// Each is the sink's record: method, path, headers, body, json, status, t.
    fn requests(&self, n: usize) -> Vec<Value> {
        assert!(
            !self.https,
            "read an https sink's requests with a plain twin"
        );
        let path = format!("/__requests?wait={n}&timeout={}", WAIT.as_secs());
        let (status, body) = http_get(self.port, &path);
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).expect("sink JSON")
    }
}

impl HttpSink {
    /// The requests recorded so far, from the sink's log file (written before each
    /// answer is sent), for an https sink whose control API is https too.
    fn logged(&self) -> Vec<Value> {
        std::fs::read_to_string(self._dir.path().join("requests.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("sink log JSON"))
            .collect()
    }
}

impl Drop for HttpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP/1.1 GET on 127.0.0.1, for the sink's and Alertmanager's APIs: status
/// and body.
fn http_get(port: u16, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(WAIT + Duration::from_secs(5)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read");
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, body)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(rest.get(..n).unwrap_or(rest));
        s = rest.get(n + 2..).unwrap_or("");
    }
    out
}

/// A header of a recorded request, by case-insensitive name.
fn header(req: &Value, name: &str) -> Option<String> {
    req["headers"].as_object().and_then(|h| {
        h.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.as_str())
            .map(str::to_owned)
    })
}

/// `sha256=<hex>` computed here with the `hmac` crate, independently of the notifier.
fn expected_signature(key: &str, body: &str) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).expect("key");
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn notifier(toml_text: &str) -> WebhookNotifier {
    let table = alertcore::Table::parse(toml_text).expect("valid TOML");
    WebhookConfig::from_table(&table)
        .and_then(WebhookConfig::build)
        .unwrap_or_else(|e| panic!("build: {e}\n{toml_text}"))
}

/// `n` failures of a run that exited with status 1, a minute apart.
fn history(n: usize) -> Vec<Failure> {
    (0..n)
        .map(|i| {
            let at = START.saturating_add(Duration::from_secs(60 * i as u64));
            Failure::from_report(
                &FailureReport::new("exit-code")
                    .exit_code("exited")
                    .exit_status("1")
                    .invocation_id(format!("{i:032x}"))
                    .message("disk full"),
                "web1",
                at,
            )
        })
        .collect()
}

/// A notification of `event` about `backup.service` on web1 with `failures` as its
/// history: streak 7 from [`START`], sequence 3, three minutes after the start.
fn alert(event: EventKind, failures: Vec<Failure>) -> Notification {
    Notification::new("backup.service", event, "web1")
        .failures(failures)
        .streak(7, START)
        .time(START.saturating_add(Duration::from_secs(180)))
        .sequence(3)
}

/// The context of the notifier named `hook`, with the default format.
fn ctx() -> Context<'static> {
    Context::new("hook")
}

fn webhook_error(e: &NotifyError) -> &WebhookError {
    e.source()
        .and_then(|s| s.downcast_ref::<WebhookError>())
        .unwrap_or_else(|| panic!("not a webhook transport error: {e:?}"))
}

fn secret_file(dir: &tempfile::TempDir, name: &str, value: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, format!("{value}\n")).expect("write secret");
    path.display().to_string()
}

// ---------------------------------------------------------------------------------------
// the request

#[tokio::test]
async fn default_document_with_headers_token_and_signature() {
    let Some(sink) = HttpSink::try_start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let token = secret_file(&dir, "token", "t0ken-s3cret");
    let key = secret_file(&dir, "key", "hmac-k3y");
    // Through the configuration and the registry, as alertctl builds it.
    let config = Config::parse(
        &format!(
            "[notifiers.hook]\ntype = \"webhook\"\nurl = \"{}\"\ntoken_file = {token:?}\n\
             hmac_secret_file = {key:?}\nheaders = {{ X-Env = \"prod\" }}\n",
            sink.url("/hooks/alertcore?src=test")
        ),
        "alertcore.toml",
    )
    .unwrap();
    let built = config
        .build_notifiers(&Registry::new().with(alertcore_webhook::FACTORY))
        .unwrap();
    let n = &built[0].notifier;
    assert_eq!(n.kind(), "webhook");
    let failures = history(3);
    n.notify(&alert(EventKind::Failure, failures.clone()), &ctx())
        .await
        .unwrap();

    let reqs = sink.requests(1);
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r["method"], "POST");
    assert_eq!(r["path"], "/hooks/alertcore");
    assert_eq!(r["query"], "src=test");
    assert_eq!(
        header(r, "Content-Type").as_deref(),
        Some("application/json")
    );
    assert_eq!(
        header(r, "Authorization").as_deref(),
        Some("Bearer t0ken-s3cret")
    );
    assert_eq!(header(r, "X-Env").as_deref(), Some("prod"));
    assert!(
        header(r, "User-Agent").is_some_and(|u| u.starts_with("alertcore/")),
        "{r:#}"
    );
    let body = r["body"].as_str().unwrap();
    assert_eq!(
        header(r, "X-Alertcore-Signature"),
        Some(expected_signature("hmac-k3y", body))
    );

    let doc = &r["json"];
    assert_eq!(doc["version"], "1");
    assert_eq!(doc["event"], "failure");
    assert_eq!(doc["service"], "backup.service");
    assert_eq!(doc["host"], "web1");
    assert_eq!(doc["severity"], "critical");
    assert_eq!(doc["notifier"], "hook");
    // streak start (ms) . streak id . service . host
    assert_eq!(doc["incident_id"], "1763700000000.7.backup_2eservice.web1");
    assert_eq!(doc["sequence"], 3);
    assert_eq!(doc["streak_id"], 7);
    assert_eq!(doc["streak_start"], START.as_millis());
    assert_eq!(doc["streak_length"], 3);
    assert_eq!(doc["time"], START.as_millis() + 180_000);
    assert_eq!(
        doc["title"],
        "[web1] FAILED: backup.service (exit-code, status=1)"
    );
    assert!(
        doc["text"].as_str().unwrap().contains("Failure history"),
        "{doc:#}"
    );
    // the history, with exactly the store's fields
    assert_eq!(doc["failures"], serde_json::to_value(&failures).unwrap());
    assert_eq!(doc["failures"][2]["invocation_id"], format!("{:032x}", 2));
}

#[tokio::test]
async fn recovery_document_and_a_custom_signature_header() {
    let Some(sink) = HttpSink::try_start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let key = secret_file(&dir, "key", "k");
    let n = notifier(&format!(
        "url = \"{}\"\nhmac_secret_file = {key:?}\nsignature_header = \"X-Hub-Signature-256\"",
        sink.url("/hook")
    ));
    n.notify(&alert(EventKind::Recovery, history(2)), &ctx())
        .await
        .unwrap();
    let r = &sink.requests(1)[0];
    let body = r["body"].as_str().unwrap();
    assert_eq!(
        header(r, "X-Hub-Signature-256"),
        Some(expected_signature("k", body))
    );
    assert_eq!(header(r, "X-Alertcore-Signature"), None);
    assert_eq!(header(r, "Authorization"), None);
    assert_eq!(r["json"]["event"], "recovery");
    assert_eq!(
        r["json"]["title"],
        "[web1] RECOVERED: backup.service (after 2 failures)"
    );
}

#[tokio::test]
async fn template_renders_with_its_content_type() {
    let Some(sink) = HttpSink::try_start() else {
        return;
    };
    let n = notifier(&format!(
        "url = \"{}\"\ncontent_type = \"text/plain; charset=utf-8\"\ntemplate = \"\"\"\n\
         {{{{ event | upper }}}} {{{{ service }}}}@{{{{ host }}}} x{{{{ streak_length }}}} \
         since {{{{ streak_start | rfc3339 }}}}\n\
         {{% for f in failures %}}- {{{{ f.exit_status }}}} {{{{ f.invocation_id[:4] }}}}\n{{% endfor %}}\"\"\"",
        sink.url("/text")
    ));
    n.notify(&alert(EventKind::Reminder, history(2)), &ctx())
        .await
        .unwrap();
    let r = &sink.requests(1)[0];
    assert_eq!(
        header(r, "Content-Type").as_deref(),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(
        r["body"],
        "REMINDER backup.service@web1 x2 since 2025-11-21T04:40:00.000Z\n- 1 0000\n- 1 0000\n"
    );
}

/// `variables = "core"`: the core's data model, as every format's templates have it,
/// with the webhook's own variables beside it (the README's tables).
#[tokio::test]
async fn a_template_on_the_core_variables_renders_the_core_model() {
    let Some(sink) = HttpSink::try_start() else {
        return;
    };
    let n = notifier(&format!(
        "url = \"{}\"\ncontent_type = \"text/plain; charset=utf-8\"\nvariables = \"core\"\n\
         labels = {{ team = \"ops\" }}\nends_after = \"90s\"\ntemplate = \"\"\"\n\
         {{{{ event_word }}}} {{{{ service }}}}@{{{{ host }}}} x{{{{ streak_length }}}} \
         since {{{{ streak_start_ms | rfc3339 }}}} for {{{{ duration }}}} ({{{{ duration_secs }}}} s), \
         at {{{{ time_ms }}}}\n\
         {{% for f in failures %}}- {{{{ f.number }}}} {{{{ f.result }}}} {{{{ f.time_ms }}}} \
         {{{{ f.summary }}}}\n{{% endfor %}}\
         {{{{ labels.team }}}} {{{{ topic | length }}}} {{{{ ends_after }}}} {{{{ incident_id }}}}\"\"\"",
        sink.url("/core")
    ));
    n.notify(&alert(EventKind::Reminder, history(2)), &ctx())
        .await
        .unwrap();
    let r = &sink.requests(1)[0];
    assert_eq!(
        r["body"],
        "REMINDER backup.service@web1 x2 since 2025-11-21T04:40:00.000Z for 3m (180 s), \
         at 1763700180000\n\
         - 1 exit-code 1763700000000 exit-code, status=1\n\
         - 2 exit-code 1763700060000 exit-code, status=1\n\
         ops 0 90000 1763700000000.7.backup_2eservice.web1"
    );
}

/// The notifier and its format, split as the config wiring does.
fn notifier_with_format(toml_text: &str) -> (WebhookNotifier, Format) {
    let table = alertcore::Table::parse(toml_text).expect("valid TOML");
    let (spec, rest) = FormatSpec::split(&table).expect("format keys");
    let format = Format::compile(&spec, &Formats::default(), Format::full())
        .unwrap_or_else(|e| panic!("format: {e}\n{toml_text}"));
    let n = WebhookConfig::from_table(&rest)
        .and_then(WebhookConfig::build)
        .unwrap_or_else(|e| panic!("build: {e}\n{toml_text}"));
    n.check_format(&format)
        .unwrap_or_else(|e| panic!("check_format: {e}\n{toml_text}"));
    (n, format)
}

#[tokio::test]
async fn the_message_format_reaches_the_receiver() {
    let Some(sink) = HttpSink::try_start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sms.j2");
    std::fs::write(&file, "{{ event_word }} {{ service }}: {{ summary }}\n").unwrap();
    // a body of its own (from template_file) is the HTTP body
    let (text, text_format) = notifier_with_format(&format!(
        "url = \"{}\"\ncontent_type = \"text/plain\"\ntemplate_file = {:?}",
        sink.url("/sms"),
        file.display().to_string()
    ));
    text.notify(
        &alert(EventKind::Failure, history(1)),
        &ctx().format(&text_format),
    )
    .await
    .unwrap();
    // a subject of its own goes into the document's title; so into Slack's text
    let (slack, slack_format) = notifier_with_format(&format!(
        "url = \"{}\"\npreset = \"slack\"\nsubject = \"{{{{ service }}}} is down\"",
        sink.url("/slack")
    ));
    slack
        .notify(
            &alert(EventKind::Failure, history(1)),
            &ctx().format(&slack_format),
        )
        .await
        .unwrap();
    // `json` keeps the versioned document
    let (doc, json_format) = notifier_with_format(&format!(
        "url = \"{}\"\nformat = \"json\"",
        sink.url("/doc")
    ));
    doc.notify(
        &alert(EventKind::Failure, history(1)),
        &ctx().format(&json_format),
    )
    .await
    .unwrap();

    let reqs = sink.requests(3);
    assert_eq!(
        reqs[0]["body"],
        "FAILED backup.service: exit-code, status=1"
    );
    assert_eq!(
        header(&reqs[0], "Content-Type").as_deref(),
        Some("text/plain")
    );
    let slack_text = reqs[1]["json"]["text"].as_str().unwrap();
    assert!(
        slack_text.starts_with("*backup.service is down*\n```\nService:"),
        "{slack_text}"
    );
    assert_eq!(reqs[2]["json"]["version"], "1");
    assert_eq!(
        reqs[2]["json"]["title"],
        "[web1] FAILED: backup.service (exit-code, status=1)"
    );

    // a text body under the default JSON content type is a config error, found early
    let table = alertcore::Table::parse(&format!(
        "url = \"{}\"\nbody = \"{{{{ service }}}}\"",
        sink.url("/x")
    ))
    .unwrap();
    let (spec, rest) = FormatSpec::split(&table).unwrap();
    let f = Format::compile(&spec, &Formats::default(), Format::full()).unwrap();
    let n = WebhookConfig::from_table(&rest)
        .and_then(WebhookConfig::build)
        .unwrap();
    let e = n.check_format(&f).unwrap_err();
    assert_eq!(e.offending_key(), Some("body"));
}

#[tokio::test]
async fn slack_and_ntfy_presets() {
    let Some(sink) = HttpSink::try_start() else {
        return;
    };
    let slack = notifier(&format!(
        "url = \"{}\"\npreset = \"slack\"",
        sink.url("/services/T000/B000/XXXX")
    ));
    slack
        .notify(&alert(EventKind::Failure, history(1)), &ctx())
        .await
        .unwrap();
    let r = &sink.requests(1)[0];
    assert_eq!(r["path"], "/services/T000/B000/XXXX");
    assert_eq!(
        header(r, "Content-Type").as_deref(),
        Some("application/json")
    );
    let text = r["json"]["text"].as_str().unwrap();
    assert!(
        text.starts_with("*[web1] FAILED: backup.service (exit-code, status=1)*\n```\n"),
        "{text}"
    );
    assert!(text.contains("Service:   backup.service"), "{text}");

    // `url` is the topic URL; the JSON goes to the server root with the topic inside.
    let ntfy = notifier(&format!(
        "url = \"{}\"\npreset = \"ntfy\"",
        sink.url("/ops-alerts")
    ));
    ntfy.notify(&alert(EventKind::Failure, history(2)), &ctx())
        .await
        .unwrap();
    ntfy.notify(&alert(EventKind::Recovery, history(2)), &ctx())
        .await
        .unwrap();
    let reqs = sink.requests(3);
    let (fail, rec) = (&reqs[1], &reqs[2]);
    assert_eq!(fail["path"], "/");
    assert_eq!(
        fail["json"],
        json!({
            "topic": "ops-alerts",
            "title": "[web1] FAILED: backup.service (exit-code, status=1)",
            "message": "backup.service on web1: exit-code, status=1, 2 consecutive failures \
                        since 2025-11-21T04:40:00.000Z\ndisk full\n\
                        Incident 1763700000000.7.backup_2eservice.web1",
            "priority": 4,
            "tags": ["rotating_light", "failure"],
        })
    );
    assert_eq!(rec["json"]["priority"], 3);
    assert_eq!(rec["json"]["tags"], json!(["white_check_mark", "recovery"]));
    assert_eq!(
        rec["json"]["title"],
        "[web1] RECOVERED: backup.service (after 2 failures)"
    );
}

// ---------------------------------------------------------------------------------------
// one request per delivery; the outbox retries
//
// The sink records a request before it answers, so once `notify` has returned every
// request that delivery made is in `sink.requests(..)`: counting them shows that no
// attempt followed, without waiting.

#[tokio::test]
async fn a_5xx_is_one_request_and_a_retryable_error() {
    let Some(sink) = HttpSink::try_start() else {
        return;
    };
    let n = notifier(&format!("url = \"{}\"", sink.url("/status/500/hook")));
    let e = n
        .notify(&alert(EventKind::Failure, history(1)), &ctx())
        .await
        .unwrap_err();
    assert!(e.is_retryable(), "{e:?}");
    assert_eq!(e.retry_after(), None, "no Retry-After with a 500");
    assert!(
        matches!(
            webhook_error(&e),
            WebhookError::Status {
                status: 500,
                retry_after: None,
                ..
            }
        ),
        "{e:?}"
    );
    // the answer to the first request (`seq` 1), not to a later one
    assert_eq!(
        alertcore::chain(&e),
        format!(
            "webhook delivery failed: http://127.0.0.1:{} answered 500 Internal Server Error: \
             {{\"ok\": false, \"seq\": 1}}",
            sink.port
        )
    );
    assert_eq!(sink.requests(1).len(), 1);
}

/// A 429 or 503 ends the delivery at once, and its `Retry-After`, however long, goes to
/// the outbox with the error.
#[tokio::test]
async fn a_429_or_503_hands_its_retry_after_to_the_outbox_after_one_request() {
    let Some(sink) = HttpSink::try_start() else {
        return;
    };
    // the sink sends `Retry-After: 1` with a 429 or 503 unless the path says otherwise
    let cases = [
        ("/status/503/hook", 503, 1),
        ("/retry-after/120/status/503/hook", 503, 120),
        ("/retry-after/120/status/429/hook", 429, 120),
        // a day: more than the outbox waits (6 h), which is the outbox's to bound
        ("/retry-after/86400/status/429/hook", 429, 86_400),
    ];
    for (i, (path, code, secs)) in cases.into_iter().enumerate() {
        let n = notifier(&format!("url = \"{}\"", sink.url(path)));
        let e = n
            .notify(&alert(EventKind::Failure, history(1)), &ctx())
            .await
            .unwrap_err();
        let wait = Some(Duration::from_secs(secs));
        assert!(e.is_retryable(), "{path}: {e:?}");
        assert_eq!(e.retry_after(), wait, "{path}: {e:?}");
        let w = webhook_error(&e);
        assert_eq!(w.status(), Some(code), "{path}: {e:?}");
        assert_eq!(w.retry_after(), wait, "{path}: {e:?}");
        // exactly one more request than before this delivery
        let reqs = sink.requests(i + 1);
        assert_eq!(reqs.len(), i + 1, "{path}: {reqs:#?}");
        assert_eq!(reqs[i]["path"], path);
    }
}

/// `retries`, `backoff`, `max_backoff` and `max_retry_after` are still accepted, and
/// change nothing: one request per delivery, the server's `Retry-After` passed on whole.
#[tokio::test]
async fn the_retired_retry_keys_change_nothing() {
    let Some(sink) = HttpSink::try_start() else {
        return;
    };
    // The old loop would have waited out each `Retry-After: 1` (within its bound) and
    // sent four requests per delivery; with a `Retry-After` beyond the bound it would
    // have stopped with `RetryAfterTooLong`.
    let keys = "retries = 3\nbackoff = \"10ms\"\nmax_backoff = \"20ms\"\nmax_retry_after = \"5s\"";
    let cases = [
        ("/status/503/hook", 1),
        ("/retry-after/120/status/503/hook", 120),
    ];
    for (i, (path, secs)) in cases.into_iter().enumerate() {
        let n = notifier(&format!("url = \"{}\"\n{keys}", sink.url(path)));
        let e = n
            .notify(&alert(EventKind::Failure, history(1)), &ctx())
            .await
            .unwrap_err();
        assert!(e.is_retryable(), "{path}: {e:?}");
        assert_eq!(
            e.retry_after(),
            Some(Duration::from_secs(secs)),
            "{path}: {e:?}"
        );
        assert!(
            matches!(webhook_error(&e), WebhookError::Status { status: 503, .. }),
            "{path}: {e:?}"
        );
        assert_eq!(sink.requests(i + 1).len(), i + 1, "{path}");
    }
}

/// The next delivery of the same notification (the outbox's retry) sends the same
/// request: body and signature.
#[tokio::test]
async fn a_500_then_200_is_delivered_by_the_next_attempt_with_the_same_request() {
    let Some(sink) = HttpSink::try_start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let key = secret_file(&dir, "key", "k");
    let n = notifier(&format!(
        "url = \"{}\"\nhmac_secret_file = {key:?}",
        sink.url("/fail/500/1/hook")
    ));
    let alert = alert(EventKind::Failure, history(1));
    let e = n.notify(&alert, &ctx()).await.unwrap_err();
    assert!(e.is_retryable(), "{e:?}");
    assert_eq!(sink.requests(1).len(), 1);
    n.notify(&alert, &ctx()).await.unwrap();
    let reqs = sink.requests(2);
    let statuses: Vec<&Value> = reqs.iter().map(|r| &r["status"]).collect();
    assert_eq!(statuses, [500, 200]);
    assert_eq!(reqs[0]["body"], reqs[1]["body"]);
    assert_eq!(
        header(&reqs[0], "X-Alertcore-Signature"),
        header(&reqs[1], "X-Alertcore-Signature")
    );
}

#[tokio::test]
async fn a_400_is_not_retryable() {
    let Some(sink) = HttpSink::try_start() else {
        return;
    };
    let n = notifier(&format!("url = \"{}\"", sink.url("/status/400/hook")));
    let e = n
        .notify(&alert(EventKind::Failure, history(1)), &ctx())
        .await
        .unwrap_err();
    assert!(!e.is_retryable(), "{e:?}");
    assert!(
        matches!(webhook_error(&e), WebhookError::Status { status: 400, .. }),
        "{e:?}"
    );
    assert_eq!(
        alertcore::chain(&e),
        format!(
            "webhook delivery failed: http://127.0.0.1:{} answered 400 Bad Request: \
             {{\"ok\": false, \"seq\": 1}}",
            sink.port
        )
    );
    assert_eq!(sink.requests(1).len(), 1);
}

#[tokio::test]
async fn connection_refused_is_retryable() {
    // nothing listens on a port that was free a moment ago
    let url = format!("http://127.0.0.1:{}/hook", free_port());
    let n = notifier(&format!("url = \"{url}\""));
    let e = n
        .notify(&alert(EventKind::Failure, history(1)), &ctx())
        .await
        .unwrap_err();
    assert!(e.is_retryable(), "{e:?}");
    assert_eq!(e.retry_after(), None);
    assert!(
        matches!(
            webhook_error(&e),
            WebhookError::Connect {
                retryable: true,
                ..
            }
        ),
        "{e:?}"
    );
    let msg = alertcore::chain(&e);
    assert!(
        msg.starts_with("webhook delivery failed: cannot connect to http://127.0.0.1:"),
        "{msg}"
    );
    assert!(
        !msg.contains("/hook"),
        "the path stays out of errors: {msg}"
    );
}

#[tokio::test]
async fn a_timeout_is_retryable() {
    let Some(sink) = HttpSink::try_start() else {
        return;
    };
    let n = notifier(&format!(
        "url = \"{}\"\ntimeout = \"300ms\"",
        sink.url("/delay/3000/hook")
    ));
    // the sink answers after 3 s: an error at all means the 300 ms timeout struck
    let e = n
        .notify(&alert(EventKind::Failure, history(1)), &ctx())
        .await
        .unwrap_err();
    assert!(e.is_retryable(), "{e:?}");
    assert_eq!(e.retry_after(), None);
    assert!(
        matches!(webhook_error(&e), WebhookError::Timeout { .. }),
        "{e:?}"
    );
}

/// One delivery is one request, whatever the deprecated `retries`/`backoff` keys say
/// (the outbox is the one retry layer): a server that takes the connection and closes it
/// unanswered sees one connection, and the error is retryable.
#[tokio::test]
async fn a_connection_closed_unanswered_is_one_attempt_and_retryable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let accepted = std::thread::spawn(move || {
        listener.set_nonblocking(true).expect("nonblocking");
        let mut n = 0;
        let until = Instant::now() + WAIT;
        // counts connections until the notifier has returned and the marker comes
        while Instant::now() < until {
            match listener.accept() {
                Ok((stream, _)) => {
                    n += 1;
                    if stream.peek(&mut [0; 1]).is_ok_and(|read| read == 0) {
                        return n - 1; // the marker: connected and closed at once
                    }
                    drop(stream); // read nothing, answer nothing
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        n
    });
    let n = notifier(&format!(
        "url = \"http://127.0.0.1:{port}/hook\"\nretries = 3\nbackoff = \"1ms\"\nmax_backoff = \"1ms\""
    ));
    let e = n
        .notify(&alert(EventKind::Failure, history(1)), &ctx())
        .await
        .unwrap_err();
    assert!(e.is_retryable(), "{e:?}");
    drop(std::net::TcpStream::connect(("127.0.0.1", port)).expect("the marker connects"));
    assert_eq!(accepted.join().expect("the counter"), 1, "{e:?}");
}

/// The outbox is the one retry layer, end to end through the engine: a 503 with
/// `Retry-After: 120` is one request, and the next attempt is 120 s on (the outbox's
/// own first backoff, 30 s plus at most 25 % jitter, is shorter); a flush before then
/// sends nothing, the one after it delivers the same body.
#[tokio::test]
async fn the_outbox_retries_a_503_no_sooner_than_its_retry_after() {
    let Some(sink) = HttpSink::try_start() else {
        return;
    };
    let hook = notifier(&format!(
        "url = \"{}\"",
        sink.url("/retry-after/120/fail/503/1/hook")
    ));
    let clock = ManualClock::new(START);
    let engine = Engine::builder(Arc::new(SqliteStore::open_in_memory().expect("store")))
        .notifier("hook", Arc::new(hook))
        .clock(clock.clone())
        .build();
    let report = engine
        .failure(
            "backup.service",
            FailureReport::new("exit-code").exit_status("1"),
        )
        .await
        .expect("recorded");
    let [d] = report.deliveries.as_slice() else {
        panic!("one delivery: {report:?}");
    };
    assert_eq!(d.notifier, "hook");
    assert!(d.retryable, "{d:?}");
    assert!(
        d.error
            .as_deref()
            .is_some_and(|e| e.contains("answered 503 Service Unavailable")),
        "{d:?}"
    );
    let due = START.saturating_add(Duration::from_secs(120));
    assert_eq!(d.next_attempt, Some(due), "{d:?}");
    assert_eq!(sink.requests(1).len(), 1);

    // past the outbox's own backoff, a second before the Retry-After: not due
    clock.advance(Duration::from_secs(119));
    let sent = engine.flush().await.expect("flush");
    assert!(sent.is_empty(), "{sent:?}");
    assert_eq!(sink.requests(1).len(), 1);

    clock.advance(Duration::from_secs(1));
    let sent = engine.flush().await.expect("flush");
    let [d] = sent.as_slice() else {
        panic!("one delivery: {sent:?}");
    };
    assert!(d.delivered() && d.from_outbox, "{d:?}");
    let reqs = sink.requests(2);
    assert_eq!(reqs.len(), 2, "{reqs:#?}");
    let statuses: Vec<&Value> = reqs.iter().map(|r| &r["status"]).collect();
    assert_eq!(statuses, [503, 200]);
    assert_eq!(reqs[0]["body"], reqs[1]["body"]);
    assert_eq!(reqs[0]["json"]["service"], "backup.service");
}

#[tokio::test]
async fn missing_token_is_a_config_error_and_nothing_is_sent() {
    let Some(sink) = HttpSink::try_start() else {
        return;
    };
    let n = notifier(&format!(
        "url = \"{}\"\ntoken_file = \"/nonexistent/alertcore-token\"",
        sink.url("/hook")
    ));
    let e = n
        .notify(&alert(EventKind::Failure, history(1)), &ctx())
        .await
        .unwrap_err();
    assert!(matches!(e, NotifyError::Config { .. }), "{e:?}");
    assert!(!e.is_retryable());
    // a marker request shows that nothing came before it
    let marker = notifier(&format!("url = \"{}\"", sink.url("/marker")));
    marker
        .notify(&alert(EventKind::Failure, history(1)), &ctx())
        .await
        .unwrap();
    let reqs = sink.requests(1);
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0]["path"], "/marker");
}

// ---------------------------------------------------------------------------------------
// TLS

#[tokio::test]
async fn https_with_a_private_ca() {
    let certs = certs();
    let cert = certs.cert().display().to_string();
    let key = certs.key().display().to_string();
    let Some(sink) = HttpSink::try_start_with(&["--cert", &cert, "--key", &key], true) else {
        return;
    };
    let ca = certs.ca().display().to_string();
    let url = sink.url("/tls");

    let trusted = notifier(&format!("url = \"{url}\"\nca_file = {ca:?}"));
    trusted
        .notify(&alert(EventKind::Failure, history(1)), &ctx())
        .await
        .unwrap();

    // the system roots do not know the test CA: refused, and retrying cannot help
    let untrusted = notifier(&format!("url = \"{url}\""));
    let e = untrusted
        .notify(&alert(EventKind::Failure, history(1)), &ctx())
        .await
        .unwrap_err();
    assert!(!e.is_retryable(), "{e:?}");
    assert!(
        matches!(
            webhook_error(&e),
            WebhookError::Connect {
                retryable: false,
                ..
            }
        ),
        "{e:?}"
    );

    let insecure = notifier(&format!(
        "url = \"{url}\"\ntls_insecure_skip_verify_dangerous = true"
    ));
    insecure
        .notify(&alert(EventKind::Failure, history(1)), &ctx())
        .await
        .unwrap();

    let paths: Vec<Value> = sink.logged().iter().map(|r| r["path"].clone()).collect();
    assert_eq!(paths, ["/tls", "/tls"]);
    assert!(sink.logged().iter().all(|r| r["tls"] == true));
}

// ---------------------------------------------------------------------------------------
// Alertmanager

/// A real Alertmanager on 127.0.0.1 forwarding its notifications to `webhook`; killed
/// on drop.
struct Alertmanager {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Alertmanager {
    fn try_start(webhook: &str) -> Option<Self> {
        let found = |p: &str| {
            Command::new("sh")
                .args(["-c", &format!("command -v {p}")])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        require(
            "prometheus-alertmanager",
            found("prometheus-alertmanager") && found("amtool"),
            "apt-get install -y --no-install-recommends prometheus-alertmanager",
        )?;
        let mut last = String::new();
        for _ in 0..5 {
            match Self::spawn(webhook) {
                Ok(am) => return Some(am),
                Err(why) => last = why,
            }
        }
        panic!("Alertmanager did not start: {last}");
    }

    fn spawn(webhook: &str) -> Result<Self, String> {
        let dir = tempfile::Builder::new()
            .prefix("alertcore-alertmanager-")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("log")).map_err(|e| e.to_string())?;
        let child = Command::new("bash")
            .arg(START_AM)
            .arg(dir.path())
            .arg(webhook)
            .arg(port.to_string())
            .arg("--exec")
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot run {START_AM}: {e}"))?;
        let mut am = Self {
            child,
            port,
            _dir: dir,
        };
        let log = am._dir.path().join("log");
        wait_until(&mut am.child, "alertmanager", &log, READY_TIMEOUT, || {
            TcpStream::connect(("127.0.0.1", port)).is_ok() && http_get(port, "/-/ready").0 == 200
        })?;
        Ok(am)
    }

    /// `GET /api/v2/alerts`: the alerts that are not resolved.
    fn alerts(&self) -> Vec<Value> {
        let (status, body) = http_get(self.port, "/api/v2/alerts");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).expect("alertmanager JSON")
    }

    /// Polls [`Alertmanager::alerts`] until `done` holds for them, up to [`WAIT`].
    fn wait_alerts(&self, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let start = Instant::now();
        loop {
            let alerts = self.alerts();
            if done(&alerts) || start.elapsed() > WAIT {
                return alerts;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ours<'a>(alerts: &'a [Value], service: &str) -> Vec<&'a Value> {
    alerts
        .iter()
        .filter(|a| a["labels"]["service"] == service)
        .collect()
}

#[tokio::test]
async fn alertmanager_shows_the_alert_and_resolves_it_after_recovery() {
    let Some(sink) = HttpSink::try_start() else {
        return;
    };
    let Some(am) = Alertmanager::try_start(&sink.url("/from-alertmanager")) else {
        return;
    };
    let config = Config::parse(
        &format!(
            "[notifiers.am]\ntype = \"webhook\"\npreset = \"alertmanager\"\nurl = \
             \"http://127.0.0.1:{}\"\nlabels = {{ team = \"ops\" }}\n",
            am.port
        ),
        "alertcore.toml",
    )
    .unwrap();
    let notifiers = config
        .build_notifiers(&Registry::new().with(alertcore_webhook::FACTORY))
        .unwrap();
    let engine = Engine::builder(Arc::new(MemoryStore::new()))
        .configured(notifiers)
        .host("web1")
        .build();
    let service = "backup.service";

    let report = engine
        .failure(
            service,
            FailureReport::new("exit-code")
                .exit_code("exited")
                .exit_status("1")
                .severity(Severity::Critical),
        )
        .await
        .unwrap();
    assert!(report.all_delivered(), "{report:?}");

    let alerts = am.wait_alerts(|a| !ours(a, service).is_empty());
    let firing = ours(&alerts, service);
    assert_eq!(firing.len(), 1, "{alerts:#?}");
    let a = firing[0];
    assert_eq!(
        a["labels"],
        json!({
            "alertname": "ServiceFailed", "service": service, "host": "web1",
            "severity": "critical", "team": "ops"
        })
    );
    assert_eq!(
        a["annotations"]["summary"],
        "[web1] FAILED: backup.service (exit-code, status=1)"
    );
    assert_eq!(a["annotations"]["event"], "failure");
    assert_eq!(a["annotations"]["failures"], "1");
    assert!(
        ["active", "unprocessed"].contains(&a["status"]["state"].as_str().unwrap_or("")),
        "{a:#}"
    );
    // firing: endsAt is ends_after (24 h) away, not Alertmanager's resolve_timeout
    let time = |key: &str| {
        humantime::parse_rfc3339_weak(a[key].as_str().unwrap_or_default())
            .unwrap_or_else(|e| panic!("{key}: {e}: {a:#}"))
    };
    let open_for = time("endsAt").duration_since(time("startsAt")).unwrap();
    assert!(open_for > Duration::from_secs(23 * 3600), "{a:#}");

    // Alertmanager passes it on to its own webhook receiver
    let from_am = sink.requests(1);
    assert_eq!(from_am[0]["path"], "/from-alertmanager");
    assert_eq!(from_am[0]["json"]["status"], "firing");
    assert_eq!(
        from_am[0]["json"]["alerts"][0]["labels"]["service"],
        service
    );

    let report = engine.success(service).await.unwrap();
    assert_eq!(report.deliveries.len(), 1, "{report:?}");
    assert!(report.all_delivered(), "{report:?}");

    // resolved: gone from the active alerts, and Alertmanager says so downstream
    let alerts = am.wait_alerts(|a| ours(a, service).is_empty());
    assert!(ours(&alerts, service).is_empty(), "{alerts:#?}");
    let start = Instant::now();
    let resolved = loop {
        let reqs = sink.requests(2);
        if let Some(r) = reqs.iter().find(|r| r["json"]["status"] == "resolved") {
            break r.clone();
        }
        assert!(
            start.elapsed() < WAIT,
            "no resolved notification: {reqs:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(resolved["json"]["alerts"][0]["labels"]["service"], service);
}

// ---------------------------------------------------------------------------------------
// alertctl

#[test]
fn alertctl_notify_test_posts_a_signed_webhook() {
    let Some(sink) = HttpSink::try_start() else {
        return;
    };
    let ctl = Ctl::with_config(&format!(
        "host = \"web1\"\n[notifiers.hook]\ntype = \"webhook\"\nurl = \"{}\"\n\
         token_env = \"ALERTCORE_TEST_WEBHOOK_TOKEN\"\n\
         hmac_secret_env = \"ALERTCORE_TEST_WEBHOOK_KEY\"\n",
        sink.url("/notify-test")
    ));
    let out = ctl
        .command(&["notify-test", "hook"])
        .env("ALERTCORE_TEST_WEBHOOK_TOKEN", "cli-t0ken")
        .env("ALERTCORE_TEST_WEBHOOK_KEY", "cli-k3y")
        .output()
        .expect("run alertctl");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let r = &sink.requests(1)[0];
    assert_eq!(
        header(r, "Authorization").as_deref(),
        Some("Bearer cli-t0ken")
    );
    assert_eq!(
        header(r, "X-Alertcore-Signature"),
        Some(expected_signature("cli-k3y", r["body"].as_str().unwrap()))
    );
    let doc = &r["json"];
    assert_eq!(doc["event"], "failure");
    assert_eq!(doc["service"], "alertctl-notify-test.service");
    assert_eq!(doc["host"], "web1");
    assert_eq!(doc["severity"], "warning");
    assert_eq!(doc["notifier"], "hook");
    assert!(!ctl.state().exists());
}

#[test]
fn alertctl_failure_reports_a_refused_webhook_without_its_secrets() {
    let Some(sink) = HttpSink::try_start() else {
        return;
    };
    let ctl = Ctl::with_config(&format!(
        "[notifiers.hook]\ntype = \"webhook\"\nurl = \"{}\"\ntoken_env = \"ALERTCORE_TEST_WEBHOOK_TOKEN\"\n",
        sink.url("/status/403/s3cret-path")
    ));
    let out = ctl
        .command(&failure_args("backup.service"))
        .env("ALERTCORE_TEST_WEBHOOK_TOKEN", "cli-t0ken")
        .output()
        .expect("run alertctl");
    let all = text(&out);
    // recorded, but not delivered, and not worth retrying
    assert_eq!(out.status.code(), Some(3), "{all}");
    assert!(
        all.contains("alertctl: LOST: hook failure of backup.service (#1): not delivered (not retryable): webhook delivery failed: http://127.0.0.1:"),
        "{all}"
    );
    assert!(all.contains("answered 403 Forbidden"), "{all}");
    assert!(!all.contains("s3cret-path"), "{all}");
    assert!(!all.contains("cli-t0ken"), "{all}");
    assert_eq!(sink.requests(1).len(), 1);
}

/// The outbox end to end: the receiver is down when the alert and the recovery happen;
/// both stay queued (the recovery behind the alert), and `alertctl flush` delivers them
/// in order once it is back.
#[test]
fn the_outbox_delivers_in_order_once_the_receiver_is_back() {
    let Some(sink) = HttpSink::try_start() else {
        return;
    };
    let port = sink.port;
    drop(sink);
    let ctl = Ctl::with_config(&format!(
        "[notifiers.hook]\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{port}/hook\"\n"
    ));
    let out = ctl.run_at("2026-11-23T10:00:00Z", &failure_args("web.service"));
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("not delivered, will retry at "),
        "{}",
        text(&out)
    );
    // the recovery comes while the alert is still queued: it queues behind it
    let out = ctl.run_at("2026-11-23T10:00:10Z", &["success", "web.service"]);
    assert!(text(&out).contains("hook: send recovery"), "{}", text(&out));
    let rows = ctl.json(&["--now", "2026-11-23T10:00:10Z", "outbox", "--json"]);
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|r| r["status"] == "pending"), "{rows:?}");
    // not due yet: the flush sends nothing
    let out = ctl.run_at("2026-11-23T10:00:11Z", &["flush"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("nothing due"), "{}", text(&out));

    let Some(sink) = HttpSink::try_start_on(port) else {
        return;
    };
    let out = ctl.run_at("2026-11-23T10:02:00Z", &["flush"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let got = sink.requests(2);
    let events: Vec<&str> = got
        .iter()
        .map(|r| r["json"]["event"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(events, ["failure", "recovery"], "{got:?}");
    let rows = ctl.json(&["--now", "2026-11-23T10:02:00Z", "outbox", "--json"]);
    assert_eq!(rows.as_array().map(Vec::len), Some(0), "{rows}");
    // the next flush has nothing left
    let out = ctl.run_at("2026-11-23T10:03:00Z", &["flush"]);
    assert!(text(&out).contains("nothing due"), "{}", text(&out));
}

/// `alertctl failure` also sends what is due in the outbox for the notifiers its event
/// touched: an earlier alert to the same webhook, retried once the receiver is back.
#[test]
fn the_next_event_for_a_notifier_sends_its_due_retries() {
    let Some(sink) = HttpSink::try_start() else {
        return;
    };
    let port = sink.port;
    drop(sink);
    let ctl = Ctl::with_config(&format!(
        "[notifiers.hook]\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{port}/hook\"\n"
    ));
    let fail = |now: &str, unit: &str| ctl.run_at(now, &failure_args(unit));
    let out = fail("2026-11-23T10:00:00Z", "web.service");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let Some(sink) = HttpSink::try_start_on(port) else {
        return;
    };
    let out = fail("2026-11-23T10:02:00Z", "db.service");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("hook failure of web.service (#1): delivered from the outbox"),
        "{}",
        text(&out)
    );
    let got = sink.requests(2);
    let services: Vec<&str> = got
        .iter()
        .map(|r| r["json"]["service"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(services, ["db.service", "web.service"], "{got:?}");
}

/// The retry keys the outbox replaced still load, and `config check` says they are no
/// longer used (on stderr; the check passes).
#[test]
fn config_check_says_which_webhook_keys_are_no_longer_used() {
    let ctl = Ctl::with_config(
        "[notifiers.hook]\ntype = \"webhook\"\nurl = \"http://127.0.0.1:9/x\"\nretries = 3\nbackoff = \"5s\"\n",
    );
    let out = ctl.run(&["config", "check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("webhook: `retries`, `backoff` are no longer used and can be removed"),
        "{}",
        text(&out)
    );
    // and a config without them says nothing
    let clean =
        Ctl::with_config("[notifiers.hook]\ntype = \"webhook\"\nurl = \"http://127.0.0.1:9/x\"\n");
    let out = clean.run(&["config", "check"]);
    assert!(out.stderr.is_empty(), "{}", text(&out));
}

/// A `template` on the document's field names still works, with a warning that they are
/// deprecated; `variables` says which, and applies to `template` only.
#[test]
fn config_check_warns_of_a_template_on_the_document_names() {
    let hook = "[notifiers.hook]\ntype = \"webhook\"\nurl = \"http://127.0.0.1:9/x\"\n\
                content_type = \"text/plain\"\n";
    let old = Ctl::with_config(&format!("{hook}template = \"{{{{ time | rfc3339 }}}}\"\n"));
    let out = old.run(&["config", "check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "webhook: `template` is rendered with the JSON document's field names, which are \
             deprecated: set variables = \"core\""
        ),
        "{}",
        text(&out)
    );
    for variables in ["core", "document"] {
        let template = match variables {
            "core" => "{{ time_ms | rfc3339 }}",
            _ => "{{ time | rfc3339 }}",
        };
        let chosen = Ctl::with_config(&format!(
            "{hook}variables = \"{variables}\"\ntemplate = \"{template}\"\n"
        ));
        let out = chosen.run(&["config", "check"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        assert!(out.stderr.is_empty(), "{variables}: {}", text(&out));
    }
    // the document's names are not the core's: a template on the wrong ones is refused
    let wrong = Ctl::with_config(&format!(
        "{hook}variables = \"core\"\ntemplate = \"{{{{ time | rfc3339 }}}}\"\n"
    ));
    let out = wrong.run(&["config", "check"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("template fails on a sample"),
        "{}",
        text(&out)
    );
    let preset = Ctl::with_config(
        "[notifiers.hook]\ntype = \"webhook\"\nurl = \"http://127.0.0.1:9/x\"\n\
         preset = \"slack\"\nvariables = \"core\"\n",
    );
    let out = preset.run(&["config", "check"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        // located at the key
        stderr.contains(
            "alertcore.toml:5:1: notifier \"hook\": `variables` only applies to `template`"
        ),
        "{}",
        text(&out)
    );
}

// ---------------------------------------------------------------------------------------
// Grouping (`group_wait`)

/// An engine on a manual clock (from now: Alertmanager judges alerts by their times)
/// over `notifier_toml` (one `[notifiers.hook]` table).
fn grouped_engine(notifier_toml: &str) -> (Engine, Arc<ManualClock>) {
    let config = Config::parse(notifier_toml, "alertcore.toml").expect("config");
    let notifiers = config
        .build_notifiers(&Registry::new().with(alertcore_webhook::FACTORY))
        .expect("notifiers");
    let clock = ManualClock::new(alertcore::Clock::now(&alertcore::SystemClock));
    let engine = Engine::builder(Arc::new(MemoryStore::new()))
        .configured(notifiers)
        .clock(clock.clone())
        .host("web1")
        .build();
    (engine, clock)
}

fn crit() -> FailureReport {
    FailureReport::new("exit-code")
        .exit_status("1")
        .severity(Severity::Critical)
}

/// 50 services failing within `group_wait` are one POST of the versioned group document
/// at the flush after it, with one document per service; their 50 recoveries, after
/// `group_interval`, are one more.
#[tokio::test]
async fn fifty_failures_within_group_wait_are_one_post() {
    let Some(sink) = HttpSink::try_start() else {
        return;
    };
    let (engine, clock) = grouped_engine(&format!(
        "[notifiers.hook]\ntype = \"webhook\"\nurl = \"{}\"\ngroup_wait = \"30s\"\n\
         group_interval = \"2m\"\n",
        sink.url("/group")
    ));
    for i in 0..50 {
        let report = engine
            .failure(&format!("unit-{i:02}.service"), crit())
            .await
            .unwrap();
        assert!(
            report.deliveries.is_empty(),
            "nothing is sent before group_wait"
        );
        assert_eq!(report.waiting.len(), 1);
        assert!(
            report.waiting[0]
                .to_string()
                .contains("waiting in the outbox for others to group with until"),
            "{}",
            report.waiting[0]
        );
        clock.advance(Duration::from_millis(100));
    }
    assert!(
        engine.flush().await.unwrap().is_empty(),
        "the wait is not over"
    );
    clock.advance(Duration::from_secs(30));
    let sent = engine.flush().await.unwrap();
    assert_eq!(sent.len(), 50, "{sent:?}");
    assert!(sent.iter().all(|d| d.delivered()), "{sent:?}");
    let requests = sink.requests(1);
    assert_eq!(requests.len(), 1, "one POST for the group");
    let body = &requests[0]["json"];
    assert_eq!(body["version"], "1");
    assert_eq!(body["event"], "group");
    assert_eq!(body["count"], 50);
    let services: Vec<&str> = body["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            assert_eq!(n["event"], "failure");
            n["service"].as_str().unwrap()
        })
        .collect();
    let expected: Vec<String> = (0..50).map(|i| format!("unit-{i:02}.service")).collect();
    assert_eq!(services, expected);
    // recoveries are grouped the same way, no sooner than group_interval after it
    for i in 0..50 {
        engine
            .success(&format!("unit-{i:02}.service"))
            .await
            .unwrap();
    }
    clock.advance(Duration::from_secs(60));
    assert!(
        engine.flush().await.unwrap().is_empty(),
        "inside group_interval"
    );
    clock.advance(Duration::from_secs(60));
    assert_eq!(engine.flush().await.unwrap().len(), 50);
    let requests = sink.requests(2);
    assert_eq!(requests.len(), 2);
    let recoveries = requests[1]["json"]["notifications"].as_array().unwrap();
    assert_eq!(recoveries.len(), 50);
    assert!(recoveries.iter().all(|n| n["event"] == "recovery"));
}

/// The `alertmanager` preset sends a group as one POST holding one alert per service,
/// and a real Alertmanager shows all of them, each with its own labels.
#[tokio::test]
async fn a_group_to_alertmanager_is_one_post_with_an_alert_per_service() {
    let Some(sink) = HttpSink::try_start() else {
        return;
    };
    let Some(am) = Alertmanager::try_start(&sink.url("/from-alertmanager")) else {
        return;
    };
    let (engine, clock) = grouped_engine(&format!(
        "[notifiers.hook]\ntype = \"webhook\"\npreset = \"alertmanager\"\n\
         url = \"http://127.0.0.1:{}\"\ngroup_wait = \"10s\"\n",
        am.port
    ));
    // what is sent: one POST holding the 20 alerts (seen at the sink first)
    let (to_sink, sink_clock) = grouped_engine(&format!(
        "[notifiers.hook]\ntype = \"webhook\"\npreset = \"alertmanager\"\n\
         url = \"{}\"\ngroup_wait = \"10s\"\n",
        sink.url("/am")
    ));
    for i in 0..20 {
        to_sink
            .failure(&format!("grp-{i:02}.service"), crit())
            .await
            .unwrap();
        engine
            .failure(&format!("grp-{i:02}.service"), crit())
            .await
            .unwrap();
    }
    sink_clock.advance(Duration::from_secs(10));
    assert_eq!(to_sink.flush().await.unwrap().len(), 20);
    let requests = sink.requests(1);
    assert_eq!(requests.len(), 1);
    let posted = requests[0]["json"].as_array().unwrap();
    assert_eq!(posted.len(), 20, "{posted:#?}");
    assert_eq!(posted[7]["labels"]["service"], "grp-07.service");
    clock.advance(Duration::from_secs(10));
    let sent = engine.flush().await.unwrap();
    assert_eq!(sent.len(), 20, "{sent:?}");
    assert!(sent.iter().all(|d| d.delivered()), "{sent:?}");
    let alerts = am.wait_alerts(|a| {
        a.iter()
            .filter(|x| {
                x["labels"]["service"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("grp-"))
            })
            .count()
            == 20
    });
    for i in 0..20 {
        let service = format!("grp-{i:02}.service");
        let mine = ours(&alerts, &service);
        assert_eq!(mine.len(), 1, "{service}: {alerts:#?}");
        assert_eq!(mine[0]["labels"]["severity"], "critical");
    }
}

/// A preset that takes one message per request cannot group: a config error at
/// `group_wait`.
#[test]
fn slack_cannot_group() {
    let config = Config::parse(
        "[notifiers.chat]\ntype = \"webhook\"\npreset = \"slack\"\n\
         url = \"http://127.0.0.1:9/\"\ngroup_wait = \"30s\"\n",
        "alertcore.toml",
    )
    .unwrap();
    let e = config
        .build_notifiers(&Registry::new().with(alertcore_webhook::FACTORY))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(
            "alertcore.toml:5:1: notifier \"chat\": the slack preset takes one message per request"
        ),
        "{e}"
    );
}
