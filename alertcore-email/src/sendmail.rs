//! `mode = "sendmail"`: hand the message to a local MTA's `sendmail` program.
//!
//! We spawn the program ourselves rather than use lettre's sendmail transport so the
//! command can carry arguments (as an argv array, never through a shell), the exit
//! status can say whether to retry (`EX_TEMPFAIL`), and the timeout kills it.

use std::time::Duration;

use alertcore::transport::one_line;
use lettre::address::Envelope;
use tokio::io::AsyncWriteExt as _;
use tokio::process::Command;

use crate::error::EmailError;

/// How much of the program's stderr goes into an error.
const MAX_STDERR: usize = 500;

/// A `sendmail`-compatible program: `argv... -i -f FROM -- TO...`, message on stdin.
#[derive(Debug, Clone)]
pub(crate) struct Sendmail {
    argv: Vec<String>,
}

impl Sendmail {
    /// `argv` is non-empty (checked by the config).
    pub(crate) fn new(argv: Vec<String>) -> Self {
        Self { argv }
    }

    fn program(&self) -> &str {
        self.argv.first().map_or("sendmail", String::as_str)
    }

    pub(crate) async fn send(
        &self,
        envelope: &Envelope,
        message: &[u8],
        timeout: Duration,
    ) -> Result<(), EmailError> {
        let program = self.program().to_owned();
        let io_err = |source| EmailError::SendmailIo {
            program: program.clone(),
            source,
        };
        let mut cmd = Command::new(&program);
        cmd.args(self.argv.iter().skip(1));
        // -i: a line with a single "." is not the end of the message.
        cmd.arg("-i");
        if let Some(from) = envelope.from() {
            cmd.arg("-f").arg(from);
        }
        cmd.arg("--");
        cmd.args(envelope.to());
        cmd.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        // The sendmail interface takes the message with local (LF) line endings.
        let body = crlf_to_lf(message);
        let run = async {
            let mut child = cmd.spawn().map_err(io_err)?;
            let mut stdin = child
                .stdin
                .take()
                .ok_or_else(|| io_err(std::io::Error::other("no stdin pipe")))?;
            let feed = async move {
                stdin.write_all(&body).await?;
                stdin.shutdown().await
            };
            // Feed stdin while collecting the output, so a chatty program cannot
            // deadlock us on a full stderr pipe.
            let (fed, output) = tokio::join!(feed, child.wait_with_output());
            let output = output.map_err(io_err)?;
            if !output.status.success() {
                let stderr = String::from_utf8_lossy(&output.stderr);
                let stderr: String = one_line(stderr.trim()).chars().take(MAX_STDERR).collect();
                return Err(EmailError::Sendmail {
                    program: program.clone(),
                    status: output.status,
                    stderr,
                });
            }
            // It exited 0 without reading everything: it did not get the message.
            fed.map_err(io_err)
        };
        tokio::time::timeout(timeout, run)
            .await
            .unwrap_or_else(|_| {
                Err(EmailError::Timeout {
                    server: self.program().to_owned(),
                    timeout,
                })
            })
    }
}

fn crlf_to_lf(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len());
    let mut it = message.iter().peekable();
    while let Some(&b) = it.next() {
        if b == b'\r' && it.peek() == Some(&&b'\n') {
            continue;
        }
        out.push(b);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_endings_become_local() {
        assert_eq!(crlf_to_lf(b"a\r\nb\rc\r\n"), b"a\nb\rc\n");
    }
}
