//! Running one agent: spawn without a shell, capture bounded output, enforce the timeout,
//! and never leave a process behind that we were responsible for.
//!
//! Each agent is the leader of its own process group, so on a timeout (or when the
//! delivery is cancelled) the whole group is killed with SIGKILL, including whatever the
//! agent started (`sendmail`, `curl`, `sleep`), which a kill of the agent alone would
//! leave running. The group is killed while its leader is not yet reaped, so its id cannot
//! have been reused. An agent that exits normally keeps its children: an agent may
//! deliberately hand slow work to a background process, as Pacemaker's docs suggest.

use std::ffi::OsString;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _};
use tokio::process::Command;
use tokio::time::Instant;

use crate::exec::ExecError;

/// How much of each of stdout and stderr is kept.
pub(crate) const MAX_OUTPUT: usize = 64 * 1024;

/// How long to keep reading the output after the agent exited: a background process it
/// left holding the pipes must not hold up the delivery.
const OUTPUT_GRACE: Duration = Duration::from_millis(500);

/// The first [`MAX_OUTPUT`] bytes of a stream, and how many there were in all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Captured {
    pub(crate) data: Vec<u8>,
    pub(crate) total: usize,
}

impl Captured {
    fn push(&mut self, chunk: &[u8]) {
        self.total += chunk.len();
        let room = MAX_OUTPUT.saturating_sub(self.data.len());
        self.data
            .extend_from_slice(chunk.get(..room.min(chunk.len())).unwrap_or_default());
    }

    /// The text, lossily decoded, with a note when it was cut.
    pub(crate) fn text(&self) -> String {
        let mut s = String::from_utf8_lossy(&self.data).into_owned();
        if self.total > self.data.len() {
            s.push_str(&format!(
                "\n[... {} more bytes not kept]",
                self.total - self.data.len()
            ));
        }
        s
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.total == 0
    }
}

/// How a run ended.
#[derive(Debug)]
pub(crate) enum Ended {
    /// The agent exited (or was killed by someone else).
    Exited(ExitStatus),
    /// It ran out of time; we killed its process group.
    TimedOut,
}

/// A finished run.
#[derive(Debug)]
pub(crate) struct Finished {
    pub(crate) ended: Ended,
    pub(crate) stdout: Captured,
    pub(crate) stderr: Captured,
    pub(crate) elapsed: Duration,
}

/// Runs `argv` with exactly the environment `env`, stdin from `/dev/null`.
pub(crate) async fn run(
    argv: &[String],
    env: &[(String, OsString)],
    timeout: Duration,
) -> Result<Finished, ExecError> {
    let (program, args) = argv.split_first().ok_or_else(|| ExecError::Spawn {
        program: String::new(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty command"),
    })?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let started = Instant::now();
    let mut child = cmd.spawn().map_err(|source| ExecError::Spawn {
        program: program.clone(),
        source,
    })?;
    // Declared after `child`, so dropped before it: the group is killed while the
    // leader is still unreaped, then `kill_on_drop` and tokio's reaper do the rest.
    let mut group = ProcessGroup::of(child.id());
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let mut out = Captured::default();
    let mut err = Captured::default();

    let ended = {
        let reading = async {
            tokio::join!(
                drain(stdout.as_mut(), &mut out),
                drain(stderr.as_mut(), &mut err)
            )
        };
        tokio::pin!(reading);
        let mut read_all = false;
        let waited = tokio::time::timeout(timeout, async {
            loop {
                tokio::select! {
                    status = child.wait() => break status,
                    _ = &mut reading, if !read_all => read_all = true,
                }
            }
        })
        .await;
        let ended = match waited {
            Ok(Ok(status)) => {
                // Reaped: from here on its group id may belong to someone else.
                group.disarm();
                Ended::Exited(status)
            }
            Ok(Err(source)) => {
                group.kill();
                group.disarm();
                return Err(ExecError::Wait {
                    program: program.clone(),
                    source,
                });
            }
            Err(_elapsed) => {
                group.kill();
                let _ = child.start_kill();
                // Reap it, so no zombie is left; SIGKILL makes this quick.
                let _ = child.wait().await;
                group.disarm();
                Ended::TimedOut
            }
        };
        if !read_all {
            let _ = tokio::time::timeout(OUTPUT_GRACE, &mut reading).await;
        }
        ended
    };
    Ok(Finished {
        ended,
        stdout: out,
        stderr: err,
        elapsed: started.elapsed(),
    })
}

/// Reads `pipe` to its end, keeping the first [`MAX_OUTPUT`] bytes in `into` and
/// discarding the rest (still reading, so the agent never blocks on a full pipe).
async fn drain<R: AsyncRead + Unpin>(pipe: Option<&mut R>, into: &mut Captured) {
    let Some(pipe) = pipe else { return };
    let mut buf = [0u8; 8192];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => into.push(buf.get(..n).unwrap_or_default()),
        }
    }
}

/// The agent's process group, killed on drop unless disarmed.
#[derive(Debug)]
struct ProcessGroup(Option<rustix::process::Pid>);

impl ProcessGroup {
    fn of(pid: Option<u32>) -> Self {
        Self(
            pid.and_then(|p| i32::try_from(p).ok())
                .and_then(rustix::process::Pid::from_raw),
        )
    }

    fn kill(&mut self) {
        if let Some(pgid) = self.0 {
            // ESRCH (everyone already gone) is fine.
            let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
        }
    }

    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_is_bounded_and_counts_the_rest() {
        let mut c = Captured::default();
        c.push(&vec![b'a'; MAX_OUTPUT - 1]);
        c.push(b"bcd");
        assert_eq!(c.data.len(), MAX_OUTPUT);
        assert_eq!(c.total, MAX_OUTPUT + 2);
        assert!(c.data.ends_with(b"ab"));
        assert!(c.text().ends_with("[... 2 more bytes not kept]"));
        assert!(Captured::default().is_empty());
    }

    fn sh(script: &str) -> Vec<String> {
        vec!["/bin/sh".into(), "-c".into(), script.into()]
    }

    #[tokio::test]
    async fn output_is_captured_and_bounded() {
        let f = run(
            &sh("head -c 100000 /dev/zero; echo oops >&2; exit 3"),
            &[],
            Duration::from_secs(20),
        )
        .await
        .unwrap();
        assert!(matches!(f.ended, Ended::Exited(s) if s.code() == Some(3)));
        assert_eq!(f.stdout.data.len(), MAX_OUTPUT);
        assert_eq!(f.stdout.total, 100_000);
        assert_eq!(f.stderr.text(), "oops\n");
    }

    #[tokio::test]
    async fn the_environment_is_exactly_ours() {
        let env = [("ONLY".to_owned(), OsString::from("1"))];
        let f = run(&sh("/usr/bin/env"), &env, Duration::from_secs(20))
            .await
            .unwrap();
        let text = f.stdout.text();
        // sh may add PWD, SHLVL or _ itself; nothing comes from our process.
        let names: Vec<&str> = text.lines().filter_map(|l| l.split('=').next()).collect();
        assert!(names.contains(&"ONLY"), "{text}");
        for n in names {
            assert!(["ONLY", "PWD", "SHLVL", "_"].contains(&n), "{text}");
        }
    }

    #[tokio::test]
    async fn a_timeout_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        // The agent starts a grandchild that would outlive a kill of the agent alone.
        let script = format!("sleep 60 & echo $! > {}; wait", pidfile.display());
        let f = run(&sh(&script), &[], Duration::from_millis(300))
            .await
            .unwrap();
        assert!(matches!(f.ended, Ended::TimedOut), "{f:?}");
        let pid = pid_in(&pidfile);
        // Killed, it waits as a zombie for init (or a subreaper) to reap it.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let mut gone = is_gone(pid);
        while !gone && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            gone = is_gone(pid);
        }
        assert!(gone, "the agent's child {pid} survived the timeout");
    }

    /// The process id an agent wrote to `file`.
    fn pid_in(file: &std::path::Path) -> i32 {
        let text = std::fs::read_to_string(file).expect("the agent wrote its pid file");
        text.trim().parse().expect("a pid")
    }

    /// Gone, or a zombie waiting for its parent (init) to reap it.
    fn is_gone(pid: i32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => stat
                .rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        }
    }

    /// The agent exits, leaving a child that holds its stdout and stderr open for a
    /// minute: we return when the agent exits, with that child still running.
    #[tokio::test]
    async fn a_background_child_holding_the_pipes_does_not_hold_us() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let script = format!(
            "echo hi; sleep 60 & echo $! > {}; exit 0",
            pidfile.display()
        );
        let f = run(&sh(&script), &[], Duration::from_secs(120))
            .await
            .unwrap();
        let pid = pid_in(&pidfile);
        let alive = !is_gone(pid);
        let _ = std::process::Command::new("kill")
            .arg(pid.to_string())
            .status();
        assert!(matches!(f.ended, Ended::Exited(s) if s.success()), "{f:?}");
        assert_eq!(f.stdout.text(), "hi\n");
        assert!(alive, "we waited for the background child {pid} to end");
    }

    #[tokio::test]
    async fn a_missing_program_is_a_spawn_error() {
        let e = run(
            &["/nonexistent/agent".to_owned()],
            &[],
            Duration::from_secs(1),
        )
        .await
        .unwrap_err();
        assert!(matches!(e, ExecError::Spawn { .. }), "{e:?}");
        assert!(!e.is_retryable());
    }
}
