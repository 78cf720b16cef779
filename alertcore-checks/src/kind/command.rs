//! The `command` kind: runs a Nagios-compatible plugin (or any program) and reads its
//! exit status and output the way Nagios does.
//!
//! ```toml
//! [checks.web-disk]
//! kind = "command"
//! host = "web1"
//! command = ["check_disk", "-w", "10%", "-c", "5%", "-p", "/"]
//! env = { LC_ALL = "C" }     # optional: added to alertctl's environment
//! cwd = "/var/lib/checks"    # optional, absolute
//! ```
//!
//! - `command` is the argument vector, run without a shell; `{host}` in any argument is
//!   the host's address. A first argument with a `/` must be an absolute path. A bare
//!   name is looked up in `PATH` (the one of `env` if it sets one, else alertctl's), and
//!   where it is not found there in the plugin directories of the Debian/Ubuntu and other
//!   distributions' packages, `/usr/lib/nagios/plugins` and `/usr/lib/monitoring-plugins`:
//!   `command = ["check_tcp", ...]` works without adding them to `PATH`.
//! - The exit status is the plugin API's: 0 ok, 1 warning, 2 critical, anything else
//!   unknown; killed by a signal is unknown ("killed by signal 9").
//! - The message is the first line of standard output without its performance data; the
//!   further lines are the long output ([`crate::perfdata`]). Only the first 8 KiB of
//!   output are read (Nagios' limit); the rest is read and dropped, so the plugin does
//!   not block on a full pipe. Standard error is not plugin output: it is used only when
//!   standard output is empty (its first line is the message then). No output at all
//!   gives "(no output) exit N".
//! - The plugin runs in a process group of its own with standard input from
//!   `/dev/null`. At the timeout the whole group is killed (`SIGKILL`), so a plugin's
//!   own children do not outlive it, and the run is critical ("timed out after 10s").
//!   When the plugin has exited but something it started still holds its output open,
//!   the run waits [`PIPE_GRACE`] at most, then kills that group too and uses what it
//!   read. A run that is cancelled (its future dropped) kills the group as well.
//! - A program that cannot be started (not found, not executable) is unknown, with the
//!   reason.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use alertcore::{BuildError, Table};
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt as _};
use tokio::time::Instant;

use super::{BuildContext, Probe};
use crate::outcome::{Outcome, Status};
use crate::perfdata::{self, MAX_PLUGIN_OUTPUT};

/// Where distributions install the Monitoring Plugins, searched after `PATH` for a bare
/// program name: Debian and Ubuntu's `monitoring-plugins-*` packages, and the upstream
/// default used by Alpine, Arch and others.
pub(crate) const PLUGIN_DIRS: [&str; 2] =
    ["/usr/lib/nagios/plugins", "/usr/lib/monitoring-plugins"];

/// How long a run waits, after the plugin exited, for its output pipes to close.
pub(crate) const PIPE_GRACE: Duration = Duration::from_millis(200);

/// `PATH` when neither `env` nor alertctl's environment has one.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    command: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    cwd: Option<PathBuf>,
}

pub(crate) fn build(table: &Table, ctx: &BuildContext<'_>) -> Result<Arc<dyn Probe>, BuildError> {
    let c: Config = table.deserialize()?;
    let argv = c
        .command
        .iter()
        .map(|a| ctx.expand("command", a))
        .collect::<Result<Vec<_>, _>>()?;
    match argv.first() {
        None => {
            return Err(BuildError::key(
                "command",
                "is empty: name the program to run",
            ));
        }
        Some(p) if p.is_empty() => {
            return Err(BuildError::key(
                "command",
                "the program (first element) is empty",
            ));
        }
        Some(p) if p.contains('/') && !p.starts_with('/') => {
            return Err(BuildError::key(
                "command",
                format!("{p:?}: a path must be absolute (or a bare name, looked up in PATH)"),
            ));
        }
        Some(_) => {}
    }
    if argv.iter().any(|a| a.contains('\0')) {
        return Err(BuildError::key(
            "command",
            "an argument contains a NUL character",
        ));
    }
    for (k, v) in &c.env {
        if k.is_empty() || k.contains(['=', '\0']) || v.contains('\0') {
            return Err(BuildError::key(
                "env",
                format!("{k:?}: not a valid environment variable (name without `=`, no NUL)"),
            ));
        }
    }
    if let Some(cwd) = &c.cwd
        && !cwd.is_absolute()
    {
        return Err(BuildError::key(
            "cwd",
            format!("{}: must be an absolute path", cwd.display()),
        ));
    }
    Ok(Arc::new(CommandProbe {
        argv,
        env: c.env,
        cwd: c.cwd,
    }))
}

#[derive(Debug)]
struct CommandProbe {
    argv: Vec<String>,
    env: BTreeMap<String, String>,
    cwd: Option<PathBuf>,
}

#[async_trait::async_trait]
impl Probe for CommandProbe {
    fn kind(&self) -> &'static str {
        "command"
    }

    async fn run(&self, timeout: Duration) -> Outcome {
        let deadline = Instant::now() + timeout;
        let Some((name, args)) = self.argv.split_first() else {
            return Outcome::unknown("no command");
        };
        let program = match resolve(name, self.env.get("PATH").map(OsString::from)) {
            Ok(p) => p,
            Err(why) => return Outcome::unknown(why),
        };
        let mut cmd = tokio::process::Command::new(&program);
        cmd.args(args).envs(&self.env);
        if let Some(cwd) = &self.cwd {
            cmd.current_dir(cwd);
        }
        match run_captured(cmd, deadline).await {
            Err(RunError::Spawn(e)) => {
                Outcome::unknown(format!("cannot run {}: {e}", program.display()))
            }
            Err(RunError::TimedOut) => Outcome::timed_out(timeout),
            Ok(c) => plugin_outcome(&c),
        }
    }
}

/// The program to run for `name`: `name` itself when it is a path; else the first
/// executable file of that name in `path` (or alertctl's `PATH`), then in
/// [`PLUGIN_DIRS`].
fn resolve(name: &str, path: Option<OsString>) -> Result<PathBuf, String> {
    if name.contains('/') {
        return Ok(PathBuf::from(name));
    }
    let path = path
        .or_else(|| std::env::var_os("PATH"))
        .unwrap_or_else(|| DEFAULT_PATH.into());
    std::env::split_paths(&path)
        .filter(|d| d.is_absolute())
        .chain(PLUGIN_DIRS.iter().map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
        .ok_or_else(|| {
            format!(
                "{name}: command not found (in PATH, {})",
                PLUGIN_DIRS.join(", ")
            )
        })
}

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// What a finished program left.
#[derive(Debug)]
pub(crate) struct Captured {
    pub(crate) status: ExitStatus,
    /// Standard output, at most [`MAX_PLUGIN_OUTPUT`] bytes of it.
    pub(crate) stdout: Vec<u8>,
    /// Standard error, at most [`MAX_PLUGIN_OUTPUT`] bytes of it.
    pub(crate) stderr: Vec<u8>,
}

#[derive(Debug)]
pub(crate) enum RunError {
    /// The program could not be started.
    Spawn(std::io::Error),
    /// It did not finish by the deadline; its process group was killed.
    TimedOut,
}

/// Runs `cmd` (stdin from `/dev/null`, stdout and stderr captured) in a process group of
/// its own, and waits for it until `deadline`: then the whole group is killed. After the
/// program exits its pipes get [`PIPE_GRACE`] (within the deadline) to close; what still
/// holds them then is killed with the group. Dropping the future kills the group too.
pub(crate) async fn run_captured(
    mut cmd: tokio::process::Command,
    deadline: Instant,
) -> Result<Captured, RunError> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(RunError::Spawn)?;
    // The child leads its group: its pid is the group's id. Held from here, so that
    // every way out of this function (a drop included) kills what is left of the group.
    let mut group = GroupGuard(child.id().and_then(|id| i32::try_from(id).ok()));
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(RunError::Spawn(std::io::Error::other(
            "no pipes to the child",
        )));
    };
    let mut out = Vec::new();
    let mut err = Vec::new();
    let status = {
        let reading = async {
            tokio::join!(read_capped(stdout, &mut out), read_capped(stderr, &mut err));
        };
        tokio::pin!(reading);
        let mut read_all = false;
        let status = loop {
            tokio::select! {
                status = child.wait() => break status,
                () = &mut reading, if !read_all => read_all = true,
                () = tokio::time::sleep_until(deadline) => {
                    group.kill();
                    return Err(RunError::TimedOut);
                }
            }
        };
        let status = status.map_err(RunError::Spawn)?;
        if !read_all {
            let grace = deadline.min(Instant::now() + PIPE_GRACE);
            if tokio::time::timeout_at(grace, &mut reading).await.is_err() {
                // Something the program started holds its output open: it goes with the
                // group, and the run uses what was read.
                group.kill();
            }
        }
        status
    };
    // The program exited and its output is read: leave the rest of the group alone.
    group.0 = None;
    Ok(Captured {
        status,
        stdout: out,
        stderr: err,
    })
}

/// Reads `r` to its end, keeping the first [`MAX_PLUGIN_OUTPUT`] bytes in `buf`.
async fn read_capped<R: AsyncRead + Unpin>(mut r: R, buf: &mut Vec<u8>) {
    let mut chunk = [0u8; 4096];
    loop {
        match r.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let room = MAX_PLUGIN_OUTPUT.saturating_sub(buf.len());
                buf.extend_from_slice(chunk.get(..n.min(room)).unwrap_or_default());
            }
        }
    }
}

/// Kills the process group with this id (if any) when dropped.
#[derive(Debug)]
struct GroupGuard(Option<i32>);

impl GroupGuard {
    fn kill(&mut self) {
        if let Some(pgid) = self.0.take().and_then(rustix::process::Pid::from_raw) {
            // ESRCH: the group is gone already
            let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The outcome of a plugin that ran, the Nagios way.
fn plugin_outcome(c: &Captured) -> Outcome {
    let (status, ended) = match (c.status.code(), c.status.signal()) {
        (Some(code), _) => (Status::from_exit_code(code), format!("exit {code}")),
        (None, Some(sig)) => (Status::Unknown, format!("killed by signal {sig}")),
        (None, None) => (Status::Unknown, format!("{}", c.status)),
    };
    let stdout = perfdata::output_text(&c.stdout);
    let mut o = if stdout.trim().is_empty() {
        let stderr = perfdata::output_text(&c.stderr);
        let stderr = stderr.trim();
        match stderr.split_once('\n') {
            _ if stderr.is_empty() => Outcome::new(status, format!("(no output) {ended}")),
            Some((first, rest)) => Outcome::new(status, first.trim()).long_output(rest.trim_end()),
            None => Outcome::new(status, stderr),
        }
    } else {
        let (message, long, perf) = perfdata::parse_plugin_output(&stdout);
        let message = if message.is_empty() {
            format!("(no output) {ended}")
        } else {
            message
        };
        let mut o = Outcome::new(status, message).long_output(long);
        o.perfdata = perf;
        o
    };
    if c.status.code().is_none() {
        // the signal is the news; what it printed goes below
        let said = std::mem::take(&mut o.message);
        o.message = ended;
        if !said.starts_with("(no output)") {
            o.long_output = if o.long_output.is_empty() {
                said
            } else {
                format!("{said}\n{}", o.long_output)
            };
        }
    }
    o
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Instant as StdInstant;

    use super::*;
    use crate::kind::build as build_kind;

    fn probe(toml: &str) -> Arc<dyn Probe> {
        build_kind(
            "command",
            &Table::parse(toml).unwrap(),
            &BuildContext::new(None),
        )
        .unwrap()
    }

    fn probe_argv(argv: &[&str]) -> Arc<dyn Probe> {
        let list: Vec<String> = argv.iter().map(|a| format!("{a:?}")).collect();
        probe(&format!("command = [{}]", list.join(", ")))
    }

    /// The path of a Monitoring Plugins program, or `None` (with the reason printed)
    /// when the package is not installed; under CI (`CI` set) that is a failure.
    fn plugin(name: &str) -> Option<String> {
        let p = Path::new(PLUGIN_DIRS[0]).join(name);
        if is_executable(&p) {
            return Some(p.display().to_string());
        }
        assert!(
            !crate::under_ci(),
            "{} missing under CI: install monitoring-plugins-basic",
            p.display()
        );
        eprintln!(
            "skipping: {} missing (apt-get install monitoring-plugins-basic)",
            p.display()
        );
        None
    }

    const T: Duration = Duration::from_secs(10);

    #[tokio::test]
    async fn check_tcp_ok_with_time_perfdata_then_critical_when_closed() {
        let Some(check_tcp) = plugin("check_tcp") else {
            return;
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port().to_string();
        let accept = tokio::spawn(async move {
            loop {
                if listener.accept().await.is_err() {
                    return;
                }
            }
        });
        let p = probe_argv(&[&check_tcp, "-H", "127.0.0.1", "-p", &port]);
        let o = p.run(T).await;
        assert_eq!(o.status, Status::Ok, "{o:?}");
        assert!(o.message.starts_with("TCP OK"), "{o:?}");
        let time = o.perfdata.iter().find(|d| d.label == "time").unwrap();
        assert_eq!(time.uom, "s");
        assert!(time.value.is_some_and(|v| v >= 0.0), "{time:?}");
        assert_eq!(time.max, Some(10.0));

        accept.abort();
        let _ = accept.await;
        let o = p.run(T).await;
        assert_eq!(o.status, Status::Critical, "{o:?}");
        assert!(o.message.contains("Connection refused"), "{o:?}");
    }

    #[tokio::test]
    async fn check_disk_ok_with_perfdata() {
        let Some(check_disk) = plugin("check_disk") else {
            return;
        };
        let o = probe_argv(&[&check_disk, "-w", "0%", "-c", "0%", "-p", "/"])
            .run(T)
            .await;
        assert_eq!(o.status, Status::Ok, "{o:?}");
        assert!(o.message.starts_with("DISK OK"), "{o:?}");
        let root = o.perfdata.iter().find(|d| d.label == "/").unwrap();
        assert!(root.value.is_some_and(|v| v > 0.0), "{root:?}");
        assert!(!root.uom.is_empty() && root.max.is_some(), "{root:?}");
    }

    #[tokio::test]
    async fn check_dummy_warning_and_unknown_found_in_the_plugin_dir() {
        if plugin("check_dummy").is_none() {
            return;
        }
        // a bare name, with a PATH that does not have the plugin dir
        let o = probe(
            r#"command = ["check_dummy", "1", "text"]
                         env = { PATH = "/usr/bin:/bin" }"#,
        )
        .run(T)
        .await;
        assert_eq!(
            (o.status, o.message.as_str()),
            (Status::Warning, "WARNING: text")
        );
        let o = probe_argv(&["check_dummy", "3"]).run(T).await;
        assert_eq!((o.status, o.message.as_str()), (Status::Unknown, "UNKNOWN"));
    }

    /// The live processes (not zombies) in process group `pgid`.
    fn live_in_group(pgid: i32) -> Vec<String> {
        let mut found = Vec::new();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
                continue;
            };
            // pid (comm) state ppid pgrp ...
            let Some((_, rest)) = stat.rsplit_once(") ") else {
                continue;
            };
            let f: Vec<&str> = rest.split_whitespace().collect();
            if f.len() > 2 && f[2] == pgid.to_string() && f[0] != "Z" && f[0] != "X" {
                found.push(stat);
            }
        }
        found
    }

    /// Waits (polling, with a deadline) until group `pgid` has no live process.
    async fn assert_group_gone(pgid: i32) {
        let start = StdInstant::now();
        loop {
            let live = live_in_group(pgid);
            if live.is_empty() {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "still running: {live:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn read_pgid(file: &Path) -> i32 {
        let start = StdInstant::now();
        loop {
            if let Ok(s) = std::fs::read_to_string(file)
                && s.ends_with('\n')
            {
                return s.trim().parse().unwrap();
            }
            assert!(start.elapsed() < Duration::from_secs(5), "no pid file");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn a_hanging_command_times_out_and_its_whole_group_is_killed() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let script = format!("echo $$ > {}; sleep 1000 & sleep 1000", pidfile.display());
        let p = probe_argv(&["/bin/sh", "-c", &script]);
        let start = StdInstant::now();
        let o = p.run(Duration::from_secs(1)).await;
        let took = start.elapsed();
        assert_eq!(o, Outcome::timed_out(Duration::from_secs(1)));
        // not before its timeout (a loaded machine only makes it later)
        assert!(took >= Duration::from_secs(1), "{took:?}");
        let pgid = read_pgid(&pidfile).await;
        assert_group_gone(pgid).await;
    }

    #[tokio::test]
    async fn a_cancelled_run_kills_the_group() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let script = format!("echo $$ > {}; sleep 1000 & sleep 1000", pidfile.display());
        let p = probe_argv(&["/bin/sh", "-c", &script]);
        let mut run = p.run(Duration::from_secs(600));
        let pgid = tokio::select! {
            _ = &mut run => panic!("finished"),
            pgid = read_pgid(&pidfile) => pgid,
        };
        assert!(!live_in_group(pgid).is_empty());
        drop(run);
        assert_group_gone(pgid).await;
    }

    #[tokio::test]
    async fn a_background_child_holding_stdout_does_not_hold_the_run() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let script = format!(
            "echo $$ > {}; sleep 1000 & echo 'OK - started|n=1'",
            pidfile.display()
        );
        // had the run waited for the child's stdout to close, it would have timed out
        let o = probe_argv(&["/bin/sh", "-c", &script]).run(T).await;
        assert_eq!((o.status, o.message.as_str()), (Status::Ok, "OK - started"));
        assert_eq!(o.perfdata, vec![crate::PerfDatum::new("n", Some(1.0), "")]);
        assert_group_gone(read_pgid(&pidfile).await).await;
    }

    #[tokio::test]
    async fn output_is_capped_at_8_kib_and_the_rest_drained() {
        // 1 MB: a plugin that is not drained blocks on the full pipe and times out
        let o = probe_argv(&[
            "/bin/sh",
            "-c",
            "echo 'first line|a=1'; head -c 1000000 /dev/zero | tr '\\0' x; exit 1",
        ])
        .run(T)
        .await;
        assert_eq!(o.status, Status::Warning, "{}", o.message);
        assert_eq!(o.message, "first line");
        assert_eq!(
            o.long_output.len(),
            MAX_PLUGIN_OUTPUT - "first line|a=1\n".len()
        );
        assert!(o.long_output.bytes().all(|b| b == b'x'));
    }

    #[tokio::test]
    async fn exit_codes_signals_stderr_and_no_output() {
        let o = probe_argv(&["/bin/sh", "-c", "echo 'CRIT: down'; echo detail; exit 2"])
            .run(T)
            .await;
        assert_eq!(
            (o.status, o.message.as_str(), o.long_output.as_str()),
            (Status::Critical, "CRIT: down", "detail")
        );
        let o = probe_argv(&["/bin/sh", "-c", "exit 4"]).run(T).await;
        assert_eq!(
            (o.status, o.message.as_str()),
            (Status::Unknown, "(no output) exit 4")
        );
        let o = probe_argv(&["/bin/sh", "-c", "echo oops >&2; echo more >&2; exit 2"])
            .run(T)
            .await;
        assert_eq!(
            (o.status, o.message.as_str(), o.long_output.as_str()),
            (Status::Critical, "oops", "more")
        );
        let o = probe_argv(&["/bin/sh", "-c", "echo said; kill -TERM $$"])
            .run(T)
            .await;
        assert_eq!(
            (o.status, o.message.as_str(), o.long_output.as_str()),
            (Status::Unknown, "killed by signal 15", "said")
        );
        let o = probe_argv(&["/bin/true"]).run(T).await;
        assert_eq!(
            (o.status, o.message.as_str()),
            (Status::Ok, "(no output) exit 0")
        );
    }

    #[tokio::test]
    async fn host_env_and_cwd() {
        let dir = tempfile::tempdir().unwrap();
        let toml = format!(
            r#"command = ["/bin/sh", "-c", "echo \"$1 $GREETING $(pwd)\"", "sh", "{{host}}"]
               env = {{ GREETING = "hi" }}
               cwd = "{}""#,
            dir.path().display()
        );
        let p = build_kind(
            "command",
            &Table::parse(&toml).unwrap(),
            &BuildContext::new(Some("192.0.2.7")),
        )
        .unwrap();
        let o = p.run(T).await;
        assert_eq!(
            o.message,
            format!("192.0.2.7 hi {}", dir.path().display()),
            "{o:?}"
        );
    }

    #[tokio::test]
    async fn a_missing_or_unrunnable_program_is_unknown() {
        let o = probe_argv(&["/nonexistent/check_x"]).run(T).await;
        assert_eq!(o.status, Status::Unknown);
        assert!(
            o.message.contains("cannot run /nonexistent/check_x"),
            "{o:?}"
        );
        assert!(o.message.contains("No such file"), "{o:?}");
        let o = probe_argv(&["no-such-check-xyz"]).run(T).await;
        assert_eq!(o.status, Status::Unknown);
        assert!(
            o.message.contains("no-such-check-xyz: command not found"),
            "{o:?}"
        );
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("not-exec");
        std::fs::write(&f, "#!/bin/sh\necho hi\n").unwrap();
        let o = probe_argv(&[f.to_str().unwrap()]).run(T).await;
        assert_eq!(o.status, Status::Unknown);
        assert!(o.message.contains("Permission denied"), "{o:?}");
    }

    #[test]
    fn bad_configs_name_the_key() {
        let ctx = BuildContext::new(None);
        for (toml, key) in [
            ("command = []", "command"),
            ("command = [\"\"]", "command"),
            ("command = [\"bin/check\"]", "command"),
            ("command = [\"check_x\", \"{host}\"]", "command"),
            ("command = \"check_x\"", "command"),
            ("comand = [\"check_x\"]", "comand"),
            ("command = [\"check_x\"]\nenv = { \"A=B\" = \"x\" }", "env"),
            ("command = [\"check_x\"]\ncwd = \"tmp\"", "cwd"),
            ("", "command"),
        ] {
            let e = build_kind("command", &Table::parse(toml).unwrap(), &ctx).unwrap_err();
            assert_eq!(e.offending_key(), Some(key), "{toml}: {e}");
        }
    }
}
