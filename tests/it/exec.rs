//! The `exec` and `file` notifiers with real processes: a script agent that records its
//! environment and arguments, Pacemaker's own sample agents run unchanged (the file agent's
//! line, the SMTP agent's mail through a sendmail-compatible relay to `peers::SmtpSink`),
//! `alertctl` end to end, and concurrent writers to one alert file.
//!
//! The Pacemaker agents come from Debian's `pacemaker-common`, fetched and unpacked by
//! `tests/peers/pacemaker-agents.sh` into the target directory once, or taken from
//! `ALERTCORE_PACEMAKER_AGENTS` (a directory holding `alert_file.sh.sample` and
//! `alert_smtp.sh.sample`). Where they cannot be had those tests pass after saying why;
//! under CI (`CI` set, see `under_ci`) they fail instead.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use alertcore::{
    Context, EventKind, ExecConfig, ExecNotifier, Failure, FailureReport, FileConfig, FileNotifier,
    Format, FormatSpec, Formats, Notification, Notifier, Timestamp, chain,
};

use crate::cli::{Ctl, text};
use crate::peers::{SinkOptions, SmtpSink, header};

/// 2026-11-21T10:00:00Z
const T0: Timestamp = Timestamp::from_millis(1_795_255_200_000);
const FETCH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/peers/pacemaker-agents.sh"
);

fn exec(toml_text: &str) -> ExecNotifier {
    exec_with_format(toml_text).0
}

/// Builds the notifier as the config wiring does: the format keys taken out of the table
/// and compiled into the notifier's format, passed to it in every `Context`.
fn exec_with_format(toml_text: &str) -> (ExecNotifier, Format) {
    let table = alertcore::Table::parse(toml_text).expect("valid TOML");
    let (spec, rest) = FormatSpec::split(&table).expect("format keys");
    let format = Format::compile(&spec, &Formats::default(), Format::full())
        .unwrap_or_else(|e| panic!("format: {e}\n{toml_text}"));
    let n = ExecConfig::from_table(&rest)
        .and_then(ExecConfig::build)
        .unwrap_or_else(|e| panic!("build: {e}\n{toml_text}"));
    (n, format)
}

fn history() -> Vec<Failure> {
    vec![Failure::from_report(
        &FailureReport::new("exit-code")
            .exit_code("exited")
            .exit_status("1")
            .invocation_id("0123456789abcdef0123456789abcdef")
            .message("backup target unreachable"),
        "web1",
        T0,
    )]
}

fn ctx() -> Context<'static> {
    Context::new("agents")
}

fn note(
    service: &str,
    failures: impl Into<Vec<Failure>>,
    event: EventKind,
    at: Timestamp,
) -> Notification {
    Notification::new(service, event, "web1")
        .failures(failures)
        .sequence(42)
        .streak(7, T0)
        .time(at)
}

/// Writes an executable script.
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, body).expect("write script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

/// An agent that records, per recipient, its arguments (`NAME.args`, one per line) and its
/// environment (`NAME.env`, `env -0`), NAME being the recipient made file-safe.
fn recorder(dir: &Path) -> PathBuf {
    script(
        dir,
        "recorder.sh",
        &format!(
            "#!/bin/sh\n\
             name=$(printf '%s' \"r_$CRM_alert_recipient\" | tr -c 'A-Za-z0-9_' '_')\n\
             out={dir}/$name\n\
             printf '%s\\n' \"$@\" > \"$out.args\"\n\
             /usr/bin/env -0 > \"$out.env.tmp\" && mv \"$out.env.tmp\" \"$out.env\"\n",
            dir = dir.display()
        ),
    )
}

fn read_env(path: &Path) -> BTreeMap<String, String> {
    let raw = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    raw.split(|b| *b == 0)
        .filter(|e| !e.is_empty())
        .map(|e| {
            let e = String::from_utf8_lossy(e);
            let (k, v) = e.split_once('=').expect("NAME=value");
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

#[tokio::test]
async fn agent_runs_once_per_recipient_with_the_alert_in_its_environment() {
    let dir = tempfile::tempdir().unwrap();
    let agent = recorder(dir.path());
    let (n, format) = exec_with_format(&format!(
        "command = [{agent:?}, \"--flag\", \"two words\"]\n\
         recipients = [\"ops@example.org\", \"/var/log/x.log\", \"x; rm -rf / $(touch pwned)\"]\n\
         timezone = \"UTC\"\n\
         timestamp_format = \"%Y-%m-%dT%H:%M:%S.%3N\"\n\
         subject = \"{{{{ event_word }}}}: {{{{ service }}}} ($(id))\"\n\
         body = \"{{{{ message }}}}\\n`id` {{{{ streak_length }}}}x\"\n\
         env = {{ email_sender = \"alertcore@example.org\", debug_exec_order = true }}\n",
        agent = agent.display().to_string()
    ));
    let at = Timestamp::from_millis(T0.as_millis() + 61_250);
    let service = "backup.service; $(touch pwned)";
    n.notify(
        &note(service, history(), EventKind::Failure, at),
        &ctx().format(&format),
    )
    .await
    .unwrap();

    for (recipient, file) in [
        ("ops@example.org", "r_ops_example_org"),
        ("/var/log/x.log", "r__var_log_x_log"),
        ("x; rm -rf / $(touch pwned)", "r_x__rm__rf_____touch_pwned_"),
    ] {
        let args = std::fs::read_to_string(dir.path().join(format!("{file}.args"))).unwrap();
        assert_eq!(args, "--flag\ntwo words\n", "argv is exactly `command`");
        let env = read_env(&dir.path().join(format!("{file}.env")));
        let want = [
            ("ALERTCORE_EVENT", "failure"),
            ("ALERTCORE_SERVICE", service),
            ("ALERTCORE_HOST", "web1"),
            ("ALERTCORE_NOTIFIER", "agents"),
            ("ALERTCORE_SEVERITY", "critical"),
            ("ALERTCORE_RESULT", "exit-code"),
            ("ALERTCORE_EXIT_CODE", "exited"),
            ("ALERTCORE_EXIT_STATUS", "1"),
            (
                "ALERTCORE_INVOCATION_ID",
                "0123456789abcdef0123456789abcdef",
            ),
            ("ALERTCORE_MESSAGE", "backup target unreachable"),
            ("ALERTCORE_RECIPIENT", recipient),
            ("ALERTCORE_TIMESTAMP", "2026-11-21T10:01:01Z"),
            ("ALERTCORE_TIMESTAMP_MS", "1795255261250"),
            ("ALERTCORE_SEQUENCE", "42"),
            ("ALERTCORE_STREAK_LENGTH", "1"),
            ("ALERTCORE_STREAK_START", "2026-11-21T10:00:00Z"),
            ("CRM_alert_kind", "resource"),
            ("CRM_alert_node", "web1"),
            ("CRM_alert_recipient", recipient),
            ("CRM_alert_timestamp", "2026-11-21T10:01:01.250"),
            ("CRM_alert_timestamp_epoch", "1795255261"),
            ("CRM_alert_timestamp_usec", "250000"),
            ("CRM_alert_version", env!("CARGO_PKG_VERSION")),
            ("CRM_alert_desc", "exit-code, status=1"),
            ("CRM_alert_rsc", service),
            ("CRM_alert_task", "monitor"),
            ("CRM_alert_interval", "0"),
            ("CRM_alert_rc", "1"),
            ("CRM_alert_status", "0"),
            ("CRM_alert_target_rc", "0"),
            ("CRM_alert_node_sequence", "42"),
            ("CRM_notify_rsc", service),
            ("CRM_notify_recipient", recipient),
            ("CRM_notify_timestamp", "2026-11-21T10:01:01.250"),
            // the format's templates, passed as data: nothing in them is run
            (
                "ALERTCORE_SUBJECT",
                "FAILED: backup.service; $(touch pwned) ($(id))",
            ),
            ("ALERTCORE_BODY", "backup target unreachable\n`id` 1x"),
            ("email_sender", "alertcore@example.org"),
            ("debug_exec_order", "true"),
        ];
        for (k, v) in want {
            assert_eq!(
                env.get(k).map(String::as_str),
                Some(v),
                "{k} for {recipient}"
            );
        }
        assert!(
            env["ALERTCORE_INCIDENT_ID"].starts_with("1795255200000.7.backup_2eservice"),
            "{env:?}"
        );
        // Nothing else of this test process's environment (CARGO_*, RUST_*, ...) leaks in.
        for k in env.keys() {
            let ours = k.starts_with("ALERTCORE_")
                || k.starts_with("CRM_alert_")
                || k.starts_with("CRM_notify_");
            let allowed = ["PATH", "HOME", "LANG", "LC_ALL", "TZ", "PWD"];
            assert!(
                ours || allowed.contains(&k.as_str()) || env_attr(k),
                "unexpected variable {k} in the agent's environment"
            );
        }
    }
    assert!(!dir.path().join("pwned").exists() && !Path::new("pwned").exists());
}

fn env_attr(k: &str) -> bool {
    ["email_sender", "debug_exec_order"].contains(&k)
}

#[tokio::test]
async fn without_recipients_the_agent_runs_once_with_an_empty_one() {
    let dir = tempfile::tempdir().unwrap();
    let agent = recorder(dir.path());
    let n = exec(&format!("command = [{:?}]", agent.display().to_string()));
    n.notify(
        &note("db.service", history(), EventKind::Recovery, T0),
        &ctx(),
    )
    .await
    .unwrap();
    let runs: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".env"))
        .collect();
    assert_eq!(runs.len(), 1);
    let env = read_env(&dir.path().join("r_.env"));
    assert_eq!(env["CRM_alert_recipient"], "");
    assert_eq!(env["ALERTCORE_EVENT"], "recovery");
    assert_eq!(env["CRM_alert_desc"], "OK");
    assert_eq!(env["CRM_alert_rc"], "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_is_limited_per_notifier() {
    let dir = tempfile::tempdir().unwrap();
    let running = dir.path().join("running");
    std::fs::create_dir(&running).unwrap();
    let log = dir.path().join("log");
    // Each run marks itself running and records how many runs are under way. It waits
    // (at most 3 s) until it is not alone, so that runs allowed to overlap do overlap on
    // a loaded machine too, then lingers 0.3 s.
    let agent = script(
        dir.path(),
        "agent.sh",
        &format!(
            "#!/bin/sh\n\
             touch {running}/$$\n\
             ls {running} | wc -l >> {log}\n\
             i=0\n\
             while [ \"$(ls {running} | wc -l)\" -lt 2 ] && [ $i -lt 60 ]; do\n\
               sleep 0.05; i=$((i + 1))\n\
             done\n\
             sleep 0.3\n\
             rm {running}/$$\n",
            running = running.display(),
            log = log.display()
        ),
    );
    let recipients: Vec<String> = (0..4).map(|i| format!("\"r{i}\"")).collect();
    let n = exec(&format!(
        "command = [{:?}]\nrecipients = [{}]\nmax_concurrency = 3\n",
        agent.display().to_string(),
        recipients.join(", ")
    ));
    // Two alerts at once: 8 runs, never more than 3 at a time.
    let started = Instant::now();
    let c = ctx();
    let (a_note, b_note) = (
        note("a.service", history(), EventKind::Failure, T0),
        note("b.service", history(), EventKind::Failure, T0),
    );
    let (a, b) = tokio::join!(n.notify(&a_note, &c), n.notify(&b_note, &c));
    a.unwrap();
    b.unwrap();
    let counts: Vec<usize> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert_eq!(counts.len(), 8, "{counts:?}");
    let max = counts.iter().copied().max().unwrap_or(0);
    assert!(max <= 3, "{max} runs at once: {counts:?}");
    assert!(max >= 2, "runs did overlap: {counts:?}");
    // 8 runs of 0.3 s, 3 at a time, take at least 3 rounds.
    assert!(
        started.elapsed() >= Duration::from_millis(850),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_hanging_agent_is_killed_at_its_timeout_and_may_be_retried() {
    let n = exec("command = [\"/bin/sleep\", \"60\"]\ntimeout = \"300ms\"\n");
    let e = n
        .notify(
            &note("s.service", history(), EventKind::Failure, T0),
            &ctx(),
        )
        .await
        .unwrap_err();
    assert!(e.is_retryable());
    assert_eq!(
        chain(&e),
        "exec delivery failed: /bin/sleep did not finish within 300ms; killed it"
    );
}

#[tokio::test]
async fn a_failing_agent_reports_its_output() {
    let dir = tempfile::tempdir().unwrap();
    let agent = script(
        dir.path(),
        "pager.sh",
        "#!/bin/sh\necho \"paging $CRM_alert_recipient\"\necho 'pager gateway: 503' >&2\nexit 2\n",
    );
    let n = exec(&format!(
        "command = [{:?}]\nrecipients = [\"alice\", \"bob\"]\n",
        agent.display().to_string()
    ));
    let e = n
        .notify(
            &note("s.service", history(), EventKind::Failure, T0),
            &ctx(),
        )
        .await
        .unwrap_err();
    assert!(e.is_retryable());
    let p = agent.display();
    assert_eq!(
        chain(&e),
        format!(
            "exec delivery failed: 2 of 2 agent runs failed: \
             recipient \"alice\": {p} exited with status 2; stderr: pager gateway: 503; stdout: paging alice; \
             recipient \"bob\": {p} exited with status 2; stderr: pager gateway: 503; stdout: paging bob"
        )
    );

    // Not found / not executable: a retry cannot help.
    let n = exec("command = [\"/bin/sh\", \"-c\", \"no-such-program-anywhere\"]\n");
    let e = n
        .notify(
            &note("s.service", history(), EventKind::Failure, T0),
            &ctx(),
        )
        .await
        .unwrap_err();
    assert!(!e.is_retryable(), "{}", chain(&e));
    assert!(
        chain(&e).contains("exited with status 127; stderr: "),
        "{}",
        chain(&e)
    );
    let n = exec(&format!(
        "command = [{:?}]\n",
        dir.path().display().to_string()
    ));
    let e = n
        .notify(
            &note("s.service", history(), EventKind::Failure, T0),
            &ctx(),
        )
        .await
        .unwrap_err();
    assert!(!e.is_retryable(), "{}", chain(&e));
}

// ---------------------------------------------------------------------------------------
// Pacemaker's sample agents, unchanged.

/// The directory with Pacemaker's sample agents, or `None` (after saying why) where they
/// cannot be had; under CI (`CI` set, see `under_ci`) that panics.
fn pacemaker_agents() -> Option<PathBuf> {
    static AGENTS: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let found = AGENTS.get_or_init(|| {
        if let Some(dir) = std::env::var_os("ALERTCORE_PACEMAKER_AGENTS") {
            let dir = PathBuf::from(dir);
            return if dir.join("alert_file.sh.sample").is_file() {
                Ok(dir)
            } else {
                Err(format!(
                    "ALERTCORE_PACEMAKER_AGENTS={} has no alert_file.sh.sample",
                    dir.display()
                ))
            };
        }
        let into = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pacemaker");
        let out = Command::new("bash")
            .arg(FETCH)
            .arg(&into)
            .output()
            .map_err(|e| format!("cannot run {FETCH}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "{FETCH} failed (it needs apt-get, dpkg-deb and a Debian mirror): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
    });
    match found {
        Ok(dir) => Some(dir.clone()),
        Err(why) => {
            assert!(
                !crate::under_ci(),
                "the Pacemaker agent tests cannot run under CI: {why}"
            );
            eprintln!("skipping: {why}");
            None
        }
    }
}

/// Installs sample agent `name` (e.g. `alert_file.sh`) into `dir` as an admin would: the
/// file as shipped, made executable. Checks the installed file against the md5sum that
/// Debian's package lists for the sample, so what runs is what Pacemaker ships.
fn install_agent(agents: &Path, name: &str, dir: &Path) -> PathBuf {
    let sample = agents.join(format!("{name}.sample"));
    let path = dir.join(name);
    std::fs::copy(&sample, &path).unwrap_or_else(|e| panic!("{}: {e}", sample.display()));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let listed = std::fs::read_to_string(agents.join("md5sums")).expect("the package's md5sums");
    let suffix = format!("/{name}.sample");
    let want = listed
        .lines()
        .find_map(|l| {
            l.strip_suffix(&suffix)?
                .split_once("  ")
                .map(|(sum, _)| sum)
        })
        .unwrap_or_else(|| panic!("{name}.sample is not in the package's md5sums: {listed}"));
    let out = Command::new("md5sum").arg(&path).output().expect("md5sum");
    let have = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        have.split_whitespace().next(),
        Some(want),
        "{}",
        path.display()
    );
    path
}

#[tokio::test]
async fn pacemaker_file_agent_writes_its_line() {
    let Some(agents) = pacemaker_agents() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let agent = install_agent(&agents, "alert_file.sh", dir.path());
    let log = dir.path().join("pacemaker.log");
    // Pacemaker's own sample configuration: the recipient is the log file.
    let n = exec(&format!(
        "command = [{:?}]\nrecipients = [{:?}]\ntimezone = \"UTC\"\n",
        agent.display().to_string(),
        log.display().to_string()
    ));
    n.notify(
        &note(
            "backup.service",
            history(),
            EventKind::Failure,
            Timestamp::from_millis(T0.as_millis() + 123),
        ),
        &ctx(),
    )
    .await
    .unwrap();
    let later = T0.saturating_add(Duration::from_secs(300));
    n.notify(
        &note("backup.service", history(), EventKind::Recovery, later),
        &ctx(),
    )
    .await
    .unwrap();
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "10:00:00.123000: Resource operation 'monitor' for 'backup.service' on 'web1': exit-code, status=1\n\
         10:05:00.000000: Resource operation 'monitor' for 'backup.service' on 'web1': OK\n"
    );

    // Its instance attribute `debug_exec_order`, set through `env`: the sequence number
    // first, then our timestamp and the agent's own clock.
    let n = exec(&format!(
        "command = [{:?}]\nrecipients = [{:?}]\ntimezone = \"UTC\"\nenv = {{ debug_exec_order = true }}\n",
        agent.display().to_string(),
        log.display().to_string()
    ));
    n.notify(
        &note("db.service", history(), EventKind::Reminder, T0),
        &ctx(),
    )
    .await
    .unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    let last = text.lines().last().unwrap();
    assert!(last.starts_with("0042.  10:00:00.000000 ("), "{last}");
    assert!(
        last.ends_with(
            "): Resource operation 'monitor' for 'db.service' on 'web1': exit-code, status=1"
        ),
        "{last}"
    );
}

/// A `sendmail` for the agent: `sendmail [-t] [-r|-f SENDER] [-i] [-- RCPT...]` relaying
/// the message on stdin to the test SMTP sink; and the `crm_attribute` the agent asks for
/// the cluster's name.
fn mail_tools(dir: &Path, port: u16) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir(&bin).expect("bin dir");
    script(
        &bin,
        "sendmail",
        &format!(
            r#"#!/usr/bin/python3
import email, email.utils, smtplib, sys
args, sender, from_headers, rcpts = sys.argv[1:], "", False, []
while args:
    a = args.pop(0)
    if a in ("-r", "-f"):
        sender = args.pop(0)
    elif a.startswith(("-r", "-f")):
        sender = a[2:]
    elif a == "-t":
        from_headers = True
    elif a == "--":
        rcpts += args
        break
    elif not a.startswith("-"):
        rcpts.append(a)
raw = sys.stdin.buffer.read().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
msg = email.message_from_bytes(raw)
if from_headers:
    fields = msg.get_all("To", []) + msg.get_all("Cc", []) + msg.get_all("Bcc", [])
    rcpts += [addr for _, addr in email.utils.getaddresses(fields)]
with smtplib.SMTP("127.0.0.1", {port}) as s:
    s.sendmail(sender, rcpts, raw)
"#
        ),
    );
    script(&bin, "crm_attribute", "#!/bin/sh\necho testcluster\n");
    bin
}

#[tokio::test]
async fn pacemaker_smtp_agent_sends_its_mail() {
    let Some(agents) = pacemaker_agents() else {
        return;
    };
    let Some(sink) = SmtpSink::try_start(SinkOptions::plain()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let agent = install_agent(&agents, "alert_smtp.sh", dir.path());
    let bin = mail_tools(dir.path(), sink.port());
    let n = exec(&format!(
        "command = [{:?}]\nrecipients = [\"ops@example.org\"]\ntimezone = \"UTC\"\n\
         env = {{ PATH = \"{}:/usr/bin:/bin\", email_sender = \"alertcore@example.org\" }}\n",
        agent.display().to_string(),
        bin.display()
    ));
    n.notify(
        &note("backup.service", history(), EventKind::Failure, T0),
        &ctx(),
    )
    .await
    .unwrap();
    let mails = sink.wait_for(1, Duration::from_secs(10));
    assert_eq!(mails.len(), 1, "{mails:?}");
    let mail = &mails[0];
    assert_eq!(
        mail["subject"],
        "10:00:00.000000 testcluster: Resource operation 'monitor' for 'backup.service' on 'web1': exit-code, status=1"
    );
    assert_eq!(mail["mail_from"], "alertcore@example.org");
    assert_eq!(mail["rcpt_tos"][0], "ops@example.org");
    assert_eq!(header(mail, "To").as_deref(), Some("ops@example.org"));
    // The body is the agent's dump of every CRM_alert_ variable.
    let body = mail["body"].as_str().unwrap_or_default();
    for line in [
        "CRM_alert_kind=resource",
        "CRM_alert_rsc=backup.service",
        "CRM_alert_node=web1",
        "CRM_alert_recipient=ops@example.org",
        "CRM_alert_rc=1",
        "CRM_alert_node_sequence=42",
    ] {
        assert!(body.lines().any(|l| l.trim() == line), "{line} in\n{body}");
    }
}

// ---------------------------------------------------------------------------------------
// alertctl end to end.

#[test]
fn alertctl_notify_test_runs_an_exec_notifier() {
    let dir = tempfile::tempdir().unwrap();
    let agent = recorder(dir.path());
    let ctl = Ctl::with_config(&format!(
        "host = \"web1\"\n\n[notifiers.agents]\ntype = \"exec\"\ncommand = [{:?}]\n\
         recipients = [\"ops\"]\ninherit_env = [\"PATH\", \"ALERTCORE_TEST_PASSED_ON\"]\n",
        agent.display().to_string()
    ));
    let out = ctl
        .command(&["notify-test", "agents"])
        .env("ALERTCORE_TEST_PASSED_ON", "yes")
        .env("ALERTCORE_SMTP_PASSWORD", "hunter2")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let env = read_env(&dir.path().join("r_ops.env"));
    assert_eq!(env["ALERTCORE_SERVICE"], "alertctl-notify-test.service");
    assert_eq!(env["CRM_alert_rsc"], "alertctl-notify-test.service");
    assert_eq!(env["ALERTCORE_SEVERITY"], "warning");
    assert_eq!(env["ALERTCORE_HOST"], "web1");
    assert_eq!(env["ALERTCORE_NOTIFIER"], "agents");
    assert_eq!(env["ALERTCORE_TEST_PASSED_ON"], "yes");
    assert!(!env.contains_key("ALERTCORE_SMTP_PASSWORD"), "{env:?}");
    assert!(env.values().all(|v| !v.contains("hunter2")));

    // A failing agent: exit code 3, the error and whether it may be retried.
    let ctl = Ctl::with_config(
        "[notifiers.agents]\ntype = \"exec\"\n\
         command = [\"/bin/sh\", \"-c\", \"echo relay refused >&2; exit 1\"]\n",
    );
    let out = ctl.run(&["notify-test", "agents"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("not delivered, will retry at ")
            && stderr.contains(
                "exec delivery failed: /bin/sh exited with status 1; stderr: relay refused"
            ),
        "{}",
        text(&out)
    );

    // A bad config is pointed at.
    let ctl =
        Ctl::with_config("[notifiers.agents]\ntype = \"exec\"\ncommand = \"/bin/agent --all\"\n");
    let out = ctl.run(&["notify-test", "agents"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains(":3:1: notifier \"agents\": `command` must be an array"),
        "{}",
        text(&out)
    );
}

#[test]
fn alertctl_with_pacemakers_file_agent() {
    let Some(agents) = pacemaker_agents() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let agent = install_agent(&agents, "alert_file.sh", dir.path());
    let log = dir.path().join("cluster.log");
    let ctl = Ctl::with_config(&format!(
        "host = \"web1\"\n\n[notifiers.pacemaker]\ntype = \"exec\"\ncommand = [{:?}]\n\
         recipients = [{:?}]\ntimezone = \"UTC\"\ntimestamp_format = \"%Y-%m-%d %H:%M:%S.%3N\"\n",
        agent.display().to_string(),
        log.display().to_string()
    ));
    let fail = ctl.run_at(
        "2026-11-21T10:00:00Z",
        &["failure", "backup.service", "--result", "timeout"],
    );
    assert_eq!(fail.status.code(), Some(0), "{}", text(&fail));
    let ok = ctl.run_at("2026-11-21T10:30:00Z", &["success", "backup.service"]);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    let out = ctl.run(&["notify-test", "pacemaker"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(
        lines[0],
        "2026-11-21 10:00:00.000: Resource operation 'monitor' for 'backup.service' on 'web1': timeout"
    );
    assert_eq!(
        lines[1],
        "2026-11-21 10:30:00.000: Resource operation 'monitor' for 'backup.service' on 'web1': OK"
    );
    // notify-test runs at the real time
    let (_, rest) = lines[2].split_once(": ").unwrap();
    assert_eq!(
        rest,
        "Resource operation 'monitor' for 'alertctl-notify-test.service' on 'web1': exit-code, status=1"
    );
}

// ---------------------------------------------------------------------------------------
// The file notifier.

/// The line `{service} {message} end`.
fn line_format() -> Format {
    let spec = FormatSpec {
        subject: Some("{{ service }} {{ message }} end".to_owned()),
        ..FormatSpec::default()
    };
    Format::compile(&spec, &Formats::default(), Format::full()).expect("the line format compiles")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_lines_stay_whole_under_concurrent_writers() {
    const TASKS: usize = 8;
    const EACH: usize = 50;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alerts.log");
    // Long lines (~8 KiB) make an interleaving of two writes easy to see.
    let filler = "x".repeat(8000);
    let mut handles = Vec::new();
    for t in 0..TASKS {
        let n: FileNotifier = FileConfig::new(&path).build().unwrap();
        let filler = filler.clone();
        handles.push(tokio::spawn(async move {
            for i in 0..EACH {
                let f = Failure::from_report(
                    &FailureReport::new("exit-code").message(format!("{filler}\n{t}-{i}")),
                    "web1",
                    T0,
                );
                let format = line_format();
                n.notify(
                    &note(&format!("task{t}"), [f], EventKind::Failure, T0),
                    &ctx().format(&format),
                )
                .await
                .unwrap();
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let text = std::fs::read_to_string(&path).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for line in text.lines() {
        // `<time> <subject>`: the file notifier puts the event time first
        let line = line
            .strip_prefix("2026-11-21T10:00:00Z ")
            .expect("time first");
        let (service, rest) = line.split_once(' ').expect("whole line");
        let id = rest
            .strip_prefix(&format!("{filler} "))
            .and_then(|r| r.strip_suffix(" end"))
            .unwrap_or_else(|| panic!("torn line of {} bytes", line.len()));
        assert_eq!(
            service,
            format!("task{}", id.split('-').next().unwrap()),
            "line of another writer"
        );
        assert!(seen.insert(id.to_owned()), "{id} twice");
    }
    assert_eq!(seen.len(), TASKS * EACH);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn file_notifier_from_concurrent_alertctl_processes() {
    const PROCS: usize = 12;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alerts.log");
    let ctls: Vec<Ctl> = (0..PROCS)
        .map(|i| {
            Ctl::with_config(&format!(
                "host = \"web{i:02}\"\n\n[notifiers.log]\ntype = \"file\"\npath = {:?}\n",
                path.display().to_string()
            ))
        })
        .collect();
    let children: Vec<_> = ctls
        .iter()
        .map(|c| {
            c.command(&["notify-test", "log"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }
    let text = std::fs::read_to_string(&path).unwrap();
    let mut hosts: Vec<String> = text
        .lines()
        .map(|l| {
            // `2026-...Z [webNN] FAILED: alertctl-notify-test.service (exit-code, status=1),
            // 1 failure since ...: test alert from ...`
            let (_, rest) = l.split_once(" [").expect("default format");
            let (host, rest) = rest.split_once("] ").expect("default format");
            assert!(
                rest.starts_with(
                    "FAILED: alertctl-notify-test.service (exit-code, status=1), 1 failure since "
                ) && rest.ends_with(": test alert from `alertctl notify-test`; no action needed"),
                "{l}"
            );
            host.to_owned()
        })
        .collect();
    hosts.sort();
    let want: Vec<String> = (0..PROCS).map(|i| format!("web{i:02}")).collect();
    assert_eq!(hosts, want);
}
