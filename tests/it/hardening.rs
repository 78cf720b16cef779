//! Hardening, end to end through `alertctl`: secrets never leak into any output, hostile
//! service names and messages through every transport at once (real SMTP, HTTP and
//! rsyslog peers, a real agent process, a real file), and faults on the state file (a
//! read-only directory, a full disk, a newer schema).
//!
//! The state-file faults need a mount namespace (`unshare -rm`, util-linux) for a
//! read-only bind mount and a 256 KiB tmpfs: root ignores file modes, so nothing else
//! makes a directory read-only or a disk full for one test. Where `unshare` cannot make
//! one (no user namespaces, seccomp in a container) those tests pass after saying why;
//! under CI (`CI` set, see `under_ci`) they fail instead, because CI machines are
//! expected to allow them.

#![cfg(all(feature = "email", feature = "webhook", feature = "syslog"))]

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use alertcore::{Config, Registry};
use serde_json::Value;

use crate::cli::{Ctl, failure_args, integrity, text};
use crate::peers::{SinkOptions, SmtpSink, free_port, header, wait_until};
use crate::syslog::{Rsyslog, our_params, param};

const PYTHON: &str = "/usr/bin/python3";
const HTTP_SINK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/http-sink.py");
const WAIT: Duration = Duration::from_secs(10);

/// Passes the test after saying why (`None`), or fails it under CI (`CI` set, see `under_ci`).
fn skip(why: &str) -> Option<()> {
    assert!(!crate::under_ci(), "cannot run under CI: {why}");
    eprintln!("skipping: {why}");
    None
}

fn registry() -> Registry {
    Registry::new()
        .with(alertcore_email::FACTORY)
        .with(alertcore_webhook::FACTORY)
        .with(alertcore_syslog::FACTORY)
}

/// `tests/peers/http-sink.py`, recording every request (JSON lines); killed on drop.
/// (`webhook.rs` has a fuller one; this one only needs the log.)
struct HttpSink {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl HttpSink {
    fn try_start() -> Option<Self> {
        if !Path::new(PYTHON).exists() {
            skip(&format!("{PYTHON} is missing: apt-get install -y python3"))?;
        }
        let mut last = String::new();
        for _ in 0..5 {
            let dir = tempfile::tempdir().expect("tempdir");
            let port = free_port();
            let ready = dir.path().join("ready");
            let child = Command::new(PYTHON)
                .arg(HTTP_SINK)
                .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .arg("--ready-file")
                .arg(&ready)
                .arg("--log")
                .arg(dir.path().join("requests.jsonl"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(dir.path().join("stderr")).expect("stderr"))
                .spawn()
                .expect("run http-sink.py");
            let mut sink = Self { child, port, dir };
            let log = sink.dir.path().join("stderr");
            match wait_until(&mut sink.child, "http-sink.py", &log, WAIT, || {
                ready.exists()
            }) {
                Ok(()) => return Some(sink),
                Err(e) => last = e,
            }
        }
        panic!("the HTTP sink did not start: {last}");
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The requests so far, after waiting up to [`WAIT`] for `n`.
    fn wait_for(&self, n: usize) -> Vec<Value> {
        let start = Instant::now();
        loop {
            let all: Vec<Value> = std::fs::read_to_string(self.dir.path().join("requests.jsonl"))
                .unwrap_or_default()
                .lines()
                .map(|l| serde_json::from_str(l).expect("sink log JSON"))
                .collect();
            if all.len() >= n || start.elapsed() > WAIT {
                return all;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for HttpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn all_output(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

// ---------------------------------------------------------------------------------------
// Secrets never leak

const SMTP_PASSWORD: &str = "smtp-pw-Q7xv93hardening";
const TOKEN: &str = "bearer-tok-K2m8hardening";
const HMAC_KEY: &str = "hmac-key-Z5p1hardening";
const URL_PATH: &str = "urlpath-J4n6hardening";
const URL_USERINFO: &str = "userinfo-pw-W3c0hardening";
const URL_FILE_PATH: &str = "urlfile-path-T9d2hardening";
const HEADER_VALUE: &str = "header-val-R8s4hardening";
/// An exec `env` entry with a secret-looking name. `env` is the agent's input, like
/// Pacemaker's instance attributes, and handed to it as is; what we check is that
/// alertcore itself never shows it (`config dump` redacts secret-looking names).
const EXEC_ENV_TOKEN: &str = "exec-env-token-V1b7hardening";

const SECRETS: [&str; 8] = [
    SMTP_PASSWORD,
    TOKEN,
    HMAC_KEY,
    URL_PATH,
    URL_USERINFO,
    URL_FILE_PATH,
    HEADER_VALUE,
    EXEC_ENV_TOKEN,
];

/// Every transport with a secret, each pointed at a loopback port nobody listens on, so
/// that every delivery fails and produces an error.
fn secret_config(dir: &Path) -> String {
    let dead = free_port();
    std::fs::write(dir.join("smtp-password"), format!("{SMTP_PASSWORD}\n")).expect("test file I/O");
    std::fs::write(dir.join("token"), TOKEN).expect("test file I/O");
    std::fs::write(
        dir.join("url"),
        format!("http://127.0.0.1:{dead}/services/{URL_FILE_PATH}\n"),
    )
    .expect("test file I/O");
    format!(
        r#"host = "web1"

[notifiers.mail]
type = "email"
url = "smtp://alice@127.0.0.1:{dead}"
from = "alertcore@example.org"
to = ["ops@example.org"]
password_file = "{dir}/smtp-password"
timeout = "2s"

[notifiers.hook]
type = "webhook"
url = "http://bob:{URL_USERINFO}@127.0.0.1:{dead}/hooks/{URL_PATH}?key={URL_PATH}"
token_file = "{dir}/token"
hmac_secret_env = "ALERTCORE_HARDENING_HMAC"
headers = {{ X-Api-Key = "{HEADER_VALUE}" }}
timeout = "2s"

[notifiers.hook2]
type = "webhook"
url_file = "{dir}/url"
timeout = "2s"

[notifiers.agent]
type = "exec"
command = ["/bin/sh", "-c", "echo agent failed >&2; exit 1"]
env = {{ api_token = "{EXEC_ENV_TOKEN}" }}

[notifiers.log]
type = "syslog"
address = "tcp://127.0.0.1:{dead}"
timeout = "2s"
"#,
        dir = dir.display()
    )
}

/// Every place a secret must not show: what each `alertctl` command prints (with
/// `RUST_LOG=debug`), the trace file, the state file, and `Debug` of the built notifiers.
#[test]
fn secrets_never_appear_in_output_logs_state_or_debug() {
    let dir = tempfile::tempdir().unwrap();
    let ctl = Ctl::with_config(&secret_config(dir.path()));
    let trace = dir.path().join("trace.log");
    let run = |args: &[&str]| {
        ctl.command(args)
            .env("RUST_LOG", "debug")
            .env("ALERTCORE_HARDENING_HMAC", HMAC_KEY)
            .output()
            .expect("run alertctl")
    };
    let mut shown: Vec<(String, String)> = Vec::new();
    let mut record = |what: &str, out: &Output, want: &[i32]| {
        let code = out.status.code().unwrap_or(-1);
        assert!(want.contains(&code), "{what}: {}", text(out));
        assert!(
            !all_output(out).contains("panicked"),
            "{what}: {}",
            text(out)
        );
        shown.push((what.to_owned(), all_output(out)));
    };
    record("config dump", &run(&["config", "dump"]), &[0]);
    record("config check", &run(&["config", "check"]), &[0]);
    for n in ["mail", "hook", "hook2", "agent", "log"] {
        // every delivery fails: nothing listens
        record(&format!("notify-test {n}"), &run(&["notify-test", n]), &[3]);
    }
    let trace_arg = format!("--trace={}", trace.display());
    let mut args = vec![trace_arg.as_str()];
    args.extend(failure_args("backup.service"));
    record("failure", &run(&args), &[3]);
    record("failure again", &run(&args), &[0, 3]);
    record("status", &run(&["status"]), &[0]);
    record("status --json", &run(&["status", "--json"]), &[0]);
    record("history", &run(&["history", "backup.service"]), &[0]);
    record(
        "history --json",
        &run(&["history", "backup.service", "--json"]),
        &[0],
    );
    record("success", &run(&["success", "backup.service"]), &[0, 3]);
    shown.push((
        "trace file".to_owned(),
        std::fs::read_to_string(&trace).unwrap_or_default(),
    ));
    for suffix in ["", "-wal"] {
        let mut path = ctl.state().into_os_string();
        path.push(suffix);
        let bytes = std::fs::read(&path).unwrap_or_default();
        shown.push((
            format!("state file{suffix}"),
            String::from_utf8_lossy(&bytes).into_owned(),
        ));
    }
    // The delivery errors did reach the output: we grep real error text.
    let failure = &shown.iter().find(|(w, _)| w == "failure").unwrap().1;
    for n in ["mail", "hook", "hook2", "agent", "log"] {
        assert!(
            failure.contains(&format!("alertctl: {n} failure of backup.service")),
            "{failure}"
        );
    }

    // In-process: the built notifiers, as alertctl builds them.
    let config = Config::load(&ctl.dir.path().join("alertcore.toml")).unwrap();
    for built in config.build_notifiers(&registry()).unwrap() {
        shown.push((
            format!("Debug of notifier {}", built.name),
            format!("{:?}", built.notifier),
        ));
    }

    let leaks: Vec<String> = shown
        .iter()
        .flat_map(|(what, out)| {
            SECRETS
                .iter()
                .filter(|s| out.contains(*s))
                .map(move |s| format!("{s} in {what}:\n{out}"))
        })
        .collect();
    assert!(leaks.is_empty(), "secrets leaked:\n{}", leaks.join("\n\n"));
}

/// `Debug` of the whole `Config` shows the notifier tables redacted and not the text, so
/// inline secrets (a webhook URL's path, header values, the exec `env`) do not show.
#[test]
fn config_debug_hides_inline_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::parse(&secret_config(dir.path()), "alertcore.toml").unwrap();
    let d = format!("{config:?}");
    for s in SECRETS {
        assert!(!d.contains(s), "{s} in Debug of Config: {d}");
    }
}

// ---------------------------------------------------------------------------------------
// Hostile input through every transport

/// An agent that records its arguments (`$f.args`, one per line) and its environment
/// (`$f.env`, `env -0`) in a fresh file per run.
fn recorder(dir: &Path) -> PathBuf {
    let path = dir.join("recorder.sh");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\nf=$(mktemp {d}/run.XXXXXX)\nprintf '%s\\n' \"$@\" > \"$f.args\"\n\
             /usr/bin/env -0 > \"$f.env\"\n",
            d = dir.display()
        ),
    )
    .expect("test file I/O");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("test file I/O");
    path
}

fn agent_runs(dir: &Path) -> Vec<(String, Vec<(String, String)>)> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("test file I/O")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "env"))
        .collect();
    names.sort();
    names
        .iter()
        .map(|env| {
            let args = std::fs::read_to_string(env.with_extension("args")).expect("test file I/O");
            let raw = std::fs::read(env).expect("test file I/O");
            let vars = raw
                .split(|b| *b == 0)
                .filter(|e| !e.is_empty())
                .map(|e| {
                    let e = String::from_utf8_lossy(e);
                    let (k, v) = e.split_once('=').unwrap_or((&e, ""));
                    (k.to_owned(), v.to_owned())
                })
                .collect();
            (args, vars)
        })
        .collect()
}

/// One hostile event per case through email, webhook, syslog, exec and file at once,
/// as `alertctl failure` gets it from systemd: every case is recorded and delivered
/// once per transport, no header, record, argument or line is forged, nothing panics.
///
/// NUL cannot be passed: argv and the environment (alertctl's only inputs) cannot hold
/// it; the syslog tests send it through the library. Invalid UTF-8 goes through as the
/// lossy text a caller would make of it; raw invalid UTF-8 in argv is
/// `non_utf8_arguments_still_record_the_event` below.
#[test]
fn hostile_names_and_messages_through_every_transport() {
    let Some(smtp) = SmtpSink::try_start(SinkOptions::plain()) else {
        return;
    };
    let Some(hook) = HttpSink::try_start() else {
        return;
    };
    let Some(rsyslog) = Rsyslog::try_start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let agents = dir.path().join("agents");
    std::fs::create_dir(&agents).unwrap();
    let agent = recorder(&agents);
    let file = dir.path().join("alerts.log");
    let ctl = Ctl::with_config(&format!(
        r#"host = "web1"
[notifiers.mail]
type = "email"
url = "smtp://127.0.0.1:{smtp}"
from = "alertcore@example.org"
to = ["ops@example.org"]
timeout = "10s"
[notifiers.hook]
type = "webhook"
url = "{hook}"
[notifiers.log]
type = "syslog"
address = "{log}"
[notifiers.agent]
type = "exec"
command = ["{agent}"]
[notifiers.file]
type = "file"
path = "{file}"
"#,
        smtp = smtp.port(),
        hook = hook.url("/bad-input"),
        log = rsyslog.address("unix"),
        agent = agent.display(),
        file = file.display(),
    ));
    let long = "x".repeat(64 * 1024);
    let lossy = String::from_utf8_lossy(b"bad\xff\xfe\xc3(\xed\xa0\x80.service").into_owned();
    let cases: Vec<(String, String)> = vec![
        (
            "crlf\r\nBcc: evil@example.org\r\nX-Evil: 1.service".into(),
            "disk full\r\nBcc: evil@example.org\r\n\r\n.\r\nMAIL FROM:<x@y>".into(),
        ),
        (
            "lf\n<13>1 2025-11-21T04:40:00Z fake fake - - - forged.service".into(),
            "one\n<13>Nov 21 04:40:00 fake fake: forged\rtwo".into(),
        ),
        (
            "ls\u{2028}<13>forged\u{2029}\u{85}.service".into(),
            "para\u{2028}graph\u{2029}next\u{85}line".into(),
        ),
        (
            "json\"},{\"forged\":true,\"x\":\"\\.service".into(),
            "\"}], \"event\": \"recovery\" \\u0000 {{ service }}".into(),
        ),
        (
            "ctl\x1b[31mred\x7f\x08\t.service".into(),
            "bell\x07 esc\x1b]0;title\x07 del\x7f".into(),
        ),
        (format!("long-{long}.service"), long.clone()),
        (lossy.clone(), lossy.clone()),
        (
            "-e --exec=/bin/sh $(touch pwned) `id` ;|&.service".into(),
            "--help -rf / $(id)".into(),
        ),
    ];
    const NOTIFIERS: [&str; 5] = ["mail", "hook", "log", "agent", "file"];
    for (i, (unit, message)) in cases.iter().enumerate() {
        let now = format!("2026-11-21T10:{i:02}:00Z");
        let out = ctl
            .command(&[
                "--now",
                &now,
                "failure",
                "--result",
                "exit-code",
                // `=`: a value may start with '-'
                &format!("--message={message}"),
                // as the shipped units pass the name: after `--`
                "--",
                unit,
            ])
            .env("RUST_LOG", "debug")
            .current_dir(dir.path())
            .output()
            .unwrap();
        let all = all_output(&out);
        let short = || format!("{:.3000}", text(&out));
        assert!(!all.contains("panicked"), "case {i}: {}", short());
        assert!(
            matches!(out.status.code(), Some(0 | 3)),
            "case {i}: recorded: {}",
            short()
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        for n in NOTIFIERS {
            assert!(
                !stderr.contains(&format!("alertctl: {n} failure of ")),
                "case {i}: {n} did not deliver: {}",
                short()
            );
        }
    }
    // each transport got each case once, as the peers count them below
    let units: BTreeSet<&str> = cases.iter().map(|(unit, _)| unit.as_str()).collect();
    assert_eq!(units.len(), cases.len(), "the cases name distinct units");
    assert!(!dir.path().join("pwned").exists());
    assert!(!agents.join("pwned").exists());

    // email: one message each, one Subject, no injected header or recipient
    let mails = smtp.wait_for(cases.len(), WAIT);
    assert_eq!(mails.len(), cases.len(), "{:.3000?}", mails);
    for m in &mails {
        assert_eq!(m["rcpt_tos"], serde_json::json!(["ops@example.org"]), "{m}");
        let raw = m["raw"].as_str().unwrap().replace("\r\n", "\n");
        let head = raw.split("\n\n").next().unwrap();
        let names: Vec<String> = head
            .lines()
            .filter(|l| !l.starts_with([' ', '\t']))
            .map(|l| l.split(':').next().unwrap().to_ascii_lowercase())
            .collect();
        assert_eq!(
            names.iter().filter(|n| *n == "subject").count(),
            1,
            "{head}"
        );
        for bad in ["bcc", "cc", "x-evil", "mail from"] {
            assert!(!names.iter().any(|n| n == bad), "injected {bad}: {head}");
        }
        let subject = header(m, "Subject").unwrap();
        assert!(!subject.contains(['\r', '\n']), "{subject:?}");
    }

    // webhook: one request each, each a valid JSON document naming a service
    let requests = hook.wait_for(cases.len());
    assert_eq!(requests.len(), cases.len(), "{:.3000?}", requests);
    for r in &requests {
        assert!(r["json"].is_object(), "not JSON: {r}");
        assert!(r["json"].get("forged").is_none(), "{r}");
        assert_eq!(r["json"]["event"], "failure", "{r}");
    }
    let services: BTreeSet<&str> = requests
        .iter()
        .filter_map(|r| r["json"]["service"].as_str())
        .collect();
    same_names("webhook", &services, &units);

    // syslog: one record each, none forged
    let records = rsyslog.wait_for(cases.len());
    assert_eq!(
        records.len(),
        cases.len(),
        "one record per alert: {:.3000?}",
        records
    );
    let mut services = BTreeSet::new();
    for r in &records {
        assert_eq!(r["app"], "alertcore", "{r:.3000}");
        assert_eq!(r["hostname"], "web1", "{r:.3000}");
        // one structured-data element, ours, whatever the name held
        services.insert(param(&our_params(r), "service"));
    }
    // as alertcore-syslog's README says: control characters and U+2028/U+2029 become
    // spaces, and an SD-PARAM value is at most 255 bytes, cut on a character boundary
    let clean: Vec<String> = units
        .iter()
        .map(|u| {
            let s: String = u
                .chars()
                .map(|c| match c {
                    c if c.is_control() => ' ',
                    '\u{2028}' | '\u{2029}' => ' ',
                    c => c,
                })
                .collect();
            let end = (0..=s.len().min(255))
                .rev()
                .find(|&i| s.is_char_boundary(i))
                .unwrap_or(0);
            s[..end].to_owned()
        })
        .collect();
    let services = services.iter().map(String::as_str).collect();
    same_names(
        "syslog",
        &services,
        &clean.iter().map(String::as_str).collect(),
    );

    // exec: no arguments ever; the data only in the environment
    let runs = agent_runs(&agents);
    assert_eq!(runs.len(), cases.len());
    let mut services = BTreeSet::new();
    for (args, env) in &runs {
        assert_eq!(args, "\n", "the agent got arguments: {args:?}");
        let service = env.iter().find(|(k, _)| k == "ALERTCORE_SERVICE");
        services.extend(service.map(|(_, v)| v.clone()));
    }
    // a value over 32 KiB is cut to 32 KiB ending in "…" (docs/delivery.md); the long
    // case is ASCII
    let cut: Vec<String> = units
        .iter()
        .map(|u| match u.get(..32 * 1024 - '…'.len_utf8()) {
            Some(head) if u.len() > 32 * 1024 => format!("{head}…"),
            _ => (*u).to_owned(),
        })
        .collect();
    let services = services.iter().map(String::as_str).collect();
    same_names("exec", &services, &cut.iter().map(String::as_str).collect());

    // file: one line per alert
    let lines = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = lines.split_terminator('\n').collect();
    assert_eq!(lines.len(), cases.len(), "{:.3000}", lines.join("\n"));
    for l in lines {
        assert!(l.starts_with("2026-11-21T10:"), "{l:.200}");
        assert!(!l.contains('\r'), "{l:.200}");
    }
}

/// Asserts that `transport` named each unit as given, showing the differences shortened
/// (one name is 64 KiB long).
fn same_names(transport: &str, got: &BTreeSet<&str>, want: &BTreeSet<&str>) {
    let short = |names: Vec<&&str>| -> Vec<String> {
        names
            .iter()
            .map(|n| {
                format!(
                    "{:?} ({} bytes)",
                    n.chars().take(60).collect::<String>(),
                    n.len()
                )
            })
            .collect()
    };
    assert!(
        got == want,
        "{transport} named units not given: {:?}; and not these given ones: {:?}",
        short(got.difference(want).collect()),
        short(want.difference(got).collect()),
    );
}

/// Raw invalid UTF-8 in a unit name or message (systemd never passes one: unit names are
/// ASCII, but a script may call `alertctl failure` with any bytes): the event is recorded,
/// the name with each invalid byte written `\xNN` as `systemd-escape` does, so two names
/// that differ only in invalid bytes stay two services; the message lossily (U+FFFD).
#[test]
fn non_utf8_arguments_still_record_the_event() {
    let ctl = Ctl::new();
    let out = ctl
        .command(&["failure"])
        .arg(OsStr::from_bytes(b"bad\xff\xfe.service"))
        .arg("--message")
        .arg(OsStr::from_bytes(b"m\xff\n<13>forged"))
        .output()
        .unwrap();
    assert!(
        matches!(out.status.code(), Some(0 | 3)),
        "event lost: {}",
        text(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(r"bad\xff\xfe.service: failure recorded"),
        "{}",
        text(&out)
    );
    // the same bytes in another order: another service, not a collision
    let out = ctl
        .command(&["failure", "--"])
        .arg(OsStr::from_bytes(b"bad\xfe\xff.service"))
        .output()
        .unwrap();
    assert!(matches!(out.status.code(), Some(0 | 3)), "{}", text(&out));

    let status = ctl.json(&["status", "--json"]);
    let mut names: Vec<&str> = status["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["service"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, [r"bad\xfe\xff.service", r"bad\xff\xfe.service"]);

    // the raw bytes and the name as shown both name the service
    let out = ctl
        .command(&["history", "--json"])
        .arg(OsStr::from_bytes(b"bad\xff\xfe.service"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let history: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(history["failures"][0]["message"], "m\u{fffd}\n<13>forged");
    let history = ctl.json(&["history", "--json", r"bad\xff\xfe.service"]);
    assert_eq!(history["failures"].as_array().map(Vec::len), Some(1));
}

// ---------------------------------------------------------------------------------------
// Faults on the state file

/// Runs `script` (sh) in a new user and mount namespace (`unshare -rm`) with `$A` the
/// alertctl binary and `$D` the test directory, or says why it cannot.
fn in_namespace(dir: &Path, script: &str) -> Result<Output, String> {
    let out = Command::new("unshare")
        .args(["-rm", "sh", "-ec", script])
        .env("A", env!("CARGO_BIN_EXE_alertctl"))
        .env("D", dir)
        .env_remove("ALERTCORE_CONFIG")
        .env_remove("ALERTCORE_STATE")
        .env_remove("STATE_DIRECTORY")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run unshare (util-linux): {e}"))?;
    Ok(out)
}

/// Whether `unshare -rm` can mount a tmpfs and make a read-only bind mount here.
fn namespaces_work() -> Result<(), String> {
    static CHECK: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    CHECK
        .get_or_init(|| {
            let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
            let out = in_namespace(
                dir.path(),
                "mkdir \"$D/m\"; mount -t tmpfs -o size=64k tmpfs \"$D/m\"; \
                 mount --bind \"$D/m\" \"$D/m\"; mount -o remount,bind,ro \"$D/m\"; \
                 ! touch \"$D/m/x\" 2>/dev/null",
            )?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "`unshare -rm` cannot mount here (user or mount namespaces are not \
                     allowed): {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        })
        .clone()
}

fn open(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).expect("open state")
}

fn failures_of(path: &Path, service: &str) -> i64 {
    open(path)
        .query_row(
            "SELECT count(*) FROM failures WHERE service = ?1",
            [service],
            |r| r.get(0),
        )
        .expect("count")
}

fn record_first_events(state: &Path) {
    for unit in ["a.service", "a.service", "b.service"] {
        let out = Command::new(env!("CARGO_BIN_EXE_alertctl"))
            .env_remove("ALERTCORE_CONFIG")
            .env_remove("ALERTCORE_STATE")
            .env_remove("STATE_DIRECTORY")
            .arg("--state")
            .arg(state)
            .args(["failure", unit, "--result", "exit-code"])
            .stdin(Stdio::null())
            .output()
            .expect("run alertctl");
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }
}

/// A state directory mounted read-only: the event is refused with exit 1 and an error
/// naming the file; the file is as it was.
#[test]
fn read_only_state_directory_refuses_the_event_cleanly() {
    if let Err(why) = namespaces_work() {
        skip(&why);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    std::fs::create_dir(&state_dir).unwrap();
    let state = state_dir.join("state.db");
    record_first_events(&state);
    let before = std::fs::read(&state).unwrap();
    let out = in_namespace(
        dir.path(),
        "mount --bind \"$D/state\" \"$D/state\"; mount -o remount,bind,ro \"$D/state\"; \
         exec \"$A\" --state \"$D/state/state.db\" failure c.service --result exit-code",
    )
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(!err.contains("panicked"), "{}", text(&out));
    assert!(
        err.contains(&state.display().to_string()),
        "names the file: {}",
        text(&out)
    );
    assert_eq!(std::fs::read(&state).unwrap(), before, "file untouched");
    assert_eq!(integrity(&state), "ok");
    assert_eq!(failures_of(&state, "a.service"), 2);
    assert_eq!(failures_of(&state, "c.service"), 0);
}

/// A state file on a full disk (a 256 KiB tmpfs, filled up): the event is refused with
/// exit 1; the database is sound and every earlier event is still there.
#[test]
fn full_disk_refuses_the_event_without_corruption() {
    if let Err(why) = namespaces_work() {
        skip(&why);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("mnt")).unwrap();
    std::fs::create_dir(dir.path().join("copy")).unwrap();
    // Inside: events on an empty tmpfs, then fill it (leaving room for SQLite's shared
    // memory file, but not for a 30 KB message), then one more event, then copy the state
    // out before the tmpfs goes away with the namespace.
    let out = in_namespace(
        dir.path(),
        r#"mount -t tmpfs -o size=256k tmpfs "$D/mnt"
           S="$D/mnt/state.db"
           for u in a.service a.service b.service; do
             "$A" --state "$S" failure $u --result exit-code >/dev/null 2>&1
           done
           dd if=/dev/zero of="$D/mnt/fill" bs=4k 2>/dev/null || true
           truncate -s -65536 "$D/mnt/fill"
           big=$(head -c 30000 /dev/zero | tr '\0' x)
           set +e
           "$A" --state "$S" failure c.service --result exit-code --message "$big"
           echo "exit=$?"
           set -e
           cp "$S"* "$D/copy/""#,
    )
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stdout.contains("exit=1"),
        "refused with exit 1: {}",
        text(&out)
    );
    assert!(!stderr.contains("panicked"), "{}", text(&out));
    assert!(
        stderr.contains("full"),
        "says the disk is full: {}",
        text(&out)
    );
    let state = dir.path().join("copy/state.db");
    assert_eq!(integrity(&state), "ok");
    assert_eq!(failures_of(&state, "a.service"), 2);
    assert_eq!(failures_of(&state, "b.service"), 1);
    assert_eq!(failures_of(&state, "c.service"), 0);
}

/// The wording the operator needs, beyond exit 1 and a sound file (see the two tests
/// above): the error names the file and says "read-only" / "disk full".
#[test]
fn state_file_faults_say_what_is_wrong() {
    if let Err(why) = namespaces_work() {
        skip(&why);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("state")).unwrap();
    record_first_events(&dir.path().join("state/state.db"));
    let out = in_namespace(
        dir.path(),
        "mount --bind \"$D/state\" \"$D/state\"; mount -o remount,bind,ro \"$D/state\"; \
         exec \"$A\" --state \"$D/state/state.db\" failure c.service",
    )
    .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("read-only"),
        "{}",
        text(&out)
    );
    std::fs::create_dir(dir.path().join("mnt")).unwrap();
    let out = in_namespace(
        dir.path(),
        r#"mount -t tmpfs -o size=256k tmpfs "$D/mnt"
           "$A" --state "$D/mnt/state.db" failure a.service >/dev/null 2>&1
           dd if=/dev/zero of="$D/mnt/fill" bs=4k 2>/dev/null || true
           truncate -s -65536 "$D/mnt/fill"
           exec "$A" --state "$D/mnt/state.db" failure c.service --message "$(head -c 30000 /dev/zero | tr '\0' x)""#,
    )
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("disk full"), "{}", text(&out));
    assert!(err.contains("/mnt/state.db"), "{}", text(&out));
}

/// A state file written by a newer alertcore (a higher `user_version`): refused with
/// exit 1 and a clear message; the file is not touched (no downgrade, no wipe).
#[test]
fn newer_schema_is_refused_at_the_cli_and_left_alone() {
    let ctl = Ctl::new();
    let out = ctl.run(&["failure", "a.service", "--result", "exit-code"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    open(&ctl.state())
        .execute_batch("PRAGMA user_version = 999")
        .unwrap();
    let before = std::fs::read(ctl.state()).unwrap();
    for args in [
        &["failure", "a.service", "--result", "exit-code"][..],
        &["success", "a.service"][..],
        &["status"][..],
        &["history", "a.service"][..],
    ] {
        let out = ctl.run(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
        assert!(
            err.contains("newer than this alertcore supports"),
            "{args:?}: {}",
            text(&out)
        );
        assert!(
            err.contains(&ctl.state().display().to_string()),
            "{args:?}: names the file: {}",
            text(&out)
        );
    }
    assert_eq!(
        std::fs::read(ctl.state()).unwrap(),
        before,
        "file untouched"
    );
    let version: i64 = open(&ctl.state())
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 999);
    assert_eq!(failures_of(&ctl.state(), "a.service"), 1);
}
