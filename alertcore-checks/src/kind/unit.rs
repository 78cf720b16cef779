//! The `unit` kind: a systemd unit's state, from `systemctl show`.
//!
//! ```toml
//! [checks.nginx]
//! kind = "unit"
//! unit = "nginx.service"
//! # expect = "active"                 # the default; or a list of ActiveState values
//! # user = true                       # the calling user's manager (systemctl --user)
//!
//! [checks.backup-unit]
//! kind = "unit"
//! unit = "backup.service"             # a oneshot: inactive between runs is fine,
//! expect = ["active", "inactive", "activating"]  # failed is not
//! ```
//!
//! It runs `systemctl [--user] show --property=ActiveState,SubState,Result,LoadState --
//! UNIT` and judges `ActiveState`:
//!
//! - one of `expect`: ok (`UNIT OK - nginx.service is active (running)`);
//! - else `activating`, `deactivating`, `reloading`, `refreshing` or `maintenance` (on its
//!   way somewhere): warning;
//! - else (`failed`, `inactive`, or `active` where it is not expected): critical
//!   (`UNIT CRITICAL - nginx.service is failed (failed), result exit-code, expected
//!   active`);
//! - `LoadState=not-found`: critical (`UNIT CRITICAL - unit nginx.service not found`);
//! - `systemctl` failing (no systemd, no bus): unknown, with its error.
//!
//! A name without a suffix is a service, as for `systemctl`. With `user = true`, alertctl
//! must run as that user with the user's `XDG_RUNTIME_DIR` (as a user unit does).

use std::collections::HashMap;
use std::ffi::OsString;
use std::sync::Arc;
use std::time::Duration;

use alertcore::{BuildError, Table};
use serde::Deserialize;
use tokio::time::Instant;

use super::command::{RunError, run_captured};
use super::{BuildContext, OneOrMany, Probe};
use crate::outcome::{Outcome, Status};
use crate::perfdata::output_text;

/// The values `ActiveState` can have (systemd 252 and later).
const ACTIVE_STATES: [&str; 8] = [
    "active",
    "reloading",
    "inactive",
    "failed",
    "activating",
    "deactivating",
    "maintenance",
    "refreshing",
];

/// States on the way to another one: a warning when not expected.
const TRANSITIONAL: [&str; 5] = [
    "activating",
    "deactivating",
    "reloading",
    "refreshing",
    "maintenance",
];

const PROPERTIES: &str = "--property=ActiveState,SubState,Result,LoadState";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    unit: String,
    #[serde(default)]
    user: bool,
    #[serde(default)]
    expect: Option<OneOrMany<String>>,
}

pub(crate) fn build(table: &Table, _ctx: &BuildContext<'_>) -> Result<Arc<dyn Probe>, BuildError> {
    Ok(Arc::new(unit_probe(table)?))
}

fn unit_probe(table: &Table) -> Result<UnitProbe, BuildError> {
    let c: Config = table.deserialize()?;
    let unit = c.unit.trim();
    if unit.is_empty()
        || unit.starts_with('-')
        || unit.len() > 256
        || unit.chars().any(|ch| ch.is_whitespace() || ch.is_control())
    {
        return Err(BuildError::key(
            "unit",
            format!("{:?} is not a unit name (e.g. \"nginx.service\")", c.unit),
        ));
    }
    let expect = c
        .expect
        .map_or_else(|| vec!["active".to_owned()], OneOrMany::into_vec);
    if expect.is_empty() {
        return Err(BuildError::key(
            "expect",
            "is empty: list the acceptable states",
        ));
    }
    if let Some(bad) = expect.iter().find(|s| !ACTIVE_STATES.contains(&s.as_str())) {
        return Err(BuildError::key(
            "expect",
            format!(
                "{bad:?} is not an ActiveState (one of: {})",
                ACTIVE_STATES.join(", ")
            ),
        ));
    }
    Ok(UnitProbe {
        unit: unit.to_owned(),
        user: c.user,
        expect,
        systemctl: Systemctl::default(),
    })
}

/// How to run `systemctl`: the program and arguments before systemctl's own, and extra
/// environment. Only tests change it (to reach a sandboxed systemd through `nsenter`).
#[derive(Debug, Clone)]
struct Systemctl {
    argv: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
}

impl Default for Systemctl {
    fn default() -> Self {
        Self {
            argv: vec!["systemctl".into()],
            env: Vec::new(),
        }
    }
}

#[derive(Debug)]
struct UnitProbe {
    unit: String,
    user: bool,
    expect: Vec<String>,
    systemctl: Systemctl,
}

#[async_trait::async_trait]
impl Probe for UnitProbe {
    fn kind(&self) -> &'static str {
        "unit"
    }

    async fn run(&self, timeout: Duration) -> Outcome {
        let deadline = Instant::now() + timeout;
        let Some((program, prefix)) = self.systemctl.argv.split_first() else {
            return Outcome::unknown("no systemctl");
        };
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(prefix)
            .args(self.args())
            .envs(self.systemctl.env.iter().map(|(k, v)| (k, v)));
        let c = match run_captured(cmd, deadline).await {
            Ok(c) => c,
            Err(RunError::TimedOut) => return Outcome::timed_out(timeout),
            Err(RunError::Spawn(e)) => {
                return Outcome::unknown(format!(
                    "UNIT UNKNOWN - cannot run {}: {e}",
                    program.to_string_lossy()
                ));
            }
        };
        let stdout = output_text(&c.stdout);
        let props = parse_show(&stdout);
        if !c.status.success() || props.active.is_empty() {
            let stderr = output_text(&c.stderr);
            let why = stderr
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join("; ");
            let ended = match c.status.code() {
                Some(code) => format!("exit {code}"),
                None => c.status.to_string(),
            };
            return Outcome::unknown(format!(
                "UNIT UNKNOWN - systemctl show {} failed ({ended}){}",
                self.unit,
                if why.is_empty() {
                    String::new()
                } else {
                    format!(": {why}")
                }
            ))
            .long_output(stdout.trim_end());
        }
        judge(&self.unit, &self.expect, &props)
    }
}

impl UnitProbe {
    /// systemctl's arguments.
    fn args(&self) -> Vec<&str> {
        let mut a = Vec::with_capacity(5);
        if self.user {
            a.push("--user");
        }
        a.extend(["show", PROPERTIES, "--", &self.unit]);
        a
    }
}

/// The properties the check reads.
#[derive(Debug, Default, PartialEq)]
struct Props {
    active: String,
    sub: String,
    result: String,
    load: String,
}

/// `KEY=VALUE` lines of `systemctl show`.
fn parse_show(stdout: &str) -> Props {
    let map: HashMap<&str, &str> = stdout.lines().filter_map(|l| l.split_once('=')).collect();
    let get = |k: &str| map.get(k).map(|v| v.trim().to_owned()).unwrap_or_default();
    Props {
        active: get("ActiveState"),
        sub: get("SubState"),
        result: get("Result"),
        load: get("LoadState"),
    }
}

fn judge(unit: &str, expect: &[String], p: &Props) -> Outcome {
    if p.load == "not-found" {
        return Outcome::critical(format!("UNIT CRITICAL - unit {unit} not found"));
    }
    let mut what = format!("{unit} is {}", p.active);
    if !p.sub.is_empty() {
        what.push_str(&format!(" ({})", p.sub));
    }
    if !p.result.is_empty() && p.result != "success" {
        what.push_str(&format!(", result {}", p.result));
    }
    if !p.load.is_empty() && p.load != "loaded" {
        what.push_str(&format!(", load state {}", p.load));
    }
    let status = if expect.contains(&p.active) {
        Status::Ok
    } else if TRANSITIONAL.contains(&p.active.as_str()) {
        Status::Warning
    } else if ACTIVE_STATES.contains(&p.active.as_str()) {
        Status::Critical
    } else {
        Status::Unknown
    };
    if status.is_ok() {
        return Outcome::ok(format!("UNIT OK - {what}"));
    }
    Outcome::new(
        status,
        format!(
            "UNIT {} - {what}, expected {}",
            status.label(),
            expect.join(" or ")
        ),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::path::PathBuf;
    use std::process::{Command, Output};
    use std::time::Instant as StdInstant;

    use super::*;
    use crate::kind::build as build_kind;

    const T: Duration = Duration::from_secs(10);

    fn config(toml: &str) -> UnitProbe {
        unit_probe(&Table::parse(toml).unwrap()).unwrap()
    }

    fn props(show: &str) -> Props {
        parse_show(show)
    }

    fn expect(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    // `systemctl show --property=ActiveState,SubState,Result,LoadState` of systemd 252,
    // captured from the sandbox
    const RUNNING: &str =
        "Result=success\nLoadState=loaded\nActiveState=active\nSubState=running\n";
    const FAILED: &str =
        "Result=exit-code\nLoadState=loaded\nActiveState=failed\nSubState=failed\n";
    const ACTIVATING: &str =
        "Result=success\nLoadState=loaded\nActiveState=activating\nSubState=start\n";
    const NOT_FOUND: &str =
        "Result=success\nLoadState=not-found\nActiveState=inactive\nSubState=dead\n";
    const BAD_SETTING: &str =
        "Result=success\nLoadState=bad-setting\nActiveState=inactive\nSubState=dead\n";
    const TARGET: &str = "LoadState=loaded\nActiveState=active\nSubState=active\n";

    #[test]
    fn judging_captured_output() {
        let active = expect(&["active"]);
        let cases = [
            (
                RUNNING,
                &active,
                Status::Ok,
                "UNIT OK - u is active (running)",
            ),
            (
                FAILED,
                &active,
                Status::Critical,
                "UNIT CRITICAL - u is failed (failed), result exit-code, expected active",
            ),
            (
                ACTIVATING,
                &active,
                Status::Warning,
                "UNIT WARNING - u is activating (start), expected active",
            ),
            (
                NOT_FOUND,
                &active,
                Status::Critical,
                "UNIT CRITICAL - unit u not found",
            ),
            (
                BAD_SETTING,
                &active,
                Status::Critical,
                "UNIT CRITICAL - u is inactive (dead), load state bad-setting, expected active",
            ),
            (
                TARGET,
                &active,
                Status::Ok,
                "UNIT OK - u is active (active)",
            ),
        ];
        for (show, exp, status, message) in cases {
            let o = judge("u", exp, &props(show));
            assert_eq!((o.status, o.message.as_str()), (status, message), "{show}");
        }
        let o = judge("u", &expect(&["inactive", "failed"]), &props(RUNNING));
        assert_eq!(
            (o.status, o.message.as_str()),
            (
                Status::Critical,
                "UNIT CRITICAL - u is active (running), expected inactive or failed"
            )
        );
        let o = judge("u", &expect(&["active", "failed"]), &props(FAILED));
        assert_eq!(o.status, Status::Ok);
        let o = judge("u", &active, &props("ActiveState=weird\n"));
        assert_eq!(o.status, Status::Unknown);
    }

    #[test]
    fn arguments() {
        let p = config("unit = \"nginx\"");
        assert_eq!(p.args(), ["show", PROPERTIES, "--", "nginx"]);
        assert_eq!(p.expect, ["active"]);
        let p = config("unit = \"x.service\"\nuser = true\nexpect = [\"active\", \"inactive\"]");
        assert_eq!(p.args(), ["--user", "show", PROPERTIES, "--", "x.service"]);
        assert_eq!(p.expect, ["active", "inactive"]);
        assert_eq!(
            config("unit = \"x\"\nexpect = \"failed\"").expect,
            ["failed"]
        );
    }

    #[test]
    fn bad_configs_name_the_key() {
        let ctx = BuildContext::new(None);
        for (toml, key) in [
            ("", "unit"),
            ("unit = \"\"", "unit"),
            ("unit = \"--all\"", "unit"),
            ("unit = \"a b\"", "unit"),
            ("unit = \"x\"\nexpect = \"running\"", "expect"),
            ("unit = \"x\"\nexpect = []", "expect"),
            ("unit = \"x\"\nuser = \"yes\"", "user"),
            ("unit = \"x\"\nstate = \"active\"", "state"),
        ] {
            let e = build_kind("unit", &Table::parse(toml).unwrap(), &ctx).unwrap_err();
            assert_eq!(e.offending_key(), Some(key), "{toml}: {e}");
        }
    }

    fn with_systemctl(mut p: UnitProbe, argv: &[&str]) -> UnitProbe {
        p.systemctl.argv = argv.iter().map(OsString::from).collect();
        p
    }

    #[tokio::test]
    async fn a_failing_or_hanging_systemctl_is_unknown_or_timed_out() {
        let p = with_systemctl(
            config("unit = \"up.service\""),
            &[
                "/bin/sh",
                "-c",
                "echo 'Failed to connect to bus: No medium found' >&2; exit 1",
                "sh",
            ],
        );
        let o = p.run(T).await;
        assert_eq!(
            (o.status, o.message.as_str()),
            (
                Status::Unknown,
                "UNIT UNKNOWN - systemctl show up.service failed (exit 1): \
                 Failed to connect to bus: No medium found"
            )
        );
        let p = with_systemctl(config("unit = \"x\""), &["/nonexistent/systemctl"]);
        let o = p.run(T).await;
        assert_eq!(o.status, Status::Unknown);
        assert!(
            o.message.contains("cannot run /nonexistent/systemctl"),
            "{o:?}"
        );
        let p = with_systemctl(
            config("unit = \"x\""),
            &["/bin/sh", "-c", "sleep 1000", "sh"],
        );
        let o = p.run(Duration::from_millis(300)).await;
        assert_eq!(o, Outcome::timed_out(Duration::from_millis(300)));
    }

    const SCRIPT: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/peers/systemd-sandbox.sh"
    );

    /// A real systemd as PID 1 of its own namespaces (`tests/peers/systemd-sandbox.sh`,
    /// as `tests/it/systemd.rs` uses it); stopped on drop.
    struct Sandbox {
        dir: PathBuf,
        _tmp: tempfile::TempDir,
    }

    impl Sandbox {
        /// The sandbox, or `None` where it cannot run (then the reason is printed; under
        /// CI (`CI` set) that is a failure).
        fn start() -> Option<Self> {
            let out = Command::new("bash")
                .args([SCRIPT, "check"])
                .output()
                .unwrap();
            if !out.status.success() {
                let why = String::from_utf8_lossy(&out.stdout);
                assert!(
                    !crate::under_ci(),
                    "the systemd sandbox cannot run under CI: {why}"
                );
                eprintln!("skipping the unit check's sandbox test: {why}");
                return None;
            }
            let tmp = tempfile::Builder::new()
                .prefix("alertcore-checks-unit-")
                .tempdir()
                .unwrap();
            let sb = Self {
                dir: tmp.path().join("sandbox"),
                _tmp: tmp,
            };
            std::fs::create_dir_all(&sb.dir).unwrap();
            let out = sb.script(&["start"]);
            assert!(out.status.success(), "sandbox start: {}", text(&out));
            std::fs::create_dir_all(sb.units()).unwrap();
            Some(sb)
        }

        fn units(&self) -> PathBuf {
            self.dir.join("units")
        }

        fn script(&self, args: &[&str]) -> Output {
            Command::new("bash")
                .arg(SCRIPT)
                .args(args)
                .env("SANDBOX", &self.dir)
                .output()
                .unwrap()
        }

        fn systemctl(&self, args: &[&str]) -> String {
            let out = self.script(&[&["run", "systemctl", "--no-pager"], args].concat());
            assert!(out.status.success(), "systemctl {args:?}: {}", text(&out));
            String::from_utf8_lossy(&out.stdout).into_owned()
        }

        fn unit(&self, name: &str, service: &str) {
            std::fs::write(self.units().join(name), format!("[Service]\n{service}\n")).unwrap();
        }

        /// `systemctl` in the sandbox, as the probe runs it.
        fn probe(&self, toml: &str) -> UnitProbe {
            let mut p = with_systemctl(config(toml), &["bash", SCRIPT, "run", "systemctl"]);
            p.systemctl.env = vec![("SANDBOX".into(), self.dir.clone().into_os_string())];
            p
        }

        /// Waits (polling, with a deadline) until `unit` is in `state`.
        fn wait_for(&self, unit: &str, state: &str) {
            let start = StdInstant::now();
            loop {
                let now = self.systemctl(&["show", "--value", "-p", "ActiveState", unit]);
                if now.trim() == state {
                    return;
                }
                assert!(start.elapsed() < Duration::from_secs(20), "{unit}: {now}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    impl Drop for Sandbox {
        fn drop(&mut self) {
            let out = self.script(&["stop"]);
            if !out.status.success() {
                eprintln!("sandbox stop: {}", text(&out));
            }
        }
    }

    fn text(out: &Output) -> String {
        format!(
            "{}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    #[tokio::test]
    async fn real_units_in_a_systemd_sandbox() {
        let Some(sb) = Sandbox::start() else { return };
        sb.unit("up.service", "ExecStart=/bin/sleep 1000");
        sb.unit("bad.service", "ExecStart=/bin/false");
        sb.unit("slow.service", "Type=oneshot\nExecStart=/bin/sleep 1000");
        sb.unit("done.service", "Type=oneshot\nExecStart=/bin/true");
        sb.unit("broken.service", "ExecStart=relative/path");
        sb.systemctl(&["daemon-reload"]);
        sb.systemctl(&["start", "up.service", "done.service"]);
        // fails, so `start` itself fails: not through `systemctl()`
        let _ = sb.script(&["run", "systemctl", "start", "bad.service"]);
        sb.systemctl(&["start", "--no-block", "slow.service"]);
        sb.wait_for("bad.service", "failed");
        sb.wait_for("slow.service", "activating");

        let cases: [(&str, Status, &str); 8] = [
            (
                "unit = \"up\"",
                Status::Ok,
                "UNIT OK - up is active (running)",
            ),
            (
                "unit = \"bad.service\"",
                Status::Critical,
                "UNIT CRITICAL - bad.service is failed (failed), result exit-code, expected active",
            ),
            (
                "unit = \"slow.service\"",
                Status::Warning,
                "UNIT WARNING - slow.service is activating (start), expected active",
            ),
            (
                "unit = \"done.service\"",
                Status::Critical,
                "UNIT CRITICAL - done.service is inactive (dead), expected active",
            ),
            (
                "unit = \"done.service\"\nexpect = [\"active\", \"inactive\"]",
                Status::Ok,
                "UNIT OK - done.service is inactive (dead)",
            ),
            (
                "unit = \"nope.service\"",
                Status::Critical,
                "UNIT CRITICAL - unit nope.service not found",
            ),
            (
                "unit = \"broken.service\"",
                Status::Critical,
                "UNIT CRITICAL - broken.service is inactive (dead), load state bad-setting, \
                 expected active",
            ),
            (
                "unit = \"up.service\"\nexpect = \"inactive\"",
                Status::Critical,
                "UNIT CRITICAL - up.service is active (running), expected inactive",
            ),
        ];
        for (toml, status, message) in cases {
            let o = sb.probe(toml).run(T).await;
            assert_eq!((o.status, o.message.as_str()), (status, message), "{toml}");
        }
        // no user manager in the sandbox: systemctl --user fails, and says why
        let o = sb.probe("unit = \"up\"\nuser = true").run(T).await;
        assert_eq!(o.status, Status::Unknown, "{o:?}");
        assert!(
            o.message
                .starts_with("UNIT UNKNOWN - systemctl show up failed (exit 1): "),
            "{o:?}"
        );
    }
}
