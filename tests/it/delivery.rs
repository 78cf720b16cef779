//! Outbox limits and fallbacks end to end: real `alertctl` processes sharing one state
//! file, a webhook receiver on 127.0.0.1 that counts requests in flight, and a file
//! notifier as the fallback.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::cli::{Ctl, failure_args, text};

/// A keep-alive HTTP/1.1 receiver that answers every POST with 200 after `delay`,
/// recording the bodies and the most requests it ever had in hand at once.
struct SlowReceiver {
    port: u16,
    bodies: Arc<Mutex<Vec<String>>>,
    peak: Arc<AtomicUsize>,
}

impl SlowReceiver {
    fn start(delay: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let peak = Arc::new(AtomicUsize::new(0));
        let current = Arc::new(AtomicUsize::new(0));
        let (b, p) = (bodies.clone(), peak.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (b, p, c) = (b.clone(), p.clone(), current.clone());
                std::thread::spawn(move || serve(stream, delay, &b, &p, &c));
            }
        });
        Self { port, bodies, peak }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    fn bodies(&self) -> Vec<String> {
        self.bodies.lock().expect("bodies").clone()
    }
}

fn serve(
    stream: TcpStream,
    delay: Duration,
    bodies: &Mutex<Vec<String>>,
    peak: &AtomicUsize,
    current: &AtomicUsize,
) {
    let mut out = stream.try_clone().expect("clone");
    let mut reader = BufReader::new(stream);
    loop {
        let mut length = 0usize;
        let mut line = String::new();
        // the request line and headers
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let now = current.fetch_add(1, Ordering::SeqCst) + 1;
        peak.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(delay);
        bodies
            .lock()
            .expect("bodies")
            .push(String::from_utf8_lossy(&body).into_owned());
        current.fetch_sub(1, Ordering::SeqCst);
        if out
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .is_err()
        {
            return;
        }
    }
}

/// The open outbox rows (pending and failed), as `alertctl outbox --json` lists them.
fn open_rows(ctl: &Ctl) -> Vec<serde_json::Value> {
    let v = ctl.json(&["outbox", "--json"]);
    v.as_array()
        .cloned()
        .or_else(|| v["rows"].as_array().cloned())
        .unwrap_or_default()
}

#[test]
fn a_burst_of_handlers_keeps_to_max_concurrent_and_delivers_everything() {
    const UNITS: usize = 24;
    let receiver = SlowReceiver::start(Duration::from_millis(150));
    let ctl = Ctl::with_config(&format!(
        "[notifiers.hook]\ntype = \"webhook\"\nurl = \"{}\"\nmax_concurrent = 2\n",
        receiver.url()
    ));
    let units: Vec<String> = (0..UNITS).map(|i| format!("boot{i}.service")).collect();
    let children: Vec<_> = units
        .iter()
        .map(|u| {
            ctl.command(&failure_args(u))
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn alertctl")
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().expect("wait");
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }
    // whatever the last handlers left is sent by the next flush
    let out = ctl.run(&["flush"]);
    assert!(out.status.success(), "{}", text(&out));

    let bodies = receiver.bodies();
    for u in &units {
        let n = bodies
            .iter()
            .filter(|b| b.contains(&format!("\"{u}\"")))
            .count();
        assert_eq!(n, 1, "{u}: {n} deliveries");
    }
    assert_eq!(bodies.len(), UNITS);
    let peak = receiver.peak.load(Ordering::SeqCst);
    assert!(peak <= 2, "{peak} requests at once with max_concurrent = 2");
    assert!(open_rows(&ctl).is_empty(), "{:?}", open_rows(&ctl));
}

#[test]
fn max_per_minute_queues_the_excess_until_the_limit_allows_it() {
    let logs = tempfile::tempdir().expect("tempdir");
    let log = logs.path().join("alerts.log");
    let ctl = Ctl::with_config(&format!(
        "[notifiers.log]\ntype = \"file\"\npath = \"{}\"\nmax_per_minute = 2\n",
        log.display()
    ));
    let t0 = "2026-11-21T10:00:00Z";
    for unit in ["a.service", "b.service", "c.service"] {
        let out = ctl.run_at(t0, &failure_args(unit));
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }
    let lines = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .count()
    };
    assert_eq!(lines(), 2, "a burst of two");
    let rows = open_rows(&ctl);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["service"], "c.service");
    // not yet: one every 30 s after the burst
    let out = ctl.run_at("2026-11-21T10:00:29Z", &["flush"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(lines(), 2);
    let out = ctl.run_at("2026-11-21T10:00:30Z", &["flush"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(lines(), 3);
    assert!(open_rows(&ctl).is_empty());
}

#[test]
fn a_given_up_webhook_alert_goes_to_the_fallback_file_naming_what_failed() {
    // a port nobody listens on: connection refused, retryable; one attempt allowed
    let closed = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let logs = tempfile::tempdir().expect("tempdir");
    let log = logs.path().join("alerts.log");
    let ctl = Ctl::with_config(&format!(
        "[notifiers.hook]\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{port}/\"\n\
         max_attempts = 1\nfallback = \"log\"\n\n\
         [notifiers.log]\ntype = \"file\"\npath = \"{}\"\n\n\
         [[rules]]\nnotify = \"hook\"\n",
        log.display()
    ));
    let out = ctl.run(&failure_args("web.service"));
    // the hook's failure is reported, and where the alert went instead
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("hook failure of web.service"), "{err}");
    assert!(err.contains("handed to its fallback log"), "{err}");
    assert!(!err.contains("LOST"), "{err}");
    let line = std::fs::read_to_string(&log).expect("the fallback wrote");
    assert_eq!(line.lines().count(), 1, "{line}");
    assert!(line.contains("web.service"), "{line}");
    assert!(line.contains("(instead of hook: "), "{line}");
    assert!(line.to_lowercase().contains("connect"), "{line}");
    // the hook's row stays visible as failed; nothing is pending
    let rows = open_rows(&ctl);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["notifier"], "hook");
    assert_eq!(rows[0]["status"], "failed");

    // the recovery follows the alert to the fallback
    let out = ctl.run(&["success", "web.service"]);
    assert!(out.status.success(), "{}", text(&out));
    let lines = std::fs::read_to_string(&log).expect("log");
    assert_eq!(lines.lines().count(), 2, "{lines}");
    assert!(
        lines.lines().nth(1).unwrap().contains("RECOVERED"),
        "{lines}"
    );
}
