//! The syslog notifier against a real rsyslog on 127.0.0.1: RFC 5424 fields and
//! structured data over UDP, TCP (octet counting) and the unix socket, RFC 3164, log
//! forging, the size bound, `alertctl notify-test`, and the error classes.
//!
//! Each test starts its own `rsyslogd` ([`Rsyslog`], from Debian's `rsyslog`) through
//! `tests/peers/start-rsyslog.sh`, in its own temporary directory with its own ports and
//! socket, and reads the JSON line rsyslog writes for every message it parsed. Where
//! rsyslogd is not installed the tests that need it pass after saying why; under
//! CI (`CI` set, see `under_ci`) they fail instead.

#![cfg(feature = "syslog")]

use std::error::Error as _;
use std::io::Write as _;
use std::net::{TcpStream, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use alertcore::{
    Config, Context, EventKind, Failure, FailureReport, Format, FormatSpec, Formats, Notification,
    Notifier, NotifyError, Registry, Severity, Timestamp, chain,
};
use alertcore_syslog::SyslogError;
use serde_json::Value;

use crate::cli::{Ctl, text};
use crate::peers::free_port;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/start-rsyslog.sh");
/// Startup takes ~0.5 s; this is for a loaded machine.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
const WAIT: Duration = Duration::from_secs(10);
const START: Timestamp = Timestamp::from_millis(1_763_700_000_000);

// ---------------------------------------------------------------------------------------
// The rsyslog peer

/// Why rsyslogd cannot run here, if it cannot.
fn rsyslogd_missing() -> Option<String> {
    let found = Command::new("bash")
        .args(["-c", "PATH=$PATH:/usr/sbin:/sbin command -v rsyslogd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    (!found).then(|| {
        "rsyslogd is not installed: install Debian's rsyslog \
         (apt-get install -y --no-install-recommends rsyslog)"
            .to_owned()
    })
}

/// A private rsyslogd with a UDP, a TCP and a unix-socket input; killed on drop.
pub(crate) struct Rsyslog {
    child: Child,
    dir: tempfile::TempDir,
    udp: u16,
    tcp: u16,
}

impl Rsyslog {
    /// Starts one, or returns `None` after saying why where rsyslogd is missing (so the
    /// test passes); under CI (`CI` set, see `under_ci`) a missing rsyslogd fails the test.
    pub(crate) fn try_start() -> Option<Self> {
        if let Some(why) = rsyslogd_missing() {
            assert!(
                !crate::under_ci(),
                "the syslog tests cannot run under CI: {why}"
            );
            eprintln!("skipping: {why}");
            return None;
        }
        // The free ports are found by binding and releasing them, so another process can
        // take one before rsyslogd binds it: the probes notice, and we try again.
        let mut last = String::new();
        for _ in 0..5 {
            match Self::spawn() {
                Ok(r) => return Some(r),
                Err(why) => last = why,
            }
        }
        panic!("rsyslogd did not start: {last}");
    }

    fn spawn() -> Result<Self, String> {
        let dir = tempfile::Builder::new()
            .prefix("alertcore-rsyslog-")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        let udp = UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .map_err(|e| format!("free UDP port: {e}"))?
            .port();
        let tcp = free_port();
        let log = |name: &str| {
            std::fs::File::create(dir.path().join(name)).map_err(|e| format!("{name}: {e}"))
        };
        let child = Command::new("bash")
            .arg(SCRIPT)
            .arg("--foreground")
            .arg(dir.path())
            .env("UDP_PORT", udp.to_string())
            .env("TCP_PORT", tcp.to_string())
            .env(
                "PATH",
                format!(
                    "{}:/usr/sbin:/sbin",
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .stdin(Stdio::null())
            .stdout(log("stdout")?)
            .stderr(log("stderr")?)
            .spawn()
            .map_err(|e| format!("cannot run {SCRIPT}: {e}"))?;
        // From here on, drop kills the process whatever happens.
        let mut r = Self {
            child,
            dir,
            udp,
            tcp,
        };
        r.wait_ready()?;
        Ok(r)
    }

    /// Waits until one probe through each input came out: the three inputs are up, and
    /// they are ours (not another program's that took a port first).
    fn wait_ready(&mut self) -> Result<(), String> {
        let start = Instant::now();
        let mut sent = false;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let err =
                    std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default();
                return Err(format!("rsyslogd exited with {status}: {err}"));
            }
            if start.elapsed() > READY_TIMEOUT {
                let err =
                    std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default();
                return Err(format!("rsyslogd not ready after {READY_TIMEOUT:?}: {err}"));
            }
            if !sent
                && self.socket().exists()
                && TcpStream::connect(("127.0.0.1", self.tcp)).is_ok()
            {
                self.probe("ready");
                sent = true;
            }
            if sent && self.came_through_all("ready") {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends a probe record with the message `word INPUT` through each input.
    fn probe(&self, word: &str) {
        let line = |input: &str| format!("<14>1 - - probe - - - {word} {input}");
        if let Ok(s) = UdpSocket::bind("127.0.0.1:0") {
            let _ = s.send_to(line("udp").as_bytes(), ("127.0.0.1", self.udp));
        }
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.tcp)) {
            let l = line("tcp");
            let _ = write!(s, "{} {l}", l.len());
        }
        if let Ok(s) = UnixDatagram::unbound() {
            let _ = s.send_to(line("unix").as_bytes(), self.socket());
        }
    }

    /// Whether the probe `word` came out of all three inputs.
    fn came_through_all(&self, word: &str) -> bool {
        let inputs: Vec<String> = self
            .lines()
            .iter()
            .filter(|r| {
                r["app"] == "probe" && str_of(r, "msg").split_whitespace().next() == Some(word)
            })
            .map(|r| str_of(r, "input"))
            .collect();
        ["imudp", "imtcp", "imuxsock"]
            .iter()
            .all(|i| inputs.iter().any(|x| x == i))
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("log.sock")
    }

    pub(crate) fn address(&self, input: &str) -> String {
        match input {
            "udp" => format!("udp://127.0.0.1:{}", self.udp),
            "tcp" => format!("tcp://127.0.0.1:{}", self.tcp),
            _ => format!("unix://{}", self.socket().display()),
        }
    }

    /// The complete lines rsyslogd has written so far (not one it is still writing).
    fn lines(&self) -> Vec<Value> {
        let text =
            std::fs::read_to_string(self.dir.path().join("out/all.jsonl")).unwrap_or_default();
        let complete = text.rfind('\n').map_or("", |end| &text[..end]);
        complete
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
            .collect()
    }

    /// Every record but the readiness probes, oldest first.
    fn records(&self) -> Vec<Value> {
        self.lines()
            .into_iter()
            .filter(|r| r["app"] != "probe")
            .collect()
    }

    /// Waits until at least `n` records arrived or [`WAIT`] passed, then until a probe
    /// sent after them came out of every input (so a record too many, sent before the
    /// probe, is in too), and returns them all.
    pub(crate) fn wait_for(&self, n: usize) -> Vec<Value> {
        let start = Instant::now();
        while self.records().len() < n && start.elapsed() < WAIT {
            std::thread::sleep(Duration::from_millis(10));
        }
        static MARKS: AtomicUsize = AtomicUsize::new(0);
        let word = format!("mark{}", MARKS.fetch_add(1, Ordering::Relaxed));
        self.probe(&word);
        let start = Instant::now();
        while !self.came_through_all(&word) {
            assert!(
                start.elapsed() < WAIT,
                "the probe {word} did not come through"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        self.records()
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------
// Helpers

fn registry() -> Registry {
    Registry::new().with(alertcore_syslog::FACTORY)
}

/// A notifier built from `[notifiers.log]` with `keys`, as alertctl builds it.
fn notifier(keys: &str) -> Arc<dyn Notifier> {
    let text = format!("[notifiers.log]\ntype = \"syslog\"\n{keys}\n");
    let config = Config::parse(&text, "alertcore.toml").expect("valid TOML");
    let mut built = config
        .build_notifiers(&registry())
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    built.remove(0).notifier
}

/// `n` failures of a run that exited with status 1, a minute apart.
fn history(n: usize, severity: Severity) -> Vec<Failure> {
    (0..n)
        .map(|i| {
            Failure::from_report(
                &FailureReport::new("exit-code")
                    .exit_code("exited")
                    .exit_status("1")
                    .severity(severity)
                    .invocation_id(format!("{i:032x}")),
                "web1",
                START.saturating_add(Duration::from_secs(60 * i as u64)),
            )
        })
        .collect()
}

/// A notification of `event` about `service` on web1, with the history `failures`.
fn alert(service: &str, event: EventKind, failures: &[Failure]) -> Notification {
    Notification::new(service, event, "web1")
        .failures(failures)
        .streak(7, START)
        .time(START.saturating_add(Duration::from_secs(180)))
        .sequence(3)
}

fn ctx() -> Context<'static> {
    Context::new("log")
}

async fn send(n: &Arc<dyn Notifier>, service: &str, failures: &[Failure], event: EventKind) {
    n.notify(&alert(service, event, failures), &ctx())
        .await
        .unwrap_or_else(|e| panic!("{}", chain(&e)));
}

fn str_of(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_owned()
}

/// RFC 5424 STRUCTURED-DATA as rsyslog passes it on: `[id k="v" ...][...]`, values
/// unescaped (`\"`, `\\`, `\]`).
fn parse_sd(sd: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut out = Vec::new();
    let mut chars = sd.chars().peekable();
    while chars.next() == Some('[') {
        let mut id = String::new();
        while let Some(&c) = chars.peek() {
            if c == ' ' || c == ']' {
                break;
            }
            id.push(c);
            chars.next();
        }
        let mut params = Vec::new();
        loop {
            match chars.next() {
                Some(']') | None => break,
                Some(' ') => {}
                Some(c) => {
                    let mut name = c.to_string();
                    for c in chars.by_ref() {
                        if c == '=' {
                            break;
                        }
                        name.push(c);
                    }
                    assert_eq!(chars.next(), Some('"'), "in {sd}");
                    let mut value = String::new();
                    while let Some(c) = chars.next() {
                        match c {
                            '\\' => value.push(chars.next().expect("escaped character")),
                            '"' => break,
                            c => value.push(c),
                        }
                    }
                    params.push((name, value));
                }
            }
        }
        out.push((id, params));
    }
    out
}

/// The parameters of our SD-ELEMENT, asserting it is the only one.
pub(crate) fn our_params(record: &Value) -> Vec<(String, String)> {
    let mut sd = parse_sd(&str_of(record, "sd"));
    assert_eq!(sd.len(), 1, "{record}");
    let (id, params) = sd.remove(0);
    assert_eq!(id, "alertcore@32473");
    params
}

pub(crate) fn param(params: &[(String, String)], name: &str) -> String {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("no {name} in {params:?}"))
}

// ---------------------------------------------------------------------------------------
// Tests

#[tokio::test]
async fn rfc5424_over_udp_carries_every_field() {
    let Some(rsyslog) = Rsyslog::try_start() else {
        return;
    };
    let n = notifier(&format!("address = \"{}\"", rsyslog.address("udp")));
    send(
        &n,
        "backup.service",
        &history(3, Severity::Critical),
        EventKind::Failure,
    )
    .await;

    let records = rsyslog.wait_for(1);
    assert_eq!(records.len(), 1, "{records:?}");
    let r = &records[0];
    assert_eq!(str_of(r, "input"), "imudp");
    // daemon (3) * 8 + crit (2)
    assert_eq!(str_of(r, "pri"), "26");
    assert_eq!(str_of(r, "facility"), "daemon");
    assert_eq!(str_of(r, "severity"), "crit");
    assert_eq!(str_of(r, "hostname"), "web1");
    assert_eq!(str_of(r, "app"), "alertcore");
    assert_eq!(str_of(r, "procid"), std::process::id().to_string());
    assert_eq!(str_of(r, "msgid"), "failure");
    assert!(str_of(r, "raw").starts_with("<26>1 "), "{r}");
    assert_eq!(
        str_of(r, "msg"),
        "[web1] FAILED: backup.service (exit-code, status=1), 3 failures since \
         2025-11-21T04:40:00Z"
    );
    let p = our_params(r);
    let expected = [
        ("service", "backup.service".to_owned()),
        ("event", "failure".to_owned()),
        ("severity", "critical".to_owned()),
        ("result", "exit-code".to_owned()),
        ("exit_code", "exited".to_owned()),
        ("exit_status", "1".to_owned()),
        ("invocation_id", format!("{:032x}", 2)),
        ("streak", "3".to_owned()),
        ("sequence", "3".to_owned()),
        // streak start (ms) . streak id . service . host
        (
            "incident",
            "1763700000000.7.backup_2eservice.web1".to_owned(),
        ),
    ];
    let got: Vec<(&str, String)> = p.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn tcp_frames_arrive_as_separate_records_with_the_configured_header() {
    let Some(rsyslog) = Rsyslog::try_start() else {
        return;
    };
    let n = notifier(&format!(
        "address = \"{}\"\nfacility = \"local3\"\napp_name = \"ops-alerts\"\n\
         hostname = \"relay.example.org\"",
        rsyslog.address("tcp")
    ));
    let warn = history(2, Severity::Warning);
    let mut escalated = warn.clone();
    escalated.extend(history(1, Severity::Critical));
    send(&n, "db.service", &warn, EventKind::Reminder).await;
    send(&n, "db.service", &escalated, EventKind::Escalation).await;
    send(&n, "db.service", &escalated, EventKind::Recovery).await;

    let records = rsyslog.wait_for(3);
    assert_eq!(records.len(), 3, "{records:?}");
    // local3 (19) * 8 + warning (4), crit (2), notice (5)
    let want = [
        ("156", "warning", "reminder"),
        ("154", "crit", "escalation"),
        ("157", "notice", "recovery"),
    ];
    for (r, (pri, severity, event)) in records.iter().zip(want) {
        assert_eq!(str_of(r, "input"), "imtcp");
        assert_eq!(str_of(r, "pri"), pri, "{r}");
        assert_eq!(str_of(r, "facility"), "local3");
        assert_eq!(str_of(r, "severity"), severity);
        assert_eq!(str_of(r, "hostname"), "relay.example.org");
        assert_eq!(str_of(r, "app"), "ops-alerts");
        assert_eq!(str_of(r, "msgid"), event);
        let p = our_params(r);
        assert_eq!(param(&p, "event"), event);
        assert_eq!(param(&p, "service"), "db.service");
    }
    assert_eq!(param(&our_params(&records[1]), "streak"), "3");
    assert_eq!(
        str_of(&records[2], "msg"),
        "[web1] RECOVERED: db.service (after 3 failures)"
    );
}

#[tokio::test]
async fn the_unix_socket_gets_rfc5424_and_rfc3164() {
    let Some(rsyslog) = Rsyslog::try_start() else {
        return;
    };
    let unix = rsyslog.address("unix");
    let modern = notifier(&format!("address = \"{unix}\""));
    let old = notifier(&format!("address = \"{unix}\"\nprotocol = \"rfc3164\""));
    let old_udp = notifier(&format!(
        "address = \"{}\"\nprotocol = \"rfc3164\"\nfacility = \"user\"",
        rsyslog.address("udp")
    ));
    let failures = history(1, Severity::Warning);
    send(&modern, "web.service", &failures, EventKind::Recovery).await;
    send(&old, "web.service", &failures, EventKind::Failure).await;
    send(&old_udp, "web.service", &failures, EventKind::Failure).await;

    let records = rsyslog.wait_for(3);
    assert_eq!(records.len(), 3, "{records:?}");
    // rsyslog writes what its inputs receive in no promised order across inputs
    let find = |input: &str, pri: &str| {
        records
            .iter()
            .find(|r| str_of(r, "input") == input && str_of(r, "pri") == pri)
            .unwrap_or_else(|| panic!("no {input} record with PRI {pri}: {records:?}"))
    };
    let (r5424, r3164, r3164_udp) = (
        find("imuxsock", "29"),
        find("imuxsock", "28"),
        find("imudp", "12"),
    );
    assert_eq!(str_of(r5424, "input"), "imuxsock");
    assert_eq!(str_of(r5424, "pri"), "29"); // daemon notice
    assert_eq!(str_of(r5424, "msgid"), "recovery");
    assert_eq!(param(&our_params(r5424), "severity"), "warning");

    for (r, input, pri) in [(r3164, "imuxsock", "28"), (r3164_udp, "imudp", "12")] {
        assert_eq!(str_of(r, "input"), input);
        assert_eq!(str_of(r, "pri"), pri, "{r}"); // daemon / user, warning
        assert_eq!(str_of(r, "severity"), "warning");
        assert_eq!(str_of(r, "hostname"), "web1");
        assert_eq!(str_of(r, "app"), "alertcore");
        assert_eq!(str_of(r, "procid"), std::process::id().to_string());
        assert_eq!(str_of(r, "sd"), "-");
        assert_eq!(
            str_of(r, "msg").trim_start(),
            "[web1] FAILED: web.service (exit-code, status=1), 1 failure since \
             2025-11-21T04:40:00Z"
        );
        let raw = str_of(r, "raw");
        assert!(raw.starts_with(&format!("<{pri}>")), "{raw}");
        assert!(
            raw.contains(&format!(
                " web1 alertcore[{}]: [web1] FAILED",
                std::process::id()
            )),
            "{raw}"
        );
    }
}

#[tokio::test]
async fn a_custom_format_is_the_message_and_stays_one_record() {
    let Some(rsyslog) = Rsyslog::try_start() else {
        return;
    };
    let table = alertcore::Table::parse(
        r#"subject = "{{ event_word }} {{ service }} x{{ streak_length }}\n<13>1 - fake - - - forged""#,
    )
    .expect("valid TOML");
    let (spec, _) = FormatSpec::split(&table).expect("format keys");
    let custom = Format::compile(&spec, &Formats::default(), Format::full()).expect("compiles");
    let short = Format::builtin("short").expect("built-in");
    let n = notifier(&format!("address = \"{}\"", rsyslog.address("udp")));
    let failures = history(2, Severity::Critical);
    for f in [&custom, short] {
        n.notify(
            &alert("backup.service", EventKind::Failure, &failures),
            &ctx().format(f),
        )
        .await
        .unwrap_or_else(|e| panic!("{}", chain(&e)));
    }
    let records = rsyslog.wait_for(2);
    assert_eq!(records.len(), 2, "one record per message: {records:#?}");
    assert_eq!(
        str_of(&records[0], "msg"),
        "FAILED backup.service x2 <13>1 - fake - - - forged"
    );
    assert_eq!(
        str_of(&records[1], "msg"),
        "FAILED backup.service on web1: exit-code, status=1, 2x in 3m"
    );
    // the structured data is the transport's, whatever the format
    assert_eq!(param(&our_params(&records[0]), "streak"), "2");
}

#[tokio::test]
async fn a_service_name_cannot_forge_a_record() {
    let Some(rsyslog) = Rsyslog::try_start() else {
        return;
    };
    let evil = "evil\"]\\.service\n<13>1 2025-11-21T04:40:00Z fake fake - - - forged\r\n\
                <13>Nov 21 04:40:00 fake fake: forged\u{2028}\0end";
    let mut sent = 0;
    for input in ["udp", "tcp", "unix"] {
        for format in ["rfc5424", "rfc3164"] {
            let n = notifier(&format!(
                "address = \"{}\"\nprotocol = \"{format}\"",
                rsyslog.address(input)
            ));
            send(
                &n,
                evil,
                &history(1, Severity::Critical),
                EventKind::Failure,
            )
            .await;
            sent += 1;
        }
    }
    let records = rsyslog.wait_for(sent);
    assert_eq!(records.len(), sent, "one record per message: {records:#?}");
    let cleaned = "evil\"]\\.service <13>1 2025-11-21T04:40:00Z fake fake - - - forged  \
                   <13>Nov 21 04:40:00 fake fake: forged  end";
    for r in &records {
        assert_eq!(str_of(r, "pri"), "26", "{r}");
        assert_eq!(str_of(r, "hostname"), "web1", "{r}");
        assert_eq!(str_of(r, "app"), "alertcore", "{r}");
        let msg = str_of(r, "msg");
        assert!(
            msg.trim_start()
                .starts_with(&format!("[web1] FAILED: {cleaned} (exit-code, status=1)")),
            "{msg:?}"
        );
        if str_of(r, "sd") != "-" {
            // RFC 5424: the name survives the SD-PARAM escaping intact (bar the control
            // characters).
            assert_eq!(param(&our_params(r), "service"), cleaned);
        }
    }
}

#[tokio::test]
async fn an_oversized_message_is_cut_to_max_size_on_a_character_boundary() {
    let Some(rsyslog) = Rsyslog::try_start() else {
        return;
    };
    let n = notifier(&format!("address = \"{}\"", rsyslog.address("udp")));
    let failures: Vec<Failure> = vec![Failure::from_report(
        &FailureReport::new("exit-code").message("é".repeat(3000)),
        "web1",
        START,
    )];
    send(&n, "big.service", &failures, EventKind::Failure).await;
    let records = rsyslog.wait_for(1);
    assert_eq!(records.len(), 1, "{records:?}");
    let raw = str_of(&records[0], "raw");
    assert!(raw.len() <= 2048 && raw.len() > 2000, "{} bytes", raw.len());
    assert!(raw.ends_with('é'), "{raw}");
    assert_eq!(param(&our_params(&records[0]), "service"), "big.service");
}

#[test]
fn alertctl_notify_test_delivers_to_syslog() {
    let Some(rsyslog) = Rsyslog::try_start() else {
        return;
    };
    let ctl = Ctl::with_config(&format!(
        "host = \"web9\"\n\n[notifiers.log]\ntype = \"syslog\"\naddress = \"{}\"\n\
         facility = \"local0\"\n",
        rsyslog.address("tcp")
    ));
    let out = ctl.run(&["notify-test", "log"]);
    assert!(out.status.success(), "{}", text(&out));
    let records = rsyslog.wait_for(1);
    assert_eq!(records.len(), 1, "{records:?}");
    let r = &records[0];
    assert_eq!(str_of(r, "pri"), "132"); // local0 (16) * 8 + warning (4)
    assert_eq!(str_of(r, "hostname"), "web9");
    assert_eq!(str_of(r, "app"), "alertcore");
    let p = our_params(r);
    assert_eq!(param(&p, "service"), "alertctl-notify-test.service");
    assert_eq!(param(&p, "severity"), "warning");
    assert!(
        str_of(r, "msg").contains("test alert from `alertctl notify-test`; no action needed"),
        "{r}"
    );
}

#[tokio::test]
async fn an_unreachable_peer_is_a_retryable_error() {
    let port = free_port(); // nothing listens there any more
    let dir = tempfile::tempdir().unwrap();
    for address in [
        format!("tcp://127.0.0.1:{port}"),
        format!("unix://{}", dir.path().join("no-such.sock").display()),
    ] {
        let n = notifier(&format!("address = \"{address}\"\ntimeout = \"5s\""));
        let e = n
            .notify(
                &alert(
                    "backup.service",
                    EventKind::Failure,
                    &history(1, Severity::Critical),
                ),
                &ctx(),
            )
            .await
            .unwrap_err();
        assert!(e.is_retryable(), "{}", chain(&e));
        assert!(matches!(e, NotifyError::Transport { kind: "syslog", .. }));
        let source = e
            .source()
            .and_then(|s| s.downcast_ref::<SyslogError>())
            .unwrap_or_else(|| panic!("not a syslog error: {e:?}"));
        assert!(matches!(source, SyslogError::Connect { .. }), "{source:?}");
        assert!(
            chain(&e).starts_with(&format!(
                "syslog delivery failed: cannot connect to {address}: "
            )),
            "{}",
            chain(&e)
        );
    }
}

#[test]
fn a_bad_key_is_located_in_the_config_file() {
    let config = Config::parse(
        "[notifiers.log]\ntype = \"syslog\"\naddress = \"udp://127.0.0.1\"\n\
         facility = \"local9\"\n",
        "alertcore.toml",
    )
    .unwrap();
    let e = config.build_notifiers(&registry()).unwrap_err().to_string();
    assert!(
        e.starts_with("alertcore.toml:4:1: notifier \"log\": unknown facility \"local9\""),
        "{e}"
    );
}
