//! `alertctl run` as a process: checks against real local services and Debian's
//! monitoring plugins, alerts through the engine, and its signals (SIGHUP reload,
//! SIGUSR1 listing, SIGTERM stop). The same daemon under a real systemd (READY,
//! watchdog, `OnFailure=`) is in `daemon_systemd.rs`.
//!
//! These tests wait in real time, polling with deadlines.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cli::{Ctl, text, wait_until};

const DEADLINE: Duration = Duration::from_secs(20);
const PLUGINS: &str = "/usr/lib/nagios/plugins";

/// Whether Debian's monitoring plugins are installed; under CI (`CI` set, see
/// `under_ci`) they must be.
fn plugins_present() -> bool {
    let present = Path::new(PLUGINS).join("check_tcp").exists();
    if !present {
        assert!(
            !crate::under_ci(),
            "{PLUGINS}/check_tcp is missing (monitoring-plugins-basic): tests/run.sh installs it"
        );
        eprintln!(
            "skipping: {PLUGINS}/check_tcp is missing (apt-get install monitoring-plugins-basic)"
        );
    }
    present
}

/// A port nothing listens on (bound, then released).
pub(crate) fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

#[test]
fn run_once_runs_real_plugins_and_exits_by_the_results() {
    if !plugins_present() {
        return;
    }
    let open = TcpListener::bind("127.0.0.1:0").expect("bind");
    let open_port = open.local_addr().expect("addr").port();
    let closed = closed_port();
    let config = format!(
        "[hosts.local]\n\
         address = \"127.0.0.1\"\n\
         \n\
         [[checks]]\n\
         name = \"plugin-open\"\n\
         kind = \"command\"\n\
         host = \"local\"\n\
         command = [\"check_tcp\", \"-H\", \"{{host}}\", \"-p\", \"{open_port}\"]\n\
         \n\
         [[checks]]\n\
         name = \"plugin-closed\"\n\
         kind = \"command\"\n\
         command = [\"{PLUGINS}/check_tcp\", \"-H\", \"127.0.0.1\", \"-p\", \"{closed}\"]\n\
         \n\
         [[checks]]\n\
         name = \"native-open\"\n\
         kind = \"tcp\"\n\
         host = \"local\"\n\
         port = {open_port}\n"
    );
    let ctl = Ctl::with_config(&config);
    let out = ctl.run(&["run", "--once"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    // the failing check first, with the plugin's own first line
    assert!(
        lines[0].starts_with("CRITICAL  plugin-closed") && lines[0].contains("Connection refused"),
        "{stdout}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("OK        plugin-open") && l.contains("TCP OK")),
        "{stdout}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("OK        native-open")),
        "{stdout}"
    );
    // nothing recorded, nothing sent
    assert!(
        !ctl.state().exists(),
        "--once without --notify wrote a state file"
    );

    // all passing: exit 0
    drop(open);
    let ok = Ctl::with_config(
        "[[checks]]\nname = \"dummy\"\nkind = \"command\"\ncommand = [\"check_dummy\", \"0\", \"fine\"]\n",
    );
    let out = ok.run(&["run", "--once"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("OK        dummy: OK: fine"),
        "{}",
        text(&out)
    );
}

#[test]
fn run_once_with_notify_records_and_alerts() {
    let closed = closed_port();
    let mut ctl = Ctl::new();
    let file = ctl.dir.path().join("alerts.jsonl");
    let config = format!(
        "[notifiers.log]\ntype = \"file\"\nformat = \"json\"\npath = \"{}\"\n\n\
         [[checks]]\nname = \"db-port\"\nkind = \"tcp\"\naddress = \"127.0.0.1\"\nport = {closed}\n",
        file.display()
    );
    ctl.set_config(&config);
    let out = ctl.run(&["run", "--once", "--notify"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let alerts = lines(&file);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["service"], "db-port");
    assert_eq!(alerts[0]["event"], "failure");
    // and the state is there for `status`
    let status = ctl.json(&["status", "--json"]);
    let check = &status["checks"][0];
    assert_eq!(check["name"], "db-port");
    assert_eq!(check["last"]["status"], "critical");
    assert!(check["failing"].is_object(), "{status:#}");
}

/// A daemon child whose stderr goes to a file the test reads while it runs.
pub(crate) struct Daemon {
    pub(crate) child: Child,
    log: PathBuf,
}

impl Daemon {
    pub(crate) fn start(ctl: &Ctl) -> Self {
        let log = ctl.dir.path().join("daemon.log");
        let file = std::fs::File::create(&log).expect("log file");
        let child = ctl
            .command(&["run"])
            .stdout(Stdio::null())
            .stderr(Stdio::from(file))
            .spawn()
            .expect("start alertctl run");
        Self { child, log }
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub(crate) fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill {sig}");
    }

    /// Waits until the log has a line containing `needle` after `skip` bytes.
    pub(crate) fn wait_log(&self, skip: usize, needle: &str) -> usize {
        let start = Instant::now();
        loop {
            let log = self.log();
            if let Some(i) = log.get(skip..).and_then(|l| l.find(needle)) {
                return skip + i + needle.len();
            }
            assert!(
                start.elapsed() < DEADLINE,
                "no {needle:?} in the daemon's log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `file` notifier's lines (`TIME JSON`, with `format = "json"`), as JSON.
pub(crate) fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let (_, json) = l.split_once(' ').expect("time, then the document");
            serde_json::from_str(json).expect("a JSON document")
        })
        .collect()
}

/// Waits until the file notifier has written `n` lines.
pub(crate) fn wait_lines(path: &Path, n: usize, daemon: &Daemon) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let got = lines(path);
        if got.len() >= n {
            return got;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "{} of {n} notifications; daemon log:\n{}",
            got.len(),
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_daemon_alerts_transitions_and_keeps_its_config_on_a_bad_reload() {
    let port = closed_port();
    let mut ctl = Ctl::new();
    let file = ctl.dir.path().join("alerts.jsonl");
    let config = |extra: &str| {
        format!(
            "[daemon]\nflush_every = \"1s\"\n\n\
             [notifiers.log]\ntype = \"file\"\nformat = \"json\"\npath = \"{}\"\n\n\
             [[checks]]\nname = \"api\"\nkind = \"tcp\"\naddress = \"127.0.0.1\"\nport = {port}\n\
             interval = \"1s\"\n{extra}",
            file.display()
        )
    };
    ctl.set_config(&config(""));
    let mut daemon = Daemon::start(&ctl);

    // closed: one failure alert (later failed runs do not alert again)
    let alerts = wait_lines(&file, 1, &daemon);
    assert_eq!(
        (alerts[0]["service"].as_str(), alerts[0]["event"].as_str()),
        (Some("api"), Some("failure"))
    );
    let message = alerts[0]["failures"][0]["message"].as_str().unwrap_or("");
    assert!(message.contains("127.0.0.1"), "{alerts:#?}");

    // open: the recovery
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the port again");
    let alerts = wait_lines(&file, 2, &daemon);
    assert_eq!(alerts[1]["event"], "recovery", "{alerts:#?}");

    // a bad config is refused and the running one kept
    let bad = config("colour = \"red\"\n");
    let line = 1 + bad
        .lines()
        .position(|l| l.starts_with("colour"))
        .expect("the bad line");
    ctl.set_config(&bad);
    daemon.signal("-HUP");
    let at = daemon.wait_log(0, "reload refused, keeping the running config: ");
    let log = daemon.log();
    assert!(
        log[at..].starts_with(&format!(
            "{}:{line}:1: check \"api\": unknown field `colour`",
            ctl.dir.path().join("alertcore.toml").display()
        )),
        "{log}"
    );
    // ... and the checks go on: closing the port alerts again
    drop(listener);
    let alerts = wait_lines(&file, 3, &daemon);
    assert_eq!(alerts[2]["event"], "failure", "{alerts:#?}");

    // SIGUSR1 lists the checks, failing first
    let before = daemon.log().len();
    daemon.signal("-USR1");
    daemon.wait_log(before, "CRITICAL  api [failing]");

    // SIGTERM: a clean exit, the state saved for `status`
    daemon.signal("-TERM");
    let status = wait_until(
        &mut daemon.child,
        Instant::now() + DEADLINE,
        "the daemon after SIGTERM",
    );
    assert!(status.success(), "{status:?}\n{}", daemon.log());
    let status = ctl.json(&["status", "--json"]);
    assert_eq!(status["checks"][0]["name"], "api");
    assert_eq!(status["checks"][0]["last"]["status"], "critical");
}
