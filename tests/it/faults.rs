//! The fault matrix, each fault through the outbox end to end: the real `alertctl`
//! against real loopback peers that fail in one particular way, then recover.
//!
//! - SMTP (`peers::SmtpSink`, and a few raw sockets): the server is down (port closed),
//!   answers 4xx then 2xx, answers 5xx, resets or closes the connection, or accepts and
//!   never greets.
//! - HTTP (`http::FaultServer`, a scripted server in this file): 500 then 200, 429 with
//!   `Retry-After`, a receiver that never answers, slow-loris headers and bodies, a
//!   connection reset or closed without an answer, 400; and, through the library, the
//!   engine's own `delivery_timeout` cutting off a transport that would wait longer.
//!
//! For each fault, every test checks that
//! - the event is never lost: the failure is recorded and the outbox row exists, in the
//!   state the fault calls for (pending with its next attempt for a retryable error,
//!   failed at once for a permanent one), with the error saying what happened;
//! - the failing notifier does not hold back the `file` notifier configured next to it:
//!   that one has its alert line and its row is delivered;
//! - once the fault clears, the alert is delivered exactly once (`alertctl flush` when
//!   due, or `alertctl outbox retry --all`), or, for a permanent error, it stays failed,
//!   is never sent again, and `alertctl outbox` and `alertctl status` show it.
//!
//! Time is `--now`: the schedule is checked against a fixed clock, never measured. Only
//! the transports' own `timeout`s run on the real clock; they are short here, and the
//! handler is only required to return within a generous deadline.

#![cfg(any(feature = "email", feature = "webhook"))]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use alertcore::outbox::FIRST_BACKOFF;
use serde_json::Value;

use crate::cli::{Ctl, failure_args, text, wait_or_kill};

/// When the failure happens (`--now`); later steps are offsets from it.
const T0: &str = "2026-11-23T10:00:00Z";
const UNIT: &str = "web.service";
/// How long any peer or handler may take on a loaded machine before a test gives up.
const WAIT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------
// harness: alertctl with a failing notifier and a `file` notifier next to it

/// A state file, a config with the notifier under test and a `file` notifier `notes`
/// after it (in the config and by name), and the file it writes. One alert per streak
/// (`repeat = "0s"`), so no reminder comes between the alert and its retries.
struct Case {
    ctl: Ctl,
    log: PathBuf,
    _logdir: tempfile::TempDir,
}

impl Case {
    /// `notifier` is the TOML table of the notifier under test (`[notifiers.NAME]`...).
    fn new(notifier: &str) -> Self {
        let logdir = tempfile::tempdir().expect("tempdir");
        let log = logdir.path().join("alerts.log");
        let ctl = Ctl::with_config(&format!(
            "host = \"web1\"\n[policy]\nrepeat = \"0s\"\n\n{notifier}\n\n[notifiers.notes]\ntype = \"file\"\npath = \"{}\"\n",
            log.display()
        ));
        Self {
            ctl,
            log,
            _logdir: logdir,
        }
    }

    /// `alertctl failure` of [`UNIT`] at [`T0`], returning within [`WAIT`].
    fn failure(&self) -> Output {
        let mut cmd = self.ctl.command_at(T0, &failure_args(UNIT));
        bounded(&mut cmd, self.ctl.dir.path())
    }

    /// `alertctl flush` at `secs` after [`T0`], returning within [`WAIT`].
    fn flush(&self, secs: u64) -> Output {
        let mut cmd = self.ctl.command_at(&at(secs), &["flush"]);
        bounded(&mut cmd, self.ctl.dir.path())
    }

    /// [`Case::failure`], whose alert to `notifier` fails with `error` and is left to
    /// the outbox: the handler says it will retry, and
    /// [`Case::assert_first_attempt_pending`]. Returns the handler's output and the
    /// row, for the checks particular to the fault.
    fn failure_left_for_retry(&self, notifier: &str, error: &str) -> (Output, Value) {
        let out = self.failure();
        assert_will_retry(&out, notifier);
        let row = self.assert_first_attempt_pending(notifier, error);
        (out, row)
    }

    /// After the failure at [`T0`]: `notifier`'s row is the only one in the outbox,
    /// pending after one attempt that failed with `error`, its retry planned no sooner
    /// than [`FIRST_BACKOFF`] later; and [`Case::assert_recorded_and_neighbour_served`].
    /// Returns the row.
    fn assert_first_attempt_pending(&self, notifier: &str, error: &str) -> Value {
        let row = self.only_outbox_row(notifier);
        assert_pending(&row, 1, error, 0, FIRST_BACKOFF);
        self.assert_recorded_and_neighbour_served();
        row
    }

    /// `alertctl flush` a minute after [`T0`], when the first retry is due, which fails
    /// again with `error`: the handler says it will retry, and the row is pending after
    /// two attempts, the next planned no sooner than twice [`FIRST_BACKOFF`] later.
    /// Returns the row.
    fn first_retry_fails(&self, notifier: &str, error: &str) -> Value {
        let out = self.flush(60);
        assert_will_retry(&out, notifier);
        let row = self.only_outbox_row(notifier);
        assert_pending(&row, 2, error, 60, 2 * FIRST_BACKOFF);
        row
    }

    /// `alertctl flush` at `secs` after [`T0`] succeeds, and [`Case::assert_delivered`].
    /// Returns the flush's output.
    fn flush_delivers(&self, secs: u64, notifier: &str, attempts: u32) -> Output {
        let out = self.flush(secs);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        self.assert_delivered(notifier, attempts);
        out
    }

    /// The pending and failed rows (`alertctl outbox --json`).
    fn outbox(&self) -> Vec<Value> {
        array(self.ctl.json(&["outbox", "--json"]))
    }

    /// The one outbox row, which must be `notifier`'s.
    fn only_outbox_row(&self, notifier: &str) -> Value {
        let rows = self.outbox();
        assert_eq!(rows.len(), 1, "one row in the outbox: {rows:#?}");
        assert_eq!(rows[0]["notifier"], notifier, "{rows:#?}");
        assert_eq!(rows[0]["service"], UNIT, "{rows:#?}");
        rows[0].clone()
    }

    /// `notifier`'s one notification of [`UNIT`], whatever its state (`alertctl history`).
    fn notification(&self, notifier: &str) -> Value {
        let h = self.ctl.json(&["history", UNIT, "--json"]);
        let mine: Vec<Value> = array(h["notifications"].clone())
            .into_iter()
            .filter(|n| n["notifier"] == notifier)
            .collect();
        assert_eq!(mine.len(), 1, "one notification to {notifier}: {h:#}");
        mine[0].clone()
    }

    /// `alertctl status UNIT --json`: the service, and the notifiers' last outcomes.
    fn status(&self) -> Value {
        self.ctl.json(&["status", UNIT, "--json"])
    }

    /// The event is recorded, and the `file` notifier next to the failing one got its
    /// alert (its line, its row delivered): checked after every failure, next to the
    /// failing notifier's own row.
    fn assert_recorded_and_neighbour_served(&self) {
        let h = self.ctl.json(&["history", UNIT, "--json"]);
        assert_eq!(
            h["failures"].as_array().map(Vec::len),
            Some(1),
            "the failure is recorded: {h:#}"
        );
        let s = self.status();
        assert_eq!(s["services"][0]["failing"], true, "{s:#}");
        assert_eq!(s["services"][0]["consecutive_failures"], 1, "{s:#}");
        let lines = self.log_lines();
        assert_eq!(lines.len(), 1, "the file notifier's alert: {lines:?}");
        assert!(lines[0].contains(UNIT), "{lines:?}");
        let log = self.notification("notes");
        assert_eq!(log["status"], "delivered", "{log:#}");
        assert_eq!(log["attempts"], 1, "{log:#}");
    }

    fn log_lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// `notifier`'s row is delivered after `attempts` attempts, nothing is left in the
    /// outbox, `status` shows no pending delivery, and a much later flush sends nothing.
    fn assert_delivered(&self, notifier: &str, attempts: u32) {
        let n = self.notification(notifier);
        assert_eq!(n["status"], "delivered", "{n:#}");
        assert_eq!(n["attempts"], attempts, "{n:#}");
        assert!(n["error"].is_null(), "{n:#}");
        assert_eq!(self.outbox(), Vec::<Value>::new(), "nothing left to send");
        let s = self.status();
        assert_eq!(s["services"][0]["pending_deliveries"], 0, "{s:#}");
        assert_sent_nothing(&self.flush(6 * 3600));
        // the file notifier was not sent again either
        assert_eq!(self.log_lines().len(), 1);
    }

    /// `notifier`'s row failed at once (one attempt, no retry planned) with an error
    /// containing `error`; `alertctl outbox` and `alertctl status` show it; a much later
    /// flush does not send it again. The caller checks that the peer saw one attempt.
    fn assert_failed_loudly(&self, notifier: &str, error: &str) {
        let row = self.only_outbox_row(notifier);
        assert_eq!(row["status"], "failed", "{row:#}");
        assert_eq!(row["attempts"], 1, "{row:#}");
        assert!(row["next_attempt"].is_null(), "not retried: {row:#}");
        assert!(str_of(&row["error"]).contains(error), "{row:#}");
        let listing = self.ctl.run(&["outbox"]);
        let listing = text(&listing);
        assert!(
            listing.contains(&format!("{notifier} failure of {UNIT}"))
                && listing.contains("failed"),
            "{listing}"
        );
        let s = self.status();
        let e = &s["services"][0]["last_delivery_error"];
        assert_eq!(e["notifier"], notifier, "{s:#}");
        assert!(str_of(&e["error"]).contains(error), "{s:#}");
        let ours = array(s["notifiers"].clone())
            .into_iter()
            .find(|n| n["name"] == notifier)
            .unwrap_or_else(|| panic!("{notifier} in status: {s:#}"));
        assert_eq!(ours["last_outcome"], "failed", "{s:#}");
        let human = text(&self.ctl.run(&["status", UNIT]));
        assert!(human.contains("last delivery error"), "{human}");
        for later in [120, 6 * 3600] {
            assert_sent_nothing(&self.flush(later));
        }
        let row = self.only_outbox_row(notifier);
        assert_eq!(row["status"], "failed", "{row:#}");
        assert_eq!(row["attempts"], 1, "{row:#}");
    }
}

/// A row waiting for its retry: pending, `attempts` made, the last error containing
/// `error`, and the next attempt planned no sooner than `min_wait` after the attempt at
/// `attempted` (seconds after [`T0`]).
fn assert_pending(row: &Value, attempts: u32, error: &str, attempted: u64, min_wait: Duration) {
    assert_eq!(row["status"], "pending", "{row:#}");
    assert_eq!(row["attempts"], attempts, "{row:#}");
    assert!(
        str_of(&row["error"]).contains(error),
        "want {error:?}: {row:#}"
    );
    let next = row["next_attempt"]
        .as_i64()
        .unwrap_or_else(|| panic!("a retry is planned: {row:#}"));
    let earliest = ms(attempted) + i64::try_from(min_wait.as_millis()).unwrap_or(i64::MAX);
    assert!(
        next >= earliest,
        "next attempt {next} before {earliest} ({min_wait:?} after the attempt): {row:#}"
    );
}

/// A failure the outbox will retry: exit code 3 and the handler says so.
fn assert_will_retry(out: &Output, notifier: &str) {
    assert_eq!(out.status.code(), Some(3), "{}", text(out));
    assert!(
        report_line(out, notifier).contains("): not delivered, will retry at "),
        "{}",
        text(out)
    );
}

/// A failure not worth retrying: exit code 3 and the handler says so.
fn assert_not_retryable(out: &Output, notifier: &str) {
    assert_eq!(out.status.code(), Some(3), "{}", text(out));
    assert!(
        report_line(out, notifier).contains("): not delivered (not retryable): "),
        "{}",
        text(out)
    );
}

/// A flush that had nothing to send: it succeeded and reported no delivery.
fn assert_sent_nothing(out: &Output) {
    assert_eq!(out.status.code(), Some(0), "{}", text(out));
    assert!(
        !text(out).contains(&format!(" of {UNIT} (#")),
        "nothing was due: {}",
        text(out)
    );
}

/// What `alertctl` said about `notifier`'s failure alert of [`UNIT`] (`NOTIFIER failure
/// of UNIT (#ID): ...`), on either stream.
fn report_line(out: &Output, notifier: &str) -> String {
    let all = text(out);
    let prefix = format!("{notifier} failure of {UNIT} (#");
    all.lines()
        .find_map(|l| l.find(&prefix).map(|i| l[i..].to_owned()))
        .unwrap_or_else(|| panic!("nothing said about {notifier}: {all}"))
}

/// `--now` for `secs` after [`T0`].
fn at(secs: u64) -> String {
    let t = t0() + Duration::from_secs(secs);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Milliseconds since the epoch of `secs` after [`T0`], as the JSON output has them.
fn ms(secs: u64) -> i64 {
    let t = t0() + Duration::from_secs(secs);
    let d = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("after 1970");
    i64::try_from(d.as_millis()).expect("fits")
}

fn t0() -> SystemTime {
    humantime::parse_rfc3339(T0).expect("T0")
}

fn array(v: Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a,
        other => panic!("not an array: {other:#}"),
    }
}

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

/// Runs `cmd` to its end, which must come within [`WAIT`] (the handler is bounded by
/// its transports' timeouts); output goes through files in `dir`, so a chatty child
/// cannot block on a full pipe while we wait.
fn bounded(cmd: &mut Command, dir: &Path) -> Output {
    let id = next_id();
    let (out_path, err_path) = (dir.join(format!("out-{id}")), dir.join(format!("err-{id}")));
    let stdout = std::fs::File::create(&out_path).expect("stdout file");
    let stderr = std::fs::File::create(&err_path).expect("stderr file");
    let mut child = cmd
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(stderr))
        .spawn()
        .expect("run alertctl");
    let status = wait_or_kill(&mut child, Instant::now() + WAIT).unwrap_or_else(|| {
        panic!(
            "alertctl did not return within {WAIT:?}: {}",
            std::fs::read_to_string(&err_path).unwrap_or_default()
        )
    });
    Output {
        status,
        stdout: std::fs::read(&out_path).unwrap_or_default(),
        stderr: std::fs::read(&err_path).unwrap_or_default(),
    }
}

/// A name no other run of [`bounded`] in this process uses.
fn next_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

// ---------------------------------------------------------------------------------------
// SMTP

#[cfg(feature = "email")]
mod smtp {
    use std::net::TcpListener;

    use super::*;
    use crate::peers::{SinkOptions, SmtpCommand, SmtpSink, free_port};

    /// The `mail` notifier: SMTP to `port`, no journal (no `journalctl` in the way).
    fn mail(port: u16, timeout: &str) -> String {
        format!(
            "[notifiers.mail]\ntype = \"email\"\nurl = \"smtp://127.0.0.1:{port}\"\n\
             from = \"alertcore@example.org\"\nto = [\"ops@example.org\"]\n\
             timeout = \"{timeout}\"\njournal_lines = 0"
        )
    }

    /// The one mail the sink got, about [`UNIT`].
    fn assert_one_mail(sink: &SmtpSink) {
        let mails = sink.messages();
        assert_eq!(mails.len(), 1, "exactly one mail: {mails:#?}");
        let subject = str_of(&mails[0]["subject"]);
        assert!(
            subject.contains(&format!("FAILED: {UNIT}")),
            "{subject:?}: {:#}",
            mails[0]
        );
    }

    #[test]
    fn server_down_then_up_is_delivered_once_after_outbox_retry() {
        let port = free_port(); // nothing listens there now
        let case = Case::new(&mail(port, "5s"));
        let (out, _) = case.failure_left_for_retry(
            "mail",
            &format!("cannot connect to 127.0.0.1:{port}: Connection refused"),
        );
        assert!(text(&out).contains("Connection refused"), "{}", text(&out));
        let s = case.status();
        assert_eq!(s["services"][0]["pending_deliveries"], 1, "{s:#}");

        // the server comes up; the operator does not wait for the schedule
        let Some(sink) = SmtpSink::try_start(SinkOptions::plain().port(port)) else {
            return;
        };
        let out = case.ctl.run_at(&at(5), &["outbox", "retry", "--all"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        assert!(text(&out).contains("1 delivery due now"), "{}", text(&out));
        let out = case.flush_delivers(5, "mail", 2);
        assert!(
            report_line(&out, "mail").ends_with("): delivered from the outbox"),
            "{}",
            text(&out)
        );
        assert_one_mail(&sink);
    }

    #[test]
    fn temporary_4xx_is_retried_until_accepted() {
        // the first transaction is refused at MAIL (421), the second at the end of DATA
        // (451), the third goes through
        let Some(sink) = SmtpSink::try_start(
            SinkOptions::plain()
                .refuse(SmtpCommand::Mail, 421, Some(1))
                .refuse(SmtpCommand::Data, 451, Some(1)),
        ) else {
            return;
        };
        let case = Case::new(&mail(sink.port(), "5s"));
        case.failure_left_for_retry("mail", "421");

        // not due yet: nothing is sent
        assert_sent_nothing(&case.flush(10));
        assert_eq!(case.only_outbox_row("mail")["attempts"], 1);

        case.first_retry_fails("mail", "451");
        assert!(sink.messages().is_empty(), "a deferred mail is not stored");

        case.flush_delivers(180, "mail", 3);
        assert_one_mail(&sink);
    }

    #[test]
    fn permanent_5xx_fails_at_once_and_is_not_retried() {
        let Some(sink) =
            SmtpSink::try_start(SinkOptions::plain().refuse(SmtpCommand::Rcpt, 550, None))
        else {
            return;
        };
        let case = Case::new(&mail(sink.port(), "5s"));
        let out = case.failure();
        assert_not_retryable(&out, "mail");
        case.assert_recorded_and_neighbour_served();
        case.assert_failed_loudly("mail", "550");
        assert!(sink.messages().is_empty());
    }

    /// How [`drop_connections`] treats one connection.
    #[derive(Debug, Clone, Copy)]
    enum Cut {
        /// Greets, waits for EHLO and closes with it unread: a reset (RST).
        ResetAfterGreeting,
        /// Closes as soon as the connection is accepted, before any greeting.
        CloseAtOnce,
    }

    /// Serves one connection per entry of `script` on `listener`, then closes it, so
    /// that a real server can take the port.
    fn drop_connections(listener: TcpListener, script: Vec<Cut>) -> std::thread::JoinHandle<()> {
        use std::io::Write as _;
        listener.set_nonblocking(true).expect("nonblocking");
        std::thread::spawn(move || {
            let start = Instant::now();
            for step in script {
                let mut stream = loop {
                    match listener.accept() {
                        Ok((s, _)) => break s,
                        Err(_) if start.elapsed() < WAIT => {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        Err(e) => panic!("no client came: {e}"),
                    }
                };
                stream.set_nonblocking(false).expect("blocking");
                match step {
                    Cut::CloseAtOnce => {}
                    Cut::ResetAfterGreeting => {
                        stream
                            .write_all(b"220 faults.test ESMTP\r\n")
                            .expect("greet");
                        stream.set_read_timeout(Some(WAIT)).expect("timeout");
                        let mut one = [0u8; 1];
                        let _ = stream.peek(&mut one); // EHLO is here, unread
                    }
                }
            }
        })
    }

    #[test]
    fn reset_and_closed_connections_are_retried() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = drop_connections(listener, vec![Cut::ResetAfterGreeting, Cut::CloseAtOnce]);
        let case = Case::new(&mail(port, "5s"));
        let here = format!("127.0.0.1:{port}");
        let (_, row) = case.failure_left_for_retry("mail", &here);
        assert!(
            str_of(&row["error"]).contains("Connection reset by peer"),
            "{row:#}"
        );

        let row = case.first_retry_fails("mail", &here);
        assert!(
            str_of(&row["error"]).contains("incomplete response"),
            "{row:#}"
        );

        server.join().expect("the scripted server");
        let Some(sink) = SmtpSink::try_start(SinkOptions::plain().port(port)) else {
            return;
        };
        case.flush_delivers(300, "mail", 3);
        assert_one_mail(&sink);
    }

    #[test]
    fn server_that_never_greets_times_out_and_is_retried() {
        // accepts connections (the kernel does) and never says a word
        let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = silent.local_addr().expect("addr").port();
        let case = Case::new(&mail(port, "1s"));
        case.failure_left_for_retry(
            "mail",
            &format!("no answer from 127.0.0.1:{port} within 1s"),
        );

        drop(silent);
        let Some(sink) = SmtpSink::try_start(SinkOptions::plain().port(port)) else {
            return;
        };
        case.flush_delivers(60, "mail", 2);
        assert_one_mail(&sink);
    }
}

// ---------------------------------------------------------------------------------------
// HTTP

#[cfg(feature = "webhook")]
mod http {
    use std::collections::VecDeque;
    use std::io::{self, Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex, PoisonError};
    use std::thread::JoinHandle;

    use super::*;

    /// What [`FaultServer`] does with one request.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Step {
        /// Answers `code`, with a `Retry-After` when given.
        Status(u16, Option<&'static str>),
        /// Reads the request and never answers, until [`FaultServer::release`] (then
        /// closes the connection) or the client gives up.
        Hang,
        /// Sends the status line, then one byte of a header every 100 ms, never ending
        /// the headers.
        SlowHeaders,
        /// Sends complete headers of `code` announcing a large body, then one byte of
        /// the body every 100 ms.
        SlowBody(u16),
        /// Reads part of the request and closes with unread data queued: the kernel
        /// answers with a reset (RST) instead of an orderly close.
        Reset,
        /// Reads the request and closes the connection without answering.
        Close,
    }

    /// A request the server saw, and what it did.
    #[derive(Debug, Clone)]
    struct Seen {
        step: Step,
        /// The body as JSON (`None` when it was not read: [`Step::Reset`]).
        body: Option<Value>,
    }

    #[derive(Debug, Default)]
    struct Shared {
        script: Mutex<VecDeque<Step>>,
        seen: Mutex<Vec<Seen>>,
        released: AtomicBool,
        stop: AtomicBool,
    }

    /// An HTTP/1.1 server on 127.0.0.1 that follows a script, one step per request
    /// (one request per connection), and answers `200` once the script is done.
    #[derive(Debug)]
    struct FaultServer {
        port: u16,
        shared: Arc<Shared>,
        accept: Option<JoinHandle<()>>,
    }

    impl FaultServer {
        fn start(script: impl IntoIterator<Item = Step>) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
            let port = listener.local_addr().expect("addr").port();
            listener.set_nonblocking(true).expect("nonblocking");
            let shared = Arc::new(Shared {
                script: Mutex::new(script.into_iter().collect()),
                ..Shared::default()
            });
            let s = Arc::clone(&shared);
            let accept = std::thread::spawn(move || {
                while !s.stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let s = Arc::clone(&s);
                            std::thread::spawn(move || serve(stream, &s));
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            });
            Self {
                port,
                shared,
                accept: Some(accept),
            }
        }

        fn url(&self) -> String {
            format!("http://127.0.0.1:{}/hook", self.port)
        }

        /// Every request so far.
        fn seen(&self) -> Vec<Seen> {
            lock(&self.shared.seen).clone()
        }

        /// The steps taken so far.
        fn steps(&self) -> Vec<Step> {
            self.seen().into_iter().map(|s| s.step).collect()
        }

        /// Lets every [`Step::Hang`] connection go (closed without an answer).
        fn release(&self) {
            self.shared.released.store(true, Ordering::SeqCst);
        }

        /// The one request answered 2xx: the alert about [`UNIT`].
        fn assert_delivered_once(&self) {
            let seen = self.seen();
            let ok: Vec<&Seen> = seen
                .iter()
                .filter(|s| matches!(s.step, Step::Status(200..=299, _)))
                .collect();
            assert_eq!(ok.len(), 1, "one accepted request: {seen:#?}");
            let doc = ok[0].body.as_ref().expect("a JSON body");
            assert_eq!(doc["service"], UNIT, "{doc:#}");
            assert_eq!(doc["event"], "failure", "{doc:#}");
        }

        /// The server took `steps`, in order, one a request, and
        /// [`FaultServer::assert_delivered_once`].
        fn assert_steps_then_delivered_once(&self, steps: &[Step]) {
            assert_eq!(
                self.steps(),
                steps,
                "the requests and what was done with them: {:#?}",
                self.seen()
            );
            self.assert_delivered_once();
        }
    }

    impl Drop for FaultServer {
        fn drop(&mut self) {
            self.shared.stop.store(true, Ordering::SeqCst);
            if let Some(t) = self.accept.take() {
                let _ = t.join();
            }
        }
    }

    fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        m.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn serve(mut stream: TcpStream, shared: &Shared) {
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_nodelay(true);
        let _ = stream.set_read_timeout(Some(Duration::from_millis(20)));
        // a step per request, not per connection: wait for the request to begin
        if !readable(&stream, shared) {
            return;
        }
        let step = lock(&shared.script)
            .pop_front()
            .unwrap_or(Step::Status(200, None));
        if step == Step::Reset {
            let mut one = [0u8; 1];
            let _ = stream.read(&mut one);
            // the rest of the request is queued (or on its way): make sure some is
            // there, so that closing sends RST
            let _ = readable(&stream, shared);
            lock(&shared.seen).push(Seen { step, body: None });
            return; // dropped with unread data: RST
        }
        let Some(body) = read_request(&mut stream, shared) else {
            return;
        };
        let body = serde_json::from_slice(&body).ok();
        lock(&shared.seen).push(Seen {
            step: step.clone(),
            body,
        });
        match step {
            Step::Status(code, retry_after) => {
                let text = if (200..300).contains(&code) {
                    "{\"ok\": true}"
                } else {
                    "{\"ok\": false, \"error\": \"scripted fault\"}"
                };
                let retry_after = retry_after
                    .map(|r| format!("Retry-After: {r}\r\n"))
                    .unwrap_or_default();
                let _ = write!(
                    stream,
                    "HTTP/1.1 {code} Scripted\r\nContent-Type: application/json\r\n\
                     Content-Length: {}\r\nConnection: close\r\n{retry_after}\r\n{text}",
                    text.len()
                );
                let _ = stream.flush();
                let _ = stream.shutdown(std::net::Shutdown::Write);
                // let the client read the answer and close first
                let _ = drain_until_closed(&mut stream, shared);
            }
            Step::Hang => {
                let _ = drain_until_closed(&mut stream, shared);
            }
            Step::SlowHeaders => {
                if stream.write_all(b"HTTP/1.1 200 OK\r\nX-Slow: ").is_ok() {
                    drip(&mut stream, shared);
                }
            }
            Step::SlowBody(code) => {
                let head = format!(
                    "HTTP/1.1 {code} Scripted\r\nContent-Type: text/plain\r\n\
                     Content-Length: 1000000\r\nConnection: close\r\n\r\n"
                );
                if stream.write_all(head.as_bytes()).is_ok() {
                    drip(&mut stream, shared);
                }
            }
            Step::Close => {
                let _ = stream.shutdown(std::net::Shutdown::Both);
            }
            Step::Reset => {}
        }
    }

    /// Waits until the peer has sent something (`true`), or closed, or the server stops.
    fn readable(stream: &TcpStream, shared: &Shared) -> bool {
        let mut one = [0u8; 1];
        loop {
            match stream.peek(&mut one) {
                Ok(0) => return false,
                Ok(_) => return true,
                Err(e) if is_timeout(&e) => {
                    if shared.stop.load(Ordering::SeqCst) {
                        return false;
                    }
                }
                Err(_) => return false,
            }
        }
    }

    fn is_timeout(e: &io::Error) -> bool {
        matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
        )
    }

    /// Reads one request (headers, then a `Content-Length` body): the body.
    fn read_request(stream: &mut TcpStream, shared: &Shared) -> Option<Vec<u8>> {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let start = Instant::now();
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    return Some(buf[end + 4..end + 4 + len].to_vec());
                }
            }
            if shared.stop.load(Ordering::SeqCst) || start.elapsed() > WAIT {
                return None;
            }
            match stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) if is_timeout(&e) => {}
                Err(_) => return None,
            }
        }
    }

    /// Reads and drops whatever comes until the client closes, the test releases the
    /// connection, or the server stops.
    fn drain_until_closed(stream: &mut TcpStream, shared: &Shared) -> io::Result<()> {
        let mut chunk = [0u8; 4096];
        loop {
            if shared.stop.load(Ordering::SeqCst) || shared.released.load(Ordering::SeqCst) {
                return Ok(());
            }
            match stream.read(&mut chunk) {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) if is_timeout(&e) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// One byte every 100 ms until the client goes away or the server stops.
    fn drip(stream: &mut TcpStream, shared: &Shared) {
        while !shared.stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(100));
            if stream.write_all(b"a").is_err() {
                return;
            }
        }
    }

    /// The `hook` notifier posting to `server`, with extra keys.
    fn hook(server: &FaultServer, extra: &str) -> String {
        format!(
            "[notifiers.hook]\ntype = \"webhook\"\nurl = \"{}\"\n{extra}",
            server.url()
        )
    }

    /// The webhook's own timeout in these tests: short, but roomy for a loopback
    /// request on a loaded machine.
    const TIMEOUT: &str = "1s";

    #[test]
    fn a_500_then_200_is_retried_by_the_outbox_and_delivered_once() {
        let server = FaultServer::start([Step::Status(500, None)]);
        // no retry inside the delivery: the outbox does it
        let case = Case::new(&hook(&server, ""));
        case.failure_left_for_retry("hook", "answered 500 Internal Server Error");

        case.flush_delivers(60, "hook", 2);
        server
            .assert_steps_then_delivered_once(&[Step::Status(500, None), Step::Status(200, None)]);
    }

    /// A 429 ends the delivery at once (one request), and the outbox waits as long as
    /// its `Retry-After` says (ten minutes), not its own 30 s.
    #[test]
    fn a_429_with_retry_after_sets_the_next_attempt() {
        let server = FaultServer::start([Step::Status(429, Some("600"))]);
        let case = Case::new(&hook(&server, ""));
        let out = case.failure();
        assert_will_retry(&out, "hook");
        let row = case.only_outbox_row("hook");
        assert_pending(
            &row,
            1,
            "answered 429 Too Many Requests",
            0,
            Duration::from_secs(600),
        );
        assert_eq!(server.steps().len(), 1, "no retry inside the delivery");
        case.assert_recorded_and_neighbour_served();

        // the backoff alone would be due by now; the receiver asked for more
        assert_sent_nothing(&case.flush(300));
        assert_eq!(server.steps().len(), 1);

        case.flush_delivers(601, "hook", 2);
        server.assert_steps_then_delivered_once(&[
            Step::Status(429, Some("600")),
            Step::Status(200, None),
        ]);
    }

    /// A short `Retry-After` is not waited for inside the delivery either: one request,
    /// and the outbox's own backoff (longer) decides the next attempt.
    #[test]
    fn a_429_with_a_short_retry_after_is_left_to_the_outbox() {
        let server = FaultServer::start([Step::Status(429, Some("1"))]);
        let case = Case::new(&hook(&server, ""));
        case.failure_left_for_retry("hook", "answered 429 Too Many Requests");
        assert_eq!(server.steps().len(), 1, "no retry inside the delivery");

        case.flush_delivers(60, "hook", 2);
        server.assert_steps_then_delivered_once(&[
            Step::Status(429, Some("1")),
            Step::Status(200, None),
        ]);
    }

    /// The receiver's first answer does not come within the webhook's `timeout`
    /// (`first`): the handler returns all the same, the row waits for its retry, and the
    /// retry is delivered.
    fn assert_timed_out_then_retried(first: Step) {
        let server = FaultServer::start([first.clone()]);
        let case = Case::new(&hook(&server, &format!("timeout = \"{TIMEOUT}\"")));
        // `bounded`: the handler returns (within the webhook's timeout, give or take)
        case.failure_left_for_retry(
            "hook",
            &format!("no answer from http://127.0.0.1:{} within 1s", server.port),
        );

        case.flush_delivers(60, "hook", 2);
        server.assert_steps_then_delivered_once(&[first, Step::Status(200, None)]);
    }

    #[test]
    fn a_receiver_that_never_answers_times_out_and_is_retried() {
        assert_timed_out_then_retried(Step::Hang);
    }

    /// While the webhook waits for its receiver, the `file` notifier next to it has
    /// already written its alert; the receiver then hangs up without an answer.
    #[test]
    fn a_hung_receiver_does_not_hold_back_the_other_notifier() {
        let server = FaultServer::start([Step::Hang]);
        // a timeout longer than this test waits: only the release ends the request
        let case = Case::new(&hook(&server, "timeout = \"60s\""));
        let mut child = case
            .ctl
            .command_at(T0, &failure_args(UNIT))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run alertctl");
        let start = Instant::now();
        while (case.log_lines().is_empty() || server.seen().is_empty()) && start.elapsed() < WAIT {
            std::thread::sleep(Duration::from_millis(10));
        }
        let still_running = child.try_wait().expect("try_wait").is_none();
        if !still_running || case.log_lines().is_empty() {
            let _ = child.kill();
            let _ = child.wait();
        }
        assert_eq!(case.log_lines().len(), 1, "the file notifier's alert");
        assert!(still_running, "the webhook is still waiting for its answer");
        assert_eq!(server.steps(), [Step::Hang]);

        server.release();
        let status = wait_or_kill(&mut child, Instant::now() + WAIT).unwrap_or_else(|| {
            panic!("alertctl did not return within {WAIT:?} after the receiver hung up")
        });
        assert_eq!(status.code(), Some(3));
        let row = case.assert_first_attempt_pending(
            "hook",
            &format!("the exchange with http://127.0.0.1:{} failed", server.port),
        );
        assert!(
            str_of(&row["error"]).contains("connection closed before message completed"),
            "{row:#}"
        );

        case.flush_delivers(60, "hook", 2);
        server.assert_steps_then_delivered_once(&[Step::Hang, Step::Status(200, None)]);
    }

    /// Slow-loris: the status line comes, then a header byte by byte, forever. The
    /// webhook's `timeout` bounds the whole exchange, not each read.
    #[test]
    fn slow_loris_headers_are_bounded_by_the_timeout() {
        assert_timed_out_then_retried(Step::SlowHeaders);
    }

    /// Slow-loris in the body: a 500 whose explanation never ends is still a 500 (the
    /// delivery does not wait for the whole body), and a 200 whose body never ends is a
    /// delivery (the status said so).
    #[test]
    fn slow_loris_bodies_are_bounded_by_the_timeout() {
        let server = FaultServer::start([Step::SlowBody(500), Step::SlowBody(200)]);
        let case = Case::new(&hook(&server, &format!("timeout = \"{TIMEOUT}\"")));
        case.failure_left_for_retry("hook", "answered 500 Internal Server Error");

        case.flush_delivers(60, "hook", 2);
        // not `assert_steps_then_delivered_once`: it counts only `Step::Status` as accepted
        assert_eq!(server.steps(), [Step::SlowBody(500), Step::SlowBody(200)]);
        assert!(
            server.seen()[1]
                .body
                .as_ref()
                .is_some_and(|b| b["service"] == UNIT)
        );
    }

    /// A reset mid-request, then a connection closed without an answer: both retryable.
    #[test]
    fn reset_and_closed_connections_are_retried() {
        let server = FaultServer::start([Step::Reset, Step::Close]);
        let case = Case::new(&hook(&server, ""));
        let exchange = format!("the exchange with http://127.0.0.1:{} failed", server.port);
        let (_, row) = case.failure_left_for_retry("hook", &exchange);
        // the reset meets the client reading the answer, or still writing the body
        let error = str_of(&row["error"]);
        assert!(
            error.contains("Connection reset by peer") || error.contains("Broken pipe"),
            "{row:#}"
        );

        let row = case.first_retry_fails("hook", &exchange);
        assert!(
            str_of(&row["error"]).contains("connection closed before message completed"),
            "{row:#}"
        );

        case.flush_delivers(300, "hook", 3);
        server.assert_steps_then_delivered_once(&[
            Step::Reset,
            Step::Close,
            Step::Status(200, None),
        ]);
    }

    /// The engine's `delivery_timeout` is the last bound: a transport allowed to wait
    /// longer (here the webhook's own `timeout` of a minute) is cut off, and the row is
    /// left for a retry. `alertctl` fixes it at two minutes, so this goes through the
    /// library.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_engine_delivery_timeout_bounds_a_transport_that_waits_longer() {
        use alertcore::store::OutboxFilter;
        use alertcore::{Config, Engine, FailureReport, Registry, SqliteStore, Store};

        let server = FaultServer::start([Step::Hang]);
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("alerts.log");
        let config = Config::parse(
            &format!(
                "{}\n[notifiers.notes]\ntype = \"file\"\npath = \"{}\"\n",
                hook(&server, "timeout = \"60s\""),
                log.display()
            ),
            "alertcore.toml",
        )
        .expect("config");
        let registry = Registry::new().with(alertcore_webhook::FACTORY);
        let notifiers = config.build_notifiers(&registry).expect("notifiers");
        let store = Arc::new(SqliteStore::open(dir.path().join("state.db")).expect("store"));
        let engine = Engine::builder(Arc::clone(&store) as Arc<dyn Store>)
            .host("web1")
            .delivery_timeout(Duration::from_secs(1))
            .configured(notifiers)
            .build();

        let report = tokio::time::timeout(
            WAIT,
            engine.failure(UNIT, FailureReport::new("exit-code").exit_status("1")),
        )
        .await
        .expect("the engine returns")
        .expect("recorded");
        let hook = report
            .deliveries
            .iter()
            .find(|d| d.notifier == "hook")
            .expect("the hook was tried");
        let error = hook.error.as_deref().unwrap_or_default();
        assert!(error.contains("no answer within 1s"), "{error}");
        assert!(hook.retryable, "{hook:?}");
        assert!(hook.next_attempt.is_some(), "{hook:?}");
        let notes = report
            .deliveries
            .iter()
            .find(|d| d.notifier == "notes")
            .expect("the file was written");
        assert!(notes.error.is_none(), "{notes:?}");
        let lines = std::fs::read_to_string(&log).unwrap_or_default();
        assert_eq!(lines.lines().count(), 1, "{lines}");

        let rows = store.outbox(&OutboxFilter::new()).expect("outbox");
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0].notifier, "hook");
        assert_eq!(rows[0].status.as_str(), "pending");
        assert_eq!(rows[0].attempts, 1);

        // the receiver comes back; an operator makes the row due
        server.release();
        assert_eq!(store.retry(None, engine.now()).expect("retry"), 1);
        let sent = tokio::time::timeout(WAIT, engine.flush())
            .await
            .expect("the flush returns")
            .expect("flushed");
        let hook: Vec<_> = sent.iter().filter(|d| d.notifier == "hook").collect();
        assert_eq!(hook.len(), 1, "{sent:?}");
        assert!(hook[0].error.is_none(), "{sent:?}");
        assert!(
            store
                .outbox(&OutboxFilter::new())
                .expect("outbox")
                .is_empty()
        );
        server.assert_steps_then_delivered_once(&[Step::Hang, Step::Status(200, None)]);
    }

    #[test]
    fn a_400_fails_at_once_and_is_not_retried() {
        let server = FaultServer::start([Step::Status(400, None)]);
        let case = Case::new(&hook(&server, ""));
        let out = case.failure();
        assert_not_retryable(&out, "hook");
        case.assert_recorded_and_neighbour_served();
        case.assert_failed_loudly("hook", "answered 400 Bad Request");
        assert_eq!(server.steps(), [Step::Status(400, None)]);
    }
}
