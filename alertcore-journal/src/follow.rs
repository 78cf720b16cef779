//! The journal, read by `journalctl -o json --follow` as a child process.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};

use crate::spec::{JournalConfig, Start};

/// The prefix of a stored position that is a time, not a cursor: no entry had been
/// read yet when it was stored.
const SINCE: &str = "since=@";

/// How to run journalctl.
#[derive(Debug, Clone)]
pub struct Follow {
    program: PathBuf,
    directory: Option<PathBuf>,
    matches: Option<Vec<String>>,
    start: Start,
}

impl Follow {
    /// From `[journal]`; with pushdown, the chains' matches go to journalctl.
    pub fn of(config: &JournalConfig) -> Self {
        Self {
            program: config.journalctl.clone(),
            directory: config.directory.clone(),
            matches: if config.pushdown {
                config.chains.pushdown()
            } else {
                None
            },
            start: config.start,
        }
    }

    /// The matches handed to journalctl, if any.
    pub fn matches(&self) -> Option<&[String]> {
        self.matches.as_deref()
    }

    /// Where a first start reads from, at `now`, as a stored position.
    pub fn first_position(&self, now: SystemTime) -> String {
        let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let since = match self.start {
            Start::Now => secs(now),
            Start::Back(d) => secs(now).saturating_sub(d.as_secs()),
            Start::Boot => boot_time().unwrap_or_else(|| secs(now)),
        };
        format!("{SINCE}{since}")
    }

    /// journalctl's arguments to read on from `position` (a cursor, or a time stored
    /// by [`Follow::first_position`]), following, or not (`alertctl journal test`).
    pub fn args(&self, position: &str, follow: bool) -> Vec<String> {
        let mut args = vec![
            "--output=json".to_owned(),
            // fields over 4096 bytes in full, not null
            "--all".to_owned(),
            "--no-pager".to_owned(),
            // every boot's entries after the position, and every journal file (a
            // cursor of an earlier boot reads on across the reboot)
            "--merge".to_owned(),
        ];
        if follow {
            // --follow alone implies --lines=10, and with --after-cursor journalctl 252
            // then prints only the last 10 entries after the cursor, silently skipping
            // the rest of a backlog: every entry after the position, always
            args.push("--follow".to_owned());
            args.push("--no-tail".to_owned());
        }
        if let Some(d) = &self.directory {
            args.push(format!("--directory={}", d.display()));
        }
        match position.strip_prefix(SINCE) {
            // never tail mode: it keeps only the last entry of a first burst
            Some(secs) => args.push(format!("--since=@{secs}")),
            // not --after-cursor: it skips the entry after the cursor's position when
            // the cursor's own entry is gone (vacuumed) or not matched (the chains
            // changed); --cursor prints that entry, which the reader drops
            // (`Follow::resumes_at`)
            None => args.push(format!("--cursor={position}")),
        }
        if let Some(m) = &self.matches {
            args.extend(m.iter().cloned());
        }
        args
    }

    /// The cursor whose own entry journalctl prints first when reading on from
    /// `position`: it was handled before, and is dropped.
    pub fn resumes_at(position: &str) -> Option<&str> {
        (!position.starts_with(SINCE)).then_some(position)
    }

    /// Starts journalctl reading on from `position`.
    ///
    /// # Errors
    /// When it cannot be started.
    pub fn spawn(&self, position: &str, follow: bool) -> std::io::Result<Reader> {
        let mut child = Command::new(&self.program)
            .args(self.args(position, follow))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("journalctl has no stdout"))?;
        if let Some(stderr) = child.stderr.take() {
            // "ignoring file", "journal corrupted", ...: worth a line in the log, not fatal
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    tracing::warn!("journalctl: {line}");
                }
            });
        }
        Ok(Reader {
            child,
            stdout: BufReader::with_capacity(256 * 1024, stdout),
            line: Vec::new(),
        })
    }
}

/// A running journalctl's output, line by line.
#[derive(Debug)]
pub struct Reader {
    child: Child,
    stdout: BufReader<ChildStdout>,
    line: Vec<u8>,
}

impl Reader {
    /// Reads the next line into [`Reader::line`]; `false` when journalctl has exited.
    ///
    /// # Errors
    /// A read error.
    pub async fn next(&mut self) -> std::io::Result<bool> {
        self.line.clear();
        Ok(self.stdout.read_until(b'\n', &mut self.line).await? > 0)
    }

    /// The line [`Reader::next`] read, with its newline.
    pub fn line(&self) -> &[u8] {
        &self.line
    }

    /// Stops journalctl and says how it ended.
    pub async fn stop(mut self) -> String {
        let _ = self.child.start_kill();
        self.exit().await
    }

    /// How journalctl ended, once its output has ended (killed if it does not exit).
    pub async fn exit(mut self) -> String {
        match tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await {
            Ok(Ok(status)) => status.to_string(),
            Ok(Err(e)) => e.to_string(),
            Err(_) => {
                let _ = self.child.start_kill();
                "did not exit".into()
            }
        }
    }
}

/// When this boot began (`btime` in `/proc/stat`), in seconds since the epoch.
fn boot_time() -> Option<u64> {
    std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn follow(matches: Option<Vec<&str>>) -> Follow {
        Follow {
            program: "journalctl".into(),
            directory: Some("/j".into()),
            matches: matches.map(|m| m.into_iter().map(str::to_owned).collect()),
            start: Start::Back(Duration::from_secs(3600)),
        }
    }

    #[test]
    fn the_arguments_avoid_journalctls_traps() {
        let f = follow(Some(vec!["A=1", "+", "B=2"]));
        let first = f.first_position(UNIX_EPOCH + Duration::from_secs(10_000));
        assert_eq!(first, "since=@6400");
        assert_eq!(Follow::resumes_at(&first), None);
        assert_eq!(
            f.args(&first, true),
            [
                "--output=json",
                "--all",
                "--no-pager",
                "--merge",
                "--follow",
                "--no-tail",
                "--directory=/j",
                "--since=@6400",
                "A=1",
                "+",
                "B=2"
            ]
        );
        assert_eq!(Follow::resumes_at("s=1;i=2"), Some("s=1;i=2"));
        assert_eq!(
            follow(None).args("s=1;i=2", false),
            [
                "--output=json",
                "--all",
                "--no-pager",
                "--merge",
                "--directory=/j",
                "--cursor=s=1;i=2"
            ]
        );
    }
}
