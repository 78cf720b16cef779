//! `[http]` end to end: the healthchecks.io-compatible ping API answered to curl and
//! to a Rust HTTP client (reqwest), keys and tokens, `/metrics` checked by Prometheus'
//! own `promtool`, and the status page in a real headless Chromium (driven through
//! chromedriver: its DOM asserted on, a screenshot taken, its console read).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::cli::{Ctl, text};
use crate::daemon::{Daemon, closed_port, wait_lines};
use crate::heartbeat::events;

const DEADLINE: Duration = Duration::from_secs(20);

/// A plain-HTTP reqwest client (reqwest is built here without a TLS provider of its
/// own: the webhook crate hands it one; this installs ring's as the default).
fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// Whether `program` is installed; under CI (`CI` set, see `under_ci`) it must be.
fn present(program: &str, package: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            !crate::under_ci(),
            "{program} is missing ({package}): tests/run.sh installs it"
        );
        eprintln!("skipping: {program} is missing (apt-get install {package})");
    }
    found
}

/// A daemon with `[http]` on a free port and `rest` of the config; its base URL.
fn start(http: &str, rest: &str) -> (Ctl, Daemon, String, PathBuf) {
    let port = closed_port();
    let mut ctl = Ctl::new();
    let file = ctl.dir.path().join("alerts.jsonl");
    ctl.set_config(&format!(
        "[daemon]\nflush_every = \"1s\"\n\n\
         [http]\nlisten = \"127.0.0.1:{port}\"\n{http}\n\
         [notifiers.log]\ntype = \"file\"\nformat = \"json\"\npath = \"{}\"\n\n{rest}",
        file.display()
    ));
    let daemon = Daemon::start(&ctl);
    daemon.wait_log(0, "listening on http://");
    (ctl, daemon, format!("http://127.0.0.1:{port}"), file)
}

/// `curl -s -o /dev/stderr -w %{http_code} ARGS...`: the status code and the body.
fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-S", "--max-time", "10", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("run curl");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = stdout.rsplit_once('\n').expect("the status code line");
    (code.trim().parse().expect("a status code"), body.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ping_api_answers_curl_and_a_rust_client_as_healthchecks_does() {
    let (ctl, daemon, base, file) = start(
        "",
        "[[heartbeats]]\nname = \"backup\"\nperiod = \"1h\"\nmin_runtime = \"1s\"\n",
    );
    // curl: success, start, a failure with its output as the body
    assert_eq!(
        curl(&[&format!("{base}/ping/backup")]),
        (200, "OK".to_owned())
    );
    assert_eq!(curl(&["-I", &format!("{base}/ping/backup")]).0, 200, "HEAD");
    assert_eq!(
        curl(&["-X", "POST", &format!("{base}/ping/backup/start?rid=run-1")]),
        (200, "OK".to_owned())
    );
    std::thread::sleep(Duration::from_millis(1100)); // past min_runtime (a real run's length)
    assert_eq!(
        curl(&[
            "--data-binary",
            "tar: /srv: Cannot open: Permission denied\nmore",
            &format!("{base}/ping/backup/2?rid=run-1")
        ]),
        (200, "OK".to_owned())
    );
    let alerts = wait_lines(&file, 1, &daemon);
    assert_eq!(alerts[0]["service"], "backup");
    assert_eq!(
        events(&alerts),
        [(
            "failure".to_owned(),
            "failed".to_owned(),
            "exit status 2: tar: /srv: Cannot open: Permission denied".to_owned()
        )]
    );
    // a Rust HTTP client: log, then exit status 0 is the recovery
    let client = client();
    let r = client
        .post(format!("{base}/ping/backup/log"))
        .body("retrying with sudo")
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status().as_u16(), 200);
    let r = client
        .get(format!("{base}/ping/backup/0"))
        .send()
        .await
        .expect("GET");
    assert_eq!(
        (r.status().as_u16(), r.text().await.expect("body")),
        (200, "OK".to_owned())
    );
    let alerts = wait_lines(&file, 2, &daemon);
    assert_eq!(
        (alerts[1]["service"].as_str(), alerts[1]["event"].as_str()),
        (Some("backup"), Some("recovery"))
    );
    // unknown names and actions are 404, as at healthchecks.io
    for path in [
        "/ping/nope",
        "/ping/backup/restart",
        "/ping/backup/256",
        "/nothing",
    ] {
        let r = client
            .get(format!("{base}{path}"))
            .send()
            .await
            .expect("GET");
        assert_eq!(r.status().as_u16(), 404, "{path}");
    }
    // every signal is in the store, in order, with its body and run id
    let db = rusqlite::Connection::open(ctl.state()).expect("open state");
    type Row = (String, Option<i64>, Option<String>, Option<String>);
    let rows: Vec<Row> = db
        .prepare(
            "SELECT kind, exit_status, rid, body FROM signals WHERE source = 'backup' ORDER BY id",
        )
        .expect("prepare")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    let kinds: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        kinds,
        ["success", "success", "start", "exit", "log", "exit"],
        "{rows:?}"
    );
    assert_eq!(rows[3].1, Some(2));
    assert_eq!(rows[3].2.as_deref(), Some("run-1"));
    assert_eq!(rows[4].3.as_deref(), Some("retrying with sudo"));
    drop(daemon);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_tokens_created_heartbeats_and_metrics_that_promtool_accepts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("ping.key");
    let token = dir.path().join("token");
    std::fs::write(&key, "k3y-0f-the-pings\n").expect("write key");
    std::fs::write(&token, "read-0nly\n").expect("write token");
    let own = dir.path().join("vault.key");
    std::fs::write(&own, "v4ult-only").expect("write the vault's key");
    let (ctl, daemon, base, _file) = start(
        &format!(
            "ping_key_file = \"{}\"\ntoken_file = \"{}\"\ncreate_on_ping = true\n",
            key.display(),
            token.display()
        ),
        &format!(
            "[[heartbeats]]\nname = \"backup\"\nperiod = \"1h\"\n\n\
             [[heartbeats]]\nname = \"vault\"\nperiod = \"1h\"\nping_key_file = \"{}\"\n\n\
             [[checks]]\nname = \"db\"\nkind = \"tcp\"\naddress = \"127.0.0.1\"\nport = 1\ninterval = \"1s\"\n",
            own.display()
        ),
    );
    let k = "k3y-0f-the-pings";
    assert_eq!(
        curl(&[&format!("{base}/ping/backup")]).0,
        404,
        "the key is required"
    );
    assert_eq!(curl(&[&format!("{base}/ping/wrong/backup")]).0, 404);
    assert_eq!(curl(&[&format!("{base}/ping/{k}/backup")]).0, 200);
    assert_eq!(curl(&[&format!("{base}/ping/{k}/backup/start")]).0, 200);
    // a run id too long to be one is refused, not stored
    let long = "r".repeat(201);
    let (code, body) = curl(&[&format!("{base}/ping/{k}/backup?rid={long}")]);
    assert_eq!((code, body.as_str()), (400, "invalid rid\n"));
    // a heartbeat with a key of its own takes that one, not [http]'s
    assert_eq!(curl(&[&format!("{base}/ping/{k}/vault")]).0, 404);
    assert_eq!(
        curl(&[&format!("{base}/ping/v4ult-only/vault/fail")]).0,
        200
    );
    assert_eq!(curl(&[&format!("{base}/ping/v4ult-only/backup")]).0, 404);
    // an unknown name with the key creates a heartbeat (daily, an hour's grace)
    assert_eq!(curl(&[&format!("{base}/ping/{k}/nightly-export")]).0, 200);
    // read-only pages want the token
    assert_eq!(curl(&[&format!("{base}/api/v1/status")]).0, 401);
    assert_eq!(curl(&[&format!("{base}/metrics")]).0, 401);
    let auth = "Authorization: Bearer read-0nly";
    let start = Instant::now();
    let status: Value = loop {
        let (code, body) = curl(&["-H", auth, &format!("{base}/api/v1/status")]);
        assert_eq!(code, 200, "{body}");
        let v: Value = serde_json::from_str(&body).expect("JSON");
        let names: Vec<&str> = v["heartbeats"]
            .as_array()
            .map(|a| a.iter().filter_map(|h| h["name"].as_str()).collect())
            .unwrap_or_default();
        if names == ["vault", "backup", "nightly-export"] && v["checks"][0]["failing"].is_object() {
            break v;
        }
        assert!(start.elapsed() < DEADLINE, "{v:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // down first: the vault's failed run; the backup's run goes on
    assert_eq!(status["heartbeats"][0]["result"], "failed", "{status:#}");
    assert!(
        status["heartbeats"][1]["running_since"].is_number(),
        "{status:#}"
    );
    // the same shape as `alertctl status --json`
    let cli = ctl.json(&["status", "--json"]);
    let keys = |v: &Value| {
        let mut k: Vec<String> = v
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        k.sort();
        k
    };
    assert_eq!(keys(&status), keys(&cli));
    // /metrics: counted and state series, as promtool checks them
    let (code, metrics) = curl(&["-H", auth, &format!("{base}/metrics")]);
    assert_eq!(code, 200);
    for want in [
        "alertcore_pings_total{kind=\"success\"} 2",
        "alertcore_pings_total{kind=\"start\"} 1",
        "alertcore_check_duration_seconds_bucket{kind=\"tcp\",le=\"+Inf\"}",
        "alertcore_check_status{check=\"db\"} 2",
        "alertcore_heartbeat_up{heartbeat=\"backup\"} 1",
        "alertcore_heartbeat_last_success_timestamp_seconds{heartbeat=\"nightly-export\"}",
        "alertcore_service_failing{service=\"db\"} 1",
        "alertcore_outbox_deliveries{status=\"pending\"} 0",
        "alertcore_notifications_total{notifier=\"log\",outcome=\"delivered\"}",
    ] {
        assert!(metrics.contains(want), "no {want:?} in\n{metrics}");
    }
    if present("promtool", "prometheus") {
        let mut child = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("promtool");
        {
            use std::io::Write as _;
            let mut stdin = child.stdin.take().expect("stdin");
            stdin.write_all(metrics.as_bytes()).expect("write");
        }
        let out = child.wait_with_output().expect("promtool");
        assert!(
            out.status.success(),
            "promtool check metrics:\n{}\n{metrics}",
            text(&out)
        );
    }
    drop(daemon);
}

/// chromedriver on a free port, and the HTTP client that talks to it.
struct Driver {
    child: Child,
    base: String,
    client: reqwest::Client,
    session: String,
}

impl Driver {
    async fn start(profile: &Path) -> Self {
        let port = closed_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let base = format!("http://127.0.0.1:{port}");
        let client = client();
        let start = Instant::now();
        while client.get(format!("{base}/status")).send().await.is_err() {
            assert!(start.elapsed() < DEADLINE, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--window-size=412,915",
                    format!("--user-data-dir={}", profile.display()),
                ]
            },
            "goog:loggingPrefs": {"browser": "ALL"}
        }}});
        let mut driver = Self {
            child,
            base,
            client,
            session: String::new(),
        };
        let v = driver.call("POST", "/session", caps).await;
        driver.session = v["sessionId"].as_str().expect("a session id").to_owned();
        driver
    }

    /// One WebDriver command; its `value`.
    async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.base);
        let req = match method {
            "GET" => self.client.get(url),
            "DELETE" => self.client.delete(url),
            _ => self
                .client
                .post(url)
                .header("content-type", "application/json")
                .body(body.to_string()),
        };
        let text = req
            .send()
            .await
            .expect("chromedriver")
            .text()
            .await
            .expect("body");
        let v: Value = serde_json::from_str(&text).expect("JSON from chromedriver");
        if let Some(v) = v.get("sessionId").filter(|_| path == "/session") {
            return json!({"sessionId": v, "value": v});
        }
        v["value"].clone()
    }

    async fn session(&self, method: &str, path: &str, body: Value) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), body)
            .await
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_in_headless_chromium_lists_what_is_wrong() {
    if !present("chromedriver", "chromium-driver") || !present("chromium", "chromium") {
        return;
    }
    let dead = closed_port();
    let (_ctl, daemon, base, _file) = start(
        "",
        &format!(
            "[notifiers.hook]\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{dead}/alerts\"\n\n\
             [[checks]]\nname = \"db-port\"\nkind = \"tcp\"\naddress = \"127.0.0.1\"\nport = {dead}\ninterval = \"1s\"\n\n\
             [[heartbeats]]\nname = \"nightly-backup\"\nperiod = \"1s\"\ngrace = \"1s\"\n"
        ),
    );
    // wait for the failing check, the late heartbeat and a pending delivery
    let client = client();
    let start = Instant::now();
    loop {
        let v: Value = serde_json::from_str(
            &client
                .get(format!("{base}/api/v1/status"))
                .send()
                .await
                .expect("GET")
                .text()
                .await
                .expect("body"),
        )
        .expect("JSON");
        let late = v["heartbeats"][0]["state"] == "down";
        let failing = v["services"].as_array().is_some_and(|s| {
            s.iter()
                .any(|s| s["service"] == "db-port" && s["failing"] == true)
        });
        let pending = v["outbox"]
            .as_array()
            .is_some_and(|o| o.iter().any(|r| r["status"] == "pending"));
        if late && failing && pending {
            break;
        }
        assert!(start.elapsed() < DEADLINE, "{v:#}\n{}", daemon.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let profile = tempfile::tempdir().expect("profile dir");
    let driver = Driver::start(profile.path()).await;
    driver
        .session("POST", "/url", json!({"url": format!("{base}/status")}))
        .await;
    let page = driver
        .session(
            "POST",
            "/execute/sync",
            json!({"script": "return {
                title: document.title,
                failing: [...document.querySelectorAll('#failing li.failing')].map(li => ({
                    service: li.dataset.service,
                    message: li.querySelector('.message').textContent})),
                heartbeats: [...document.querySelectorAll('tr.heartbeat')].map(tr => ({
                    name: tr.dataset.name, state: tr.dataset.state, text: tr.textContent})),
                deliveries: [...document.querySelectorAll('tr.delivery')].map(tr => tr.dataset.status),
                viewport: document.querySelector('meta[name=viewport]') !== null,
                scripts: document.scripts.length,
                external: [...document.querySelectorAll('[src],link[href]')]
                    .filter(e => !(e.getAttribute('src') || e.getAttribute('href')).startsWith('data:'))
                    .length,
                overflow: document.documentElement.scrollWidth - window.innerWidth
            }", "args": []}),
        )
        .await;
    let failing = page["failing"].as_array().expect("failing list");
    let db = failing
        .iter()
        .find(|f| f["service"] == "db-port")
        .unwrap_or_else(|| panic!("db-port is not listed as failing: {page:#}"));
    let message = db["message"].as_str().unwrap_or("");
    assert!(message.contains(&format!("127.0.0.1:{dead}")), "{page:#}");
    let hb = &page["heartbeats"][0];
    assert_eq!(
        (hb["name"].as_str(), hb["state"].as_str()),
        (Some("nightly-backup"), Some("down"))
    );
    assert!(
        hb["text"]
            .as_str()
            .unwrap_or("")
            .contains("late: expected by"),
        "{page:#}"
    );
    assert!(
        page["deliveries"]
            .as_array()
            .is_some_and(|d| d.iter().any(|s| s == "pending")),
        "{page:#}"
    );
    assert!(
        page["title"].as_str().unwrap_or("").contains("failing"),
        "{page:#}"
    );
    assert_eq!(page["viewport"], true);
    assert_eq!(
        (page["scripts"].as_u64(), page["external"].as_u64()),
        (Some(0), Some(0))
    );
    // on a phone's width, nothing wider than the screen
    assert!(
        page["overflow"].as_i64().is_some_and(|o| o <= 0),
        "{page:#}"
    );
    // a screenshot, kept for a look
    let png = driver.session("GET", "/screenshot", Value::Null).await;
    let png = decode_base64(png.as_str().expect("base64 PNG"));
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("status-page.png");
    std::fs::write(&shot, &png).expect("write the screenshot");
    // and no console errors
    let log = driver
        .session("POST", "/se/log", json!({"type": "browser"}))
        .await;
    let errors: Vec<&Value> = log
        .as_array()
        .map(|l| l.iter().filter(|e| e["level"] == "SEVERE").collect())
        .unwrap_or_default();
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    driver.session("DELETE", "", Value::Null).await;
    drop(daemon);
}

/// Standard base64 (the screenshot), without a crate for it.
fn decode_base64(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let bytes: Vec<u8> = s
        .bytes()
        .filter(|c| *c != b'=' && !c.is_ascii_whitespace())
        .collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= u32::from(val(*c)) << (18 - 6 * i);
        }
        let take = chunk.len() - 1;
        out.extend_from_slice(&n.to_be_bytes()[1..=take]);
    }
    out
}

/// The healthchecks.io client crate (`healthchecks` on crates.io), pointed at the
/// listener instead of hc-ping.com: it names checks by UUID, so the heartbeat has one.
#[test]
fn the_healthchecks_client_crate_works_by_changing_only_the_base_url() {
    let uuid = "5b1cb0a4-7e2f-4d0e-9d44-3f9e1c2b7a61";
    let (_ctl, daemon, base, file) = start(
        "",
        &format!("[[heartbeats]]\nname = \"{uuid}\"\nperiod = \"1h\"\n"),
    );
    let client =
        healthchecks::ping::get_client_with_url(uuid, &format!("{base}/ping")).expect("a client");
    assert!(client.start_timer(), "start");
    assert!(
        client.report_failure_with_logs("pg_dump: connection refused\nexit 1"),
        "fail"
    );
    let alerts = wait_lines(&file, 1, &daemon);
    assert_eq!(
        events(&alerts),
        [(
            "failure".to_owned(),
            "failed".to_owned(),
            "failed: pg_dump: connection refused".to_owned()
        )]
    );
    assert!(client.report_success(), "success");
    let alerts = wait_lines(&file, 2, &daemon);
    assert_eq!(alerts[1]["event"], "recovery");
    assert_eq!(alerts[1]["service"], uuid);
    drop(daemon);
}
