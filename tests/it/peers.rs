//! Real loopback peers for the integration tests: an SMTP sink, and test certificates.
//!
//! [`SmtpSink`] runs `tests/peers/smtp-sink.py` (aiosmtpd, from Debian's
//! `python3-aiosmtpd`, run by `/usr/bin/python3`) on a free `127.0.0.1` port and records
//! every message it accepts. The process is killed when the sink is dropped.
//!
//! ```ignore
//! use crate::peers::{SinkOptions, SmtpCommand, SmtpSink};
//!
//! // A plain sink: `url = "smtp://127.0.0.1:{port}"`.
//! let sink = SmtpSink::start();
//! // ... send two mails to sink.port() ...
//! let mails = sink.wait_for(2, Duration::from_secs(5));
//! assert_eq!(mails[0]["subject"], "[web1] FAILED: backup.service (exit-code, status=1)");
//!
//! // STARTTLS required, AUTH required, one recipient refused with 550. `sink.ca_file()`
//! // is the CA to trust (`ca_file = ...`); the certificate names 127.0.0.1 and localhost.
//! let sink = SmtpSink::start_with(
//!     SinkOptions::starttls().auth("alice", "s3cret").fail("bad@example.org", 550),
//! );
//!
//! // The first DATA answered 451 (try later), later ones accepted, on a chosen port
//! // (say, one a client was refused on a moment ago).
//! let sink = SmtpSink::start_with(
//!     SinkOptions::plain().refuse(SmtpCommand::Data, 451, Some(1)).port(port),
//! );
//!
//! // In a test that should skip (pass, saying why) where python3-aiosmtpd is missing:
//! let Some(sink) = SmtpSink::try_start(SinkOptions::implicit_tls()) else { return };
//! ```
//!
//! Each message is the sink's JSON record (`tests/peers/smtp-sink.py`): `mail_from`,
//! `rcpt_tos` (the envelope), `auth_user`, `tls`, `peer` (`[ip, port]` of the client's
//! connection), `headers` (an object, one value per name, decoded), `subject` (decoded),
//! `body` (the decoded text), plus `raw`: the message exactly as received.
//!
//! Where python3-aiosmtpd is missing, [`SmtpSink::try_start`] returns `None` after saying
//! why, so the test passes; under CI (`CI` set) it panics instead, so CI cannot go green
//! without having run the tests. [`SmtpSink::start`] always panics.

#![allow(
    dead_code,
    reason = "a shared harness: each test module uses part of it, and builds without \
              the `email` feature leave out the email tests"
)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

const PYTHON: &str = "/usr/bin/python3";
const SINK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/smtp-sink.py");
const GEN_CERTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/gen-certs.sh");
/// Startup takes ~0.2 s; this is for a loaded machine.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// How the sink protects its connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum SinkTls {
    /// Plain text only.
    #[default]
    None,
    /// Offers STARTTLS; with `required`, refuses mail before it.
    StartTls {
        /// Whether MAIL is refused until STARTTLS.
        required: bool,
    },
    /// TLS from the first byte (`smtps://`).
    Implicit,
}

/// What the sink demands and how it answers.
#[derive(Debug, Clone, Default)]
pub(crate) struct SinkOptions {
    /// TLS mode; anything but `None` makes test certificates (see [`SmtpSink::ca_file`]).
    pub(crate) tls: SinkTls,
    /// Required AUTH (PLAIN or LOGIN) user and password.
    pub(crate) auth: Option<(String, String)>,
    /// Recipients answered with an SMTP code (451: try later, 550: rejected).
    pub(crate) fail: Vec<(String, u16)>,
    /// Commands answered with a code, for the first `times` transactions (`None`:
    /// every one); see [`SinkOptions::refuse`].
    pub(crate) refuse: Vec<(SmtpCommand, u16, Option<u32>)>,
    /// The port to listen on instead of a free one: a server that comes up where a
    /// client was refused before.
    pub(crate) port: Option<u16>,
}

/// An SMTP command the sink can refuse ([`SinkOptions::refuse`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SmtpCommand {
    /// `MAIL FROM`.
    Mail,
    /// `RCPT TO` (every recipient).
    Rcpt,
    /// `DATA`: the reply after the message, which is then not stored.
    Data,
}

impl SmtpCommand {
    fn as_str(self) -> &'static str {
        match self {
            Self::Mail => "mail",
            Self::Rcpt => "rcpt",
            Self::Data => "data",
        }
    }
}

impl SinkOptions {
    /// Plain text, no AUTH, every recipient accepted.
    pub(crate) fn plain() -> Self {
        Self::default()
    }

    /// STARTTLS required before MAIL.
    pub(crate) fn starttls() -> Self {
        Self {
            tls: SinkTls::StartTls { required: true },
            ..Self::default()
        }
    }

    /// Implicit TLS.
    pub(crate) fn implicit_tls() -> Self {
        Self {
            tls: SinkTls::Implicit,
            ..Self::default()
        }
    }

    /// Requires AUTH as `user` / `password`.
    pub(crate) fn auth(mut self, user: &str, password: &str) -> Self {
        self.auth = Some((user.to_owned(), password.to_owned()));
        self
    }

    /// Answers `RCPT TO:<rcpt>` with `code`.
    pub(crate) fn fail(mut self, rcpt: &str, code: u16) -> Self {
        self.fail.push((rcpt.to_owned(), code));
        self
    }

    /// Answers `command` with `code` in the first `times` transactions that reach it
    /// (`None`: in every one), then as usual: `refuse(SmtpCommand::Data, 451, Some(1))`
    /// defers the first mail and accepts the next. One rule per command.
    pub(crate) fn refuse(mut self, command: SmtpCommand, code: u16, times: Option<u32>) -> Self {
        self.refuse.retain(|(c, _, _)| *c != command);
        self.refuse.push((command, code, times));
        self
    }

    /// Listens on `port` (free, or the sink fails to start) instead of a free one.
    pub(crate) fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }
}

/// A test CA and a server certificate for `localhost`, `127.0.0.1` and `::1`, made by
/// `tests/peers/gen-certs.sh` in a temporary directory (removed on drop).
#[derive(Debug)]
pub(crate) struct Certs {
    dir: tempfile::TempDir,
}

impl Certs {
    /// The CA certificate clients should trust (PEM).
    pub(crate) fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The server certificate (PEM).
    pub(crate) fn cert(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }

    /// The server key (PEM).
    pub(crate) fn key(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }
}

/// Makes a fresh test CA and server certificate.
pub(crate) fn certs() -> Certs {
    let dir = tempfile::Builder::new()
        .prefix("alertcore-certs-")
        .tempdir()
        .expect("temp dir for certificates");
    let out = Command::new("bash")
        .arg(GEN_CERTS)
        .arg(dir.path())
        .output()
        .expect("run gen-certs.sh");
    assert!(
        out.status.success(),
        "gen-certs.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Certs { dir }
}

/// Why the sink cannot run here, if it cannot (checked once per test run).
pub(crate) fn aiosmtpd_missing() -> Option<&'static str> {
    static CHECK: OnceLock<Option<String>> = OnceLock::new();
    CHECK
        .get_or_init(|| {
            let ok = Command::new(PYTHON)
                .args(["-c", "import aiosmtpd"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            (!ok).then(|| {
                format!(
                    "{PYTHON} cannot import aiosmtpd: install Debian's python3-aiosmtpd \
                     (apt-get install -y python3-aiosmtpd)"
                )
            })
        })
        .as_deref()
}

/// A running `smtp-sink.py`; killed on drop.
#[derive(Debug)]
pub(crate) struct SmtpSink {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    certs: Option<Certs>,
}

impl SmtpSink {
    /// A plain sink (no TLS, no AUTH). Panics if it cannot start.
    pub(crate) fn start() -> Self {
        Self::start_with(SinkOptions::plain())
    }

    /// A sink with `opts`. Panics if it cannot start.
    pub(crate) fn start_with(opts: SinkOptions) -> Self {
        if let Some(why) = aiosmtpd_missing() {
            panic!("cannot start the SMTP sink: {why}");
        }
        // The free port is found by binding and releasing it, so another process can
        // take it before the sink binds: try again on a fresh port then.
        let mut last = String::new();
        for _ in 0..5 {
            match Self::spawn(&opts) {
                Ok(sink) => return sink,
                Err(why) => last = why,
            }
        }
        panic!("the SMTP sink did not start: {last}");
    }

    /// Like [`SmtpSink::start_with`], but where python3-aiosmtpd is missing returns
    /// `None` after printing why, so the calling test can return early and pass; under
    /// CI (`CI` set) it panics instead.
    pub(crate) fn try_start(opts: SinkOptions) -> Option<Self> {
        if let Some(why) = aiosmtpd_missing() {
            assert!(
                !crate::under_ci(),
                "the SMTP tests cannot run under CI: {why}"
            );
            eprintln!("skipping: {why}");
            return None;
        }
        Some(Self::start_with(opts))
    }

    fn spawn(opts: &SinkOptions) -> Result<Self, String> {
        let dir = tempfile::Builder::new()
            .prefix("alertcore-smtp-sink-")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        let port = opts.port.unwrap_or_else(free_port);
        let ready = dir.path().join("ready");
        let maildir = dir.path().join("maildir");
        let stderr = std::fs::File::create(dir.path().join("stderr"))
            .map_err(|e| format!("stderr file: {e}"))?;
        let mut cmd = Command::new(PYTHON);
        cmd.arg(SINK)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .arg("--maildir")
            .arg(&maildir)
            .arg("--ready-file")
            .arg(&ready);
        let certs = match opts.tls {
            SinkTls::None => None,
            SinkTls::StartTls { required } => {
                cmd.args(["--tls", "starttls"]);
                if required {
                    cmd.arg("--require-starttls");
                }
                Some(certs())
            }
            SinkTls::Implicit => {
                cmd.args(["--tls", "implicit"]);
                Some(certs())
            }
        };
        if let Some(c) = &certs {
            cmd.arg("--cert").arg(c.cert()).arg("--key").arg(c.key());
        }
        if let Some((user, password)) = &opts.auth {
            cmd.args(["--auth-user", user, "--auth-pass", password]);
            if opts.tls == SinkTls::None {
                cmd.arg("--auth-allow-plaintext");
            }
        }
        for (rcpt, code) in &opts.fail {
            cmd.arg("--fail").arg(format!("{rcpt}={code}"));
        }
        for (command, code, times) in &opts.refuse {
            let times = times.map(|n| format!(":{n}")).unwrap_or_default();
            cmd.arg("--refuse")
                .arg(format!("{}={code}{times}", command.as_str()));
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("cannot run {PYTHON}: {e}"))?;
        // From here on, drop kills the process whatever happens.
        let mut sink = Self {
            child,
            port,
            dir,
            certs,
        };
        let log = sink.dir.path().join("stderr");
        wait_until(&mut sink.child, "smtp-sink.py", &log, READY_TIMEOUT, || {
            ready.exists()
        })?;
        Ok(sink)
    }

    /// The SMTP port on 127.0.0.1.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// The CA certificate that signed the sink's TLS certificate, if it has TLS.
    pub(crate) fn ca_file(&self) -> Option<PathBuf> {
        self.certs.as_ref().map(Certs::ca)
    }

    /// Every message accepted so far, oldest first.
    pub(crate) fn messages(&self) -> Vec<Value> {
        let maildir = self.dir.path().join("maildir");
        let mut names: Vec<PathBuf> = std::fs::read_dir(&maildir)
            .map(|rd| {
                rd.filter_map(|e| e.ok().map(|e| e.path()))
                    // The sink renames the .json into place last: it marks a complete message.
                    .filter(|p| p.extension().is_some_and(|x| x == "json"))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names.iter().map(|p| read_message(p)).collect()
    }

    /// Waits until at least `n` messages arrived or `timeout` passed, and returns all
    /// messages so far (check the count: it may be short after a timeout).
    pub(crate) fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Value> {
        let start = Instant::now();
        loop {
            let messages = self.messages();
            if messages.len() >= n || start.elapsed() > timeout {
                return messages;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_message(json: &Path) -> Value {
    let text =
        std::fs::read_to_string(json).unwrap_or_else(|e| panic!("read {}: {e}", json.display()));
    let mut v: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", json.display()));
    let raw = std::fs::read(json.with_extension("eml")).unwrap_or_default();
    v["raw"] = Value::String(String::from_utf8_lossy(&raw).into_owned());
    v
}

/// Polls `ready` every 10 ms until it holds, for a server `child` started by a test.
///
/// # Errors
/// When the child exits first (with the contents of its `log`) or `timeout` passes.
pub(crate) fn wait_until(
    child: &mut Child,
    name: &str,
    log: &Path,
    timeout: Duration,
    mut ready: impl FnMut() -> bool,
) -> Result<(), String> {
    let start = Instant::now();
    while !ready() {
        if let Ok(Some(status)) = child.try_wait() {
            let err = std::fs::read_to_string(log).unwrap_or_default();
            return Err(format!("{name} exited with {status}: {err}"));
        }
        if start.elapsed() > timeout {
            return Err(format!("{name} not ready after {timeout:?}"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// A port on 127.0.0.1 that was free a moment ago.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// A header of a sink message, by case-insensitive name, trimmed.
pub(crate) fn header(mail: &Value, name: &str) -> Option<String> {
    mail["headers"].as_object().and_then(|h| {
        h.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.as_str())
            .map(|v| v.trim().to_owned())
    })
}
