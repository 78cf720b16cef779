//! `[journal]`: the chains over a real journal. The daemon follows the journal of the
//! systemd sandbox (its journald writes the files, journalctl reads them) while units
//! inside log known lines; and `alertctl journal test` over entries in a file.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::cli::{Ctl, text};
use crate::daemon::{Daemon, lines};
use crate::sandbox::{Sandbox, skip_unless_available, work_dir, write};

const DEADLINE: Duration = Duration::from_secs(30);

/// The README's example, as written there: five failed SSH logins from one address
/// within ten minutes ban it for an hour and alert once.
fn sshd_example() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let block = readme
        .split("```toml\n")
        .find(|b| b.starts_with("[journal.chains]\nsshd = ["))
        .expect("the README's journal example");
    block.split("```").next().expect("a block").to_owned()
}

fn entry(ident: &str, message: &str, cursor: &str, at_s: u64) -> String {
    serde_json::json!({
        "__CURSOR": cursor,
        "__REALTIME_TIMESTAMP": (at_s * 1_000_000).to_string(),
        "SYSLOG_IDENTIFIER": ident,
        "MESSAGE": message,
    })
    .to_string()
}

#[test]
fn journal_test_shows_each_entrys_steps_and_acts_on_nothing() {
    let mut ctl = Ctl::new();
    let nft_log = ctl.dir.path().join("nft.log");
    ctl.set_config(&format!(
        "[journal]\nnft = \"/bin/false\"\n{}",
        sshd_example()
    ));
    let mut file = String::new();
    for i in 0..5u64 {
        let ident = if i % 2 == 0 { "sshd" } else { "sshd-session" };
        let msg = format!(
            "Failed password for root from 192.0.2.7 port {} ssh2",
            4000 + i
        );
        file.push_str(&entry(
            ident,
            &msg,
            &format!("c{i}"),
            1_700_000_000 + i * 60,
        ));
        file.push('\n');
    }
    file.push_str(&entry("cron", "job ran", "c9", 1_700_000_900));
    file.push('\n');
    let path = ctl.dir.path().join("entries.json");
    write(&path, &file);
    let out = ctl.run(&["journal", "test", "--file", path.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("  sshd step 3: counter sshd[192.0.2.7] = 1"),
        "{stdout}"
    );
    assert!(stdout.contains("  sshd step 4: no match"), "{stdout}");
    assert!(
        stdout.contains("  sshd step 5: ban 192.0.2.7 for 1h"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  sshd step 7: critical alert for sshd-ban: banned 192.0.2.7 for 1h after 5 failed logins"),
        "{stdout}"
    );
    // the cron entry matched no step: shown only with --all
    assert!(!stdout.contains("job ran"), "{stdout}");
    assert!(
        stdout.ends_with(
            "6 entries read, 5 shown; would have: 1 alert, 1 program run, 0 dropped, 0 reported\n"
        ),
        "{stdout}"
    );
    assert!(!nft_log.exists());
    // nothing was written: no state file
    assert!(!ctl.state().exists(), "journal test wrote the state");

    let out = ctl.run(&[
        "journal",
        "test",
        "--all",
        "--json",
        "--file",
        path.to_str().expect("utf-8"),
    ]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let entries = doc["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 6);
    assert_eq!(entries[4]["alerts"][0]["service"], "sshd-ban");
    assert_eq!(entries[5]["steps"][0]["matched"], false);

    // a line that is no entry is a usage error naming the line
    write(&path, "{\"MESSAGE\":\"ok\"}\nnot json\n");
    let out = ctl.run(&["journal", "test", "--file", path.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("entries.json:2: not a journal entry"),
        "{}",
        text(&out)
    );
}

/// Bad input to the journal commands: a usage error that says what is wrong, never a
/// panic.
#[test]
fn the_journal_commands_refuse_bad_input_clearly() {
    let mut ctl = Ctl::with_config("[notifiers.log]\ntype = \"file\"\npath = \"/dev/null\"\n");
    let out = ctl.run(&["journal", "test", "--file", "-"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("the config has no [journal] table"),
        "{}",
        text(&out)
    );

    ctl.set_config("[journal.chains]\na = [ { priority = 3 }, { report = \"important\" } ]\n");
    let missing = ctl.dir.path().join("nope.json");
    let out = ctl.run(&[
        "journal",
        "test",
        "--file",
        missing.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("cannot read"), "{}", text(&out));
    // a time far beyond year 9999 (journalctl never writes one; a file may) is shown,
    // not a panic
    let far = ctl.dir.path().join("far.json");
    write(
        &far,
        "{\"__REALTIME_TIMESTAMP\":\"999999999999999999\",\"MESSAGE\":\"x\",\"PRIORITY\":\"1\"}\n",
    );
    let out = ctl.run(&["journal", "test", "--file", far.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("  a step 2: report (important): x"),
        "{}",
        text(&out)
    );
    // --send to a notifier the config does not have, as `report --send` says
    let out = ctl.run(&["report", "journal", "--send", "pager"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("--send pager: no notifier named \"pager\""),
        "{}",
        text(&out)
    );
}

#[test]
fn config_check_warns_of_a_chain_that_can_never_match() {
    let ctl = Ctl::with_config(
        "[journal.chains]\nssh = [ { equals = { SYSLOG_IDENTIFER = \"sshd\" } }, { drop = true } ]\n",
    );
    let out = ctl.run(&["config", "check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("warning: journal chain ssh, step 1: `SYSLOG_IDENTIFER` looks like a misspelt `SYSLOG_IDENTIFIER`"),
        "{}",
        text(&out)
    );
    let bad = Ctl::with_config(
        "[journal.chains]\nssh = [\n  { drop = true },\n  { jump = \"nope\" },\n]\n",
    );
    let out = bad.run(&["config", "check"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains(
            "alertcore.toml:4:3: journal chain ssh, step 2: there is no journal chain `nope`"
        ),
        "{}",
        text(&out)
    );
}

/// Waits until `f` holds, or panics with `what` (and the daemon's log).
fn wait(daemon: &Daemon, what: &str, f: impl Fn() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < DEADLINE,
            "{what}; the daemon's log:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Logs `lines` under `ident` from a unit inside the sandbox (through journald, as a
/// service's stdout is).
fn log_lines(sb: &Sandbox, ident: &str, script: &str) {
    sb.run(&[
        "systemd-run",
        "--wait",
        "--quiet",
        "-p",
        &format!("SyslogIdentifier={ident}"),
        "/bin/sh",
        "-c",
        script,
    ]);
}

/// The services of the alerts in the file notifier's log, each with its count.
fn alerted(path: &Path) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for l in lines(path) {
        *out.entry(l["service"].as_str().unwrap_or("").to_owned())
            .or_default() += 1;
    }
    out
}

#[test]
fn the_daemon_follows_the_journal_bans_alerts_once_and_loses_nothing_across_kill_9() {
    if skip_unless_available("the journal test") {
        return;
    }
    let w = work_dir("alertcore-journal-");
    let sb = Sandbox::start(w.path().join("sandbox"));
    let mut ctl = Ctl::new();
    let alerts = ctl.dir.path().join("alerts.jsonl");
    let nft_log = ctl.dir.path().join("nft.log");
    let nft = ctl.dir.path().join("nft");
    // records its argv: the ban's nft command line, without touching a firewall
    write(
        &nft,
        &format!("#!/bin/sh\necho \"$@\" >> {}\n", nft_log.display()),
    );
    std::fs::set_permissions(&nft, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    ctl.set_config(&format!(
        "[notifiers.log]\ntype = \"file\"\nformat = \"json\"\npath = \"{}\"\n\n\
         [daemon]\nflush_every = \"1s\"\n\n\
         [journal]\ndirectory = \"{}\"\nnft = \"{}\"\ncheckpoint_after = \"200ms\"\n\
         {}\
         seq = [\n  {{ equals = {{ SYSLOG_IDENTIFIER = \"seqtest\" }} }},\n  \
           {{ regex = {{ MESSAGE = '^line (?P<n>\\d+)$' }} }},\n  \
           {{ counter_raise = \"seq\" }},\n  \
           {{ alert = \"seq-{{{{ n }}}}\", severity = \"warning\" }},\n  \
           {{ drop = true }},\n]\n",
        alerts.display(),
        sb.journal_dir().display(),
        nft.display(),
        sshd_example(),
    ));
    let mut daemon = Daemon::start(&ctl);
    daemon.wait_log(0, "matches handed to journalctl");
    // journalctl reads from the daemon's first start on (to the second): wait past it
    std::thread::sleep(Duration::from_millis(1100));

    // five failed logins under both names, and four from another address
    log_lines(
        &sb,
        "sshd-session",
        "for i in 1 2 3; do echo \"Failed password for root from 192.0.2.7 port 4$i ssh2\"; done; \
         for i in 1 2 3 4; do echo \"Failed password for invalid user x from 198.51.100.9 port 5$i ssh2\"; done",
    );
    log_lines(
        &sb,
        "sshd",
        "for i in 4 5; do echo \"Failed publickey for root from 192.0.2.7 port 4$i ssh2\"; done",
    );
    wait(&daemon, "no sshd-ban alert", || {
        alerted(&alerts).contains_key("sshd-ban")
    });
    let nft_lines = || std::fs::read_to_string(&nft_log).unwrap_or_default();
    wait(&daemon, "no nft call", || !nft_lines().is_empty());
    assert_eq!(
        nft_lines(),
        "add element inet alertcore banned4 { 192.0.2.7 timeout 3600s }\n"
    );

    // 300 entries, each one alert of its own service and one counter hit; the
    // daemon is killed (-9) in the middle of them
    log_lines(
        &sb,
        "seqtest",
        "for i in $(seq 1 300); do echo \"line $i\"; done",
    );
    wait(&daemon, "no seq alert", || alerted(&alerts).len() > 20);
    daemon.signal("-KILL");
    let _ = daemon.child.wait();
    let before = alerted(&alerts).len();
    let mut daemon = Daemon::start(&ctl);
    let seq = || {
        alerted(&alerts)
            .keys()
            .filter(|k| k.starts_with("seq-"))
            .count()
    };
    // every entry's alert is in the outbox exactly once (one whose delivery the kill
    // cut short is there, leased by the dead daemon)
    let db = rusqlite::Connection::open(ctl.state()).expect("state");
    let outbox = || -> Vec<(String, i64)> {
        let mut stmt = db
            .prepare("SELECT service, COUNT(*) FROM notifications WHERE service LIKE 'seq-%' GROUP BY service")
            .expect("query");
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("rows")
    };
    wait(&daemon, "not every seq entry is in the outbox", || {
        outbox().len() == 300
    });
    assert!(outbox().iter().all(|(_, n)| *n == 1), "{:?}", outbox());
    // when its lease runs out it is sent again: at once, here
    wait(&daemon, "the daemon did not deliver", || seq() >= 299);
    let out = ctl.run(&["outbox", "retry", "--all"]);
    assert!(out.status.success(), "{}", text(&out));
    wait(
        &daemon,
        &format!("not every seq entry alerted ({before} before the kill)"),
        || seq() == 300,
    );
    let counts = alerted(&alerts);
    assert!(before < 302, "the kill came after every entry: {before}");
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "alerted more than once: {twice:?}");
    assert_eq!(counts.len(), 301, "{counts:?}");

    // the ban, still running, was added again at the restart; the counters survived:
    // one more failed login of the other address is its fifth
    wait(&daemon, "the ban was not restored", || {
        nft_lines().lines().count() == 2
    });
    let restored = nft_lines().lines().nth(1).unwrap_or_default().to_owned();
    assert!(
        restored.starts_with("add element inet alertcore banned4 { 192.0.2.7 timeout "),
        "{restored}"
    );
    // journald starts new files (as at its size limit or a daily rotation): the
    // follower reads on in them
    sb.run(&["journalctl", "--rotate"]);
    let archived = std::fs::read_dir(sb.journal_dir())
        .expect("journal dir")
        .flatten()
        .flat_map(|d| std::fs::read_dir(d.path()).into_iter().flatten().flatten())
        .any(|f| f.file_name().to_string_lossy().contains('@'));
    assert!(archived, "journalctl --rotate archived no file");
    log_lines(
        &sb,
        "sshd",
        "echo \"Failed password for root from 198.51.100.9 port 9 ssh2\"",
    );
    wait(
        &daemon,
        "the fifth login of the other address banned nothing",
        || nft_lines().contains("198.51.100.9"),
    );
    // one alert still: the sshd-ban streak is open
    assert_eq!(alerted(&alerts)["sshd-ban"], 1);

    // the counter saw each of the 300 entries once
    daemon.signal("-TERM");
    let _ = daemon.child.wait();
    let state: String = db
        .query_row(
            "SELECT state FROM sources WHERE kind = 'journal-counter' AND name = 'seq\t'",
            [],
            |r| r.get(0),
        )
        .expect("the seq counter");
    let counter: serde_json::Value = serde_json::from_str(&state).expect("json");
    assert_eq!(
        counter["hits"].as_array().map(Vec::len),
        Some(300),
        "{state}"
    );
    drop(sb);
}

#[test]
fn the_daily_report_mails_its_three_parts_as_text_and_html() {
    if skip_unless_available("the journal report test") {
        return;
    }
    if crate::peers::aiosmtpd_missing().is_some() {
        assert!(!crate::under_ci(), "the SMTP sink is missing");
        return;
    }
    let w = work_dir("alertcore-jreport-");
    let sb = Sandbox::start(w.path().join("sandbox"));
    let sink = crate::peers::SmtpSink::start();
    let mut ctl = Ctl::new();
    ctl.set_config(&format!(
        "[notifiers.mail]\ntype = \"email\"\nurl = \"smtp://127.0.0.1:{}\"\n\
         from = \"alertcore <alertcore@example.org>\"\nto = [\"ops@example.org\"]\n\n\
         [journal]\ndirectory = \"{}\"\ncheckpoint_after = \"200ms\"\n\n\
         [journal.report]\nat = \"06:00\"\nmax_lines = 20\n\n\
         [journal.chains]\n\
         noise = [ {{ equals = {{ SYSLOG_IDENTIFIER = \"noisy\" }} }}, {{ drop = true }} ]\n\
         important = [ {{ priority = \"err\" }}, {{ report = \"important\", message = \"{{{{ SYSLOG_IDENTIFIER }}}}: {{{{ MESSAGE }}}}\", stop = true }} ]\n\
         interesting = [\n  {{ regex = {{ MESSAGE = '^backup of (?P<what>\\S+) done' }} }},\n  \
           {{ report = \"interesting\", message = \"backup of {{{{ what }}}} done\" }},\n]\n",
        sink.port(),
        sb.journal_dir().display(),
    ));
    let mut daemon = Daemon::start(&ctl);
    daemon.wait_log(0, "started");
    std::thread::sleep(Duration::from_millis(1100));
    sb.run(&[
        "systemd-run",
        "--wait",
        "--quiet",
        "-p",
        "SyslogIdentifier=diskmon",
        "-p",
        "SyslogLevel=err",
        "/bin/sh",
        "-c",
        "echo 'disk <sdb> & \"failed\"'; echo 'disk <sdb> & \"failed\"'",
    ]);
    log_lines(
        &sb,
        "backup",
        "echo 'backup of /home done'; echo 'backup of /etc done'; echo 'backup of /home done'",
    );
    log_lines(&sb, "noisy", "for i in 1 2 3; do echo \"noise $i\"; done");
    log_lines(
        &sb,
        "cronjob",
        "echo 'job 12 took 3s'; echo 'job 13 took 45s'",
    );
    // the lines wait in the store for the next report: `report journal` shows them
    let pending = || String::from_utf8_lossy(&ctl.run(&["report", "journal"]).stdout).into_owned();
    wait(&daemon, "the lines did not reach the store", || {
        pending().contains("job 12 took 3s")
    });
    let text = pending();
    assert!(text.contains("Important (2 entries)\n  2x  "), "{text}");
    assert!(text.contains("diskmon: disk <sdb> & \"failed\""), "{text}");
    assert!(text.contains("Interesting (3 entries)\n  2x  "), "{text}");
    assert!(text.contains("backup of /home done"), "{text}");
    // the third part: what no chain dropped or reported, counted by shape; no noise
    assert!(
        text.contains("2x  ") && text.contains("cronjob: job 12 took 3s"),
        "{text}"
    );
    assert!(!text.contains("noisy: noise"), "{text}");

    // the report is due (the last one went out two days ago): at the restart it is sent
    daemon.signal("-TERM");
    let _ = daemon.child.wait();
    let two_days_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_millis()
        - 2 * 86_400_000;
    rusqlite::Connection::open(ctl.state())
        .expect("state")
        .execute(
            "UPDATE sources SET state = ?1 WHERE kind = 'journal-report-sent'",
            [two_days_ago.to_string()],
        )
        .expect("update");
    let daemon = Daemon::start(&ctl);
    let mails = sink.wait_for(1, DEADLINE);
    let mail = &mails[0];
    let subject = mail["subject"].as_str().unwrap_or_default();
    assert!(
        subject.contains("DIGEST: journal (2 important, 3 interesting, "),
        "{subject}"
    );
    assert_eq!(mail["content_type"], "multipart/alternative", "{mail:#}");
    let body = mail["body"].as_str().unwrap_or_default();
    assert!(body.contains("Important (2 entries)"), "{body}");
    assert!(body.contains("cronjob: job 12 took 3s"), "{body}");
    let html = mail["html"].as_str().unwrap_or_default();
    assert!(html.contains("<h2>Important (2 entries)</h2>"), "{html}");
    assert!(
        html.contains("diskmon: disk &lt;sdb&gt; &amp; &quot;failed&quot;"),
        "{html}"
    );
    // sent, its lines are forgotten; the journal still has them for --since
    wait(&daemon, "the report's lines were kept", || {
        pending().contains("Important (0 entries)")
    });
    let again = String::from_utf8_lossy(&ctl.run(&["report", "journal", "--since", "1h"]).stdout)
        .into_owned();
    assert!(again.contains("Important (2 entries)"), "{again}");
    assert_eq!(sink.messages().len(), 1);
    drop(sb);
}

/// A network namespace of the test's own (a sleeping `unshare -n`), so a real `nft`
/// changes no firewall of the machine; killed on drop.
struct NetNs(std::process::Child);

impl NetNs {
    fn start() -> Self {
        let child = std::process::Command::new("unshare")
            .args(["-n", "sleep", "600"])
            .spawn()
            .expect("unshare -n");
        let ns = Self(child);
        // wait until the child is in its namespace
        let own = std::fs::read_link("/proc/self/ns/net").expect("own netns");
        let start = Instant::now();
        while std::fs::read_link(ns.path()).ok().as_ref() == Some(&own) || !ns.path().exists() {
            assert!(start.elapsed() < DEADLINE, "unshare -n did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        ns
    }

    fn path(&self) -> std::path::PathBuf {
        format!("/proc/{}/ns/net", self.0.id()).into()
    }

    /// `nft ARGS` in the namespace: its output.
    fn nft(&self, args: &str) -> String {
        let out = std::process::Command::new("nsenter")
            .arg(format!("--net={}", self.path().display()))
            .args(["nft"])
            .args(args.split(' '))
            .output()
            .expect("nsenter nft");
        assert!(out.status.success(), "nft {args}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn bans_go_into_real_nftables_sets_and_running_ones_come_back_after_a_restart() {
    if skip_unless_available("the nftables ban test") {
        return;
    }
    let nft_missing = !Path::new("/usr/sbin/nft").exists();
    if nft_missing {
        assert!(
            !crate::under_ci(),
            "nft is missing: tests/run.sh installs nftables"
        );
        eprintln!("skipping: nft is missing (apt-get install nftables)");
        return;
    }
    let w = work_dir("alertcore-jban-");
    let sb = Sandbox::start(w.path().join("sandbox"));
    let ns = NetNs::start();
    ns.nft("add table inet alertcore");
    ns.nft("add set inet alertcore banned4 { type ipv4_addr ; flags timeout ; }");
    ns.nft("add set inet alertcore banned6 { type ipv6_addr ; flags timeout ; }");
    let mut ctl = Ctl::new();
    let wrapper = ctl.dir.path().join("nft");
    // what the exec step ran: its argument (a template) and two fields from its
    // environment (a capture and a journal field)
    let ran = ctl.dir.path().join("ran.log");
    write(
        &wrapper,
        &format!(
            "#!/bin/sh\nexec nsenter --net={} nft \"$@\"\n",
            ns.path().display()
        ),
    );
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    ctl.set_config(&format!(
        "[journal]\ndirectory = \"{}\"\nnft = \"{}\"\ncheckpoint_after = \"200ms\"\n\n\
         [journal.chains]\n\
         long = [ {{ equals = {{ SYSLOG_IDENTIFIER = \"sshd\" }} }}, {{ regex = {{ MESSAGE = 'from (?P<ip>\\S+)$' }} }}, {{ ban = \"{{{{ ip }}}}\", for = \"1h\" }},\n  \
           {{ exec = [\"/bin/sh\", \"-c\", 'echo \"$1 $ip $SYSLOG_IDENTIFIER\" >> {}', \"sh\", \"{{{{ ip }}}}\"] }} ]\n\
         short = [ {{ equals = {{ SYSLOG_IDENTIFIER = \"sshd-short\" }} }}, {{ regex = {{ MESSAGE = 'from (?P<ip>\\S+)$' }} }}, {{ ban = \"{{{{ ip }}}}\", for = \"2s\" }} ]\n",
        sb.journal_dir().display(),
        wrapper.display(),
        ran.display(),
    ));
    let mut daemon = Daemon::start(&ctl);
    daemon.wait_log(0, "started");
    std::thread::sleep(Duration::from_millis(1100));
    log_lines(
        &sb,
        "sshd",
        "echo 'attack from 192.0.2.7'; echo 'attack from 2001:db8::5'",
    );
    log_lines(&sb, "sshd-short", "echo 'attack from 198.51.100.9'");
    let set4 = || ns.nft("list set inet alertcore banned4");
    let set6 = || ns.nft("list set inet alertcore banned6");
    wait(&daemon, "no IPv4 bans", || {
        set4().contains("192.0.2.7") && set4().contains("198.51.100.9")
    });
    wait(&daemon, "no IPv6 ban", || set6().contains("2001:db8::5"));
    assert!(set4().contains("192.0.2.7 timeout 1h"), "{}", set4());
    let ran_lines = || std::fs::read_to_string(&ran).unwrap_or_default();
    wait(&daemon, "the exec step did not run twice", || {
        ran_lines().lines().count() == 2
    });
    assert_eq!(
        ran_lines(),
        "192.0.2.7 192.0.2.7 sshd\n2001:db8::5 2001:db8::5 sshd\n"
    );

    // a reboot empties the sets; at the daemon's restart the running bans come back,
    // the expired one does not
    daemon.signal("-TERM");
    let _ = daemon.child.wait();
    ns.nft("flush set inet alertcore banned4");
    ns.nft("flush set inet alertcore banned6");
    std::thread::sleep(Duration::from_millis(2100));
    assert!(
        !set4().contains("198.51.100.9"),
        "the 2 s ban did not expire: {}",
        set4()
    );
    let daemon = Daemon::start(&ctl);
    wait(&daemon, "the bans were not restored", || {
        set4().contains("192.0.2.7") && set6().contains("2001:db8::5")
    });
    assert!(
        !set4().contains("198.51.100.9"),
        "an expired ban came back: {}",
        set4()
    );
    // restored with what was left of its hour
    assert!(set4().contains("192.0.2.7 timeout 59m"), "{}", set4());
    // and the programs that ran are not run again
    assert_eq!(ran_lines().lines().count(), 2);
    drop(sb);
}
